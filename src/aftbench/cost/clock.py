"""A clock on long work: before a sweep's jobs start, what they will take (the `cost` model on the
configured device, for the cores given); after each job, what is left, from the same model
corrected by the jobs measured so far.

`start` (Snakemake's onstart) prices the jobs not yet done and writes the plan,
results/logs/clock/plan.json (one Snakemake runs in a folder at a time: its lock). `tick` (each
job's waiting process, when its job ends) appends the job's wall seconds to
results/logs/clock/done.tsv and prints one line: jobs done of planned, the estimate left and the
correction factor (measured / estimated over the finished jobs). A small run (fewer than
`MIN_JOBS` jobs, 20 unless AFTBENCH_CLOCK_MIN_JOBS says otherwise) gets no clock: its jobs end
before an estimate helps, and pricing them costs seconds.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

from aftbench.core.io import read_json, write_json
from aftbench.core.layout import LOGS_DIR

CLOCK_DIR = f"{LOGS_DIR}/clock"
PLAN, DONE = f"{CLOCK_DIR}/plan.json", f"{CLOCK_DIR}/done.tsv"
MIN_JOBS = int(os.environ.get("AFTBENCH_CLOCK_MIN_JOBS", "20"))  # the smallest run that gets a clock


def _minutes(seconds: float) -> str:
    return f"{seconds / 60:.0f} min" if seconds >= 90 else f"{seconds:.0f} s"


def start(config: dict, cores: int, to_run: set[str]) -> str | None:
    """Price the jobs Snakemake is about to run (`to_run`: their outputs) and write the plan;
    returns the line to print (None: fewer than MIN_JOBS of the sweep's priced jobs, no clock)."""
    for p in (PLAN, DONE):
        if os.path.exists(p):
            os.unlink(p)  # a plan of an earlier start must not clock this one
    if len(to_run) < MIN_JOBS:
        return None
    from aftbench.cost.bill import estimate

    try:
        est = estimate(config)
    except Exception as err:  # a clock never stops a run: the job that meets the same fault names it
        return f"[clock] no estimate for this run ({type(err).__name__}: {str(err)[:200]}); the jobs run without one"
    left = est.frame()
    left = left[left.output.isin(to_run)]
    if len(left) < MIN_JOBS:
        return None
    plan = {
        "sweep": config["sweep"],
        "device": est.device,
        "cores": max(1, int(cores)),
        "started": time.time(),
        "seconds": {out: float(s) for out, s in zip(left.output, left.seconds, strict=True)},
    }
    write_json(PLAN, plan)
    wall = left.seconds.sum() / plan["cores"]
    return (
        f"[clock] sweep {config['sweep']!r}: {len(left)} jobs to run, estimated {_minutes(wall)} on "
        f"{plan['cores']} core(s) (`cost` on device {est.device!r}; corrected as jobs finish)"
    )


def tick(output: str | None, seconds: float) -> str | None:
    """Record that the job writing `output` took `seconds`; the line saying what is left (None
    where no plan is running or the job is not in it)."""
    if output is None or not os.path.exists(PLAN):
        return None
    try:
        plan = read_json(PLAN)
    except (OSError, ValueError):
        return None
    if output not in plan["seconds"]:
        return None
    Path(DONE).parent.mkdir(parents=True, exist_ok=True)
    with open(DONE, "a") as f:  # one short line per write: appends from parallel jobs do not interleave
        f.write(f"{output}\t{seconds:.3f}\n")
    measured = {}
    for line in Path(DONE).read_text().splitlines():
        out, _, s = line.partition("\t")
        if out in plan["seconds"]:
            measured[out] = float(s)
    estimated_done = sum(plan["seconds"][o] for o in measured)
    factor = sum(measured.values()) / estimated_done if estimated_done > 0 else 1.0
    left = sum(s for o, s in plan["seconds"].items() if o not in measured)
    wall = left * factor / plan["cores"]
    return (
        f"[clock] {len(measured)} of {len(plan['seconds'])} jobs done; about {_minutes(wall)} left "
        f"(estimate × {factor:.2f}, measured on the {len(measured)} finished)"
    )
