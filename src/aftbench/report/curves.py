"""Training curves: what each run logged every `log_every` steps (cross-entropy, penalty, and ρ's
mean for a penalty that learns ρ), as one table (`tables/curves.csv`, a row per run and logged
step) and per dataset one figure (`figures/<dataset>_curves.png`).

The figure has a row per (student, teacher set) and a column per quantity: training
cross-entropy, penalty, ρ's mean (when any run learns ρ). Each method is its selected runs (β
chosen on validation, as in the tables): the median over seeds as a line, the seeds' range as a
band. A run that diverged (aftbench.core.records.divergence_check) at any β is drawn on its own,
thin and dashed, with a cross at its end: the figure a researcher looks at first when a β or a
method misbehaves.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from aftbench.core.io import atomic_path
from aftbench.core.layout import NO_TEACHERS
from aftbench.core.roles import PROBE, method_label, method_order
from aftbench.report.plots import method_color, placeholder, pyplot, save_png

if TYPE_CHECKING:
    import pandas as pd

CURVE_COLUMNS = ["run_id", "step", "ce", "penalty", "rho_mean"]
QUANTITIES = {"ce": "training cross-entropy", "penalty": "penalty (unweighted)", "rho_mean": "ρ mean"}
MAX_ROWS = 8  # (student, teacher set) cells drawn per dataset; the csv has them all


def curves_table(records: list[dict]) -> pd.DataFrame:
    """One row per training run and logged step, from the (verified) run records."""
    import pandas as pd

    rows = [
        {"run_id": m["run_id"], **{k: h.get(k, np.nan) for k in CURVE_COLUMNS[1:]}}
        for m in records
        if m.get("kind") == "train"
        for h in m.get("history") or []
    ]
    return pd.DataFrame(rows, columns=CURVE_COLUMNS)


def write_curves(records: list[dict], runs: pd.DataFrame, out) -> pd.DataFrame:
    curves = curves_table(records)
    with atomic_path(out / "tables" / "curves.csv") as tmp:
        curves.to_csv(tmp, index=False)
    for ds in sorted(runs.dataset.unique()):
        curves_figure(curves, runs, ds, str(out / "figures" / f"{ds}_curves.png"))
    return curves


def _cells(runs: pd.DataFrame) -> list[tuple[str, str]]:
    with_sets = runs[runs.teacher_set != NO_TEACHERS]
    cells = list(dict.fromkeys(zip(with_sets.student, with_sets.teacher_set, strict=True)))
    # a student trained without teachers only (STL alone) still gets its row
    with_a_set = {student for student, _ in cells}
    cells += [(s, NO_TEACHERS) for s in dict.fromkeys(runs.student) if s not in with_a_set]
    return cells


def curves_figure(curves: pd.DataFrame, runs: pd.DataFrame, dataset: str, path: str) -> None:
    title = f"{dataset}: training curves"
    trained = runs[(runs.dataset == dataset) & (runs.role != PROBE)]
    data = curves.merge(trained[["run_id", "student", "method", "teacher_set", "seed", "selected", "diverged"]])
    if data.empty:
        return placeholder(path, title, "no training run on this dataset logged a curve")
    cells = _cells(trained)
    shown = cells[:MAX_ROWS]
    quantities = [q for q in QUANTITIES if q != "rho_mean" or data.rho_mean.notna().any()]
    plt = pyplot()
    fig, axes = plt.subplots(
        len(shown), len(quantities), figsize=(2.6 * len(quantities), 1.9 * len(shown) + 0.5), squeeze=False
    )
    methods = [m for m in method_order(trained) if m in set(trained.method)]
    handles, diverged = {}, False
    for row, (student, tset) in zip(axes, shown, strict=True):
        # this cell's runs, and its student's runs without teachers (STL) beside them
        cell = data[(data.student == student) & data.teacher_set.isin([tset, NO_TEACHERS])]
        for ax, q in zip(row, quantities, strict=True):
            for m in methods:
                runs_m = cell[cell.method == m]
                color = method_color(m, trained)
                chosen = runs_m[runs_m.selected & runs_m[q].notna()]
                if q != "ce" and (chosen[q].fillna(0) == 0).all():
                    chosen = chosen.iloc[0:0]  # no penalty (STL), no ρ: nothing to draw
                if not chosen.empty:
                    by_step = chosen.pivot_table(index="step", columns="seed", values=q)
                    (line,) = ax.plot(by_step.index, by_step.median(axis=1), color=color, lw=1.2)
                    if by_step.shape[1] > 1:
                        ax.fill_between(by_step.index, by_step.min(axis=1), by_step.max(axis=1), color=color, alpha=0.2)
                    handles.setdefault(method_label(m), line)
                for _, one in runs_m[runs_m.diverged].groupby("run_id"):
                    ax.plot(one.step, one[q], color=color, lw=0.8, ls="--")
                    ax.plot(one.step.iloc[-1:], one[q].iloc[-1:], "x", color=color, ms=5)
                    diverged = True
            if q == "penalty" and (cell.penalty > 0).any():
                ax.set_yscale("log")  # penalties of different methods differ by orders of magnitude
            ax.set_title(f"{student} · {tset}" if q == "ce" else "", fontsize=7.5, loc="left")
            ax.set_ylabel(QUANTITIES[q], fontsize=7)
            ax.tick_params(which="both", labelsize=6.5)
            ax.grid(alpha=0.3)
    for ax in axes[-1]:
        ax.set_xlabel("step", fontsize=7)
    note = f" (first {MAX_ROWS} of {len(cells)} cells; all in tables/curves.csv)" if len(cells) > len(shown) else ""
    fig.suptitle(title + note + ": median over seeds, band = range", fontsize=8.5)
    if diverged:  # drawn in its method's colour; the legend says what the dashes and crosses mean
        from matplotlib.lines import Line2D

        handles["diverged run (any β)"] = Line2D([], [], color="0.3", lw=0.8, ls="--", marker="x", ms=5)
    fig.legend(
        list(handles.values()), list(handles), loc="lower center", ncol=min(6, len(handles)), fontsize=7, frameon=False
    )
    fig.tight_layout(rect=(0, 0.06, 1, 0.97))
    save_png(fig, path)
