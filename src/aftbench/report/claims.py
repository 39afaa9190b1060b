"""The paper's claims, tested on a sweep's runs and worded by the pipeline (claims.{md,csv,tex}).

Every row is one tested statistic (aftbench.report.inference: same-seed pairs, the seed as the unit
within a dataset, datasets as the unit across them, teacher sets as the unit of a slope) with its
95% t interval, its p value and Holm's adjustment over every tested row of the table (the claim
family). Verdicts: *supported* / *contradicted* (Holm-adjusted p < 0.05, on the claim's side or
against it), *equivalent within ±δ* (a difference in points whose TOST p, Holm-adjusted, is
< 0.05: δ is `report.equivalence_margin`), *inconclusive*, *too few runs* (below a stated minimum:
the row says which), or *not in this sweep* (the runs it needs are absent).

1. AFT beats every baseline: AFT − X in points, same seed, same cell, on pre-trained teacher sets,
   for STL and every other transfer method except AFT's own ablations; per modality (where the
   sweep has more than one) and over all datasets. P(AFT > X) over the same pairs beside it.
   Summary: supported when every baseline is, contradicted when any is.
2. A stronger teacher gives a better student: per method, the within-(dataset, student) slope of
   student accuracy on the teacher set's probe accuracy over real pre-trained sets (controls and
   noise nulls excluded: they answer claim 4), with Spearman's ρ beside it; AFT's slope minus KD's
   on the same sets; the same again on the knowledge-specific gain (set − its noise null).
3. Teachers are complementary: under AFT, a union against the best of its member sets, the best
   chosen for seed s on the *other* seeds' validation accuracy (leave one seed out; the members'
   probe accuracy where the runs were fitted on train + val), so the runs that choose are never
   the runs compared.
4. The controls: under AFT, each real teacher set against its matched noise null (`noise_of_<set>`:
   the knowledge-specific gain), against a random-init twin (compared with the strongest-probe real
   set of the same student), and against the same set with control features appended.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from aftbench.core.io import write_text
from aftbench.core.layout import NO_TEACHERS, real_set_of
from aftbench.core.roles import baseline_method, method_label, method_with_penalty, transfer_methods
from aftbench.report import inference
from aftbench.report.inference import ABSENT, CONTRADICTED, DELTA, EQUIVALENT, INCONCLUSIVE, SUPPORTED, TOO_FEW
from aftbench.report.pairs import Design, compare, in_points, paired_group

COLUMNS = [
    "claim",
    "scope",
    "statistic",
    "estimate",
    "ci_low",
    "ci_high",
    "df",
    "p",
    "p_holm",
    "p_equivalent_holm",
    "n_datasets",
    "n_cells",
    "n_seeds",
    "prob",  # P(first > second) over the same pairs (½ a tie), with its interval
    "prob_low",
    "prob_high",
    "detail",
    "verdict",
]
POINTS = "points"  # a statistic in accuracy points (the equivalence margin applies)
C1, C2, C3, C4 = (
    "1. AFT beats every baseline",
    "2. A stronger teacher gives a better student",
    "3. Teachers are complementary",
    "4. Controls",
)
__all__ = ["ABSENT", "CONTRADICTED", "EQUIVALENT", "INCONCLUSIVE", "SUPPORTED", "TOO_FEW", "claims_table"]


class _Row(dict):
    """A claims row before Holm: the Estimate it tests and whether the equivalence margin applies."""


def _row(claim, scope, statistic, est: inference.Estimate | None = None, detail="", points=False) -> _Row:
    est = est or inference.Estimate()
    lo, hi = est.interval
    row = _Row(
        claim=claim,
        scope=scope,
        statistic=statistic,
        estimate=est.estimate,
        ci_low=lo,
        ci_high=hi,
        df=est.df,
        p=est.p_value(),
        n_datasets=est.n_datasets,
        n_cells=est.n_cells,
        n_seeds=est.n_seeds,
        **dict(zip(["prob", "prob_low", "prob_high"], est.extra.get("prob", (np.nan,) * 3), strict=True)),
        detail="; ".join(filter(None, [detail, est.too_few])),
    )
    row.est, row.points = est, points
    return row


def _summary(claim, scope, statistic, n_cells=0, verdict=ABSENT) -> _Row:
    row = _row(claim, scope, statistic)
    row.update(n_cells=n_cells, verdict=verdict)
    row.fixed = True
    return row


# -- the claims -----------------------------------------------------------------------------------


def aft_beats_baselines(d: Design, aft: str | None) -> list[_Row]:
    runs = d.runs
    base = baseline_method(runs)
    others = [
        m for m in transfer_methods(runs) if runs[runs.method == m].penalty.iloc[0] not in ("aft", "aft_nokernel")
    ]
    baselines = ([base] if base else []) + others
    if aft is None or not baselines:
        return [_summary(C1, "all", "AFT − baseline (points)")]
    modality = runs.drop_duplicates("dataset").set_index("dataset").modality
    aft_cells = d.sets_of(aft, real=True)
    modalities = sorted({modality[ds] for ds, _ in aft_cells})
    scopes = (modalities if len(modalities) > 1 else []) + ["all"]
    rows = []
    for scope in scopes:
        verdict_rows = []
        for b in baselines:
            groups = []
            for (ds, st), sets in sorted(aft_cells.items()):
                if scope != "all" and modality[ds] != scope:
                    continue
                cells = {}
                for ts in sorted(sets):
                    key_b = (ds, st, b, NO_TEACHERS if b == base else ts)
                    if key_b in d.real_arms:
                        cells[ts] = (d.real_arms[(ds, st, aft, ts)], d.real_arms[key_b])
                if cells:
                    groups.append(paired_group(ds, st, cells))
            stat = f"{method_label(aft)} − {method_label(b)} ({POINTS})"
            if not groups:
                rows.append(_summary(C1, scope, stat))
                continue
            est, detail = compare(groups, method_label(aft), method_label(b))
            row = _row(C1, scope, stat, in_points(est), detail, points=True)
            rows.append(row)
            verdict_rows.append(row)
        summary = _summary(
            C1, scope, "every baseline (summary)", n_cells=max([r["n_cells"] for r in verdict_rows] or [0])
        )
        summary.members = verdict_rows
        rows.append(summary)
    return rows


def knowledge_tables(d: Design, methods: list[str]) -> dict[tuple, pd.DataFrame]:
    """Per (dataset, student, real teacher set with a noise null): a seeds × methods frame of the
    knowledge-specific gain, accuracy with the set − with its null (aftbench.report.knowledge), on
    the seeds both arms have."""
    out = {}
    for ds, st, m, null in d.arms:
        ts = real_set_of(null)
        if ts is None or m not in methods or (ds, st, m, ts) not in d.arms:
            continue
        a, b = d.arms[(ds, st, m, ts)].test_acc, d.arms[(ds, st, m, null)].test_acc
        seeds = a.index.intersection(b.index)
        out.setdefault((ds, st, ts), {})[m] = a[seeds] - b[seeds]
    return {k: pd.DataFrame(v).dropna() for k, v in out.items()}


def _ladder_tables(d: Design, methods) -> dict[tuple, pd.DataFrame]:
    """Per (dataset, student, real pre-trained teacher set): a seeds × methods frame of accuracy."""
    cells = {}
    for (ds, st, m, ts), arm in d.real_arms.items():
        if ts != NO_TEACHERS and m in methods:
            cells.setdefault((ds, st, ts), {})[m] = arm.test_acc
    return {k: pd.DataFrame(v) for k, v in cells.items()}


def stronger_teacher(d: Design, aft: str | None) -> list[_Row]:
    """Claim 2 on two outcomes: the student's accuracy, and its knowledge-specific gain (set −
    its noise null: what the teacher's knowledge adds, net of the regularisation noise gives)."""
    methods = transfer_methods(d.runs)
    if aft is None or not methods:
        return [_summary(C2, "all", "slope of student on probe accuracy")]
    rows = _strength_rows(d, methods, aft, _ladder_tables(d, methods), "")
    gains = {k: v for k, v in knowledge_tables(d, methods).items() if d.is_real(k[2])}
    if gains:
        rows += _strength_rows(d, methods, aft, gains, " · knowledge gain")
    else:
        rows.append(_summary(C2, "knowledge-specific gain", "slope (needs teacher sets with noise nulls)"))
    return rows


def _strength_rows(d: Design, methods, aft, tables, suffix: str) -> list[_Row]:
    """Per method: the slope over teacher sets (the unit) of the per-cell mean of `tables`
    (accuracy, or the knowledge-specific gain) on probe accuracy; AFT − KD on the same sets."""
    outcome = "knowledge-specific gain (set − noise null)" if suffix else "student acc."
    stat = f"slope of {outcome} on probe accuracy (points per point)"
    points: dict[str, list] = {}
    for (ds, st, ts), t in tables.items():
        if (ds, ts) in d.probe.index:
            for m in t:
                points.setdefault(m, []).append((ds, st, ts, d.probe[(ds, ts)], t[m].mean()))
    if inference.slope_estimate(points.get(aft, [])).n_cells == 0:  # no student with a ladder
        need = f"; needs a student trained on ≥ {inference.MIN_LADDER} pre-trained teacher sets (a ladder)"
        return [_summary(C2, "all" + suffix, stat + need)]
    rows = []
    for m in methods:
        if m in points:
            est = inference.slope_estimate(points[m])
            rho = est.extra.get("rho", np.nan)
            detail = "" if np.isnan(rho) else f"Spearman ρ = {rho:.2f}"
            rows.append(_row(C2, method_label(m) + suffix, stat, est, detail))
    kd = method_with_penalty(d.runs, "kd")
    if kd in points and kd != aft:  # the same sets, paired: the slope of the cell-mean difference
        diff = []
        for (ds, st, ts), t in tables.items():
            if aft in t and kd in t and (ds, ts) in d.probe.index:
                both = (t[aft] - t[kd]).dropna()
                if len(both):
                    diff.append((ds, st, ts, d.probe[(ds, ts)], both.mean()))
        est = inference.slope_estimate(diff)
        rows.append(_row(C2, "AFT vs KD" + suffix, f"slope {method_label(aft)} − slope {method_label(kd)}", est))
    return rows


def _best_member_by_seed(d: Design, ds, st, aft, parts: list[str], seeds) -> pd.DataFrame:
    """For each seed s, the run of the member set that is best on validation over the *other*
    seeds (leave one seed out); on the members' probe accuracy where no run has a validation
    accuracy (fitted on train + val). The runs compared are never the runs that chose."""
    frames = {p: d.arms[(ds, st, aft, p)] for p in parts}
    val = {p: f.val_acc.astype(float) for p, f in frames.items()}
    rows = {}
    for s in seeds:
        if any(s not in f.index for f in frames.values()):
            continue
        score = {p: float(v.drop(index=s).mean()) for p, v in val.items()}  # NaN where no other seed has one
        if all(np.isnan(v) for v in score.values()):
            score = {p: float(d.probe.get((ds, p), np.nan)) for p in parts}
        if all(np.isnan(v) for v in score.values()):
            continue
        best = max(parts, key=lambda p: (-np.inf if np.isnan(score[p]) else score[p], p))
        rows[s] = frames[best].loc[s]
    return pd.DataFrame(rows).T


def complementary(d: Design, aft: str | None) -> list[_Row]:
    stat = f"union − best member set (AFT, {POINTS})"
    if aft is None:
        return [_summary(C3, "all", stat)]
    sets_of = d.sets_of(aft)
    groups = []
    for (ds, st), sets in sorted(sets_of.items()):
        cells = {}
        for u in sorted(sets):
            parts = sorted(s for s in sets if s != u and d.members[s] < d.members[u])
            if len(parts) < 2 or set().union(*(d.members[s] for s in parts)) != d.members[u]:
                continue
            union = d.arms[(ds, st, aft, u)]
            best = _best_member_by_seed(d, ds, st, aft, parts, union.index)
            if len(best):
                best["test_acc"] = best.test_acc.astype(float)
                cells[u] = (union, best)
        if cells:
            groups.append(paired_group(ds, st, cells))
    if not groups:
        return [_summary(C3, "all", stat)]
    est, detail = compare(groups, "union", "best member")
    return [_row(C3, "all", stat, in_points(est), detail + "; best member chosen leaving the compared seed out", True)]


def controls(d: Design, aft: str | None) -> list[_Row]:
    stats = {
        "null": f"real − its matched noise null: the knowledge-specific gain (AFT, {POINTS})",
        "twin": f"real − random-init twin (AFT, {POINTS})",
        "noisy": f"real − real with control features appended (AFT, {POINTS})",
    }
    if aft is None:
        return [_summary(C4, "all", s) for s in stats.values()]
    sets_of = d.sets_of(aft)
    found = {k: [] for k in stats}
    for (ds, st), sets in sorted(sets_of.items()):
        real = sorted(s for s in sets if d.is_real(s))
        cells = {k: {} for k in stats}
        arm = lambda ts, ds=ds, st=st: d.arms[(ds, st, aft, ts)]  # noqa: E731
        for c in sorted(s for s in sets if s != NO_TEACHERS and not d.is_real(s)):
            if real_set_of(c) is not None:  # a matched noise null: against exactly its own set
                if real_set_of(c) in sets:
                    cells["null"][c] = (arm(real_set_of(c)), arm(c))
                continue
            appended = [r for r in real if d.members[r] < d.members[c]]
            if appended:
                cells["noisy"][c] = (arm(max(appended, key=lambda r: (len(d.members[r]), r))), arm(c))
            elif real:
                cells["twin"][c] = (arm(max(real, key=lambda r: d.probe.get((ds, r), -1.0))), arm(c))
        for k, cs in cells.items():
            if cs:
                found[k].append(paired_group(ds, st, cs))
    rows = []
    for k, stat in stats.items():
        if not found[k]:
            rows.append(_summary(C4, "all", stat))
            continue
        est, detail = compare(found[k], "real", {"null": "null", "twin": "twin", "noisy": "appended"}[k])
        rows.append(_row(C4, "all", stat, in_points(est), detail, points=True))
    return rows


def claims_table(runs: pd.DataFrame, delta: float = DELTA) -> pd.DataFrame:
    """Every claim's rows, the tested ones adjusted together (Holm) and given their verdicts.
    `delta`: the equivalence margin in points."""
    d = Design(runs)
    aft = method_with_penalty(runs, "aft")
    rows = aft_beats_baselines(d, aft) + stronger_teacher(d, aft) + complementary(d, aft) + controls(d, aft)
    tested = [r for r in rows if not getattr(r, "fixed", False)]
    p_adj = inference.holm([r["p"] for r in tested])
    p_eq = inference.holm([r.est.p_equivalent(delta) if r.points else np.nan for r in tested])
    for r, pa, pe in zip(tested, p_adj, p_eq, strict=True):
        r.update(p_holm=pa, p_equivalent_holm=pe, verdict=inference.decide(r["estimate"], pa, pe, r.est.too_few))
    for r in rows:  # summaries: every member supported -> supported; any contradicted -> contradicted
        if getattr(r, "members", None) is not None:
            vs = [m["verdict"] for m in r.members]
            r["verdict"] = (
                ABSENT
                if not vs
                else CONTRADICTED
                if CONTRADICTED in vs
                else SUPPORTED
                if all(v == SUPPORTED for v in vs)
                else EQUIVALENT
                if all(v == EQUIVALENT for v in vs)
                else INCONCLUSIVE
            )
    return pd.DataFrame([{c: r.get(c, np.nan) for c in COLUMNS} for r in rows], columns=COLUMNS)


def _num(v) -> str:
    return "–" if v is None or (isinstance(v, float) and np.isnan(v)) else f"{v:.3g}"


def _p(v) -> str:
    return "–" if v is None or (isinstance(v, float) and np.isnan(v)) else f"{v:.2g}"


def render(table: pd.DataFrame) -> pd.DataFrame:
    def scope(s, n):
        return f"{s} ({n} dataset)" if n == 1 else s

    return pd.DataFrame(
        {
            "claim": table.claim,
            "scope": [scope(s, n) for s, n in zip(table.scope, table.n_datasets, strict=True)],
            "statistic": table.statistic,
            "estimate [95% CI]": [
                "–" if np.isnan(e) else f"{_num(e)}" + ("" if np.isnan(lo) else f" [{_num(lo)}, {_num(hi)}]")
                for e, lo, hi in zip(table.estimate, table.ci_low, table.ci_high, strict=True)
            ],
            "p (Holm)": [_p(p) for p in table.p_holm],
            "datasets / cells / seeds": [
                "–" if not s else f"{d} / {c} / {s}"
                for d, c, s in zip(table.n_datasets, table.n_cells, table.n_seeds, strict=True)
            ],
            "verdict": table.verdict,
            "detail": table.detail.fillna(""),
        }
    )


def caption(delta: float = DELTA) -> str:
    return (
        "The paper's claims on this sweep's runs, tested by aftbench (aftbench.report.claims, "
        "aftbench.report.inference). Differences are same-seed pairs in accuracy points. Unit of "
        "resampling: the seed within a (dataset, student), so cells that share STL runs share a unit; "
        "datasets across datasets (t over dataset means); teacher sets for slopes (t over residuals). "
        f"Intervals: 95% Student-t. p: two-sided t test, Holm-adjusted over every tested row. Minimums: "
        f"{inference.MIN_SEEDS} paired seeds per cell, {inference.MIN_DATASETS} datasets per aggregate, "
        f"{inference.MIN_LADDER} real teacher sets per student and {inference.MIN_SLOPE_DF} residual df per "
        f"slope. Verdicts: supported / contradicted (Holm p < 0.05), equivalent within ±{delta:g} points "
        "(TOST, Holm), inconclusive, too few runs, not in this sweep. β of every run was chosen on "
        "validation; the test split chose nothing."
    )


def write_claims(runs: pd.DataFrame, out_dir, delta: float = DELTA, not_drawn: dict | None = None) -> pd.DataFrame:
    """claims.{csv,md,tex}; `not_drawn`: figure -> why this sweep cannot support it (listed in
    claims.md in place of the figure)."""
    from pathlib import Path

    from aftbench.core.io import atomic_path

    out = Path(out_dir) / "tables"
    table = claims_table(runs, delta)
    with atomic_path(out / "claims.csv") as tmp:
        table.to_csv(tmp, index=False)
    shown = render(table)
    cap = caption(delta)
    gaps = "".join(f"- `{f}.png`: {why}\n" for f, why in (not_drawn or {}).items())
    gaps = f"\n## Figures this sweep cannot support (not drawn)\n\n{gaps}" if gaps else ""
    write_text(out / "claims.md", f"# Claims\n\n{cap}\n\n" + shown.to_markdown(index=False) + "\n" + gaps)
    tex = shown.to_latex(index=False, caption=cap.replace("%", r"\%").replace("×", r"$\times$"), label="tab:claims")
    write_text(out / "claims.tex", tex.replace("≥", r"$\geq$").replace("−", "-").replace("±", r"$\pm$"))
    return table
