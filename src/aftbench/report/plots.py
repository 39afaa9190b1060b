"""What every figure shares: matplotlib set up headless, atomic PNG writes, the placeholder
for a figure whose runs are not in the sweep, and how methods are drawn: report order, one
colour per method (methods and their roles: aftbench.core.roles)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from aftbench.core.io import atomic_path
from aftbench.core.layout import NO_TEACHERS, real_set_of
from aftbench.core.roles import PROBE, baseline_method, method_label, method_order

if TYPE_CHECKING:  # imported where used: the workflow imports aftbench.report.figures while building the DAG
    import pandas as pd


STUDENT_STYLES = [("-", "o"), ("--", "s"), (":", "^"), ("-.", "D")]  # smallest student first


# tab10 without its grey (C7), which stays for probes and other non-methods
PALETTE = ["C0", "C1", "C2", "C3", "C4", "C5", "C6", "C8", "C9", "navy", "darkgoldenrod", "teal"]


# One colour per teacher role, the same in every figure, none of them a method's colour: what a
# teacher set is (pre-trained knowledge, or a control) reads at a glance wherever sets are drawn.
TEACHER_ROLE_COLORS = {
    "pre-trained": "black",
    "random-init twin": "sienna",
    "noise null": "darkgray",
    "noise appended": "orchid",
}
TEACHER_SET_MARKERS = ["o", "s", "^", "D", "v", "P", "X", "*"]


def teacher_role(teacher_set: str, control: bool, teachers: str = "") -> str:
    """A teacher set's role for figures: a matched noise null, pre-trained, or a control (a real
    teacher with noise appended where it has several members, else a random-init twin)."""
    from aftbench.core.layout import real_set_of

    if real_set_of(teacher_set) is not None:
        return "noise null"
    if not control:
        return "pre-trained"
    return "noise appended" if "+" in str(teachers) and "noise" in str(teachers) else "random-init twin"


def on_pretrained_sets(runs):
    """The runs on pre-trained teacher sets (and teacherless baselines): no random-init control, no
    noise null. What a figure of teacher knowledge draws, and what the claims' ladders use."""
    null = runs.teacher_set.map(lambda t: real_set_of(t) is not None)
    return runs[~(runs.control_teacher.astype(bool) | null)]


def teacher_set_styles(runs) -> dict[str, tuple[str, str, str]]:
    """Teacher set -> (colour of its role, marker, line style), fixed for a report: the same set
    looks the same in every panel; a control is dashed."""
    sets = runs[runs.teacher_set != NO_TEACHERS].drop_duplicates("teacher_set").sort_values("teacher_set")
    out = {}
    for i, (ts, c, t) in enumerate(
        zip(sets.teacher_set, sets.control_teacher.astype(bool), sets.teachers, strict=True)
    ):
        role = teacher_role(ts, c, t)
        out[ts] = (
            TEACHER_ROLE_COLORS[role],
            TEACHER_SET_MARKERS[i % len(TEACHER_SET_MARKERS)],
            "-" if role == "pre-trained" else "--",
        )
    return out


def method_color(method: str, runs) -> str:
    """One colour per method, the same in every figure of one report, in report order."""
    students = [m for m in method_order(runs) if m not in set(runs[runs.role == PROBE].method)]
    return PALETTE[students.index(method) % len(PALETTE)] if method in students else "0.5"


def baseline_label(runs) -> str:
    return method_label(baseline_method(runs) or "baseline")


def pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def save_png(fig, path):
    """The figure as PNG at `path` and as PDF beside it (for a paper)."""
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=150, bbox_inches="tight", format="png")
    with atomic_path(str(path)[: -len(".png")] + ".pdf" if str(path).endswith(".png") else f"{path}.pdf") as tmp:
        fig.savefig(tmp, bbox_inches="tight", format="pdf")
    pyplot().close(fig)


def placeholder(path, title, why):
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(6, 2))
    ax.axis("off")
    ax.text(0.5, 0.5, f"{title}\n\n{why}", ha="center", va="center", fontsize=10, wrap=True)
    save_png(fig, path)


def selected_runs(runs):
    return runs[runs.selected & (runs.role != PROBE)]


def cell_means(runs) -> pd.DataFrame:
    """Mean test accuracy over seeds per (dataset, modality, student, params, method, teacher set)."""
    return (
        selected_runs(runs)
        .groupby(["dataset", "modality", "student", "student_init", "student_params", "method", "role", "teacher_set"])
        .test_acc.agg(["mean", "std", "count"])
        .reset_index()
    )


def student_styles(cells) -> dict[str, tuple[str, str]]:
    """Line style and marker per student in `cells` (one dataset's), smallest first."""
    c = cells.drop_duplicates("student").sort_values("student_params")
    return {st: STUDENT_STYLES[k % len(STUDENT_STYLES)] for k, st in enumerate(c.student)}


def method_legend(fig, runs, methods, extra=()):
    from matplotlib.lines import Line2D

    handles = [Line2D([], [], color=method_color(m, runs), lw=2, label=method_label(m)) for m in methods] + list(extra)
    fig.legend(handles=handles, fontsize=7, loc="center left", bbox_to_anchor=(1.0, 0.5), frameon=False)
