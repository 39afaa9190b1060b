"""The paper's claims, tested on a sweep's runs and worded by the pipeline (claims.{md,csv,tex}).

Each claim is a statistic with a 95% interval (aftbench.report.stats) and a verdict at that level:
*supported* (the interval lies on the claim's side), *contradicted* (it lies on the other side),
*inconclusive* (it straddles the null), or *not in this sweep* (the runs it needs are absent).

1. AFT beats every baseline: probability of improvement of AFT over each baseline (STL and every
   other transfer method except AFT's own ablations), per modality and overall, on pre-trained
   teacher sets; supported when every interval lies above ½, contradicted when any lies below.
2. A stronger teacher gives a better student: per method, the within-(dataset, student) slope of
   student accuracy against the teacher set's probe accuracy (points per point) and the Spearman
   rank correlation of the same centred values; supported for AFT when its slope's interval lies
   above 0. Also: AFT's slope minus KD's. The same again on the knowledge-specific gain (set − its
   noise null, where the sweep has nulls): whether a stronger teacher's *knowledge* adds more.
3. Teachers are complementary: under AFT, a union teacher set against the best of its member
   sets (best by validation accuracy, never test), paired by seed.
4. The controls: under AFT, each real teacher set against its matched noise null
   (`noise_of_<set>`: the knowledge-specific gain), against its random-init twin (a set of
   non-pre-trained teachers, compared with the strongest-probe real set of the same student), and
   against the same set with control features appended (noise).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from aftbench.core.io import write_text
from aftbench.core.layout import NO_TEACHERS, real_set_of
from aftbench.core.roles import PROBE, baseline_method, method_label, method_with_penalty, transfer_methods
from aftbench.report.stats import LEVEL, chosen, mean, probability_of_improvement, seed_table, stratified_bootstrap

SUPPORTED, CONTRADICTED, INCONCLUSIVE, ABSENT = "supported", "contradicted", "inconclusive", "not in this sweep"
COLUMNS = ["claim", "scope", "statistic", "estimate", "ci_low", "ci_high", "n_cells", "n_runs", "verdict"]


MIN_RUNS = 5  # paired runs a verdict needs: a bootstrap of fewer seeds cannot show its own spread


def verdict(lo: float, hi: float, null: float, n_runs: int = MIN_RUNS) -> str:
    if np.isnan(lo) or np.isnan(hi) or n_runs < MIN_RUNS:
        return INCONCLUSIVE
    return SUPPORTED if lo > null else CONTRADICTED if hi < null else INCONCLUSIVE


def _row(claim, scope, statistic, est=np.nan, lo=np.nan, hi=np.nan, cells=0, runs=0, v=ABSENT) -> dict:
    return dict(zip(COLUMNS, [claim, scope, statistic, est, lo, hi, cells, runs, v], strict=True))


def _real(runs: pd.DataFrame) -> pd.DataFrame:
    return runs[~runs.control_teacher.astype(bool)] if "control_teacher" in runs else runs


def aft_beats_baselines(runs: pd.DataFrame, aft: str | None) -> list[dict]:
    claim = "1. AFT beats every baseline"
    base = baseline_method(runs)
    others = [
        m for m in transfer_methods(runs) if runs[runs.method == m].penalty.iloc[0] not in ("aft", "aft_nokernel")
    ]
    baselines = ([base] if base else []) + others
    if aft is None or not baselines:
        return [_row(claim, "all", "P(AFT > baseline)")]
    real = _real(runs)
    rows = []
    for scope in sorted(real.modality.dropna().unique()) + ["all"]:
        sub = real if scope == "all" else real[real.modality == scope]
        tables = seed_table(sub, [aft, *baselines])
        verdicts = []
        for b in baselines:
            tasks = [t[[aft, b]] for t in tables.values() if aft in t and b in t and len(t)]
            if not tasks:
                rows.append(_row(claim, scope, f"P({method_label(aft)} > {method_label(b)})"))
                continue
            est, lo, hi = stratified_bootstrap(
                tasks, lambda ts: probability_of_improvement([t[:, 0] for t in ts], [t[:, 1] for t in ts])
            )
            v = verdict(lo, hi, 0.5, sum(map(len, tasks)))
            verdicts.append(v)
            rows.append(
                _row(
                    claim,
                    scope,
                    f"P({method_label(aft)} > {method_label(b)})",
                    est,
                    lo,
                    hi,
                    len(tasks),
                    sum(map(len, tasks)),
                    v,
                )
            )
        overall = (
            ABSENT
            if not verdicts
            else CONTRADICTED
            if CONTRADICTED in verdicts
            else SUPPORTED
            if all(v == SUPPORTED for v in verdicts)
            else INCONCLUSIVE
        )
        rows.append(_row(claim, scope, "every baseline (summary)", v=overall, cells=len(tables)))
    return rows


def _probe_acc(runs: pd.DataFrame) -> pd.Series:
    p = runs[runs.role == PROBE]
    return p.groupby(["dataset", "teacher_set"]).test_acc.mean()


def knowledge_tables(runs: pd.DataFrame, methods: list[str]) -> dict[tuple, pd.DataFrame]:
    """Per (dataset, student, real teacher set with a noise null): a seeds × methods frame of the
    knowledge-specific gain, accuracy with the set − with its null (aftbench.report.knowledge),
    on the seeds both arms have."""
    tables = seed_table(runs, methods)
    out = {}
    for (ds, st, null), t_null in tables.items():
        ts = real_set_of(null)
        if ts is None or (ds, st, ts) not in tables:
            continue
        t_set = tables[(ds, st, ts)]
        both = [m for m in methods if m in t_set and m in t_null]
        if both:
            out[(ds, st, ts)] = (t_set[both] - t_null[both]).dropna()
    return out


def strength_slopes(runs: pd.DataFrame, methods: list[str], tables: dict[tuple, pd.DataFrame] | None = None):
    """Per method: within-(dataset, student) slope of student accuracy (or of any per-cell seeds
    × methods `tables`, e.g. the knowledge-specific gain) on probe accuracy, its Spearman rank
    correlation, and the bootstrap of both; groups need ≥ 3 teacher sets."""
    from scipy import stats

    probe = _probe_acc(runs)
    tables = seed_table(runs, methods) if tables is None else tables
    groups: dict[tuple, list] = {}
    for (ds, st, ts), t in tables.items():
        if (ds, ts) in probe.index and len(t):
            groups.setdefault((ds, st), []).append((probe[(ds, ts)], t))
    groups = {k: v for k, v in groups.items() if len(v) >= 3}

    def stat(tasks_by_group, m):
        xs, ys = [], []
        for items in tasks_by_group:
            pts = [(p, t[m].mean()) for p, t in items if m in t]
            if len(pts) < 3:
                continue
            x, y = np.array(pts).T
            xs.append(x - x.mean())
            ys.append(y - y.mean())
        if not xs:
            return np.nan, np.nan
        x, y = np.concatenate(xs), np.concatenate(ys)
        slope = float((x * y).sum() / (x * x).sum()) if (x * x).sum() > 0 else np.nan
        return slope, float(stats.spearmanr(x, y).statistic)

    rng = np.random.default_rng(0)
    base = [[(p, {c: t[c].to_numpy(float) for c in t}) for p, t in g] for g in groups.values()]
    draws = {m: [] for m in methods}
    for _ in range(1000):  # one resample of every cell's seeds, shared by all methods (paired)
        sample = []
        for g in base:
            rows = []
            for p, cols in g:
                n = len(next(iter(cols.values())))
                idx = rng.integers(0, n, n)
                rows.append((p, {c: v[idx] for c, v in cols.items()}))
            sample.append(rows)
        for m in methods:
            draws[m].append(stat(sample, m))
    out = {m: (stat(base, m), np.array(draws[m])) for m in methods}
    counts = {  # per method: the cells and runs its slope rests on (groups with ≥ 3 of its teacher sets)
        m: (
            sum(len(cs) for cs in ([c for _, c in g if m in c] for g in base) if len(cs) >= 3),
            sum(len(c[m]) for cs in ([c for _, c in g if m in c] for g in base) if len(cs) >= 3 for c in cs),
        )
        for m in methods
    }
    return out, len(base), counts


def stronger_teacher(runs: pd.DataFrame, aft: str | None) -> list[dict]:
    """Claim 2 on two outcomes: the student's accuracy, and its knowledge-specific gain (set −
    its noise null: what the teacher's knowledge adds, net of the regularisation noise gives)."""
    claim = "2. A stronger teacher gives a better student"
    methods = [m for m in transfer_methods(runs)]
    if aft is None or not methods:
        return [_row(claim, "all", "slope of student on probe accuracy")]
    gains = knowledge_tables(runs, methods)
    rows = _strength_rows(runs, methods, aft, None, "student acc.")
    if gains:
        rows += _strength_rows(runs, methods, aft, gains, "knowledge-specific gain (set − noise null)")
    else:
        rows.append(_row(claim, "knowledge-specific gain", "slope (needs teacher sets with noise nulls)"))
    return rows


def _strength_rows(runs, methods, aft, tables, outcome: str) -> list[dict]:
    claim = "2. A stronger teacher gives a better student"
    suffix = "" if tables is None else " · knowledge gain"
    res, n_groups, counts = strength_slopes(runs, methods, tables)
    methods = [m for m in methods if counts[m][0] > 0]  # methods trained on a ladder of ≥ 3 teacher sets
    if n_groups == 0 or aft not in methods:
        return [
            _row(claim, "all" + suffix, f"slope of {outcome} on probe accuracy (needs ≥ 3 teacher sets per student)")
        ]
    q = [100 * (1 - LEVEL) / 2, 100 * (1 + LEVEL) / 2]
    rows = []
    for m in methods:
        (slope, rho), draws = res[m]
        lo, hi = np.nanpercentile(draws[:, 0], q)
        rlo, rhi = np.nanpercentile(draws[:, 1], q)
        n_cells, n_runs = counts[m]
        scope = method_label(m) + suffix
        stat = f"slope ({outcome} per probe acc., unitless)"
        rows.append(_row(claim, scope, stat, slope, lo, hi, n_cells, n_runs, verdict(lo, hi, 0.0, n_runs)))
        stat = "Spearman ρ (centred per student)"
        rows.append(_row(claim, scope, stat, rho, rlo, rhi, n_cells, n_runs, verdict(rlo, rhi, 0.0, n_runs)))
    kd = method_with_penalty(runs, "kd")
    if kd in methods and kd != aft:
        diff = res[aft][1][:, 0] - res[kd][1][:, 0]
        lo, hi = np.nanpercentile(diff, q)
        est = res[aft][0][0] - res[kd][0][0]
        n_cells, n_runs = min(counts[aft], counts[kd])
        stat = f"slope {method_label(aft)} − slope {method_label(kd)}"
        rows.append(_row(claim, "AFT vs KD" + suffix, stat, est, lo, hi, n_cells, n_runs, verdict(lo, hi, 0.0, n_runs)))
    return rows


def _members(runs: pd.DataFrame) -> dict[str, set]:
    return {ts: set(t.split("+")) for ts, t in zip(runs.teacher_set, runs.teachers, strict=False) if ts != NO_TEACHERS}


def _paired_claim(claim, statistic, pairs: list[pd.DataFrame]) -> dict:
    """Mean over tasks of the mean paired difference (first column − second), stratified bootstrap."""
    tasks = [p for p in pairs if len(p)]
    if not tasks:
        return _row(claim, "all", statistic)
    est, lo, hi = stratified_bootstrap(tasks, lambda ts: mean([(t[:, 0] - t[:, 1]).mean() for t in ts]))
    n = sum(map(len, tasks))
    return _row(claim, "all", statistic, est, lo, hi, len(tasks), n, verdict(lo, hi, 0.0, n))


def _pair(runs, aft, ds, st, a, b) -> pd.DataFrame:
    sel = chosen(runs)
    sel = sel[(sel.dataset == ds) & (sel.student == st) & (sel.method == aft)]
    wide = sel.pivot_table(index="seed", columns="teacher_set", values="test_acc", aggfunc="first")
    return wide[[a, b]].dropna() if a in wide and b in wide else pd.DataFrame()


def complementary(runs: pd.DataFrame, aft: str | None) -> list[dict]:
    claim = "3. Teachers are complementary"
    stat = "union − best member set (AFT, points)"
    if aft is None:
        return [_row(claim, "all", stat)]
    members = _members(runs)
    sel = chosen(runs)
    pairs = []
    for (ds, st), grp in sel[sel.method == aft].groupby(["dataset", "student"]):
        sets = set(grp.teacher_set)
        for u in sets:
            parts = [s for s in sets if s != u and members[s] < members[u]]
            if len(parts) < 2 or set().union(*(members[s] for s in parts)) != members[u]:
                continue
            val = grp[grp.teacher_set.isin(parts)].groupby("teacher_set").val_acc.mean()
            pairs.append(_pair(runs, aft, ds, st, u, val.idxmax()))
    return [_paired_claim(claim, stat, pairs)]


def controls(runs: pd.DataFrame, aft: str | None) -> list[dict]:
    claim = "4. Controls"
    null_stat, twin_stat, noise_stat = (
        "real − its matched noise null: the knowledge-specific gain (AFT, points)",
        "real − random-init twin (AFT, points)",
        "real − real with control features appended (AFT, points)",
    )
    if aft is None:
        return [_row(claim, "all", null_stat), _row(claim, "all", twin_stat), _row(claim, "all", noise_stat)]
    members = _members(runs)
    control = dict(zip(runs.teacher_set, runs.control_teacher.astype(bool), strict=False))
    probe = _probe_acc(runs)
    sel = chosen(runs)
    nulls, twins, noisy = [], [], []
    for (ds, st), grp in sel[sel.method == aft].groupby(["dataset", "student"]):
        sets = set(grp.teacher_set)
        real = [s for s in sets if not control[s]]
        for c in (s for s in sets if control[s]):
            if real_set_of(c) is not None:  # a matched noise null: against exactly its own set
                if real_set_of(c) in sets:
                    nulls.append(_pair(runs, aft, ds, st, real_set_of(c), c))
                continue
            appended = [r for r in real if members[r] < members[c]]
            if appended:
                noisy.append(_pair(runs, aft, ds, st, max(appended, key=lambda r: len(members[r])), c))
            elif real:
                best = max(real, key=lambda r: probe.get((ds, r), -1.0))
                twins.append(_pair(runs, aft, ds, st, best, c))
    return [
        _paired_claim(claim, null_stat, nulls),
        _paired_claim(claim, twin_stat, twins),
        _paired_claim(claim, noise_stat, noisy),
    ]


def claims_table(runs: pd.DataFrame) -> pd.DataFrame:
    aft = method_with_penalty(runs, "aft")
    rows = aft_beats_baselines(runs, aft) + stronger_teacher(runs, aft) + complementary(runs, aft) + controls(runs, aft)
    return pd.DataFrame(rows, columns=COLUMNS)


def _num(v, scale=1.0) -> str:
    return "–" if v is None or (isinstance(v, float) and np.isnan(v)) else f"{scale * v:.3g}"


def render(table: pd.DataFrame) -> pd.DataFrame:
    points = table.statistic.str.contains("points)", regex=False)  # differences of accuracy, shown in points
    scale = np.where(points, 100.0, 1.0)
    return pd.DataFrame(
        {
            "claim": table.claim,
            "scope": table.scope,
            "statistic": table.statistic,
            "estimate [95% CI]": [
                "–" if np.isnan(e) else f"{_num(e, s)} [{_num(lo, s)}, {_num(hi, s)}]"
                for e, lo, hi, s in zip(table.estimate, table.ci_low, table.ci_high, scale, strict=True)
            ],
            "cells": table.n_cells,
            "runs": table.n_runs,
            "verdict": table.verdict,
        }
    )


CAPTION = (
    "The paper's claims on this sweep's runs, tested by aftbench (aftbench.report.claims). Intervals: 95%; "
    "stratified bootstrap over seeds within cells (cell = dataset × student × teacher set), 2,000 "
    "resamples (1,000 for slopes). Verdicts at that level: supported / contradicted / inconclusive; "
    "'not in this sweep' where the runs a claim needs are absent. β of every run was chosen on "
    "validation; the test split chose nothing. P(X > Y): probability that X's run beats Y's on the "
    "same cell. Differences in accuracy points."
)


def write_claims(runs: pd.DataFrame, out_dir) -> pd.DataFrame:
    from pathlib import Path

    from aftbench.core.io import atomic_path

    out = Path(out_dir) / "tables"
    table = claims_table(runs)
    with atomic_path(out / "claims.csv") as tmp:
        table.to_csv(tmp, index=False)
    shown = render(table)
    write_text(out / "claims.md", f"# Claims\n\n{CAPTION}\n\n" + shown.to_markdown(index=False) + "\n")
    tex = shown.to_latex(index=False, caption=CAPTION.replace("%", r"\%").replace("×", r"$\times$"), label="tab:claims")
    write_text(out / "claims.tex", tex.replace("≥", r"$\geq$").replace("−", "-"))
    return table
