"""The clock on long work (aftbench.cost.clock): before the jobs start, their estimate from the
`cost` model; after each job, what is left, corrected by the jobs measured so far; nothing for a
small run or a job outside the plan."""

import pytest
import yaml
from test_pipeline import smk, tiny_config

from aftbench.core.io import write_json
from aftbench.cost import clock


@pytest.fixture
def in_tmp(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    return tmp_path


def test_each_finished_job_corrects_the_estimate_of_what_is_left(in_tmp):
    write_json(clock.PLAN, {"sweep": "s", "cores": 2, "started": 0, "seconds": {"a": 10.0, "b": 20.0, "c": 30.0}})
    # a took twice its estimate: the 50 s left are read as 100 s, on 2 cores 50 s of wall time
    assert (
        clock.tick("a", 20.0)
        == "[clock] 1 of 3 jobs done; about 50 s left (estimate × 2.00, measured on the 1 finished)"
    )
    line = clock.tick("b", 10.0)  # (20 + 10) / (10 + 20) = 1.00; c's 30 s on 2 cores
    assert line == "[clock] 2 of 3 jobs done; about 15 s left (estimate × 1.00, measured on the 2 finished)"
    assert clock.tick("not-in-the-plan", 5.0) is None and clock.tick(None, 5.0) is None


def test_no_plan_no_clock(in_tmp):
    assert clock.tick("a", 1.0) is None


def test_a_small_run_gets_no_clock_and_clears_an_old_plan(in_tmp, monkeypatch):
    write_json(clock.PLAN, {"sweep": "old", "cores": 1, "started": 0, "seconds": {"a": 1.0}})
    monkeypatch.setattr(clock, "MIN_JOBS", 20)
    assert clock.start({"sweep": "s"}, 2, {f"job{i}" for i in range(19)}) is None
    assert not (in_tmp / clock.PLAN).exists()  # a job of this run is not clocked against the old plan


def test_a_sweep_the_model_cannot_price_still_runs(in_tmp, monkeypatch):
    """The clock never stops a run: a fault that breaks the estimate is the job's to name."""
    from aftbench.cost import bill

    monkeypatch.setattr(clock, "MIN_JOBS", 1)
    monkeypatch.setattr(bill, "estimate", lambda config: (_ for _ in ()).throw(RuntimeError("no FLOPs")))
    line = clock.start({"sweep": "s"}, 2, {"a", "b"})
    assert line == "[clock] no estimate for this run (RuntimeError: no FLOPs); the jobs run without one"
    assert clock.tick("a", 1.0) is None


@pytest.mark.slow
def test_a_sweep_prints_its_estimate_and_what_is_left(tmp_path, text_tsv, monkeypatch):
    monkeypatch.setenv("AFTBENCH_CLOCK_MIN_JOBS", "1")
    cfg = tiny_config(text_tsv)
    cfg["sweeps"]["tiny"] = cfg["sweeps"]["tiny"][
        :1
    ]  # digits: split, extraction, scores, 8 runs, probe, report, leaderboard
    (tmp_path / "tiny.yaml").write_text(yaml.safe_dump(cfg, sort_keys=False))
    out = smk(tmp_path).stdout
    [first] = [line for line in out.splitlines() if line.startswith("[clock] sweep")]
    n = int(first.split(": ")[1].split()[0])
    assert "jobs to run, estimated" in first and n == 14  # every job the cost model prices (not `all`)
    ticks = [line for line in out.splitlines() if line.startswith("[clock] ") and " jobs done; about " in line]
    assert len(ticks) == n and ticks[-1].startswith(f"[clock] {n} of {n} jobs done; about 0 s left")
