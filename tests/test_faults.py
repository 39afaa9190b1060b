"""Every fault the pipeline guards against, injected: each is refused with a message that names
the culprit, or recorded (a diverged run), and never becomes a table value computed from wrong
data. docs/troubleshooting.md's "When something is wrong" table lists these tests; a test below
keeps it true."""

import copy
import errno
import json
import math
import os
import re
import signal
import subprocess
import sys
import time

import numpy as np
import pandas as pd
import pytest
import yaml
from test_pipeline import ROOT, planned, smk, tiny_config
from tiny_specs import tiny_spec_dict

from aftbench.config.check import validate_config
from aftbench.core.schema import ConfigError
from aftbench.data.splits import load_split, make_split
from aftbench.teachers.extract import extract
from aftbench.teachers.features import load_features, write_cache

RP = {"backend": "random_projection", "args": {"dim": 8}}


@pytest.fixture(scope="module")
def workdir(tmp_path_factory, text_tsv):
    """The tiny sweep, run to the end (as in test_pipeline)."""
    wd = tmp_path_factory.mktemp("faults")
    (wd / "tiny.yaml").write_text(yaml.safe_dump(tiny_config(text_tsv), sort_keys=False))
    smk(wd)
    return wd


@pytest.fixture
def cache(tmp_path, digits_split):
    """A freshly extracted feature cache of the digits split."""
    out = tmp_path / "rp.safetensors"
    extract("rp", RP, digits_split, str(out), str(tmp_path / "rp.json"))
    return out, load_split(digits_split).sha256


# --- 1, 2, 5: the feature cache --------------------------------------------------------------
def test_1_a_replaced_cache_is_refused(cache):
    from safetensors.numpy import load_file, save_file

    out, sha = cache
    arrays = load_file(str(out))
    save_file(
        {k: np.random.default_rng(1).standard_normal(v.shape).astype(v.dtype) for k, v in arrays.items()}, str(out)
    )  # a valid file, same shapes, other values (no identity header)
    with pytest.raises(ValueError, match=rf"feature cache {re.escape(str(out))} .*replaced since.*rm "):
        load_features([str(out)], sha, ["rp"])


def test_1_a_cache_whose_content_changed_under_its_header_is_refused(cache, tmp_path):
    from safetensors import safe_open
    from safetensors.numpy import load_file, save_file

    out, sha = cache
    with safe_open(str(out), "np") as f:
        header = f.metadata()
    arrays = load_file(str(out))
    arrays["val"] = arrays["val"] * 2  # same header, other values
    save_file(arrays, str(out), metadata=header)
    with pytest.raises(ValueError, match=r"split 'val'\): its content differs .*digest mismatch"):
        load_features([str(out)], sha, ["rp"])


@pytest.mark.parametrize("field,value", [("dim", 99), ("pretrained", True), ("teacher", "other")])
def test_2_an_edited_sidecar_is_refused(cache, field, value):
    out, sha = cache
    meta_path = out.with_suffix(".json")
    meta = json.loads(meta_path.read_text())
    meta[field] = value
    meta_path.write_text(json.dumps(meta))
    with pytest.raises(ValueError, match=rf"sidecar {re.escape(str(meta_path))} disagrees .*{field}"):
        load_features([str(out)], sha, ["rp"])


def test_2_dims_and_pretrained_come_from_the_verified_file(cache):
    out, sha = cache
    cached = load_features([str(out)], sha, ["rp"])
    assert cached.dims == [8] and cached.pretrained == [False]


def test_5_a_nan_in_a_cache_is_named_at_load(tmp_path, digits_split):
    split = load_split(digits_split)
    feats = {s: np.ones((len(p.labels), 4), np.float32) for s, p in split.parts.items()}
    feats["train"][3, 1] = np.nan
    identity = {
        "teacher": "t",
        "dataset": "digits",
        "split_sha256": split.sha256,
        "modality": "image",
        "pretrained": True,
        "spec": RP,
    }
    out = tmp_path / "t.safetensors"
    write_cache(str(out), str(tmp_path / "t.json"), feats, identity, {"dim": 4})
    with pytest.raises(ValueError, match=r"t.safetensors \(teacher 't', split 'train'\) holds 1 non-finite"):
        load_features([str(out)], split.sha256, ["t"])


# --- 3, 4: training ----------------------------------------------------------------------------
def run_spec(**train):
    return tiny_spec_dict("stl", "none", 0.0, {"steps": 30, **train})


def test_3_divergence_is_recorded_and_never_reported(tmp_path, digits_split):
    from aftbench.core.records import sign_record
    from aftbench.report.build import collect_runs
    from aftbench.report.tables import main_table, render_table
    from aftbench.train.loop import RunSpec, train_run

    m = train_run(RunSpec.from_dict(run_spec(lr=1e6)), digits_split, [], str(tmp_path / "d.json"))
    assert m["diverged"] and m["divergence"]["final_ce_mean"] > 1.25 * m["divergence"]["first_ce"]
    ok = train_run(RunSpec.from_dict(run_spec()), digits_split, [], str(tmp_path / "ok.json"))
    assert not ok["diverged"]
    # in the tables: a cell of two β, the larger diverged on both seeds and has the best val_acc
    base = {
        "dataset": "d",
        "modality": "image",
        "student": "s",
        "student_init": "scratch",
        "student_params": 1,
        "teachers": ["t"],
        "teacher_set": "ts",
        "train_seconds": 1.0,
        "final_ce": 1.0,
        "final_penalty": 0.0,
        "teachers_pretrained": [True],
        "method": "aft",
        "penalty": "aft",
        "role": "transfer",
    }
    rows = [
        dict(base, beta=b, seed=s, val_acc=va, test_acc=te, diverged=dv, run_id=f"r{i}")
        for i, (b, s, va, te, dv) in enumerate(
            [
                (1.0, 0, 0.6, 0.6, False),
                (10.0, 0, 0.9, 0.1, True),
                (1.0, 1, 0.62, 0.62, False),
                (10.0, 1, 0.95, 0.1, True),
            ]
        )
    ]
    rows += [
        dict(
            base,
            method="stl",
            penalty="none",
            role="baseline",
            teachers=[],
            teacher_set="none",
            beta=0.0,
            seed=s,
            val_acc=0.5,
            test_acc=0.5,
            diverged=False,
            run_id=f"s{s}",
        )
        for s in (0, 1)
    ]
    paths = []
    for r in rows:
        p = tmp_path / f"{r['run_id']}.json"
        p.write_text(json.dumps(sign_record(r)))
        paths.append(str(p))
    runs = collect_runs(paths)
    assert not runs[runs.diverged].selected.any()  # β selection never picks a diverged run
    t = main_table(runs).iloc[0]
    assert t.aft_mean == pytest.approx(0.61) and t.aft_div == 2
    # two seeds whose paired differences disagree: AFT is not separable from STL (≈), the † counts the diverged
    assert render_table(main_table(runs)).iloc[0]["AFT"] == "**61.0 ± 1.4 (Δ +11.0 [-1.7, +23.7])** †2"


def test_4_a_batch_larger_than_the_training_set_is_refused(tmp_path, digits_split, text_tsv):
    from aftbench.train.loop import RunSpec, train_run

    with pytest.raises(ValueError, match=r"train.batch_size 500 exceeds the 120 training examples"):
        train_run(RunSpec.from_dict(run_spec(batch_size=500)), digits_split, [], str(tmp_path / "m.json"))
    cfg = tiny_config(text_tsv)
    cfg["train"]["batch_size"] = 100  # tinytext has n_train 60
    with pytest.raises(ConfigError, match=r"train.batch_size: 100 exceeds datasets.tinytext.n_train \(60\)"):
        validate_config(cfg)


def test_3_a_non_finite_loss_names_the_term(tmp_path, digits_split):
    from aftbench.train.loop import RunSpec, train_run

    with pytest.raises(FloatingPointError, match="the cross-entropy went non-finite: .*lower train.lr"):
        train_run(RunSpec.from_dict(run_spec(lr=1e30, steps=200)), digits_split, [], str(tmp_path / "m.json"))


# --- 6: failures reach the console -------------------------------------------------------------
def test_6_profiles_show_failed_logs():
    for name in ("default", "slurm"):
        assert yaml.safe_load((ROOT / "profiles" / name / "config.yaml").read_text())["show-failed-logs"] is True


@pytest.mark.slow
def test_6_the_slurm_profile_sends_every_heavy_job_to_slurm(tmp_path, text_tsv):
    """Under `--profile slurm` no heavy job runs on the login host: every extraction, score,
    paraphraser, probe, training and refit job, a block's own `train:` settings included (their
    runs once had a rule of their own that the profile did not name, and ran locally)."""
    cfg = tiny_config(text_tsv)
    cfg["sweeps"]["tiny"][1]["train"] = {"steps": 5}  # tinytext's runs: a train variant
    cfg["sweeps"]["tiny"][0]["train"] = {"fit_on": "train+val"}  # digits: aft's grid is tune-then-refit
    (tmp_path / "tiny.yaml").write_text(yaml.safe_dump(cfg))
    p = smk(tmp_path, "-n", "-p", "--profile", str(ROOT / "profiles" / "slurm"))
    launched = re.findall(r"python -m aftbench --log \S+ (\w+) --launcher (\w+)", p.stdout)
    assert {kind for kind, _ in launched} == {"extract", "score", "paraphraser", "probe", "train"}
    assert "/train~" in p.stdout and "--tuned" in p.stdout  # the variant runs and the refits are planned
    assert {launcher for _, launcher in launched} == {"slurm"}, sorted(set(launched))


@pytest.mark.slow
def test_6_a_failed_job_shows_its_log_on_the_console(tmp_path, text_tsv):
    cfg = tiny_config(text_tsv)
    cfg["sweeps"]["tiny"] = [{"datasets": ["digits"], "students": ["cnn_t"], "methods": ["stl"], "seeds": [0]}]
    cfg["students"]["cnn_t"]["args"]["image_size"] = 0  # the job fails inside the training code
    (tmp_path / "tiny.yaml").write_text(yaml.safe_dump(cfg))
    p = smk(tmp_path, "--profile", str(ROOT / "profiles" / "default"), check=False)
    assert p.returncode != 0
    assert "Traceback" in p.stdout + p.stderr and "aftbench train" in p.stdout + p.stderr


# A job started from a terminal: its own process group, Ctrl-C at its default. A test run started in
# the background of a shell without job control (`make test &`, nohup) inherits SIGINT ignored, and
# Python keeps an ignored SIGINT ignored: the job would never see the Ctrl-C these tests send.
AS_FROM_A_TERMINAL = dict(start_new_session=True, preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))


def _job(tmp_path, log, *args) -> list[str]:
    return [sys.executable, "-m", "aftbench", "--log", str(log), *args]


def test_6_a_failure_reaches_the_console_when_its_log_is_on_a_full_disk(tmp_path):
    """/dev/full refuses every write with ENOSPC, as a full disk under results/logs does."""
    bad = json.dumps({"loader": "sklearn_digits", "n_train": 5000, "n_val": 1, "n_test": 1})
    p = subprocess.run(
        _job(tmp_path, "/dev/full", "split", "--dataset", "d", "--spec", bad, "--out", str(tmp_path / "d.npz"))
        + ["--out-json", str(tmp_path / "d.json")],
        capture_output=True,
        text=True,
    )
    assert p.returncode == 1 and re.search(r"aftbench split \S*d failed: ValueError: datasets.d: n_train", p.stderr)
    assert "its log cannot be written: No space left on device" in p.stderr
    log = tmp_path / "ok.log"  # a log that can be written: the cause is its last line, the console stays quiet
    p = subprocess.run(
        _job(tmp_path, log, "split", "--dataset", "d", "--spec", bad, "--out", str(tmp_path / "d.npz"))
        + ["--out-json", str(tmp_path / "d.json")],
        capture_output=True,
        text=True,
    )
    assert p.returncode == 1 and p.stderr == "" and "Traceback" in log.read_text()
    assert re.match(r"aftbench split \S*d failed: ValueError: datasets.d: n_train", log.read_text().splitlines()[-1])


@pytest.mark.slow
@pytest.mark.parametrize("how", ["SIGTERM", "SIGKILL", "Ctrl-C"])
def test_6_a_stopped_job_names_what_stopped_it(tmp_path, digits_split, how):
    """SIGTERM and Ctrl-C end a job with one line and no traceback; SIGKILL (which a process never
    sees) is named by the process that waits for it."""
    spec = json.dumps(tiny_spec_dict("stl", "none", 0.0, {"steps": 10**7, "log_every": 10**6, "checkpoint_every": 0}))
    log, out = tmp_path / "job.log", tmp_path / "run" / "metrics.json"
    cmd = _job(tmp_path, log, "train", "--spec", spec, "--split", digits_split, "--out", str(out))
    job = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, **AS_FROM_A_TERMINAL)

    def child():
        kids = subprocess.run(["pgrep", "-P", str(job.pid)], capture_output=True, text=True).stdout.split()
        return int(kids[0]) if kids else None

    try:
        for _ in range(300):  # until the job's child runs, then into its work
            if child():
                break
            time.sleep(0.1)
        time.sleep(2)
        if how == "SIGTERM":
            job.send_signal(signal.SIGTERM)  # what Snakemake sends its jobs when it stops
        elif how == "SIGKILL":
            os.kill(child(), signal.SIGKILL)  # what the out-of-memory killer sends
        else:
            os.killpg(job.pid, signal.SIGINT)  # Ctrl-C reaches the terminal's whole process group
        _, err = job.communicate(timeout=60)
    finally:
        if job.poll() is None:
            os.killpg(job.pid, signal.SIGKILL)
    text = log.read_text()
    assert "Traceback" not in text and not out.exists()
    if how == "SIGTERM":
        assert job.returncode == 143 and "stopped by SIGTERM" in text.splitlines()[-1]
    elif how == "SIGKILL":
        assert job.returncode == 137 and "killed by SIGKILL" in err and "killed by SIGKILL" in text
    else:
        assert job.returncode == 130 and "interrupted (Ctrl-C)" in text.splitlines()[-1]


def test_6_a_failed_write_names_the_path_and_the_space_left(tmp_path, monkeypatch):
    from aftbench.core import io

    def full(*a, **k):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(io.os, "replace", full)
    with pytest.raises(
        OSError,
        match=rf"writing {re.escape(str(tmp_path))}/x.json failed: No space left on device; "
        r"[0-9.]+ GB free",
    ):
        io.write_json(tmp_path / "x.json", {"a": 1})
    assert not list(tmp_path.iterdir())  # nothing half-written left behind


# --- 7: no orphans -----------------------------------------------------------------------------
@pytest.mark.slow
@pytest.mark.parametrize("started", ["console script", "python -m"])
def test_7_killing_snakemake_stops_its_local_jobs(tmp_path, text_tsv, started):
    """README starts Snakemake as the console script pip installs (the kernel runs it as
    `.../python3 .../bin/snakemake ...`); `python -m snakemake` is the other way."""
    cfg = tiny_config(text_tsv)
    cfg["train"].update(steps=10**7, log_every=10**6, checkpoint_every=0)
    cfg["students"] = {"cnn_orphan7": cfg["students"]["cnn_t"]}  # an id no other job has
    cfg["sweeps"]["tiny"] = [{"datasets": ["digits"], "students": ["cnn_orphan7"], "methods": ["stl"], "seeds": [0]}]
    (tmp_path / "tiny.yaml").write_text(yaml.safe_dump(cfg))
    script = os.path.join(os.path.dirname(sys.executable), "snakemake")
    cmd = ([script] if started == "console script" else [sys.executable, "-m", "snakemake"]) + [
        "-s",
        str(ROOT / "Snakefile"),
        "--directory",
        str(tmp_path),
        "--configfile",
        str(tmp_path / "tiny.yaml"),
        "--cores",
        "1",
    ]
    env = {
        **os.environ,
        "HF_HUB_OFFLINE": "1",
        "PATH": os.pathsep.join([os.path.dirname(sys.executable), os.environ["PATH"]]),
    }
    sm = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env)
    pattern = "aftbench --log .* train .*student~cnn_orphan7"

    def jobs():
        out = subprocess.run(["pgrep", "-f", pattern], capture_output=True, text=True).stdout
        return [int(p) for p in out.split() if int(p) != sm.pid]

    try:
        for _ in range(600):
            if len(jobs()) == 2:  # the job's process and the child it forks to do the work (launch.console)
                break
            time.sleep(0.1)
        assert jobs(), "the training job never started"
        time.sleep(1)
        os.kill(sm.pid, signal.SIGKILL)
        sm.wait()
        for _ in range(300):  # the lifeline looks every second; a loaded machine may take its time to stop
            if not jobs():
                break
            time.sleep(0.1)
        assert not jobs(), "the training job outlived Snakemake"
    finally:
        for pid in jobs():
            os.kill(pid, signal.SIGKILL)


# --- 8, 9: validation before any job --------------------------------------------------------------
BAD_VALUES = [
    (lambda c: c["methods"]["kd"].update(beta=math.nan), "methods.kd.beta: nan is not a finite number"),
    (lambda c: c["methods"]["aft"].update(beta=[0.5, math.inf]), r"methods.aft.beta\[1\]: inf is not a finite"),
    (lambda c: c["train"].update(lr=math.nan), "train.lr: nan is not a finite number"),
    (
        lambda c: c["datasets"]["tinytext"]["args"].update(path="/no/such/file.tsv"),
        "datasets.tinytext.args.path: /no/such/file.tsv does not exist",
    ),
    (lambda c: c["methods"]["kd"].update(beta=-1), r"methods.kd.beta: -1 is less than the minimum of 0"),
    (lambda c: c["teachers"]["rp_a"]["args"].update(dims=3), "teachers.rp_a.args.dims: unknown argument"),
    (
        lambda c: c.update(launch={"resources": {"train": {"sbatch": {"constraint": "a100\n#SBATCH --exclusive"}}}}),
        "launch.resources.train.sbatch.constraint: .* holds a control character",
    ),
    (
        lambda c: c.update(launch={"resources": {"default": {"partition": "gpu\nsrun evil"}}}),
        "launch.resources.default.partition: .* control character",
    ),
    (lambda c: c.update(__use_yte__=True), "__use_yte__: YTE templates run embedded Python"),
]


@pytest.mark.parametrize("change,message", BAD_VALUES, ids=[m.split(":")[0] for _, m in BAD_VALUES])
def test_8_9_bad_values_are_refused_before_any_job(text_tsv, change, message):
    cfg = copy.deepcopy(tiny_config(text_tsv))
    change(cfg)
    with pytest.raises(ConfigError) as err:
        validate_config(cfg)
    assert any(re.search(message, p) for p in err.value.problems), err.value.problems


def test_8_the_dag_build_refuses_a_nan_beta_and_a_missing_root(tmp_path, text_tsv):
    cfg = tiny_config(text_tsv)
    cfg["methods"]["kd"]["beta"] = math.nan
    cfg["datasets"]["tinytext"]["args"]["path"] = "/no/such/file.tsv"
    (tmp_path / "tiny.yaml").write_text(yaml.safe_dump(cfg))
    p = smk(tmp_path, "-n", check=False)
    out = p.stdout + p.stderr
    assert p.returncode != 0 and "methods.kd.beta: nan is not a finite number" in out and "/no/such/file.tsv" in out
    assert not (tmp_path / "results").exists()


def test_8_numbers_are_read_as_a_person_writes_them(text_tsv):
    """`lr: 1e-3` is the text '1e-3' to PyYAML (YAML 1.1, as Snakemake reads config files): where the
    schema wants a number it is that number (so is a number inside a `--config` mapping, text to
    Snakemake); a backend argument says how to write it; a grid's bad element is named by its index."""
    cfg = tiny_config(text_tsv)
    cfg["train"] |= yaml.safe_load("lr: 1e-3\nweight_decay: 5E-4")
    cfg["methods"]["aft"]["beta"] = yaml.safe_load("[5e-1, 2]")
    assert isinstance(cfg["train"]["lr"], str)  # what PyYAML hands over
    resolved = validate_config(cfg)
    assert resolved["train"]["lr"] == 0.001 and resolved["train"]["weight_decay"] == 0.0005
    assert resolved["methods"]["aft"]["beta"] == [0.5, 2]
    # `--config 'launch={"pack": 8, "pending_max_h": 1.5}'`: Snakemake hands nested values over as text
    cfg["launch"] = {"pack": "8", "pending_max_h": "1.5", "resources": {"train": {"time_min": "30"}}}
    launch = validate_config(cfg)["launch"]
    assert launch["pack"] == 8 and launch["pending_max_h"] == 1.5 and launch["resources"]["train"]["time_min"] == 30
    for _what, change, message in [
        (
            "grid",
            lambda c: c["sweeps"]["tiny"][0].update(beta={"aft": [-0.5]}),
            "sweeps.tiny[0].beta.aft[0]: -0.5 is less",
        ),
        (
            "arg",
            lambda c: c["teachers"]["rp_a"]["args"].update(dim="1e1"),
            "rp_a.args.dim: '1e1' is not int (YAML reads",
        ),
    ]:
        cfg = tiny_config(text_tsv)
        change(cfg)
        with pytest.raises(ConfigError, match=re.escape(message)):
            validate_config(cfg)


@pytest.mark.parametrize(
    "key,value,message",
    [
        ("n_train", 5000, r"datasets.digits: n_train \+ n_val \+ n_test = 5000 \+ 40 \+ 60 exceeds the 1797 examples"),
        ("n_test", 5000, r"datasets.digits: n_train \+ n_val \+ n_test = 120 \+ 40 \+ 5000 exceeds the 1797"),
    ],
)
def test_8_more_examples_than_the_data_holds_are_refused(tmp_path, key, value, message):
    spec = {"loader": "sklearn_digits", "modality": "image", "n_train": 120, "n_val": 40, "n_test": 60, key: value}
    with pytest.raises(ValueError, match=message):
        make_split("digits", spec, str(tmp_path / "s.npz"), str(tmp_path / "s.json"))
    assert not (tmp_path / "s.json").exists()


def test_9_the_workflow_refuses_a_yte_config_file(tmp_path, text_tsv):
    cfg = tiny_config(text_tsv)
    (tmp_path / "tiny.yaml").write_text("__use_yte__: true\n" + yaml.safe_dump(cfg))
    p = smk(tmp_path, "-n", check=False)
    assert p.returncode != 0 and "aftbench does not accept YTE configs" in p.stdout + p.stderr


def test_9_control_characters_are_allowed_where_no_job_script_sees_them():
    from aftbench.config.input_checks import control_characters

    assert control_characters({"datasets": {"x": {"args": {"sep": "\n"}}}}) == []
    assert control_characters({"launch": {"resources": {"train": {"qos": "a\tb"}}}})


def test_11_one_sweep_never_mixes_training_settings_in_a_cell(text_tsv):
    from aftbench.sweep.expand import expand_sweep

    cfg = tiny_config(text_tsv)
    block = {"datasets": ["digits"], "students": ["cnn_t"], "methods": ["stl"], "seeds": [0]}
    cfg["sweeps"]["tiny"] = [block, {**block, "train": {"steps": 5}}]
    with pytest.raises(ConfigError, match=r"appears in two blocks with different train settings"):
        expand_sweep(validate_config(cfg))


def test_7_nothing_is_watched_outside_snakemake():
    """Only Snakemake's death orphans a job: started from a terminal (or pytest), a job watches
    nothing, so a login shell that exits under `nohup` never stops it."""
    code = "from aftbench.launch.lifeline import watched_ancestors; print(watched_ancestors())"
    out = subprocess.run(["bash", "-c", f"{sys.executable} -c '{code}'"], capture_output=True, text=True).stdout
    assert out.strip() == "[]"


@pytest.mark.parametrize(
    "argv,is_snakemake",
    [
        (["snakemake", "--cores", "2"], True),
        (["/venv/bin/python3", "/venv/bin/snakemake", "--cores", "2"], True),  # the console script, as run
        (["python3.12", "-u", "/venv/bin/snakemake"], True),
        (["python", "-m", "snakemake", "-n"], True),
        (["python", "-m", "aftbench", "train"], False),
        (["python", "/venv/bin/pytest"], False),
        (["bash", "-c", "snakemake --cores 2"], False),  # a wrapper: its child is the Snakemake
        ([], False),
    ],
)
def test_7_snakemake_is_recognised_however_it_was_started(argv, is_snakemake):
    from aftbench.launch.lifeline import _names_snakemake

    assert _names_snakemake(argv) is is_snakemake


def test_7_the_lock_note_says_whether_a_snakemake_still_runs_here(tmp_path):
    from aftbench.launch.lifeline import lock_note

    assert lock_note(str(tmp_path)) is None  # no lock: nothing to say
    (tmp_path / ".snakemake" / "locks").mkdir(parents=True)
    (tmp_path / ".snakemake" / "locks" / "0.input.lock").write_text("x")
    assert "no Snakemake is running" in lock_note(str(tmp_path)) and "--unlock" in lock_note(str(tmp_path))
    fake = tmp_path / "bin" / "snakemake"  # a live Snakemake, as its console script looks in /proc
    fake.parent.mkdir()
    fake.write_text("import time\ntime.sleep(60)\n")
    live = subprocess.Popen([sys.executable, str(fake), "--cores", "1"], cwd=tmp_path)
    try:
        for _ in range(50):
            note = lock_note(str(tmp_path))
            if str(live.pid) in note:
                break
            time.sleep(0.1)
        assert f"Snakemake (pid {live.pid}) is still running in {tmp_path}" in note and "do not --unlock" in note
    finally:
        live.kill()
        live.wait()


def test_3_an_incomplete_checkpoint_is_not_resumed(tmp_path, capsys):
    """A checkpoint of this very spec that lacks part of the state (the sampler, the lr schedule,
    ...) cannot be resumed exactly: it is reported and ignored, nothing is half-restored."""
    import torch

    from aftbench.train.state import CHECKPOINT_KEYS, TrainState

    path = tmp_path / "checkpoint.pt"
    torch.save({"fingerprint": "f", "step": 3}, path)
    untouched = object()
    state = TrainState(untouched, None, untouched, untouched, untouched, torch.arange(4))
    assert state.resume(str(path), "f", "r") is False and state.step == 0
    out = capsys.readouterr().out
    assert "ignoring incomplete checkpoint" in out and str(list(CHECKPOINT_KEYS[2:])) in out


# --- 10: aggregation of any subset ----------------------------------------------------------------
@pytest.mark.slow
@pytest.mark.parametrize("keep", ["stl", "probe", "one dataset"])
def test_10_any_subset_of_finished_runs_aggregates(workdir, tmp_path, keep):
    from aftbench.report.build import build_report

    paths = sorted(str(p) for p in (workdir / "results" / "runs").rglob("metrics.json"))
    pick = {
        "stl": lambda p: "method~stl" in p,
        "probe": lambda p: "student~probe" in p,
        "one dataset": lambda p: "dataset~tinytext" in p,
    }[keep]
    runs = build_report([p for p in paths if pick(p)], str(tmp_path))
    assert len(runs) and (tmp_path / "tables" / "main.md").exists() and (tmp_path / "figures").is_dir()


# --- 11: sweeps never overwrite each other ----------------------------------------------------------
@pytest.mark.slow
def test_11_a_sweep_with_other_training_settings_keeps_both_results(workdir, text_tsv, tmp_path):
    import shutil

    wd = tmp_path / "two_sweeps"
    shutil.copytree(workdir, wd, symlinks=True)
    cfg = tiny_config(text_tsv)
    cfg["sweeps"]["short"] = [
        {"datasets": ["digits"], "students": ["cnn_t"], "methods": ["stl"], "seeds": [0], "train": {"steps": 5}}
    ]
    cfg["sweep"] = "short"
    (wd / "tiny.yaml").write_text(yaml.safe_dump(cfg, sort_keys=False))
    assert planned(wd) == {"train": 1, "aggregate": 1, "leaderboard": 1, "all": 1}
    smk(wd)
    runs = wd / "results" / "runs" / "dataset~digits" / "student~cnn_t" / "method~stl" / "teachers~none" / "beta~0"
    default = json.loads((runs / "seed~0" / "metrics.json").read_text())
    [variant] = list((runs / "seed~0").glob("train~*/metrics.json"))
    assert default["steps"] == 10 and json.loads(variant.read_text())["steps"] == 5
    assert default == json.loads((workdir / runs.relative_to(wd) / "seed~0" / "metrics.json").read_text())
    assert len(pd.read_csv(wd / "results/reports/short/runs.csv")) == 1
    assert len(pd.read_csv(wd / "results/reports/tiny/runs.csv")) == 15  # the other sweep's report is untouched


# --- 12: changed source data ------------------------------------------------------------------------
@pytest.mark.slow
def test_12_changed_source_files_refuse_the_old_split(tmp_path, text_tsv):
    import shutil

    src = tmp_path / "texts.tsv"
    shutil.copy(text_tsv, src)
    cfg = tiny_config(str(src))
    cfg["sweeps"]["tiny"] = [{"datasets": ["tinytext"], "students": ["bag_t"], "methods": ["stl"], "seeds": [0]}]
    (tmp_path / "tiny.yaml").write_text(yaml.safe_dump(cfg))
    smk(tmp_path)
    with open(src, "a") as f:
        f.write("animal\ta new line\n")
    p = smk(tmp_path, "-n", check=False)
    out = p.stdout + p.stderr
    assert p.returncode != 0 and "datasets.tinytext: its source files changed since" in out and "rm -r" in out
    cfg["datasets"]["tinytext"]["n_test"] = 30  # a new spec: Snakemake redraws the split itself, no refusal
    (tmp_path / "tiny.yaml").write_text(yaml.safe_dump(cfg))
    assert planned(tmp_path)["split"] == 1


@pytest.mark.parametrize("layout", ["csv file", "parquet glob"])
def test_12_a_table_datasets_changed_rows_refuse_the_old_split(tmp_path, monkeypatch, layout):
    """A CSV or parquet dataset read through hf_dataset is fingerprinted like a folder: rows
    deleted after its split was drawn are refused before any job; a hub id (nothing local) is not."""
    from aftbench.core.layout import sidecar, split_path
    from aftbench.data.provenance import stale_splits
    from aftbench.sweep.summary import describe

    monkeypatch.chdir(tmp_path)
    rows = pd.DataFrame({"text": [f"word{i} thing" for i in range(60)], "label": ["a", "b", "c"] * 20})
    if layout == "csv file":
        rows.to_csv("t.csv", index=False)
        args = {"path": "csv", "data_files": {"train": "t.csv"}, "text_fields": ["text"], "test_split": None}
    else:
        os.mkdir("parts")
        rows[:30].to_parquet("parts/0.parquet")
        rows[30:].to_parquet("parts/1.parquet")
        args = {"path": "parquet", "data_files": "parts/*.parquet", "text_fields": ["text"], "test_split": None}
    spec = {"loader": "hf_dataset", "modality": "text", "args": args, "n_train": 30, "n_val": 9, "n_test": 12}
    make_split("t", spec, split_path("t"), sidecar(split_path("t")))
    config, loaders = {"datasets": {"t": spec}}, describe()["loaders"]
    assert json.loads(open(sidecar(split_path("t"))).read())["source_fingerprint"] is not None
    assert stale_splits(config, loaders, ["t"]) == []
    time.sleep(0.01)
    if layout == "csv file":
        rows[:-9].to_csv("t.csv", index=False)  # rows deleted
    else:
        os.remove("parts/1.parquet")
    [problem] = stale_splits(config, loaders, ["t"])
    assert problem.startswith("datasets.t: its source files changed since") and "rm -r results/splits/t.npz" in problem


def test_13_a_refit_whose_tune_stage_cannot_choose_is_refused(tmp_path):
    """Every tune run diverged, or a tune record is another run's: the refit job fails naming them,
    and never trains on a value nothing chose."""
    from test_refit import refit_spec

    from aftbench.core.io import write_json
    from aftbench.core.records import sign_record
    from aftbench.train.refit import TuneStageError, choose_tuned

    spec, paths = refit_spec(tmp_path, [0.4, 0.5], diverged=(True, True))
    with pytest.raises(TuneStageError, match="every run of its tune stage diverged"):
        choose_tuned(spec, paths)
    spec, paths = refit_spec(tmp_path, [0.4, 0.5])
    write_json(paths[0], sign_record({"run_id": "another/run", "val_acc": 0.9, "beta": 1.0, "fit_on": "train"}))
    with pytest.raises(TuneStageError, match="tiny/aft/beta~tuned_0.5_2: its tune stage should be the records of"):
        choose_tuned(spec, paths)


# --- 14: an edited or stale run record; 15: a swapped split ------------------------------------------
def _one_aft_run(tmp_path, digits_split):
    """An AFT run on a copy of the digits split and a fresh cache: (record path, split copy, cache)."""
    import shutil

    from aftbench.teachers.extract import extract
    from aftbench.train.loop import RunSpec, train_run

    split = tmp_path / "digits.npz"
    for src in (digits_split, digits_split.replace(".npz", ".json")):
        shutil.copy(src, tmp_path)
    shutil.copytree(digits_split.replace(".npz", ".images"), tmp_path / "digits.images")
    cache = tmp_path / "rp.safetensors"
    extract(
        "rp", {"backend": "random_projection", "args": {"dim": 12}}, str(split), str(cache), str(tmp_path / "rp.json")
    )
    out = tmp_path / "run" / "metrics.json"
    train_run(RunSpec.from_dict(tiny_spec_dict("aft", "aft", 1.0, {"steps": 5})), str(split), [str(cache)], str(out))
    return out, split, cache


def test_14_an_edited_or_unsigned_record_is_refused_by_aggregation(tmp_path, digits_split):
    from aftbench.core.records import RECORD_DIGEST
    from aftbench.report.build import collect_runs
    from aftbench.report.verify import RecordError

    out, _, _ = _one_aft_run(tmp_path, digits_split)
    record = json.loads(out.read_text())
    assert [i["kind"] for i in record["inputs"]] == ["split", "features"] and record["spec_sha256"]
    assert len(collect_runs([str(out)])) == 1
    out.write_text(json.dumps({**record, "test_acc": 0.99}))  # a hand edit
    with pytest.raises(
        RecordError, match=r"(?s)1 run record.*metrics.json: edited since its run wrote it.*`rm .*metrics.json`"
    ):
        collect_runs([str(out)])
    out.write_text(json.dumps({k: v for k, v in record.items() if k != RECORD_DIGEST}))
    with pytest.raises(RecordError, match="carries no digest"):
        collect_runs([str(out)])


def test_14_a_record_computed_from_a_replaced_input_is_refused(tmp_path, digits_split):
    from aftbench.report.build import collect_runs
    from aftbench.report.verify import RecordError
    from aftbench.teachers.extract import extract

    out, split, cache = _one_aft_run(tmp_path, digits_split)
    extract(
        "rp", {"backend": "random_projection", "args": {"dim": 11}}, str(split), str(cache), str(tmp_path / "rp.json")
    )
    with pytest.raises(RecordError, match=r"computed from features .*rp.safetensors as it was then .*replaced since"):
        collect_runs([str(out)])
    cache.unlink()
    (tmp_path / "rp.json").unlink()  # an input that is gone is no evidence against the record
    assert len(collect_runs([str(out)])) == 1


def test_15_a_split_swapped_for_another_seeds_split_is_refused(tmp_path):
    spec = {"loader": "sklearn_digits", "n_train": 50, "n_val": 20, "n_test": 30}
    make_split("d", spec, str(tmp_path / "d.npz"), str(tmp_path / "d.json"))
    make_split("d", {**spec, "split_seed": 1}, str(tmp_path / "e.npz"), str(tmp_path / "e.json"))
    (tmp_path / "e.npz").replace(tmp_path / "d.npz")  # same shapes, same classes, other examples
    with pytest.raises(ValueError, match=r"d.npz is not the split that was drawn.*redraw it: `rm -r .*d.npz"):
        extract(
            "rp",
            {"backend": "random_projection", "args": {"dim": 4}},
            str(tmp_path / "d.npz"),
            str(tmp_path / "f"),
            str(tmp_path / "f.json"),
        )


# --- 16: a damaged input costs only what it damaged ----------------------------------------------------
def _sweep_inputs(tmp_path, monkeypatch, digits_split, text_tsv):
    """The tiny config's digits split and rp_a cache laid out under results/ in a fresh folder."""
    import shutil

    from aftbench.core.layout import features_path, sidecar, split_images_dir, split_path

    monkeypatch.chdir(tmp_path)
    split = split_path("digits")
    os.makedirs(os.path.dirname(split))
    shutil.copy(digits_split, split)
    shutil.copy(digits_split.replace(".npz", ".json"), sidecar(split))
    shutil.copytree(split_images_dir(digits_split), split_images_dir(split))
    cache = features_path("digits", "rp_a")
    extract("rp_a", {"backend": "random_projection", "args": {"dim": 8}}, split, cache, sidecar(cache))
    return validate_config(tiny_config(text_tsv)), split, cache


def test_16_a_damaged_split_or_cache_is_refused_before_any_job(tmp_path, monkeypatch, digits_split, text_tsv):
    import aftbench.config.preflight as preflight

    cfg, split, cache = _sweep_inputs(tmp_path, monkeypatch, digits_split, text_tsv)
    assert preflight.damaged_artifacts(cfg) == [] and cache in json.loads(open(preflight.VERIFIED_MEMO).read())
    hashed = []
    monkeypatch.setattr(preflight, "verify_cache", lambda p: hashed.append(p))
    assert preflight.damaged_artifacts(cfg) == [] and hashed == []  # unchanged files: not hashed again
    monkeypatch.undo()
    monkeypatch.chdir(tmp_path)
    with open(cache, "r+b") as f:
        f.truncate(os.path.getsize(cache) // 2)
    [problem] = preflight.damaged_artifacts(cfg)
    assert "corrupt feature cache results/features/digits/rp_a.safetensors" in problem and "rm " in problem
    data = bytearray(open(split, "rb").read())
    data[-100] ^= 0xFF
    open(split, "wb").write(bytes(data))
    problems = preflight.damaged_artifacts(cfg)
    assert len(problems) == 2 and "is not the split that was drawn" in problems[0]


def test_16_a_rerun_restores_a_run_whose_inputs_came_back_identical(tmp_path, digits_split, capsys):
    from aftbench.core.layout import kept_record_path
    from aftbench.train.loop import RunSpec, train_run

    out, split, cache = _one_aft_run(tmp_path, digits_split)
    spec = RunSpec.from_dict(tiny_spec_dict("aft", "aft", 1.0, {"steps": 5}))
    kept = kept_record_path(out)
    assert open(kept, "rb").read() == out.read_bytes()

    def rerun() -> str:
        """'restored' or 'trained'."""
        out.unlink()  # Snakemake deletes a job's outputs before it starts
        capsys.readouterr()
        train_run(spec, str(split), [str(cache)], str(out))
        return "restored" if "record restored, not retrained" in capsys.readouterr().out else "trained"

    assert rerun() == "trained"  # no input newer than the copy (--forcerun, a deleted record)
    later = time.time() + 5
    os.utime(cache, (later, later))  # rebuilt byte-identical: to Snakemake, a newer input
    assert rerun() == "restored" and out.read_bytes() == open(kept, "rb").read()
    rp11 = {"backend": "random_projection", "args": {"dim": 11}}
    extract("rp", rp11, str(split), str(cache), str(tmp_path / "rp.json"))  # really changed
    assert rerun() == "trained"
    os.utime(cache, (later + 5, later + 5))
    spec = RunSpec.from_dict(tiny_spec_dict("aft", "aft", 2.0, {"steps": 5}))  # another spec, same inputs
    assert rerun() == "trained"


@pytest.mark.slow
def test_16_a_truncated_cache_costs_no_finished_run(workdir, tmp_path):
    """README's sweep with one cache truncated: refused once, before any job, nothing deleted; after
    `rm` and `snakemake`, the cache is rebuilt and its runs restored (it came back byte-identical)."""
    import shutil

    wd = tmp_path / "truncated"
    shutil.copytree(workdir, wd, symlinks=True)
    records = {p: p.read_bytes() for p in (wd / "results" / "runs").rglob("metrics.json")}
    cache = wd / "results" / "features" / "digits" / "rp_a.safetensors"
    with open(cache, "r+b") as f:
        f.truncate(os.path.getsize(cache) - 64)
    p = smk(wd, check=False)
    out = p.stdout + p.stderr
    assert p.returncode != 0 and out.count("corrupt feature cache results/features/digits/rp_a.safetensors") == 1
    assert "rm results/features/digits/rp_a.safetensors" in out and "Traceback" not in out
    assert all(path.exists() for path in records)  # nothing downstream was deleted
    cache.unlink()
    smk(wd)
    trained = {p: b for p, b in records.items() if "student~probe" not in str(p)}  # a probe costs seconds: redone
    assert {p: p.read_bytes() for p in trained} == trained  # every training record as it was
    logs = [p.read_text() for p in (wd / "results" / "logs" / "runs").rglob("*.log")]
    assert sum("record restored, not retrained" in log for log in logs) == 6  # digits' KD and AFT runs


# --- the troubleshooting table ---------------------------------------------------------------------
def test_the_fault_table_names_real_tests():
    text = (ROOT / "docs" / "troubleshooting.md").read_text()
    section = text[text.index("## When something is wrong") :]
    section = section[: section.index("\n## ", 3)]
    named = set(re.findall(r"`(test_\w+)`", section))
    here = {name for name in globals() if name.startswith("test_")}
    assert named and named <= here, named - here
    assert {n.split("_")[1] for n in here if n.split("_")[1].isdigit()} <= {
        m for m in re.findall(r"^\| (\d+) \|", section, re.M)
    }


STUBBORN = """
import sys, time
from aftbench.launch import console
console.STOP_GRACE_S = 1.0
def stubborn():
    open(sys.argv[1], "w").close()
    while True:
        try:
            time.sleep(0.05)
        except BaseException:  # swallows whatever the signal raised
            pass
sys.exit(console.run_logged(stubborn, "train x", sys.argv[2]))
"""


@pytest.mark.parametrize("how", ["Ctrl-C", "SIGTERM"])
def test_6_a_stop_that_the_work_swallows_still_ends_the_job(tmp_path, how):
    """A library that catches the KeyboardInterrupt (or our SIGTERM exception) and carries on (seen:
    Ctrl-C while torch starts up; the job then trained on) cannot keep the job running: it ends
    STOP_GRACE_S after the signal, and its log says so."""
    started, log = tmp_path / "started", tmp_path / "job.log"
    cmd = [sys.executable, "-c", STUBBORN, str(started), str(log)]
    job = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, **AS_FROM_A_TERMINAL)
    try:
        for _ in range(600):
            if started.exists():
                break
            time.sleep(0.05)
        if how == "Ctrl-C":
            os.killpg(job.pid, signal.SIGINT)  # the terminal's whole process group
        else:
            job.send_signal(signal.SIGTERM)  # the parent forwards it to the working child
        job.communicate(timeout=30)
    finally:
        if job.poll() is None:
            os.killpg(job.pid, signal.SIGKILL)
    assert job.returncode == (130 if how == "Ctrl-C" else 143)
    last = log.read_text().splitlines()[-1]
    assert ("interrupted (Ctrl-C)" if how == "Ctrl-C" else "stopped by SIGTERM") in last
    assert "it had not stopped 1 s later, so it was ended" in last
