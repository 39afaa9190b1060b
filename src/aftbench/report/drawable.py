"""Which figures a sweep can support, from its shape alone: the planned runs before it runs
(aftbench.sweep.shape, so the workflow declares only those figures) or its runs table after.
A figure the sweep cannot support is not drawn; the claims table names it and says why, instead
of a placeholder PNG. Each rule reads only what a run is (dataset, student, method, role,
penalty, teacher set, members, control, β, stage, fit_on), never a result."""

from __future__ import annotations

import numpy as np
import pandas as pd

from aftbench.core.layout import CLAIM_FIGURES, GAIN_REPORTS, NO_TEACHERS, PROBE_STUDENT, SCORE_FIGURES, real_set_of
from aftbench.core.roles import BASELINE, PROBE, TRANSFER
from aftbench.report.plots import on_pretrained_sets

MIN_LADDER = 3  # real teacher sets per (dataset, student, method) for a ladder (claim 2's minimum)


def _transfer_on_pretrained_sets(runs) -> pd.DataFrame:
    return on_pretrained_sets(runs[(runs.role == TRANSFER) & (runs.teacher_set != NO_TEACHERS)])


def _students(runs) -> pd.DataFrame:
    return runs[(runs.role != PROBE) & (runs.student != PROBE_STUDENT)]


def _paired_with_baseline(runs) -> str:
    t, b = _transfer_on_pretrained_sets(runs), runs[runs.role == BASELINE]
    both = set(zip(t.dataset, t.student, strict=True)) & set(zip(b.dataset, b.student, strict=True))
    return "" if both else "no transfer run on a pre-trained teacher set beside a baseline (STL) run of its student"


def _improvement(runs) -> str:
    t = _transfer_on_pretrained_sets(runs)
    aft = t[t.penalty == "aft"]
    if aft.empty:
        return "no AFT run on a pre-trained teacher set"
    others = _students(runs)[_students(runs).method.isin(set(_students(runs).method) - set(aft.method))]
    pairs = set(zip(aft.dataset, aft.student, strict=True)) & set(zip(others.dataset, others.student, strict=True))
    return "" if pairs else "no other method on AFT's (dataset, student)"


def _ranks(runs) -> str:
    t = _transfer_on_pretrained_sets(runs)
    cells = t.groupby(["dataset", "student", "teacher_set"]).ngroups
    methods = _students(runs).method.nunique()
    return "" if cells >= 2 and methods >= 2 else "ranks need ≥ 2 cells and ≥ 2 methods"


def _ladder(runs) -> str:
    t = _transfer_on_pretrained_sets(runs)
    probes = runs[runs.role == PROBE]
    probed = set(zip(probes.dataset, probes.teacher_set, strict=True))
    t = t[np.array([(d, s) in probed for d, s in zip(t.dataset, t.teacher_set, strict=True)], bool)]
    sizes = t.groupby(["dataset", "student", "method"]).teacher_set.nunique()
    return (
        "" if (sizes >= MIN_LADDER).any() else f"no student trained on ≥ {MIN_LADDER} probed pre-trained teacher sets"
    )


def _sizes(runs) -> str:
    s = _students(runs).groupby("dataset").student.nunique()
    return "" if (s >= 2).any() else "no dataset with ≥ 2 students"


def _rho(runs) -> str:
    return "" if (runs.penalty == "aft").any() else "no AFT run (learned ρ)"


def _unions(runs) -> str:
    t = on_pretrained_sets(runs[runs.penalty.isin(["aft", "kd"])])
    members = {ts: set(m.split("+")) for ts, m in zip(t.teacher_set, t.teachers, strict=True)}
    for (_, _, _), g in t.groupby(["dataset", "student", "method"]):
        sets = set(g.teacher_set)
        for u in sets:
            parts = [s for s in sets if s != u and members[s] < members[u] and len(members[s]) == 1]
            if len(members[u]) > 1 and set().union(*(members[s] for s in parts)) == members[u]:
                return ""
    return "no pre-trained union trained beside each of its single-teacher members"


def _betas(runs) -> str:
    t = runs[(runs.role == TRANSFER) & (runs.get("stage", "") != "refit")]
    t = t[t.beta.notna()]
    grids = t.groupby(["dataset", "method"]).beta.nunique()
    base = runs[(runs.role == BASELINE) & (runs.fit_on.fillna("train") == "train")] if "fit_on" in runs else runs[:0]
    ok = [d for (d, _), n in grids.items() if n > 1 and d in set(base.dataset)]
    return "" if ok else "no method run over a β grid beside a baseline with a validation accuracy"


def _nulls(runs) -> str:
    return "" if runs.teacher_set.map(lambda t: real_set_of(t) is not None).any() else "no noise-null runs"


def _scored(runs) -> str:
    # a sweep scores every teacher set it trains on (aftbench.selection.adaptive.scored_sets)
    return "" if (runs.teacher_set != NO_TEACHERS).any() else "no teacher set in this sweep"


def _scored_ladder(runs) -> str:
    t = runs[(runs.role == TRANSFER) & (runs.teacher_set != NO_TEACHERS)]
    sizes = t.groupby(["dataset", "student", "method"]).teacher_set.nunique()
    ok = (sizes >= MIN_LADDER).any()
    return "" if ok else f"no (dataset, student, method) trained on ≥ {MIN_LADDER} scored teacher sets"


def _headline(runs, headline: dict[str, list[str]]) -> str:
    t = runs[runs.role == TRANSFER]
    b = runs[runs.role == BASELINE]
    for ds, g in t.groupby("dataset"):
        mod = g.modality.iloc[0]
        if set(headline.get(mod, [])) & set(g.teacher_set) and ds in set(b.dataset):
            return ""
    return "no dataset with a baseline and a transfer run on a headline teacher set (config: headline_sets)"


NEEDS = {
    "normalized_error": _paired_with_baseline,
    "improvement_probability": _improvement,
    "ranks": _ranks,
    "student_vs_probe": _ladder,
    "accuracy_vs_size": _sizes,
    "rho_by_teacher": _rho,
    "single_vs_union": _unions,
    "accuracy_vs_beta": _betas,
    "knowledge_gain": _nulls,
    "teacher_scores": _scored,
    "score_vs_student": _scored_ladder,
}
FIGURES = CLAIM_FIGURES + GAIN_REPORTS + SCORE_FIGURES
assert set(NEEDS) | {"paper_error"} == set(FIGURES)


def figure_gaps(runs: pd.DataFrame, headline: dict[str, list[str]] | None = None) -> dict[str, str]:
    """Every claim, gain and score figure -> '' where the runs support it, else why not."""
    gaps = {name: need(runs) for name, need in NEEDS.items()}
    gaps["paper_error"] = _headline(runs, headline or {})
    return {name: gaps[name] for name in FIGURES}


def drawable(runs: pd.DataFrame, headline: dict[str, list[str]] | None = None) -> list[str]:
    """The figures (claim, gain, then score figures) the runs support."""
    return [name for name, why in figure_gaps(runs, headline).items() if not why]
