"""SLURM job states for every waiting process from one batched `sacct` per interval.

A sweep on SLURM has up to `jobs:` (100 in the slurm profile) waiting processes. If each asked
SLURM about its own job every few seconds, the accounting database would serve dozens of queries a
second; cluster admins forbid that. Instead the waiters of one results folder share a small cache
file (`results/logs/jobs/slurm_status.json`) and a lock beside it:

- a waiter registers its job id and then only reads the file (no SLURM call);
- when the file is older than the current interval, the first waiter to take the lock runs ONE
  `sacct -j id,id,...` for every registered job not yet finished and rewrites the file; the others
  find it fresh once they get the lock and do nothing;
- back-off: the interval starts at `launch.poll_s` and grows 1.5× after each query that saw no
  change (up to `4 × poll_s`), back to `poll_s` when something changed; when `sacct` fails
  (slurmdbd down, accounting off) the same interval asks `squeue` instead (a job gone from the
  queue has ended), and when both fail the interval doubles, up to 10 minutes, and the waiters keep
  the last known states meanwhile;
- a finished job stays in the query until its accounting (Elapsed, TotalCPU, MaxRSS) is complete
  or it has been finished for `ACCOUNTING_WAIT_S`; its accounting is written beside the rule's
  benchmark file (`<benchmark>.slurm.tsv`, aftbench.core.layout.accounting_path) by whichever
  waiter ran the query, so `cost --compare` sees the job's own time and memory, not the waiter's;
- a waiter returns as soon as its job's result is there, so the last jobs of a sweep end with no
  waiter left to ask: when Snakemake finishes (the workflow's onsuccess/onerror), `settle` makes
  the last batched queries and writes what they say.

A job that sacct does not know yet (just submitted, or accounting lagging) reads as None: still
waiting. Nothing here imports torch or submitit.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import time
from pathlib import Path

from aftbench.core.io import locked, write_json, write_text

FINAL_WAIT_S = 600.0  # longest interval after failing queries
ACCOUNTING_WAIT_S = 120.0  # how long a finished job's missing MaxRSS is waited for
SACCT_FIELDS = "JobID,State,Elapsed,TotalCPU,MaxRSS,Start"

# Scheduler states after which a job will not produce anything more.
WAITING_STATES = frozenset(
    {"READY", "PENDING", "REQUEUED", "REQUEUE_HOLD", "REQUEUE_FED", "CONFIGURING", "RESIZING", "SUSPENDED", "PREEMPTED"}
)
RUNNING_STATES = frozenset({"RUNNING", "COMPLETING", "SIGNALING", "STAGE_OUT", "UNKNOWN"})


def bare_state(state: str | None) -> str | None:
    """'CANCELLED by 0' -> 'CANCELLED'."""
    return state.split()[0].upper() if state else None


def is_final(state: str | None) -> bool:
    s = bare_state(state)
    return s is not None and s not in WAITING_STATES | RUNNING_STATES


def seconds(text: str) -> float | None:
    """SLURM durations: '[D-][HH:]MM:SS[.mmm]' (Elapsed, TotalCPU) -> seconds."""
    m = re.fullmatch(r"(?:(\d+)-)?(?:(\d+):)?(\d+):(\d+(?:\.\d+)?)", text.strip())
    if not m:
        return None
    d, h, mi, s = m.groups()
    return int(d or 0) * 86400 + int(h or 0) * 3600 + int(mi) * 60 + float(s)


def megabytes(text: str) -> float | None:
    """SLURM memory: '12345K', '1.5G', '0' (bytes) -> MB."""
    m = re.fullmatch(r"(\d+(?:\.\d+)?)([KMGT]?)", text.strip())
    if not m:
        return None
    scale = {"": 1 / 1024**2, "K": 1 / 1024, "M": 1.0, "G": 1024.0, "T": 1024.0**2}[m[2]]
    return float(m[1]) * scale


def parse_sacct(text: str) -> dict[str, dict]:
    """`sacct -n -P -o JobID,State,Elapsed,TotalCPU,MaxRSS,Start` (allocation and step lines) -> per
    job id: state, elapsed_s, cpu_s, max_rss_mb (the largest over its steps; None when not sampled)
    and start (when this attempt started: a requeued job starts again). Accounting may show the
    allocation PENDING while its batch step already runs: then RUNNING."""
    jobs: dict[str, dict] = {}
    for line in text.splitlines():
        parts = line.split("|") + [""]
        if len(parts) < 6:
            continue
        jid, state, elapsed, cpu, rss, start = parts[:6]
        base, _, step = jid.partition(".")
        job = jobs.setdefault(base, {"state": None, "elapsed_s": None, "cpu_s": None, "max_rss_mb": None})
        if not step:
            job.update(state=state, elapsed_s=seconds(elapsed), cpu_s=seconds(cpu), start=start or None)
            continue
        mb = megabytes(rss) if rss else None
        if mb is not None:
            job["max_rss_mb"] = max(job["max_rss_mb"] or 0.0, mb)
        if bare_state(state) == "RUNNING" and bare_state(job["state"]) in (None, "PENDING"):
            job["state"] = "RUNNING"
    return jobs


def _run(cmd: list[str]) -> str:
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    if out.returncode != 0:
        raise OSError(f"{cmd[0]} exited {out.returncode}: {out.stderr.strip()[-300:]}")
    return out.stdout


def _sacct(ids: list[str]) -> dict[str, dict]:
    return parse_sacct(_run(["sacct", "-n", "-P", "-o", SACCT_FIELDS, "-j", ",".join(ids)]))


def _squeue(ids: list[str]) -> dict[str, dict]:
    """Without accounting (sacct failing): the queue's view. A watched job no longer in the queue
    has ended; whether it left a result is for the waiter to see."""
    listed = {}
    for line in _run(["squeue", "-h", "-o", "%i|%T", "--me"]).splitlines():
        jid, _, state = line.partition("|")
        listed[jid.strip()] = state.strip()
    empty = {"elapsed_s": None, "cpu_s": None, "max_rss_mb": None, "start": None}
    return {j: {**empty, "state": listed.get(j, "ENDED (left the queue; sacct unavailable)")} for j in ids}


def _query(ids: list[str]) -> dict[str, dict]:
    """sacct; squeue when sacct fails (slurmdbd down, accounting off): one of them per interval."""
    try:
        return _sacct(ids)
    except (OSError, subprocess.SubprocessError):
        return _squeue(ids)


def write_accounting(path: str | os.PathLike, job_id: str, acct: dict, source: str = "sacct") -> None:
    """The job's own accounting as a one-row TSV beside the rule's benchmark file: `s` (wall
    seconds the job ran), `cpu_time` (seconds), `max_rss` (MB; empty when not sampled), the
    job id, its final state and where the numbers come from."""
    p = Path(path)

    def cell(v):
        return "" if v is None else f"{v:.2f}" if isinstance(v, float) else str(v)

    cols = {
        "s": acct.get("elapsed_s"),
        "cpu_time": acct.get("cpu_s"),
        "max_rss": acct.get("max_rss_mb"),
        "job_id": job_id,
        "state": bare_state(acct.get("state")) or "",
        "source": source,
    }
    write_text(p, "\t".join(cols) + "\n" + "\t".join(cell(v) for v in cols.values()) + "\n")


class SharedStatus:
    """The states of this folder's SLURM jobs, shared by every waiting process (module docstring)."""

    def __init__(self, folder: str | os.PathLike, poll_s: float, query=_query, clock=time.time):
        self.file = Path(folder) / "slurm_status.json"
        self.lock = self.file.with_suffix(".lock")
        self.poll_s = float(poll_s)
        self.max_s = 4 * self.poll_s
        self._query = query
        self._clock = clock

    def _locked(self):
        return locked(self.lock)

    def _read(self) -> dict:
        try:
            return json.loads(self.file.read_text())
        except (FileNotFoundError, json.JSONDecodeError):
            return {"at": 0.0, "interval": self.poll_s, "watch": {}, "jobs": {}}

    def _write(self, data: dict) -> None:
        write_json(self.file, data)

    def register(self, job_id: str, accounting: str | None = None) -> None:
        """Watch `job_id` from the next query on; its accounting goes to `accounting` once known."""
        with self._locked():
            data = self._read()
            for w in data["watch"].values():  # an earlier attempt of the same rule writes there no more
                if accounting and w["accounting"] == accounting:
                    w["accounting"] = None
            data["watch"][str(job_id)] = {"accounting": accounting, "finished_at": None}
            self._write(data)

    def state(self, job_id: str) -> str | None:
        """The job's last known state (None: not in accounting yet), refreshed when stale."""
        data = self._read()
        if self._clock() - data["at"] >= data["interval"]:
            data = self._refresh()
        return (data["jobs"].get(str(job_id)) or {}).get("state")

    def start(self, job_id: str) -> str | None:
        """When the job's current attempt started (changes when it is requeued), if known."""
        return (self._read()["jobs"].get(str(job_id)) or {}).get("start")

    def _refresh(self) -> dict:
        with self._locked():
            data = self._read()  # another waiter may have refreshed while this one waited for the lock
            now = self._clock()
            if now - data["at"] < data["interval"] or not data["watch"]:
                return data
            try:
                fresh = self._query(sorted(data["watch"]))
            except (OSError, subprocess.SubprocessError):
                data.update(
                    at=now, interval=min(2 * data["interval"], FINAL_WAIT_S), failures=data.get("failures", 0) + 1
                )
                self._write(data)
                return data
            changed = any(data["jobs"].get(j, {}).get("state") != v["state"] for j, v in fresh.items())
            data["jobs"].update(fresh)
            self._settle(data, now)
            data.update(
                at=now, failures=0, interval=self.poll_s if changed else min(1.5 * data["interval"], self.max_s)
            )
            self._write(data)
            return data

    def settle(self, timeout_s: float = 60.0, pause_s: float = 2.0) -> int:
        """The end of a sweep: query the jobs still watched (batched, every `pause_s`) until none is
        queued or running or `timeout_s` passed, write their accounting as it stands (MaxRSS may be
        missing for a job too short to be sampled), forget them. Returns how many were settled."""
        if not self.file.exists():
            return 0
        deadline = self._clock() + timeout_s
        with self._locked():
            data = self._read()
            ids = sorted(data["watch"])
            while ids:
                try:
                    data["jobs"].update(self._query(ids))
                except (OSError, subprocess.SubprocessError):
                    break
                if all(is_final(data["jobs"].get(j, {}).get("state")) for j in ids) or self._clock() > deadline:
                    break
                time.sleep(pause_s)
            for jid in ids:
                job, w = data["jobs"].get(jid), data["watch"].pop(jid)
                if job and is_final(job["state"]) and w["accounting"]:
                    write_accounting(w["accounting"], jid, job)
            self._write(data)
        return len(ids)

    def _settle(self, data: dict, now: float) -> None:
        """Finished jobs: write their accounting, stop querying them once it is complete (or waited
        for long enough), forget them an hour later."""
        for jid, w in list(data["watch"].items()):
            job = data["jobs"].get(jid)
            if not job or not is_final(job["state"]):
                continue
            w["finished_at"] = w["finished_at"] or now
            complete = job["max_rss_mb"] is not None
            if w["accounting"]:
                write_accounting(w["accounting"], jid, job)
            if complete or now - w["finished_at"] > ACCOUNTING_WAIT_S:
                del data["watch"][jid]
                job["forget_at"] = now + 3600
        for jid in [j for j, v in data["jobs"].items() if v.get("forget_at", now + 1) < now]:
            del data["jobs"][jid]


def settle_accounting(folder: str | os.PathLike) -> int:
    """`SharedStatus.settle` for the folder's SLURM jobs, if any were submitted (the workflow calls
    it when Snakemake ends; nothing happens without a status file)."""
    return SharedStatus(folder, poll_s=1.0).settle()
