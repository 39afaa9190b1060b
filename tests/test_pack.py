"""Packing without a cluster (`launch.pack`, aftbench.launch.pack, through submitit_local): a pack
takes the runs queued after its own until it ran N; runs queued while every pack is busy get a new
pack; each run keeps its own outcome, log and accounting; a failing or killed run fails only
itself; a cancelled waiter stops its run; a requeued pack skips what finished. The same on a real
SLURM cluster (runs handed to a pack N at a time): tests/test_slurm.py."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from test_launcher import long_train_argv

from aftbench.launch.launcher import job_spec, name_job
from aftbench.launch.pack import PackRun
from aftbench.launch.waiting import Deadlines

WAIT = (
    "import sys, json; from aftbench.launch.launcher import submit_and_wait; from aftbench.cli import Command; "
    "sys.exit(submit_and_wait(sys.argv[1], json.loads(sys.argv[2]), json.loads(sys.argv[3]), Command()))"
)


def split_argv(tmp_path, text_tsv, k, path=None):
    spec = {"loader": "tsv", "modality": "text", "args": {"path": path or text_tsv}}
    spec.update(n_train=20, n_val=10, n_test=10, split_seed=0)
    out = tmp_path / "results" / "splits" / f"s{k}"
    return ["split", "--dataset", "d", "--spec", json.dumps(spec), "--out", f"{out}.npz", "--out-json", f"{out}.json"]


def start(tmp_path, argv, name, launcher="submitit_local", **launch):
    job = name_job(job_spec({"launch": launch}, "probe"), f"results/runs/{name}/metrics.json")
    cmd = [sys.executable, "-c", WAIT, launcher, json.dumps(job), json.dumps(argv)]
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    return subprocess.Popen(cmd, cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def packs(tmp_path) -> list[Path]:
    return sorted((tmp_path / "results" / "logs" / "jobs" / "probe" / "packs").glob("*"))


def wait_queued(tmp_path, n, timeout=60):
    """Until `n` runs were queued (waiting in the queue or handed to a pack): the next waiter then
    queues after them, whatever the interpreters' start-up times."""
    queue = tmp_path / "results" / "logs" / "jobs" / "probe" / "queue"
    for _ in range(timeout * 20):
        handed = sum(len(json.loads(r.read_text())) for p in packs(tmp_path) if (r := p / "runs.json").exists())
        if len(list(queue.glob("*.json"))) + handed >= n:
            return
        time.sleep(0.05)
    raise AssertionError(f"{n} runs never queued")


def _status(pack: Path, i: int, key: str = "pid") -> dict:
    for _ in range(600):
        try:
            s = json.loads((pack / f"{i}.status.json").read_text())
            if key in s or "rc" in s:
                return s
        except (FileNotFoundError, json.JSONDecodeError):
            pass
        time.sleep(0.1)
    raise AssertionError(f"run {i} of {pack} never started")


def _one_pack(tmp_path) -> Path:
    for _ in range(100):
        if packs(tmp_path):
            break
        time.sleep(0.1)
    [pack] = packs(tmp_path)
    return pack


@pytest.mark.slow
def test_a_pack_takes_the_next_runs_and_a_failure_fails_only_its_run(tmp_path, text_tsv):
    ps, outs = [], []
    for k in range(4):  # one after another, as Snakemake with --cores 1 starts them
        argv = split_argv(tmp_path, text_tsv, k, path=str(tmp_path / "missing.tsv") if k == 1 else None)
        ps.append(start(tmp_path, argv, f"r{k}", pack=3, pack_wait_s=30))
        outs.append(ps[-1].communicate(timeout=120)[0])
    codes = [p.returncode for p in ps]
    assert codes == [0, 1, 0, 0], outs
    assert "missing.tsv" in outs[1] and "(pack run 2: aftbench:probe:r1) failed" in outs[1]
    first, second = packs(tmp_path)  # four runs, two submissions: the first pack ran 3 (its N), then a new one
    assert len(json.loads((first / "runs.json").read_text())) == 3
    assert [r["name"] for r in json.loads((second / "runs.json").read_text())] == ["aftbench:probe:r3"]
    for k in (0, 2, 3):
        assert (tmp_path / "results" / "splits" / f"s{k}.npz").exists()
        acct = (tmp_path / "results" / "benchmarks" / "runs" / f"r{k}.slurm.tsv").read_text().splitlines()
        row = dict(zip(acct[0].split("\t"), acct[1].split("\t"), strict=True))
        assert row["state"] == "COMPLETED" and row["source"] == "pack (wait4)" and float(row["s"]) > 0
        assert float(row["max_rss"]) > 10  # the run's own peak memory, from wait4
    assert not list((tmp_path / "results" / "logs" / "jobs" / "probe" / "queue").glob("*.json"))


@pytest.mark.slow
def test_runs_queued_while_every_pack_is_busy_get_their_own_pack(tmp_path, text_tsv, digits_split):
    long = start(tmp_path, long_train_argv(tmp_path, digits_split), "long", pack=4, pack_wait_s=30)
    _status(_one_pack(tmp_path), 0)  # the first pack is busy with the long run
    short = start(tmp_path, split_argv(tmp_path, text_tsv, 0), "short", pack=4, pack_wait_s=30)
    out = short.communicate(timeout=60)[0]
    assert short.returncode == 0, out[-2000:]
    assert len(packs(tmp_path)) == 2  # not queued behind the long run
    long.send_signal(signal.SIGTERM)
    long.communicate(timeout=60)


@pytest.mark.slow
def test_a_killed_run_inside_a_pack_fails_only_that_run(tmp_path, text_tsv, digits_split):
    long = start(tmp_path, long_train_argv(tmp_path, digits_split), "long", pack=2, pack_wait_s=60)
    pack = _one_pack(tmp_path)
    os.kill(_status(pack, 0)["pid"], signal.SIGKILL)  # what the out-of-memory killer does to one run
    out = long.communicate(timeout=60)[0]
    assert long.returncode == 1 and "killed by SIGKILL" in out, out[-2000:]
    short = start(tmp_path, split_argv(tmp_path, text_tsv, 0), "short", pack=2, pack_wait_s=60)
    out = short.communicate(timeout=60)[0]
    assert short.returncode == 0, out[-2000:]
    assert packs(tmp_path) == [pack] and (tmp_path / "results" / "splits" / "s0.npz").exists()  # the same pack went on


@pytest.mark.slow
def test_a_cancelled_waiter_stops_its_run_and_its_pack(tmp_path, digits_split):
    p = start(tmp_path, long_train_argv(tmp_path, digits_split), "long", pack=4, pack_wait_s=0.5)
    pack = _one_pack(tmp_path)
    child = _status(pack, 0)["pid"]
    p.send_signal(signal.SIGTERM)
    out = p.communicate(timeout=30)[0]
    assert p.returncode == 128 + signal.SIGTERM and "cancelled submitit_local job" in out, out[-2000:]
    for _ in range(100):
        gone = subprocess.run(["pgrep", "-f", str(pack)], capture_output=True).returncode != 0
        if gone and not Path(f"/proc/{child}").exists():
            break
        time.sleep(0.1)
    assert gone and not Path(f"/proc/{child}").exists(), "the pack or its run outlived the cancelled waiter"


class Tally:
    """A stand-in command that records each call in a file."""

    def __init__(self, path):
        self.path = path

    def __call__(self, argv):
        with open(self.path, "a") as f:
            f.write(argv[0] + "\n")
        if argv[0] == "preempted":  # SLURM stops the pack under this run
            os.kill(os.getpid(), signal.SIGTERM)
        return 3 if argv[0] == "bad" else 0


def test_a_requeued_pack_skips_the_runs_that_finished(tmp_path):
    runs = [{"argv": [w], "what": w, "name": w} for w in ("first", "bad", "third")]
    (tmp_path / "runs.json").write_text(json.dumps(runs))
    (tmp_path / "0.status.json").write_text(json.dumps({"rc": 0}))  # finished before the requeue
    (tmp_path / "1.status.json").write_text(json.dumps({"pid": 1, "started": 0}))  # interrupted by it
    tally = tmp_path / "calls.txt"
    assert PackRun(Tally(tally))(str(tmp_path)) == [0, 3, 0]
    assert tally.read_text().split() == ["bad", "third"]
    assert json.loads((tmp_path / "2.status.json").read_text())["rc"] == 0
    assert PackRun(Tally(tally))(str(tmp_path)) == [0, 3, 0] and tally.read_text().split() == ["bad", "third"]


def test_a_run_stopped_with_its_pack_is_left_to_the_requeued_pack(tmp_path):
    runs = [{"argv": [w], "what": w, "name": w} for w in ("first", "preempted", "third")]
    (tmp_path / "runs.json").write_text(json.dumps(runs))
    tally = tmp_path / "calls.txt"
    assert PackRun(Tally(tally))(str(tmp_path)) == [0]  # SIGTERM not from its waiter: the pack stops there
    assert tally.read_text().split() == ["first", "preempted"]
    assert "rc" not in json.loads((tmp_path / "1.status.json").read_text())  # not recorded as finished
    (tmp_path / "1.cancel").touch()  # ... but a run its waiter cancelled is finished for good
    assert PackRun(Tally(tally))(str(tmp_path)) == [0, 143, 0]


def test_a_queued_run_whose_waiter_is_gone_is_dropped(tmp_path, monkeypatch):
    from aftbench.launch import pack

    monkeypatch.chdir(tmp_path)
    job = {**name_job(job_spec({"launch": {"pack": 2, "pack_wait_s": 0}}, "probe"), "results/runs/r/metrics.json")}
    queue = tmp_path / "results" / "logs" / "jobs" / "probe" / "queue"
    queue.mkdir(parents=True)
    dead = subprocess.Popen(["true"])
    dead.wait()
    (queue / "0000000001.000000-deadbeef.json").write_text(
        json.dumps({"argv": ["x"], "what": "x", "name": "x", "pid": dead.pid})
    )
    submitted = []
    monkeypatch.setattr(
        pack, "make_executor", lambda *a, **k: submitted.append(a) or (_ for _ in ()).throw(OSError("no"))
    )
    ticket = pack.PackedRun("submitit_local", {**job, "pack_wait_s": 0.0}, ["y"], object(), None, Deadlines(None, 1))
    ticket.start()
    ticket.state()
    assert not (queue / "0000000001.000000-deadbeef.json").exists()  # an earlier sweep's killed waiter
    assert len(submitted) == 1 and ticket.claim["error"].startswith("submitting a pack of 1 runs failed")


def test_a_queued_run_is_left_to_an_idle_pack_and_an_over_pack_takes_none(tmp_path, monkeypatch):
    from aftbench.launch import pack

    monkeypatch.chdir(tmp_path)
    job = {**name_job(job_spec({"launch": {"pack": 2, "pack_wait_s": 0}}, "probe"), "results/runs/r/metrics.json")}
    queue = tmp_path / "results" / "logs" / "jobs" / "probe" / "queue"
    (queue / "idle").mkdir(parents=True)
    idle = queue / "idle" / "p.json"
    idle.write_text(json.dumps({"until": time.time() + 60, "host": pack.HOST, "pid": os.getpid()}))
    submitted = []
    monkeypatch.setattr(pack, "make_executor", lambda *a, **k: submitted.append(a) or 1 / 0)
    ticket = pack.PackedRun("submitit_local", {**job, "pack_wait_s": 0.0}, ["y"], object(), None, Deadlines(None, 1))
    ticket.start()
    assert ticket.state() is None and not submitted  # the idle pack takes it
    idle.write_text(json.dumps({"until": time.time() - 1, "host": pack.HOST, "pid": os.getpid()}))
    ticket.state()  # that pack's wait ran out: a pack is submitted for it
    assert len(submitted) == 1 and "error" in ticket.claim

    pdir = tmp_path / "pack"
    pdir.mkdir()
    entry = queue / "1.0-x.json"
    entry.write_text(json.dumps({"argv": ["x"], "what": "x", "name": "x", "pid": os.getpid()}))
    (pdir / "over").touch()  # every run of this pack was finished or cancelled: it takes no more
    assert pack.PackRun._claim(pdir, [{"argv": ["a"]}], entry, {}) == [{"argv": ["a"]}] and entry.exists()


def test_a_queue_entry_being_written_is_left_alone(tmp_path):
    """core.io's atomic write goes through `.<name>.XXXX.json` beside the entry: a look at the queue
    meanwhile (a waiter, an idle pack on another node) must neither take it nor delete it."""
    from aftbench.launch.pack import _queued

    queue = tmp_path / "queue"
    queue.mkdir()
    writing = queue / ".1.0-x.json.tmp1234.json"
    writing.write_text("")  # not yet written
    assert _queued(queue) == [] and writing.exists()
