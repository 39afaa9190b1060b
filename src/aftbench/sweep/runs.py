"""One run of a sweep: its record (`Run`: dataset, student, method, teacher set, β, seed and the
block's own train settings), the train settings a block gives one dataset's runs, the resolved
spec its job gets (also its Snakemake params), and a teacher set's teachers (unions included).
aftbench.sweep.expand expands sweeps into Runs."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from functools import cached_property

from aftbench.core.layout import NO_TEACHERS, real_set_of, run_id
from aftbench.core.roles import BASELINE, method_role
from aftbench.core.schema import PER_DATASET_TRAIN_KEYS, defaults
from aftbench.selection.adaptive import union_members


@dataclass(frozen=True)
class Run:
    kind: str  # "train" | "probe"
    dataset: str
    student: str
    method: str
    teacher_set: str
    seed: int
    train: str  # JSON of the block's train overrides (hashable)
    beta: float | None = 0.0  # None: a refit run, its β chosen from `grid` by its tune stage
    grid: tuple[float, ...] = ()  # a refit run's grid (tune-then-refit), else ()

    @cached_property  # a 50,000-run DAG asks for both several times per run
    def train_digest(self) -> str | None:
        """A short digest of the block's own training settings (None without any): part of the
        run's identity, so a block that trains differently never overwrites another's run."""
        if self.train == "{}":
            return None
        return hashlib.sha256(self.train.encode()).hexdigest()[:8]

    @cached_property
    def run_id(self) -> str:
        return run_id(
            self.dataset,
            self.student,
            self.method,
            self.teacher_set,
            self.beta,
            self.seed,
            self.train_digest,
            self.grid,
        )

    @cached_property  # the plan, the refit's inputs and its spec each ask for it
    def tune_stage(self) -> list[Run]:
        """A refit run's tune stage: the same run fitted on train alone at each β of its grid
        (validation accuracy chooses the refit's β); [] for any other run."""
        if not self.grid:
            return []
        train = json.dumps({**json.loads(self.train), "fit_on": "train"}, sort_keys=True)
        return [
            Run(self.kind, self.dataset, self.student, self.method, self.teacher_set, self.seed, train, b)
            for b in self.grid
        ]


def run_train_overrides(config: dict, block_train: dict, dataset: str) -> dict:
    """A block's `train:` overrides as one dataset's runs get them: `step_multiplier` and
    `fit_on_by_dataset` (the block's, else the shared ones) are resolved into that dataset's
    `steps` and `fit_on` and dropped, so they change the runs of the datasets they name and no
    others."""
    train = dict(block_train)
    fit_on = train.pop("fit_on_by_dataset", config["train"].get("fit_on_by_dataset", {}))
    if dataset in fit_on:
        train["fit_on"] = fit_on[dataset]
    multipliers = train.pop("step_multiplier", config["train"].get("step_multiplier", {}))
    factor = multipliers.get(dataset, 1)
    if factor != 1:
        steps = train.get("steps", config["train"].get("steps", defaults("train")["steps"]))
        train["steps"] = int(steps) * int(factor)
    return train


def train_spec(config: dict, run: Run) -> dict:
    """The fully resolved spec a training job needs (also its Snakemake params: any change to
    what this run depends on, and nothing else, makes Snakemake rerun it)."""
    shared = {k: v for k, v in config["train"].items() if k not in PER_DATASET_TRAIN_KEYS}  # resolved in run.train
    train = {**shared, **json.loads(run.train)}
    mspec = config["methods"][run.method]
    if run.grid:  # a refit run's method is one of its candidates' (aftbench.train.refit chooses it in the job)
        method = {"tune": [{"run_id": t.run_id, "method": method_of_run(mspec, t.beta)} for t in run.tune_stage]}
    else:
        method = {"method": method_of_run(mspec, run.beta)}
    return {
        "run_id": run.run_id,
        "dataset": run.dataset,
        "student_id": run.student,
        "student": config["students"].get(run.student, {"arch": "linear_probe"}),
        "method_id": run.method,
        **method,
        "teacher_set": run.teacher_set,
        "teachers": teachers_of(config, run.teacher_set),
        "seed": run.seed,
        "train": train,
        # only where true: every other run's spec (its Snakemake params) stays as it was
        **({"noise_null": True} if real_set_of(run.teacher_set) is not None else {}),
    }


def method_of_run(method: dict, beta: float) -> dict:
    """The method entry as one run of its grid sees it: its one β; a baseline's β slot is its
    label smoothing (a block's grid for it, or the entry's), set where it tunes one or the value
    is not 0 (plain STL's spec stays as it always was)."""
    if method_role(method) == BASELINE and ("label_smoothing" in method or beta != 0.0):
        return {**method, "label_smoothing": beta, "beta": 0.0}
    return {**method, "beta": beta}


def teachers_of(config: dict, teacher_set: str) -> list[str]:
    """A teacher set's teachers; a union id (`a+b`, aftbench.selection.adaptive.union_set) has its members'."""
    if teacher_set == NO_TEACHERS:
        return []
    if real_set_of(teacher_set) is not None:  # a noise null reads its set's caches for their shapes
        return teachers_of(config, real_set_of(teacher_set))
    union = union_members(config, teacher_set)
    return union if union is not None else list(config["teacher_sets"][teacher_set])
