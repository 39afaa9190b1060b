"""Packing: many runs share one submitted job and its start-up (`launch.pack: N`).

A paper-scale sweep is thousands of short jobs; one submission each hits a cluster's
MaxSubmitJobs and pays the start-up (interpreter, torch, CUDA) every time. With `launch.pack` > 1
for a kind, each Snakemake job still starts its own waiting process, but instead of submitting,
the waiting process puts its command in the kind's queue folder (`results/logs/jobs/<kind>/queue/`).

A pack is a worker that runs up to N runs, one after another. Under the queue's lock, whichever
waiting process looks first leaves queued runs to the packs that are idle (started, with room,
waiting for work) and submits a new pack for the rest: on SLURM one pack per N queued runs, handed
to it at once, as soon as N are queued or the oldest has waited `launch.pack_wait_s` (10 s), since a
pack may wait in the queue for hours; under submitit_local a pack starts at once, so each new pack
is handed one run. A pack that finished the runs it was handed takes the next queued ones itself
(oldest first), until it ran N, waiting up to `launch.pack_wait_s` for one (10 s SLURM, 5 s local):
under submitit_local, with `snakemake --cores C`, C packs stay busy and each pays the start-up once
per N runs. Each run is told which job and which place it got, and its waiting process waits for
that run only.

The job (PackRun) imports what the runs need once, then runs them one after another, each in a
forked child (aftbench.launch.console.run_logged) with its own log: the start-up is shared, and a
run that fails, or is killed (`kill -9`, the out-of-memory killer), fails only itself; the next run
starts. After each run its exit code and its own wall time, CPU time and peak memory (from
`wait4`) go to `<index>.status.json` in the pack's folder (`results/logs/jobs/<kind>/packs/<id>/`,
its runs in `runs.json`). A requeued pack (SLURM timeout or preemption) runs again: finished runs
are skipped and the interrupted one resumes from its checkpoint. The pack asks for N × the kind's
time limit.

A waiting process that is cancelled (Ctrl-C, SIGTERM, its Snakemake gone) marks its run cancelled:
the pack stops that run (SIGTERM, within a second) or never starts it; when every run of a pack is
finished or cancelled, the pack takes no more runs and its job is cancelled.
"""

from __future__ import annotations

import json
import os
import signal
import sys
import time
import uuid
from contextlib import contextmanager, nullcontext
from pathlib import Path

from submitit.helpers import Checkpointable

from aftbench.core.io import locked, write_json
from aftbench.core.layout import JOBS_DIR
from aftbench.launch.console import run_logged
from aftbench.launch.executor import JobFailed, make_executor, tail
from aftbench.launch.lifeline import alive
from aftbench.launch.slurm_status import SharedStatus, is_final, write_accounting
from aftbench.launch.waiting import Deadlines, signals_held, wait_for

HOST = os.uname().nodename


def _read_json(path: Path) -> dict | None:
    try:
        return json.loads(path.read_text())
    except (FileNotFoundError, json.JSONDecodeError):
        return None


def _status_path(pack_dir: Path, i: int) -> Path:
    return pack_dir / f"{i}.status.json"


def _log_path(pack_dir: Path, i: int) -> Path:
    return pack_dir / f"{i}.log"


def _cancel_path(pack_dir: Path, i: int) -> Path:
    return pack_dir / f"{i}.cancel"


def _wanted(record: dict) -> bool:
    """A queue entry or idle pack's record still stands: its process is alive where that can be
    seen (this host); an idle pack's wait has not run out."""
    if record.get("until", float("inf")) < time.time():
        return False
    return record.get("host", HOST) != HOST or alive(record.get("pid", -1))


def _queued(queue: Path) -> list[Path]:
    """The queue's entries, oldest first (named by the time they were queued); those whose waiting
    process is gone (killed with an earlier Snakemake: nobody wants them) are dropped. Under the lock."""
    entries = []
    for e in sorted(queue.glob("[!.]*.json")):  # not a writer's temporary file (core.io.atomic_path: .name.XXXX.json)
        if _wanted(_read_json(e) or {}):
            entries.append(e)
        else:
            e.unlink(missing_ok=True)
    return entries


def _idle_packs(queue: Path) -> int:
    """How many packs are waiting for a run (their markers under `queue/idle/`). Under the lock."""
    return sum(_wanted(_read_json(m) or {}) for m in (queue / "idle").glob("[!.]*.json"))


@contextmanager
def _output_to(path: Path):
    """stdout and stderr of what starts inside (submitit_local's controller inherits them) go to
    `path`: a local pack outlives the waiting process that started it, and must not hold or write to
    that process's log (a rule's log, the pipe a caller reads to its end)."""
    sys.stdout.flush()
    sys.stderr.flush()
    saved = [os.dup(1), os.dup(2)]
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    try:
        os.dup2(fd, 1)
        os.dup2(fd, 2)
        yield
    finally:
        os.dup2(saved[0], 1)
        os.dup2(saved[1], 2)
        for f in (fd, *saved):
            os.close(f)


def _die_with_parent(parent: int) -> None:
    """Linux: this (forked) run gets SIGTERM if the pack's process dies (cancelled, killed)."""
    try:
        import ctypes

        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass
    if os.getppid() != parent:  # it died before prctl took effect
        os._exit(128 + signal.SIGTERM)


class PackRun(Checkpointable):
    """The job side of a pack: the runs in `<pack>/runs.json`, one after another, then runs taken
    from `queue` until `capacity` ran (module docstring). `command` is the CLI (aftbench.cli.Command);
    its `preload(argv)`, if any, imports what a run needs before the first fork, so every run shares it."""

    def __init__(self, command, queue: str | None = None, capacity: int = 0, wait_s: float = 0.0):
        self.command, self.queue, self.capacity, self.wait_s = command, queue, capacity, wait_s

    def __call__(self, pack_dir: str) -> list[int]:
        pdir = Path(pack_dir)
        runs = json.loads((pdir / "runs.json").read_text())
        preload = getattr(self.command, "preload", None)
        if preload is not None:
            preload(runs[0]["argv"])
        codes: list[int] = []
        i = 0
        while i < len(runs) or i < len(runs := self._take(pdir, runs)):
            rc = self._next(pdir, i, runs[i])
            if rc is None:  # SLURM stopped the pack (preemption, requeue, scancel): the rest waits for its next start
                break
            codes.append(rc)
            i += 1
        return codes

    def _take(self, pdir: Path, runs: list[dict]) -> list[dict]:
        """`runs` and the oldest queued run, once one is queued (waiting up to wait_s while idle,
        announced by a marker under `queue/idle/`); `runs` alone when full, over or nothing came."""
        if self.queue is None or len(runs) >= self.capacity:
            return runs
        import submitit

        env = submitit.JobEnvironment()
        me = {"pack": str(pdir), "job_id": str(env.job_id), "stdout": str(env.paths.stdout)}
        me["stderr"] = str(env.paths.stderr)
        queue = Path(self.queue)
        marker = queue / "idle" / f"{pdir.name}.json"
        until = time.time() + self.wait_s
        try:
            while True:
                with locked(queue / ".lock"):
                    entries = _queued(queue)
                    if entries or time.time() >= until:
                        marker.unlink(missing_ok=True)
                        return self._claim(pdir, runs, entries[0], me) if entries else runs
                    if not marker.exists():  # announced once, under the lock, for the whole wait
                        write_json(marker, {"until": until, "host": HOST, "pid": os.getpid()})
                time.sleep(0.2)
        finally:
            marker.unlink(missing_ok=True)

    @staticmethod
    def _claim(pdir: Path, runs: list[dict], entry: Path, me: dict) -> list[dict]:
        with locked(pdir / ".lock"):  # a waiter's cancel sees the pack's runs before or after, never between
            if (pdir / "over").exists():
                return runs
            runs = [*runs, _read_json(entry)]
            write_json(pdir / "runs.json", runs)
        write_json(entry.with_suffix(".claim"), {**me, "index": len(runs) - 1})
        entry.unlink()
        return runs

    def _next(self, pdir: Path, i: int, run: dict) -> int | None:
        done = _read_json(_status_path(pdir, i))
        if done and "rc" in done:  # a requeued pack: this run finished before
            return done["rc"]
        if _cancel_path(pdir, i).exists():
            write_json(_status_path(pdir, i), {"rc": 128 + signal.SIGTERM, "cancelled": True})
            return 128 + signal.SIGTERM
        return self._one(pdir, i, run)

    def _one(self, pdir: Path, i: int, run: dict) -> int | None:
        """Run `run` in a forked child; its exit code, or None when the pack itself was stopped
        under it (SIGTERM that was not this run's cancel): then nothing is recorded, and a requeued
        pack runs it again, resuming from its checkpoint."""
        started = time.time()
        child: list[int] = []

        def on_start(pid: int) -> None:
            child.append(pid)
            write_json(_status_path(pdir, i), {"pid": pid, "host": HOST, "started": started})

        def look(signum, frame):  # every second: was this run cancelled?
            if child and _cancel_path(pdir, i).exists():
                try:
                    os.kill(child[0], signal.SIGTERM)
                except ProcessLookupError:
                    pass

        parent = os.getpid()

        def work():
            _die_with_parent(parent)
            signal.signal(signal.SIGUSR2, signal.SIG_IGN)  # submitit's timeout signal: the pack's to handle, once
            return self.command(run["argv"])

        before = signal.signal(signal.SIGALRM, look)
        signal.setitimer(signal.ITIMER_REAL, 1.0, 1.0)
        usage: dict = {}
        try:
            rc = run_logged(work, run["what"], str(_log_path(pdir, i)), usage=usage, on_start=on_start)
        finally:
            signal.setitimer(signal.ITIMER_REAL, 0)
            signal.signal(signal.SIGALRM, before)
        if rc == 128 + signal.SIGTERM and not _cancel_path(pdir, i).exists():
            return None
        write_json(_status_path(pdir, i), {"rc": rc, "started": started, **usage})
        return rc


class PackedRun:
    """A Ticket (aftbench.launch.waiting) for one run handed to a pack: queued, then claimed."""

    def __init__(self, launcher: str, job: dict, argv: list[str], command, status: SharedStatus | None, deadlines):
        self.launcher, self.job, self.command, self.status = launcher, job, command, status
        self.deadlines = deadlines  # its running limit becomes the pack's once the pack is known
        if job.get("accounting"):  # an earlier attempt's numbers are not this one's
            Path(job["accounting"]).unlink(missing_ok=True)
        self.kind_dir = Path(JOBS_DIR) / job["kind"]
        self.queue = self.kind_dir / "queue"
        self.queue.mkdir(parents=True, exist_ok=True)
        self.entry = self.queue / f"{time.time():.6f}-{uuid.uuid4().hex[:8]}.json"
        self.claim: dict | None = None
        self.label = f"{launcher} pack run ({job['name']}, queued)"
        self.argv = argv

    def start(self) -> None:
        what = f"{self.job['kind']} {self.job['name'].split(':', 2)[-1]}"
        record = {"argv": self.argv, "what": what, "name": self.job["name"], "pid": os.getpid(), "host": HOST}
        write_json(self.entry, record)

    # --- queued: wait to be claimed, or claim a pack
    def _claimed(self) -> bool:
        if self.claim is None:
            claim_file = self.entry.with_suffix(".claim")
            self.claim = _read_json(claim_file)
            if self.claim is not None:
                claim_file.unlink(missing_ok=True)
            if self.claim is not None and "error" not in self.claim:
                i = self.claim["index"]
                self.label = f"{self.launcher} job {self.claim['job_id']} (pack run {i + 1}: {self.job['name']})"
                print(f"packed into {self.label}; pack folder {self.claim['pack']}", flush=True)
        return self.claim is not None

    def _lead(self) -> None:
        with locked(self.queue / ".lock"):
            if self._claimed():
                return
            waiting = _queued(self.queue)[_idle_packs(self.queue) :]  # the oldest are the idle packs' next runs
            hand = self.job["pack"] if self.launcher == "slurm" else 1  # a local pack starts at once
            while waiting:
                take, waiting = waiting[:hand], waiting[hand:]
                if len(take) < hand and time.time() - _queued_at(take[0]) < self.job["pack_wait_s"]:
                    return
                with signals_held():  # submitted and handed out, or neither
                    self._submit(take)

    def _submit(self, take: list[Path]) -> None:
        runs = [_read_json(e) for e in take]
        pdir = (self.kind_dir / "packs" / take[0].stem).resolve()
        pdir.mkdir(parents=True, exist_ok=True)
        write_json(pdir / "runs.json", runs)
        try:
            n = self.job["pack"]
            ex = make_executor(self.launcher, self.job, pdir, f"aftbench:{self.job['kind']}:pack", runs=n)
            with _output_to(pdir / "controller.log") if self.launcher != "slurm" else nullcontext():
                sub = ex.submit(PackRun(self.command, str(self.queue), n, self.job["pack_wait_s"]), str(pdir))
            claim = {"pack": str(pdir), "job_id": str(sub.job_id)}
            claim.update(stdout=str(sub.paths.stdout), stderr=str(sub.paths.stderr))
            if self.status is not None:
                self.status.register(sub.job_id)
        except Exception as err:  # sbatch refused it: every run of the pack hears why
            claim = {"error": f"submitting a pack of {len(take)} runs failed: {type(err).__name__}: {err}"}
        for i, e in enumerate(take):
            write_json(e.with_suffix(".claim"), {**claim, "index": i})
            e.unlink()

    # --- the Ticket
    def state(self) -> str | None:
        if not self._claimed():
            self._lead()
            if not self._claimed():
                return None
        if "error" in self.claim:
            return "FAILED"
        if self.status is not None:
            return self.status.state(self.claim["job_id"])
        return "RUNNING" if alive(int(self.claim["job_id"])) else "FINISHED"  # a local pack: its pid

    def attempt(self) -> str | None:
        if self.status is None or not self.claim or "error" in self.claim:
            return None
        return self.status.start(self.claim["job_id"])

    def ended(self, state: str | None) -> bool:
        if self.claim is None:
            return False
        return "error" in self.claim or (is_final(state) if self.status is not None else state == "FINISHED")

    def _pack(self) -> Path:
        return Path(self.claim["pack"])

    def _status(self) -> dict | None:
        return (
            _read_json(_status_path(self._pack(), self.claim["index"]))
            if self._claimed() and "error" not in self.claim
            else None
        )

    def ready(self) -> bool:
        s = self._status()
        return s is not None and "rc" in s

    def logs(self) -> str:
        if not self.claim or "error" in self.claim:
            return "(not submitted yet)"
        return f"{_log_path(self._pack(), self.claim['index'])} {self.claim['stdout']} {self.claim['stderr']}"

    def outcome(self, state: str | None) -> int:
        if "error" in self.claim:
            raise JobFailed(f"{self.job['name']}: {self.claim['error']}")
        log = _log_path(self._pack(), self.claim["index"])
        print(f"== {self.label}: its log {log}", flush=True)
        if log.exists():
            sys.stdout.write(log.read_text(errors="replace"))
            sys.stdout.flush()
        s = self._status()
        for _ in range(60 if self.status is not None else 0):  # written on a compute node: NFS may show it late
            if s is not None and "rc" in s:
                break
            time.sleep(1)
            self._pack().chmod(self._pack().stat().st_mode)  # refreshes an NFS client's view of the folder
            s = self._status()
        if s is None or "rc" not in s:
            raise JobFailed(
                f"{self.label} ended {state} before this run finished. Logs: {self.logs()}\n"
                f"last lines of the pack's stderr:\n{tail(Path(self.claim['stderr']))}"
            )
        self._account(s)
        if s["rc"] != 0:
            last = tail(log, 1) or f"exit status {s['rc']}"
            raise JobFailed(f"{self.label} failed: {last}")
        return 0

    def _account(self, s: dict) -> None:
        if self.job.get("accounting") and "elapsed_s" in s:
            acct = {**s, "state": "COMPLETED" if s["rc"] == 0 else "FAILED"}
            write_accounting(self.job["accounting"], self.claim["job_id"], acct, source="pack (wait4)")

    def cancel(self) -> None:
        with locked(self.queue / ".lock"):
            if not self._claimed():  # never handed to a pack: just leave the queue
                self.entry.unlink(missing_ok=True)
                return
        if "error" in self.claim:
            return
        pdir = self._pack()
        with locked(pdir / ".lock"):
            _cancel_path(pdir, self.claim["index"]).touch()
            n = len(_read_json(pdir / "runs.json") or [])
            over = all(
                _cancel_path(pdir, i).exists() or "rc" in (_read_json(_status_path(pdir, i)) or {}) for i in range(n)
            )
            if over:  # it takes no more runs
                (pdir / "over").touch()
        if over:  # nothing of this pack is wanted any more
            if self.status is not None:
                import subprocess

                subprocess.call(["scancel", self.claim["job_id"]])
            else:
                try:
                    os.kill(int(self.claim["job_id"]), signal.SIGINT)  # what submitit's LocalJob.cancel sends
                except ProcessLookupError:
                    pass


def _queued_at(entry: Path) -> float:
    return float(entry.stem.split("-")[0])


def join_and_wait(
    launcher: str, job: dict, argv: list[str], command, status: SharedStatus | None, tick_s: float
) -> int:
    """Queue this run for a pack and wait for its outcome (module docstring)."""
    deadlines = Deadlines(job["pending_s"], job["time_s"] * job["pack"] + job["grace_s"])
    ticket = PackedRun(launcher, job, argv, command, status, deadlines)
    return wait_for(ticket, deadlines, min(tick_s, 0.5) if job["pack_wait_s"] < 5 else tick_s)
