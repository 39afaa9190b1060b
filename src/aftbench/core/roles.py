"""Method roles: what a method is to the report and the statistics, read from its config entry,
never from its id.

`baseline` is a training method without a penalty (STL: its penalty is `NO_PENALTY`),
`transfer` one with a penalty, `probe` a method of kind probe (a linear classifier on the
teacher set's features). The report orders methods by role, then by penalty (PENALTY_ORDER),
then by id; one label rule and one colour per method come from that order, so renaming `stl`
in config.yaml renames it everywhere and changes nothing else. Tables, figures, claims and
statistics find "the baseline" and "the transfer methods" here, and nowhere else.
"""

from __future__ import annotations

import json

BASELINE, TRANSFER, PROBE = "baseline", "transfer", "probe"
ROLE_ORDER = (BASELINE, TRANSFER, PROBE)
NO_PENALTY = "none"  # the `penalty` of a training method without one: plain cross-entropy (STL)
# Transfer methods in tables and legends: weakest link to the teacher first, AFT and its
# ablations last; a penalty not listed here comes after these, by name.
PENALTY_ORDER = ("kd", "logit_kd", "rkd", "btune", "ft", "vkd", "rcka", "cospress", "aft_nokernel", "aft")


def penalty_of(method: dict) -> str:
    """A config.yaml method entry's penalty (`NO_PENALTY` when it has none)."""
    return method.get("penalty", NO_PENALTY)


def method_role(method: dict) -> str:
    """A config.yaml method entry's role: baseline, transfer or probe."""
    if method.get("kind") == "probe":
        return PROBE
    return BASELINE if penalty_of(method) == NO_PENALTY else TRANSFER


def method_sort_key(method: str, role: str, penalty: str | None) -> tuple:
    rank = PENALTY_ORDER.index(penalty) if penalty in PENALTY_ORDER else len(PENALTY_ORDER)
    return ROLE_ORDER.index(role), rank, penalty or "", method


def method_order(runs) -> list[str]:
    """The methods of runs (a table with method, role and penalty columns), each once, in report order."""
    keys = {
        m: method_sort_key(m, role, penalty)
        for m, role, penalty in zip(runs.method, runs.role, runs.penalty, strict=False)
    }
    return sorted(keys, key=keys.get)


def method_label(method: str) -> str:
    """How a method is named in tables and legends: short ids read as acronyms (stl -> STL, rcka -> RCKA)."""
    return method.upper() if len(method) <= 4 else method


def baseline_method(runs) -> str | None:
    """The method every comparison is against (STL): the first baseline in report order."""
    base = set(runs[runs.role == BASELINE].method)
    return next((m for m in method_order(runs) if m in base), None)


def transfer_methods(runs) -> list[str]:
    """The transfer methods of the runs, in report order."""
    transfer = set(runs[runs.role == TRANSFER].method)
    return [m for m in method_order(runs) if m in transfer]


def method_with_penalty(runs, penalty: str) -> str | None:
    """The first transfer method with this penalty whose ρ (if it has one) was learned: the
    fixed-ρ ablation shares AFT's penalty but keeps every ρ at 0.5."""
    for m in transfer_methods(runs):
        r = runs[runs.method == m]
        if r.penalty.iloc[0] != penalty:
            continue
        rho = r.rho_by_teacher.dropna()
        if len(rho) and all(v == 0.5 for js in rho for v in json.loads(js).values()):
            continue
        return m
    return None
