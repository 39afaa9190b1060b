"""A sweep as runs: one `Run` (aftbench.sweep.runs) per (dataset, student, method, teacher
set, β, seed) of the named sweep, each method's β grid (a block may give its own), the most runs
an adaptive sweep can reach, and runs two blocks would plan under different settings. The
workflow's DAG and `cost`'s job plan (aftbench.sweep.plan) both start from `expand_sweep`."""

from __future__ import annotations

import copy
import itertools
import json

from aftbench.core.layout import NO_TEACHERS, PROBE_STUDENT, noise_null_of, run_id
from aftbench.core.roles import BASELINE, method_role
from aftbench.core.schema import ConfigError, defaults
from aftbench.selection.adaptive import adaptive_bound, is_adaptive, select_request, selected_sets
from aftbench.sweep.runs import Run, run_train_overrides
from aftbench.sweep.summary import target_source


def distilled_probe(method: dict) -> str | None:
    """The probe-kind method whose logits a logit-distillation method learns from, else None."""
    if method["kind"] != "train" or target_source(method["penalty"]) != "probe_logits":
        return None
    return method.get("args", {}).get("probe", "probe")


def beta_grid(method: dict) -> list[float]:
    """A method's tuned values, each one run's β slot: `beta` may be one number or a grid
    (selected on validation); a baseline's are its `label_smoothing` values, else one (0)."""
    if method_role(method) == BASELINE:
        ls = method.get("label_smoothing", 0.0)
        return [float(x) for x in (ls if isinstance(ls, list) else [ls])]
    b = method.get("beta", defaults("method")["beta"])
    return [float(x) for x in (b if isinstance(b, list) else [b])]


def block_method(config: dict, block: dict, method: str) -> dict:
    """A method's entry as a block runs it: with the block's own grid for it, if it has one (a
    baseline's is its label-smoothing grid: the knob in its β slot)."""
    mspec = config["methods"][method]
    if method not in block.get("beta", {}):
        return mspec
    return {**mspec, ("label_smoothing" if method_role(mspec) == BASELINE else "beta"): block["beta"][method]}


def refits(config: dict, block: dict, dataset: str, method: dict) -> bool:
    """Whether a block's runs of `method` on `dataset` are tune-then-refit: fitted on train + val
    (the block's or the shared `fit_on`, per dataset) with more than one value to choose from."""
    train = run_train_overrides(config, block.get("train", {}), dataset)
    fit_on = train.get("fit_on", config["train"].get("fit_on", defaults("train")["fit_on"]))
    return method["kind"] == "train" and fit_on == "train+val" and len(beta_grid(method)) > 1


def trains_on_noise_nulls(block: dict, method: dict) -> bool:
    """Whether a block's method also runs on its teacher sets' noise nulls: `noise_null: true`,
    a transfer method whose Φ is the cached features (not FT's factors nor a probe's logits)."""
    return (
        bool(block.get("noise_null")) and method_role(method) != BASELINE and target_source(method["penalty"]) is None
    )


def expand_sweep(config: dict, sweep: str | None = None, selections: dict[str, list[str]] | None = None) -> list[Run]:
    """One Run per (dataset, student, method, teacher set, β, seed) of the named sweep,
    deduplicated. STL runs have no teacher set and β = 0; probes have no student, β = 0 and one
    seed (they are deterministic). An adaptive block trains on the sets its selection chose
    (`selections`: request digest -> the selected set ids, as written by the selection step);
    before its selection is made it contributes only its runs without teachers."""
    runs: dict[str, Run] = {}
    cells: dict[str, str] = {}  # run id without the train digest -> the block settings it was given
    for b in config["sweeps"][sweep or config["sweep"]]:
        for d in b["datasets"]:
            if is_adaptive(b):
                request = select_request(b, d)
                chosen = (selections or {}).get(request.digest)
                block_sets = [] if chosen is None else selected_sets(config, request, chosen)
            else:
                block_sets = b.get("teacher_sets", [])
            train = json.dumps(run_train_overrides(config, b.get("train", {}), d), sort_keys=True)
            for m in b["methods"]:
                mspec = config["methods"][m]
                if mspec["kind"] == "probe":
                    for ts in block_sets:
                        r = Run("probe", d, PROBE_STUDENT, m, ts, 0, "{}")
                        runs.setdefault(r.run_id, r)
                    continue
                tsets = [NO_TEACHERS] if method_role(mspec) == BASELINE else block_sets
                if trains_on_noise_nulls(b, mspec):
                    tsets = [*tsets, *(noise_null_of(ts) for ts in block_sets)]
                mspec = block_method(config, b, m)
                grid = beta_grid(mspec)
                refit = refits(config, b, d, mspec)
                for s, ts, seed in itertools.product(b["students"], tsets, b["seeds"]):
                    if refit:  # the refit and its tune stage (the same run fitted on train at each β)
                        final = Run("train", d, s, m, ts, int(seed), train, None, tuple(grid))
                        stage = [*final.tune_stage, final]
                    else:
                        stage = [Run("train", d, s, m, ts, int(seed), train, beta) for beta in grid]
                    for r in stage:
                        cell = run_id(d, s, m, ts, r.beta, int(seed), grid=r.grid)
                        if cells.setdefault(cell, r.train) != r.train:  # one sweep, one table cell: one setting
                            raise ConfigError(
                                f"sweep {sweep or config['sweep']!r}: run {cell} appears in two blocks with "
                                f"different train settings ({cells[cell]} and {r.train}); its table cell would mix "
                                f"them. Put them in two sweeps"
                            )
                        runs.setdefault(r.run_id, r)
    return list(runs.values())


def tuning_budgets(config: dict, sweep: str | None = None) -> list[dict[str, int]]:
    """Per block of the sweep: each training method's number of configurations chosen on
    validation per cell (its β grid; a baseline's label-smoothing grid), and a probe's C grid.
    A tune-then-refit method chooses from its grid too (its refit is the choice, not a try)."""
    out = []
    for b in config["sweeps"][sweep or config["sweep"]]:
        budget = {}
        for m in b["methods"]:
            mspec = block_method(config, b, m)
            budget[m] = len(mspec.get("C_grid", [0])) if mspec["kind"] == "probe" else len(beta_grid(mspec))
        out.append(budget)
    return out


def refitted_datasets(config: dict, sweep: str | None = None) -> list[list[str]]:
    """Per block of the sweep: the datasets whose runs are tune-then-refit (for any method)."""
    return [
        [d for d in b["datasets"] if any(refits(config, b, d, block_method(config, b, m)) for m in b["methods"])]
        for b in config["sweeps"][sweep or config["sweep"]]
    ]


def planned_bound(config: dict, sweep: str | None = None) -> int:
    """The most runs the sweep can have once every selection is made: its runs before any, plus
    each adaptive block's runs on top_k sets (and a union) per dataset, as if none were shared."""
    total = len(expand_sweep(config, sweep, {}))
    for b in config["sweeps"][sweep or config["sweep"]]:
        if not is_adaptive(b):
            continue
        for d in b["datasets"]:
            per_set = 0
            for m in b["methods"]:
                mspec = block_method(config, b, m)
                if mspec["kind"] == "probe":
                    per_set += 1
                elif method_role(mspec) != BASELINE:
                    nulls = 2 if trains_on_noise_nulls(b, mspec) else 1
                    stage = len(beta_grid(mspec)) + int(refits(config, b, d, mspec))  # a refit: one more run
                    per_set += nulls * len(b["students"]) * stage * len(b["seeds"])
            r = select_request(b, d)
            total += per_set * (r.top_k + int(r.union))
    return total


def adaptive_conflicts(config: dict) -> list[str]:
    """Runs an adaptive block of the configured sweep could share with another block under other
    train settings, whatever it selects (checked before any job: expand_sweep would find them only
    after the selection)."""
    if not any(is_adaptive(b) for b in config["sweeps"][config["sweep"]]):
        return []
    widened = copy.deepcopy(config)
    for b in widened["sweeps"][config["sweep"]]:
        if is_adaptive(b):
            b["teacher_sets"] = list(dict.fromkeys(ts for _, ts in adaptive_bound(config, b)))
    try:
        expand_sweep(widened)
    except ConfigError as err:
        return [f"{p} (an adaptive block could select it)" for p in err.problems]
    return []
