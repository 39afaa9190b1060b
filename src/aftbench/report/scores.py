"""Which teachers: the report's view of the transferability scores (aftbench.selection.transferability).

- `teacher_scores`: every score of every scored (dataset, teacher set), and what each adaptive
  block selected from them (tables/teacher_scores.{md,csv}, figures/teacher_scores.png).
- `score_vs_student`: does a score predict what a student then reaches? For every (dataset,
  student, method) trained on ≥ 3 scored teacher sets, the Kendall τ-b and Spearman ρ between the
  score and the students' test accuracy (mean over seeds, β chosen on validation), and the regret
  of training only the top-k sets by score (best accuracy over every set − best among the top k,
  in points). Pooled over cells by their mean; 95% percentile intervals from resampling each
  teacher set's seeds (2,000 resamples). The interval reflects seed noise in the outcomes, not
  which teacher sets happened to be in the sweep (tables/score_vs_student.{md,csv},
  figures/score_vs_student.png).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from aftbench.core.io import atomic_path, read_json, write_text
from aftbench.core.layout import SCORE_FIGURES
from aftbench.core.roles import BASELINE, method_label, method_order
from aftbench.report.plots import PALETTE, placeholder, pyplot, save_png
from aftbench.report.stats import LEVEL, REPS, chosen
from aftbench.selection.transferability import SCORE_LABELS, SCORE_NAMES

MIN_SETS = 3  # teacher sets per (dataset, student, method) for a rank correlation
REGRET_K = (1, 2)


def score_frame(paths: list[str]) -> pd.DataFrame:
    rows = []
    for p in paths:
        r = read_json(p)
        rows.append(
            {
                "dataset": r["dataset"],
                "teacher_set": r["teacher_set"],
                "teachers": "+".join(r["teachers"]),
                "control_teacher": not all(r.get("teachers_pretrained") or [True]),
                **{s: r["scores"][s] for s in SCORE_NAMES},
                "n_examples": r["n_examples"],
                "seconds": r.get("total_seconds"),
            }
        )
    cols = ["dataset", "teacher_set", "teachers", "control_teacher", *SCORE_NAMES, "n_examples", "seconds"]
    return pd.DataFrame(rows, columns=cols).sort_values(["dataset", "teacher_set"]).reset_index(drop=True)


def selection_records(paths: list[str]) -> list[dict]:
    return [read_json(p) for p in paths]


# ----------------------------------------------------------------------------- rank statistics
def kendall_tau_b(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Kendall's τ-b of x (n,) with each row of y (B × n), as scipy.stats.kendalltau (variant b);
    NaN where either side is constant."""
    i, j = np.triu_indices(len(x), 1)
    sx = np.sign(x[i] - x[j])
    sy = np.sign(y[:, i] - y[:, j])
    n0 = len(i)
    tx, ty = (sx == 0).sum(), (sy == 0).sum(axis=1)
    denom = np.sqrt((n0 - tx) * (n0 - ty).astype(float))
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(denom > 0, (sx * sy).sum(axis=1) / np.where(denom > 0, denom, 1), np.nan)


def spearman_rho(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Spearman's ρ (average ranks for ties) of x (n,) with each row of y (B × n)."""
    from scipy.stats import rankdata

    rx = rankdata(x) - (len(x) + 1) / 2
    ry = rankdata(y, axis=1) - (len(x) + 1) / 2
    denom = np.sqrt((rx**2).sum() * (ry**2).sum(axis=1))
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(denom > 0, (ry * rx).sum(axis=1) / np.where(denom > 0, denom, 1), np.nan)


def top_k_regret(x: np.ndarray, y: np.ndarray, k: int) -> np.ndarray:
    """Best of each row of y minus the best among the k largest x (ties: the earlier set)."""
    top = np.argsort(-x, kind="stable")[:k]
    return y.max(axis=1) - y[:, top].max(axis=1)


# ----------------------------------------------------------------------------- the outcome cells
def outcome_cells(runs: pd.DataFrame, scores: pd.DataFrame) -> dict[tuple, list[tuple[str, np.ndarray]]]:
    """(dataset, student, method) -> [(teacher set, its seeds' test accuracies)], for every method
    with teachers (transfer methods and probes) trained on ≥ MIN_SETS scored teacher sets."""
    scored = set(zip(scores.dataset, scores.teacher_set, strict=True))
    sel = chosen(runs)
    sel = sel[(sel.role != BASELINE) & sel.test_acc.notna()]
    out = {}
    for (ds, st, m), grp in sel.groupby(["dataset", "student", "method"], sort=True):
        sets = [
            (ts, g.sort_values("seed").test_acc.to_numpy(float))
            for ts, g in grp.groupby("teacher_set", sort=True)
            if (ds, ts) in scored
        ]
        if len(sets) >= MIN_SETS:
            out[(ds, st, m)] = sets
    return out


def _cell_stats(x: np.ndarray, means: np.ndarray) -> dict[str, np.ndarray]:
    out = {"kendall": kendall_tau_b(x, means), "spearman": spearman_rho(x, means)}
    for k in REGRET_K:
        if k < len(x):
            out[f"regret@{k}"] = 100 * top_k_regret(x, means, k)
    return out


def prediction_table(runs: pd.DataFrame, scores: pd.DataFrame, reps: int = REPS, seed: int = 0) -> pd.DataFrame:
    """One row per (method, score, scope): scope `all` pools every (dataset, student) cell of the
    method (mean over cells), and each cell has its own row. Columns: estimate and interval of
    each statistic (τ, ρ, regret@k in points), cells and teacher sets it rests on."""
    cells = outcome_cells(runs, scores)
    if not cells:
        return pd.DataFrame(
            columns=["method", "score", "scope", "cells", "sets", "stat", "estimate", "ci_low", "ci_high"]
        )
    rng = np.random.default_rng(seed)
    lookup = scores.set_index(["dataset", "teacher_set"])
    q = [100 * (1 - LEVEL) / 2, 100 * (1 + LEVEL) / 2]
    rows = []
    for m in dict.fromkeys(k[2] for k in cells):
        mine = {k: v for k, v in cells.items() if k[2] == m}
        # one resample of every teacher set's seeds per draw, shared by every score (paired)
        point, draws = {}, {}
        for key, sets in mine.items():
            point[key] = np.array([[a.mean() for _, a in sets]])
            draws[key] = np.stack([a[rng.integers(0, len(a), (reps, len(a)))].mean(axis=1) for _, a in sets], axis=1)
        for s in SCORE_NAMES:
            per_cell_point, per_cell_draw = {}, {}
            for key, sets in mine.items():
                x = np.array([lookup.loc[(key[0], ts), s] for ts, _ in sets], float)
                per_cell_point[key] = _cell_stats(x, point[key])
                per_cell_draw[key] = _cell_stats(x, draws[key])
            stats_names = list(dict.fromkeys(n for d in per_cell_point.values() for n in d))
            scopes = [("all", list(mine))] + [(f"{k[0]} / {k[1]}", [k]) for k in mine]
            for scope, keys in scopes:
                for n in stats_names:
                    have = [k for k in keys if n in per_cell_point[k]]
                    if not have:
                        continue
                    est = np.nanmean([per_cell_point[k][n][0] for k in have])
                    dist = np.nanmean(np.stack([per_cell_draw[k][n] for k in have]), axis=0)
                    one_seed = all(len(a) == 1 for k in have for _, a in mine[k])  # probes: nothing to resample
                    ok = np.isfinite(dist).any() and not one_seed
                    lo, hi = np.nanpercentile(dist, q) if ok else (np.nan, np.nan)
                    rows.append(
                        {
                            "method": m,
                            "score": s,
                            "scope": scope,
                            "cells": len(have),
                            "sets": sum(len(mine[k]) for k in have),
                            "stat": n,
                            "estimate": float(est),
                            "ci_low": float(lo),
                            "ci_high": float(hi),
                        }
                    )
    return pd.DataFrame(rows)


# ----------------------------------------------------------------------------- tables
def _selected_by(scores: pd.DataFrame, selections: list[dict]) -> list[str]:
    out = []
    for ds, ts in zip(scores.dataset, scores.teacher_set, strict=True):
        marks = [
            f"{r['by']} top-{r['top_k']} (#{r['ranking'].index(ts) + 1})"
            if ts in r["selected"]
            else f"{r['by']}: the union of the top {r['top_k']}"
            for r in selections
            if r["dataset"] == ds and ts in _trained(r)
        ]
        out.append("; ".join(marks))
    return out


def _trained(selection: dict) -> list[str]:
    """The sets a selection trains on: the top k and the union it added."""
    return selection["trained"]


def _fmt(e, lo, hi) -> str:
    if not np.isfinite(e):
        return "–"
    return f"{e:.2f} [{lo:.2f}, {hi:.2f}]" if np.isfinite(lo) else f"{e:.2f}"


def render_prediction(table: pd.DataFrame, runs: pd.DataFrame) -> pd.DataFrame:
    if table.empty:
        return pd.DataFrame()
    order = {m: i for i, m in enumerate(method_order(runs))}
    wide = []
    for (m, s, scope), g in table.groupby(["method", "score", "scope"], sort=False):
        row = {
            "method": method_label(m),
            "score": s,
            "scope": scope,
            "cells": int(g.cells.max()),
            "sets": int(g.sets.max()),
        }
        for _, r in g.iterrows():
            label = {"kendall": "Kendall τ", "spearman": "Spearman ρ"}.get(r.stat, f"{r.stat} (points)")
            row[label] = _fmt(r.estimate, r.ci_low, r.ci_high)
        row["_order"] = (order.get(m, 99), scope != "all", scope, SCORE_NAMES.index(s))
        wide.append(row)
    out = pd.DataFrame(wide).sort_values("_order").drop(columns="_order")
    return out.fillna("–")


PERCENT_SCORES = ("probe", "knn")  # the scores that are accuracies: shown in percent

SCORES_CAPTION = (
    "Transferability scores per (dataset, teacher set), from the training split only "
    "(aftbench.selection.transferability): probe and kNN accuracy (%) on a held-out fifth of it, LogME "
    "(evidence per example), H-score (Ledoit-Wolf covariance), kernel alignment of the features' "
    "linear kernel with the label kernel. Higher is better for each. Control: a teacher set holding "
    "a teacher that is not pre-trained."
)
PREDICTION_CAPTION = (
    "Does a score predict the student? Per method and score: rank correlation (Kendall τ-b, "
    "Spearman ρ) between the score and the students' test accuracy (mean over seeds, β chosen on "
    "validation) across the teacher sets of each (dataset, student), needing ≥ 3 scored sets; "
    "regret@k: best accuracy over every trained set − best among the top k by score, in points. "
    "`all`: mean over cells. 95% percentile intervals from 2,000 resamples of each set's seeds "
    "(seed noise of the outcomes only; the teacher sets themselves are not resampled); a probe has "
    "one deterministic run per set, so its rows have no interval."
)


def write_score_tables(runs: pd.DataFrame, scores: pd.DataFrame, selections: list[dict], out_dir) -> pd.DataFrame:
    out = Path(out_dir) / "tables"
    shown = scores.drop(columns=["seconds"]).assign(selected_by=_selected_by(scores, selections))
    with atomic_path(out / "teacher_scores.csv") as tmp:
        shown.to_csv(tmp, index=False)
    md = f"# Teacher scores\n\n{SCORES_CAPTION}\n\n"
    if shown.empty:
        md += "No teacher set was scored in this sweep.\n"
    else:
        # accuracies in percent, as in every other table of the report
        fmt = shown.assign(**{s: shown[s].map("{:.4g}".format) for s in SCORE_NAMES})
        fmt = fmt.assign(**{s: (100 * shown[s]).map("{:.1f}".format) for s in PERCENT_SCORES})
        fmt = fmt.rename(columns={s: f"{s} (%)" for s in PERCENT_SCORES})
        md += fmt.to_markdown(index=False) + "\n"
    for r in selections:
        skipped = [c for c in r["candidates"] if c not in _trained(r)]
        union = [ts for ts in _trained(r) if ts not in r["selected"]]
        md += (
            f"\n## Selection on {r['dataset']} by {r['by']} (top {r['top_k']}{', and their union' if r.get('union') else ''})\n\n"
            f"Ranking: {' > '.join(r['ranking'])}. Trained on: {', '.join(r['selected'])}"
            f"{f' and their union {union[0]}' if union else ''}. Scored, never trained on: {', '.join(skipped) or 'none'}.\n"
        )
    write_text(out / "teacher_scores.md", md)
    table = prediction_table(runs, scores)
    with atomic_path(out / "score_vs_student.csv") as tmp:
        table.to_csv(tmp, index=False)
    md = f"# Does the score predict the student?\n\n{PREDICTION_CAPTION}\n\n"
    rendered = render_prediction(table, runs)
    if rendered.empty:
        md += (
            f"Not in this sweep: no (dataset, student, method) was trained on ≥ {MIN_SETS} scored teacher sets "
            "(an adaptive block trains only the sets it selected, so it cannot say what the others would have given).\n"
        )
    else:
        md += rendered.to_markdown(index=False) + "\n"
    write_text(out / "score_vs_student.md", md)
    return table


# ----------------------------------------------------------------------------- figures
def teacher_scores_figure(scores: pd.DataFrame, selections: list[dict], path: str) -> None:
    """One row per dataset, one panel per score: a bar per teacher set (sets in the same order in
    every panel of a row, weakest by mean rank first); a set an adaptive block selected is solid,
    the candidates it passed over are hollow."""
    title = "Teacher scores (training split)"
    if scores.empty:
        return placeholder(path, title, "no teacher set was scored in this sweep")
    plt = pyplot()
    datasets = sorted(scores.dataset.unique())
    n_max = scores.groupby("dataset").size().max()
    fig, axes = plt.subplots(
        len(datasets),
        len(SCORE_NAMES),
        figsize=(2.1 * len(SCORE_NAMES), 0.6 + (0.22 * n_max + 0.5) * len(datasets)),
        squeeze=False,
    )
    for row, ds in zip(axes, datasets, strict=True):
        d = scores[scores.dataset == ds].copy()
        d["_rank"] = d[list(SCORE_NAMES)].rank().mean(axis=1)
        d = d.sort_values("_rank").reset_index(drop=True)
        chosen_here = {ts for r in selections if r["dataset"] == ds for ts in _trained(r)}
        passed = {c for r in selections if r["dataset"] == ds for c in r["candidates"]} - chosen_here
        for ax, s in zip(row, SCORE_NAMES, strict=True):
            y = np.arange(len(d))
            for k, (ts, v) in enumerate(zip(d.teacher_set, d[s], strict=True)):
                hollow = ts in passed
                ax.barh(
                    k, v, color="white" if hollow else PALETTE[0], edgecolor=PALETTE[0], hatch="//" if hollow else None
                )
            names = [f"{ts} (control)" if c else ts for ts, c in zip(d.teacher_set, d.control_teacher, strict=True)]
            ax.set_yticks(y, names if s == SCORE_NAMES[0] else [""] * len(d), fontsize=7)
            ax.tick_params(axis="x", labelsize=6)
            ax.axvline(0, color="0.3", lw=0.5)
            if ds == datasets[0]:
                ax.set_title(SCORE_LABELS[s], fontsize=7)
        row[0].set_ylabel(ds, fontsize=8)
    if selections:
        fig.suptitle(
            "solid: selected (or not an adaptive block's candidate); hatched: scored, not trained", fontsize=7, y=1.0
        )
    fig.tight_layout()
    save_png(fig, path)


def score_vs_student_figure(
    runs: pd.DataFrame, scores: pd.DataFrame, path: str, table: pd.DataFrame | None = None
) -> None:
    """Rows: scores; columns: methods. Each (dataset, student) is one line of its teacher sets:
    the score min-max scaled within the cell (x), the mean test accuracy over seeds (y, points,
    bars: min and max seed), one colour per dataset. The panel's pooled Kendall τ is in its corner."""
    title = "Does the score predict the student?"
    cells = outcome_cells(runs, scores)
    if not cells:
        return placeholder(
            path, title, f"no (dataset, student, method) was trained on ≥ {MIN_SETS} scored teacher sets in this sweep"
        )
    plt = pyplot()
    order = method_order(runs)
    methods = sorted(dict.fromkeys(k[2] for k in cells), key=lambda m: order.index(m) if m in order else 99)
    datasets = sorted(dict.fromkeys(k[0] for k in cells))
    colors = {d: PALETTE[i % len(PALETTE)] for i, d in enumerate(datasets)}  # a dataset keeps its colour across panels
    lookup = scores.set_index(["dataset", "teacher_set"])
    fig, axes = plt.subplots(
        len(SCORE_NAMES), len(methods), figsize=(2.2 * len(methods) + 0.4, 1.7 * len(SCORE_NAMES)), squeeze=False
    )
    for r, s in enumerate(SCORE_NAMES):
        for c, m in enumerate(methods):
            ax = axes[r, c]
            for (ds, _st, mm), sets in cells.items():
                if mm != m:
                    continue
                x = np.array([lookup.loc[(ds, ts), s] for ts, _ in sets], float)
                span = x.max() - x.min()
                xs = (x - x.min()) / span if span > 0 else np.full_like(x, 0.5)
                y = np.array([100 * a.mean() for _, a in sets])
                lo = y - np.array([100 * a.min() for _, a in sets])
                hi = np.array([100 * a.max() for _, a in sets]) - y
                o = np.argsort(xs)
                ax.errorbar(xs[o], y[o], yerr=[lo[o], hi[o]], color=colors[ds], marker="o", ms=3, lw=1, capsize=1.5)
            title = method_label(m)
            if table is not None and not table.empty:
                t = table[(table.method == m) & (table.score == s) & (table.scope == "all") & (table.stat == "kendall")]
                if len(t):
                    e = t.iloc[0]
                    ci = f" [{e.ci_low:.2f}, {e.ci_high:.2f}]" if np.isfinite(e.ci_low) else ""
                    title += f": τ = {e.estimate:.2f}{ci}"
            ax.set_title(title, fontsize=7)
            ax.tick_params(labelsize=6)
            if c == 0:
                ax.set_ylabel(f"{s}\ntest acc. (%)", fontsize=7)
            if r == len(SCORE_NAMES) - 1:
                ax.set_xlabel("score (min–max within cell)", fontsize=6)
    from matplotlib.lines import Line2D

    handles = [Line2D([], [], color=colors[d], marker="o", lw=1, label=d) for d in datasets]
    fig.legend(
        handles=handles, fontsize=7, loc="upper center", bbox_to_anchor=(0.5, 1.02), ncol=len(datasets), frameon=False
    )
    fig.tight_layout(rect=(0, 0, 1, 0.97))
    save_png(fig, path)


def write_score_report(
    runs: pd.DataFrame, score_paths: list[str], selection_paths: list[str], out_dir, figures=SCORE_FIGURES
) -> None:
    """Both tables of a report's `Which teachers` section, and the `figures` the sweep supports
    (aftbench.report.drawable)."""
    scores = score_frame(score_paths)
    selections = selection_records(selection_paths)
    table = write_score_tables(runs, scores, selections, out_dir)
    figs = Path(out_dir) / "figures"
    if "teacher_scores" in figures:
        teacher_scores_figure(scores, selections, str(figs / "teacher_scores.png"))
    if "score_vs_student" in figures:
        score_vs_student_figure(runs, scores, str(figs / "score_vs_student.png"), table)
