"""Aggregation: per-run metrics JSONs -> results/runs.csv -> tables (md, tex, csv) and figures.

Reads only finished run outputs; never trains. `build_report` is what both the `all` target
and the `tables` target (re-aggregate whatever exists) call.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd

from aftbench.core.io import atomic_path
from aftbench.core.layout import NO_TEACHERS, RESULTS, SCORE_FIGURES
from aftbench.core.tuning import pick_on_val
from aftbench.report.claims import write_claims
from aftbench.report.curves import write_curves
from aftbench.report.drawable import figure_gaps
from aftbench.report.knowledge import write_knowledge
from aftbench.report.paper_error import write_paper_error
from aftbench.report.scores import write_score_report
from aftbench.report.stat_figures import claim_figures, difference_figure
from aftbench.report.tables import write_tables
from aftbench.report.verify import verified_records

RUN_COLUMNS = [
    "dataset",
    "modality",
    "student",
    "student_init",
    "student_params",
    "method",
    "role",
    "penalty",
    "teachers",
    "teacher_set",
    "control_teacher",
    "beta",
    "label_smoothing",
    "seed",
    "val_acc",
    "test_acc",
    "train_seconds",
    "steps",
    "schedule",
    "fit_on",
    "final_ce",
    "final_penalty",
    "rho_mean",
    "rho_by_teacher",
    "tuning",
    "stage",
    "selected",
    "diverged",
    "run_id",
    "test_correct",  # per-example correctness, packed (aftbench.core.records.encode_predictions)
]
SELECTION_KEYS = ["dataset", "student", "method", "teacher_set", "seed"]


def collect_runs(metrics_paths: list[str]) -> pd.DataFrame:
    """The runs table of these records, each verified first (aftbench.report.verify)."""
    return runs_table(verified_records(metrics_paths))


def runs_table(records: list[dict]) -> pd.DataFrame:
    """The runs table (RUN_COLUMNS) of verified run records, β selected per cell."""
    rows = []
    for m in records:
        rho = m.get("rho")
        rows.append(
            {
                **{k: m.get(k) for k in RUN_COLUMNS},
                "role": m["role"],
                "diverged": bool(m.get("diverged", False)),
                "teachers": "+".join(m.get("teachers") or []) or NO_TEACHERS,
                "rho_mean": float(np.mean([v["mean"] for v in rho.values()])) if rho else np.nan,
                "rho_by_teacher": json.dumps({t: v["mean"] for t, v in rho.items()}) if rho else None,
                # a teacher set holding any teacher that is not pre-trained (e.g. a random-init control)
                "control_teacher": not all(m.get("teachers_pretrained") or [True]),
                # a refit run: the tune stage's candidates and its choice (aftbench.train.refit)
                "tuning": json.dumps(m["tuning"], sort_keys=True) if m.get("tuning") else None,
            }
        )
    df = pd.DataFrame(rows, columns=RUN_COLUMNS)
    df = df.sort_values(SELECTION_KEYS + ["beta"], kind="stable").reset_index(drop=True)
    df["stage"] = run_stages(df)
    df["selected"] = select_beta(df)
    return df


def select_beta(runs: pd.DataFrame) -> pd.Series:
    """Model selection, per (dataset, student, method, teacher set, seed): a tune-then-refit cell
    keeps its refit run (its β was chosen on validation by the tune stage before it trained); any
    other cell keeps the run aftbench.core.tuning.pick_on_val chooses (highest validation
    accuracy among the runs that did not diverge; ties: the smaller β, then label smoothing). A
    cell whose every run diverged selects nothing. The test split plays no part."""
    stage = runs["stage"] if "stage" in runs else pd.Series("", index=runs.index)
    chosen = []
    for _, cell in runs.groupby(SELECTION_KEYS, sort=False):
        refit = cell.index[stage[cell.index] == "refit"]
        if len(refit):
            chosen.extend(refit)
            continue
        records = cell.to_dict("records")
        i = pick_on_val(records)
        if i is not None:
            chosen.append(cell.index[i])
    return runs.index.isin(chosen)


def run_stages(runs: pd.DataFrame) -> pd.Series:
    """Each run's stage: `refit` (fitted on train + val with the β its tune stage chose), `tune`
    (a run of a cell that has a refit: its validation accuracy chose the refit's β), else ''."""
    refit = runs.get("tuning", pd.Series(None, index=runs.index)).notna()
    has_refit = refit.groupby([runs[k] for k in SELECTION_KEYS]).transform("any")
    return pd.Series(np.where(refit, "refit", np.where(has_refit, "tune", "")), index=runs.index)


def build_report(
    metrics_paths: list[str],
    out_dir: str = RESULTS,
    scores: list[str] = (),
    selections: list[str] = (),
    headline: dict[str, list[str]] | None = None,
    delta: float = 0.5,
    figures: list[str] | None = None,
) -> pd.DataFrame:
    """Write runs.csv, tables/main.{md,tex,csv}, figures/<dataset>_difference.{png,pdf},
    tables/curves.csv and figures/<dataset>_curves.{png,pdf} (aftbench.report.curves), the claim
    figures (aftbench.report.stat_figures.CLAIM_FIGURES), tables/claims.{md,csv,tex} (aftbench.report.claims),
    tables/knowledge_gain.{md,csv} (aftbench.report.knowledge), tables/paper_error.{md,csv}
    (aftbench.report.paper_error, on the `headline` teacher sets; `delta`: the claims' equivalence
    margin in points), and
    the teacher-selection tables and figures from the score and selection files
    (aftbench.report.scores)."""
    out = Path(out_dir)
    if not metrics_paths:
        raise FileNotFoundError("no finished runs to aggregate: run the sweep first (snakemake --cores N)")
    records = verified_records(metrics_paths)
    runs = runs_table(records)
    with atomic_path(out / "runs.csv") as tmp:
        runs.to_csv(tmp, index=False)
    write_tables(runs, out)
    for ds in sorted(runs.dataset.unique()):
        difference_figure(runs, ds, str(out / "figures" / f"{ds}_difference.png"))
    write_curves(records, runs, out)
    # the figures the sweep supports (the workflow names those it planned); the others are named
    # in the claims table with the reason, never drawn as placeholders
    gaps = figure_gaps(runs, headline)
    figures = [f for f, why in gaps.items() if not why] if figures is None else list(figures)
    claim_figures(runs, str(out / "figures"), figures)
    write_claims(runs, out, delta, {f: why or "not planned" for f, why in gaps.items() if f not in figures})
    write_knowledge(runs, out, draw="knowledge_gain" in figures)
    write_paper_error(runs, headline or {}, out, draw="paper_error" in figures)
    write_score_report(runs, list(scores), list(selections), out, [f for f in figures if f in SCORE_FIGURES])
    return runs
