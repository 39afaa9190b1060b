"""Every dataset loader on tiny files written in the real on-disk format, plus split rules."""

import gzip
import json

import numpy as np
import pytest
from PIL import Image

from aftbench.datasets import LOADERS, MissingDataError, build_split, load_split, make_split


def write_idx(path, arr):
    arr = np.asarray(arr, np.uint8)
    header = bytes([0, 0, 8, arr.ndim]) + np.asarray(arr.shape, ">u4").tobytes()
    with gzip.open(path, "wb") as f:
        f.write(header + arr.tobytes())


@pytest.fixture
def fmnist_root(tmp_path):
    rng = np.random.default_rng(0)
    for prefix, n in (("train", 60), ("t10k", 30)):
        write_idx(tmp_path / f"{prefix}-images-idx3-ubyte.gz", rng.integers(0, 256, (n, 28, 28)))
        write_idx(tmp_path / f"{prefix}-labels-idx1-ubyte.gz", np.arange(n) % 10)
    return tmp_path


@pytest.fixture
def wordnet_root(tmp_path):
    lines = ["  1 This software and database is being provided to you, the LICENSEE, by"]
    for i in range(40):
        lex = [5, 6, 18, 4][i % 4]  # animal, artifact, person, act
        lines.append(f"{i:08d} {lex:02d} n 01 lemma{i} 0 000 | gloss number {i} of class {lex}  ")
    (tmp_path / "data.noun").write_text("\n".join(lines) + "\n")
    return tmp_path


SVG = """<?xml version="1.0"?><svg xmlns="http://www.w3.org/2000/svg"><metadata><rdf:RDF><cc:Work>
<dc:title>{title}</dc:title><dc:description>{desc}</dc:description>
<dc:subject><rdf:Bag><rdf:li>{cat}</rdf:li></rdf:Bag></dc:subject></cc:Work></rdf:RDF></metadata></svg>"""


@pytest.fixture
def clipart_root(tmp_path):
    for cat in ("animals", "food"):
        for i in range(8):
            sub = "" if i % 2 else "sub/"
            (tmp_path / "png" / cat / sub).mkdir(parents=True, exist_ok=True)
            (tmp_path / "svg" / cat / sub).mkdir(parents=True, exist_ok=True)
            rgba = np.zeros((20, 30, 4), np.uint8)
            rgba[..., 0] = 200 if cat == "animals" else 10
            rgba[5:15, 5:25, 3] = 255  # opaque centre, transparent border
            Image.fromarray(rgba, "RGBA").save(tmp_path / "png" / cat / sub / f"art{i}.png")
            (tmp_path / "svg" / cat / sub / f"art{i}.svg").write_text(SVG.format(title=f"{cat[:-1]} art {i}", desc="", cat=cat))
    # a duplicate (same SVG bytes under another folder) and a symlinked PNG must be dropped
    (tmp_path / "svg/food/dup.svg").write_bytes((tmp_path / "svg/food/art1.svg").read_bytes())
    Image.new("RGB", (4, 4)).save(tmp_path / "png/food/dup.png")
    (tmp_path / "png/food/link.png").symlink_to(tmp_path / "png/food/art1.png")
    (tmp_path / "svg/food/link.svg").write_text(SVG.format(title="linked", desc="", cat="food"))
    return tmp_path


def test_fashion_mnist(fmnist_root):
    src = LOADERS["fashion_mnist"](root=str(fmnist_root))
    assert src.train.images.shape == (60, 28, 28, 1) and src.test.images.shape == (30, 28, 28, 1)
    assert src.train.labels.tolist()[:12] == [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 0, 1]


def test_wordnet_uses_gloss_only(wordnet_root):
    src = LOADERS["wordnet_supersenses"](root=str(wordnet_root), n_classes=3)
    assert len(src.classes) == 3 and len(src.train.labels) == 30
    assert not any("lemma" in t for t in src.train.texts)
    assert all(t.startswith("gloss number") for t in src.train.texts)


def test_openclipart(clipart_root):
    src = LOADERS["openclipart"](root=str(clipart_root), categories=["animals", "food"], image_size=16)
    assert src.classes == ["animals", "food"]
    assert np.bincount(src.train.labels).tolist() == [8, 8]  # duplicate and symlink dropped
    assert src.train.images.shape == (16, 16, 16, 3)
    img = src.train.images[0]
    assert (img[0, 0] == 255).all(), "transparent border must be composited on white"
    assert all("art" in t for t in src.train.texts) and not any(t.endswith(("animals", "food")) for t in src.train.texts)


def test_sklearn_digits_and_tsv(text_tsv):
    assert LOADERS["sklearn_digits"]().train.images.shape[1:] == (8, 8, 1)
    assert LOADERS["tsv"](path=text_tsv).classes == ["animal", "food", "tool"]


def test_every_loader_is_covered():
    assert set(LOADERS) == {"fashion_mnist", "wordnet_supersenses", "openclipart", "sklearn_digits", "tsv"}


def test_split_is_fixed_stratified_disjoint_and_seeded(tmp_path):
    spec = {"loader": "sklearn_digits", "n_train": 200, "n_val": 100, "n_test": 300, "split_seed": 3}
    a, b = tmp_path / "a.npz", tmp_path / "b.npz"
    make_split("d", spec, str(a), str(tmp_path / "a.json"))
    make_split("d", spec, str(b), str(tmp_path / "b.json"))
    sa, sb = load_split(str(a)), load_split(str(b))
    for s in ("train", "val", "test"):
        np.testing.assert_array_equal(sa.parts[s].images, sb.parts[s].images)
    assert [len(sa.parts[s].labels) for s in ("train", "val", "test")] == [200, 100, 300]
    # disjoint: digits has no official test split, so all three come from one pool
    idx = {s: set(sa.parts[s].index.tolist()) for s in ("train", "val", "test")}
    assert not (idx["train"] & idx["val"]) and not (idx["train"] & idx["test"]) and not (idx["val"] & idx["test"])
    counts = np.bincount(sa.parts["train"].labels)
    assert counts.max() - counts.min() <= 2  # stratified
    meta = json.loads((tmp_path / "a.json").read_text())
    assert meta["sizes"] == {"train": 200, "val": 100, "test": 300} and len(meta["sha256"]) == 64
    _, other = build_split({**spec, "split_seed": 4})
    assert set(other["train"].index.tolist()) != idx["train"]


def test_missing_dataset_says_how_to_install(tmp_path):
    with pytest.raises(MissingDataError, match="apt-get install dataset-fashion-mnist"):
        LOADERS["fashion_mnist"](root=str(tmp_path / "nope"))
    with pytest.raises(MissingDataError, match="wordnet-base"):
        LOADERS["wordnet_supersenses"](root=str(tmp_path / "nope"))
    with pytest.raises(MissingDataError, match="openclipart-png"):
        LOADERS["openclipart"](root=str(tmp_path / "nope"), categories=["animals"])


def test_corrupt_split_is_named(tmp_path):
    spec = {"loader": "sklearn_digits", "n_train": 50, "n_val": 20, "n_test": 30}
    p = tmp_path / "d.npz"
    make_split("d", spec, str(p), str(tmp_path / "d.json"))
    p.write_bytes(b"not a zip")
    with pytest.raises(ValueError, match="corrupt split artifact .*d.npz"):
        load_split(str(p))


def test_too_few_examples_is_an_error():
    with pytest.raises(ValueError, match="asked for"):
        build_split({"loader": "sklearn_digits", "n_train": 5000, "n_val": 10, "n_test": 10})
