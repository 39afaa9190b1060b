"""Where everything lives under the results folder: the one home of every path template and
root (splits, feature caches, runs, probes, factors, logs, job folders). The config, the
workflow and the launcher build paths from here, and nowhere else.

A run's directory holds its ids as `key~value` parts (readable, and parseable back), so a path
names dataset, student, method, teacher set, β and seed.
"""

from __future__ import annotations

from pathlib import PurePosixPath

RESULTS = "results"
NO_TEACHERS = "none"  # the teacher-set id of runs without teachers (STL)
NOISE_NULL_PREFIX = "noise_of_"  # noise_of_<set>: a block's matched noise null of teacher set <set>
PROBE_STUDENT = "probe"  # the student id of probe runs (a linear classifier on teacher features)

# The one layout of a run's directory (also the Snakemake wildcard pattern of its outputs).
RUN_TEMPLATE = "dataset~{dataset}/student~{student}/method~{method}/teachers~{tset}/beta~{beta}/seed~{seed}"
# The one layout of a factor-transfer paraphraser's outputs (one per dataset, teacher set, FT method).
FACTORS_TEMPLATE = "dataset~{dataset}/teachers~{tset}/method~{method}"

RUNS_DIR = f"{RESULTS}/runs"
FEATURES_DIR = f"{RESULTS}/features"
FACTORS_DIR = f"{RESULTS}/factors"
SPLITS_DIR = f"{RESULTS}/splits"
LOGS_DIR = f"{RESULTS}/logs"
BENCHMARKS_DIR = f"{RESULTS}/benchmarks"
SCORES_DIR = f"{RESULTS}/scores"  # transferability scores per (dataset, teacher set)
SELECTIONS_DIR = f"{RESULTS}/selections"  # an adaptive block's choice of teacher sets, per dataset
JOBS_DIR = f"{LOGS_DIR}/jobs"  # submitit's folders, per job kind and job name
REPORTS_DIR = f"{RESULTS}/reports"  # one folder per sweep: runs.csv, tables/, figures/
LEADERBOARD_DIR = (
    f"{RESULTS}/leaderboard"  # one table over every finished run, all sweeps (aftbench.report.leaderboard)
)
TRACK_DIR = f"{RESULTS}/track"  # experiment trackers' stores, one folder per tracker (aftbench.report.track)
# Where each job kind's `benchmark:` file lives, under BENCHMARKS_DIR, named by its job name (job_name).
BENCHMARK_FOLDERS = {
    "split": "split",
    "extract": "features",
    "score": "scores",
    "paraphraser": "factors",
    "probe": "runs",
    "train": "runs",
    "refit": "runs",
}
# A run trained with a sweep block's own `train:` settings lives one level deeper, under a digest of
# those settings, so two sweeps that differ only in training settings keep both results.
TRAIN_VARIANT = "train~{tdigest}"


def run_wildcard_regex(kind: str) -> str:
    """The Snakemake constraint of the one `{run}` wildcard of the training, refit and probe rules
    (`kind`): a run id of RUN_TEMPLATE's shape (with a TRAIN_VARIANT part for training), its student
    `probe` or not, its β slot a grid (`tuned_...`: a refit) or not. One wildcard per run path, not
    one per id part: Snakemake's per-job cost grows with the number of wildcards it matches and
    fills in (BENCHMARKS.md: DAG build)."""
    part = "[^/]+"
    student = PROBE_STUDENT if kind == "probe" else f"(?!{PROBE_STUDENT}/){part}"
    beta = f"{TUNED_PREFIX}{part}" if kind == "refit" else f"(?!{TUNED_PREFIX}){part}"
    variant = "" if kind == "probe" else f"(?:/{TRAIN_VARIANT.format(tdigest='[0-9a-f]{8}')})?"
    return RUN_TEMPLATE.format(dataset=part, student=student, method=part, tset=part, beta=beta, seed=r"\d+") + variant


def format_beta(beta: float) -> str:
    """β as it appears in paths: shortest round-trip form (0.1, 1, 10, 1e-05)."""
    return format(float(beta), "g")


# The β part of a refit run's id (tune-then-refit: β chosen on validation from this grid by the
# cell's tune stage, then refitted on train + val), e.g. `tuned_1_10_100`; no β slot starts with it.
TUNED_PREFIX = "tuned_"


def tuned_slot(grid) -> str:
    return TUNED_PREFIX + "_".join(format_beta(b) for b in grid)


def run_id(
    dataset: str,
    student: str,
    method: str,
    tset: str,
    beta: float | None,
    seed: int,
    tdigest: str | None = None,
    grid: tuple[float, ...] = (),
) -> str:
    """A run's id; a refit run (β None) names the grid its β is chosen from instead."""
    slot = tuned_slot(grid) if beta is None else format_beta(beta)
    rid = RUN_TEMPLATE.format(dataset=dataset, student=student, method=method, tset=tset, beta=slot, seed=seed)
    return f"{rid}/{TRAIN_VARIANT.format(tdigest=tdigest)}" if tdigest else rid


def noise_null_of(teacher_set: str) -> str:
    """The teacher-set id of `teacher_set`'s matched noise null (a `noise_null: true` block)."""
    return f"{NOISE_NULL_PREFIX}{teacher_set}"


def real_set_of(teacher_set: str) -> str | None:
    """The teacher set a noise null stands in for, or None where `teacher_set` is no null."""
    return teacher_set[len(NOISE_NULL_PREFIX) :] if teacher_set.startswith(NOISE_NULL_PREFIX) else None


def probe_run_id(dataset: str, method: str, tset: str) -> str:
    """A probe's run id: no student, β 0, one seed (probes are deterministic)."""
    return run_id(dataset, PROBE_STUDENT, method, tset, 0, 0)


def run_dir(rid: str) -> str:
    return f"{RUNS_DIR}/{rid}"


def metrics_path(rid: str) -> str:
    return f"{run_dir(rid)}/metrics.json"


def kept_record_path(out_json) -> str:
    """A finished run's copy of its record, beside it (aftbench.train.kept): not an output, so a rerun keeps it."""
    return str(PurePosixPath(out_json).with_name("record.kept.json"))


def probe_logits_path(rid: str) -> str:
    return f"{run_dir(rid)}/logits.safetensors"


def split_path(dataset: str) -> str:
    return f"{SPLITS_DIR}/{dataset}.npz"


def split_images_dir(npz_path) -> str:
    """Where a split's images live: `<name>.images/<part>.npy` beside `<name>.npz` (the `split`
    rule declares this folder as an output)."""
    return str(PurePosixPath(npz_path).with_suffix(".images"))


def sidecar(path) -> str:
    """The JSON sidecar of an artifact (`X.safetensors` -> `X.json`): what produced it."""
    return str(PurePosixPath(path).with_suffix(".json"))


def scores_path(dataset: str, tset: str) -> str:
    return f"{SCORES_DIR}/dataset~{dataset}/teachers~{tset}/scores.json"


def selection_path(dataset: str, digest: str) -> str:
    """An adaptive block's selection for one dataset, named by a digest of what it selects from
    and how (candidates, score, top k, union): the same request in two sweeps is one file."""
    return f"{SELECTIONS_DIR}/dataset~{dataset}/select~{digest}.json"


def report_dir(sweep: str) -> str:
    return f"{REPORTS_DIR}/{sweep}"


def track_manifest(sink: str, sweep: str) -> str:
    """What the `track` rule sent to a tracker for a sweep, run id -> digest of its record: kept
    across jobs (not a rule output, which Snakemake deletes before a job), so an unchanged run is
    not sent twice."""
    return f"{TRACK_DIR}/{sink}/{sweep}.sent.json"


def track_done(sink: str, sweep: str) -> str:
    """The `track` rule's output: how many runs its last job sent."""
    return f"{TRACK_DIR}/{sink}/{sweep}.done.json"


def runs_table_path(sweep: str) -> str:
    """The sweep's runs.csv: the aggregate step's main output (it exists = the report was made)."""
    return f"{report_dir(sweep)}/runs.csv"


# The claim figures of every report (aftbench.report.stat_figures draws them; one workflow output each).
CLAIM_FIGURES = [
    "normalized_error",
    "improvement_probability",
    "ranks",
    "student_vs_probe",
    "accuracy_vs_size",
    "rho_by_teacher",
    "single_vs_union",
    "accuracy_vs_beta",
]
# The teacher-selection tables and figures of every report (aftbench.report.scores): the scores of
# every scored teacher set, and how well each score predicted the students trained on them.
SCORE_TABLES = ["teacher_scores", "score_vs_student"]
# The knowledge-specific gain (aftbench.report.knowledge) and the paper's Fig. 1b quantity
# (aftbench.report.paper_error): a table and a figure each, of the same name.
GAIN_REPORTS = ["knowledge_gain", "paper_error"]
SCORE_FIGURES = ["teacher_scores", "score_vs_student"]


def report_paths(sweep: str, datasets, figures=CLAIM_FIGURES + GAIN_REPORTS + SCORE_FIGURES) -> list[str]:
    """Everything the aggregate step writes for one sweep: runs.csv, the main and claims tables,
    per-dataset figures, and the claim, gain and score `figures` the sweep supports
    (aftbench.report.drawable). Each sweep has its own folder, so running one sweep never replaces
    another's."""
    out = report_dir(sweep)
    return (
        [runs_table_path(sweep)]
        + [f"{out}/tables/{t}.{ext}" for t in ("main", "claims") for ext in ("md", "tex", "csv")]
        + [f"{out}/tables/{t}.{ext}" for t in SCORE_TABLES for ext in ("md", "csv")]
        + [f"{out}/tables/{t}.{ext}" for t in GAIN_REPORTS for ext in ("md", "csv")]
        + [f"{out}/figures/{t}.png" for t in GAIN_REPORTS if t in figures]
        + [f"{out}/figures/{d}_difference.png" for d in datasets]
        + [f"{out}/figures/{f}.png" for f in CLAIM_FIGURES if f in figures]
        + [f"{out}/figures/{f}.png" for f in SCORE_FIGURES if f in figures]
    )


def features_path(dataset: str, teacher: str) -> str:
    return f"{FEATURES_DIR}/{dataset}/{teacher}.safetensors"


def factors_path(dataset: str, tset: str, method: str) -> str:
    return f"{FACTORS_DIR}/{FACTORS_TEMPLATE.format(dataset=dataset, tset=tset, method=method)}/factors.safetensors"


def benchmark_path(kind: str, name: str) -> str:
    """The rule's `benchmark:` file of a job of `kind` named `name` (job_name of its output)."""
    return f"{BENCHMARKS_DIR}/{BENCHMARK_FOLDERS[kind]}/{name}.tsv"


def accounting_path(benchmark: str) -> str:
    """Beside a benchmark file: the job's own accounting on the cluster (aftbench.launch.slurm_status)
    or in a pack, i.e. its wall time, CPU time and peak memory where it ran, not the waiting process's."""
    return benchmark.removesuffix(".tsv") + ".slurm.tsv"


def job_name(out_path: str) -> str:
    """A job's name from its main output path: `results/runs/<run id>/metrics.json` -> `<run id>`,
    `results/features/D/T.safetensors` -> `D/T`, `results/factors/<...>/factors.safetensors` -> `<...>`."""
    name = str(PurePosixPath(out_path).with_suffix(""))
    for prefix in (f"{RUNS_DIR}/", f"{FEATURES_DIR}/", f"{FACTORS_DIR}/", f"{SCORES_DIR}/", f"{RESULTS}/"):
        name = name.removeprefix(prefix)
    return name.removesuffix("/metrics").removesuffix("/factors").removesuffix("/scores")
