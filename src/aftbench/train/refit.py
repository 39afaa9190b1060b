"""The refit step of tune-then-refit: before a refit run trains on train + val, its tune stage's
records (the same run fitted on train at each value of its grid) choose the value on validation,
by the one rule aftbench.core.tuning.pick_on_val. The choice and every candidate's validation
accuracy go into the refit's record; a tune stage that does not match the spec is refused."""

from __future__ import annotations

from aftbench.core.io import read_json
from aftbench.core.records import signature_problem
from aftbench.core.roles import BASELINE, method_role
from aftbench.core.tuning import pick_on_val


class TuneStageError(ValueError):
    pass


def choose_tuned(spec: dict, tuned_paths: list[str]) -> dict:
    """`spec` (a refit run's, with its `tune` candidates: run id and method entry at each value)
    with the chosen candidate's method and a `tuning` summary in place of `tune`."""
    candidates = spec["tune"]
    records = {}
    for p in tuned_paths:
        r = read_json(p)
        problem = signature_problem(p, r)
        if problem:  # an edited tune record would choose the refit's value
            raise TuneStageError(f"{spec['run_id']}: tune record {problem}; `rm {p}` and rerun the sweep to remake it")
        records[r.get("run_id")] = r
    expected = [c["run_id"] for c in candidates]
    missing = [rid for rid in expected if rid not in records]
    if missing or len(records) != len(expected):
        raise TuneStageError(
            f"{spec['run_id']}: its tune stage should be the records of {expected}; got {sorted(map(str, records))} "
            f"from {tuned_paths}. Rerun the sweep so Snakemake remakes the tune stage"
        )
    stage = [records[rid] for rid in expected]
    unfit = [r["run_id"] for r in stage if r.get("fit_on") != "train" or r.get("val_acc") is None]
    if unfit:
        raise TuneStageError(f"{spec['run_id']}: tune-stage runs {unfit} were not fitted on train with a val accuracy")
    i = pick_on_val(stage)
    if i is None:
        raise TuneStageError(
            f"{spec['run_id']}: every run of its tune stage diverged ({expected}); no value to refit. "
            "Lower the grid's values or the learning rate"
        )
    method = candidates[i]["method"]
    knob = "label_smoothing" if method_role(method) == BASELINE else "beta"
    tuning = {
        "knob": knob,
        "chosen": float(method.get(knob, 0.0)),
        "chosen_run": expected[i],
        "candidates": [
            {
                "run_id": r["run_id"],
                knob: float(c["method"].get(knob, 0.0)),
                "val_acc": r["val_acc"],
                "diverged": bool(r.get("diverged", False)),
            }
            for r, c in zip(stage, candidates, strict=True)
        ],
    }
    out = {k: v for k, v in spec.items() if k != "tune"}
    return {**out, "method": method, "tuning": tuning}
