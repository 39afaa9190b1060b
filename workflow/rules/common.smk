# Config validation, sweep expansion and target lists. Everything else lives in the aftbench package.
import json
import os
import shlex

from aftbench.figures import CLAIM_FIGURES
from aftbench.registry import target_source
from aftbench.launcher import job_spec
from aftbench.config import (FACTORS_TEMPLATE, NO_TEACHERS, RUN_TEMPLATE, distilled_probe, expand_sweep, teachers_of,
                             train_spec, validate_config)


# The schema (workflow/schemas/config.schema.yaml), cross-references and every backend's
# arguments, all problems at once: the same check as `python -m aftbench validate`.
validate_config(config)

RUNS = {r.run_id: r for r in expand_sweep(config)}
DATASETS = sorted({r.dataset for r in RUNS.values()})
R = "results"


def _alt(ids):
    return "|".join(sorted(ids))


wildcard_constraints:
    dataset=_alt(config["datasets"]),
    teacher=_alt(config["teachers"]),
    student=_alt(list(config["students"]) + ["probe"]),
    method=_alt(config["methods"]),
    tset=_alt(list(config["teacher_sets"]) + [NO_TEACHERS]),
    seed=r"\d+",
    beta=r"[0-9][0-9.e+-]*",


def run_dir(run):
    return f"{R}/runs/{run.run_id}"


def run_targets():
    return [f"{run_dir(r)}/metrics.json" for r in RUNS.values()]


def report_targets():
    return [f"{R}/runs.csv", f"{R}/tables/main.md", f"{R}/tables/main.tex", f"{R}/tables/main.csv"] + [
        f"{R}/figures/{d}_accuracy.png" for d in DATASETS
    ] + [f"{R}/figures/{f}.png" for f in CLAIM_FIGURES]


def run_of(w):
    rid = RUN_TEMPLATE.format(**dict(w.items()))
    if rid not in RUNS:
        raise ValueError(f"{rid} is not a run of sweep {config['sweep']!r}")
    return RUNS[rid]


def feature_files(w):
    return [f"{R}/features/{w.dataset}/{t}.safetensors" for t in teachers_of(config, w.tset)]


def target_files(w):
    """The Φ file a method needs instead of the features (FT factors, the probe's logits), or none."""
    m = config["methods"][w.method]
    source = target_source(m.get("penalty", "none"))
    if source == "factors":
        return [f"{R}/factors/{FACTORS_TEMPLATE.format(dataset=w.dataset, tset=w.tset, method=w.method)}/factors.safetensors"]
    if source == "probe_logits":
        probe_run = RUN_TEMPLATE.format(dataset=w.dataset, student="probe", method=distilled_probe(m), tset=w.tset,
                                        beta=0, seed=0)
        return [f"{R}/runs/{probe_run}/logits.safetensors"]
    return []


def train_inputs(w):
    """All inputs of a training run in one input function (Snakemake pays a signature
    inspection per function per job: one function instead of two matters at 5,000 jobs)."""
    return {"features": feature_files(w), "targets": target_files(w)}


def run_spec(w):
    """Resolved run spec as a shell-quoted JSON string (also the rule's params: a change to
    anything this run depends on reruns it, and nothing else does)."""
    return shlex.quote(json.dumps(train_spec(config, run_of(w)), sort_keys=True))


# Where heavy jobs run (aftbench.launcher). Passed as Snakemake resources, not params, so that
# switching launcher never reruns finished work; the slurm profile overrides `launcher` per rule
# with set-resources, which survives any --config/--configfile given on the command line.
LAUNCHER = config.get("launcher", "local")


def job_arg(kind):
    """The shell-quoted job spec (resources, deadline, requeues) of one kind of job, as one string per
    rule, not a per-job callable (a 5,000-job DAG would evaluate it 5,000 times)."""
    return shlex.quote(json.dumps(job_spec(config, kind), sort_keys=True))
