"""Figures that carry their uncertainty (aftbench.report.stats): per dataset, each method's paired
difference to STL with its 95% interval; across cells, normalised error (mean and IQM) with
stratified-bootstrap intervals and AFT's probability of improvement; a rank diagram. Every
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
    method_with_penalty,
    transfer_methods,
)
from aftbench.report import figures
from aftbench.report.plots import baseline_label, method_color, placeholder, pyplot, save_png
from aftbench.report.stats import iqm, mean, probability_of_improvement, rank_test, seed_table, stratified_bootstrap

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


def normalized_error(runs, path):
    """Fig. 1b analog with uncertainty: test error relative to STL on the same cell and seed,
    aggregated over cells (mean and IQM) per modality and over all, with stratified-bootstrap 95%
    intervals; pre-trained teacher sets only (controls answer other questions)."""
    base = baseline_method(runs)
    methods = transfer_methods(runs)
    title = f"Error relative to {baseline_label(runs)} (lower is better)"
    tasks = normalized_errors(runs, methods, base) if base else {}
    if not tasks or not methods:
        return placeholder(path, title, f"no transfer runs paired with {baseline_label(runs)} runs")
    modality = runs.drop_duplicates("dataset").set_index("dataset").modality
    groups = sorted({modality[c[0]] for c in tasks}) + ["all"]
    plt = pyplot()
    fig, axes = plt.subplots(1, 2, figsize=(2 * COLUMN_IN, 2.6), sharey=True)
    for ax, (name, agg) in zip(axes, [("mean", mean), ("IQM", iqm)], strict=True):
        width = 0.8 / len(methods)
        for j, m in enumerate(methods):
            pts = []
            for g in groups:
                ts = [t[[m]] for c, t in tasks.items() if m in t and (g == "all" or modality[c[0]] == g)]
                pts.append(stratified_bootstrap(ts, lambda s, agg=agg: agg(np.concatenate(s))) if ts else (np.nan,) * 3)
            est, lo, hi = np.array(pts).T
            xs = np.arange(len(groups)) + (j - (len(methods) - 1) / 2) * width
            ax.errorbar(
                xs,
                est,
                yerr=[est - lo, hi - est],
                fmt="o",
                ms=4,
                capsize=2,
                color=method_color(m, runs),
                label=method_label(m),
            )
        ax.axhline(1.0, color=method_color(base, runs), lw=1.5, label=f"{method_label(base)} (1)")
        ax.set_xticks(range(len(groups)), groups, fontsize=7)
        ax.set_title(f"{name} over cells, 95% stratified bootstrap", fontsize=7.5)
        ax.grid(axis="y", alpha=0.3)
        ax.tick_params(axis="y", labelsize=7)
    axes[0].set_ylabel(f"error / {method_label(base)} error", fontsize=7.5)
    handles, labels = axes[0].get_legend_handles_labels()
    fig.legend(
        handles, labels, loc="upper center", ncol=len(labels), fontsize=7, frameon=False, bbox_to_anchor=(0.5, 1.08)
    )
    fig.suptitle(f"{title}; {len(tasks)} cells", fontsize=8, y=1.14)
    fig.tight_layout()
    save_png(fig, path)


def improvement_probability(runs, path):
    """P(AFT > X) for every other student method X, over cells of pre-trained teacher sets,
    with stratified-bootstrap 95% intervals; ½ = no difference."""
    aft = method_with_penalty(runs, "aft")
    base = baseline_method(runs)
    title = "Probability that AFT beats each method on the same cell"
    others = [m for m in [base, *transfer_methods(runs)] if m and m != aft]
    if aft is None or not others:
        return placeholder(path, title, "no AFT runs, or nothing to compare them with")
    tables = seed_table(runs[~runs.control_teacher.astype(bool)], [aft, *others])
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(COLUMN_IN, 0.5 + 0.3 * len(others)))
    for k, m in enumerate(others):
        ts = [t[[aft, m]] for t in tables.values() if aft in t and m in t and len(t)]
        if not ts:
            continue
        est, lo, hi = stratified_bootstrap(
            ts, lambda s: probability_of_improvement([t[:, 0] for t in s], [t[:, 1] for t in s])
        )
        ax.errorbar([est], [k], xerr=[[est - lo], [hi - est]], fmt="o", color=method_color(m, runs), capsize=2)
    ax.axvline(0.5, color="0.4", ls="--", lw=1)
    ax.set_yticks(range(len(others)), [f"vs {method_label(m)}" for m in others], fontsize=7)
    ax.set_xlim(0, 1)
    ax.set_xlabel(f"P({method_label(aft)} > method)", fontsize=7.5)
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
