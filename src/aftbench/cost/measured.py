"""A priced sweep against what its finished jobs measured (`cost --compare results/benchmarks`):
per kind, the estimate's seconds over the measured ones. On a cluster or in a pack the job's own
accounting is used (`<benchmark>.slurm.tsv`, aftbench.launch.slurm_status), not Snakemake's
benchmark of the waiting process."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from aftbench.core.layout import accounting_path
from aftbench.cost.bill import Estimate, markdown_table


def measured_seconds(benchmark: Path) -> tuple[float, bool] | None:
    """A finished job's wall seconds, and whether they were measured where it ran: the job's own
    accounting (`<benchmark>.slurm.tsv`: SLURM's Elapsed, or its run's time inside a pack) when
    there is one and the job COMPLETED, else the rule's `benchmark:` file (the local process: on a cluster that is the
    waiting process, queue time included)."""
    for f, job_side in ((Path(accounting_path(str(benchmark))), True), (benchmark, False)):
        if f.is_file():
            row = pd.read_csv(f, sep="\t").iloc[-1]
            if pd.notna(row["s"]) and (not job_side or row.get("state") == "COMPLETED"):
                return float(row["s"]), job_side
    return None


def compare(est: Estimate, benchmarks: str | Path) -> str:
    """Each job's estimate against its measured wall seconds (measured_seconds), per kind."""
    root = Path(benchmarks)
    rows = []
    for p in est.priced:
        b = p.job.benchmark
        if not b:
            continue
        got = measured_seconds(root / Path(b).relative_to(Path(b).parts[0], Path(b).parts[1]))  # results/benchmarks/...
        if got is not None:
            rows.append({"kind": p.job.kind, "estimate_s": p.seconds, "measured_s": got[0], "job_side": got[1]})
    if not rows:
        raise FileNotFoundError(f"cost --compare: no benchmark file of this sweep's jobs under {root}")
    df = pd.DataFrame(rows)
    job_side = int(df.pop("job_side").sum())
    g = df.groupby("kind").agg(
        jobs=("kind", "size"), estimate_s=("estimate_s", "sum"), measured_s=("measured_s", "sum")
    )
    g.loc["all jobs"] = [len(df), df["estimate_s"].sum(), df["measured_s"].sum()]
    g["estimate / measured"] = g["estimate_s"] / g["measured_s"]
    per_job = (df["estimate_s"] / df["measured_s"]).describe(percentiles=[0.1, 0.5, 0.9])
    return (
        f"## Estimate vs measured (`{root}`, device `{est.device}`)\n\n"
        + markdown_table(g.reset_index())
        + f"\n\nPer job, estimate / measured: median {per_job['50%']:.2f}, 10th–90th percentile {per_job['10%']:.2f}–{per_job['90%']:.2f} ({len(df)} jobs)."
        + f" {job_side} of them measured where they ran (SLURM accounting or their pack), the rest by Snakemake's benchmark.\n"
    )
