# Config validation, sweep expansion and target lists. Everything else lives in the aftbench package;
# every path comes from aftbench.layout.
import json
import os
import re
import shlex

from aftbench import jobs
from aftbench.launcher import job_spec
from aftbench.adaptive import UNION_SEP, known_selections, related_sets, scored_sets, selection_requests
from aftbench.config import (
    ConfigError,
    expand_sweep,
    setting,
    validate_config,
)
from aftbench.sweep_runs import teachers_of, train_spec
from aftbench.input_checks import yte_config_files
from aftbench.layout import (
    BENCHMARKS_DIR,
    CLAIM_FIGURES,
    FACTORS_TEMPLATE,
    LOGS_DIR,
    NO_TEACHERS,
    PROBE_STUDENT,
    RESULTS,
    RUN_TEMPLATE,
    SCORE_FIGURES,
    SCORE_TABLES,
    TRAIN_VARIANT,
    factors_path,
    features_path,
    metrics_path,
    probe_logits_path,
    report_dir,
    report_paths,
    scores_path,
    selection_path,
    sidecar,
    split_images_dir,
    split_path,
)

# The schema, cross-references and every backend's arguments, all problems at once (the same check
# as `python -m aftbench validate`). CONFIG is the validated config with one-line teacher specs
# expanded; the rules read CONFIG, never the raw `config`.
if yte_config_files(workflow.configfiles):  # Snakemake strips the marker from `config`: read the files
    raise ConfigError(yte_config_files(workflow.configfiles))
CONFIG = validate_config(config)

SWEEP = CONFIG["sweep"]
# The runs known before any selection: every run of a fixed block, and an adaptive block's runs
# without teachers. An adaptive block's other runs come only through its selection checkpoint
# (selected_run_targets), so a selection that is redone replans them.
RUNS = {r.run_id: r for r in expand_sweep(CONFIG, selections={})}
REQUESTS = {r.digest: r for r in selection_requests(CONFIG)}  # adaptive blocks' selections, by digest
DATASETS = sorted({d for b in CONFIG["sweeps"][SWEEP] for d in b["datasets"]})


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


wildcard_constraints:
    dataset=_alt(CONFIG["datasets"]),
    teacher=_alt(CONFIG["teachers"]),
    student=_alt(list(CONFIG["students"]) + [PROBE_STUDENT]),
    method=_alt(CONFIG["methods"]),
    tset=_tset_pattern(),
    sdigest=r"[0-9a-f]{8}",
    seed=r"\d+",
    tdigest=r"[0-9a-f]{8}",
    beta=r"[0-9][0-9.e+-]*",


def run_targets():
    return [metrics_path(r.run_id) for r in RUNS.values()]


def report_targets():
    return report_paths(SWEEP, DATASETS, CLAIM_FIGURES)


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


def report_metrics(w):
    """Every run the report reads: the fixed ones and, once selected, the adaptive blocks'."""
    return run_targets() + selected_run_targets(w)


def run_of(w):
    rid = RUN_TEMPLATE.format(**{k: v for k, v in w.items() if k != "tdigest"})
    if "tdigest" in w.keys():
        rid += "/" + TRAIN_VARIANT.format(tdigest=w.tdigest)
    run = RUNS.get(rid) or selected_runs().get(rid)
    if run is None:
        raise ValueError(f"{rid} is not a run of sweep {SWEEP!r}")
    return run


def feature_files(w):
    return [features_path(w.dataset, t) for t in teachers_of(CONFIG, w.tset)]


def target_files(w):
    """The Φ file a method needs instead of the features (FT factors, the probe's logits), or none."""
    return jobs.target_files(CONFIG, w.dataset, w.tset, w.method)


def train_inputs(w):
    """All inputs of a training run in one input function (Snakemake pays a signature
    inspection per function per job: one function instead of two matters at 5,000 jobs)."""
    return {"features": feature_files(w), "targets": target_files(w)}


def run_spec(w):
    """Resolved run spec as a shell-quoted JSON string (also the rule's params: a change to
    anything this run depends on reruns it, and nothing else does)."""
    return shlex.quote(json.dumps(train_spec(CONFIG, run_of(w)), sort_keys=True))


# Where heavy jobs run (aftbench.launcher). Passed as Snakemake resources, not params, so that
# switching launcher never reruns finished work; the slurm profile overrides `launcher` per rule
# with set-resources, which survives any --config/--configfile given on the command line.
LAUNCHER = setting(CONFIG, "launcher")


def job_arg(kind):
    """The shell-quoted job spec (resources, deadline, requeues) of one kind of job, as one string per
    rule, not a per-job callable (a 5,000-job DAG would evaluate it 5,000 times)."""
    return shlex.quote(json.dumps(job_spec(CONFIG, kind), sort_keys=True))
