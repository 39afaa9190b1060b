"""Figures that carry their uncertainty: per dataset, each method's paired difference to STL with
its 95% interval; across cells, normalised error and AFT's probability of improvement with the
claims' design (aftbench.report.inference); a rank diagram. Every
figure is written as PNG and PDF, sized for a paper column, one colour per method (STL included)
in every legend. CLAIMS draws every claim figure of a report (aftbench.core.layout.CLAIM_FIGURES)."""

from __future__ import annotations

import numpy as np
import pandas as pd

from aftbench.core.layout import CLAIM_FIGURES
from aftbench.core.roles import (
    PROBE,
    baseline_method,
    method_label,
    method_order,
    transfer_methods,
)
from aftbench.report import figures
from aftbench.report.plots import baseline_label, method_color, placeholder, pyplot, save_png
from aftbench.report.stats import rank_test, seed_table

COLUMN_IN = 3.4  # a paper column, inches


def difference_figure(runs: pd.DataFrame, dataset: str, path: str) -> None:
    """One dataset: per student (panel) and teacher set (x), each transfer method's paired
    difference to STL in points (mean over seeds, 95% t interval); STL is the zero line. The
    teacher set's probe accuracy is written under its name, not plotted on this axis."""
    from aftbench.report.tables import main_table

    title = f"{dataset}: difference to {baseline_label(runs)}"
    table = main_table(runs[runs.dataset == dataset])
    if table.empty:
        return placeholder(path, title, "no transfer run with a teacher set on this dataset yet")
    methods = [m for m in transfer_methods(runs) if f"{m}_d" in table]
    base = baseline_method(runs)
    if base is None:
        return placeholder(path, title, "no baseline (STL) runs in this sweep to compare with")
    students = list(dict.fromkeys(table.student))
    plt = pyplot()
    n_sets = table.groupby("student").teacher_set.nunique().max()
    fig, axes = plt.subplots(
        1,
        len(students),
        figsize=(max(COLUMN_IN, 0.8 + 1.0 * n_sets * len(students)), 2.6),
        sharey=True,
        squeeze=False,
    )
    seen = set()
    for ax, st in zip(axes[0], students, strict=True):
        # teacher sets weak -> strong (by probe accuracy), so a ladder reads left to right
        t = table[table.student == st].sort_values("probe", na_position="last").reset_index(drop=True)
        x = np.arange(len(t))
        ax.axhline(0, color=method_color(base, runs), lw=1.5, label=f"{method_label(base)} (0)")
        for i, r in t.iterrows():  # offsets among the methods this teacher set was trained with
            present = [m for m in methods if not np.isnan(r[f"{m}_d"])]
            width = 0.8 / max(1, len(present))
            for j, m in enumerate(present):
                d, lo, hi = (100 * float(r[f"{m}_{k}"]) for k in ("d", "dlo", "dhi"))
                err = [[d - lo if not np.isnan(lo) else 0], [hi - d if not np.isnan(hi) else 0]]
                ax.errorbar(
                    [i + (j - (len(present) - 1) / 2) * width],
                    [d],
                    yerr=err,
                    fmt="o",
                    ms=4,
                    capsize=2,
                    color=method_color(m, runs),
                    label=None if m in seen else method_label(m),
                )
                seen.add(m)
        labels = [
            f"{ts}{' (ctrl)' if c else ''}\nprobe {100 * p:.1f}" if not np.isnan(p) else ts
            for ts, c, p in zip(t.teacher_set, t.control_teacher, t.probe, strict=True)
        ]
        ax.set_xticks(x, labels, fontsize=6.5)
        ax.set_xlim(-0.6, len(t) - 0.4)
        base_acc = 100 * t[f"{base}_mean"].iloc[0]
        ax.set_title(f"{st}: {method_label(base)} {base_acc:.1f}%", fontsize=7.5)
        ax.grid(axis="y", alpha=0.3)
        ax.tick_params(axis="y", labelsize=7)
    axes[0][0].set_ylabel(f"Δ test acc. vs {method_label(base)} (points)", fontsize=7.5)
    handles, labels = axes[0][0].get_legend_handles_labels()
    fig.legend(
        handles, labels, loc="upper center", ncol=len(labels), fontsize=7, frameon=False, bbox_to_anchor=(0.5, 1.07)
    )
    fig.suptitle(f"{title}: paired over seeds, mean and 95% t interval", fontsize=8, y=1.13)
    fig.tight_layout()
    save_png(fig, path)


def normalized_errors(runs: pd.DataFrame, methods: list[str], base: str) -> dict[tuple, pd.DataFrame]:
    """Per cell (pre-trained teacher sets): seeds × methods of test error / STL's test error."""
    real = runs[~runs.control_teacher.astype(bool)]
    out = {}
    for cell, t in seed_table(real, [base, *methods]).items():
        if base in t and len(t):
            err = (1 - t).div((1 - t[base]).clip(lower=1e-9), axis=0)
            out[cell] = err[[m for m in methods if m in err]]
    return out


def _modality_groups(tasks: dict[tuple, pd.DataFrame], runs, method: str) -> dict[str, list]:
    """Per modality and 'all': the (dataset, student) groups of one method's per-cell, per-seed values
    (aftbench.report.inference.Group), so a figure's interval has the claims' design."""
    from aftbench.report.inference import Group

    modality = runs.drop_duplicates("dataset").set_index("dataset").modality
    by_group: dict[tuple, dict] = {}
    for (ds, st, ts), t in tasks.items():
        if method in t:
            by_group.setdefault((ds, st), {})[ts] = t[method]
    groups = [Group(ds, st, pd.DataFrame(cells)) for (ds, st), cells in by_group.items()]
    out = {m: [g for g in groups if modality[g.dataset] == m] for m in sorted({modality[g.dataset] for g in groups})}
    return {**out, "all": groups} if groups else {}


def normalized_error(runs, path):
    """Fig. 1b analog with uncertainty: test error relative to STL on the same cell and seed, mean
    over cells per modality and over all, with the claims' design (aftbench.report.inference:
    seeds within a (dataset, student) are the unit, datasets across datasets; 95% t intervals);
    pre-trained teacher sets only (controls answer other questions). `n` under each group: datasets
    / cells / seeds."""
    from aftbench.report.inference import paired_estimate

    base = baseline_method(runs)
    methods = transfer_methods(runs)
    title = f"Error relative to {baseline_label(runs)} (lower is better)"
    tasks = normalized_errors(runs, methods, base) if base else {}
    if not tasks or not methods:
        return placeholder(path, title, f"no transfer runs paired with {baseline_label(runs)} runs")
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(COLUMN_IN * 1.4, 2.8))
    width = 0.8 / len(methods)
    names, counts = [], {}
    for j, m in enumerate(methods):
        groups = _modality_groups(tasks, runs, m)
        names = names or list(groups)
        pts = []
        for g in names:
            e = paired_estimate(groups.get(g, []))
            pts.append((e.estimate, *e.interval))
            counts.setdefault(g, f"{e.n_datasets} / {e.n_cells} / {e.n_seeds}")
        est, lo, hi = np.array(pts, float).T
        xs = np.arange(len(names)) + (j - (len(methods) - 1) / 2) * width
        err = [np.nan_to_num(est - lo), np.nan_to_num(hi - est)]
        ax.errorbar(xs, est, yerr=err, fmt="o", ms=4, capsize=2, color=method_color(m, runs), label=method_label(m))
    ax.axhline(1.0, color=method_color(base, runs), lw=1.5, label=f"{method_label(base)} (1)")
    ax.set_xticks(range(len(names)), [f"{g}\nn = {counts[g]}" for g in names], fontsize=7)
    ax.grid(axis="y", alpha=0.3)
    ax.tick_params(axis="y", labelsize=7)
    ax.set_ylabel(f"error / {method_label(base)} error", fontsize=7.5)
    ax.legend(fontsize=7, frameon=False, loc="center left", bbox_to_anchor=(1.0, 0.5))
    ax.set_title(
        f"{title}\nmean over cells, 95% t interval (unit: seed within a dataset; dataset across datasets)", fontsize=7.5
    )
    save_png(fig, path)


def improvement_probability(runs, path):
    """P(AFT > X) for every baseline of claim 1, same seed and same cell, over pre-trained teacher
    sets of all datasets: the claims table's numbers and intervals (aftbench.report.claims), so the
    figure and the verdict rest on the same pairs. ½ = no difference."""
    from aftbench.report.claims import claims_table

    title = "Probability that AFT beats each method (same seed, same cell)"
    table = claims_table(runs)
    rows = table[table.claim.str.startswith("1.") & (table.scope == "all") & table.prob.notna()]
    if rows.empty:
        return placeholder(path, title, "no AFT runs, or nothing to compare them with")
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(COLUMN_IN, 0.7 + 0.3 * len(rows)))
    for k, r in enumerate(rows.itertuples()):
        other = r.statistic.split(" − ")[1].split(" (")[0]
        m = next((x for x in runs.method.unique() if method_label(x) == other), other)
        ax.errorbar(
            [r.prob],
            [k],
            xerr=[[r.prob - r.prob_low], [r.prob_high - r.prob]],
            fmt="o",
            color=method_color(m, runs),
            capsize=2,
        )
        ax.text(
            1.02,
            k,
            f"n = {r.n_datasets} / {r.n_cells} / {r.n_seeds}",
            va="center",
            fontsize=6,
            transform=ax.get_yaxis_transform(),
        )
    ax.axvline(0.5, color="0.4", ls="--", lw=1)
    ax.set_yticks(range(len(rows)), [f"vs {s.split(' − ')[1].split(' (')[0]}" for s in rows.statistic], fontsize=7)
    ax.set_xlim(0, 1)
    ax.set_xlabel("P(AFT > method), 95% interval (n: datasets / cells / seeds)", fontsize=7)
    ax.tick_params(axis="x", labelsize=7)
    ax.set_title(title, fontsize=7.5)
    save_png(fig, path)


def ranks(runs, path):
    """Critical-difference diagram (autorank: Friedman test, Nemenyi post-hoc) of every student
    method's mean test accuracy over cells of pre-trained teacher sets (STL joined per student)."""
    title = "Average rank of the student methods over cells"
    methods = [m for m in method_order(runs) if m not in set(runs[runs.role == PROBE].method)]
    tables = seed_table(runs[~runs.control_teacher.astype(bool)], methods)
    wide = pd.DataFrame({c: t.mean() for c, t in tables.items()}).T
    wide = wide[[m for m in methods if m in wide]]
    if wide.dropna().shape[0] < 5:  # too few cells hold every method: rank the methods every cell holds
        wide = wide.dropna(axis=1)
    wide.columns = [method_label(m) for m in wide.columns]
    result = None
    try:
        result = rank_test(wide) if len(wide) else None
    except Exception as err:  # autorank refuses some degenerate tables (e.g. all cells tied)
        return placeholder(path, title, f"autorank could not rank these cells: {err}")
    if result is None:
        return placeholder(path, title, "needs at least two cells and two methods")
    import autorank

    plt = pyplot()
    ax = autorank.plot_stats(result, allow_insignificant=True)
    if ax is None:  # two methods: autorank tests them (Wilcoxon) but draws no diagram
        plt.close("all")
        shared = " and ".join(wide.columns)
        return placeholder(
            path,
            title,
            f"only {shared} are in every cell: {result.omnibus} p = {result.pvalue:.2g} over {len(wide)} cells",
        )
    fig = ax.figure
    fig.set_size_inches(COLUMN_IN * 1.4, 1.2 + 0.15 * len(wide.columns))
    ax.set_title(f"{title} ({len(wide)} cells; Friedman p = {result.pvalue:.2g})", fontsize=7.5)
    save_png(fig, path)
    plt.close(fig)


# Every claim figure of a report (the workflow declares one output per name).
CLAIMS = {
    "normalized_error": normalized_error,
    "improvement_probability": improvement_probability,
    "ranks": ranks,
    "student_vs_probe": figures.student_vs_probe,
    "accuracy_vs_size": figures.accuracy_vs_size,
    "rho_by_teacher": figures.rho_by_teacher,
    "single_vs_union": figures.single_vs_union,
    "accuracy_vs_beta": figures.accuracy_vs_beta,
}
assert list(CLAIMS) == CLAIM_FIGURES, "aftbench.core.layout.CLAIM_FIGURES names what the workflow expects"


def claim_figures(runs, out_dir, names=CLAIM_FIGURES) -> list[str]:
    """Draw the claim figures named (those the sweep supports: aftbench.report.drawable)."""
    paths = []
    for name, draw in CLAIMS.items():
        if name not in names:
            continue
        p = f"{out_dir}/{name}.png"
        draw(runs, p)
        paths.append(p)
    return paths


__all__ = ["CLAIM_FIGURES", "claim_figures", "difference_figure"]
