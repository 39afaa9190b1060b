"""The main results table (markdown, LaTeX, CSV): one row per (dataset, student, teacher set),
the teacher set's probe next to the baseline (STL) and every transfer method, mean ± std over
seeds of the runs whose β was selected on validation. Methods are found by role (aftbench.core.roles),
never by id."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from aftbench.core.io import atomic_path, write_text
from aftbench.core.layout import NO_TEACHERS, real_set_of
from aftbench.core.records import DIVERGENCE_FACTOR
from aftbench.core.roles import BASELINE, PROBE, TRANSFER, method_label, method_order
from aftbench.report.plots import teacher_role
from aftbench.report.stats import paired_interval, seed_table

ROLE_ORDER = ["pre-trained", "random-init twin", "noise appended", "noise null"]


def teacher_label(teacher_set: str, control: bool) -> str:
    if real_set_of(teacher_set) is not None:
        return f"{teacher_set} (control: N(0, 1) noise of {real_set_of(teacher_set)}'s width)"
    return f"{teacher_set} (control: not pre-trained)" if control else teacher_set


CELL_KEYS = [
    "dataset",
    "modality",
    "student",
    "student_init",
    "student_params",
    "teacher_set",
    "method",
    "role",
    "penalty",
]


def summarise(runs: pd.DataFrame) -> pd.DataFrame:
    """Mean ± std of test accuracy over seeds for each (dataset, student, teacher set, method),
    over the runs whose β was selected on validation; `n_diverged` counts the cell's runs (any β)
    that diverged, which are never selected. A cell whose every run diverged has no mean."""
    counts = runs.assign(n_diverged=runs.diverged.astype(int)).groupby(CELL_KEYS, dropna=False).n_diverged.sum()
    chosen = runs[runs.selected]
    out = (
        chosen.groupby(CELL_KEYS, dropna=False)
        .agg(
            test_mean=("test_acc", "mean"),
            test_std=("test_acc", "std"),
            val_mean=("val_acc", "mean"),
            n_seeds=("seed", "nunique"),
        )
        .reindex(counts.index)
        .join(counts)
        .reset_index()
    )
    out["test_std"] = out["test_std"].fillna(0.0)
    out["n_seeds"] = out["n_seeds"].fillna(0).astype(int)
    return out


def baseline_of(runs: pd.DataFrame) -> str | None:
    """The baseline method the table compares against (`probe − STL`): the first in report order."""
    first = [m for m in method_order(runs) if m in set(runs[runs.role == BASELINE].method)]
    return first[0] if first else None


def main_table(runs: pd.DataFrame) -> pd.DataFrame:
    """One row per (dataset, student, teacher set): the teacher set's probe next to the baselines
    and every transfer method; the best student method of each row is flagged."""
    summ = summarise(runs)
    students = summ[summ.role != PROBE]
    probes = summ[summ.role == PROBE].set_index(["dataset", "teacher_set"])
    baselines = students[students.role == BASELINE].set_index(["dataset", "student", "method"])
    methods = method_order(students)
    base = baseline_of(runs)
    rows = []
    seeds = seed_table(runs, methods, complete=False)  # per cell: seeds × methods, for the paired statistics
    transfer = students[(students.role == TRANSFER) & (students.teacher_set != NO_TEACHERS)]
    for (ds, st, ts), grp in transfer.groupby(["dataset", "student", "teacher_set"]):
        first = grp.iloc[0]
        control = bool(runs[(runs.dataset == ds) & (runs.teacher_set == ts)].control_teacher.any())
        row = {
            "dataset": ds,
            "modality": first.modality,
            "student": st,
            "init": first.student_init,
            "params": int(first.student_params),
            "teacher_set": ts,
            "control_teacher": control,
        }
        row["probe"] = probes.loc[(ds, ts), "test_mean"] if (ds, ts) in probes.index else np.nan
        for m in methods:
            if (ds, st, m) in baselines.index:
                r = baselines.loc[(ds, st, m)]
            else:
                sel = grp[grp.method == m]
                r = sel.iloc[0] if len(sel) else None
            row[f"{m}_mean"] = np.nan if r is None else r.test_mean
            row[f"{m}_std"] = np.nan if r is None else r.test_std
            row[f"{m}_n"] = 0 if r is None else int(r.n_seeds)
            row[f"{m}_div"] = 0 if r is None else int(r.n_diverged)
        row.update(paired_marks(seeds.get((ds, st, ts), pd.DataFrame()), methods, base, row))
        row["probe_minus_baseline"] = row["probe"] - row.get(f"{base}_mean", np.nan)
        rows.append(row)
    table = pd.DataFrame(
        rows,
        columns=[
            "dataset",
            "modality",
            "student",
            "init",
            "params",
            "teacher_set",
            "control_teacher",
            "probe",
            "best",
            "ties",
            "probe_minus_baseline",
        ]
        + [f"{m}_{k}" for m in methods for k in ("mean", "std", "n", "div", "d", "dlo", "dhi")],
    )
    table.attrs["baseline"] = base
    # one order for every dataset: smaller students first (as in the paper's tables), then
    # pre-trained sets weak to strong by probe, then controls (random-init, noise appended), then
    # noise nulls
    role = [
        ROLE_ORDER.index(teacher_role(t, c, "")) for t, c in zip(table.teacher_set, table.control_teacher, strict=True)
    ]
    table = table.assign(_role=role, _probe=table.probe.fillna(np.inf))
    order = ["dataset", "params", "student", "_role", "_probe", "teacher_set"]
    return table.sort_values(order, kind="stable").drop(columns=["_role", "_probe"]).reset_index(drop=True)


def paired_marks(wide: pd.DataFrame, methods: list[str], base: str | None, row: dict) -> dict:
    """A row's paired statistics (aftbench.report.stats) from its seeds × methods frame `wide`: each
    method's difference to the baseline on the same seeds (mean, 95% t interval); `best`: the
    method with the row's highest mean (bold); `ties`: every other method not separable from it
    (the 95% t interval of their paired difference includes 0, or too few seeds to tell: ≈)."""
    out = {}
    for m in methods:
        d = paired_interval(wide[m], wide[base]) if base in wide and m in wide else (np.nan,) * 3
        out[f"{m}_d"], out[f"{m}_dlo"], out[f"{m}_dhi"] = d
    means = {m: row[f"{m}_mean"] for m in methods if not np.isnan(row[f"{m}_mean"])}
    if not means:
        return {**out, "best": "", "ties": ""}
    ranked = sorted(means, key=means.get, reverse=True)
    top = ranked[0]
    ties = [
        m
        for m in ranked[1:]
        if not (paired_interval(wide[top], wide[m])[1] > 0 if top in wide and m in wide else False)
    ]
    return {**out, "best": top, "ties": " ".join(ties)}


def _fmt(mean, std, n, bold, latex=False, diverged=0, tie=False, delta=None) -> str:
    mark = f" †{diverged}" if diverged else ""  # runs of the cell that diverged (left out)
    if latex:
        mark = mark.replace("†", r"$\dagger$")
    if mean is None or np.isnan(mean):
        return "–" + mark
    s = f"{100 * mean:.1f} ± {100 * std:.1f}" if n > 1 else f"{100 * mean:.1f}"
    if delta is not None and not np.isnan(delta[0]):  # Δ to the baseline, paired, with its interval
        d, lo, hi = (100 * v for v in delta)
        s += f" (Δ {d:+.1f} [{lo:+.1f}, {hi:+.1f}])" if not np.isnan(lo) else f" (Δ {d:+.1f})"
    tie_mark = " ≈" if tie else ""
    if latex:
        s = s.replace("±", r"$\pm$").replace("Δ", r"$\Delta$")
        return (rf"\textbf{{{s}}}" if bold else s) + tie_mark.replace("≈", r"$\approx$") + mark
    return (f"**{s}**" if bold else s) + tie_mark + mark


def student_lines(table: pd.DataFrame) -> str:
    """Each student of a dataset's rows described once (init, parameters), above its table."""
    students = table.drop_duplicates("student")
    return "".join(
        f"- `{s}`: {i}, {p:,} parameters\n"
        for s, i, p in zip(students.student, students.init, students.params, strict=True)
    )


def gap_column(table: pd.DataFrame) -> str:
    return f"probe − {method_label(table.attrs.get('baseline') or 'baseline')}"


def render_table(table: pd.DataFrame, latex: bool = False) -> pd.DataFrame:
    methods = [c[:-5] for c in table.columns if c.endswith("_mean")]
    out = pd.DataFrame(
        {
            "dataset": table.dataset,
            "student": table.student,
            "teachers": [teacher_label(t, c) for t, c in zip(table.teacher_set, table.control_teacher, strict=False)],
            "probe": [("–" if np.isnan(v) else f"{100 * v:.1f}") for v in table.probe],
        }
    )
    base = table.attrs.get("baseline")
    for m in methods:
        out[method_label(m)] = [
            _fmt(
                r[f"{m}_mean"],
                r[f"{m}_std"],
                r[f"{m}_n"],
                r["best"] == m,
                latex,
                r[f"{m}_div"],
                tie=m in str(r["ties"]).split(),
                delta=None if m == base else (r[f"{m}_d"], r[f"{m}_dlo"], r[f"{m}_dhi"]),
            )
            for _, r in table.iterrows()
        ]
    out[gap_column(table)] = [("–" if np.isnan(v) else f"{100 * v:+.1f}") for v in table.probe_minus_baseline]
    if latex and len(out):  # ids hold underscores; the cells built above hold intended LaTeX
        for col in ("dataset", "student", "teachers"):
            out[col] = out[col].str.replace("_", r"\_", regex=False)
    return out


def _tries_per_cell(runs: pd.DataFrame) -> dict[str, pd.Series]:
    """Per training method, in report order: its runs in each (dataset, student, teacher set, seed)."""
    trained = runs[(runs.role != PROBE) & (runs.get("stage", "") != "refit")]  # a refit is the choice, not a try
    if trained.empty:
        return {}
    per_cell = trained.groupby(["method", "dataset", "student", "teacher_set", "seed"]).size()
    return {m: per_cell[m] for m in method_order(trained)}


def tuning_budgets(runs: pd.DataFrame) -> dict[str, int]:
    """Each training method's configurations chosen on validation per cell (the most runs of one
    (dataset, student, teacher set, seed) it has: its β grid, a baseline's label-smoothing grid)."""
    return {m: int(n.max()) for m, n in _tries_per_cell(runs).items()}


def short_budgets(runs: pd.DataFrame) -> dict[str, tuple[int, int]]:
    """Methods with fewer runs in some (dataset, student, teacher set, seed) than their budget (a
    report of finished runs while the sweep is unfinished, or a grid smaller in one block):
    method -> (such cells, the method's cells)."""
    return {m: (int((n < n.max()).sum()), len(n)) for m, n in _tries_per_cell(runs).items() if (n < n.max()).any()}


def tuning_budget_sentence(runs: pd.DataFrame) -> str:
    budgets = tuning_budgets(runs)
    if not budgets:
        return ""
    listed = ", ".join(f"{method_label(m)} {n}" for m, n in budgets.items())
    equal = "equal" if len(set(budgets.values())) == 1 else "UNEQUAL: a method with more tries can win by tuning alone"
    short = short_budgets(runs)
    fewer = ""
    if short:
        fewer = (
            " FEWER in some cells (runs missing, or a smaller grid there): "
            + ", ".join(f"{method_label(m)} in {k} of its {n} (cell, seed)s" for m, (k, n) in short.items())
            + "."
        )
    return f"Configurations chosen on validation per cell ({equal}): {listed}.{fewer}"


def caption(runs: pd.DataFrame, baseline: str | None) -> str:
    seeds = sorted(runs[runs.role != PROBE].seed.unique().tolist())
    trained = runs[runs.role == TRANSFER]
    grids = trained.groupby("method").beta.unique().to_dict()
    betas = ", ".join(f"{m}: {{{', '.join(f'{b:g}' for b in sorted(g))}}}" for m, g in sorted(grids.items()))
    name = method_label(baseline or "baseline")
    final = runs[(runs.role != PROBE) & (runs.get("stage", "") != "tune")]
    fitted = set(final.get("fit_on", pd.Series(dtype=object)).dropna())
    refitted = (runs.get("stage", pd.Series(dtype=object)) == "refit").any()
    protocol = ""
    if refitted:
        protocol = (
            "Tune-then-refit: every value of a method's grid fitted on train, the one with the best validation "
            "accuracy (per seed) refitted on train + val and reported; "
        )
    elif "train+val" in fitted:
        protocol = "Students fitted on train + val with one fixed β per method (the reference code's protocol); "
    return (
        f"Test accuracy (%), mean ± std over seeds {seeds} (n = {len(seeds)} per cell). "
        f"{tuning_budget_sentence(runs)} Δ = the paired "
        f"difference to {name} on the same seeds (points), mean and 95% Student-t interval over seeds. "
        f"Bold = the row's highest mean; ≈ = not separable from it (the 95% t interval of the paired "
        f"difference to the bold method includes 0, or too few seeds to tell); unmarked = separably below it. "
        f"{protocol}Checkpoint: final training step (no early stopping). β chosen separately for "
        f"every student, teacher set and seed by validation accuracy over the grid ({betas}); the test "
        f"split never influences any choice. Student init: scratch, or pretrained:<weights> (fine-tuned). probe = "
        f"logistic regression on the teacher set's cached features, C chosen on validation. "
        f"`probe − {name}`: how much more the teachers know than the {name} student. Multimodal teacher sets "
        f"concatenate unimodal teachers (no offline CLIP-like model exists). † k: k runs of the cell (any β) "
        f"diverged (training CE ended above {DIVERGENCE_FACTOR} × its first step) and are left out; β selection "
        f"never picks one."
    )


def finished_cells(runs: pd.DataFrame) -> pd.DataFrame:
    """Every (dataset, student, method, teacher set) cell that has results, mean ± std over seeds."""
    summ = summarise(runs)
    return pd.DataFrame(
        {
            "dataset": summ.dataset,
            "student": summ.student,
            "method": [method_label(m) for m in summ.method],
            "teachers": summ.teacher_set,
            "test acc. (%)": [
                _fmt(m, sd, n, False, diverged=d)
                for m, sd, n, d in zip(summ.test_mean, summ.test_std, summ.n_seeds, summ.n_diverged, strict=False)
            ],
        }
    )


def write_tables(runs: pd.DataFrame, out_dir: Path) -> pd.DataFrame:
    """tables/main.{csv,md,tex} under `out_dir`."""
    table = main_table(runs)
    cap = caption(runs, table.attrs["baseline"])
    with atomic_path(out_dir / "tables" / "main.csv") as tmp:
        table.to_csv(tmp, index=False)
    md = [f"# Main results\n\n{cap}\n"]
    for ds, t in render_table(table).groupby("dataset", sort=True):
        md.append(f"\n## {ds}\n\n{student_lines(table[table.dataset == ds])}\n")
        md.append(t.drop(columns="dataset").to_markdown(index=False, disable_numparse=True) + "\n")
    if table.empty:  # only baselines or only probes finished: say so, and show what there is
        md.append(
            "\nNo transfer run with a teacher set has finished yet; the finished runs:\n\n"
            + finished_cells(runs).to_markdown(index=False, disable_numparse=True)
            + "\n"
        )
    write_text(out_dir / "tables" / "main.md", "".join(md))
    students = table.drop_duplicates(["dataset", "student"])
    described = "; ".join(
        f"{s}: {i}, {p:,} parameters" for s, i, p in zip(students.student, students.init, students.params, strict=True)
    )
    tex_cap = (
        f"{cap} Students: {described}.".replace("%", r"\%")
        .replace("±", r"$\pm$")
        .replace("β", r"$\beta$")
        .replace("−", "-")
        .replace("`", "")
        .replace("_", r"\_")
    )
    tex = render_table(table, latex=True).to_latex(index=False, caption=tex_cap, label="tab:main", escape=False)
    write_text(out_dir / "tables" / "main.tex", tex.replace(gap_column(table), gap_column(table).replace("−", "-")))
    return table
