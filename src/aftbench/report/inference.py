"""The inference behind every verdict: paired tests at the unit that was randomised, intervals for
exactly the printed estimator, stated minimums, an equivalence outcome, and Holm's control of the
family-wise error over a report's claims.

The design of a sweep: within a (dataset, student) *group* the randomised unit is the **seed**.
Seed s of every arm trains from the same split, initialisation and batches, and the arms of one
seed share runs (STL's seed-s run is the baseline of every teacher-set cell of that student). So
a comparison is a seeds × cells table of **same-seed paired differences** per group, and a group's
estimate is the mean over seeds of the seed's mean over cells, with a Student-t interval over those
seed means: whatever the cells share within a seed stays inside one unit, and the t interval has
its nominal coverage at 3–5 seeds where a percentile bootstrap of so few does not (issue 28: 11%
false verdicts at 5 seeds against 5% for t). Where every run of a comparison saved its per-example
test predictions, the test set's own sampling variance is added (paired over examples, as in
McNemar's test), with a Welch–Satterthwaite df.
- One dataset: the mean over its students (groups are independent: different models and seeds).
- Several datasets: datasets are the unit. The estimate is the mean of the dataset estimates, its
  interval a t interval over them (df = datasets − 1), so one dataset cannot carry an aggregate.
- Claim 2's slope: the teacher set of a dataset is the unit (the students of a dataset share a
  set's probe and effect: averaged into one unit). Cell means (over seeds) against the set's probe
  accuracy, centred per dataset; the pooled slope's t interval comes from the residuals across
  teacher sets (df = sets − datasets − 1), so teacher-set effects unrelated to the probe widen it
  instead of being averaged away as seed noise.

Written on top of scipy.stats (t distribution) and statsmodels (Holm): a design-aware bootstrap
would need the same hierarchy written out, and under-covers at the seed counts sweeps have.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from aftbench.report.stats import LEVEL  # every interval; the verdicts' family-wise error rate is 1 − LEVEL

ALPHA = 1 - LEVEL
MIN_SEEDS = 3  # paired seeds a cell needs to enter a test (a t interval over 2 seeds has df 1)
MIN_LADDER = 3  # real (pre-trained, non-null) teacher sets a (dataset, student) needs for a slope
MIN_SLOPE_DF = 2  # residual degrees of freedom a slope's verdict needs (teacher sets − datasets − 1)
MIN_DATASETS = 2  # datasets an aggregate over datasets needs (its t interval has df = datasets − 1)
DELTA = 0.5  # default equivalence margin, accuracy points (config: report.equivalence_margin)

SUPPORTED, CONTRADICTED, INCONCLUSIVE = "supported", "contradicted", "inconclusive"
EQUIVALENT, TOO_FEW, ABSENT = "equivalent within ±δ", "too few runs", "not in this sweep"


@dataclass
class Estimate:
    """A tested statistic: the estimate, its standard error and t degrees of freedom (se 0: every
    unit agrees exactly), the sample it rests on, and why it cannot be tested where it cannot."""

    estimate: float = np.nan
    se: float = np.nan
    df: float = np.nan
    n_datasets: int = 0
    n_cells: int = 0
    n_seeds: int = 0  # paired seeds, summed over groups (each group's seeds are distinct runs)
    too_few: str = ""  # why the sample is below a stated minimum ('' when it is not)
    test_variance: bool = False  # whether per-example test-set variance is in `se`
    extra: dict = field(default_factory=dict)

    @property
    def interval(self) -> tuple[float, float]:
        from scipy import stats

        if np.isnan(self.se) or np.isnan(self.df):
            return np.nan, np.nan
        h = float(stats.t.ppf(1 - ALPHA / 2, self.df)) * self.se if self.se > 0 else 0.0
        return self.estimate - h, self.estimate + h

    def p_value(self, null: float = 0.0) -> float:
        """Two-sided t test of estimate = null."""
        from scipy import stats

        if np.isnan(self.se) or np.isnan(self.df) or self.too_few:
            return np.nan
        if self.se == 0:
            return 0.0 if self.estimate != null else 1.0
        return float(2 * stats.t.sf(abs(self.estimate - null) / self.se, self.df))

    def p_equivalent(self, delta: float) -> float:
        """TOST: the larger of the one-sided p values of estimate ≤ −δ and estimate ≥ +δ."""
        from scipy import stats

        if np.isnan(self.se) or np.isnan(self.df) or self.too_few or delta <= 0:
            return np.nan
        if self.se == 0:
            return 0.0 if abs(self.estimate) < delta else 1.0
        lower = stats.t.sf((self.estimate + delta) / self.se, self.df)
        upper = stats.t.cdf((self.estimate - delta) / self.se, self.df)
        return float(max(lower, upper))


@dataclass
class Group:
    """One (dataset, student): a seeds × cells frame of same-seed paired differences (first arm −
    second, fractions of accuracy), and optionally the per-example mean of the paired difference of
    correctness over those runs (its variance over examples is the test set's)."""

    dataset: str
    student: str
    diffs: pd.DataFrame
    examples: np.ndarray | None = None


def _satterthwaite(variances: list[float], dfs: list[float]) -> float:
    num = sum(variances) ** 2
    if num == 0:  # every unit agrees exactly: the df of the least replicated part
        return float(min(dfs))
    den = sum(v * v / d for v, d in zip(variances, dfs, strict=True) if np.isfinite(d) and d > 0)
    return float(num / den) if den > 0 else np.inf if num > 0 else np.nan


def _group_estimate(g: Group, indicator: bool) -> tuple[float, float, float, int, int] | None:
    """(mean, variance of the mean, df, seeds, cells) of one group, or None below MIN_SEEDS."""
    arr = g.diffs.to_numpy(float)
    if arr.size == 0:
        return None
    arr = arr[:, (~np.isnan(arr)).sum(axis=0) >= MIN_SEEDS]
    if arr.shape[1] == 0:
        return None
    if indicator:  # P(A > B): ½ for a tie, per (seed, cell)
        arr = np.where(np.isnan(arr), np.nan, (arr > 0) + 0.5 * (arr == 0))
    arr = arr[~np.isnan(arr).all(axis=1)]
    per_seed = np.nanmean(arr, axis=1)
    n, n_cells = len(per_seed), arr.shape[1]
    if n < MIN_SEEDS:
        return None
    var = float(per_seed.var(ddof=1)) / n
    dfs, parts = [n - 1], [var]
    if g.examples is not None and not indicator and len(g.examples) > 1:
        parts.append(float(np.var(g.examples, ddof=1)) / len(g.examples))
        dfs.append(np.inf)
    return float(per_seed.mean()), sum(parts), _satterthwaite(parts, dfs), n, n_cells


def paired_estimate(groups: list[Group], indicator: bool = False) -> Estimate:
    """The design's estimate of a paired comparison (module doc): per group a t over seed means,
    per dataset the mean over its students, across datasets a t over dataset means.
    `indicator`: the same for P(first > second) (½ for a tie) instead of the difference."""
    per_dataset: dict[str, list] = {}
    for g in groups:
        r = _group_estimate(g, indicator)
        if r is not None:
            per_dataset.setdefault(g.dataset, []).append(r)
    n_cells = sum(r[4] for rs in per_dataset.values() for r in rs)
    n_seeds = sum(r[3] for rs in per_dataset.values() for r in rs)
    tested = any(g.examples is not None for g in groups) and not indicator
    if not per_dataset:
        have = max((int(g.diffs.notna().sum().max()) for g in groups if g.diffs.size), default=0)
        return Estimate(too_few=f"{have} paired seed(s) per cell; a test needs ≥ {MIN_SEEDS}")
    if len(per_dataset) == 1:
        rs = next(iter(per_dataset.values()))
        k = len(rs)
        est = float(np.mean([r[0] for r in rs]))
        variances = [r[1] / k**2 for r in rs]
        df = _satterthwaite(variances, [r[2] for r in rs])
        return Estimate(est, float(np.sqrt(sum(variances))), df, 1, n_cells, n_seeds, test_variance=tested)
    means = np.array([np.mean([r[0] for r in rs]) for rs in per_dataset.values()])
    k = len(means)
    e = Estimate(float(means.mean()), float(means.std(ddof=1) / np.sqrt(k)), k - 1, k, n_cells, n_seeds)
    # across datasets the dataset means carry their own test-set noise: nothing is added
    if k < MIN_DATASETS:
        e.too_few = f"{k} dataset(s); an aggregate needs ≥ {MIN_DATASETS}"
    return e


def agreeing_units_interval(prob: Estimate) -> tuple[float, float]:
    """The interval of a probability whose every unit (seed within one dataset, else dataset)
    agrees: Clopper–Pearson for all-or-none of that many units (scipy.stats.binomtest), not the t
    interval's zero width."""
    from scipy import stats

    n = prob.n_seeds if prob.n_datasets == 1 else prob.n_datasets
    k = int(round(prob.estimate * n))
    if n == 0 or k not in (0, n):
        return prob.interval
    ci = stats.binomtest(k, n).proportion_ci(LEVEL)
    return float(ci.low), float(ci.high)


def slope_estimate(points: list[tuple[str, str, str, float, float]]) -> Estimate:
    """Pooled within-dataset slope of y on x from `points` (dataset, student, teacher set, x, y),
    with the teacher set of a dataset as the unit: each student's cell means are centred on that
    student's mean, then averaged over the students that trained on the set (every student of a
    dataset sees the same set, its probe and its effect: they are one unit, not several), then
    centred per dataset; the t interval comes from the residuals over those units."""
    from scipy import stats

    frame = pd.DataFrame(points, columns=["dataset", "student", "teacher_set", "x", "y"]).dropna()
    sizes = frame.groupby(["dataset", "student"]).teacher_set.transform("size")
    frame = frame[sizes >= MIN_LADDER]
    if frame.empty:
        return Estimate(too_few=f"no student with ≥ {MIN_LADDER} real teacher sets")
    frame = frame.assign(y=frame.y - frame.groupby(["dataset", "student"]).y.transform("mean"))
    units = frame.groupby(["dataset", "teacher_set"], as_index=False).agg(x=("x", "mean"), y=("y", "mean"))
    x = (units.x - units.groupby("dataset").x.transform("mean")).to_numpy()
    y = (units.y - units.groupby("dataset").y.transform("mean")).to_numpy()
    sxx = float((x * x).sum())
    n_groups = units.dataset.nunique()
    df = len(units) - n_groups - 1
    e = Estimate(n_datasets=n_groups, n_cells=len(units))
    if sxx == 0:
        e.too_few = "the teacher sets' probe accuracies do not vary"
        return e
    e.estimate = float((x * y).sum() / sxx)
    e.extra["rho"] = float(stats.spearmanr(x, y).statistic) if len(x) > 2 and np.ptp(y) > 0 else np.nan
    if df < MIN_SLOPE_DF:
        e.too_few = (
            f"{len(units)} teacher sets in {n_groups} dataset(s): a slope's test needs ≥ {MIN_SLOPE_DF} residual df"
        )
        return e
    resid = y - e.estimate * x
    e.se, e.df = float(np.sqrt((resid * resid).sum() / df / sxx)), df
    return e


def holm(p_values) -> np.ndarray:
    """Holm's step-down adjustment of a family of p values (statsmodels.stats.multitest); NaNs
    (untested rows) stay NaN and do not count toward the family."""
    from statsmodels.stats.multitest import multipletests

    p = np.asarray(p_values, float)
    out = np.full_like(p, np.nan)
    ok = ~np.isnan(p)
    if ok.any():
        out[ok] = multipletests(p[ok], alpha=ALPHA, method="holm")[1]
    return out


def decide(estimate: float, p_adj: float, p_eq_adj: float, too_few: str, null: float = 0.0) -> str:
    """A verdict from Holm-adjusted p values: decisive at ALPHA across the family, on the claim's
    side (estimate > null) or against it; else equivalent within ±δ (TOST, Holm-adjusted); else
    inconclusive."""
    if too_few:
        return TOO_FEW
    if np.isnan(estimate):
        return ABSENT
    if not np.isnan(p_adj) and p_adj < ALPHA:
        return SUPPORTED if estimate > null else CONTRADICTED
    if not np.isnan(p_eq_adj) and p_eq_adj < ALPHA:
        return EQUIVALENT
    return INCONCLUSIVE
