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


def _ancestors(depth: int = 8):
    """This process's parent, its parent, ... (at most `depth`), up to but not including init."""
    pid = os.getpid()
    for _ in range(depth):
        pid = _parent(pid)
        if pid is None or pid <= 1:
            return
        yield pid


def _argv(pid: int) -> list[str]:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            return [a.decode(errors="replace") for a in f.read().split(b"\0") if a]
    except OSError:
        return []


def _names_snakemake(argv: list[str]) -> bool:
    """Whether a command line runs Snakemake: its console script (`snakemake ...`, or as the
    kernel runs it from its shebang, `.../python3 .../bin/snakemake ...`), `python -m snakemake`,
    or an interpreter with options before either (`python -u .../snakemake`)."""
    if not argv:
        return False
    if os.path.basename(argv[0]) == "snakemake":
        return True
    if not os.path.basename(argv[0]).startswith("python"):
        return False  # a wrapper (conda run, pixi, a shell script) starts Snakemake as its child
    rest = argv[1:]
    while rest and rest[0].startswith("-") and rest[0] not in ("-m", "-c"):
        rest = rest[1:]
    if rest[:1] == ["-m"]:
        return rest[1:2] in (["snakemake"], ["snakemake.__main__"])
    return bool(rest) and os.path.basename(rest[0]) == "snakemake"


def _is_snakemake(pid: int) -> bool:
    """Whether a process is Snakemake itself, however it was started (`_names_snakemake`)."""
    return _names_snakemake(_argv(pid))


def _workdir(pid: int) -> str | None:
    try:
        return os.path.realpath(f"/proc/{pid}/cwd")
    except OSError:
        return None


def snakemakes_on(directory: str) -> list[int]:
    """The live Snakemake processes (other than this one and its ancestors) working in `directory`."""
    mine = {os.getpid(), *_ancestors()}
    target = os.path.realpath(directory)
    found = []
    for entry in os.listdir("/proc") if os.path.isdir("/proc") else []:
        if entry.isdigit() and int(entry) not in mine and _is_snakemake(int(entry)) and alive(int(entry)):
            if _workdir(int(entry)) == target:
                found.append(int(entry))
    return sorted(found)


def lock_note(directory: str) -> str | None:
    """What to do about Snakemake's lock on `directory`, where one is held: wait for the Snakemake
    still running there, or `--unlock` a lock that no live Snakemake holds (one killed with -9)."""
    locks = os.path.join(directory, ".snakemake", "locks")
    if not os.path.isdir(locks) or not os.listdir(locks):
        return None
    live = snakemakes_on(directory)
    if live:
        return (
            f"aftbench: Snakemake (pid {', '.join(map(str, live))}) is still running in {directory}: wait for it "
            f"(or stop it); do not --unlock, two Snakemakes would write the same files"
        )
    return (
        f"aftbench: no Snakemake is running in {directory}, but a lock is left there (a Snakemake killed with "
        f"-9, or a power loss): `snakemake --unlock`, then run again (finished work is kept)"
    )


def watched_ancestors() -> list[int]:
    """The Snakemake process this job runs under (its nearest ancestor that is Snakemake), or none
    when it was started some other way (a terminal, submitit): only Snakemake's death orphans a
    job. A shell in between may exec the job or not; a login shell that exits (nohup) is no reason
    to stop."""
    return next(([pid] for pid in _ancestors() if _is_snakemake(pid)), [])


def stop_when_orphaned(ancestors: list[int] | None = None, poll_s: float = 1.0) -> None:
    """Send this process SIGTERM as soon as the Snakemake it runs under (`ancestors`, default
    watched_ancestors() now) is gone, checked every `poll_s` in a daemon thread; nothing is watched
    outside Snakemake. Outputs are written atomically and training checkpoints, so a job stopped
    this way leaves nothing half-written and resumes on the next run."""
    ancestors = watched_ancestors() if ancestors is None else ancestors
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
