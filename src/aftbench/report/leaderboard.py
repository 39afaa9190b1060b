"""One table across sweeps: every finished run under results/runs/, each once (a run id is one run
whichever sweep planned it), through the same runs table, β selection and main table as a
sweep's own report (aftbench.report.build, aftbench.report.tables), so a number here is the
number a sweep's table prints for the same runs. Each row (dataset, student, teacher set) also
names the sweeps whose reports hold its runs.

Where two sweeps tried different β grids for the same cell, the merged grid is larger than
either: the caption's "configurations chosen on validation per cell" says so (UNEQUAL), as it
would for one sweep. A record that fails verification (its split or features were replaced
since) is left out and named, not allowed to stop the table: the leaderboard reads every run
on disk, including those of sweeps no longer run.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from aftbench.core.io import atomic_path, read_json, write_text
from aftbench.core.layout import LEADERBOARD_DIR, NO_TEACHERS, REPORTS_DIR, RUNS_DIR
from aftbench.core.roles import PROBE
from aftbench.report.build import runs_table
from aftbench.report.tables import write_tables
from aftbench.report.verify import record_problem

ROW_KEYS = ["dataset", "student", "teacher_set"]


def finished_records(runs_dir: str = RUNS_DIR) -> tuple[list[dict], list[str]]:
    """Every verified run record under `runs_dir`, and what is wrong with each one left out."""
    records, problems, now = [], [], {}
    for path in sorted(Path(runs_dir).rglob("metrics.json")):
        record = read_json(path)
        problem = record_problem(str(path), record, now)
        if problem:
            problems.append(problem)
        else:
            records.append(record)
    return records, problems


def run_sweeps(reports_dir: str = REPORTS_DIR, problems: list[str] | None = None) -> dict[str, list[str]]:
    """run id -> the sweeps whose report (reports/<sweep>/runs.csv) holds it. A report that cannot
    be read (another sweep's, damaged) names no sweep and is added to `problems`."""
    out: dict[str, list[str]] = {}
    for table in sorted(Path(reports_dir).glob("*/runs.csv")):
        try:
            ids = pd.read_csv(table, usecols=["run_id"]).run_id
        except (OSError, ValueError) as err:  # pandas' parser errors are ValueErrors
            if problems is not None:
                problems.append(f"{table}: not readable ({str(err).splitlines()[0]}); its sweep is not named")
            continue
        for rid in ids:
            out.setdefault(rid, []).append(table.parent.name)
    return out


def row_sweeps(runs: pd.DataFrame, table: pd.DataFrame) -> list[str]:
    """For each main-table row: the sweeps of its runs (the row's student runs on its teacher set,
    the student's baseline runs and the teacher set's probe)."""
    out = []
    for ds, st, ts in zip(table.dataset, table.student, table.teacher_set, strict=True):
        mine = runs[
            (runs.dataset == ds)
            & (
                ((runs.student == st) & runs.teacher_set.isin([ts, NO_TEACHERS]))
                | ((runs.role == PROBE) & (runs.teacher_set == ts))
            )
        ]
        names = sorted({s for ss in mine.sweeps for s in ss.split("+") if s})
        out.append("+".join(names) or "(in no sweep's report)")
    return out


def build_leaderboard(runs_dir: str = RUNS_DIR, reports_dir: str = REPORTS_DIR, out_dir: str = LEADERBOARD_DIR):
    """runs.csv and tables/main.{md,csv,tex} over every finished run; main.csv has a `sweeps`
    column and main.md / main.tex end with where each row's runs come from."""
    records, problems = finished_records(runs_dir)
    if not records:
        raise FileNotFoundError(f"no finished run under {runs_dir}: run a sweep first (snakemake --cores N)")
    runs = runs_table(records)
    sweeps = run_sweeps(reports_dir, problems)
    runs["sweeps"] = ["+".join(sweeps.get(r, [])) for r in runs.run_id]
    out = Path(out_dir)
    with atomic_path(out / "runs.csv") as tmp:
        runs.to_csv(tmp, index=False)
    table = write_tables(runs, out)
    table["sweeps"] = row_sweeps(runs, table) if len(table) else []
    with atomic_path(out / "tables" / "main.csv") as tmp:
        table.to_csv(tmp, index=False)
    sources = table[[*ROW_KEYS, "sweeps"]]
    md = (out / "tables" / "main.md").read_text()
    md += "\n## Where each row's runs come from\n\n" + sources.to_markdown(index=False) + "\n"
    if problems:
        md += f"\n## Left out: {len(problems)} file(s) that fail verification or cannot be read\n\n"
        md += "".join(f"- {p}\n" for p in problems[:20]) + ("- ...\n" if len(problems) > 20 else "")
    write_text(out / "tables" / "main.md", md)
    tex = (out / "tables" / "main.tex").read_text()
    escaped = sources.map(lambda v: str(v).replace("_", r"\_")).rename(columns=lambda c: c.replace("_", " "))
    tex += "\n" + escaped.to_latex(
        index=False, caption="The sweeps each row's runs come from.", label="tab:sources", escape=False
    )
    write_text(out / "tables" / "main.tex", tex)
    return runs, table, problems
