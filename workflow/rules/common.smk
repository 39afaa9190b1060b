# Config validation, sweep expansion and target lists. Everything else lives in the aftbench package;
# every path comes from aftbench.core.layout.
import glob
import inspect
import json
import os
import re
import shlex
import sys

from snakemake.common import overwrite_function_params

from aftbench.sweep import plan as jobs
from aftbench.cost.clock import start as clock_start
from aftbench.launch.launcher import job_spec
from aftbench.launch.lifeline import lock_note
from aftbench.launch.slurm_status import settle_accounting
from aftbench.selection.adaptive import UNION_SEP, known_selections, related_sets, scored_sets, selection_requests
from aftbench.config.check import validate_config
from aftbench.config.preflight import damaged_artifacts, sweep_artifacts
from aftbench.core.schema import ConfigError, defaults, setting
from aftbench.sweep.expand import expand_sweep
from aftbench.sweep.runs import teachers_of, train_spec
from aftbench.sweep.shape import planned_runs
from aftbench.report.drawable import drawable
from aftbench.config.input_checks import yte_config_files
from aftbench.core.layout import (
    BENCHMARKS_DIR,
    CLAIM_FIGURES,
    FACTORS_TEMPLATE,
    GAIN_REPORTS,
    JOBS_DIR,
    LEADERBOARD_DIR,
    LOGS_DIR,
    NO_TEACHERS,
    REPORTS_DIR,
    RESULTS,
    SCORE_FIGURES,
    SCORE_TABLES,
    factors_path,
    features_path,
    metrics_path,
    probe_logits_path,
    report_dir,
    report_paths,
    run_wildcard_regex,
    runs_table_path,
    scores_path,
    selection_path,
    sidecar,
    split_images_dir,
    split_path,
    track_done,
)

# The schema, cross-references and every backend's arguments, all problems at once (the same check
# as `python -m aftbench validate`). CONFIG is the validated config with one-line teacher specs
# expanded; the rules read CONFIG, never the raw `config`.
if yte_config_files(workflow.configfiles):  # Snakemake strips the marker from `config`: read the files
    raise ConfigError(yte_config_files(workflow.configfiles))
CONFIG = validate_config(config)
# The splits and caches already on disk, checked by content (changed files only) before any job can
# delete what was computed from them; the jobs themselves do not re-check here.
if workflow.is_main_process and (damaged := damaged_artifacts(CONFIG)):
    raise ConfigError(damaged, header="damaged inputs, refused before any job")
# A lock left on this folder: say whether a Snakemake still runs here (wait) or none does (--unlock).
if workflow.is_main_process and (note := lock_note(os.getcwd())):
    print(note, file=sys.stderr)

# The command every job runs: with the config's plugins (aftbench.core.plugins), so a job on any
# host builds what the DAG planned.
AFTBENCH = "python -m aftbench" + (
    f" --plugins {shlex.quote(','.join(CONFIG['plugins']))}" if CONFIG.get("plugins") else ""
)

SWEEP = CONFIG["sweep"]
# The runs known before any selection: every run of a fixed block, and an adaptive block's runs
# without teachers. An adaptive block's other runs come only through its selection checkpoint
# (selected_run_targets), so a selection that is redone replans them.
RUNS = {r.run_id: r for r in expand_sweep(CONFIG, selections={})}
REQUESTS = {r.digest: r for r in selection_requests(CONFIG)}  # adaptive blocks' selections, by digest
DATASETS = sorted({d for b in CONFIG["sweeps"][SWEEP] for d in b["datasets"]})
# The claim and gain figures this sweep's planned runs can support: only those are declared and
# drawn; the claims table names the others and why (aftbench.report.drawable).
FIGURES = drawable(planned_runs(CONFIG, SWEEP), CONFIG.get("headline_sets", {}))
# an adaptive block's candidates are scored before any of them is planned for training
if scored_sets(CONFIG) and "teacher_scores" not in FIGURES:
    FIGURES.append("teacher_scores")


def _alt(ids):
    return "|".join(sorted(ids))


def _tset_pattern():
    """Configured teacher-set ids, `none`, and unions of an adaptive block's candidates (`a+b`)."""
    pattern = _alt(list(CONFIG["teacher_sets"]) + [NO_TEACHERS])
    candidates = sorted({c for r in REQUESTS.values() if r.union for c in r.candidates})
    if candidates:
        one = f"(?:{_alt(candidates)})"
        pattern += f"|{one}(?:{re.escape(UNION_SEP)}{one})+"
    return pattern


# Training and probe runs have one wildcard, `{run}` (their constraints are in train.smk): a run id
# that is no run of the sweep is refused by run_of, naming the sweep.
wildcard_constraints:
    dataset=_alt(CONFIG["datasets"]),
    teacher=_alt(CONFIG["teachers"]),
    method=_alt(CONFIG["methods"]),
    tset=_tset_pattern(),
    sdigest=r"[0-9a-f]{8}",
    sink="tensorboard|mlflow|wandb",


def run_targets():
    return [metrics_path(r.run_id) for r in RUNS.values()]


def report_made():
    """Whether the sweep's report exists (its runs.csv): what `all` names beside it depends on it."""
    return os.path.exists(runs_table_path(SWEEP))


def lost_runs(metrics):
    """The runs `all` names itself, beside the report. Until the report exists, its own inputs plan
    every run. Once it exists, Snakemake would not rebuild a run whose metrics file has gone (a
    missing input of a job whose outputs are up to date is not rebuilt), so each such run becomes a
    target of its own. Naming every run twice instead (as `all` and as the report's input) costs
    ~8% of the paper sweep's DAG build (BENCHMARKS.md: DAG build)."""
    if not report_made():
        return []
    return [m for m in metrics if not os.path.exists(m)]


def lost_inputs():
    """The sweep's splits and feature caches that are not on disk. Named by `all` so that one deleted
    after the runs that read it finished is made again (as for lost_runs), and those runs rerun; a
    run whose inputs come back byte-identical restores its kept record (aftbench.train.kept)."""
    splits, caches = sweep_artifacts(CONFIG)
    return [p for p in splits + caches if not os.path.exists(p)]


def track_targets():
    """The tracker config.yaml's `track` names gets the sweep's runs (aftbench.report.track); none: nothing."""
    sink = setting(CONFIG, "track")
    return [] if sink == "none" else [track_done(sink, SWEEP)]


def report_targets():
    """The report's outputs `all` names: runs.csv alone until the report exists (the aggregate job
    writes every output at once; naming each of its ~40 outputs makes Snakemake scan the job's every
    input once per output: quadratic in a big sweep), every output once it exists, so that a deleted
    table or figure is made again."""
    return report_paths(SWEEP, DATASETS, FIGURES) if report_made() else [runs_table_path(SWEEP)]


def score_targets():
    """The score file of every (dataset, teacher set) the sweep trains on or selects from."""
    return [scores_path(d, ts) for d, ts in scored_sets(CONFIG)]


def selection_targets():
    return [selection_path(r.dataset, r.digest) for r in REQUESTS.values()]


_SELECTED = {}  # selection files' mtimes -> the runs their selections add


def selected_runs():
    """The runs adaptive blocks add, from the selections made so far (re-read when a selection
    file changes; a per-job lookup, so it is cached)."""
    if not REQUESTS:  # no adaptive block: nothing to add (and no second expansion of a big sweep)
        return {}
    key = tuple(os.path.getmtime(p) if os.path.exists(p) else None for p in selection_targets())
    if key not in _SELECTED:
        everything = expand_sweep(CONFIG, selections=known_selections(CONFIG))
        _SELECTED.clear()
        _SELECTED[key] = {r.run_id: r for r in everything if r.run_id not in RUNS}
    return _SELECTED[key]


def selected_run_targets(w):
    """Input function: the runs of every adaptive block, once its selection checkpoint has run
    (until then Snakemake stops here and plans the scoring and the selection)."""
    for r in REQUESTS.values():
        checkpoints.select_teachers.get(dataset=r.dataset, sdigest=r.digest)
    return [metrics_path(rid) for rid in selected_runs()]


def per_job(fn):
    """An input or params function Snakemake calls for every job: its signature is read once here,
    not three times per job (Snakemake inspects a function before each call unless it was given the
    signature, as its own ioutils do): ~4% of the paper sweep's DAG build (BENCHMARKS.md: DAG build)."""
    overwrite_function_params(fn, inspect.signature(fn).parameters)
    return fn


def run_of(w):
    run = RUNS.get(w.run) or selected_runs().get(w.run)
    if run is None:
        raise ValueError(f"{w.run} is not a run of sweep {SWEEP!r}")
    return run


@per_job
def feature_files(w):
    """The cached features of the `{dataset}`'s `{tset}` (scores and the paraphraser)."""
    return [features_path(w.dataset, t) for t in teachers_of(CONFIG, w.tset)]


def _run_inputs(run):
    return {
        "split": split_path(run.dataset),
        "features": [features_path(run.dataset, t) for t in teachers_of(CONFIG, run.teacher_set)],
    }


@per_job
def probe_inputs(w):
    return _run_inputs(run_of(w))


@per_job
def train_inputs(w):
    """All inputs of a training run in one input function (Snakemake pays a signature
    inspection per function per job: one function instead of three matters at 50,000 jobs): the
    split, the teacher set's features and the Φ file the method reads beside them (FT's factors,
    the probe's logits), if any."""
    run = run_of(w)
    return {**_run_inputs(run), "targets": jobs.target_files(CONFIG, run.dataset, run.teacher_set, run.method)}


@per_job
def refit_inputs(w):
    """A refit run's training inputs and its tune stage's records (`tuned`): the same run fitted
    on train at each value of its grid, whose validation accuracy chooses the value refitted."""
    return {**train_inputs(w), "tuned": [metrics_path(t.run_id) for t in run_of(w).tune_stage]}


@per_job
def run_spec(w):
    """Resolved run spec as a shell-quoted JSON string (also the rule's params: a change to
    anything this run depends on reruns it, and nothing else does)."""
    return shlex.quote(json.dumps(train_spec(CONFIG, run_of(w)), sort_keys=True))


# Where heavy jobs run (aftbench.launch.launcher). Passed as Snakemake resources, not params, so that
# switching launcher never reruns finished work; the slurm profile overrides `launcher` per rule
# with set-resources, which survives any --config/--configfile given on the command line.
LAUNCHER = setting(CONFIG, "launcher")
# The report's headline teacher set per modality (the Fig. 1b table), one shell-quoted JSON string.
HEADLINE = shlex.quote(json.dumps(CONFIG.get("headline_sets", {}), sort_keys=True))
# The claims' equivalence margin δ in accuracy points (config.yaml: equivalence_margin).
MARGIN = CONFIG.get("equivalence_margin", 0.5)


def job_arg(kind):
    """The shell-quoted job spec (resources, deadline, requeues) of one kind of job, as one string per
    rule, not a per-job callable (a 5,000-job DAG would evaluate it 5,000 times)."""
    return shlex.quote(json.dumps(job_spec(CONFIG, kind), sort_keys=True))
