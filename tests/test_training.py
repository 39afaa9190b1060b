"""The training loop and the probe on tiny data: metrics written, bad numbers caught."""

import json

import numpy as np
import pytest
from tiny_specs import tiny_spec as spec
from tiny_specs import tiny_spec_dict

from aftbench.train.loop import RunSpec, train_run
from aftbench.train.probe import probe_run


@pytest.mark.parametrize(
    "method, penalty",
    [
        ("stl", "none"),
        ("kd", "kd"),
        ("aft", "aft"),
        ("btune", "btune"),
        ("rkd", "rkd"),
        ("aft_nokernel", "aft_nokernel"),
        ("rcka", "rcka"),
        ("cospress", "cospress"),
        ("vkd", "vkd"),
    ],
)
def test_train_writes_metrics(tmp_path, digits_split, feats, method, penalty):
    out = tmp_path / "m.json"
    m = train_run(spec(method, penalty), digits_split, [feats] if penalty != "none" else [], str(out))
    on_disk = json.loads(out.read_text())
    assert on_disk["test_acc"] == m["test_acc"] and 0 <= m["test_acc"] <= 1
    assert m["student_params"] > 0 and m["student_init"] == "scratch" and m["checkpoint"] == "final step"
    if penalty == "aft":
        r = m["rho"]["rp"]
        assert 0 < r["min"] <= r["mean"] <= r["max"] < 1 and r["std"] > 0  # ρ moved away from 0.5
    else:
        assert "rho" not in m
    if penalty == "btune":
        assert m["penalty_info"]["teacher_weights"] == [1.0] and len(m["penalty_info"]["logme"]) == 1


def test_same_seed_same_result(tmp_path, digits_split, feats):
    a = train_run(spec("aft", "aft"), digits_split, [feats], str(tmp_path / "a.json"))
    b = train_run(spec("aft", "aft"), digits_split, [feats], str(tmp_path / "b.json"))
    assert a["test_acc"] == b["test_acc"] and a["final_penalty"] == b["final_penalty"]


class Killed(BaseException):
    pass


@pytest.mark.parametrize(
    "method, penalty, schedule",
    [
        ("stl", "none", "constant"),
        ("aft", "aft", "cosine"),
        ("kd", "kd", "constant"),
        ("btune", "btune", "constant"),
        ("vkd", "vkd", "constant"),  # an orthogonal parametrisation: its state resumes too
        ("cospress", "cospress", "cosine"),
    ],
)
def test_killed_run_resumes_to_the_same_result(tmp_path, digits_split, feats, monkeypatch, method, penalty, schedule):
    """A job killed right after its step-12 checkpoint (as SLURM preemption would) and started
    again resumes there and ends with exactly the uninterrupted run's weights and metrics (the
    learning-rate schedule's position included)."""
    from aftbench.train.state import TrainState

    s = spec(method, penalty, train={"steps": 30, "checkpoint_every": 6, "log_every": 3, "schedule": schedule})
    feats_ = [feats] if penalty != "none" else []
    full = train_run(s, digits_split, feats_, str(tmp_path / "full" / "m.json"))
    assert full["resumed_from_steps"] == [] and not (tmp_path / "full" / "checkpoint.pt").exists()

    real_save, saves = TrainState.save, []

    def save_then_die(state, path, fingerprint, seconds):
        real_save(state, path, fingerprint, seconds)
        saves.append(state.step)
        if state.step == 12:
            raise Killed()

    out = tmp_path / "killed" / "m.json"
    monkeypatch.setattr(TrainState, "save", save_then_die)
    with pytest.raises(Killed):
        train_run(s, digits_split, feats_, str(out))
    assert saves == [6, 12] and not out.exists() and (out.parent / "checkpoint.pt").exists()
    monkeypatch.setattr(TrainState, "save", real_save)
    resumed = train_run(s, digits_split, feats_, str(out))
    assert resumed["resumed_from_steps"] == [12]
    for key in ("val_acc", "test_acc", "history", "final_ce", "final_penalty", "rho"):
        assert resumed.get(key) == full.get(key), key
    assert len(resumed["history"]) == 10 and not (out.parent / "checkpoint.pt").exists()


def test_checkpoint_of_another_spec_is_not_resumed(tmp_path, digits_split, feats, capsys):
    import torch

    from aftbench.train.state import checkpoint_path_for

    out = tmp_path / "m.json"
    torch.save({"fingerprint": "something else", "step": 10}, checkpoint_path_for(str(out)))
    m = train_run(spec("stl", "none", train={"checkpoint_every": 5}), digits_split, [], str(out))
    assert m["resumed_from_steps"] == [] and "written for a different run spec" in capsys.readouterr().out


def test_nan_loss_names_the_run_and_writes_nothing(tmp_path, digits_split, feats):
    out = tmp_path / "m.json"
    with pytest.raises(FloatingPointError, match=r"run tiny/kd: non-finite loss at step 1"):
        train_run(spec("kd", "kd", beta=float("inf")), digits_split, [feats], str(out))
    assert not out.exists()


def test_probe(tmp_path, digits_split, feats):
    m = probe_run(
        "p",
        "digits",
        "rp",
        ["rp"],
        "probe",
        {"kind": "probe", "C_grid": [0.1, 1.0]},
        digits_split,
        [feats],
        str(tmp_path / "p.json"),
    )
    assert set(m["val_acc_by_C"]) == {"0.1", "1.0"} and m["C"] in (0.1, 1.0)
    assert m["val_acc"] == max(m["val_acc_by_C"].values())
    assert m["test_acc"] > 0.2  # random projection of digit pixels still beats chance (0.1)


def test_method_without_its_target_file_is_named(tmp_path, digits_split, feats):
    with pytest.raises(ValueError, match=r"run tiny/ft: penalty 'ft' needs its factors file"):
        train_run(spec("ft", "ft"), digits_split, [feats], str(tmp_path / "m.json"))


def test_logit_kd_from_probe_logits(tmp_path, digits_split, feats):
    logits = tmp_path / "logits.safetensors"
    probe_run(
        "p",
        "digits",
        "rp",
        ["rp"],
        "probe",
        {"kind": "probe", "C_grid": [1.0]},
        digits_split,
        [feats],
        str(tmp_path / "p.json"),
        logits_out=str(logits),
    )
    m = train_run(
        spec("logit_kd", "logit_kd"), digits_split, [feats], str(tmp_path / "m.json"), targets_path=str(logits)
    )
    assert m["final_penalty"] > 0 and 0 <= m["test_acc"] <= 1


@pytest.fixture(scope="module")
def binary_split(tmp_path_factory, text_tsv):
    """The tiny text task cut to two classes (animal, tool), with a text random-projection cache."""
    from aftbench.data.splits import make_split
    from aftbench.teachers.extract import extract

    d = tmp_path_factory.mktemp("binary")
    rows = [line for line in open(text_tsv).read().splitlines() if line.split("\t")[0] in ("animal", "tool")]
    (d / "two.tsv").write_text("\n".join(rows) + "\n")
    spec = {"loader": "tsv", "modality": "text", "args": {"path": str(d / "two.tsv")}}
    make_split(
        "two",
        {**spec, "n_train": 40, "n_val": 16, "n_test": 24, "split_seed": 0},
        str(d / "two.npz"),
        str(d / "two.json"),
    )
    rp = {"backend": "random_projection", "args": {"modality": "text", "dim": 16}}
    extract("rp", rp, str(d / "two.npz"), str(d / "rp.safetensors"), str(d / "rp.json"))
    return str(d / "two.npz"), str(d / "rp.safetensors")


def test_a_binary_probe_saves_one_logit_per_class(tmp_path, binary_split):
    """The probe's logits on a 2-class task are (n, 2) and their softmax is its predict_proba
    (one decision column would make logit_kd a pull toward 50/50)."""
    from safetensors.numpy import load_file
    from sklearn.linear_model import LogisticRegression

    from aftbench.train.probe import class_logits

    split, feats = binary_split
    logits = tmp_path / "logits.safetensors"
    probe = {"kind": "probe", "C_grid": [1.0]}
    probe_run(
        "p", "two", "rp", ["rp"], "probe", probe, split, [feats], str(tmp_path / "p.json"), logits_out=str(logits)
    )
    saved = load_file(str(logits))
    assert {k: v.shape[1] for k, v in saved.items()} == {"train": 2, "val": 2, "test": 2}
    x = np.random.default_rng(0).normal(size=(30, 4))
    clf = LogisticRegression().fit(x, np.arange(30) % 2)
    z = class_logits(clf, x)
    np.testing.assert_allclose(np.exp(z) / np.exp(z).sum(1, keepdims=True), clf.predict_proba(x), atol=1e-6)
    text = {**tiny_spec_dict("logit_kd", "logit_kd"), "dataset": "two", "teachers": ["rp"]}
    text["student"] = {"arch": "wordpiece_bag", "args": {"emb_dim": 8, "hidden": 8}}
    m = train_run(RunSpec.from_dict(text), split, [feats], str(tmp_path / "m.json"), targets_path=str(logits))
    assert m["final_penalty"] > 0 and 0 <= m["test_acc"] <= 1


@pytest.mark.parametrize("method,mode", [("kd", "raw"), ("aft", "rms")])
def test_phi_reaches_the_penalty_raw_or_over_its_train_rms(method, mode, digits_split, feats):
    """KD sees the cached features as they are (the reference's β); AFT (scale-free) keeps the
    train-RMS rescale; the run's record says which, with the RMS that converts β."""
    from aftbench.data.splits import load_split
    from aftbench.students.registry import build_student
    from aftbench.teachers.features import load_features
    from aftbench.train.loop import FitData, penalty_target

    run, split = spec(method, method), load_split(digits_split)
    data = FitData.encode(build_student(run.student, split), split, "train")
    target = penalty_target(run, split, data, [feats], None)
    raw = load_features([feats], split.sha256, ["rp"]).splits["train"]
    rms = float(np.sqrt((raw**2).mean()))
    assert target.scaling == {"mode": mode, "train_rms": pytest.approx(rms)}
    np.testing.assert_allclose(target.phi.numpy(), raw if mode == "raw" else raw / rms, rtol=1e-6)
