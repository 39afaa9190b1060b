"""The runs a claim's comparison pairs: a sweep's selected runs as arms ((dataset, student,
method, teacher set) -> its runs by seed, per-example correctness decoded once), a (dataset,
student)'s same-seed differences cell by cell (aftbench.report.inference.Group), and a comparison's
difference with P(first > second) beside it, over exactly the same pairs."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pandas as pd

from aftbench.core.layout import NO_TEACHERS, real_set_of
from aftbench.core.records import decode_correct
from aftbench.core.roles import PROBE
from aftbench.report import inference
from aftbench.report.stats import chosen

ARM_KEY = ["dataset", "student", "method", "teacher_set"]


def arms_of(sel: pd.DataFrame) -> dict[tuple, pd.DataFrame]:
    """(dataset, student, method, teacher set) -> its selected runs indexed by seed (one per seed:
    selection keeps one run per seed), the per-example correctness decoded once."""
    cols = [c for c in ("seed", "test_acc", "val_acc", "test_correct") if c in sel]
    frame = sel[cols].reset_index(drop=True)
    if "test_correct" in frame:
        frame["test_correct"] = [decode_correct(t) for t in frame.test_correct]
    frame = frame.set_index("seed")
    return {k: frame.iloc[i] for k, i in sel.groupby(ARM_KEY, sort=False).indices.items()}


class Design:
    """What every claim reads, computed once per table: the selected runs, their arms, the probes'
    accuracy per (dataset, teacher set) and each teacher set's members."""

    def __init__(self, runs: pd.DataFrame):
        self.runs = runs
        self.sel = chosen(runs)
        self.arms = arms_of(self.sel)
        p = runs[runs.role == PROBE]
        self.probe = p.groupby(["dataset", "teacher_set"]).test_acc.mean()
        self.members = members_of(runs)
        self.control = dict(zip(runs.teacher_set, runs.control_teacher.astype(bool), strict=False))
        self.real_arms = {k: v for k, v in self.arms.items() if k[3] == NO_TEACHERS or self.is_real(k[3])}

    def sets_of(self, method: str, real: bool = False) -> dict[tuple, set]:
        """(dataset, student) -> the teacher sets `method` ran with there (`real`: pre-trained
        sets only, no baseline)."""
        out: dict[tuple, set] = {}
        for ds, st, m, ts in self.real_arms if real else self.arms:
            if m == method and not (real and ts == NO_TEACHERS):
                out.setdefault((ds, st), set()).add(ts)
        return out

    def is_real(self, teacher_set: str) -> bool:
        """A pre-trained teacher set: no random-init control, no noise null."""
        return not self.control.get(teacher_set, False) and real_set_of(teacher_set) is None


def paired_group(ds, st, cells: dict[str, tuple[pd.DataFrame, pd.DataFrame]]) -> inference.Group:
    """One (dataset, student)'s paired differences, cell by cell (first arm − second, same seed),
    with the per-example paired difference of correctness where every run saved its predictions."""
    diffs, examples = {}, []
    complete = all("test_correct" in a and "test_correct" in b for a, b in cells.values())
    for name, (a, b) in cells.items():
        diff = a.test_acc.sub(b.test_acc).dropna()
        diffs[name] = diff
        for s in diff.index if complete else ():
            ca, cb = a.test_correct[s], b.test_correct[s]
            if ca is None or cb is None or len(ca) != len(cb) or (examples and len(ca) != len(examples[0])):
                complete = False
                break
            examples.append(ca.astype(float) - cb)
    frame = pd.DataFrame(diffs)
    ex = np.mean(examples, axis=0) if complete and examples else None
    return inference.Group(ds, st, frame, ex)


def compare(groups: list[inference.Group], first: str, second: str) -> tuple[inference.Estimate, str]:
    """The difference (points) and P(first > second) beside it, over the same pairs and with the
    same design (est.extra['prob']: estimate, low, high)."""
    est = inference.paired_estimate(groups)
    prob = inference.paired_estimate(groups, indicator=True)
    if np.isnan(prob.estimate):
        return est, ""
    lo, hi = prob.interval
    lo, hi = max(0.0, lo), min(1.0, hi)
    if prob.se == 0:  # every unit agrees: a zero-width t interval would claim certainty from 3 seeds
        lo, hi = inference.agreeing_units_interval(prob)
    est.extra["prob"] = (prob.estimate, lo, hi)
    text = f"P({first} > {second}) = {prob.estimate:.2f} [{lo:.2f}, {hi:.2f}]"
    return est, text + ("; test-set variance included" if est.test_variance else "")


def in_points(est: inference.Estimate) -> inference.Estimate:
    """Fractions of accuracy to points."""
    return replace(est, estimate=100 * est.estimate, se=100 * est.se)


def members_of(runs: pd.DataFrame) -> dict[str, set]:
    """Teacher set -> its member teachers."""
    return {ts: set(t.split("+")) for ts, t in zip(runs.teacher_set, runs.teachers, strict=False) if ts != NO_TEACHERS}
