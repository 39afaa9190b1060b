"""The job launcher without a cluster: job specs from config, and the submitit code path
(`submitit_local`, a real subprocess) — success with the job's logs in the rule log, a failing
command, a job killed from outside, a signal to the waiting process, the deadline. The same
path against a real SLURM cluster is tests/test_slurm.py."""

import json
import os
import signal
import subprocess
import sys
import time

import pytest
from tiny_specs import tiny_spec_dict

from aftbench.cli import Command, _without_launch_options, main
from aftbench.launch.launcher import JobFailed, job_spec, name_job, resolved, submit_and_wait


def test_job_spec_merges_default_and_kind():
    cfg = {
        "train": {"threads": 3},
        "extract": {"threads": 2},
        "launch": {
            "poll_s": 5,
            "max_requeues": 1,
            "resources": {
                "default": {"mem_gb": 6, "partition": "cpu"},
                "extract": {"gpus": 1, "partition": "gpu", "sbatch": {"constraint": "a100"}},
            },
        },
    }
    t = job_spec(cfg, "train")
    assert t["resources"]["cpus"] == 3 and t["resources"]["mem_gb"] == 6 and t["resources"]["partition"] == "cpu"
    assert t["poll_s"] == 5 and t["pending_s"] == 72 * 3600 and t["time_s"] == 60 * 60 and t["grace_s"] == 15 * 60
    assert t["pack"] == 1 and job_spec({"launch": {"pack": {"train": 8}}}, "train")["pack"] == 8
    assert job_spec({"launch": {"pack": {"train": 8}}}, "probe")["pack"] == 1
    assert job_spec({"launch": {"pack": 4}}, "probe")["pack"] == 4
    assert resolved("slurm", t)["poll_s"] == 5 and resolved("slurm", job_spec({}, "train"))["poll_s"] == 30
    named = name_job(t, "results/runs/dataset~d/run/metrics.json")
    assert (
        named["folder"] == "results/logs/jobs/train/dataset~d/run" and named["name"] == "aftbench:train:dataset~d/run"
    )
    assert named["accounting"] == "results/benchmarks/runs/dataset~d/run.slurm.tsv"  # beside the rule's benchmark
    x = name_job(job_spec(cfg, "extract"), "results/features/d/teacher.safetensors")
    assert x["name"] == "aftbench:extract:d/teacher"
    e = job_spec(cfg, "extract")
    assert e["resources"]["gpus"] == 1 and e["resources"]["partition"] == "gpu" and e["resources"]["cpus"] == 2
    assert e["resources"]["sbatch"] == {"constraint": "a100"}
    with pytest.raises(ValueError, match="unknown job kind 'tran'"):
        job_spec(cfg, "tran")


def test_launch_options_are_real_options(tmp_path, capsys):
    job = json.dumps({"kind": "train"})
    assert _without_launch_options(["train", "--launcher", "slurm", "--job", job, "--out", "o.json"]) == [
        "train",
        "--out",
        "o.json",
    ]
    assert _without_launch_options(["probe", "--launcher=local", f"--job={job}"]) == ["probe"]
    with pytest.raises(SystemExit):
        main(["train", "--launcher", "slrum", "--spec", "{}", "--split", "s", "--out", "o"])
    assert "invalid choice: 'slrum'" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["train", "--launcher", "slurm", "--spec", "{}", "--split", "s", "--out", "o"])
    assert "needs --job" in capsys.readouterr().err
    # --help with a launcher prints the help here; it submits nothing
    with pytest.raises(SystemExit) as done:
        main(["train", "--launcher", "submitit_local", "--job", job, "--help"])
    assert done.value.code == 0 and "--launcher" in capsys.readouterr().out
    assert not (tmp_path / "results").exists()


def local_job(tmp_path, **kw):
    cfg = {"launch": {"poll_s": 0.2, **kw}}
    job = name_job(job_spec(cfg, "train"), "t.json")
    job["folder"] = str(tmp_path / "jobs")
    return job


def long_train_argv(tmp_path, digits_split, steps=10**7):
    spec = tiny_spec_dict("stl", "none", 0.0, {"steps": steps, "batch_size": 16, "log_every": 10**6})
    return ["train", "--spec", json.dumps(spec), "--split", digits_split, "--out", str(tmp_path / "m.json")]


@pytest.mark.slow
def test_submitit_local_runs_the_command_and_echoes_its_log(tmp_path, digits_split, capsys):
    argv = long_train_argv(tmp_path, digits_split, steps=5)
    assert submit_and_wait("submitit_local", local_job(tmp_path), argv, Command()) == 0
    out = capsys.readouterr().out
    assert "submitted submitit_local job" in out and "val_acc=" in out and "_log.out" in out
    assert json.loads((tmp_path / "m.json").read_text())["steps"] == 5


def test_a_failing_command_fails_with_its_traceback(tmp_path):
    with pytest.raises(JobFailed, match=r"(?s)failed.*missing-config\.yaml"):
        spec = {
            "loader": "tsv",
            "modality": "text",
            "args": {"path": str(tmp_path / "missing-config.yaml")},
            "n_train": 2,
            "n_val": 1,
            "n_test": 1,
        }
        submit_and_wait(
            "submitit_local",
            local_job(tmp_path),
            [
                "split",
                "--dataset",
                "d",
                "--spec",
                json.dumps(spec),
                "--out",
                str(tmp_path / "s.npz"),
                "--out-json",
                str(tmp_path / "s.json"),
            ],
            Command(),
        )


def _job_pids(folder) -> list[int]:
    out = subprocess.run(["pgrep", "-f", f"submitit.core._submit {folder}"], capture_output=True, text=True).stdout
    return [int(p) for p in out.split()]


def _start_waiter(tmp_path, digits_split, time_s=None, **launch):
    job = local_job(tmp_path, **launch)
    if time_s is not None:
        job["time_s"] = time_s
    cmd = [
        sys.executable,
        "-m",
        "aftbench",
        *long_train_argv(tmp_path, digits_split),
        "--launcher",
        "submitit_local",
        "--job",
        json.dumps(job),
    ]
    p = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    for _ in range(200):
        if _job_pids(job["folder"]):
            return p, job
        time.sleep(0.1)
    p.kill()
    raise AssertionError(f"job process never appeared:\n{p.communicate()[0]}")


@pytest.mark.slow
def test_a_killed_job_fails_within_seconds_naming_state_and_logs(tmp_path, digits_split):
    p, job = _start_waiter(tmp_path, digits_split)
    time.sleep(1)
    t0 = time.monotonic()
    for pid in _job_pids(job["folder"]):
        os.kill(pid, signal.SIGKILL)  # what the OOM killer does
    out = p.communicate(timeout=30)[0]
    assert p.returncode != 0 and time.monotonic() - t0 < 10, out[-3000:]
    assert "ended" in out and "without a result" in out and "_log.err" in out


@pytest.mark.slow
def test_a_signal_to_the_waiter_cancels_the_job(tmp_path, digits_split):
    p, job = _start_waiter(tmp_path, digits_split)
    time.sleep(1)
    p.send_signal(signal.SIGTERM)
    out = p.communicate(timeout=30)[0]
    assert p.returncode == 128 + signal.SIGTERM and "cancelled submitit_local job" in out
    for _ in range(50):
        if not _job_pids(job["folder"]):
            break
        time.sleep(0.2)
    assert not _job_pids(job["folder"]), "the job outlived its cancelled waiter"


@pytest.mark.slow
def test_the_running_limit_cancels_a_job_that_runs_too_long(tmp_path, digits_split):
    p, job = _start_waiter(tmp_path, digits_split, running_grace_min=0, time_s=3)
    out = p.communicate(timeout=60)[0]
    assert p.returncode != 0 and "min running" in out and "cancelled it" in out, out[-2000:]
    time.sleep(2)
    assert not _job_pids(job["folder"])


def test_a_short_slurm_job_is_not_warned_of_its_time_limit_at_its_start(tmp_path, monkeypatch):
    """submitit asks SLURM for USR2 90 s before the time limit and requeues the job when it comes: a
    1-minute job would be told it timed out as it starts (seen on the local cluster). The warning
    comes at most half the limit early. (The executor is only built, nothing submitted: submitit's
    check for `srun` on PATH is stubbed, so this runs on a machine without SLURM.)"""
    import submitit.slurm.slurm

    from aftbench.launch.executor import make_executor

    monkeypatch.setattr(submitit.slurm.slurm.SlurmExecutor, "affinity", classmethod(lambda cls: 2))

    short = job_spec({"launch": {"resources": {"default": {"time_min": 1}}}}, "probe")
    assert make_executor("slurm", short, tmp_path, "n")._executor.parameters["signal_delay_s"] == 30
    assert make_executor("slurm", job_spec({}, "probe"), tmp_path, "n")._executor.parameters["signal_delay_s"] == 90
