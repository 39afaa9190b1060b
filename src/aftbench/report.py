"""Aggregation: per-run metrics JSONs -> results/runs.csv -> tables (md, tex, csv) and figures.

Reads only finished run outputs; never trains. `build_report` is what both the `all` target
and the `tables` target (re-aggregate whatever exists) call.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd

from .figures import claim_figures, method_color
from .io import atomic_path, read_json, write_text

RUN_COLUMNS = ["dataset", "modality", "student", "student_init", "student_params", "method", "teachers",
               "teacher_set", "control_teacher", "beta", "seed", "val_acc", "test_acc", "train_seconds", "final_ce",
               "final_penalty", "rho_mean", "rho_by_teacher", "selected", "run_id"]
SELECTION_KEYS = ["dataset", "student", "method", "teacher_set", "seed"]
METHOD_ORDER = ["probe", "stl", "kd", "aft"]


def collect_runs(metrics_paths: list[str]) -> pd.DataFrame:
    rows = []
    for p in metrics_paths:
        m = read_json(p)
        rho = m.get("rho")
        rows.append({
            **{k: m.get(k) for k in RUN_COLUMNS},
            "teachers": "+".join(m.get("teachers") or []) or "none",
            "rho_mean": float(np.mean([v["mean"] for v in rho.values()])) if rho else np.nan,
            "rho_by_teacher": json.dumps({t: v["mean"] for t, v in rho.items()}) if rho else None,
            # a teacher set holding any teacher that is not pre-trained (e.g. a random-init control)
            "control_teacher": not all(m.get("teachers_pretrained") or [True]),
        })
    df = pd.DataFrame(rows, columns=RUN_COLUMNS)
    df = df.sort_values(SELECTION_KEYS + ["beta"], kind="stable").reset_index(drop=True)
    df["selected"] = select_beta(df)
    return df


def select_beta(runs: pd.DataFrame) -> pd.Series:
    """Model selection: for each (dataset, student, method, teacher set, seed) keep the β with the
    highest *validation* accuracy (ties: the smaller β). The test split plays no part."""
    ordered = runs.sort_values(SELECTION_KEYS + ["beta"], kind="stable")
    best = ordered.groupby(SELECTION_KEYS, sort=False).val_acc.idxmax()
    return runs.index.isin(best.values)


def teacher_label(teacher_set: str, control: bool) -> str:
    return f"{teacher_set} (control: not pre-trained)" if control else teacher_set


def _order(methods) -> list[str]:
    known = [m for m in METHOD_ORDER if m in set(methods)]
    return known + sorted(set(methods) - set(known))


def summarise(runs: pd.DataFrame) -> pd.DataFrame:
    """Mean ± std of test accuracy over seeds for each (dataset, student, teacher set, method),
    over the runs whose β was selected on validation."""
    runs = runs[runs.selected]
    g = runs.groupby(["dataset", "modality", "student", "student_init", "student_params", "teacher_set", "method"],
                     dropna=False)
    out = g.agg(test_mean=("test_acc", "mean"), test_std=("test_acc", "std"), val_mean=("val_acc", "mean"),
                n_seeds=("seed", "nunique")).reset_index()
    out["test_std"] = out["test_std"].fillna(0.0)
    return out


def main_table(runs: pd.DataFrame) -> pd.DataFrame:
    """One row per (dataset, student, teacher set): the teacher set's probe next to STL and every
    transfer method; the best student method of each row is flagged."""
    summ = summarise(runs)
    students = summ[summ.method != "probe"]
    probes = summ[summ.method == "probe"].set_index(["dataset", "teacher_set"])
    stl = students[students.teacher_set == "none"].set_index(["dataset", "student"])
    methods = _order(students.method.unique())
    rows = []
    for (ds, st, ts), grp in students[students.teacher_set != "none"].groupby(["dataset", "student", "teacher_set"]):
        first = grp.iloc[0]
        control = bool(runs[(runs.dataset == ds) & (runs.teacher_set == ts)].control_teacher.any())
        row = {"dataset": ds, "modality": first.modality, "student": st, "init": first.student_init,
               "params": int(first.student_params), "teacher_set": ts, "control_teacher": control}
        row["probe"] = probes.loc[(ds, ts), "test_mean"] if (ds, ts) in probes.index else np.nan
        for m in methods:
            if m == "stl" and (ds, st) in stl.index:
                r = stl.loc[(ds, st)]
            else:
                sel = grp[grp.method == m]
                r = sel.iloc[0] if len(sel) else None
            row[f"{m}_mean"] = np.nan if r is None else r.test_mean
            row[f"{m}_std"] = np.nan if r is None else r.test_std
            row[f"{m}_n"] = 0 if r is None else int(r.n_seeds)
        means = {m: row[f"{m}_mean"] for m in methods if not np.isnan(row[f"{m}_mean"])}
        row["best"] = max(means, key=means.get) if means else ""
        row["probe_minus_stl"] = row["probe"] - row.get("stl_mean", np.nan)
        rows.append(row)
    table = pd.DataFrame(rows)
    # smaller students first within a dataset, as in the paper's tables
    return table.sort_values(["dataset", "params", "student", "teacher_set"], kind="stable").reset_index(drop=True)


def _fmt(mean, std, n, bold, latex=False) -> str:
    if mean is None or np.isnan(mean):
        return "–"
    s = f"{100 * mean:.1f} ± {100 * std:.1f}" if n > 1 else f"{100 * mean:.1f}"
    if latex:
        s = s.replace("±", r"$\pm$")
        return rf"\textbf{{{s}}}" if bold else s
    return f"**{s}**" if bold else s


def render_table(table: pd.DataFrame, latex: bool = False) -> pd.DataFrame:
    methods = [c[:-5] for c in table.columns if c.endswith("_mean")]
    out = pd.DataFrame({
        "dataset": table.dataset, "student (init, params)": [f"{s} ({i}, {p:,})" for s, i, p in zip(table.student, table.init, table.params)],
        "teachers": [teacher_label(t, c) for t, c in zip(table.teacher_set, table.control_teacher)],
        "probe": [("–" if np.isnan(v) else f"{100 * v:.1f}") for v in table.probe],
    })
    for m in methods:
        out[m.upper() if m in ("stl", "kd", "aft") else m] = [
            _fmt(r[f"{m}_mean"], r[f"{m}_std"], r[f"{m}_n"], r["best"] == m, latex) for _, r in table.iterrows()]
    out["probe − STL"] = [("–" if np.isnan(v) else f"{100 * v:+.1f}") for v in table.probe_minus_stl]
    if latex:  # ids hold underscores; the cells built above hold intended LaTeX
        for col in ("dataset", "student (init, params)", "teachers"):
            out[col] = out[col].str.replace("_", r"\_", regex=False)
    return out


def caption(runs: pd.DataFrame) -> str:
    seeds = sorted(runs[runs.method != "probe"].seed.unique().tolist())
    trained = runs[(runs.method != "probe") & (runs.method != "stl")]
    grids = trained.groupby("method").beta.unique().to_dict()
    betas = ", ".join(f"{m}: {{{', '.join(f'{b:g}' for b in sorted(g))}}}" for m, g in sorted(grids.items()))
    return (f"Test accuracy (%), mean ± std over seeds {seeds} (n = {len(seeds)}); bold = best student method "
            f"in the row. Checkpoint: final training step (no early stopping). β chosen separately for "
            f"every student, teacher set and seed by validation accuracy over the grid ({betas}); the test "
            f"split never influences any choice. probe = "
            f"logistic regression on the teacher set's cached features, C chosen on validation. "
            f"`probe − STL`: how much more the teachers know than the STL student. Multimodal teacher sets "
            f"concatenate unimodal teachers (no offline CLIP-like model exists).")


def accuracy_figure(runs: pd.DataFrame, dataset: str, out_png: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    d = summarise(runs[runs.dataset == dataset])
    trained = d[d.method != "probe"]
    students = list(trained.sort_values(["student_params", "student"]).student.unique())
    tsets = sorted(d[(d.teacher_set != "none")].teacher_set.unique())
    methods = [m for m in _order(d.method.unique()) if m not in ("probe", "stl")]
    fig, axes = plt.subplots(1, max(1, len(students)), figsize=(3.2 + 2.2 * len(tsets) * max(1, len(students)) / 2, 3.6),
                             sharey=True, squeeze=False)
    width = 0.8 / max(1, len(methods))
    for ax, st in zip(axes[0], students):
        x = np.arange(len(tsets))
        s = d[d.student == st]
        stl = s[s.method == "stl"]
        if len(stl):
            mu, sd = 100 * stl.test_mean.iloc[0], 100 * stl.test_std.iloc[0]
            ax.axhline(mu, color="0.3", ls="--", lw=1.2, label="STL (no teacher)")
            ax.axhspan(mu - sd, mu + sd, color="0.85", zorder=0)
        for j, m in enumerate(methods):
            sel = s[s.method == m].set_index("teacher_set").reindex(tsets)
            ax.bar(x + (j - (len(methods) - 1) / 2) * width, 100 * sel.test_mean, width, yerr=100 * sel.test_std.fillna(0),
                   capsize=3, color=method_color(m), label=m.upper())
        pr = d[d.method == "probe"].set_index("teacher_set").reindex(tsets)
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
    with atomic_path(out_png) as tmp:
        fig.savefig(tmp, dpi=130, bbox_inches="tight")
    plt.close(fig)


def build_report(metrics_paths: list[str], out_dir: str = "results") -> pd.DataFrame:
    """Write runs.csv, tables/main.{md,tex,csv}, figures/<dataset>_accuracy.png and the claim
    figures (aftbench.figures.CLAIM_FIGURES)."""
    out = Path(out_dir)
    if not metrics_paths:
        raise FileNotFoundError("no finished runs to aggregate: run the sweep first (snakemake --cores N)")
    runs = collect_runs(metrics_paths)
    with atomic_path(out / "runs.csv") as tmp:
        runs.to_csv(tmp, index=False)
    table = main_table(runs)
    cap = caption(runs)
    with atomic_path(out / "tables" / "main.csv") as tmp:
        table.to_csv(tmp, index=False)
    md = [f"# Main results\n\n{cap}\n"]
    for ds, t in render_table(table).groupby("dataset", sort=True):
        md.append(f"\n## {ds}\n\n" + t.drop(columns="dataset").to_markdown(index=False, disable_numparse=True) + "\n")
    write_text(out / "tables" / "main.md", "".join(md))
    tex_cap = (cap.replace("%", r"\%").replace("±", r"$\pm$").replace("β", r"$\beta$").replace("−", "-")
               .replace("`", "").replace("_", r"\_"))
    tex = render_table(table, latex=True).to_latex(index=False, caption=tex_cap, label="tab:main", escape=False)
    write_text(out / "tables" / "main.tex", tex.replace("probe − STL", "probe - STL"))
    for ds in sorted(runs.dataset.unique()):
        accuracy_figure(runs, ds, str(out / "figures" / f"{ds}_accuracy.png"))
    claim_figures(runs, str(out / "figures"))
    return runs
