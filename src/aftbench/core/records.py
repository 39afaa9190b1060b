"""One record per finished run, written by training and by the probe (metrics.json), and the
roles the report reads from it.

A method's *role* comes from its config entry, never from its id: `baseline` is a training
method without a penalty (STL), `transfer` one with a penalty, `probe` a method of kind probe.
The report orders methods by role, then by penalty (PENALTY_ORDER), then by id; one label rule
and one colour per method come from that order (aftbench.report.figures), so renaming `stl` in
config.yaml renames it everywhere and changes nothing else.
"""

from __future__ import annotations

from aftbench.core.io import write_json

BASELINE, TRANSFER, PROBE = "baseline", "transfer", "probe"
# A run diverged when the mean training CE of its last steps exceeds this × its first step's CE
# (aftbench.train.loop.divergence_check); it is recorded, never reported as a result.
DIVERGENCE_FACTOR = 1.25
ROLE_ORDER = (BASELINE, TRANSFER, PROBE)
# Transfer methods in tables and legends: weakest link to the teacher first, AFT and its
# ablations last; a penalty not listed here comes after these, by name.
PENALTY_ORDER = ("kd", "logit_kd", "rkd", "btune", "ft", "aft_nokernel", "aft")

# Fields every record has, in this order (each writer adds its own after them).
COMMON_FIELDS = (
    "run_id",
    "kind",
    "role",
    "dataset",
    "modality",
    "student",
    "student_arch",
    "student_init",
    "student_params",
    "method",
    "penalty",
    "teacher_set",
    "teachers",
    "beta",
    "seed",
    "val_acc",
    "test_acc",
    "checkpoint",
    "train_seconds",
)


def method_role(method: dict) -> str:
    """A config.yaml method entry's role: baseline, transfer or probe."""
    if method.get("kind") == "probe":
        return PROBE
    return BASELINE if method.get("penalty", "none") == "none" else TRANSFER


def role_of_record(m: dict) -> str:
    """The role of a metrics record; records written before roles existed are read by kind."""
    if m.get("role"):
        return m["role"]
    kind = "probe" if m.get("student_arch") == "logistic_regression" else "train"
    return method_role({"kind": kind, "penalty": m.get("penalty", "none")})


def write_run_record(out_json: str, **fields) -> dict:
    """metrics.json of one run: the common fields (all required) first, then the writer's own."""
    missing = [k for k in COMMON_FIELDS if k not in fields]
    if missing:
        raise KeyError(f"run record for {out_json} lacks {missing}")
    record = {k: fields[k] for k in COMMON_FIELDS} | {k: v for k, v in fields.items() if k not in COMMON_FIELDS}
    write_json(out_json, record)
    return record


def method_sort_key(method: str, role: str, penalty: str | None) -> tuple:
    rank = PENALTY_ORDER.index(penalty) if penalty in PENALTY_ORDER else len(PENALTY_ORDER)
    return ROLE_ORDER.index(role), rank, penalty or "", method


def method_order(rows) -> list[str]:
    """The methods of (method, role, penalty) rows, each once, in report order."""
    keys = {m: method_sort_key(m, role, penalty) for m, role, penalty in rows}
    return sorted(keys, key=keys.get)


def method_label(method: str) -> str:
    """How a method is named in tables and legends: short ids read as acronyms (stl -> STL)."""
    return method.upper() if len(method) <= 3 else method
