"""The knowledge-specific gain: what a transfer method gains from a teacher set's *knowledge*,
measured against the set's matched noise null (`noise_of_<set>`: N(0, 1) features of the same
width and storage dtype, a block's `noise_null: true`), not only against STL. Per (dataset,
student, method, teacher set) and seed: accuracy with the set − accuracy with its null, each run's
β chosen on validation; the mean over seeds with a paired Student-t 95% interval (seeds are the
unit that was randomised). Beside it, both arms' gains over STL on the same seeds: a method whose
gain over STL is as large with noise adds no knowledge, only a regulariser.
tables/knowledge_gain.{md,csv} and figures/knowledge_gain.png."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from aftbench.core.io import atomic_path, write_text
from aftbench.core.layout import NO_TEACHERS, real_set_of
from aftbench.core.roles import method_label, method_order
from aftbench.report.plots import method_color, placeholder, pyplot, save_png
from aftbench.report.stats import chosen, t_interval

COLUMNS = ["dataset", "student", "method", "teacher_set", "n_seeds"]
ARMS = {"knowledge_gain": "set − null", "gain_with_set": "set − STL", "gain_with_null": "null − STL"}


def knowledge_table(runs: pd.DataFrame) -> pd.DataFrame:
    """One row per (dataset, student, method, teacher set) that has runs on its noise null:
    mean and 95% interval (points of accuracy) of set − null, set − STL and null − STL over the
    seeds where every arm has a run (STL arms: where the sweep has STL)."""
    sel = chosen(runs)
    nulls = sel[sel.teacher_set.map(lambda t: real_set_of(t) is not None)]
    rows = []
    for (ds, st, m, null), grp in nulls.groupby(["dataset", "student", "method", "teacher_set"], sort=True):
        real = sel[
            (sel.dataset == ds) & (sel.student == st) & (sel.method == m) & (sel.teacher_set == real_set_of(null))
        ]
        stl = sel[(sel.dataset == ds) & (sel.student == st) & (sel.teacher_set == NO_TEACHERS)]
        arms = pd.concat(
            {
                "set": real.set_index("seed").test_acc,
                "null": grp.set_index("seed").test_acc,
                "stl": stl.groupby("seed").test_acc.first(),
            },
            axis=1,
        )
        both = arms.dropna(subset=["set", "null"])
        row = {"dataset": ds, "student": st, "method": m, "teacher_set": real_set_of(null), "n_seeds": len(both)}
        diffs = {
            "knowledge_gain": both["set"] - both["null"],
            "gain_with_set": both["set"] - both["stl"],
            "gain_with_null": both["null"] - both["stl"],
        }
        for name, d in diffs.items():
            mean, lo, hi = t_interval(100 * d)
            row.update({name: mean, f"{name}_lo": lo, f"{name}_hi": hi})
        rows.append(row)
    cols = COLUMNS + [f"{a}{s}" for a in ARMS for s in ("", "_lo", "_hi")]
    table = pd.DataFrame(rows, columns=cols)
    rank = {m: i for i, m in enumerate(method_order(runs))}
    table = table.assign(_o=table.method.map(rank)).sort_values(["dataset", "student", "_o", "teacher_set"])
    return table.drop(columns="_o").reset_index(drop=True)


def _cell(mean: float, lo: float, hi: float) -> str:
    if pd.isna(mean):
        return "–"
    return f"{mean:+.2f}" + ("" if pd.isna(lo) else f" [{lo:+.2f}, {hi:+.2f}]")


CAPTION = (
    "Knowledge-specific gain: accuracy points of each transfer method with a teacher set minus the same "
    "method with the set's matched noise null (N(0, 1) features of the set's width and storage dtype, fixed "
    "per example); beside it each arm's gain over STL. β of every run chosen on validation; mean over seeds "
    "with a paired Student-t 95% interval (seeds: the randomised unit; `n` seeds with both arms). A gain over "
    "STL that noise matches is a regulariser's, not the teacher's knowledge."
)


def write_knowledge(runs: pd.DataFrame, out_dir: Path, draw: bool = True) -> pd.DataFrame:
    table = knowledge_table(runs)
    with atomic_path(Path(out_dir) / "tables" / "knowledge_gain.csv") as tmp:
        table.to_csv(tmp, index=False)
    md = [f"# Knowledge-specific gain\n\n{CAPTION}\n"]
    if table.empty:
        md.append("\nNo noise-null runs in this sweep: set `noise_null: true` on a block to measure it.\n")
    for ds, t in table.groupby("dataset", sort=False):
        shown = pd.DataFrame(
            {
                "student": t.student,
                "method": t.method,
                "teacher set": t.teacher_set,
                "n": t.n_seeds,
                **{
                    f"{label} (points)": [_cell(*r) for r in zip(t[a], t[f"{a}_lo"], t[f"{a}_hi"], strict=True)]
                    for a, label in ARMS.items()
                },
            }
        )
        md.append(f"\n## {ds}\n\n" + shown.to_markdown(index=False, disable_numparse=True) + "\n")
    write_text(Path(out_dir) / "tables" / "knowledge_gain.md", "".join(md))
    if draw:  # a sweep without noise nulls declares no such figure (aftbench.report.drawable)
        knowledge_figure(runs, table, str(Path(out_dir) / "figures" / "knowledge_gain.png"))
    return table


def knowledge_figure(runs: pd.DataFrame, table: pd.DataFrame, path: str) -> None:
    """One row per (dataset, student, teacher set), one marker per method: the knowledge-specific
    gain (set − its noise null, filled, with its 95% interval) beside the same method's gain over
    STL with the set (hollow): the distance between them is what noise alone gives."""
    title = "Knowledge-specific gain (set − its noise null)"
    if table.empty:
        return placeholder(path, title, "no noise-null runs in this sweep: set `noise_null: true` on a block")
    plt = pyplot()
    cells = list(dict.fromkeys(zip(table.dataset, table.student, table.teacher_set, strict=True)))
    methods = list(dict.fromkeys(table.method))
    fig, ax = plt.subplots(figsize=(6.0, 0.9 + 0.45 * len(cells) * max(1, len(methods)) ** 0.5))
    step = 0.7 / max(1, len(methods))
    for i, cell in enumerate(cells):
        rows = table[(table.dataset == cell[0]) & (table.student == cell[1]) & (table.teacher_set == cell[2])]
        for j, m in enumerate(methods):
            r = rows[rows.method == m]
            if r.empty:
                continue
            r = r.iloc[0]
            y = i + (j - (len(methods) - 1) / 2) * step
            c = method_color(m, runs)
            err = [[r.knowledge_gain - r.knowledge_gain_lo], [r.knowledge_gain_hi - r.knowledge_gain]]
            ax.errorbar(r.knowledge_gain, y, xerr=err, fmt="o", color=c, ms=5, capsize=2, lw=1.2)
            ax.plot(r.gain_with_set, y, marker="o", mfc="none", mec=c, ms=5, ls="none")
    ax.axvline(0, color="0.3", lw=1)
    ax.set_yticks(range(len(cells)), [f"{d} · {st}\n{ts}" for d, st, ts in cells], fontsize=7)
    ax.invert_yaxis()
    ax.set_xlabel("accuracy points")
    ax.set_title(title, fontsize=9)
    ax.grid(axis="x", alpha=0.3)
    from matplotlib.lines import Line2D

    handles = [
        Line2D([], [], color=method_color(m, runs), marker="o", ls="none", label=method_label(m)) for m in methods
    ]
    handles += [
        Line2D([], [], color="0.3", marker="o", ls="-", label="set − null (95% t interval over seeds)"),
        Line2D([], [], color="0.3", marker="o", mfc="none", ls="none", label="set − STL (same seeds)"),
    ]
    fig.legend(handles=handles, fontsize=7, loc="center left", bbox_to_anchor=(1.0, 0.5), frameon=False)
    save_png(fig, path)
