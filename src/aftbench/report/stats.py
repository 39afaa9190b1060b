"""Per-cell uncertainty for the tables and figures: the runs a result rests on (β selected on
validation, not diverged), a cell's seeds × methods table, the paired difference of two methods
over their common seeds with a Student-t interval (scipy.stats.ttest_1samp: with 3-5 seeds a
bootstrap of one cell's differences would be too coarse to mean anything), and rank tests
(autorank: Friedman, Nemenyi critical difference). Verdicts across cells and datasets have their
own design: aftbench.report.inference.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

LEVEL = 0.95  # every interval in the report
REPS = 2000  # bootstrap resamples (teacher-score intervals: aftbench.report.scores)
CELL = ["dataset", "student", "teacher_set"]


def t_interval(x) -> tuple[float, float, float]:
    """Mean and its Student-t 95% interval; (mean, nan, nan) for fewer than two values, a
    zero-width interval for identical values."""
    from scipy import stats

    x = np.asarray(x, float)
    x = x[~np.isnan(x)]
    if len(x) == 0:
        return np.nan, np.nan, np.nan
    m = float(x.mean())
    if len(x) < 2:
        return m, np.nan, np.nan
    if np.all(x == x[0]):
        return m, m, m
    ci = stats.ttest_1samp(x, 0.0).confidence_interval(LEVEL)
    return m, float(ci.low), float(ci.high)


def chosen(runs: pd.DataFrame) -> pd.DataFrame:
    """The runs a result rests on: β selected on validation, not diverged."""
    keep = runs.selected.astype(bool)
    if "diverged" in runs:
        keep &= ~runs.diverged.astype(bool)
    return runs[keep]


def seed_table(
    runs: pd.DataFrame, methods: list[str], value: str = "test_acc", complete: bool = True
) -> dict[tuple, pd.DataFrame]:
    """Per (dataset, student, teacher set): a seeds × methods frame of `value`, the baseline
    (teacher set `none`) joined on (dataset, student, seed). `complete`: only the seeds every
    method has (a rank over methods); else every seed, NaN where a method lacks it (pairs, each on
    its own common seeds: one method's missing seed must not shrink another's interval)."""
    from aftbench.core.layout import NO_TEACHERS

    sel = chosen(runs)
    base = sel[sel.teacher_set == NO_TEACHERS]
    out = {}
    for (ds, st, ts), grp in sel[sel.teacher_set != NO_TEACHERS].groupby(CELL, sort=True):
        parts = [grp, base[(base.dataset == ds) & (base.student == st)]]
        wide = pd.concat(parts).pivot_table(index="seed", columns="method", values=value, aggfunc="first")
        present = [m for m in methods if m in wide.columns]
        if present:
            out[(ds, st, ts)] = wide[present].dropna() if complete else wide[present]
    return out


def paired_interval(a: pd.Series, b: pd.Series) -> tuple[float, float, float]:
    """Mean of a − b over their common seeds, with its t interval."""
    both = pd.concat([a, b], axis=1).dropna()
    return t_interval(both.iloc[:, 0] - both.iloc[:, 1]) if len(both) else (np.nan, np.nan, np.nan)


def rank_test(table: pd.DataFrame):
    """autorank's Friedman + Nemenyi result for a cells × methods table of accuracies, or None
    with fewer than 2 cells or methods (it needs both to rank)."""
    import autorank

    table = table.dropna()
    if table.shape[0] < 2 or table.shape[1] < 2:
        return None
    return autorank.autorank(table, alpha=1 - LEVEL, verbose=False, force_mode="nonparametric")
