"""The paper's claims as figures, drawn from runs.csv (tidy runs, β already selected on val).

Each function takes the runs DataFrame and writes one PNG. When a sweep holds no runs a figure
needs (e.g. no β grid, no multi-teacher set), the PNG says so instead of being left out, so the
set of outputs is the same for every sweep.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

import numpy as np

from . import results
from .io import atomic_path
from .layout import NO_TEACHERS
from .results import BASELINE, PROBE, TRANSFER, method_label

if TYPE_CHECKING:  # imported where used: the workflow imports this module while building the DAG
    import pandas as pd

CLAIM_FIGURES = ["normalized_error", "student_vs_probe", "accuracy_vs_size", "rho_by_teacher",
                 "single_vs_union", "accuracy_vs_beta"]
STUDENT_STYLES = [("-", "o"), ("--", "s"), (":", "^"), ("-.", "D")]  # smallest student first


def method_order(runs) -> list[str]:
    """Every method of the runs in report order (aftbench.results: baselines, transfer, probes)."""
    return results.method_order(zip(runs.method, runs.role, runs.penalty))


def method_color(method: str, runs) -> str:
    """One colour per method, the same in every figure of one report: tab10 in report order."""
    students = [m for m in method_order(runs) if m not in set(runs[runs.role == PROBE].method)]
    return f"C{students.index(method) % 10}" if method in students else "0.5"


def _baseline(runs) -> str | None:
    """The method every figure compares against (STL): the first baseline in report order."""
    base = set(runs[runs.role == BASELINE].method)
    return next((m for m in method_order(runs) if m in base), None)


def _base_label(runs) -> str:
    return method_label(_baseline(runs) or "baseline")


def _with_penalty(runs, penalty: str) -> str | None:
    """The first transfer method with this penalty whose ρ (if it has one) was learned: the
    fixed-ρ ablation shares AFT's penalty but keeps every ρ at 0.5."""
    for m in _methods(runs):
        r = runs[runs.method == m]
        if r.penalty.iloc[0] != penalty:
            continue
        rho = r.rho_by_teacher.dropna()
        if len(rho) and all(v == 0.5 for js in rho for v in json.loads(js).values()):
            continue
        return m
    return None


def _plt():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _save(fig, path):
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=130, bbox_inches="tight")
    _plt().close(fig)


def _empty(path, title, why):
    plt = _plt()
    fig, ax = plt.subplots(figsize=(6, 2))
    ax.axis("off")
    ax.text(0.5, 0.5, f"{title}\n\n{why}", ha="center", va="center", fontsize=10, wrap=True)
    _save(fig, path)


def _methods(runs) -> list[str]:
    """The transfer methods of the runs, in report order."""
    transfer = set(runs[runs.role == TRANSFER].method)
    return [m for m in method_order(runs) if m in transfer]


def _selected(runs):
    return runs[runs.selected & (runs.role != PROBE)]


def _cell_means(runs) -> pd.DataFrame:
    """Mean test accuracy over seeds per (dataset, modality, student, params, method, teacher set)."""
    return (_selected(runs).groupby(["dataset", "modality", "student", "student_init", "student_params", "method",
                                     "role", "teacher_set"])
            .test_acc.agg(["mean", "std", "count"]).reset_index())


def error_ratios(runs) -> pd.DataFrame:
    """Test error of each transfer method / test error of the baseline (STL) on the same (dataset, student),
    one row per (dataset, student, method, teacher set), means over seeds of selected runs."""
    import pandas as pd

    cells = _cell_means(runs)
    stl = cells[cells.method == _baseline(runs)].set_index(["dataset", "student"])["mean"]
    rows = []
    for _, r in cells[cells.role == TRANSFER].iterrows():
        if (r.dataset, r.student) in stl.index:
            rows.append({"dataset": r.dataset, "modality": r.modality, "student": r.student, "method": r.method,
                         "teacher_set": r.teacher_set,
                         "ratio": (1 - r["mean"]) / max(1e-9, 1 - stl[(r.dataset, r.student)])})
    return pd.DataFrame(rows, columns=["dataset", "modality", "student", "method", "teacher_set", "ratio"])


def normalized_error(runs, path):
    """Fig 1b analog: error of each method relative to STL on the same (dataset, student), per
    teacher set, averaged over rows; per modality and over everything. Pre-trained teacher sets
    only: the controls (random-init teacher, appended noise) answer other questions and have
    their own figures (rho_by_teacher, accuracy_vs_beta)."""
    title = f"Error relative to {_base_label(runs)} (lower is better), pre-trained teacher sets"
    df = error_ratios(runs[~runs.control_teacher.astype(bool)] if "control_teacher" in runs else runs)
    if df.empty:
        return _empty(path, title, f"no {_base_label(runs)} runs to normalise by")
    groups = sorted(df.modality.unique()) + ["all"]
    methods = _methods(runs)
    plt = _plt()
    fig, ax = plt.subplots(figsize=(1.6 + 1.3 * len(groups) * max(1, len(methods)) / 3, 3.4))
    width = 0.8 / len(methods)
    for j, m in enumerate(methods):
        vals, errs = [], []
        for g in groups:
            sel = df[(df.method == m) & ((df.modality == g) | (g == "all"))].ratio
            vals.append(sel.mean() if len(sel) else np.nan)
            errs.append(sel.std() / np.sqrt(len(sel)) if len(sel) > 1 else 0)
        ax.bar(np.arange(len(groups)) + (j - (len(methods) - 1) / 2) * width, vals, width, yerr=errs, capsize=2,
               label=method_label(m), color=method_color(m, runs))
    ax.axhline(1.0, color="0.3", ls="--", lw=1)
    ax.set_xticks(range(len(groups)), groups)
    ax.set_ylabel(f"error / {_base_label(runs)} error")
    ax.set_title(title + "; bars: mean ± s.e. over (dataset, student, teacher set)", fontsize=9)
    ax.legend(fontsize=7, ncol=min(6, len(methods)), loc="upper center", bbox_to_anchor=(0.5, -0.12), frameon=False)
    lo = np.nanmin(df.ratio) if len(df) else 0.9
    ax.set_ylim(min(0.8, lo - 0.05), max(1.1, np.nanmax(df.ratio) + 0.05))
    _save(fig, path)


def _student_styles(cells) -> dict[str, tuple[str, str]]:
    """Line style and marker per student in `cells` (one dataset's), smallest first."""
    c = cells.drop_duplicates("student").sort_values("student_params")
    return {st: STUDENT_STYLES[k % len(STUDENT_STYLES)] for k, st in enumerate(c.student)}


def _method_legend(fig, runs, methods, extra=()):
    from matplotlib.lines import Line2D

    handles = [Line2D([], [], color=method_color(m, runs), lw=2, label=method_label(m)) for m in methods] + list(extra)
    fig.legend(handles=handles, fontsize=7, loc="center left", bbox_to_anchor=(1.0, 0.5), frameon=False)


def student_vs_probe(runs, path):
    """Fig 1c analog: student accuracy against the teacher set's probe accuracy. Colour: method;
    line style and marker: student (legend under each panel); STL of each student as a
    horizontal line in its style."""
    import pandas as pd
    from matplotlib.lines import Line2D

    title = "Student accuracy vs the teacher set's linear-probe accuracy"
    cells = _cell_means(runs)
    probes = runs[runs.role == PROBE].groupby(["dataset", "teacher_set"]).test_acc.mean()
    stl = cells[cells.method == _baseline(runs)]
    cells = cells[cells.role == TRANSFER]
    cells = cells[pd.MultiIndex.from_arrays([cells.dataset, cells.teacher_set]).isin(probes.index)]
    if cells.empty:
        return _empty(path, title, "no transfer runs with a probe of their teacher set")
    cells = cells.assign(probe=[probes[(d, t)] for d, t in zip(cells.dataset, cells.teacher_set)])
    datasets = sorted(cells.dataset.unique())
    plt = _plt()
    fig, axes = plt.subplots(1, len(datasets), figsize=(3.8 * len(datasets), 3.6), squeeze=False)
    for ax, d in zip(axes[0], datasets):
        c = cells[cells.dataset == d]
        styles = _student_styles(c)
        for m in _methods(runs):
            for st, g in c[c.method == m].groupby("student"):
                g = g.sort_values("probe")
                ls, mk = styles[st]
                ax.plot(100 * g.probe, 100 * g["mean"], ls=ls, marker=mk, ms=4, color=method_color(m, runs), lw=1.2)
        for st, (ls, _) in styles.items():
            base = stl[(stl.dataset == d) & (stl.student == st)]["mean"]
            if len(base):
                ax.axhline(100 * base.iloc[0], color=method_color(_baseline(runs), runs), ls=ls, lw=1.5, zorder=0)
        ax.legend(handles=[Line2D([], [], color="0.3", ls=ls, marker=mk, ms=4, label=st)
                           for st, (ls, mk) in styles.items()], fontsize=7, frameon=False, ncol=len(styles),
                  loc="upper center", bbox_to_anchor=(0.5, -0.2))
        ax.set_title(d, fontsize=9)
        ax.set_xlabel("teacher-set probe accuracy (%)")
        ax.grid(alpha=0.3)
    axes[0][0].set_ylabel("student test accuracy (%)")
    _method_legend(fig, runs, _methods(runs), [Line2D([], [], color=method_color(_baseline(runs), runs), lw=1.5,
                                                      label=f"{_base_label(runs)} (same student)")])
    fig.suptitle(title + ", mean over seeds", fontsize=10)
    fig.tight_layout()
    _save(fig, path)


def accuracy_vs_size(runs, path):
    """Accuracy against student parameter count, per method, with each dataset's strongest
    teacher set (highest probe accuracy) for the transfer methods. Students trained from scratch
    form the curve; a pre-trained student is a star."""
    from matplotlib.lines import Line2D

    title = "Accuracy vs student size"
    cells = _cell_means(runs)
    if cells.empty:
        return _empty(path, title, "no student runs")
    probes = runs[runs.role == PROBE].groupby(["dataset", "teacher_set"]).test_acc.mean()
    datasets = sorted(cells.dataset.unique())
    methods = [m for m in [_baseline(runs)] if m] + _methods(runs)
    plt = _plt()
    fig, axes = plt.subplots(1, len(datasets), figsize=(3.6 * len(datasets), 3.3), squeeze=False)
    for ax, d in zip(axes[0], datasets):
        c = cells[cells.dataset == d]
        best = probes[d].idxmax() if d in probes.index.get_level_values(0) else None
        for m in methods:
            g = c[(c.method == m) & ((c.teacher_set == best) | (c.role == BASELINE))].sort_values("student_params")
            for scratch, gg in g.groupby(g.student_init == "scratch"):
                ax.errorbar(gg.student_params, 100 * gg["mean"], yerr=100 * gg["std"].fillna(0), capsize=2,
                            color=method_color(m, runs), marker="o" if scratch else "*", ms=4 if scratch else 10,
                            ls="-" if scratch else "none")
        ax.set_xscale("log")
        ax.set_title(f"{d} (teachers: {best})", fontsize=9)
        ax.set_xlabel("student parameters")
        ax.grid(alpha=0.3)
    axes[0][0].set_ylabel("test accuracy (%)")
    _method_legend(fig, runs, methods, [Line2D([], [], color="0.3", marker="*", ms=10, ls="none",
                                         label="pre-trained student")])
    fig.suptitle(title + " (mean ± std over seeds)", fontsize=10)
    fig.tight_layout()
    _save(fig, path)


def rho_by_teacher(runs, path):
    """Which teacher AFT keeps: mean learned ρ per teacher, for every AFT teacher set."""
    import pandas as pd

    aft = _with_penalty(runs, "aft")
    title = f"Learned ρ per teacher ({method_label(aft or 'AFT')})"
    a = _selected(runs)
    a = a[(a.method == aft) & a.rho_by_teacher.notna()]
    if a.empty:
        return _empty(path, title, "no AFT runs with learned ρ")
    rows = []
    for _, r in a.iterrows():
        for t, v in json.loads(r.rho_by_teacher).items():
            rows.append({"dataset": r.dataset, "teacher_set": r.teacher_set, "teacher": t, "rho": v})
    df = pd.DataFrame(rows)
    panels = sorted(df.groupby(["dataset", "teacher_set"]).groups)
    plt = _plt()
    fig, axes = plt.subplots(1, len(panels), figsize=(1.2 + 1.7 * len(panels), 3.2), squeeze=False, sharey=True)
    for ax, (d, ts) in zip(axes[0], panels):
        g = df[(df.dataset == d) & (df.teacher_set == ts)].groupby("teacher", sort=False).rho
        ax.bar(range(len(g)), g.mean(), yerr=g.std().fillna(0), capsize=3, color="tab:green")
        ax.set_xticks(range(len(g)), list(g.groups), rotation=30, ha="right", fontsize=7)
        ax.axhline(0.5, color="0.4", ls=":", lw=1)
        ax.set_title(f"{d}\n{ts}", fontsize=8)
    axes[0][0].set_ylabel("mean ρ (init 0.5)")
    axes[0][0].set_ylim(0, 1)
    fig.suptitle(title + ", mean ± std over students and seeds", fontsize=10, y=1.06)
    _save(fig, path)


def single_vs_union(runs, path):
    """Complementarity: each multi-teacher set against its members' single-teacher sets."""
    title = "Single teachers vs their union"
    sets = runs.drop_duplicates("teacher_set").set_index("teacher_set").teachers.to_dict()
    singles = {v: k for k, v in sets.items() if isinstance(v, str) and "+" not in v and v != NO_TEACHERS}
    unions = {k: v.split("+") for k, v in sets.items() if isinstance(v, str) and "+" in v}
    unions = {k: v for k, v in unions.items() if all(t in singles for t in v)}
    if not unions:
        return _empty(path, title, "no teacher set whose members also run as single-teacher sets")
    cells = _cell_means(runs)
    probes = runs[runs.role == PROBE].groupby(["dataset", "teacher_set"]).test_acc.mean()
    shown = [m for m in (_with_penalty(runs, "kd"), _with_penalty(runs, "aft")) if m]
    panels = []
    for u, members in unions.items():
        for d in sorted(cells[cells.teacher_set == u].dataset.unique()):
            panels.append((d, u, [singles[t] for t in members] + [u]))
    plt = _plt()
    fig, axes = plt.subplots(1, len(panels), figsize=(4.2 * len(panels), 3.3), squeeze=False)
    for ax, (d, u, tsets) in zip(axes[0], panels):
        methods = [PROBE] + shown
        width = 0.8 / len(methods)
        for j, m in enumerate(methods):
            if m == PROBE:
                vals = [probes.get((d, t), np.nan) for t in tsets]
            else:
                c = cells[(cells.dataset == d) & (cells.method == m)].groupby("teacher_set")["mean"].mean()
                vals = [c.get(t, np.nan) for t in tsets]
            ax.bar(np.arange(len(tsets)) + (j - (len(methods) - 1) / 2) * width, 100 * np.asarray(vals), width,
                   label="probe" if m == PROBE else method_label(m),
                   color="k" if m == PROBE else method_color(m, runs), alpha=0.35 if m == PROBE else 1)
        base = cells[(cells.dataset == d) & (cells.method == _baseline(runs))]["mean"]
        if len(base):
            ax.axhline(100 * base.mean(), color=method_color(_baseline(runs), runs), ls="--", lw=1.2,
                       label=_base_label(runs))
        ax.set_xticks(range(len(tsets)), tsets, rotation=15)
        ax.set_title(d, fontsize=9)
        ax.set_ylabel("test accuracy (%)")
        finite = [v for v in ax.containers for v in v.datavalues if np.isfinite(v)]
        if finite:
            ax.set_ylim(max(0, min(finite) - 8), min(100, max(finite) + 4))
        ax.legend(fontsize=7, frameon=False)
    fig.suptitle(title + " (mean over students and seeds)", fontsize=10)
    _save(fig, path)


def beta_gains(runs) -> pd.DataFrame:
    """Every run (all β, not only the selected one) of a method that ran with more than one β,
    with `gain`: its validation accuracy minus that of the baseline (STL) on the same (dataset,
    student, seed), in points. Runs without a matching baseline run are left out."""
    import pandas as pd

    r = runs[runs.role == TRANSFER]
    r = r[r.groupby(["dataset", "method"]).beta.transform("nunique") > 1]
    stl = runs[runs.method == _baseline(runs)].groupby(["dataset", "student", "seed"]).val_acc.mean()
    r = r[pd.MultiIndex.from_arrays([r.dataset, r.student, r.seed]).isin(stl.index)]
    return r.assign(gain=100 * (r.val_acc.to_numpy() - stl.reindex(list(zip(r.dataset, r.student, r.seed))).to_numpy()))


def accuracy_vs_beta(runs, path):
    """Validation accuracy against β for each method, relative to STL of the same student and
    seed (so students of different size average), real teachers vs control teachers."""
    base = _base_label(runs)
    title = f"Validation accuracy − {base}'s vs β"
    r = beta_gains(runs)
    if r.empty:
        return _empty(path, title, f"no method ran with more than one β and a {base} run in this sweep")
    panels = sorted(r.groupby(["dataset", "method"]).groups)
    plt = _plt()
    ncols = min(4, len(panels))
    nrows = -(-len(panels) // ncols)
    fig, axes = plt.subplots(nrows, ncols, figsize=(3.4 * ncols, 3.0 * nrows), squeeze=False)
    for ax in axes.flat[len(panels):]:
        ax.axis("off")
    for ax, (d, m) in zip(axes.flat, panels):
        g = r[(r.dataset == d) & (r.method == m)]
        for ts, gg in g.groupby("teacher_set"):
            s = gg.groupby("beta").gain.agg(["mean", "std"]).reset_index()
            ctl = bool(gg.control_teacher.any())
            ax.errorbar(s.beta, s["mean"], yerr=s["std"].fillna(0), marker="o", ms=3, capsize=2,
                        ls="--" if ctl else "-", label=f"{ts}{' (control)' if ctl else ''}")
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
    _save(fig, path)


def accuracy_figure(runs: pd.DataFrame, dataset: str, out_png: str) -> None:
    """One dataset: test accuracy by method and teacher set, one panel per student; the
    baseline as a band, the teacher set's probe as a marker."""
    from .tables import summarise

    plt = _plt()
    d = summarise(runs[runs.dataset == dataset])
    trained = d[d.role != PROBE]
    students = list(trained.sort_values(["student_params", "student"]).student.unique())
    tsets = sorted(d[(d.teacher_set != NO_TEACHERS)].teacher_set.unique())
    methods = _methods(runs)
    fig, axes = plt.subplots(1, max(1, len(students)), figsize=(3.2 + 2.2 * len(tsets) * max(1, len(students)) / 2, 3.6),
                             sharey=True, squeeze=False)
    width = 0.8 / max(1, len(methods))
    for ax, st in zip(axes[0], students):
        x = np.arange(len(tsets))
        s = d[d.student == st]
        stl = s[s.method == _baseline(runs)]
        if len(stl):
            mu, sd = 100 * stl.test_mean.iloc[0], 100 * stl.test_std.iloc[0]
            ax.axhline(mu, color="0.3", ls="--", lw=1.2, label=f"{_base_label(runs)} (no teacher)")
            ax.axhspan(mu - sd, mu + sd, color="0.85", zorder=0)
        for j, m in enumerate(methods):
            sel = s[s.method == m].set_index("teacher_set").reindex(tsets)
            ax.bar(x + (j - (len(methods) - 1) / 2) * width, 100 * sel.test_mean, width, yerr=100 * sel.test_std.fillna(0),
                   capsize=3, color=method_color(m, runs), label=method_label(m))
        pr = d[d.role == PROBE].set_index("teacher_set").reindex(tsets)
        ax.plot(x, 100 * pr.test_mean, "kD", ms=6, label="teacher probe")
        controls = set(runs[(runs.dataset == dataset) & runs.control_teacher].teacher_set)
        ax.set_xticks(x, [f"{t}\n(control)" if t in controls else t for t in tsets], rotation=20, ha="right")
        ax.set_title(f"{st} ({s.student_init.iloc[0]})", fontsize=9)
        ax.grid(axis="y", alpha=0.3)
    axes[0][0].set_ylabel("test accuracy (%)")
    lo = 100 * np.nanmin(d.test_mean - d.test_std) - 5
    hi = 100 * np.nanmax(d.test_mean + d.test_std) + 3
    axes[0][0].set_ylim(max(0, lo), min(100, hi))
    handles, labels = axes[0][0].get_legend_handles_labels()
    rows = 1 if len(labels) <= 6 else 2
    fig.legend(handles, labels, loc="upper center", ncol=-(-len(labels) // rows), fontsize=8, frameon=False)
    top = 0.90 if rows == 1 else 0.85
    fig.suptitle(f"{dataset} ({d.modality.iloc[0]}): accuracy by method and teacher set, mean ± std over seeds",
                 fontsize=10, y=top + 0.01)
    fig.tight_layout(rect=(0, 0, 1, top))
    _save(fig, out_png)


def claim_figures(runs, out_dir) -> list[str]:
    paths = []
    for name in CLAIM_FIGURES:
        p = f"{out_dir}/{name}.png"
        globals()[name](runs, p)
        paths.append(p)
    return paths
