"""Uncertainty for the report: paired differences per table cell, aggregates across cells with
stratified-bootstrap confidence intervals, the probability of improvement, and rank tests.

- Paired: two methods are compared on the same (dataset, student, seed): same split, same
  initialisation seed, same batches. Per cell (dataset × student × teacher set) the mean paired
  difference gets a Student-t interval over seeds (scipy.stats.ttest_1samp): with 3–5 seeds a
  bootstrap of one cell's differences would be too coarse to mean anything.
- Across cells: the point estimate (mean, or interquartile mean: scipy.stats.trim_mean at 25%)
  over tasks = cells, with a stratified bootstrap (Agarwal et al., NeurIPS 2021): seeds are
  resampled with replacement within each task, the same draw for every method, so pairs stay
  paired. The probability of improvement of X over Y is the mean over tasks of P(X > Y) + ½ P(X = Y)
  between their seeds (scipy.stats.mannwhitneyu's U / (n·m)).
- Ranks: autorank (Friedman test, Nemenyi critical difference) over cells.

rliable computes the same estimators, but rliable 1.2.0 needs `arch < 8`, and no such arch
imports next to this project's pandas 3.1 and numpy 2.4 (arch 7.x: pandas' deprecate_kwarg
changed; 6.x: numpy binary incompatibility; arch 8 renamed the argument rliable passes), so
the stratified resampling is written here on top of scipy.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

LEVEL = 0.95  # every interval in the report
REPS = 2000  # bootstrap resamples
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


def iqm(x: np.ndarray) -> float:
    """Interquartile mean: the mean of the middle 50% of all values, trimming int(n/4) from each
    end exactly as scipy.stats.trim_mean(x, 0.25) (which costs ~1 ms a call inside a bootstrap)."""
    x = np.sort(np.asarray(x, float).ravel())
    k = int(0.25 * len(x))
    return float(x[k : len(x) - k].mean())


def mean(x: np.ndarray) -> float:
    return float(np.mean(x))


def probability_of_improvement(x: list[np.ndarray], y: list[np.ndarray]) -> float:
    """Mean over tasks of P(X > Y) + ½ P(X = Y) between task j's runs of X and of Y (the
    Mann-Whitney U statistic over n·m, computed directly: scipy.stats.mannwhitneyu gives the same
    U but costs ~1 ms a call, too slow inside a bootstrap)."""
    return float(
        np.mean(
            [((a[:, None] > b[None, :]) + 0.5 * (a[:, None] == b[None, :])).mean() for a, b in zip(x, y, strict=True)]
        )
    )


def stratified_bootstrap(tasks: list, func, reps: int = REPS, seed: int = 0) -> tuple[float, float, float]:
    """`func(tasks)` on the data and its percentile 95% interval when each task's rows (seeds) are
    resampled with replacement, the same rows for every column. `tasks`: one seeds × methods
    array (or frame, converted once) per task."""
    rng = np.random.default_rng(seed)
    arrays = [np.asarray(t, float) for t in tasks]
    point = func(arrays)
    draws = [func([a[rng.integers(0, len(a), len(a))] for a in arrays]) for _ in range(reps)]
    lo, hi = np.nanpercentile(draws, [100 * (1 - LEVEL) / 2, 100 * (1 + LEVEL) / 2])
    return float(point), float(lo), float(hi)


def chosen(runs: pd.DataFrame) -> pd.DataFrame:
    """The runs a result rests on: β selected on validation, not diverged."""
    keep = runs.selected.astype(bool)
    if "diverged" in runs:
        keep &= ~runs.diverged.astype(bool)
    return runs[keep]


def seed_table(runs: pd.DataFrame, methods: list[str], value: str = "test_acc") -> dict[tuple, pd.DataFrame]:
    """Per (dataset, student, teacher set): a seeds × methods frame of `value`, the baseline
    (teacher set `none`) joined on (dataset, student, seed), complete seeds only."""
    from aftbench.core.layout import NO_TEACHERS

    sel = chosen(runs)
    base = sel[sel.teacher_set == NO_TEACHERS]
    out = {}
    for (ds, st, ts), grp in sel[sel.teacher_set != NO_TEACHERS].groupby(CELL, sort=True):
        parts = [grp, base[(base.dataset == ds) & (base.student == st)]]
        wide = pd.concat(parts).pivot_table(index="seed", columns="method", values=value, aggfunc="first")
        present = [m for m in methods if m in wide.columns]
        if present:
            out[(ds, st, ts)] = wide[present].dropna()
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
