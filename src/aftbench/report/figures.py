"""The paper's claims as figures, drawn from runs.csv (tidy runs, β already selected on val).

Each function takes the runs DataFrame and writes one PNG. When a sweep holds no runs a figure
needs (e.g. no β grid, no multi-teacher set), the PNG says so instead of being left out, so the
set of outputs is the same for every sweep.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

import numpy as np

from aftbench.core.layout import NOISE_NULL_PREFIX
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
    TEACHER_ROLE_COLORS,
    baseline_label,
    cell_means,
    method_color,
    method_legend,
    on_pretrained_sets,
    placeholder,
    pyplot,
    save_png,
    selected_runs,
    student_styles,
    teacher_role,
    teacher_set_styles,
)

if TYPE_CHECKING:  # imported where used: the workflow imports this module while building the DAG
    import pandas as pd


def _seed_interval(accs) -> tuple[float, float]:
    """Mean and half-width of the 95% t interval over seeds, in points (0 width for one seed)."""
    from aftbench.report.stats import t_interval  # pandas: not while the workflow builds its DAG

    m, lo, hi = t_interval(100 * np.asarray(accs, float))
    return m, (0.0 if np.isnan(lo) else m - lo)


def student_vs_probe(runs, path):
    """Fig 1c analog: student accuracy against the teacher set's probe accuracy, for every
    (student, method) trained on a ladder of ≥ 3 probed pre-trained teacher sets (claim 2's
    minimum; controls and noise nulls excluded, as in claim 2). Points: mean over seeds with the
    95% t interval; colour: method; line style and marker: student; STL of each student as a
    horizontal line with its interval as a band."""
    from matplotlib.lines import Line2D

    from aftbench.report.drawable import MIN_LADDER

    title = "Student accuracy vs the teacher set's linear-probe accuracy"
    sel = selected_runs(runs)
    sel = on_pretrained_sets(sel)
    probes = runs[runs.role == PROBE].groupby(["dataset", "teacher_set"]).test_acc.mean()
    probed = np.array([(d, s) in probes.index for d, s in zip(sel.dataset, sel.teacher_set, strict=True)], bool)
    t = sel[(sel.role == TRANSFER).to_numpy() & probed]
    ladders = t.groupby(["dataset", "student", "method"]).teacher_set.nunique()
    ladders = ladders[ladders >= MIN_LADDER]
    if ladders.empty:
        return placeholder(path, title, f"needs a student trained on ≥ {MIN_LADDER} probed pre-trained teacher sets")
    datasets = sorted({d for d, _, _ in ladders.index})
    plt = pyplot()
    fig, axes = plt.subplots(1, len(datasets), figsize=(3.8 * len(datasets), 3.6), squeeze=False)
    base = baseline_method(runs)
    for ax, d in zip(axes[0], datasets, strict=False):
        c = t[t.dataset == d]
        styles = student_styles(c)
        for _, st, m in [k for k in ladders.index if k[0] == d]:
            pts = []
            for ts, g in c[(c.student == st) & (c.method == m)].groupby("teacher_set"):
                pts.append((100 * probes[(d, ts)], *_seed_interval(g.test_acc)))
            x, y, h = np.array(sorted(pts)).T
            ls, mk = styles[st]
            ax.errorbar(x, y, yerr=h, ls=ls, marker=mk, ms=4, capsize=2, color=method_color(m, runs), lw=1.2)
        for st, (ls, _) in styles.items():
            b = sel[(sel.dataset == d) & (sel.student == st) & (sel.method == base)].test_acc
            if len(b):
                y, h = _seed_interval(b)
                color = method_color(base, runs)
                ax.axhline(y, color=color, ls=ls, lw=1.5, zorder=0)
                ax.axhspan(y - h, y + h, color=color, alpha=0.12, lw=0, zorder=0)
        ax.legend(
            handles=[Line2D([], [], color="0.3", ls=ls, marker=mk, ms=4, label=st) for st, (ls, mk) in styles.items()],
            fontsize=7,
            frameon=False,
            ncol=len(styles),
            loc="upper center",
            bbox_to_anchor=(0.5, -0.2),
        )
        ax.set_title(f"{d} (n = {int(c.groupby(['student', 'method', 'teacher_set']).size().min())} seeds)", fontsize=9)
        ax.set_xlabel("teacher-set probe accuracy (%)")
        ax.grid(alpha=0.3)
    axes[0][0].set_ylabel("student test accuracy (%)")
    stl = Line2D([], [], color=method_color(base, runs), lw=1.5, label=f"{baseline_label(runs)} ± 95% (same student)")
    method_legend(fig, runs, sorted({m for _, _, m in ladders.index}, key=transfer_methods(runs).index), [stl])
    fig.suptitle(title + ": mean over seeds, 95% t interval; slope and its test: claims table, claim 2", fontsize=9)
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
    """Which teacher AFT keeps: mean learned ρ per teacher, for every AFT teacher set, each bar in
    its teacher's role colour (a teacher that appears in a pre-trained set is pre-trained; in a
    noise null, noise; else a control). ρ is what AFT's kernel fit weights, not a measure of a
    teacher's knowledge: where a control gets more ρ than a pre-trained teacher of the same
    dataset the figure says so (the knowledge-specific gain answers what the knowledge adds)."""
    import pandas as pd
    from matplotlib.patches import Patch

    aft = method_with_penalty(runs, "aft")
    title = f"Learned ρ per teacher ({method_label(aft or 'AFT')})"
    a = selected_runs(runs)
    a = a[(a.method == aft) & a.rho_by_teacher.notna()]
    if a.empty:
        return placeholder(path, title, "no AFT runs with learned ρ")
    real_sets = on_pretrained_sets(a)
    real_teachers = {t for ts in real_sets.teachers for t in ts.split("+")}
    rows = []
    for _, r in a.iterrows():
        for t, v in json.loads(r.rho_by_teacher).items():
            null = r.teacher_set.startswith(NOISE_NULL_PREFIX)
            role = "noise null" if null else "pre-trained" if t in real_teachers else "random-init twin"
            if (
                role == "random-init twin"
                and "+" in r.teachers
                and any(x in real_teachers for x in r.teachers.split("+"))
            ):
                role = "noise appended"
            rows.append({"dataset": r.dataset, "teacher_set": r.teacher_set, "teacher": t, "rho": v, "role": role})
    df = pd.DataFrame(rows)
    panels = sorted(df.groupby(["dataset", "teacher_set"]).groups)
    plt = pyplot()
    fig, axes = plt.subplots(1, len(panels), figsize=(1.2 + 1.7 * len(panels), 3.2), squeeze=False, sharey=True)
    for ax, (d, ts) in zip(axes[0], panels, strict=False):
        g = df[(df.dataset == d) & (df.teacher_set == ts)].groupby("teacher", sort=False)
        colors = [TEACHER_ROLE_COLORS[r] for r in g.role.first()]
        ax.bar(range(len(g)), g.rho.mean(), yerr=g.rho.std().fillna(0), capsize=3, color=colors)
        ax.set_xticks(range(len(g)), list(g.groups), rotation=30, ha="right", fontsize=7)
        ax.axhline(0.5, color="0.4", ls=":", lw=1)
        ax.set_title(f"{d}\n{ts} (n = {int(g.size().min())})", fontsize=8)
    axes[0][0].set_ylabel("mean ρ (init 0.5)")
    axes[0][0].set_ylim(0, 1)
    means = df.groupby(["dataset", "role"]).rho.mean().unstack()
    notes = [
        f"{d}: a control gets more ρ ({means.loc[d].drop('pre-trained').max():.2f}) than the pre-trained teachers ({means.loc[d, 'pre-trained']:.2f})"
        for d in means.index
        if "pre-trained" in means and means.loc[d].drop("pre-trained").max() > means.loc[d, "pre-trained"]
    ]
    if notes:
        text = (
            "ρ weights features AFT's kernel fit uses, not knowledge: "
            + "; ".join(notes)
            + " (see the knowledge-specific gain)"
        )
        fig.text(0.01, -0.12, text, fontsize=7, wrap=True)
    roles = list(dict.fromkeys(df.role))
    fig.legend(
        handles=[Patch(color=TEACHER_ROLE_COLORS[r], label=r) for r in roles],
        fontsize=7,
        loc="center left",
        bbox_to_anchor=(1.0, 0.5),
        frameon=False,
    )
    fig.suptitle(title + ", mean ± std over students and seeds (n: runs)", fontsize=10, y=1.06)
    save_png(fig, path)


def single_vs_union(runs, path):
    """Complementarity: each pre-trained union against its single-teacher members, under KD and
    AFT, where the union and every member were trained for the same (dataset, student): mean
    test accuracy over seeds with its 95% t interval, the student's STL as a band, each set's
    probe accuracy under its name. Claim 3 tests the union against its best member."""
    title = "Single teachers vs their union"
    sel = selected_runs(runs)
    sel = on_pretrained_sets(sel)
    shown = [m for m in (method_with_penalty(runs, "kd"), method_with_penalty(runs, "aft")) if m]
    probes = runs[runs.role == PROBE].groupby(["dataset", "teacher_set"]).test_acc.mean()
    members = {ts: t.split("+") for ts, t in zip(sel.teacher_set, sel.teachers, strict=True)}
    panels = []
    for (d, st), g in sel[sel.method.isin(shown)].groupby(["dataset", "student"]):
        singles = {members[ts][0]: ts for ts in set(g.teacher_set) if len(members[ts]) == 1}
        for u in sorted(ts for ts in set(g.teacher_set) if len(members[ts]) > 1):
            if all(t in singles for t in members[u]):
                panels.append((d, st, [singles[t] for t in members[u]] + [u]))
    if not panels:
        return placeholder(path, title, "no pre-trained union trained beside each of its single-teacher members")
    base = baseline_method(runs)
    plt = pyplot()
    fig, axes = plt.subplots(1, len(panels), figsize=(3.4 * len(panels), 3.2), squeeze=False)
    for ax, (d, st, tsets) in zip(axes[0], panels, strict=False):
        cell = sel[(sel.dataset == d) & (sel.student == st)]
        width = 0.6 / len(shown)
        for j, m in enumerate(shown):
            pts = [_seed_interval(cell[(cell.method == m) & (cell.teacher_set == ts)].test_acc) for ts in tsets]
            y, h = np.array(pts).T
            xs = np.arange(len(tsets)) + (j - (len(shown) - 1) / 2) * width
            ax.errorbar(xs, y, yerr=h, fmt="o", ms=4, capsize=2, color=method_color(m, runs), label=method_label(m))
        b = cell[cell.method == base].test_acc
        if len(b):
            y, h = _seed_interval(b)
            ax.axhline(y, color=method_color(base, runs), lw=1.2, label=f"{baseline_label(runs)} ± 95%")
            ax.axhspan(y - h, y + h, color=method_color(base, runs), alpha=0.12, lw=0)
        labels = [f"{ts}\nprobe {100 * probes.get((d, ts), np.nan):.1f}" for ts in tsets]
        ax.set_xticks(range(len(tsets)), labels, fontsize=7)
        n = int(cell[cell.teacher_set.isin(tsets)].groupby(["method", "teacher_set"]).size().min())
        ax.set_title(f"{d} · {st} (n = {n} seeds)", fontsize=8)
        ax.grid(axis="y", alpha=0.3)
        ax.legend(fontsize=7, frameon=False)
    axes[0][0].set_ylabel("test accuracy (%)")
    fig.suptitle(
        title + ": mean over seeds, 95% t interval (the union vs its best member: claims table, claim 3)", fontsize=9
    )
    fig.tight_layout()
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
    styles = teacher_set_styles(runs)
    plt = pyplot()
    ncols = min(4, len(panels))
    nrows = -(-len(panels) // ncols)
    fig, axes = plt.subplots(nrows, ncols, figsize=(3.4 * ncols, 3.0 * nrows), squeeze=False)
    for ax in axes.flat[len(panels) :]:
        ax.axis("off")
    for ax, (d, m) in zip(axes.flat, panels, strict=False):
        g = r[(r.dataset == d) & (r.method == m)]
        for ts, gg in g.groupby("teacher_set"):
            s = gg.groupby("beta").gain.agg(["mean", "std", "count"]).reset_index()
            color, marker, ls = styles[ts]
            ax.errorbar(
                s.beta,
                s["mean"],
                yerr=s["std"].fillna(0),
                marker=marker,
                ms=4,
                capsize=2,
                color=color,
                ls=ls,
                label=f"{ts} (n = {int(s['count'].min())})",
            )
        ax.axhline(0, color="0.4", lw=1)
        ax.set_xscale("log")
        ax.set_title(f"{d} · {method_label(m)}", fontsize=9)
        ax.set_xlabel("β")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=6, frameon=False)
    for row in axes:
        row[0].set_ylabel(f"val. accuracy − {base}'s (points)")
    from matplotlib.lines import Line2D

    roles = {
        TEACHER_ROLE_COLORS[teacher_role(ts, c, t)]: teacher_role(ts, c, t)
        for ts, c, t in zip(r.teacher_set, r.control_teacher.astype(bool), r.teachers, strict=True)
    }
    fig.legend(
        handles=[Line2D([], [], color=c, lw=2, label=role) for c, role in roles.items()],
        title="teacher role (colour)",
        fontsize=7,
        title_fontsize=7,
        loc="center left",
        bbox_to_anchor=(1.0, 0.5),
        frameon=False,
    )
    fig.suptitle(title + " (mean ± std over students and seeds; n: runs per β)", fontsize=10)
    fig.tight_layout(rect=(0, 0, 1, 0.98))
    save_png(fig, path)
