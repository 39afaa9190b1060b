"""Where a heavy job (feature extraction, paraphraser, probe, scores, training) runs.

Snakemake runs every rule on the submitting host as `python -m aftbench CMD ... --launcher L
--job JSON`. With `local` the command runs in that process. Otherwise this module submits the
very same command through submitit — `slurm` (sbatch) or `submitit_local` (a subprocess, same
code path without a cluster) — and the Snakemake job becomes a small waiting process that:

- learns the job's state without asking SLURM itself: one batched `sacct` per interval serves every
  waiting process of the results folder (aftbench.launch.slurm_status; `launch.poll_s`, 30 s on
  SLURM, backing off to 4× while nothing changes), and records the job's own Elapsed, TotalCPU and
  MaxRSS beside the rule's benchmark file;
- gives up on a job queued longer than `launch.pending_max_h` or running longer than its time limit
  (+ `launch.running_grace_min`), cancelling it (aftbench.launch.waiting);
- cancels the job when it receives SIGINT, SIGTERM or SIGHUP, or when Snakemake dies under it
  (e.g. SIGKILL), so no job outlives the sweep. (SIGTERM sent to the Snakemake process alone is
  Snakemake's graceful stop: it starts nothing new and waits for the running jobs.)
- fails when the job ends without a result (killed, OOM, timeout, cancelled), naming the scheduler
  state and the job's log files, and copies the job's id, stdout and stderr into the rule's log.

With `launch.pack` > 1 for a kind, runs that are ready together share one job instead
(aftbench.launch.pack): one submission, one start-up, each run still its own Snakemake job,
outputs, log and checkpoint.

The caller hands in the job's callable (aftbench.cli.Command: the CLI without `--launcher`,
importable from the installed package, since submitit pickles by reference). It is
checkpointable: on a SLURM timeout or preemption signal submitit requeues it with the same
arguments, and training resumes from its own checkpoint file (see aftbench.train.loop), so a
requeued run ends where an uninterrupted one would.

Nothing here imports torch: the waiting processes stay light on a login node (~0.3 s start).
"""

from __future__ import annotations

import sys
from pathlib import Path

from aftbench.core.layout import JOBS_DIR, accounting_path, benchmark_path, job_name
from aftbench.core.schema import defaults
from aftbench.launch import pack
from aftbench.launch.executor import JobFailed, make_executor, tail
from aftbench.launch.slurm_status import SharedStatus, is_final
from aftbench.launch.waiting import Deadlines, wait_for

LAUNCHERS = ("local", "submitit_local", "slurm")
KINDS = ("extract", "paraphraser", "probe", "score", "train")
DEFAULT_POLL_S = {"slurm": 30.0, "submitit_local": 1.0}  # launch.poll_s: null
DEFAULT_PACK_WAIT_S = {"slurm": 10.0, "submitit_local": 5.0}  # launch.pack_wait_s: null

__all__ = ["LAUNCHERS", "KINDS", "JobFailed", "job_spec", "name_job", "submit_and_wait"]


def job_spec(config: dict, kind: str) -> dict:
    """Everything the launcher needs for the jobs of one rule kind, resolved from config.yaml's
    `launch:` block: resources (`default` overlaid with the kind's own entry), poll interval,
    deadlines, requeue limit and pack size. The same for every job of the kind (computed once per
    rule, so a 5,000-job DAG pays nothing per job); each job's name and folder come from its output."""
    if kind not in KINDS:
        raise ValueError(f"unknown job kind {kind!r}; known: {KINDS}")
    given = config.get("launch", {})
    launch = {**defaults("launch"), **{k: v for k, v in given.items() if k != "resources"}}
    res_cfg = given.get("resources", {})
    threads = {"train": config.get("train", {}).get("threads"), "extract": config.get("extract", {}).get("threads")}
    base = defaults("resources")
    base["cpus"] = threads.get(kind) or base["cpus"]  # cpus follow the kind's threads
    resources = {**base, **res_cfg.get("default", {}), **res_cfg.get(kind, {})}
    packs = launch["pack"]
    size = packs if isinstance(packs, int) else packs.get(kind, packs.get("default", 1))
    pending_h = launch["pending_max_h"]
    return {
        "kind": kind,
        "resources": resources,
        "poll_s": launch["poll_s"],
        "pending_s": None if pending_h is None else 3600.0 * pending_h,
        "time_s": 60.0 * resources["time_min"],
        "grace_s": 60.0 * launch["running_grace_min"],
        "max_requeues": int(launch["max_requeues"]),
        "pack": int(size),
        "pack_wait_s": launch["pack_wait_s"],
    }


def name_job(job: dict, out_path: str | None) -> dict:
    """The job's name, folder and accounting file from the command's `--out` path:
    `results/runs/<run id>/metrics.json` names it `aftbench:train:<run id>` with its files under
    results/logs/jobs/train/<run id>/ and its accounting beside results/benchmarks/runs/<run id>.tsv.
    A spec that already has a name or folder keeps them."""
    name = job_name(out_path or "job")
    return {
        "name": f"aftbench:{job['kind']}:{name}",
        "folder": f"{JOBS_DIR}/{job['kind']}/{name}",
        "accounting": accounting_path(benchmark_path(job["kind"], name)),
        **job,
    }


def resolved(launcher: str, job: dict) -> dict:
    """`job` with the launcher's defaults for the settings left null."""
    return {
        **job,
        "poll_s": float(job["poll_s"] or DEFAULT_POLL_S[launcher]),
        "pack_wait_s": float(job["pack_wait_s"] if job["pack_wait_s"] is not None else DEFAULT_PACK_WAIT_S[launcher]),
    }


def shared_status(launcher: str, job: dict) -> SharedStatus | None:
    """SLURM: the folder-wide batched state (aftbench.launch.slurm_status); None otherwise."""
    return SharedStatus(JOBS_DIR, job["poll_s"]) if launcher == "slurm" else None


def tick_s(job: dict) -> float:
    """How often a waiting process looks (files only; SLURM is asked at most once per poll_s)."""
    return min(job["poll_s"], 5.0)


class SubmittedJob:
    """A Ticket (aftbench.launch.waiting) for one submitit job running one command."""

    def __init__(self, launcher: str, job: dict, argv: list[str], command, status: SharedStatus | None):
        self.launcher, self.job, self.argv, self.command, self.status = launcher, job, argv, command, status
        self.sub = None
        self.label = f"{launcher} job ({job['name']}, not submitted yet)"

    def start(self) -> None:
        job = self.job
        if job.get("accounting"):  # an earlier attempt's numbers are not this one's
            Path(job["accounting"]).unlink(missing_ok=True)
        self.sub = sub = make_executor(self.launcher, job, job["folder"], job["name"]).submit(self.command, self.argv)
        self.label = f"{self.launcher} job {sub.job_id} ({job['name']})"
        print(f"submitted {self.label}; submitit folder {sub.paths.folder}", flush=True)
        if self.status is not None:
            self.status.register(sub.job_id, job.get("accounting"))

    def state(self) -> str | None:
        if self.status is not None:
            return self.status.state(self.sub.job_id)
        return self.sub.state  # LocalJob: RUNNING | FINISHED | INTERRUPTED

    def attempt(self) -> str | None:
        return self.status.start(self.sub.job_id) if self.status is not None else None

    def ended(self, state: str | None) -> bool:
        return is_final(state) if self.status is not None else state != "RUNNING"

    def ready(self) -> bool:
        return self.sub.paths.result_pickle.exists()

    def logs(self) -> str:
        return f"{self.sub.paths.stdout} {self.sub.paths.stderr}"

    def cancel(self) -> None:
        if self.sub is not None:
            self.sub.cancel(check=False)

    def _echo(self, state: str | None) -> None:
        """The job's own logs into this process's stdout, i.e. into the rule's log."""
        sub = self.sub
        print(f"== job {sub.job_id} done (scheduler state at that moment: {state or 'result written'})", flush=True)
        for label, path in (("stdout", sub.paths.stdout), ("stderr", sub.paths.stderr)):
            print(f"== job {sub.job_id} {label}: {path}", flush=True)
            if path.exists():
                sys.stdout.write(path.read_text(errors="replace"))
        sys.stdout.flush()

    def outcome(self, state: str | None) -> int:
        sub = self.sub
        if not self.ready() and not (state or "").upper().startswith("COMPLETED"):
            self._echo(state)
            raise JobFailed(
                f"{self.label} ended {state} without a result. stdout: {sub.paths.stdout}\n"
                f"stderr: {sub.paths.stderr}\nlast lines of stderr:\n{tail(sub.paths.stderr) or '(empty)'}"
            )
        try:
            code = sub.result()
        except Exception as err:  # the command raised on the job side: its traceback is in err
            self._echo(state)
            raise JobFailed(f"{self.label} failed (state {state}); stderr: {sub.paths.stderr}\n{err}") from None
        self._echo(state)
        return int(code or 0)


def submit_and_wait(launcher: str, job: dict, argv: list[str], command) -> int:
    """Run `command(argv)` (the CLI: aftbench.cli.Command) as a submitit job, or as one run of a
    pack, and wait for it (see module docstring)."""
    if launcher not in LAUNCHERS or launcher == "local":
        raise ValueError(f"submit_and_wait: launcher must be one of {LAUNCHERS[1:]}, got {launcher!r}")
    job = resolved(launcher, job)
    status = shared_status(launcher, job)
    if job["pack"] > 1:
        return pack.join_and_wait(launcher, job, argv, command, status, tick_s(job))
    ticket = SubmittedJob(launcher, job, argv, command, status)
    return wait_for(ticket, Deadlines(job["pending_s"], job["time_s"] + job["grace_s"]), tick_s(job))
