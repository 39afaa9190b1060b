"""The paper's claims as figures, drawn from runs.csv (tidy runs, β already selected on val).

Each function takes the runs DataFrame and writes one PNG. When a sweep holds no runs a figure
needs (e.g. no β grid, no multi-teacher set), the PNG says so instead of being left out, so the
set of outputs is the same for every sweep.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

import numpy as np

from aftbench.core.layout import NO_TEACHERS
from aftbench.core.roles import (
    BASELINE,
    PROBE,
    TRANSFER,
    baseline_method,
    method_label,
    method_with_penalty,
    transfer_methods,
)
from aftbench.report.plots import (
    baseline_label,
    cell_means,
    method_color,
    method_legend,
    placeholder,
    pyplot,
    save_png,
    selected_runs,
    student_styles,
)

if TYPE_CHECKING:  # imported where used: the workflow imports this module while building the DAG
    import pandas as pd


def student_vs_probe(runs, path):
    """Fig 1c analog: student accuracy against the teacher set's probe accuracy. Colour: method;
    line style and marker: student (legend under each panel); STL of each student as a
    horizontal line in its style."""
    import pandas as pd
    from matplotlib.lines import Line2D

    title = "Student accuracy vs the teacher set's linear-probe accuracy"
    cells = cell_means(runs)
    probes = runs[runs.role == PROBE].groupby(["dataset", "teacher_set"]).test_acc.mean()
    stl = cells[cells.method == baseline_method(runs)]
    cells = cells[cells.role == TRANSFER]
    cells = cells[pd.MultiIndex.from_arrays([cells.dataset, cells.teacher_set]).isin(probes.index)]
    if cells.empty:
        return placeholder(path, title, "no transfer runs with a probe of their teacher set")
    cells = cells.assign(probe=[probes[(d, t)] for d, t in zip(cells.dataset, cells.teacher_set, strict=False)])
    # a panel needs a line: some student with two or more teacher sets (no single-point panels)
    sets = cells.groupby(["dataset", "student", "method"]).teacher_set.nunique()
    datasets = sorted({d for (d, _, _), n in sets.items() if n >= 2})
    if not datasets:
        return placeholder(path, title, "needs a student trained with two or more teacher sets")
    plt = pyplot()
    fig, axes = plt.subplots(1, len(datasets), figsize=(3.8 * len(datasets), 3.6), squeeze=False)
    for ax, d in zip(axes[0], datasets, strict=False):
        c = cells[cells.dataset == d]
        styles = student_styles(c)
        for m in transfer_methods(runs):
            for st, g in c[c.method == m].groupby("student"):
                g = g.sort_values("probe")
                ls, mk = styles[st]
                ax.plot(100 * g.probe, 100 * g["mean"], ls=ls, marker=mk, ms=4, color=method_color(m, runs), lw=1.2)
        for st, (ls, _) in styles.items():
            base = stl[(stl.dataset == d) & (stl.student == st)]["mean"]
            if len(base):
                ax.axhline(100 * base.iloc[0], color=method_color(baseline_method(runs), runs), ls=ls, lw=1.5, zorder=0)
        ax.legend(
            handles=[Line2D([], [], color="0.3", ls=ls, marker=mk, ms=4, label=st) for st, (ls, mk) in styles.items()],
            fontsize=7,
            frameon=False,
            ncol=len(styles),
            loc="upper center",
            bbox_to_anchor=(0.5, -0.2),
        )
        ax.set_title(d, fontsize=9)
        ax.set_xlabel("teacher-set probe accuracy (%)")
        ax.grid(alpha=0.3)
    axes[0][0].set_ylabel("student test accuracy (%)")
    method_legend(
        fig,
        runs,
        transfer_methods(runs),
        [
            Line2D(
                [],
                [],
                color=method_color(baseline_method(runs), runs),
                lw=1.5,
                label=f"{baseline_label(runs)} (same student)",
            )
        ],
    )
    fig.suptitle(title + ", mean over seeds", fontsize=10)
    fig.tight_layout()
    save_png(fig, path)


def accuracy_vs_size(runs, path):
    """Accuracy against student parameter count, per method, with each dataset's strongest
    teacher set (highest probe accuracy) for the transfer methods. Students trained from scratch
    form the curve; a pre-trained student is a star."""
    from matplotlib.lines import Line2D

    title = "Accuracy vs student size"
    cells = cell_means(runs)
    if cells.empty:
        return placeholder(path, title, "no student runs")
    probes = runs[runs.role == PROBE].groupby(["dataset", "teacher_set"]).test_acc.mean()
    # a size axis needs two or more students on a dataset (no single-point panels)
    datasets = sorted(d for d, n in cells[cells.role != PROBE].groupby("dataset").student.nunique().items() if n >= 2)
    if not datasets:
        return placeholder(path, title, "needs two or more students on one dataset")
    methods = [m for m in [baseline_method(runs)] if m] + transfer_methods(runs)
    plt = pyplot()
    fig, axes = plt.subplots(1, len(datasets), figsize=(3.6 * len(datasets), 3.3), squeeze=False)
    for ax, d in zip(axes[0], datasets, strict=False):
        c = cells[cells.dataset == d]
        best = probes[d].idxmax() if d in probes.index.get_level_values(0) else None
        for m in methods:
            g = c[(c.method == m) & ((c.teacher_set == best) | (c.role == BASELINE))].sort_values("student_params")
            for scratch, gg in g.groupby(g.student_init == "scratch"):
                ax.errorbar(
                    gg.student_params,
                    100 * gg["mean"],
                    yerr=100 * gg["std"].fillna(0),
                    capsize=2,
                    color=method_color(m, runs),
                    marker="o" if scratch else "*",
                    ms=4 if scratch else 10,
                    ls="-" if scratch else "none",
                )
        ax.set_xscale("log")
        ax.set_title(f"{d} (teachers: {best})", fontsize=9)
        ax.set_xlabel("student parameters")
        ax.grid(alpha=0.3)
    axes[0][0].set_ylabel("test accuracy (%)")
    method_legend(
        fig, runs, methods, [Line2D([], [], color="0.3", marker="*", ms=10, ls="none", label="pre-trained student")]
    )
    fig.suptitle(title + " (mean ± std over seeds)", fontsize=10)
    fig.tight_layout()
    save_png(fig, path)


def rho_by_teacher(runs, path):
    """Which teacher AFT keeps: mean learned ρ per teacher, for every AFT teacher set."""
    import pandas as pd

    aft = method_with_penalty(runs, "aft")
    title = f"Learned ρ per teacher ({method_label(aft or 'AFT')})"
    a = selected_runs(runs)
    a = a[(a.method == aft) & a.rho_by_teacher.notna()]
    if a.empty:
        return placeholder(path, title, "no AFT runs with learned ρ")
    rows = []
    for _, r in a.iterrows():
        for t, v in json.loads(r.rho_by_teacher).items():
            rows.append({"dataset": r.dataset, "teacher_set": r.teacher_set, "teacher": t, "rho": v})
    df = pd.DataFrame(rows)
    panels = sorted(df.groupby(["dataset", "teacher_set"]).groups)
    plt = pyplot()
    fig, axes = plt.subplots(1, len(panels), figsize=(1.2 + 1.7 * len(panels), 3.2), squeeze=False, sharey=True)
    for ax, (d, ts) in zip(axes[0], panels, strict=False):
        g = df[(df.dataset == d) & (df.teacher_set == ts)].groupby("teacher", sort=False).rho
        ax.bar(range(len(g)), g.mean(), yerr=g.std().fillna(0), capsize=3, color="tab:green")
        ax.set_xticks(range(len(g)), list(g.groups), rotation=30, ha="right", fontsize=7)
        ax.axhline(0.5, color="0.4", ls=":", lw=1)
        ax.set_title(f"{d}\n{ts}", fontsize=8)
    axes[0][0].set_ylabel("mean ρ (init 0.5)")
    axes[0][0].set_ylim(0, 1)
    fig.suptitle(title + ", mean ± std over students and seeds", fontsize=10, y=1.06)
    save_png(fig, path)


def single_vs_union(runs, path):
    """Complementarity: each multi-teacher set against its members' single-teacher sets."""
    title = "Single teachers vs their union"
    sets = runs.drop_duplicates("teacher_set").set_index("teacher_set").teachers.to_dict()
    singles = {v: k for k, v in sets.items() if isinstance(v, str) and "+" not in v and v != NO_TEACHERS}
    unions = {k: v.split("+") for k, v in sets.items() if isinstance(v, str) and "+" in v}
    unions = {k: v for k, v in unions.items() if all(t in singles for t in v)}
    if not unions:
        return placeholder(path, title, "no teacher set whose members also run as single-teacher sets")
    cells = cell_means(runs)
    probes = runs[runs.role == PROBE].groupby(["dataset", "teacher_set"]).test_acc.mean()
    shown = [m for m in (method_with_penalty(runs, "kd"), method_with_penalty(runs, "aft")) if m]
    panels = []
    for u, members in unions.items():
        for d in sorted(cells[cells.teacher_set == u].dataset.unique()):
            panels.append((d, u, [singles[t] for t in members] + [u]))
    plt = pyplot()
    fig, axes = plt.subplots(1, len(panels), figsize=(4.2 * len(panels), 3.3), squeeze=False)
    for ax, (d, _union, tsets) in zip(axes[0], panels, strict=False):
        methods = [PROBE] + shown
        width = 0.8 / len(methods)
        for j, m in enumerate(methods):
            if m == PROBE:
                vals = [probes.get((d, t), np.nan) for t in tsets]
            else:
                c = cells[(cells.dataset == d) & (cells.method == m)].groupby("teacher_set")["mean"].mean()
                vals = [c.get(t, np.nan) for t in tsets]
            ax.bar(
                np.arange(len(tsets)) + (j - (len(methods) - 1) / 2) * width,
                100 * np.asarray(vals),
                width,
                label="probe" if m == PROBE else method_label(m),
                color="k" if m == PROBE else method_color(m, runs),
                alpha=0.35 if m == PROBE else 1,
            )
        base = cells[(cells.dataset == d) & (cells.method == baseline_method(runs))]["mean"]
        if len(base):
            ax.axhline(
                100 * base.mean(),
                color=method_color(baseline_method(runs), runs),
                ls="--",
                lw=1.2,
                label=baseline_label(runs),
            )
        ax.set_xticks(range(len(tsets)), tsets, rotation=15)
        ax.set_title(d, fontsize=9)
        ax.set_ylabel("test accuracy (%)")
        finite = [v for v in ax.containers for v in v.datavalues if np.isfinite(v)]
        if finite:
            ax.set_ylim(max(0, min(finite) - 8), min(100, max(finite) + 4))
        ax.legend(fontsize=7, frameon=False)
    fig.suptitle(title + " (mean over students and seeds)", fontsize=10)
    save_png(fig, path)


def beta_gains(runs) -> pd.DataFrame:
    """Every run (all β, not only the selected one) of a method that ran with more than one β,
    with `gain`: its validation accuracy minus that of the baseline (STL) on the same (dataset,
    student, seed), in points. Runs without a matching baseline run with a validation accuracy are
    left out, and refits (fitted on val too: no validation accuracy; their tune stage is here)."""
    import pandas as pd

    runs = runs[runs.get("stage", "") != "refit"]
    r = runs[(runs.role == TRANSFER) & ~runs.diverged.astype(bool)]
    r = r[r.groupby(["dataset", "method"]).beta.transform("nunique") > 1]
    # a baseline fitted on train + val (once, or refitted) has no validation accuracy to compare with
    base = runs[runs.method == baseline_method(runs)]
    stl = base.groupby(["dataset", "student", "seed"]).val_acc.mean().dropna()
    r = r[pd.MultiIndex.from_arrays([r.dataset, r.student, r.seed]).isin(stl.index)]
    return r.assign(
        gain=100
        * (r.val_acc.to_numpy() - stl.reindex(list(zip(r.dataset, r.student, r.seed, strict=False))).to_numpy())
    )


def accuracy_vs_beta(runs, path):
    """Validation accuracy against β for each method, relative to STL of the same student and
    seed (so students of different size average), real teachers vs control teachers."""
    base = baseline_label(runs)
    title = f"Validation accuracy − {base}'s vs β"
    r = beta_gains(runs)
    if r.empty:
        return placeholder(path, title, f"no method ran with more than one β and a {base} run in this sweep")
    panels = sorted(r.groupby(["dataset", "method"]).groups)
    plt = pyplot()
    ncols = min(4, len(panels))
    nrows = -(-len(panels) // ncols)
    fig, axes = plt.subplots(nrows, ncols, figsize=(3.4 * ncols, 3.0 * nrows), squeeze=False)
    for ax in axes.flat[len(panels) :]:
        ax.axis("off")
    for ax, (d, m) in zip(axes.flat, panels, strict=False):
        g = r[(r.dataset == d) & (r.method == m)]
        for ts, gg in g.groupby("teacher_set"):
            s = gg.groupby("beta").gain.agg(["mean", "std"]).reset_index()
            ctl = bool(gg.control_teacher.any())
            ax.errorbar(
                s.beta,
                s["mean"],
                yerr=s["std"].fillna(0),
                marker="o",
                ms=3,
                capsize=2,
                ls="--" if ctl else "-",
                label=f"{ts}{' (control)' if ctl else ''}",
            )
        ax.axhline(0, color="0.4", lw=1)
        ax.set_xscale("log")
        ax.set_title(f"{d} · {method_label(m)}", fontsize=9)
        ax.set_xlabel("β")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=6, frameon=False)
    for row in axes:
        row[0].set_ylabel(f"val. accuracy − {base}'s (points)")
    fig.suptitle(title + " (mean ± std over students and seeds; dashed: control teacher sets)", fontsize=10)
    fig.tight_layout(rect=(0, 0, 1, 0.98))
    save_png(fig, path)
