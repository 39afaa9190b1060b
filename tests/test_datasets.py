"""Every dataset loader on tiny files written in the real on-disk format, plus split rules."""

import gzip
import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from aftbench.core.io import file_sha256
from aftbench.data.registry import LOADERS
from aftbench.data.sources import LazyImages, MissingDataError
from aftbench.data.splits import build_split, load_split, make_split


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
            (tmp_path / "svg" / cat / sub / f"art{i}.svg").write_text(
                SVG.format(title=f"{cat[:-1]} art {i}", desc="", cat=cat)
            )
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
    assert all("art" in t for t in src.train.texts) and not any(
        t.endswith(("animals", "food")) for t in src.train.texts
    )


def test_sklearn_digits_and_tsv(text_tsv):
    assert LOADERS["sklearn_digits"]().train.images.shape[1:] == (8, 8, 1)
    assert LOADERS["tsv"](path=text_tsv).classes == ["animal", "food", "tool"]


@pytest.mark.parametrize("name", sorted(LOADERS))
def test_every_loader_declares_what_it_produces(name):
    """Each registered loader says which modality it yields (checked against a dataset's declared
    `modality` at validation) and documents itself; a new loader needs nothing else here."""
    from aftbench.core.declare import summarize

    produces = summarize(LOADERS[name])["produces"]
    assert produces in ("image", "text", "image+text") or isinstance(produces, dict), name
    assert (LOADERS[name].__doc__ or "").strip(), f"loader {name!r} has no docstring"


# ----------------------------------------------------------------------------- your own data (docs/configuration.md "Add a dataset")
@pytest.fixture(scope="module")
def png_class_folders(tmp_path_factory):
    """sklearn digits written as PNG files, one folder per class, train/ and test/: the layout
    docs/configuration.md's "Add a dataset" describes (MNIST as PNG class folders is the same)."""
    from PIL import Image
    from sklearn.datasets import load_digits

    root = tmp_path_factory.mktemp("pngdigits")
    d = load_digits()
    images = (d.images * (255.0 / 16.0)).round().astype(np.uint8)
    rows = []
    for i in range(200):
        part = "test" if i % 4 == 0 else "train"
        folder = root / part / f"digit{d.target[i]}"
        folder.mkdir(parents=True, exist_ok=True)
        Image.fromarray(images[i], mode="L").save(folder / f"{i:04d}.png")
        rows.append((part, f"{part}/digit{d.target[i]}/{i:04d}.png", f"digit{d.target[i]}", i))
    return root, rows, images


def test_image_class_folders_need_no_text_fields(png_class_folders, tmp_path):
    root, rows, images = png_class_folders
    spec = {
        "loader": "hf_dataset",
        "modality": "image",
        "args": {"path": str(root), "image_field": "image"},
        "n_train": 60,
        "n_val": 20,
        "n_test": 30,
    }
    make_split("pngdigits", spec, str(tmp_path / "s.npz"), str(tmp_path / "s.json"))
    meta = json.loads((tmp_path / "s.json").read_text())
    assert meta["modality"] == "image" and meta["classes"] == [f"digit{k}" for k in range(10)]
    split = load_split(str(tmp_path / "s.npz"))
    assert split.parts["train"].texts is None and split.parts["train"].images.shape[1:] == (8, 8, 3)
    # every stored image is one of the PNGs, with its folder's label
    by_pixels = {images[i].tobytes(): label for _, _, label, i in rows}
    train = split.parts["train"]
    for img, y in zip(train.images[:10], train.labels[:10], strict=False):
        assert by_pixels[np.ascontiguousarray(img[..., 0]).tobytes()] == meta["classes"][y]


def test_a_table_of_image_paths_with_class_names(png_class_folders, tmp_path):
    import pandas as pd

    root, rows, images = png_class_folders
    table = pd.DataFrame([(path, label) for part, path, label, _ in rows if part == "train"], columns=["file", "label"])
    table.to_csv(root / "train.csv", index=False)
    src = LOADERS["hf_dataset"](
        path="csv", data_files={"train": str(root / "train.csv")}, image_field="file", test_split=None
    )
    assert src.modality == "image" and src.classes == sorted(set(table.label)) and src.train.texts is None
    first = np.asarray(src.train.images[:1])[0]
    i = next(i for part, path, _, i in rows if path == table.file[0])
    assert (first[..., 0] == images[i]).all() and src.classes[src.train.labels[0]] == table.label[0]
    bad = table.assign(file=["nowhere.png"] * len(table))
    bad.to_csv(tmp_path / "bad.csv", index=False)
    src = LOADERS["hf_dataset"](
        path="csv", data_files={"train": str(tmp_path / "bad.csv")}, image_field="file", test_split=None
    )
    with pytest.raises(FileNotFoundError, match=r"image 'nowhere.png' \(row 0, column 'file'\) not found"):
        np.asarray(src.train.images[:1])


def test_a_table_of_texts(tmp_path):
    import pandas as pd

    pd.DataFrame(
        {"sentence": ["a cat", "a dog", "a hammer", "a saw"], "label": ["animal", "animal", "tool", "tool"]}
    ).to_parquet(tmp_path / "train.parquet")
    src = LOADERS["hf_dataset"](
        path="parquet", data_files={"train": str(tmp_path / "train.parquet")}, text_fields=["sentence"], test_split=None
    )
    assert src.modality == "text" and src.classes == ["animal", "tool"] and src.train.labels.tolist() == [0, 0, 1, 1]


def test_declared_modality_must_match_the_data(png_class_folders, tmp_path):
    root, _, _ = png_class_folders
    spec = {
        "loader": "hf_dataset",
        "modality": "image+text",
        "args": {"path": str(root), "image_field": "image"},
        "n_train": 20,
        "n_val": 10,
        "n_test": 10,
    }
    with pytest.raises(
        ValueError,
        match=r"datasets\.mine\.modality: declared 'image\+text', but loader "
        r"'hf_dataset' produced 'image'",
    ):
        make_split("mine", spec, str(tmp_path / "s.npz"), str(tmp_path / "s.json"))
    assert not (tmp_path / "s.json").exists()
    with pytest.raises(ValueError, match="give `text_fields`"):
        LOADERS["hf_dataset"](path=str(root))


# ----------------------------------------------------------------------------- library datasets
@pytest.fixture
def cifar10_root(tmp_path, monkeypatch):
    """CIFAR-10 in its real on-disk format (python pickles of N×3072 uint8 rows). Only
    torchvision's md5 check is relaxed: these are not the official bytes."""
    import pickle

    from torchvision.datasets import CIFAR10

    d = tmp_path / "cifar-10-batches-py"
    d.mkdir()
    rng = np.random.default_rng(0)
    written = {}
    for fname, n in [
        ("data_batch_1", 40),
        ("data_batch_2", 40),
        ("data_batch_3", 40),
        ("data_batch_4", 40),
        ("data_batch_5", 40),
        ("test_batch", 50),
    ]:
        data = rng.integers(0, 256, (n, 3072), dtype=np.uint8)
        labels = [i % 10 for i in range(n)]
        with open(d / fname, "wb") as f:
            pickle.dump({"data": data, "labels": labels}, f)  # str keys, as torchvision reads them
        written[fname] = data.reshape(n, 3, 32, 32).transpose(0, 2, 3, 1)
    with open(d / "batches.meta", "wb") as f:
        pickle.dump({"label_names": [f"class{i}" for i in range(10)]}, f)
    monkeypatch.setattr(CIFAR10, "train_list", [[f, None] for f, _ in CIFAR10.train_list])
    monkeypatch.setattr(CIFAR10, "test_list", [[f, None] for f, _ in CIFAR10.test_list])
    monkeypatch.setattr(CIFAR10, "meta", {**CIFAR10.meta, "md5": None})
    train = np.concatenate([written[f"data_batch_{i}"] for i in range(1, 6)])
    return tmp_path, train, written["test_batch"]


def test_torchvision_cifar10_rows_and_order(cifar10_root, tmp_path):
    root, train_images, test_images = cifar10_root
    src = LOADERS["torchvision"](name="cifar10", root=str(root))
    assert src.classes == [f"class{i}" for i in range(10)] and len(src.train.labels) == 200
    spec = {
        "loader": "torchvision",
        "modality": "image",
        "args": {"name": "cifar10", "root": str(root)},
        "n_train": 50,
        "n_val": 20,
        "n_test": 30,
    }
    make_split("c10", spec, str(tmp_path / "s.npz"), str(tmp_path / "s.json"))
    s = load_split(str(tmp_path / "s.npz"))
    for part, source in (("train", train_images), ("val", train_images), ("test", test_images)):
        p = s.parts[part]
        assert p.images.shape[1:] == (32, 32, 3)
        np.testing.assert_array_equal(p.images, source[p.index])  # each row is the source row it names


def test_torchvision_pets_resized_lazily(tmp_path):
    """Oxford-IIIT Pets in its real layout (images/*.jpg + annotations/{trainval,test}.txt),
    variable image sizes stored at one square size."""
    root = tmp_path / "oxford-iiit-pet"
    (root / "images").mkdir(parents=True)
    (root / "annotations").mkdir()
    rng = np.random.default_rng(0)
    for split, n in (("trainval", 12), ("test", 6)):
        lines = []
        for i in range(n):
            breed, cls = ("Abyssinian", 1) if i % 2 else ("beagle", 2)
            name = f"{breed}_{split}{i}"
            Image.fromarray(rng.integers(0, 256, (20 + i, 30, 3), dtype=np.uint8)).save(root / "images" / f"{name}.jpg")
            lines.append(f"{name} {cls} {1 if breed[0].isupper() else 2} 1")
        (root / "annotations" / f"{split}.txt").write_text("\n".join(lines) + "\n")
    src = LOADERS["torchvision"](name="oxford_pets", root=str(tmp_path), image_size=16)
    assert src.classes == ["Abyssinian", "Beagle"] and len(src.train.labels) == 12 and len(src.test.labels) == 6
    assert np.asarray(src.train.images[np.array([0, 3])]).shape == (2, 16, 16, 3)


@pytest.fixture
def cifar100_root(tmp_path, monkeypatch):
    """CIFAR-100 in its real on-disk format: cifar-100-python/{train,test,meta} pickles with both
    fine_labels and coarse_labels (the coarse ones differ, so reading the wrong key shows). Only
    torchvision's md5 checks are relaxed: these are not the official bytes."""
    import pickle

    from torchvision.datasets import CIFAR100

    d = tmp_path / "cifar-100-python"
    d.mkdir()
    rng = np.random.default_rng(1)
    written = {}
    for fname, n in (("train", 48), ("test", 24)):
        data = rng.integers(0, 256, (n, 3072), dtype=np.uint8)
        fine = [(3, 17, 42, 99)[i % 4] for i in range(n)]
        with open(d / fname, "wb") as f:
            pickle.dump(
                {
                    "filenames": [f"img_{fname}_{i}.png" for i in range(n)],
                    "batch_label": f"{fname} batch",
                    "fine_labels": fine,
                    "coarse_labels": [lab // 5 for lab in fine],
                    "data": data,
                },
                f,
            )
        written[fname] = data.reshape(n, 3, 32, 32).transpose(0, 2, 3, 1), np.array(fine)
    with open(d / "meta", "wb") as f:
        pickle.dump(
            {
                "fine_label_names": [f"fine{i}" for i in range(100)],
                "coarse_label_names": [f"coarse{i}" for i in range(20)],
            },
            f,
        )
    monkeypatch.setattr(CIFAR100, "train_list", [[f, None] for f, _ in CIFAR100.train_list])
    monkeypatch.setattr(CIFAR100, "test_list", [[f, None] for f, _ in CIFAR100.test_list])
    monkeypatch.setattr(CIFAR100, "meta", {**CIFAR100.meta, "md5": None})
    return tmp_path, written


def test_torchvision_cifar100_fine_labels_rows_and_order(cifar100_root, tmp_path):
    root, written = cifar100_root
    src = LOADERS["torchvision"](name="cifar100", root=str(root))
    assert src.classes == [f"fine{i}" for i in range(100)]
    for pool, (images, labels) in ((src.train, written["train"]), (src.test, written["test"])):
        np.testing.assert_array_equal(pool.labels, labels)  # fine labels, in file order
        np.testing.assert_array_equal(np.asarray(pool.images), images)
    resized = LOADERS["torchvision"](name="cifar100", root=str(root), image_size=16)
    assert np.asarray(resized.test.images[np.array([0, 5])]).shape == (2, 16, 16, 3)
    spec = {
        "loader": "torchvision",
        "modality": "image",
        "args": {"name": "cifar100", "root": str(root)},
        "n_train": 24,
        "n_val": 12,
        "n_test": 12,
    }
    make_split("c100", spec, str(tmp_path / "s.npz"), str(tmp_path / "s.json"))
    s = load_split(str(tmp_path / "s.npz"))
    assert s.classes == src.classes
    for part, (images, labels) in (("train", written["train"]), ("val", written["train"]), ("test", written["test"])):
        p = s.parts[part]
        np.testing.assert_array_equal(p.images, images[p.index])  # each row is the source row it names
        np.testing.assert_array_equal(p.labels, labels[p.index])


# Library datasets stored as image files. Image k of a dataset is grey with value fill(k) in a
# middle band and black / white outer bands, at two scales and both orientations: resizing its
# shorter side to TV_SIZE and centre-cropping must keep only the band, so each stored row shows
# which file it came from (JPEG is lossy, hence a tolerance).
TV_SIZE = 12


def fill(k):
    return 16 + 6 * k


def banded_jpeg(path, k):
    s = 1 + k % 2
    a = np.full((24 * s, 72 * s), fill(k), np.uint8)
    a[:, : 16 * s], a[:, 56 * s :] = 0, 255
    if k % 3 == 0:
        a = a.T
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.stack([a] * 3, axis=-1)).save(path)  # RGB JPEG, as the datasets ship


def write_flowers102(root, monkeypatch):
    """flowers-102/{jpg/image_%05d.jpg, imagelabels.mat, setid.mat}: 1-based labels of all images
    by id, and per split (trnid / valid / tstid) 1-based ids in the order torchvision keeps."""
    from scipy.io import savemat
    from torchvision.datasets import Flowers102

    base = root / "flowers-102"
    labels = np.array([(1, 2, 77, 102)[i % 4] for i in range(24)], np.uint8)  # label of image id i + 1
    for i in range(24):
        banded_jpeg(base / "jpg" / f"image_{i + 1:05d}.jpg", i)
    ids = {"trnid": np.arange(8, 0, -1), "valid": np.arange(9, 17), "tstid": np.arange(24, 16, -1)}
    savemat(base / "imagelabels.mat", {"labels": labels})
    savemat(base / "setid.mat", {k: v.astype(np.uint16) for k, v in ids.items()})
    monkeypatch.setattr(Flowers102, "_file_dict", {k: (f, None) for k, (f, _) in Flowers102._file_dict.items()})
    tr, te = np.concatenate([ids["trnid"], ids["valid"]]) - 1, ids["tstid"] - 1  # rows of `labels`, in pool order
    assert len(Flowers102.classes) == 102 and Flowers102.classes[0] == "pink primrose"
    return list(Flowers102.classes), (fill(tr), labels[tr] - 1), (fill(te), labels[te] - 1)


def write_dtd(root, monkeypatch):
    """dtd/dtd/{images/<class>/<class>_%04d.jpg, labels/{train,val,test}1.txt} (partition 1),
    one '<class>/<file>' per line; torchvision sorts the class names it finds in the split."""
    data = root / "dtd" / "dtd"
    (data / "labels").mkdir(parents=True)
    classes, k, want = ["banded", "cracked", "zigzagged"], 0, {}
    for split in ("train", "val", "test"):
        lines, fills, labels = [], [], []
        for c, cls in enumerate(classes):
            for _ in range(3):
                banded_jpeg(data / "images" / cls / f"{cls}_{k:04d}.jpg", k)
                lines.append(f"{cls}/{cls}_{k:04d}.jpg")
                fills.append(fill(k))
                labels.append(c)
                k += 1
        (data / "labels" / f"{split}1.txt").write_text("\n".join(lines) + "\n")
        want[split] = fills, labels
    return classes, tuple(want["train"][i] + want["val"][i] for i in (0, 1)), want["test"]


def write_food101(root, monkeypatch):
    """food-101/{images/<class>/<id>.jpg, meta/{train,test}.json}: each json maps a class to its
    '<class>/<id>' paths; torchvision keeps the json's order and numbers the sorted class names."""
    base = root / "food-101"
    (base / "meta").mkdir(parents=True)
    classes, k, want = ["apple_pie", "baby_back_ribs", "waffles"], 0, {}
    for split, per_class in (("train", 4), ("test", 2)):
        meta, fills, labels = {}, [], []
        for c, cls in enumerate(classes):
            meta[cls] = []
            for _ in range(per_class):
                banded_jpeg(base / "images" / cls / f"{100300 + 7 * k}.jpg", k)
                meta[cls].append(f"{cls}/{100300 + 7 * k}")
                fills.append(fill(k))
                labels.append(c)
                k += 1
        (base / "meta" / f"{split}.json").write_text(json.dumps(meta))
        want[split] = fills, labels
    return classes, want["train"], want["test"]


def write_fgvc_aircraft(root, monkeypatch):
    """fgvc-aircraft-2013b/data/{images/%07d.jpg, variants.txt, images_variant_{trainval,test}.txt}:
    classes in variants.txt order (not sorted), '<id> <variant name with spaces>' per image line."""
    data = root / "fgvc-aircraft-2013b" / "data"
    data.mkdir(parents=True)
    variants = ["707-320", "A340-500", "Cessna 172", "F/A-18", "DC-3"]
    (data / "variants.txt").write_text("\n".join(variants) + "\n")
    k, want = 0, {}
    for split, n in (("trainval", 15), ("test", 10)):
        lines, fills, labels = [], [], []
        for i in range(n):
            c = (i * 2) % 5  # classes interleaved, not grouped
            banded_jpeg(data / "images" / f"{1025794 + k:07d}.jpg", k)
            lines.append(f"{1025794 + k:07d} {variants[c]}")
            fills.append(fill(k))
            labels.append(c)
            k += 1
        (data / f"images_variant_{split}.txt").write_text("\n".join(lines) + "\n")
        want[split] = fills, labels
    return variants, want["trainval"], want["test"]


TV_FILE_DATASETS = {
    "flowers102": write_flowers102,
    "dtd": write_dtd,
    "food101": write_food101,
    "fgvc_aircraft": write_fgvc_aircraft,
}


def assert_fills(images, fills):
    """Row k of `images` is the band of the file written with fill(k) (JPEG: within 2 grey levels)."""
    fills = np.asarray(fills)
    assert images.shape == (len(fills), TV_SIZE, TV_SIZE, 3)
    np.testing.assert_allclose(images, np.broadcast_to(fills[:, None, None, None], images.shape), rtol=0, atol=2)


@pytest.mark.parametrize("name", sorted(TV_FILE_DATASETS))
def test_torchvision_file_datasets_rows_labels_and_order(name, tmp_path, monkeypatch):
    """Real layouts of Flowers-102 / DTD / Food-101 / FGVC-Aircraft: class list as torchvision
    reports it, train pool = the TORCHVISION entry's train parts in order (Flowers and DTD:
    train + val), official test split, labels and images row by row, also through a split."""
    root = tmp_path / "data"
    classes, (train_fills, train_labels), (test_fills, test_labels) = TV_FILE_DATASETS[name](root, monkeypatch)
    src = LOADERS["torchvision"](name=name, root=str(root), image_size=TV_SIZE)
    assert src.classes == classes
    assert src.train.labels.tolist() == list(train_labels) and src.test.labels.tolist() == list(test_labels)
    assert_fills(np.asarray(src.train.images), train_fills)
    assert_fills(np.asarray(src.test.images), test_fills)

    n_cls_train, n_cls_test = len(set(train_labels)), len(set(test_labels))
    spec = {
        "loader": "torchvision",
        "modality": "image",
        "args": {"name": name, "root": str(root), "image_size": TV_SIZE},
        "n_train": len(train_labels) - 2 * n_cls_train,
        "n_val": n_cls_train,
        "n_test": len(test_labels) - n_cls_test,
    }
    make_split(name, spec, str(tmp_path / "s.npz"), str(tmp_path / "s.json"))
    s = load_split(str(tmp_path / "s.npz"))
    assert s.classes == classes
    for part, fills, labels in (
        ("train", train_fills, train_labels),
        ("val", train_fills, train_labels),
        ("test", test_fills, test_labels),
    ):
        p = s.parts[part]
        assert p.labels.tolist() == np.asarray(labels)[p.index].tolist()
        assert_fills(p.images, np.asarray(fills)[p.index])


def test_torchvision_split_with_other_classes_is_refused(tmp_path, monkeypatch):
    """DTD numbers the classes of each split's own file: a test file lacking a class would shift
    every later label id, silently. The loader refuses it, naming the split and the class."""
    write_dtd(tmp_path, monkeypatch)
    labels = tmp_path / "dtd" / "dtd" / "labels" / "test1.txt"
    labels.write_text("".join(line + "\n" for line in labels.read_text().split() if not line.startswith("cracked/")))
    with pytest.raises(ValueError, match=r"(?s)DTD.*split \{'split': 'test'\} has classes \['cracked'\].*complete"):
        LOADERS["torchvision"](name="dtd", root=str(tmp_path))


def test_torchvision_missing_download_says_what_to_do(tmp_path):
    with pytest.raises(MissingDataError, match=r"(?s)CIFAR100.*not found under.*download: true"):
        LOADERS["torchvision"](name="cifar100", root=str(tmp_path))
    with pytest.raises(KeyError, match="unknown torchvision dataset 'cifar1000'"):
        LOADERS["torchvision"](name="cifar1000", root=str(tmp_path))


@pytest.fixture
def hf_folder(tmp_path):
    """A dataset repo folder as on the hub (data/{train,test}-*.parquet with the datasets
    library's own schema metadata): `datasets.load_dataset(folder)` reads it like `imdb`."""
    import io

    import datasets as hfd

    feats = hfd.Features(
        {
            "premise": hfd.Value("string"),
            "hypothesis": hfd.Value("string"),
            "image": hfd.Image(),
            "label": hfd.ClassLabel(names=["no", "yes"]),
        }
    )
    (tmp_path / "data").mkdir()
    for split, n in (("train", 16), ("test", 8)):
        rows = {
            "premise": [f"{split} premise {i}" for i in range(n)],
            "hypothesis": [f"hyp {i}" for i in range(n)],
            "image": [],
            "label": [i % 2 for i in range(n)],
        }
        for i in range(n):
            buf = io.BytesIO()
            Image.fromarray(np.full((10 + i, 12, 3), i * 10, np.uint8)).save(buf, format="PNG")
            rows["image"].append({"bytes": buf.getvalue(), "path": None})
        hfd.Dataset.from_dict(rows, features=feats).to_parquet(
            str(tmp_path / "data" / f"{split}-00000-of-00001.parquet")
        )
    return str(tmp_path)


def test_hf_dataset_text_pairs_and_images(hf_folder, tmp_path):
    src = LOADERS["hf_dataset"](path=hf_folder, text_fields=["premise", "hypothesis"])
    assert src.modality == "text" and src.classes == ["no", "yes"]
    assert src.train.texts[3] == "train premise 3 [SEP] hyp 3" and list(src.test.labels[:4]) == [0, 1, 0, 1]
    ve = LOADERS["hf_dataset"](path=hf_folder, text_fields=["hypothesis"], image_field="image", image_size=8)
    assert ve.modality == "image+text"
    imgs = np.asarray(ve.train.images[np.array([5, 2])])
    assert imgs.shape == (2, 8, 8, 3) and imgs[0].mean() == 50 and imgs[1].mean() == 20  # rows kept in order
    with pytest.raises(KeyError, match=r"no column\(s\) \['sentence'\]"):
        LOADERS["hf_dataset"](path=hf_folder, text_fields=["sentence"])


def _config_entries(loader):
    import yaml

    config = yaml.safe_load((Path(__file__).parents[1] / "config.yaml").read_text())
    return {name: spec for name, spec in config["datasets"].items() if spec["loader"] == loader}


HF_ENTRIES = _config_entries("hf_dataset")


def write_hub_layout(root, args, n=12):
    """A hub dataset repo as the datasets library reads it: parquet shards per split under a
    folder per config, and a README whose `configs:` YAML maps config names and splits to files
    (GLUE on the hub is laid out so: nyu-mll/glue with `name: mnli`, split validation_matched).
    The columns are exactly those the config entry names; row k's texts and image encode k."""
    import io

    import datasets as hfd
    import yaml

    config_name = args.get("name") or "default"
    feats = {f: hfd.Value("string") for f in args["text_fields"]}
    feats[args.get("label_field", "label")] = hfd.ClassLabel(names=["c0", "c1", "c2"])
    if args.get("image_field"):
        feats[args["image_field"]] = hfd.Image()
    splits = [args.get("train_split", "train"), args.get("test_split", "test")]
    files = []
    for split in splits:
        rows = {f: [f"{split} {f} {k}" for k in range(n)] for f in args["text_fields"]}
        rows[args.get("label_field", "label")] = [k % 3 for k in range(n)]
        if args.get("image_field"):
            rows[args["image_field"]] = []
            for k in range(n):
                buf = io.BytesIO()
                Image.fromarray(np.full((20, 30, 3), 10 * k, np.uint8)).save(buf, format="PNG")
                rows[args["image_field"]].append({"bytes": buf.getvalue(), "path": None})
        (root / config_name).mkdir(parents=True, exist_ok=True)
        hfd.Dataset.from_dict(rows, features=hfd.Features(feats)).to_parquet(
            str(root / config_name / f"{split}-00000-of-00001.parquet")
        )
        files.append({"split": split, "path": f"{config_name}/{split}-*"})
    card = {"configs": [{"config_name": config_name, "data_files": files}]}
    (root / "README.md").write_text("---\n" + yaml.safe_dump(card) + "---\n")


@pytest.mark.parametrize("entry", sorted(HF_ENTRIES))
def test_config_hf_datasets_read_their_hub_layout(entry, tmp_path):
    """Each Hugging Face dataset of config.yaml, its entry's own args (fields, config name, splits)
    with `path` pointed at a local copy in the hub layout: texts joined in the listed order,
    labels and images row for row, modality as declared."""
    spec = HF_ENTRIES[entry]
    args = dict(spec["args"])
    write_hub_layout(tmp_path, args)
    src = LOADERS["hf_dataset"](**{**args, "path": str(tmp_path)})
    assert src.modality == spec["modality"] and src.classes == ["c0", "c1", "c2"]
    test_split = args.get("test_split", "test")
    for pool, split in ((src.train, args.get("train_split", "train")), (src.test, test_split)):
        assert list(pool.labels) == [k % 3 for k in range(12)]
        assert pool.texts[7] == " [SEP] ".join(f"{split} {f} 7" for f in args["text_fields"])
        if args.get("image_field"):
            imgs = np.asarray(pool.images[np.array([7, 2])])
            assert imgs.shape == (2, args["image_size"], args["image_size"], 3)
            assert imgs[0].mean() == 70 and imgs[1].mean() == 20


def test_hf_dataset_missing_says_what_to_do(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    with pytest.raises(MissingDataError, match="could not be loaded.*Offline"):
        LOADERS["hf_dataset"](path="no-such-org/no-such-dataset", text_fields=["text"], cache_dir=str(tmp_path))


def test_hf_dataset_revision_pins_the_hub_version(monkeypatch):
    """`revision` reaches datasets.load_dataset (a hub dataset's version: the split spec holds it)."""
    import datasets

    seen = {}

    def load_dataset(*args, **kwargs):
        seen.update(kwargs)
        raise FileNotFoundError("offline")

    monkeypatch.setattr(datasets, "load_dataset", load_dataset)
    with pytest.raises(MissingDataError):
        LOADERS["hf_dataset"](path="org/data", text_fields=["text"], revision="v1.2")
    assert seen["revision"] == "v1.2"


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
    with pytest.raises(ValueError, match=r"split .*d.npz is not the split that was drawn.*rm -r .*d.npz"):
        load_split(str(p))
    with pytest.raises(ValueError, match="corrupt split artifact .*d.npz"):  # unverified: numpy's error, named
        load_split(str(p), verify=False)


def test_a_split_swapped_for_another_seeds_split_is_refused(tmp_path):
    """The same shapes, the same classes, other examples: only the digest tells them apart, and the
    feature caches' split check trusts the digest the sidecar records."""
    spec = {"loader": "sklearn_digits", "n_train": 50, "n_val": 20, "n_test": 30}
    make_split("d", spec, str(tmp_path / "d.npz"), str(tmp_path / "d.json"))
    make_split("d", {**spec, "split_seed": 1}, str(tmp_path / "e.npz"), str(tmp_path / "e.json"))
    (tmp_path / "e.npz").replace(tmp_path / "d.npz")
    with pytest.raises(ValueError, match=r"d.npz is not the split that was drawn.*another split seed"):
        load_split(str(tmp_path / "d.npz"))
    for part in ("train", "val", "test"):  # images swapped, the npz kept
        (tmp_path / "e.images" / f"{part}.npy").replace(tmp_path / "d.images" / f"{part}.npy")
    with pytest.raises(ValueError, match=r"is not the split that was drawn"):
        load_split(str(tmp_path / "d.npz"))


def test_too_few_examples_is_an_error():
    with pytest.raises(ValueError, match=r"n_train \+ n_val \+ n_test = 5000 \+ 10 \+ 10 exceeds the 1797 examples"):
        build_split({"loader": "sklearn_digits", "n_train": 5000, "n_val": 10, "n_test": 10})


def test_split_images_are_files_beside_the_npz_read_memory_mapped(tmp_path):
    spec = {"loader": "sklearn_digits", "n_train": 50, "n_val": 20, "n_test": 30}
    p = tmp_path / "d.npz"
    make_split("d", spec, str(p), str(tmp_path / "d.json"))
    folder = tmp_path / "d.images"
    assert sorted(f.name for f in folder.iterdir()) == ["test.npy", "train.npy", "val.npy"]
    with np.load(p) as z:
        assert not any(k.endswith("_images") for k in z.files)
    s = load_split(str(p))
    _, parts = build_split(spec)
    for part in ("train", "val", "test"):
        assert isinstance(s.parts[part].images, np.memmap) and s.parts[part].images.dtype == np.uint8
        np.testing.assert_array_equal(s.parts[part].images, parts[part].images)
    # the recorded digest covers the images too, so features extracted from other images are stale
    meta = json.loads((tmp_path / "d.json").read_text())
    assert meta["sha256"] == file_sha256(p, *(folder / f"{part}.npy" for part in ("train", "val", "test")))
    assert meta["sha256"] != file_sha256(p)
    # copy-on-write: writing into a loaded split never reaches the file
    s.parts["train"].images[0] = 0
    assert load_split(str(p)).parts["train"].images[0].any()


def test_missing_or_corrupt_split_images_are_named(tmp_path):
    spec = {"loader": "sklearn_digits", "n_train": 50, "n_val": 20, "n_test": 30}
    p = tmp_path / "d.npz"
    make_split("d", spec, str(p), str(tmp_path / "d.json"))
    val = tmp_path / "d.images" / "val.npy"
    val.write_bytes(val.read_bytes()[:-100])
    with pytest.raises(ValueError, match=r"d.npz is not the split that was drawn"):
        load_split(str(p))
    with pytest.raises(ValueError, match=r"corrupt split images .*val.npy.*Delete .*d.npz and rerun"):
        load_split(str(p), verify=False)
    np.save(val, np.zeros((19, 8, 8, 1), np.uint8))  # one row short
    with pytest.raises(
        ValueError, match=r"corrupt split images .*val.npy: uint8 \(19, 8, 8, 1\), expected uint8 \(20, 8, 8, 1\)"
    ):
        load_split(str(p), verify=False)
    val.unlink()
    with pytest.raises(MissingDataError, match=r"split artifact missing: .*val.npy"):
        load_split(str(p))
    with pytest.raises(MissingDataError, match=r"split images missing: .*val.npy"):
        load_split(str(p), verify=False)


def test_split_with_images_inside_the_npz_still_loads(tmp_path):
    """Splits written before the images moved beside the npz keep working (and keep their digest,
    so their cached features stay valid)."""
    spec = {"loader": "sklearn_digits", "n_train": 50, "n_val": 20, "n_test": 30}
    src, parts = build_split(spec)
    arrays = {"classes": np.asarray(src.classes)}
    for part, pool in parts.items():
        arrays.update({f"{part}_labels": pool.labels, f"{part}_index": pool.index, f"{part}_images": pool.images})
    np.savez(tmp_path / "old.npz", **arrays)
    digest = file_sha256(tmp_path / "old.npz")
    (tmp_path / "old.json").write_text(json.dumps({"dataset": "d", "modality": "image", "sha256": digest}))
    s = load_split(str(tmp_path / "old.npz"))
    assert s.sha256 == digest
    np.testing.assert_array_equal(s.parts["val"].images, parts["val"].images)


def test_images_of_different_sizes_need_image_size(tmp_path):
    sizes = [(10, 12), (10, 12), (14, 12)]
    lazy = LazyImages(lambda r: Image.new("RGB", sizes[r]), np.arange(3), None)
    with pytest.raises(ValueError, match=r"source image 2 is 14×12 but the first one is 10×12; set `image_size`"):
        lazy.save(tmp_path / "x.npy")
    LazyImages(lambda r: Image.new("RGB", sizes[r]), np.arange(3), 8).save(tmp_path / "y.npy")
    assert np.load(tmp_path / "y.npy").shape == (3, 8, 8, 3)


@pytest.mark.parametrize(
    "rows,what",
    [
        ([f"{c}\timages/{c}/{i:03d}.png" for i in range(20) for c in ("cat", "dog")], "image file paths"),
        (
            [f"{c}\t" + ",".join(str((i * 7 + k) % 256) for k in range(64)) for i in range(20) for c in ("0", "1")],
            "numbers only",
        ),
    ],
)
def test_a_text_loader_refuses_what_is_not_text(tmp_path, rows, what):
    (tmp_path / "t.tsv").write_text("\n".join(rows) + "\n")
    spec = {
        "loader": "tsv",
        "modality": "text",
        "args": {"path": str(tmp_path / "t.tsv")},
        "n_train": 20,
        "n_val": 10,
        "n_test": 10,
    }
    with pytest.raises(ValueError, match=f"datasets.mine: .* texts from loader 'tsv' are {what}"):
        make_split("mine", spec, str(tmp_path / "s.npz"), str(tmp_path / "s.json"))
    assert not (tmp_path / "s.json").exists()
