"""The paper's claims as figures, drawn from runs.csv (tidy runs, β already selected on val).

Each function takes the runs DataFrame and writes one PNG. When a sweep holds no runs a figure
needs (e.g. no β grid, no multi-teacher set), the PNG says so instead of being left out, so the
set of outputs is the same for every sweep.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

import numpy as np

from .io import atomic_path

if TYPE_CHECKING:  # imported where used: the workflow imports this module while building the DAG
    import pandas as pd

CLAIM_FIGURES = ["normalized_error", "student_vs_probe", "accuracy_vs_size", "rho_by_teacher",
                 "single_vs_union", "accuracy_vs_beta"]
TRANSFER = ["kd", "rkd", "btune", "aft_nokernel", "aft_fixed", "aft"]
# One colour per method in every figure (tab10); a method not listed here is drawn in the spare C9.
COLORS = {m: f"C{i}" for i, m in enumerate(["stl", "kd", "rkd", "btune", "aft_nokernel", "aft_fixed", "aft", "ft",
                                              "logit_kd"])}
STUDENT_STYLES = [("-", "o"), ("--", "s"), (":", "^"), ("-.", "D")]  # smallest student first


def method_color(method: str) -> str:
    return COLORS.get(method, "C9")


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
    present = set(runs.method)
    return [m for m in TRANSFER if m in present] + sorted(present - set(TRANSFER) - {"stl", "probe"})


def _selected(runs):
    return runs[runs.selected & (runs.method != "probe")]


def _cell_means(runs) -> pd.DataFrame:
    """Mean test accuracy over seeds per (dataset, modality, student, params, method, teacher set)."""
    return (_selected(runs).groupby(["dataset", "modality", "student", "student_init", "student_params", "method",
                                     "teacher_set"])
            .test_acc.agg(["mean", "std", "count"]).reset_index())


def error_ratios(runs) -> pd.DataFrame:
    """Test error of each transfer method / test error of STL on the same (dataset, student),
    one row per (dataset, student, method, teacher set), means over seeds of selected runs."""
    import pandas as pd

    cells = _cell_means(runs)
    stl = cells[cells.method == "stl"].set_index(["dataset", "student"])["mean"]
    rows = []
    for _, r in cells[cells.method != "stl"].iterrows():
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
    title = "Error relative to STL (lower is better), pre-trained teacher sets"
    df = error_ratios(runs[~runs.control_teacher.astype(bool)] if "control_teacher" in runs else runs)
    if df.empty:
        return _empty(path, title, "no STL runs to normalise by")
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
               label=m.upper(), color=method_color(m))
    ax.axhline(1.0, color="0.3", ls="--", lw=1)
    ax.set_xticks(range(len(groups)), groups)
    ax.set_ylabel("error / STL error")
    ax.set_title(title + "; bars: mean ± s.e. over (dataset, student, teacher set)", fontsize=9)
    ax.legend(fontsize=7, ncol=min(6, len(methods)), loc="upper center", bbox_to_anchor=(0.5, -0.12), frameon=False)
    lo = np.nanmin(df.ratio) if len(df) else 0.9
    ax.set_ylim(min(0.8, lo - 0.05), max(1.1, np.nanmax(df.ratio) + 0.05))
    _save(fig, path)


def _student_styles(cells) -> dict[str, tuple[str, str]]:
    """Line style and marker per student in `cells` (one dataset's), smallest first."""
    c = cells.drop_duplicates("student").sort_values("student_params")
    return {st: STUDENT_STYLES[k % len(STUDENT_STYLES)] for k, st in enumerate(c.student)}


def _method_legend(fig, methods, extra=()):
    from matplotlib.lines import Line2D

    handles = [Line2D([], [], color=method_color(m), lw=2, label=m.upper()) for m in methods] + list(extra)
    fig.legend(handles=handles, fontsize=7, loc="center left", bbox_to_anchor=(1.0, 0.5), frameon=False)


def student_vs_probe(runs, path):
    """Fig 1c analog: student accuracy against the teacher set's probe accuracy. Colour: method;
    line style and marker: student (legend under each panel); STL of each student as a
    horizontal line in its style."""
    import pandas as pd
    from matplotlib.lines import Line2D

    title = "Student accuracy vs the teacher set's linear-probe accuracy"
    cells = _cell_means(runs)
    probes = runs[runs.method == "probe"].groupby(["dataset", "teacher_set"]).test_acc.mean()
    stl = cells[cells.method == "stl"]
    cells = cells[cells.method != "stl"]
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
                ax.plot(100 * g.probe, 100 * g["mean"], ls=ls, marker=mk, ms=4, color=method_color(m), lw=1.2)
        for st, (ls, _) in styles.items():
            base = stl[(stl.dataset == d) & (stl.student == st)]["mean"]
            if len(base):
                ax.axhline(100 * base.iloc[0], color=method_color("stl"), ls=ls, lw=1.5, zorder=0)
        ax.legend(handles=[Line2D([], [], color="0.3", ls=ls, marker=mk, ms=4, label=st)
                           for st, (ls, mk) in styles.items()], fontsize=7, frameon=False, ncol=len(styles),
                  loc="upper center", bbox_to_anchor=(0.5, -0.2))
        ax.set_title(d, fontsize=9)
        ax.set_xlabel("teacher-set probe accuracy (%)")
        ax.grid(alpha=0.3)
    axes[0][0].set_ylabel("student test accuracy (%)")
    _method_legend(fig, _methods(runs), [Line2D([], [], color=method_color("stl"), lw=1.5, label="STL (same student)")])
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
    probes = runs[runs.method == "probe"].groupby(["dataset", "teacher_set"]).test_acc.mean()
    datasets = sorted(cells.dataset.unique())
    methods = ["stl"] + _methods(runs)
    plt = _plt()
    fig, axes = plt.subplots(1, len(datasets), figsize=(3.6 * len(datasets), 3.3), squeeze=False)
    for ax, d in zip(axes[0], datasets):
        c = cells[cells.dataset == d]
        best = probes[d].idxmax() if d in probes.index.get_level_values(0) else None
        for m in methods:
            g = c[(c.method == m) & ((c.teacher_set == best) | (m == "stl"))].sort_values("student_params")
            for scratch, gg in g.groupby(g.student_init == "scratch"):
                ax.errorbar(gg.student_params, 100 * gg["mean"], yerr=100 * gg["std"].fillna(0), capsize=2,
                            color=method_color(m), marker="o" if scratch else "*", ms=4 if scratch else 10,
                            ls="-" if scratch else "none")
        ax.set_xscale("log")
        ax.set_title(f"{d} (teachers: {best})", fontsize=9)
        ax.set_xlabel("student parameters")
        ax.grid(alpha=0.3)
    axes[0][0].set_ylabel("test accuracy (%)")
    _method_legend(fig, methods, [Line2D([], [], color="0.3", marker="*", ms=10, ls="none",
                                         label="pre-trained student")])
    fig.suptitle(title + " (mean ± std over seeds)", fontsize=10)
    fig.tight_layout()
    _save(fig, path)


def rho_by_teacher(runs, path):
    import pandas as pd

    """Which teacher AFT keeps: mean learned ρ per teacher, for every AFT teacher set."""
    title = "Learned ρ per teacher (AFT)"
    a = _selected(runs)
    a = a[(a.method == "aft") & a.rho_by_teacher.notna()]
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
    singles = {v: k for k, v in sets.items() if isinstance(v, str) and "+" not in v and v != "none"}
    unions = {k: v.split("+") for k, v in sets.items() if isinstance(v, str) and "+" in v}
    unions = {k: v for k, v in unions.items() if all(t in singles for t in v)}
    if not unions:
        return _empty(path, title, "no teacher set whose members also run as single-teacher sets")
    cells = _cell_means(runs)
    probes = runs[runs.method == "probe"].groupby(["dataset", "teacher_set"]).test_acc.mean()
    panels = []
    for u, members in unions.items():
        for d in sorted(cells[cells.teacher_set == u].dataset.unique()):
            panels.append((d, u, [singles[t] for t in members] + [u]))
    plt = _plt()
    fig, axes = plt.subplots(1, len(panels), figsize=(4.2 * len(panels), 3.3), squeeze=False)
    for ax, (d, u, tsets) in zip(axes[0], panels):
        methods = ["probe"] + [m for m in _methods(runs) if m in ("kd", "aft")]
        width = 0.8 / len(methods)
        for j, m in enumerate(methods):
            if m == "probe":
                vals = [probes.get((d, t), np.nan) for t in tsets]
            else:
                c = cells[(cells.dataset == d) & (cells.method == m)].groupby("teacher_set")["mean"].mean()
                vals = [c.get(t, np.nan) for t in tsets]
            ax.bar(np.arange(len(tsets)) + (j - (len(methods) - 1) / 2) * width, 100 * np.asarray(vals), width,
                   label=m.upper() if m != "probe" else "probe", color="k" if m == "probe" else method_color(m),
                   alpha=0.35 if m == "probe" else 1)
        base = cells[(cells.dataset == d) & (cells.method == "stl")]["mean"]
        if len(base):
            ax.axhline(100 * base.mean(), color=method_color("stl"), ls="--", lw=1.2, label="STL")
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
    with `gain`: its validation accuracy minus that of STL on the same (dataset, student, seed),
    in points. Runs without a matching STL run are left out."""
    import pandas as pd

    r = runs[(~runs.method.isin(["stl", "probe"]))]
    r = r[r.groupby(["dataset", "method"]).beta.transform("nunique") > 1]
    stl = runs[runs.method == "stl"].groupby(["dataset", "student", "seed"]).val_acc.mean()
    r = r[pd.MultiIndex.from_arrays([r.dataset, r.student, r.seed]).isin(stl.index)]
    return r.assign(gain=100 * (r.val_acc.to_numpy() - stl.reindex(list(zip(r.dataset, r.student, r.seed))).to_numpy()))


def accuracy_vs_beta(runs, path):
    """Validation accuracy against β for each method, relative to STL of the same student and
    seed (so students of different size average), real teachers vs control teachers."""
    title = "Validation accuracy − STL's vs β"
    r = beta_gains(runs)
    if r.empty:
        return _empty(path, title, "no method ran with more than one β and an STL run in this sweep")
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
        ax.set_title(f"{d} · {m.upper()}", fontsize=9)
        ax.set_xlabel("β")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=6, frameon=False)
    for row in axes:
        row[0].set_ylabel("val. accuracy − STL's (points)")
    fig.suptitle(title + " (mean ± std over students and seeds; dashed: control teacher sets)", fontsize=10)
    fig.tight_layout(rect=(0, 0, 1, 0.98))
    _save(fig, path)


def claim_figures(runs, out_dir) -> list[str]:
    paths = []
    for name in CLAIM_FIGURES:
        p = f"{out_dir}/{name}.png"
        globals()[name](runs, p)
        paths.append(p)
    return paths
