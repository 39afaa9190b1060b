"""A job that outlives the Snakemake that started it runs unowned: a rerun would train the same
run twice in parallel. These helpers let a job notice that its Snakemake is gone, even after
`kill -9`, which no signal handler sees."""

from __future__ import annotations

import os
import signal
import sys
import threading
import time


def alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except (FileNotFoundError, IndexError):
        return False


def _parent(pid: int) -> int | None:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return int(f.read().rsplit(")", 1)[1].split()[1])
    except (FileNotFoundError, IndexError, ValueError):
        return None


def _is_snakemake(pid: int) -> bool:
    """Whether a process is Snakemake itself (`snakemake ...` or `python -m snakemake ...`)."""
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            argv = [a.decode(errors="replace") for a in f.read().split(b"\0") if a]
    except OSError:
        return False
    if not argv:
        return False
    if os.path.basename(argv[0]) == "snakemake":
        return True
    return os.path.basename(argv[0]).startswith("python") and argv[1:3] == ["-m", "snakemake"]


def watched_ancestors() -> list[int]:
    """The Snakemake process this job runs under (its nearest ancestor that is Snakemake), or none
    when it was started some other way (a terminal, submitit): only Snakemake's death orphans a
    job. A shell in between may exec the job or not; a login shell that exits (nohup) is no reason
    to stop."""
    pid = os.getpid()
    for _ in range(8):
        pid = _parent(pid)
        if pid is None or pid <= 1:
            return []
        if _is_snakemake(pid):
            return [pid]
    return []


def stop_when_orphaned(poll_s: float = 1.0) -> None:
    """Send this process SIGTERM as soon as the Snakemake it runs under is gone (checked every
    `poll_s` in a daemon thread; nothing is watched outside Snakemake). Outputs are written atomically and training checkpoints, so a
    job stopped this way leaves nothing half-written and resumes on the next run."""
    ancestors = watched_ancestors()
    if not ancestors or not os.path.exists(f"/proc/{os.getpid()}/stat"):
        return

    def watch():
        while all(alive(p) for p in ancestors):
            time.sleep(poll_s)
        print(
            "aftbench: the process that started this job is gone (Snakemake killed?): stopping",
            file=sys.stderr,
            flush=True,
        )
        os.kill(os.getpid(), signal.SIGTERM)

    threading.Thread(target=watch, name="aftbench-lifeline", daemon=True).start()
