"""The CUDA path (skipped without a GPU; CI has none): extraction on the GPU matches the CPU,
bf16 autocast stays close, and training with `device: cuda` + `amp` runs, checkpoints and
resumes to the same result."""

import json

import numpy as np
import pytest
import torch

from aftbench.data.splits import load_split
from aftbench.teachers.extract import extract
from aftbench.teachers.features import load_features
from aftbench.train.loop import RunSpec, train_run

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")


def test_extraction_on_gpu_matches_cpu(tmp_path, digits_split, tiny_timm):
    spec = {"backend": "timm", "args": {"model": "test_vit.r160_in1k", "checkpoint": tiny_timm}}
    split = load_split(digits_split)
    feats = {}
    runs = {
        "cpu": {"device": "cpu"},
        "cuda": {"device": "cuda"},
        "amp": {"device": "cuda", "amp": True},
        "streamed": {"device": "cuda", "resident_gb": 0},
    }  # batches through DataLoader workers
    for name, kw in runs.items():
        out = tmp_path / f"{name}.safetensors"
        extract("t", spec, digits_split, str(out), str(out.with_suffix(".json")), store="float32", workers=2, **kw)
        feats[name] = load_features([str(out)], split.sha256, ["t"]).splits
        meta = json.loads(out.with_suffix(".json").read_text())
        assert meta["device"].startswith(kw["device"]) and meta["amp"] == kw.get("amp", False)
        assert meta["inputs_resident_on_device"] == (name in ("cuda", "amp"))
    for s in ("train", "val", "test"):
        np.testing.assert_allclose(feats["streamed"][s], feats["cuda"][s], rtol=1e-4, atol=1e-4)
        # the GPU runs the eval transform on tensors, the CPU on PIL images: close, not identical
        rel = np.linalg.norm(feats["cuda"][s] - feats["cpu"][s]) / np.linalg.norm(feats["cpu"][s])
        assert rel < 0.05, f"GPU features {rel:.3f} from CPU ones"
        rel = np.linalg.norm(feats["amp"][s] - feats["cpu"][s]) / np.linalg.norm(feats["cpu"][s])
        assert rel < 0.05, f"bf16 autocast drifted {rel:.3f} from float32"


def test_training_on_gpu_with_amp_resumes(tmp_path, digits_split, tiny_timm, monkeypatch):
    from aftbench.train.state import TrainState

    spec = RunSpec.from_dict(
        {
            "run_id": "gpu/stl",
            "dataset": "digits",
            "student_id": "vit",
            "student": {"arch": "timm", "args": {"model": "test_vit.r160_in1k", "checkpoint": tiny_timm}},
            "method_id": "stl",
            "method": {"kind": "train", "penalty": "none", "beta": 0.0},
            "teacher_set": "none",
            "teachers": [],
            "seed": 0,
            "train": {
                "steps": 12,
                "batch_size": 16,
                "lr": 1e-3,
                "log_every": 4,
                "device": "cuda",
                "amp": True,
                "checkpoint_every": 4,
            },
        }
    )
    full = train_run(spec, digits_split, [], str(tmp_path / "a" / "m.json"))
    assert full["device"].startswith("cuda") and np.isfinite(full["final_ce"])

    real = TrainState.save

    def die_at_8(state, path, fingerprint, seconds):
        real(state, path, fingerprint, seconds)
        if state.step == 8:
            raise KeyboardInterrupt

    monkeypatch.setattr(TrainState, "save", die_at_8)
    with pytest.raises(KeyboardInterrupt):
        train_run(spec, digits_split, [], str(tmp_path / "b" / "m.json"))
    monkeypatch.setattr(TrainState, "save", real)
    resumed = train_run(spec, digits_split, [], str(tmp_path / "b" / "m.json"))
    assert resumed["resumed_from_steps"] == [8]
    # GPU kernels may differ in the last bits between runs; the trajectories must still agree closely
    for a, b in zip(full["history"], resumed["history"], strict=False):
        assert a["step"] == b["step"] and abs(a["ce"] - b["ce"]) < 1e-2


def test_clip_two_tower_student_on_gpu(tmp_path, digits_split, tiny_open_clip):
    """The CLIP-style student on the GPU: its batched eval transform and both towers run on the
    device, features match the CPU's, and a bf16-autocast training run finishes with finite loss."""
    from aftbench.students.registry import build_student

    split = load_split(digits_split)
    student_spec = {"arch": "clip_two_tower", "args": {"model": tiny_open_clip, "combine": "outer", "proj_dim": 4}}
    torch.manual_seed(0)
    cpu = build_student(student_spec, split).eval()
    torch.manual_seed(0)
    gpu = build_student(student_spec, split).eval().cuda()
    x = cpu.encode_inputs(split.parts["val"])
    with torch.no_grad():
        h_cpu = cpu.features(x)
        h_gpu = gpu.features({k: v.cuda() for k, v in x.items()}).cpu()
    assert torch.linalg.vector_norm(h_gpu - h_cpu) / torch.linalg.vector_norm(h_cpu) < 1e-3
    spec = RunSpec.from_dict(
        {
            "run_id": "gpu/clip",
            "dataset": "digits",
            "student_id": "clip",
            "student": student_spec,
            "method_id": "stl",
            "method": {"kind": "train", "penalty": "none", "beta": 0.0},
            "teacher_set": "none",
            "teachers": [],
            "seed": 0,
            "train": {"steps": 6, "batch_size": 16, "lr": 1e-3, "device": "cuda", "amp": True},
        }
    )
    m = train_run(spec, digits_split, [], str(tmp_path / "m.json"))
    assert m["device"].startswith("cuda") and np.isfinite(m["final_ce"])


@pytest.mark.parametrize("tower", ["image", "text"])
def test_open_clip_extraction_on_gpu_matches_cpu(tmp_path, digits_split, tiny_open_clip, tower):
    spec = {"backend": "open_clip", "args": {"arch": tiny_open_clip, "modality": tower}}
    split = load_split(digits_split)
    feats = {}
    for dev in ("cpu", "cuda"):
        out = tmp_path / f"{dev}.safetensors"
        extract("t", spec, digits_split, str(out), str(out.with_suffix(".json")), store="float32", device=dev)
        feats[dev] = load_features([str(out)], split.sha256, ["t"]).splits
    for s in ("train", "val", "test"):
        rel = np.linalg.norm(feats["cuda"][s] - feats["cpu"][s]) / np.linalg.norm(feats["cpu"][s])
        assert rel < 1e-3, f"{tower} tower: GPU features {rel:.2g} from CPU ones"


def _cnn_run(digits_split, feats, **train):
    return RunSpec.from_dict(
        {
            "run_id": "gpu/aft",
            "dataset": "digits",
            "student_id": "cnn",
            "student": {"arch": "cnn", "args": {"width": 8, "depth": 2, "image_size": 16}},
            "method_id": "aft",
            "method": {"kind": "train", "penalty": "aft", "beta": 1.0, "args": {"rho_lr": 0.01}},
            "teacher_set": "rp",
            "teachers": ["rp"],
            "seed": 0,
            "train": {"steps": 30, "batch_size": 16, "lr": 1e-3, "log_every": 5, "device": "cuda", **train},
        }
    )


def test_streamed_batches_train_exactly_as_resident_ones(tmp_path, digits_split, feats):
    """aftbench.train.feed: a split too large for the device (resident_gb: 0) is gathered in
    page-locked memory and uploaded on a side stream, in the same order: the same run."""
    common = {"tf32": False, "channels_last": False}
    resident = train_run(_cnn_run(digits_split, feats, **common), digits_split, [feats], str(tmp_path / "r" / "m.json"))
    streamed = _cnn_run(digits_split, feats, resident_gb=0, **common)
    s = train_run(streamed, digits_split, [feats], str(tmp_path / "s" / "m.json"))
    assert resident["inputs_resident_on_device"] and not s["inputs_resident_on_device"]
    for a, b in zip(resident["history"], s["history"], strict=True):
        assert a["step"] == b["step"] and a["ce"] == pytest.approx(b["ce"], rel=1e-5, abs=1e-6)


def test_fast_paths_stay_within_tolerance(tmp_path, digits_split, feats):
    """TF32 and channels_last (their CUDA defaults) against float32 NCHW: the same run within 2%."""
    off = train_run(
        _cnn_run(digits_split, feats, tf32=False, channels_last=False), digits_split, [feats], str(tmp_path / "a.json")
    )
    on = train_run(_cnn_run(digits_split, feats), digits_split, [feats], str(tmp_path / "b.json"))
    assert on["fast_paths"] == {"tf32": True, "channels_last": True, "compile": False}
    assert abs(on["final_ce"] - off["final_ce"]) <= 0.02 * abs(off["final_ce"])
