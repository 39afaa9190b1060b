"""Loaders of library datasets: torchvision's (CIFAR, Flowers-102, Pets, DTD, Food-101,
FGVC-Aircraft) and Hugging Face `datasets` (hub ids, local folders of images per class, tables).
Images are decoded only when a split keeps them (aftbench.data.sources.LazyImages)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from aftbench.core.declare import declare
from aftbench.data.sources import LazyImages, MissingDataError, Pool, Source

# torchvision dataset id -> (class, kwargs of the train pool's parts, kwargs of the official test split)
TORCHVISION = {
    "cifar10": ("CIFAR10", [{"train": True}], {"train": False}),
    "cifar100": ("CIFAR100", [{"train": True}], {"train": False}),
    "flowers102": ("Flowers102", [{"split": "train"}, {"split": "val"}], {"split": "test"}),
    "oxford_pets": (
        "OxfordIIITPet",
        [{"split": "trainval", "target_types": "category"}],
        {"split": "test", "target_types": "category"},
    ),
    "dtd": ("DTD", [{"split": "train"}, {"split": "val"}], {"split": "test"}),
    "food101": ("Food101", [{"split": "train"}], {"split": "test"}),
    "fgvc_aircraft": (
        "FGVCAircraft",
        [{"split": "trainval", "annotation_level": "variant"}],
        {"split": "test", "annotation_level": "variant"},
    ),
}


def _tv_labels(ds) -> np.ndarray:
    for attr in ("targets", "_labels"):  # every class above keeps its labels in one of these
        if hasattr(ds, attr):
            return np.asarray(getattr(ds, attr), np.int64)
    return np.asarray([ds[i][1] for i in range(len(ds))], np.int64)


def _tv_image(ds, row: int):
    from PIL import Image

    if hasattr(ds, "data") and isinstance(ds.data, np.ndarray):  # CIFAR keeps decoded uint8 arrays
        return Image.fromarray(ds.data[row])
    return ds[row][0]


@declare(
    produces="image",
    choices={"name": tuple(TORCHVISION)},
    native_image={"name": {"cifar10": (32, 32, 3), "cifar100": (32, 32, 3)}},  # the others vary per image
    sources=("root",),
)
def load_torchvision(name: str, root: str, download: bool = False, image_size: int | None = None) -> Source:
    """A torchvision dataset (`name` in TORCHVISION) under `root`; `download: true` fetches it
    (needs internet). The official test split is kept as the test pool."""
    import torchvision.datasets as tvd

    if name not in TORCHVISION:
        raise KeyError(f"unknown torchvision dataset {name!r}; known: {sorted(TORCHVISION)}")
    cls_name, train_parts, test_kw = TORCHVISION[name]
    cls = getattr(tvd, cls_name)

    def build(kw):
        try:
            return cls(root=str(Path(root).expanduser()), download=download, **kw)
        except RuntimeError as err:  # torchvision: "Dataset not found or corrupted ..."
            raise MissingDataError(
                f"torchvision {cls_name} ({kw}) not found under {root}: {err} Set the dataset's "
                f"`args: {{download: true}}` on a machine with internet, or copy the files "
                f"torchvision expects into {root}."
            ) from None

    def pool(datasets):
        labels = np.concatenate([_tv_labels(d) for d in datasets])
        owners = [(d, i) for d in datasets for i in range(len(d))]
        return Pool(labels, images=LazyImages(lambda r: _tv_image(*owners[r]), np.arange(len(labels)), image_size))

    train = [build(kw) for kw in train_parts]
    test = build(test_kw)
    classes = [str(c) for c in getattr(train[0], "classes", [])] or [
        str(i) for i in range(int(_tv_labels(train[0]).max()) + 1)
    ]
    for kw, part in [*zip(train_parts[1:], train[1:], strict=False), (test_kw, test)]:
        # DTD and Food-101 number the classes found in each split's own file: on an incomplete copy
        # the same label id would mean different classes in different splits
        other = [str(c) for c in getattr(part, "classes", classes)]
        if other != classes:
            diff = sorted(set(classes) ^ set(other))[:5]
            what = (
                f"has classes {diff} that the {train_parts[0]} split has not (or the reverse)"
                if diff
                else "lists the same classes in another order"
            )
            raise ValueError(
                f"torchvision {cls_name} under {root}: split {kw} {what} ({len(other)} vs {len(classes)} "
                f"classes), so its label ids would mean other classes. Is the copy complete?"
            )
    return Source(
        "image",
        classes,
        pool(train),
        pool([test]),
        notes=f"torchvision {cls_name}; official test split; images "
        + (f"resized (shorter side) and centre-cropped to {image_size}px" if image_size else "as stored"),
    )


@declare(
    produces={"image": "image_field", "text": "text_fields"}, sources=("path", "data_files", "data_dir", "image_root")
)
def load_hf_dataset(
    path: str,
    text_fields: list[str] | None = None,
    label_field: str = "label",
    name: str | None = None,
    train_split: str = "train",
    test_split: str | None = "test",
    image_field: str | None = None,
    image_size: int | None = None,
    sep: str = " [SEP] ",
    cache_dir: str | None = None,
    data_files: str | list | dict | None = None,
    data_dir: str | None = None,
    image_root: str | None = None,
    revision: str | None = None,
) -> Source:
    """A Hugging Face dataset (`datasets.load_dataset(path, name, data_files=, data_dir=)`): a hub
    id such as `imdb`, `google/boolq`, `glue` + name `sst2`; a local folder (parquet/arrow/CSV
    files, or one sub-folder of images per class: the `imagefolder` layout, labels from the folder
    names); or a builder (`csv`, `parquet`, `json`) with `data_files`. Texts are the `text_fields`
    joined with `sep` (sentence pairs: premise [SEP] hypothesis); `image_field` is an image
    column: decoded images, or file paths (relative ones from `image_root`, default the folder of
    the data files). `revision` pins a hub dataset's version (a tag or commit: a changed
    revision redraws the split; an unpinned hub dataset can change under the same id, and only
    its local files are fingerprinted). An image-only dataset has no `text_fields`. Labels are integer class ids or
    class names (sorted names number the classes); GLUE's hidden test labels (-1) are refused:
    use `test_split: null` to hold a test split out of train."""
    import datasets as hfd

    text_fields = list(text_fields or [])
    if not text_fields and not image_field:
        raise ValueError(
            f"Hugging Face dataset {path!r}: give `text_fields` (text columns), `image_field` (an "
            f"image column), or both"
        )
    try:
        dd = hfd.load_dataset(
            path, name, cache_dir=cache_dir, data_files=data_files, data_dir=data_dir, revision=revision
        )
    except (FileNotFoundError, ConnectionError, OSError, ValueError) as err:
        raise MissingDataError(
            f"Hugging Face dataset {path!r} ({name}) could not be loaded: "
            f"{str(err).splitlines()[0][:300]}. Offline? Run once with internet (it is cached "
            f"under ~/.cache/huggingface/datasets) or point `path` at a local copy."
        ) from None
    root = Path(image_root) if image_root else _data_folder(path, data_files, data_dir)
    classes: list[str] | None = None

    def labels_of(ds, split) -> np.ndarray:
        nonlocal classes
        raw = ds[label_field]
        if raw and isinstance(raw[0], str):  # class names: number them by sorted name, from train
            classes = classes or sorted(set(raw))
            unknown = sorted(set(raw) - set(classes))
            if unknown:
                raise ValueError(
                    f"Hugging Face dataset {path!r}/{split}: labels {unknown[:5]} do not occur in {train_split!r}"
                )
            lookup = {c: i for i, c in enumerate(classes)}
            return np.asarray([lookup[c] for c in raw], np.int64)
        return np.asarray(raw, np.int64)

    def pool(split):
        if split not in dd:
            raise KeyError(f"Hugging Face dataset {path!r} has no split {split!r}; it has {sorted(dd)}")
        ds = dd[split]
        missing = [
            f for f in [*text_fields, label_field, *([image_field] if image_field else [])] if f not in ds.column_names
        ]
        if missing:
            raise KeyError(f"Hugging Face dataset {path!r}/{split}: no column(s) {missing}; columns: {ds.column_names}")
        labels = labels_of(ds, split)
        if (labels < 0).any():
            raise ValueError(
                f"Hugging Face dataset {path!r}/{split}: {int((labels < 0).sum())} examples have no "
                f"label (-1); use another split as test"
            )
        texts = None
        if text_fields:
            cols = [ds[f] for f in text_fields]
            texts = np.asarray([sep.join(str(c[i]) for c in cols) for i in range(len(ds))])
        images = None
        if image_field:
            images = LazyImages(_hf_image_getter(ds, image_field, root, path), np.arange(len(ds)), image_size)
        return Pool(labels, images=images, texts=texts)

    train = pool(train_split)
    test = pool(test_split) if test_split else None
    feature = dd[train_split].features[label_field]
    classes = list(getattr(feature, "names", None) or classes or [str(i) for i in range(int(train.labels.max()) + 1)])
    modality = "+".join(part for part, on in (("image", image_field), ("text", text_fields)) if on)
    text_note = f"; text = {sep.strip()!r}.join({text_fields})" if text_fields else ""
    return Source(
        modality,
        classes,
        train,
        test,
        notes=f"Hugging Face {path}"
        + (f"/{name}" if name else "")
        + text_note
        + (f"; image = column {image_field!r}" if image_field else ""),
    )


def _data_folder(path: str, data_files, data_dir: str | None) -> Path:
    """Where relative image paths in a table are resolved: the data files' folder (else the dataset's)."""
    first = data_files
    while isinstance(first, (dict, list)) and first:
        first = next(iter(first.values())) if isinstance(first, dict) else first[0]
    if isinstance(first, str):
        return Path(first).parent
    return Path(data_dir or path)


def _hf_image_getter(ds, field: str, root: Path, path: str):
    """row -> PIL image of a Hugging Face column that holds images or image file paths."""
    from PIL import Image

    def get(row: int):
        value = ds[row][field]
        if isinstance(value, str):
            file = Path(value) if Path(value).is_absolute() else root / value
            if not file.is_file():
                raise MissingDataError(
                    f"Hugging Face dataset {path!r}: image {value!r} (row {row}, column "
                    f"{field!r}) not found at {file}; set `image_root` to the folder it is "
                    f"relative to"
                )
            return Image.open(file)
        if value is None:
            raise ValueError(f"Hugging Face dataset {path!r}: row {row} has no image in column {field!r}")
        return value

    return get
