# aftbench: Adaptive Feature Transfer benchmark.
#   snakemake --cores 2                      run the configured sweep (default: offline)
#   snakemake --cores 2 --config sweep=NAME  run another named sweep of config.yaml
#   snakemake tables --cores 1               rebuild runs.csv, tables and figures from finished runs only
#   snakemake leaderboard --cores 1          one table over every finished run of every sweep (results/leaderboard/)
# config.yaml is validated (workflow/schemas/config.schema.yaml + cross-references) before any job.

from snakemake.utils import min_version

min_version("9.27")


configfile: "config.yaml"


# The HTML report (snakemake --report) opens on this page, which leads to the claims.
report: "workflow/report/workflow.rst"


include: "workflow/rules/common.smk"
include: "workflow/rules/data.smk"
include: "workflow/rules/features.smk"
include: "workflow/rules/selection.smk"
include: "workflow/rules/train.smk"
include: "workflow/rules/report.smk"


rule all:
    # The report plans every run through its inputs; a run deleted after the report was made is
    # named here as well (lost_runs: Snakemake does not rebuild a missing intermediate file whose
    # consumer is up to date, and a deleted run must rerun); so is a deleted split or cache (lost_inputs).
    default_target: True
    input:
        lost_inputs(),
        lost_runs(run_targets()),
        lambda w: lost_runs(selected_run_targets(w)),
        report_targets(),
        track_targets(),
        f"{LEADERBOARD_DIR}/tables/main.md",


# A clock on long work (aftbench.cost.clock): the estimate of the jobs about to run, from `cost`;
# each job, when it ends, prints what is left, corrected by the jobs measured so far.
onstart:
    if line := clock_start(CONFIG, workflow.cores, {str(o) for j in workflow.dag.needrun_jobs() for o in j.output}):
        print(line)


# The last SLURM jobs' accounting (aftbench.launch.slurm_status): their waiters returned at their
# results, before sacct had their end. One batched query settles them; nothing without SLURM jobs.
onsuccess:
    settle_accounting(JOBS_DIR)


onerror:
    settle_accounting(JOBS_DIR)
