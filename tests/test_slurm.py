"""`snakemake --profile slurm` against a REAL SLURM cluster (one node on localhost, accounting
through slurmdbd so `sacct` works). Run by `make test-slurm` (part of `make test` and CI), which
brings the cluster up with tests/slurm/start.sh and always tears it down; skipped when
AFTBENCH_SLURM is not set.

Checks: every heavy job of a tiny sweep ran as a SLURM job and sacct says COMPLETED, with the
same metrics as the local launcher and its own accounting beside its benchmark file; packed 8
to a job, the same metrics from fewer SLURM jobs; a training job requeued mid-run resumes from its
checkpoint and ends with the uninterrupted run's metrics; Ctrl-C leaves nothing in squeue; a job
killed from outside fails its rule within seconds naming the SLURM state and the log; a run
killed inside a pack fails only itself; 100 waiting jobs cost a few sacct calls a minute; a job
queued longer than its running limit is not cancelled."""

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml
from test_launcher import long_train_argv
from test_pack import WAIT, _status, packs, split_argv, start, wait_queued
from test_pipeline import tiny_config

from aftbench.launch.launcher import job_spec, name_job

ROOT = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.skipif(
    os.environ.get("AFTBENCH_SLURM") != "1", reason="needs the local SLURM cluster: run `make test-slurm`"
)
RUN = "results/runs/dataset~digits/student~cnn_t/method~aft/teachers~a/beta~1/seed~0"


def env():
    path = os.pathsep.join([os.path.dirname(sys.executable), os.environ.get("PATH", "")])
    return {**os.environ, "HF_HUB_OFFLINE": "1", "PATH": path}


def snakemake_cmd(wd, *extra, profile=True):
    """Exactly the README's `snakemake --profile slurm`, from the project root, on a tiny config."""
    prof = ["--profile", "slurm"] if profile else ["--cores", "2"]
    return [
        sys.executable,
        "-m",
        "snakemake",
        *prof,
        "--directory",
        str(wd),
        "--configfile",
        str(wd / "c.yaml"),
        *extra,
    ]


def write_config(wd, cfg):
    wd.mkdir(parents=True, exist_ok=True)
    (wd / "c.yaml").write_text(yaml.safe_dump(cfg))
    return wd


def run(cmd, timeout=900):
    p = subprocess.run(cmd, cwd=ROOT, env=env(), capture_output=True, text=True, timeout=timeout)
    return p


def sacct(job_ids):
    out = subprocess.run(
        ["sacct", "-X", "-n", "-P", "-D", "-o", "JobID,JobName,State", *sum([["-j", j] for j in job_ids], [])],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    return [line.split("|") for line in out.splitlines() if line]


def settled(job_ids, timeout=60):
    """sacct's states once none is RUNNING/COMPLETING any more (accounting lags a job's result)."""
    for _ in range(timeout * 2):
        states = [r[2] for r in sacct(job_ids)]
        if states and not {"RUNNING", "COMPLETING", "PENDING"} & set(states):
            return states
        time.sleep(0.5)
    return states


def submitted_ids(wd):
    ids = {}
    for log in (wd / "results" / "logs").rglob("*.log"):
        for m in re.finditer(r"submitted slurm job (\d+) \((aftbench:[^)]*)\)", log.read_text()):
            ids[m[1]] = m[2]
    return ids


def squeue():
    return subprocess.run(["squeue", "-h", "-o", "%A %j %T"], capture_output=True, text=True, check=True).stdout.split(
        "\n"
    )


def small(text_tsv):
    cfg = tiny_config(text_tsv)
    cfg["launch"] = {"poll_s": 1, "resources": {"default": {"mem_gb": 2, "time_min": 10}}}
    cfg["sweeps"]["tiny"][0]["train"] = {"fit_on": "train+val"}  # digits: aft's β grid is tune-then-refit
    return cfg


def one_long_run(text_tsv, steps):
    cfg = small(text_tsv)
    cfg["train"].update(steps=steps, checkpoint_every=200, log_every=1000)
    cfg["methods"]["aft"]["beta"] = 1.0
    cfg["sweeps"]["tiny"] = [
        {"datasets": ["digits"], "students": ["cnn_t"], "methods": ["aft"], "teacher_sets": ["a"], "seeds": [0]}
    ]
    return cfg


def metrics(wd):
    return {str(p.relative_to(wd)): json.loads(p.read_text()) for p in (wd / "results" / "runs").rglob("metrics.json")}


SAME = ("val_acc", "test_acc", "history", "rho", "final_ce", "final_penalty", "tuning")


def test_sweep_runs_as_slurm_jobs_with_local_results(tmp_path, text_tsv):
    wd = write_config(tmp_path / "slurm", small(text_tsv))
    t0 = time.monotonic()
    p = run(snakemake_cmd(wd))
    wall_unpacked = time.monotonic() - t0
    assert p.returncode == 0, p.stderr[-4000:]
    ids = submitted_ids(wd)
    kinds = {name.split(":")[1] for name in ids.values()}
    assert {"extract", "train", "probe", "paraphraser", "score"} <= kinds, kinds
    rows = sacct(list(ids))
    assert {r[0] for r in rows} == set(ids) and all(r[2] == "COMPLETED" for r in rows), rows
    assert {r[1] for r in rows} == set(ids.values())
    n_heavy = (
        sum(1 for _ in (wd / "results" / "runs").rglob("metrics.json"))
        + len(list((wd / "results" / "features").rglob("*.safetensors")))
        + len(list((wd / "results" / "factors").rglob("factors.safetensors")))
        + len(list((wd / "results" / "scores").rglob("scores.json")))
    )
    assert len(ids) == n_heavy  # every heavy job went to SLURM, each exactly once (refits included)
    assert any("beta~tuned_" in p.as_posix() for p in (wd / "results" / "runs").rglob("metrics.json"))
    assert (wd / "results" / "reports" / "tiny" / "tables" / "main.md").exists()

    accounted = list((wd / "results" / "benchmarks").rglob("*.slurm.tsv"))
    assert len(accounted) == n_heavy  # each job's own Elapsed/TotalCPU/MaxRSS beside its rule's benchmark
    for f in accounted:
        row = dict(zip(*[line.split("\t") for line in f.read_text().splitlines()], strict=True))
        assert (
            row["state"] == "COMPLETED" and row["source"] == "sacct" and row["job_id"] in ids and float(row["s"]) >= 0
        )
        assert f.with_name(f.name.replace(".slurm.tsv", ".tsv")).exists()

    local = write_config(tmp_path / "local", small(text_tsv))
    p = run(snakemake_cmd(local, profile=False))
    assert p.returncode == 0, p.stderr[-4000:]
    on_slurm, here = metrics(wd), metrics(local)
    assert on_slurm.keys() == here.keys()
    for k in here:
        for key in SAME:
            assert on_slurm[k].get(key) == here[k].get(key), (k, key)

    cfg = small(text_tsv)
    cfg["launch"].update(pack=8, pack_wait_s=5)
    packed = write_config(tmp_path / "packed", cfg)
    t0 = time.monotonic()
    p = run(snakemake_cmd(packed))
    wall_packed = time.monotonic() - t0
    assert p.returncode == 0, p.stderr[-4000:]
    pack_ids = set()
    for log in (packed / "results" / "logs").rglob("*.log"):
        pack_ids |= set(re.findall(r"packed into slurm job (\d+) \(pack run", log.read_text()))
    assert 0 < len(pack_ids) < len(ids), (len(pack_ids), len(ids))
    assert set(settled(sorted(pack_ids))) == {"COMPLETED"}
    in_packs = metrics(packed)
    assert in_packs.keys() == here.keys()
    for k in here:
        for key in SAME:
            assert in_packs[k].get(key) == here[k].get(key), (k, key)
    print(
        f"tiny sweep on SLURM: {len(ids)} jobs in {wall_unpacked:.0f} s unpacked, "
        f"{len(pack_ids)} jobs in {wall_packed:.0f} s with pack 8 (poll_s 1)"
    )


def test_requeued_training_resumes_from_its_checkpoint(tmp_path, text_tsv):
    wd = write_config(tmp_path / "rq", one_long_run(text_tsv, steps=8000))
    sm = subprocess.Popen(
        snakemake_cmd(wd), cwd=ROOT, env=env(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )
    ckpt = wd / RUN / "checkpoint.pt"
    for _ in range(300):
        if ckpt.exists():
            break
        time.sleep(0.5)
    assert ckpt.exists(), "training never wrote a checkpoint"
    [job] = [line.split()[0] for line in squeue() if ":train:" in line]
    subprocess.run(["scontrol", "requeue", job], check=True)
    time.sleep(1)
    subprocess.run(["scontrol", "update", f"JobId={job}", "StartTime=now"], check=False)  # skip requeue back-off
    out = sm.communicate(timeout=600)[0]
    assert sm.returncode == 0, out[-4000:]
    states = [r[2] for r in sacct([job])]
    assert "REQUEUED" in states and states[-1] == "COMPLETED", states
    resumed = json.loads((wd / RUN / "metrics.json").read_text())
    assert resumed["resumed_from_steps"] and resumed["resumed_from_steps"][0] > 0
    assert not ckpt.exists()

    local = write_config(tmp_path / "uninterrupted", one_long_run(text_tsv, steps=8000))
    p = run(snakemake_cmd(local, profile=False))
    assert p.returncode == 0, p.stderr[-4000:]
    straight = json.loads((local / RUN / "metrics.json").read_text())
    assert straight["resumed_from_steps"] == []
    for key in SAME:
        assert resumed.get(key) == straight.get(key), key


def _start_in_own_group(wd):
    return subprocess.Popen(
        snakemake_cmd(wd),
        cwd=ROOT,
        env=env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )


def _wait_running_train(timeout=120):
    for _ in range(timeout * 2):
        running = [line.split()[0] for line in squeue() if ":train:" in line and line.endswith("RUNNING")]
        if running:
            return running
        time.sleep(0.5)
    raise AssertionError(f"no training job started: {squeue()}")


def _queue_drains(timeout=30) -> bool:
    """squeue empty (a job just signalled may show COMPLETING for a few seconds)."""
    for _ in range(timeout * 2):
        if not [line for line in squeue() if line]:
            return True
        time.sleep(0.5)
    return False


def test_ctrl_c_leaves_no_job_in_squeue(tmp_path, text_tsv):
    cfg = small(text_tsv)
    cfg["train"]["steps"] = 10**7
    wd = write_config(tmp_path / "ctrlc", cfg)
    sm = _start_in_own_group(wd)
    running = _wait_running_train()
    os.killpg(sm.pid, signal.SIGINT)  # what Ctrl-C in a terminal does: the whole foreground group
    sm.communicate(timeout=120)
    assert _queue_drains(), squeue()
    assert all(r[2].startswith("CANCELLED") for r in sacct(running))


def test_a_killed_job_fails_its_rule_within_seconds(tmp_path, text_tsv):
    wd = write_config(tmp_path / "killed", one_long_run(text_tsv, steps=10**7))
    sm = _start_in_own_group(wd)
    [job] = _wait_running_train()
    time.sleep(2)
    t0 = time.monotonic()
    subprocess.run(["pkill", "-KILL", "-f", f"submitit.core._submit {wd}"], check=True)  # like the OOM killer
    out = sm.communicate(timeout=120)[0]
    log = (wd / "results" / "logs" / "runs" / (RUN.removeprefix("results/runs/") + ".log")).read_text()
    assert sm.returncode != 0 and "Error in rule train" in out, out[-3000:]
    assert time.monotonic() - t0 < 30, "the rule did not fail promptly"
    m = re.search(rf"slurm job {job} \(aftbench:train:[^)]*\) ended (\S+) without a result", log)
    assert m and m[1] in ("FAILED", "OUT_OF_MEMORY", "CANCELLED"), log[-3000:]
    assert f"{job}_0_log.err" in log and not (wd / RUN / "metrics.json").exists()
    assert _queue_drains(), squeue()


def test_a_run_killed_inside_a_pack_fails_only_that_run(tmp_path, text_tsv, digits_split):
    long = start(tmp_path, long_train_argv(tmp_path, digits_split), "long", "slurm", pack=2, pack_wait_s=30, poll_s=1)
    wait_queued(tmp_path, 1)
    short = start(tmp_path, split_argv(tmp_path, text_tsv, 0), "short", "slurm", pack=2, pack_wait_s=30, poll_s=1)
    for _ in range(300):
        if packs(tmp_path):
            break
        time.sleep(0.1)
    [pack] = packs(tmp_path)
    os.kill(_status(pack, 0)["pid"], signal.SIGKILL)  # the out-of-memory killer ends one run
    out = long.communicate(timeout=120)[0]
    assert long.returncode == 1 and "killed by SIGKILL" in out, out[-3000:]
    out = short.communicate(timeout=120)[0]
    assert short.returncode == 0 and (tmp_path / "results" / "splits" / "s0.npz").exists(), out[-3000:]
    [job] = re.findall(r"packed into slurm job (\d+)", out)
    assert settled([job]) == ["COMPLETED"]


def _counting_shims(tmp_path):
    """sacct and squeue wrappers on PATH that log each call, then run the real command."""
    shims, calls = tmp_path / "shims", tmp_path / "calls.txt"
    shims.mkdir()
    for tool in ("sacct", "squeue"):
        real = subprocess.run(["which", tool], capture_output=True, text=True, check=True).stdout.strip()
        (shims / tool).write_text(f'#!/bin/sh\necho "{tool} $(date +%s)" >> {calls}\nexec {real} "$@"\n')
        (shims / tool).chmod(0o755)
    return shims, calls


def test_100_waiting_jobs_share_one_status_query(tmp_path):
    shims, calls = _counting_shims(tmp_path)
    launch = {"resources": {"default": {"mem_gb": 0.1, "time_min": 5, "sbatch": {"hold": True}}}}
    job = name_job(job_spec({"launch": launch}, "probe"), "results/runs/r/metrics.json")
    e = {**env(), "PATH": f"{shims}{os.pathsep}{env()['PATH']}"}
    waiters = []
    for i in range(100):
        one = dict(job)
        one.update(name=f"aftbench:probe:held{i}", folder=f"results/logs/jobs/probe/held{i}", accounting=None)
        cmd = [sys.executable, "-c", WAIT, "slurm", json.dumps(one), json.dumps(["--version"])]
        waiters.append(
            subprocess.Popen(cmd, cwd=tmp_path, env=e, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        )
    for _ in range(600):  # all 100 submitted and held (PENDING) in the queue
        if len([line for line in squeue() if "aftbench:probe:held" in line]) == 100:
            break
        time.sleep(0.5)
    assert len([line for line in squeue() if "PENDING" in line]) >= 100, squeue()
    calls.write_text("")
    window = 120
    time.sleep(window)
    n = len(calls.read_text().splitlines())
    seen = json.loads((tmp_path / "results" / "logs" / "jobs" / "slurm_status.json").read_text())["jobs"]
    assert sum(v["state"] == "PENDING" for v in seen.values()) == 100  # the batched query saw every job
    for w in waiters:
        w.send_signal(signal.SIGTERM)
    outs = [w.communicate(timeout=60)[0] for w in waiters]
    assert all("cancelled slurm job" in o for o in outs), outs[0][-2000:]
    assert _queue_drains(60), squeue()
    per_min = n / (window / 60)
    print(f"100 waiting jobs: {n} sacct/squeue calls in {window} s = {per_min:.1f} per minute")
    assert per_min <= 4, per_min


def test_a_job_queued_longer_than_its_running_limit_is_not_cancelled(tmp_path, text_tsv):
    launch = {
        "poll_s": 2,
        "running_grace_min": 0,
        "resources": {"default": {"mem_gb": 0.1, "time_min": 1, "sbatch": {"hold": True}}},
    }
    job = name_job(job_spec({"launch": launch}, "probe"), "results/runs/held/metrics.json")
    cmd = [sys.executable, "-c", WAIT, "slurm", json.dumps(job), json.dumps(split_argv(tmp_path, text_tsv, 0))]
    w = subprocess.Popen(cmd, cwd=tmp_path, env=env(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    for _ in range(120):
        held = [line.split()[0] for line in squeue() if "aftbench:probe:held" in line]
        if held:
            break
        time.sleep(0.5)
    time.sleep(75)  # PENDING (held) for longer than the 1-min running limit
    assert w.poll() is None, w.communicate()[0][-2000:]
    subprocess.run(["scontrol", "release", held[0]], check=True)
    out = w.communicate(timeout=180)[0]
    assert w.returncode == 0, out[-3000:]
    # what is tested: the waiter did not cancel the held job. Its own 1-min limit may still time it
    # out once on a loaded machine (a split under load: CI13), and the waiter requeues it then.
    states = settled(held)
    assert states[-1] == "COMPLETED" and not any(st.startswith("CANCELLED") for st in states), states
