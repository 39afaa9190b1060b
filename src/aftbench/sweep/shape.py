"""A sweep's shape before it runs: one row per selected run it plans (β grids and tune stages
collapsed to the one run per (dataset, student, method, teacher set, seed) the report keeps),
with the columns of the report's runs table that do not need a result. The workflow asks the
report's figure rules which figures this shape can support (aftbench.report.stat_figures), and
the calibration benchmark simulates results on it (benchmarks/calibration.py)."""

from __future__ import annotations

import json

import pandas as pd

from aftbench.core.layout import NO_TEACHERS, real_set_of
from aftbench.core.roles import PROBE, method_role, penalty_of
from aftbench.sweep.expand import expand_sweep
from aftbench.sweep.runs import teachers_of
from aftbench.sweep.summary import teacher_pretrained

COLUMNS = [
    "dataset",
    "modality",
    "student",
    "method",
    "role",
    "penalty",
    "teacher_set",
    "teachers",
    "control_teacher",
    "beta",
    "fit_on",
    "stage",
    "seed",
]


def planned_runs(config: dict, sweep: str | None = None, seeds: int | None = None) -> pd.DataFrame:
    """The planned runs of `sweep` (module doc): a refit (`stage` refit, β None: chosen later) and
    its tune stage (`stage` tune, one row per β), any other run once per β. A noise null is a
    control (no pre-trained knowledge), like a random-init teacher. `seeds` replaces the sweep's
    seeds with 0..seeds-1."""
    rows = {}
    fit_default = config["train"].get("fit_on", "train")
    for refit in expand_sweep(config, sweep):
        stages = [(r, "tune") for r in refit.tune_stage] + [(refit, "refit" if refit.grid else "")]
        for r, stage in stages:
            method = config["methods"][r.method]
            real = real_set_of(r.teacher_set) or r.teacher_set
            members = teachers_of(config, real) if r.teacher_set != NO_TEACHERS else []
            pretrained = all(teacher_pretrained(config["teachers"][t]) for t in members)
            rows[(r.run_id, stage)] = dict(
                dataset=r.dataset,
                modality=config["datasets"][r.dataset]["modality"],
                student=r.student,
                method=r.method,
                role=method_role(method),
                penalty=penalty_of(method),
                teacher_set=r.teacher_set,
                teachers="+".join(members) or NO_TEACHERS,
                control_teacher=not pretrained or real_set_of(r.teacher_set) is not None,
                beta=r.beta,
                fit_on=json.loads(r.train).get("fit_on", fit_default),
                stage=stage,
                seed=r.seed,
            )
    shape = pd.DataFrame(list(rows.values()), columns=COLUMNS)
    if seeds is not None:
        one = shape.drop_duplicates(["dataset", "student", "method", "teacher_set", "beta", "stage"])
        trained = one[one.role != PROBE]
        shape = pd.concat(
            [shape[shape.role == PROBE]] + [trained.assign(seed=s) for s in range(seeds)], ignore_index=True
        )
    return shape.reset_index(drop=True)


def kept_runs(shape: pd.DataFrame) -> pd.DataFrame:
    """The one run per (dataset, student, method, teacher set, seed) a report keeps: a refit, or
    any run of a cell without one (of a β grid chosen on validation, the first stands for all)."""
    shape = shape[shape.stage != "tune"]
    return shape.drop_duplicates(["dataset", "student", "method", "teacher_set", "seed"]).reset_index(drop=True)
