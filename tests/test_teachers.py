"""Every teacher backend, through the same code path as the pipeline, on tiny local inputs:
declared dim == produced dim, one row per example, row order preserved, features finite."""

import json
from pathlib import Path

import numpy as np
import pytest
from tiny_specs import TEACHER_SPECS

from aftbench.data.splits import load_split
from aftbench.teachers.extract import extract
from aftbench.teachers.features import load_features
from aftbench.teachers.registry import BACKENDS, build_teacher


@pytest.fixture(scope="module")
def specs(tiny_models):
    return {name: make(tiny_models) for name, make in TEACHER_SPECS.items()}


def test_every_backend_has_a_tiny_spec(specs):
    assert {s["backend"] for s in specs.values()} == set(BACKENDS)


@pytest.mark.parametrize("name", TEACHER_SPECS)
def test_teacher_dims_and_row_order(name, specs, digits_split, text_split):
    spec = specs[name]
    teacher = build_teacher(spec)
    split = load_split(digits_split if teacher.modality == "image" else text_split)
    inputs = getattr(split.parts["train"], "images" if teacher.modality == "image" else "texts")[:10]
    teacher.prepare(inputs)
    f = teacher.encode(inputs)
    assert f.shape == (10, teacher.dim)
    assert np.isfinite(f).all()
    assert f.std(0).mean() > 1e-4, "features do not vary across examples"
    if name == "gaussian_noise":  # ignores its input by design: check it is reproducible instead
        np.testing.assert_array_equal(build_teacher(spec).encode(inputs), f)
        return
    perm = np.random.default_rng(0).permutation(10)
    np.testing.assert_allclose(teacher.encode(inputs[perm]), f[perm], rtol=1e-4, atol=1e-5)


def test_extract_writes_cache_and_sidecar(tmp_path, digits_split):
    spec = {"backend": "random_projection", "args": {"dim": 6}}
    out = tmp_path / "rp.safetensors"
    extract("rp", spec, digits_split, str(out), str(tmp_path / "rp.json"), store="float32")
    meta = json.loads((tmp_path / "rp.json").read_text())
    split = load_split(digits_split)
    assert meta["split_sha256"] == split.sha256 and meta["dim"] == 6 and meta["spec"] == spec
    assert meta["shapes"] == {s: [len(split.parts[s].labels), 6] for s in ("train", "val", "test")}
    assert "torch" in meta["versions"] and meta["preprocessing"]
    cached = load_features([str(out), str(out)], split.sha256, ["rp", "rp"])
    feats = cached.splits
    assert feats["train"].shape == (len(split.parts["train"].labels), 12) and cached.dims == [6, 6]
    assert cached.pretrained == [False, False]  # a random projection is a control, not pre-trained
    # rows follow the split's order: recompute the first test rows directly
    direct = build_teacher(spec).encode(split.parts["test"].images[:5])
    np.testing.assert_allclose(feats["test"][:5, :6], direct, rtol=1e-5)


def test_workers_and_float16_storage(tmp_path, digits_split, specs):
    """Preprocessing in DataLoader workers gives exactly the in-process features; `store: auto`
    keeps float16 only within 1e-3 × RMS of float32, and loading widens back to float32."""
    spec = specs["timm"]
    split = load_split(digits_split)
    paths = {}
    for workers, store in ((0, "float32"), (2, "float32"), (2, "auto")):
        out = tmp_path / f"w{workers}_{store}.safetensors"
        extract(
            "t",
            spec,
            digits_split,
            str(out),
            str(out.with_suffix(".json")),
            workers=workers,
            store=store,
            batch_size=16,
        )
        paths[workers, store] = out
    f0, f2, fa = (load_features([str(paths[k])], split.sha256, ["t"]).splits for k in paths)
    for s in ("train", "val", "test"):
        np.testing.assert_array_equal(f0[s], f2[s])
        assert fa[s].dtype == np.float32
        assert np.linalg.norm(fa[s] - f0[s]) <= 1e-3 * np.linalg.norm(f0[s])
    meta = json.loads(paths[2, "auto"].with_suffix(".json").read_text())
    assert meta["stored"]["train"]["dtype"] == "float16" and meta["workers"] == 2 and meta["examples_per_second"] > 0
    assert meta["inputs_resident_on_device"] is False


def test_timm_tensor_transform_matches_pil(specs, digits_split):
    """GPU extraction applies timm's eval transform to batched tensors instead of per-image PIL:
    same transform objects, slightly different resampling kernels; features stay close."""
    split = load_split(digits_split)
    images = split.parts["train"].images[:16]
    pil = build_teacher({**specs["timm"], "args": {**specs["timm"]["args"], "transform_on": "pil"}}).encode(images)
    ten = build_teacher({**specs["timm"], "args": {**specs["timm"]["args"], "transform_on": "tensor"}}).encode(images)
    assert np.linalg.norm(ten - pil) / np.linalg.norm(pil) < 0.05


def test_store_dtype_keeps_float32_when_float16_would_lose():
    from aftbench.teachers.features import store_dtype

    tiny = np.full((10, 3), 1e-8, np.float32)  # below float16's smallest subnormal: would all become 0
    kept, info = store_dtype(tiny, "auto")
    assert kept.dtype == np.float32 and info["dtype"] == "float32"
    with pytest.raises(ValueError, match="do not fit float16"):
        store_dtype(np.full((2, 2), 1e6, np.float32), "float16")
    x = np.random.default_rng(0).standard_normal((50, 20)).astype(np.float32)
    half, info = store_dtype(x, "auto")
    assert half.dtype == np.float16 and info["relative_error"] <= 1e-3
    np.testing.assert_allclose(half.astype(np.float32), x, rtol=1e-3, atol=1e-4)


def test_random_effnet_needs_bn_recalibration(digits_split):
    """Without re-estimated BatchNorm statistics a random Lite0's eval features collapse."""
    split = load_split(digits_split)
    imgs = split.parts["train"].images[:64]
    spec = {
        "backend": "effnet_lite",
        "args": {"variant": "lite0", "image_size": 32, "pretrained": False, "bn_recalibration_batches": 0},
    }
    raw = build_teacher(spec)
    raw.prepare(imgs)
    spec["args"]["bn_recalibration_batches"] = 2
    fixed = build_teacher(spec)
    fixed.prepare(imgs)
    assert raw.encode(imgs).std(0).mean() < 0.1 * fixed.encode(imgs).std(0).mean()


def test_corrupt_or_stale_cache_is_named(tmp_path, digits_split):
    spec = {"backend": "random_projection", "args": {"dim": 3}}
    out = tmp_path / "rp.safetensors"
    extract("rp", spec, digits_split, str(out), str(tmp_path / "rp.json"))
    with pytest.raises(ValueError, match="rp.safetensors.*another split"):
        load_features([str(out)], "0" * 64, ["rp"])
    out.write_bytes(out.read_bytes()[:100])
    with pytest.raises(ValueError, match="corrupt feature cache .*rp.safetensors.*teacher 'rp'"):
        load_features([str(out)], load_split(digits_split).sha256, ["rp"])


def test_unknown_backend_is_named():
    with pytest.raises(KeyError, match="'timmm'.*known"):
        build_teacher({"backend": "timmm"})


@pytest.mark.parametrize(
    "name, pooling", [("hf_bert_cls", "cls"), ("hf_gpt2", "last_token"), ("hf_t5", "encoder_mean"), ("hf_text", "mean")]
)
def test_hf_pooling_is_declared_and_ignores_padding(name, pooling, specs):
    """The pooling each spec declares (or its architecture's default), and a text's features do
    not depend on how much padding its batch-mates force on it."""
    t = build_teacher(specs[name])
    assert t.pooling == pooling and pooling in t.preprocessing()
    short, long = "a small dog", "a large sweet fruit made of wood and metal by the cat"
    np.testing.assert_allclose(t.encode([short, long])[0], t.encode([short])[0], rtol=1e-4, atol=1e-5)


def test_hf_pooling_that_does_not_fit_is_refused(specs):
    with pytest.raises(ValueError, match="pooling 'cls' does not fit an encoder-decoder"):
        build_teacher({"backend": "hf", "args": {**specs["hf_t5"]["args"], "pooling": "cls"}})


def test_one_line_specs_parse():
    from aftbench.teachers.specs import parse_spec

    assert parse_spec("timm:vit_small_patch14_dinov2.lvd142m") == {
        "backend": "timm",
        "args": {"model": "vit_small_patch14_dinov2.lvd142m"},
    }
    assert parse_spec("open_clip:ViT-L-14/laion2b_s32b_b82k:text")["args"] == {
        "arch": "ViT-L-14",
        "pretrained": "laion2b_s32b_b82k",
        "modality": "text",
    }
    assert parse_spec("hf:google/flan-t5-base#encoder_mean")["args"] == {
        "model": "google/flan-t5-base",
        "pooling": "encoder_mean",
    }
    with pytest.raises(ValueError, match="unknown backend 'torchhub'"):
        parse_spec("torchhub:resnet50")


@pytest.mark.parametrize(
    "spec, fix",
    [
        ({"backend": "timm", "args": {"model": "test_vit.r160_in1k"}}, "checkpoint"),
        ({"backend": "hf", "args": {"model": "no-such-org/no-such-model"}}, "save_pretrained"),
    ],
)
def test_a_missing_download_says_what_to_fetch(spec, fix, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(FileNotFoundError, match=rf"(?s)could not be loaded.*Offline here\\?.*{fix}"):
        build_teacher(spec)


def test_length_bucketed_text_batches_come_back_in_stored_order(tmp_path, specs, text_split):
    """Texts are batched by length (less padding); the cache keeps the split's row order, and a
    random-init twin differs from its pre-trained teacher."""
    from aftbench.teachers.extract import batch_order
    from aftbench.teachers.features import load_features

    split = load_split(text_split)
    texts = split.parts["train"].texts
    assert not np.array_equal(batch_order(texts), np.arange(len(texts)))  # the order really changes
    out = tmp_path / "f.safetensors"
    extract("hf", specs["hf_text"], text_split, str(out), str(tmp_path / "f.json"), batch_size=3)
    cached = load_features([str(out)], split.sha256, ["hf"])
    one_by_one = np.stack([build_teacher(specs["hf_text"]).encode([t])[0] for t in texts])
    np.testing.assert_allclose(cached.splits["train"], one_by_one, rtol=2e-3, atol=2e-3)  # float16 storage
    rand = build_teacher(specs["hf_text_random"])
    assert not rand.pretrained and not np.allclose(rand.encode(texts[:4]), one_by_one[:4], atol=1e-2)


def test_wordllama_by_hand_matches_the_package(text_split):
    """The `wordllama` teacher reads the table and tokenizer itself; the package's own embed (its
    load() pointed at the wheel's folder, the workaround for its path bug) gives the same rows."""
    import wordllama
    from wordllama import WordLlama as Package

    from aftbench.teachers.text import WordLlama

    texts = [str(t) for t in load_split(text_split).parts["train"].texts[:20]] + [""]
    ours = WordLlama(dim=64).encode(texts)
    ref = Package.load(cache_dir=Path(wordllama.__file__).parent, disable_download=True, trunc_dim=64)
    np.testing.assert_allclose(ours, ref.embed(texts, norm=False), atol=1e-6, rtol=0)
