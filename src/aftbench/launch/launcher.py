"""Where a heavy job (feature extraction, paraphraser, probe, training) runs.

Snakemake runs every rule on the submitting host as `python -m aftbench CMD ... --launcher L
--job JSON`. With `local` the command runs in that process. Otherwise this module submits the
very same command through submitit — `slurm` (sbatch) or `submitit_local` (a subprocess, same
code path without a cluster) — and the Snakemake job becomes a small waiting process that:

- polls the job's state every `poll_s` seconds (SLURM: `sacct`) and gives up after a deadline
  (it then cancels the job), so nothing waits forever;
- cancels the job when it receives SIGINT, SIGTERM or SIGHUP (Ctrl-C and `kill -TERM` reach
  the whole process group), or when Snakemake dies under it (e.g. SIGKILL), so no job outlives
  the sweep. (SIGTERM sent to the Snakemake process alone is Snakemake's graceful stop: it
  starts nothing new and waits for the running jobs, which finish normally.)
- fails within one poll when the job ends without a result (killed, OOM, timeout, cancelled),
  naming the scheduler state and the job's log files;
- copies the job's id, stdout and stderr into the rule's log.

The caller hands in the job's callable (aftbench.cli.Command: the CLI without `--launcher`,
importable from the installed package, since submitit pickles by reference). It is
checkpointable: on a SLURM timeout or preemption signal submitit requeues it with the same
arguments, and training resumes from its own checkpoint file (see aftbench.train.loop), so a
requeued run ends where an uninterrupted one would.

Nothing here imports torch: the waiting processes stay light on a login node (~0.3 s start).
"""

from __future__ import annotations

import signal
import sys
import time
from pathlib import Path

from aftbench.core.layout import JOBS_DIR, job_name
from aftbench.core.schema import defaults
from aftbench.launch.lifeline import alive, watched_ancestors

LAUNCHERS = ("local", "submitit_local", "slurm")
KINDS = ("extract", "paraphraser", "probe", "score", "train")

# SLURM states after which a job will not produce anything more (sacct prints e.g. "CANCELLED by 0").
_RUNNING_STATES = {
    "READY",
    "PENDING",
    "RUNNING",
    "UNKNOWN",
    "REQUEUED",
    "COMPLETING",
    "PREEMPTED",
    "CONFIGURING",
    "RESIZING",
    "SUSPENDED",
    "REQUEUE_HOLD",
    "REQUEUE_FED",
    "SIGNALING",
    "STAGE_OUT",
}


class JobFailed(RuntimeError):
    pass


def job_spec(config: dict, kind: str) -> dict:
    """Everything the launcher needs for the jobs of one rule kind, resolved from config.yaml's
    `launch:` block: resources (`default` overlaid with the kind's own entry), poll interval,
    deadline and requeue limit. The same for every job of the kind (computed once per rule, so a
    5,000-job DAG pays nothing per job); each job's name and folder come from its output path."""
    if kind not in KINDS:
        raise ValueError(f"unknown job kind {kind!r}; known: {KINDS}")
    launch = {**defaults("launch"), **{k: v for k, v in config.get("launch", {}).items() if k != "resources"}}
    res_cfg = config.get("launch", {}).get("resources", {})
    threads = {"train": config.get("train", {}).get("threads"), "extract": config.get("extract", {}).get("threads")}
    base = defaults("resources")
    base["cpus"] = threads.get(kind) or base["cpus"]  # cpus follow the kind's threads
    resources = {**base, **res_cfg.get("default", {}), **res_cfg.get(kind, {})}
    deadline_min = launch["deadline_min"]
    if deadline_min is None:  # queueing + every allowed requeue of a job that uses its full time
        deadline_min = resources["time_min"] * (launch["max_requeues"] + 1) + 60
    return {
        "kind": kind,
        "resources": resources,
        "poll_s": float(launch["poll_s"]),
        "deadline_s": 60.0 * deadline_min,
        "max_requeues": int(launch["max_requeues"]),
    }


def _executor(launcher: str, job: dict):
    import submitit

    r = job["resources"]
    ex = submitit.AutoExecutor(
        folder=str(Path(job["folder"]).resolve() / "%j"),
        cluster="slurm" if launcher == "slurm" else "local",
        slurm_max_num_timeout=job["max_requeues"],
    )
    params = {
        "name": job["name"],
        "timeout_min": int(r["time_min"]),
        "cpus_per_task": int(r["cpus"]),
        "mem_gb": r["mem_gb"],
    }
    if r["gpus"]:
        params["gpus_per_node"] = int(r["gpus"])
    if launcher == "slurm":
        for key in ("partition", "account", "qos"):
            if r[key]:
                params[f"slurm_{key}"] = r[key]
        if r["sbatch"]:
            params["slurm_additional_parameters"] = dict(r["sbatch"])
    ex.update_parameters(**params)
    return ex


def _state(job, launcher: str) -> str:
    if launcher == "slurm":
        return job.watcher.get_state(job.job_id, mode="force")
    return job.state  # LocalJob: RUNNING | FINISHED | INTERRUPTED


def _finished(state: str, launcher: str) -> bool:
    if launcher == "slurm":
        return state.split()[0].upper() not in _RUNNING_STATES
    return state != "RUNNING"


def _tail(path: Path, n: int = 40) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-n:])
    except FileNotFoundError:
        return f"({path} does not exist)"


def _echo_logs(job, state: str) -> None:
    """The job's own logs into this process's stdout, i.e. into the rule's log."""
    print(f"== job {job.job_id} done (scheduler state at that moment: {state})", flush=True)
    for label, path in (("stdout", job.paths.stdout), ("stderr", job.paths.stderr)):
        print(f"== job {job.job_id} {label}: {path}", flush=True)
        if path.exists():
            sys.stdout.write(path.read_text(errors="replace"))
    sys.stdout.flush()


def submit_and_wait(launcher: str, job: dict, argv: list[str], command) -> int:
    """Run `command(argv)` (the CLI: aftbench.cli.Command) as a submitit job and wait for it
    (see module docstring)."""
    if launcher not in LAUNCHERS or launcher == "local":
        raise ValueError(f"submit_and_wait: launcher must be one of {LAUNCHERS[1:]}, got {launcher!r}")
    caught: list[int] = []

    def on_signal(signum, frame):
        caught.append(signum)
        raise KeyboardInterrupt

    previous = {s: signal.signal(s, on_signal) for s in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)}
    sub = None
    try:
        ex = _executor(launcher, job)
        sub = ex.submit(command, argv)
        print(f"submitted {launcher} job {sub.job_id} ({job['name']}); submitit folder {sub.paths.folder}", flush=True)
        deadline = time.monotonic() + job["deadline_s"]
        ancestors = watched_ancestors()
        state = _state(sub, launcher)
        while not _finished(state, launcher):
            if sub.paths.result_pickle.exists():
                break
            if not all(alive(p) for p in ancestors):
                sub.cancel(check=False)
                raise JobFailed(
                    f"the Snakemake that launched {launcher} job {sub.job_id} ({job['name']}) is gone "
                    f"(Snakemake killed?): cancelled the job"
                )
            if time.monotonic() > deadline:
                sub.cancel(check=False)
                raise JobFailed(
                    f"{launcher} job {sub.job_id} ({job['name']}) still {state} after the "
                    f"{job['deadline_s'] / 60:.0f}-min deadline (launch.deadline_min): cancelled it. "
                    f"Logs: {sub.paths.stdout} {sub.paths.stderr}"
                )
            time.sleep(job["poll_s"])
            state = _state(sub, launcher)
        if not sub.paths.result_pickle.exists() and not state.upper().startswith("COMPLETED"):
            _echo_logs(sub, state)
            raise JobFailed(
                f"{launcher} job {sub.job_id} ({job['name']}) ended {state} without a result. "
                f"stdout: {sub.paths.stdout}\nstderr: {sub.paths.stderr}\n"
                f"last lines of stderr:\n{_tail(sub.paths.stderr)}"
            )
        try:
            code = sub.result()
        except Exception as err:  # the command raised on the job side: its traceback is in err
            _echo_logs(sub, state)
            raise JobFailed(
                f"{launcher} job {sub.job_id} ({job['name']}) failed (state {state}); stderr: {sub.paths.stderr}\n{err}"
            ) from None
        _echo_logs(sub, state)
        return int(code or 0)
    except KeyboardInterrupt:
        if sub is not None:
            sub.cancel(check=False)
            print(
                f"cancelled {launcher} job {sub.job_id} ({job['name']}) on signal "
                f"{signal.Signals(caught[0]).name if caught else 'SIGINT'}",
                flush=True,
            )
        sys.exit(128 + (caught[0] if caught else signal.SIGINT))
    finally:
        for s, h in previous.items():
            signal.signal(s, h)


def name_job(job: dict, out_path: str | None) -> dict:
    """The job's name and folder from the command's `--out` path: `results/runs/<run id>/metrics.json`
    names it `aftbench:train:<run id>` with its files under results/logs/jobs/train/<run id>/.
    A spec that already has a name or folder keeps them."""
    name = job_name(out_path or "job")
    return {"name": f"aftbench:{job['kind']}:{name}", "folder": f"{JOBS_DIR}/{job['kind']}/{name}", **job}
