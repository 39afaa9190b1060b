"""A job that outlives the process that started it runs unowned: a rerun would train the same
run twice in parallel. These helpers let a job notice its parent and grandparent (the rule's
shell and Snakemake) are gone, even after `kill -9`, which no signal handler sees."""

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


def watched_ancestors() -> list[int]:
    """This process's parent and grandparent (for a Snakemake job: the rule's shell and Snakemake)."""
    pids, pid = [], os.getpid()
    for _ in range(2):
        try:
            with open(f"/proc/{pid}/stat") as f:
                pid = int(f.read().rsplit(")", 1)[1].split()[1])
        except (FileNotFoundError, IndexError, ValueError):
            break
        if pid <= 1:
            break
        pids.append(pid)
    return pids


def stop_when_orphaned(poll_s: float = 1.0) -> None:
    """Send this process SIGTERM as soon as its parent or grandparent is gone (checked every
    `poll_s` in a daemon thread). Outputs are written atomically and training checkpoints, so a
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
