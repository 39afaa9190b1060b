"""The waiting processes' view of SLURM without a cluster: sacct's output parsed, ONE batched query
per interval shared by every waiter of a results folder (with back-off, and patience when sacct
fails), the job's own accounting written beside its benchmark file, and the PENDING / RUNNING
clocks. The same against a real cluster: tests/test_slurm.py."""

import csv

import pytest

from aftbench.launch.slurm_status import SharedStatus, megabytes, parse_sacct, seconds, settle_accounting
from aftbench.launch.waiting import Deadlines

# What `sacct -n -P -o JobID,State,Elapsed,TotalCPU,MaxRSS[,Start] -j 169,170,171` printed on the local cluster.
SACCT = """169|PENDING|00:00:01|00:00:00|
169.batch|RUNNING|00:00:01|00:00:00|
170|COMPLETED|00:00:35|00:00.210||2026-12-06T21:21:00
170.batch|COMPLETED|00:00:35|00:00.210|219980K
170.extern|COMPLETED|00:00:35|00:00:00|1024K
171|CANCELLED by 0|1-02:03:04|01:02:03|
"""


def test_sacct_lines_become_states_and_accounting():
    jobs = parse_sacct(SACCT)
    assert jobs["169"]["state"] == "RUNNING"  # its batch step runs although the allocation line lags
    assert jobs["170"] == {
        "start": "2026-12-06T21:21:00",
        "state": "COMPLETED",
        "elapsed_s": 35.0,
        "cpu_s": 0.21,
        "max_rss_mb": pytest.approx(214.824, abs=1e-3),
    }
    assert jobs["171"]["state"] == "CANCELLED by 0" and jobs["171"]["elapsed_s"] == 93784.0
    assert jobs["171"]["cpu_s"] == 3723.0 and jobs["171"]["max_rss_mb"] is None
    assert seconds("05:07.5") == 307.5 and seconds("garbage") is None
    assert megabytes("1.5G") == 1536.0 and megabytes("2048") == pytest.approx(2048 / 1024**2)


class FakeSlurm:
    def __init__(self):
        self.calls: list[list[str]] = []
        self.states: dict[str, str] = {}
        self.broken = False

    def __call__(self, ids):
        self.calls.append(list(ids))
        if self.broken:
            raise OSError("sacct: error: Problem talking to the database")
        text = "".join(
            f"{j}|{self.states[j]}|00:01:00|00:00:30|\n{j}.batch|{self.states[j]}|00:01:00|00:00:30|100M\n"
            for j in ids
            if j in self.states
        )
        return parse_sacct(text)


class Clock:
    def __init__(self):
        self.t = 1000.0

    def __call__(self):
        return self.t


def test_one_batched_query_per_interval_serves_every_waiter(tmp_path):
    slurm, clock = FakeSlurm(), Clock()
    waiters = [SharedStatus(tmp_path, poll_s=30, query=slurm, clock=clock) for _ in range(100)]
    for i, w in enumerate(waiters):
        w.register(str(i))
        slurm.states[str(i)] = "PENDING"
    for _ in range(3):  # every waiter asks three times within the interval
        assert all(w.state(str(i)) == "PENDING" for i, w in enumerate(waiters))
    assert len(slurm.calls) == 1 and sorted(slurm.calls[0], key=int) == [str(i) for i in range(100)]
    clock.t += 29
    assert waiters[5].state("5") == "PENDING" and len(slurm.calls) == 1
    clock.t += 1
    slurm.states["5"] = "RUNNING"
    assert waiters[7].state("5") == "RUNNING" and len(slurm.calls) == 2


def test_back_off_while_nothing_changes_and_when_sacct_fails(tmp_path):
    slurm, clock = FakeSlurm(), Clock()
    w = SharedStatus(tmp_path, poll_s=10, query=slurm, clock=clock)
    w.register("1")
    slurm.states["1"] = "PENDING"
    w.state("1")
    gaps, last = [], clock.t
    for _ in range(400):  # one waiter looking every second for 400 s, nothing changing
        clock.t += 1
        n = len(slurm.calls)
        w.state("1")
        if len(slurm.calls) > n:
            gaps.append(clock.t - last)
            last = clock.t
    assert gaps[:4] == [10, 15, 23, 34] and set(gaps[4:]) == {40}  # 1.5× per unchanged query, up to 4× poll_s
    slurm.states["1"] = "RUNNING"
    clock.t += 40
    assert w.state("1") == "RUNNING"
    clock.t += 10
    n = len(slurm.calls)
    w.state("1")
    assert len(slurm.calls) == n + 1  # a change brings the interval back to poll_s
    slurm.broken = True  # the interval is 15 s now
    clock.t += 15
    n = len(slurm.calls)
    assert w.state("1") == "RUNNING" and len(slurm.calls) == n + 1  # the query failed: the last known state stands
    clock.t += 29
    w.state("1")
    assert len(slurm.calls) == n + 1  # ... and the next query waits twice as long
    clock.t += 1
    w.state("1")
    assert len(slurm.calls) == n + 2


def test_a_finished_jobs_accounting_is_written_and_it_leaves_the_query(tmp_path):
    slurm, clock = FakeSlurm(), Clock()
    acct = tmp_path / "benchmarks" / "runs" / "r.slurm.tsv"
    w = SharedStatus(tmp_path / "jobs", poll_s=5, query=slurm, clock=clock)
    w.register("41", str(acct))
    w.register("42")
    slurm.states.update({"41": "COMPLETED", "42": "RUNNING"})
    assert w.state("41") == "COMPLETED"
    [row] = list(csv.DictReader(acct.open(), delimiter="\t"))
    assert row == {
        "s": "60.00",
        "cpu_time": "30.00",
        "max_rss": "100.00",
        "job_id": "41",
        "state": "COMPLETED",
        "source": "sacct",
    }
    clock.t += 5
    w.state("42")
    assert slurm.calls[-1] == ["42"]  # a finished job with its accounting complete is not asked about again


def test_pending_is_not_held_to_the_running_limit():
    clock = Clock()
    d = Deadlines(pending_s=3600, running_s=60, clock=clock)
    for _ in range(30):  # 30 min queued: far beyond the running limit, within the pending one
        clock.t += 60
        assert d.overdue("PENDING") is None and d.overdue(None) is None
    assert d.overdue("RUNNING") is None
    clock.t += 59
    assert d.overdue("RUNNING") is None
    clock.t += 2
    assert "running" in d.overdue("RUNNING")
    assert d.overdue("REQUEUED") is None  # a requeue starts the clocks afresh
    r = Deadlines(pending_s=3600, running_s=60, clock=clock)
    assert r.overdue("RUNNING", attempt="2026-12-06T10:00:00") is None
    clock.t += 50
    assert r.overdue("RUNNING", attempt="2026-12-06T10:00:00") is None
    clock.t += 50  # requeued and running again between two looks: its new Start restarts the running clock
    assert r.overdue("RUNNING", attempt="2026-12-06T10:01:30") is None
    clock.t += 3601
    assert "launch.pending_max_h" in d.overdue("PENDING")
    assert Deadlines(pending_s=None, running_s=60, clock=clock).overdue("PENDING") is None


def test_settle_writes_the_last_jobs_accounting_when_snakemake_ends(tmp_path):
    slurm, clock = FakeSlurm(), Clock()
    w = SharedStatus(tmp_path / "jobs", poll_s=30, query=slurm, clock=clock)
    acct = tmp_path / "last.slurm.tsv"
    w.register("7", str(acct))
    slurm.states["7"] = "RUNNING"
    assert w.state("7") == "RUNNING" and not acct.exists()  # its waiter returned at its result, sacct lagging

    def query(ids):  # the next query sees it finished
        slurm.states["7"] = "COMPLETED"
        return slurm(ids)

    w._query = query
    assert w.settle(pause_s=0) == 1
    assert "COMPLETED" in acct.read_text() and w._read()["watch"] == {}
    assert settle_accounting(tmp_path / "nothing_here") == 0  # a sweep without SLURM jobs: nothing to ask
