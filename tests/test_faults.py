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
        p.write_text(json.dumps(r))
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
    launched = re.findall(r"python -m aftbench (\w+) --launcher (\w+)", p.stdout)
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
def test_7_killing_snakemake_stops_its_local_jobs(tmp_path, text_tsv):
    cfg = tiny_config(text_tsv)
    cfg["train"].update(steps=10**7, log_every=10**6, checkpoint_every=0)
    cfg["students"] = {"cnn_orphan7": cfg["students"]["cnn_t"]}  # an id no other job has
    cfg["sweeps"]["tiny"] = [{"datasets": ["digits"], "students": ["cnn_orphan7"], "methods": ["stl"], "seeds": [0]}]
    (tmp_path / "tiny.yaml").write_text(yaml.safe_dump(cfg))
    cmd = [
        sys.executable,
        "-m",
        "snakemake",
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
    pattern = "aftbench train .*student~cnn_orphan7"

    def jobs():
        out = subprocess.run(["pgrep", "-f", pattern], capture_output=True, text=True).stdout
        return [int(p) for p in out.split() if int(p) != sm.pid]

    try:
        for _ in range(600):
            if jobs():
                break
            time.sleep(0.1)
        assert jobs(), "the training job never started"
        time.sleep(1)
        os.kill(sm.pid, signal.SIGKILL)
        sm.wait()
        for _ in range(100):
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
    assert planned(wd) == {"train": 1, "aggregate": 1, "all": 1}
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


def test_13_a_refit_whose_tune_stage_cannot_choose_is_refused(tmp_path):
    """Every tune run diverged, or a tune record is another run's: the refit job fails naming them,
    and never trains on a value nothing chose."""
    from test_refit import refit_spec

    from aftbench.core.io import write_json
    from aftbench.train.refit import TuneStageError, choose_tuned

    spec, paths = refit_spec(tmp_path, [0.4, 0.5], diverged=(True, True))
    with pytest.raises(TuneStageError, match="every run of its tune stage diverged"):
        choose_tuned(spec, paths)
    spec, paths = refit_spec(tmp_path, [0.4, 0.5])
    write_json(paths[0], {"run_id": "another/run", "val_acc": 0.9, "beta": 1.0, "fit_on": "train"})
    with pytest.raises(TuneStageError, match="tiny/aft/beta~tuned_0.5_2: its tune stage should be the records of"):
        choose_tuned(spec, paths)


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
