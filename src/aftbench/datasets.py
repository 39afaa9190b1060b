"""Dataset registry: each entry turns raw files on disk into labelled examples.

A dataset entry in config.yaml names a `loader` from LOADERS plus its arguments. `make_split`
draws a fixed, seeded, stratified train/val/test split once and writes it as a `.npz` artifact
(labels, source row numbers, texts as unicode arrays; no pickle) with a JSON sidecar, and the
images of each part as a uint8 `.npy` file in a folder beside it (`split_images_dir`). The
images are memory-mapped when read, so a 20 GB split (Food-101 at 256 px) is neither held in
memory by the job that writes it nor by the jobs that read it. Everything downstream
(teachers, students) reads these artifacts, never the raw files.
"""

from __future__ import annotations

import gzip
import hashlib
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .backend_args import declare
from .io import atomic_path, file_sha256, read_json, write_json

SPLITS = ("train", "val", "test")


class MissingDataError(FileNotFoundError):
    pass


def _require(path: Path, what: str, package: str) -> Path:
    if not path.exists():
        raise MissingDataError(
            f"{what} not found at {path}. Install it with `sudo apt-get install {package}`, or "
            f"without root: `apt-get download {package} && dpkg -x {package}_*.deb ~/aftbench-data` "
            f"and point the dataset's `root` in config.yaml at the unpacked folder."
        )
    return path


@dataclass
class Pool:
    """Labelled examples of one source split. `images` is uint8 N×H×W×C, `texts` a str array."""

    labels: np.ndarray
    images: np.ndarray | None = None
    texts: np.ndarray | None = None
    index: np.ndarray | None = None  # row numbers in the source (provenance of a split)

    def __post_init__(self):
        if self.index is None:
            self.index = np.arange(len(self.labels))

    def take(self, idx: np.ndarray) -> "Pool":
        pick = lambda a: None if a is None else a[idx]  # noqa: E731
        return Pool(self.labels[idx], pick(self.images), pick(self.texts), self.index[idx])


@dataclass
class Source:
    modality: str  # "image" | "text" | "image+text"
    classes: list[str]
    train: Pool
    test: Pool | None = None  # the official test split, where the dataset has one
    notes: str = ""


# ----------------------------------------------------------------------------- loaders
def _read_idx(path: Path) -> np.ndarray:
    with gzip.open(path, "rb") as f:
        data = f.read()
    ndim = data[3]
    dims = np.frombuffer(data, dtype=">u4", count=ndim, offset=4).astype(int)
    return np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * ndim).reshape(dims)


FMNIST_CLASSES = ["t-shirt/top", "trouser", "pullover", "dress", "coat",
                  "sandal", "shirt", "sneaker", "bag", "ankle boot"]


@declare(produces="image")
def load_fashion_mnist(root: str = "/usr/share/datasets/fashion-mnist") -> Source:
    """Fashion-MNIST from its idx files (Debian `dataset-fashion-mnist`): 60k train, 10k official test."""
    root = _require(Path(root), "Fashion-MNIST", "dataset-fashion-mnist")

    def pool(prefix):
        images = _read_idx(_require(root / f"{prefix}-images-idx3-ubyte.gz", "Fashion-MNIST images", "dataset-fashion-mnist"))
        labels = _read_idx(root / f"{prefix}-labels-idx1-ubyte.gz").astype(np.int64)
        return Pool(labels, images=images[..., None])  # N×28×28×1

    return Source("image", FMNIST_CLASSES, pool("train"), pool("t10k"), notes="official test split")


# Noun lexicographer files of WordNet 3.0 (lexnames(5WN)): the supersense of each synset.
NOUN_LEXNAMES = {
    3: "Tops", 4: "act", 5: "animal", 6: "artifact", 7: "attribute", 8: "body", 9: "cognition",
    10: "communication", 11: "event", 12: "feeling", 13: "food", 14: "group", 15: "location",
    16: "motive", 17: "object", 18: "person", 19: "phenomenon", 20: "plant", 21: "possession",
    22: "process", 23: "quantity", 24: "relation", 25: "shape", 26: "state", 27: "substance",
    28: "time",
}


@declare(produces="text")
def load_wordnet_supersenses(root: str = "/usr/share/wordnet", n_classes: int = 10) -> Source:
    """Noun gloss -> supersense. Only the gloss is used: the lemma would make the task a lookup."""
    path = _require(Path(root) / "data.noun", "WordNet noun data", "wordnet-base")
    glosses, lex = [], []
    with open(path, encoding="utf-8", errors="replace") as f:
        for line in f:
            if line.startswith("  ") or " | " not in line:  # licence header / malformed
                continue
            head, gloss = line.split(" | ", 1)
            lex.append(int(head.split()[1]))
            glosses.append(gloss.strip())
    lex = np.asarray(lex)
    ids, counts = np.unique(lex, return_counts=True)
    keep = ids[np.argsort(-counts, kind="stable")[:n_classes]]
    keep = np.sort(keep)
    mask = np.isin(lex, keep)
    labels = np.searchsorted(keep, lex[mask]).astype(np.int64)
    texts = np.asarray([g for g, m in zip(glosses, mask) if m])
    return Source("text", [NOUN_LEXNAMES[int(k)] for k in keep], Pool(labels, texts=texts),
                  notes=f"{n_classes} largest noun supersenses; gloss only")


_SVG_TITLE = re.compile(r"<dc:title>(.*?)</dc:title>", re.S)
_SVG_DESC = re.compile(r"<dc:description>(.*?)</dc:description>", re.S)
_TAGS = re.compile(r"<[^>]+>")


def _svg_text(svg: bytes) -> str:
    """Title (+ description) of the artwork. Never the keyword list: it names the category."""
    s = svg.decode("utf-8", errors="replace")
    title = _SVG_TITLE.search(s)
    desc = _SVG_DESC.search(s)
    parts = [_TAGS.sub("", m.group(1)).strip() for m in (title, desc) if m]
    return ". ".join(p for p in parts if p)


def _load_rgb_on_white(path: Path, size: int, max_pixels: int) -> np.ndarray | None:
    from PIL import Image

    try:
        im = Image.open(path)
    except (Image.DecompressionBombError, OSError):  # some PNGs declare huge canvases
        return None
    with im:
        if im.width * im.height > max_pixels:
            return None
        im = im.convert("RGBA")
        bg = Image.new("RGBA", im.size, (255, 255, 255, 255))
        im = Image.alpha_composite(bg, im).convert("RGB")
        im.thumbnail((size, size), Image.Resampling.BICUBIC)
        canvas = Image.new("RGB", (size, size), (255, 255, 255))
        canvas.paste(im, ((size - im.width) // 2, (size - im.height) // 2))
        return np.asarray(canvas, dtype=np.uint8)


@declare(produces="image+text")
def load_openclipart(root: str = "/usr/share/openclipart", categories: list[str] | None = None,
                     image_size: int = 96, max_per_class: int = 280, seed: int = 0,
                     max_pixels: int = 16_000_000) -> Source:
    """Clipart image + title -> top-level category. De-duplicated by SVG content (the Debian
    package repeats many artworks as symlinks or copies under several folders)."""
    root = Path(root)
    png_root = _require(root / "png", "Open Clip Art PNGs", "openclipart-png")
    svg_root = _require(root / "svg", "Open Clip Art SVGs", "openclipart-svg")
    rng = np.random.default_rng(seed)
    seen: set[str] = set()
    images, texts, labels, skipped = [], [], [], 0
    categories = list(categories or [])
    for k, cat in enumerate(categories):
        cands = []
        for png in sorted((png_root / cat).rglob("*.png")):
            svg = svg_root / png.relative_to(png_root).with_suffix(".svg")
            if png.is_symlink() or not svg.exists():
                continue
            raw = svg.read_bytes()
            digest = hashlib.sha256(raw).hexdigest()
            text = _svg_text(raw)
            if digest in seen or not text:
                continue
            seen.add(digest)
            cands.append((png, text))
        if not cands:
            raise MissingDataError(f"clipart category {cat!r} has no images under {png_root / cat}")
        order = rng.permutation(len(cands))
        taken = 0
        for i in order:
            if taken >= max_per_class:
                break
            png, text = cands[i]
            img = _load_rgb_on_white(png, image_size, max_pixels)
            if img is None:
                skipped += 1
                continue
            images.append(img)
            texts.append(text)
            labels.append(k)
            taken += 1
    return Source("image+text", categories,
                  Pool(np.asarray(labels, np.int64), np.stack(images), np.asarray(texts)),
                  notes=f"{skipped} oversized PNGs skipped; text = title + description")


@declare(produces="image")
def load_sklearn_digits() -> Source:
    """8×8 digits shipped inside scikit-learn: tiny, for tests."""
    from sklearn.datasets import load_digits

    d = load_digits()
    images = (d.images * (255.0 / 16.0)).round().astype(np.uint8)[..., None]
    texts = np.asarray([f"digit sample {i % 7}" for i in range(len(d.target))])  # uninformative text
    return Source("image", [str(c) for c in d.target_names], Pool(d.target.astype(np.int64), images, texts))


@declare(produces="text")
def load_tsv(path: str) -> Source:
    """A `label<TAB>text` file: the simplest way to bring your own text task."""
    rows = [ln.rstrip("\n").split("\t", 1) for ln in Path(path).read_text().splitlines() if ln.strip()]
    bad = [i + 1 for i, r in enumerate(rows) if len(r) != 2]
    if bad:
        raise ValueError(f"{path}: lines {bad[:5]} are not `label<TAB>text`")
    classes = sorted({r[0] for r in rows})
    labels = np.asarray([classes.index(r[0]) for r in rows], np.int64)
    return Source("text", classes, Pool(labels, texts=np.asarray([r[1] for r in rows])))


# ----------------------------------------------------------------------------- library datasets
class LazyImages:
    """Images of a library dataset, decoded only when a split materialises them (so drawing
    1,000 training images from Food-101 decodes 1,000, not 101,000). `get(row)` returns a PIL
    image; `size` (if set) resizes the shorter side to `size` and centre-crops a square, so
    every stored image has one shape (each teacher then applies its own eval transform)."""

    def __init__(self, get, rows: np.ndarray, size: int | None):
        self.get, self.rows, self.size = get, np.asarray(rows), size

    def __len__(self) -> int:
        return len(self.rows)

    def __getitem__(self, idx) -> "LazyImages":
        return LazyImages(self.get, self.rows[idx], self.size)

    def _one(self, row) -> np.ndarray:
        from PIL import Image

        im = self.get(int(row)).convert("RGB")
        if self.size:
            scale = self.size / min(im.size)
            im = im.resize((max(self.size, round(im.width * scale)), max(self.size, round(im.height * scale))),
                           Image.Resampling.BICUBIC)
            left, top = (im.width - self.size) // 2, (im.height - self.size) // 2
            im = im.crop((left, top, left + self.size, top + self.size))
        return np.asarray(im, dtype=np.uint8)

    def __array__(self, dtype=None, copy=None):
        out = np.stack([self._one(r) for r in self.rows]) if len(self.rows) else np.zeros((0, 1, 1, 3), np.uint8)
        return out if dtype is None else out.astype(dtype)

    def save(self, path: Path) -> None:
        """Decode every image straight into a `.npy` file on disk (one image in memory at a time)."""
        first = self._one(self.rows[0]) if len(self.rows) else np.zeros((1, 1, 3), np.uint8)
        out = np.lib.format.open_memmap(path, mode="w+", dtype=np.uint8, shape=(len(self.rows), *first.shape))
        for i, row in enumerate(self.rows):
            im = first if i == 0 else self._one(row)
            if im.shape != first.shape:
                raise ValueError(f"source image {int(row)} is {im.shape[1]}×{im.shape[0]} but the first one is "
                                 f"{first.shape[1]}×{first.shape[0]}; set `image_size` in the dataset's args so "
                                 f"every image is resized and centre-cropped to one square size")
            out[i] = im
        out.flush()
        del out


# torchvision dataset id -> (class, kwargs of the train pool's parts, kwargs of the official test split)
TORCHVISION = {
    "cifar10": ("CIFAR10", [{"train": True}], {"train": False}),
    "cifar100": ("CIFAR100", [{"train": True}], {"train": False}),
    "flowers102": ("Flowers102", [{"split": "train"}, {"split": "val"}], {"split": "test"}),
    "oxford_pets": ("OxfordIIITPet", [{"split": "trainval", "target_types": "category"}],
                    {"split": "test", "target_types": "category"}),
    "dtd": ("DTD", [{"split": "train"}, {"split": "val"}], {"split": "test"}),
    "food101": ("Food101", [{"split": "train"}], {"split": "test"}),
    "fgvc_aircraft": ("FGVCAircraft", [{"split": "trainval", "annotation_level": "variant"}],
                      {"split": "test", "annotation_level": "variant"}),
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


@declare(produces="image", choices={"name": tuple(TORCHVISION)})
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
            raise MissingDataError(f"torchvision {cls_name} ({kw}) not found under {root}: {err} Set the dataset's "
                                   f"`args: {{download: true}}` on a machine with internet, or copy the files "
                                   f"torchvision expects into {root}.") from None

    def pool(datasets):
        labels = np.concatenate([_tv_labels(d) for d in datasets])
        owners = [(d, i) for d in datasets for i in range(len(d))]
        return Pool(labels, images=LazyImages(lambda r: _tv_image(*owners[r]), np.arange(len(labels)), image_size))

    train = [build(kw) for kw in train_parts]
    test = build(test_kw)
    classes = [str(c) for c in getattr(train[0], "classes", [])] or [str(i) for i in range(int(_tv_labels(train[0]).max()) + 1)]
    for kw, part in [*zip(train_parts[1:], train[1:]), (test_kw, test)]:
        # DTD and Food-101 number the classes found in each split's own file: on an incomplete copy
        # the same label id would mean different classes in different splits
        other = [str(c) for c in getattr(part, "classes", classes)]
        if other != classes:
            diff = sorted(set(classes) ^ set(other))[:5]
            what = f"has classes {diff} that the {train_parts[0]} split has not (or the reverse)" if diff else \
                "lists the same classes in another order"
            raise ValueError(f"torchvision {cls_name} under {root}: split {kw} {what} ({len(other)} vs {len(classes)} "
                             f"classes), so its label ids would mean other classes. Is the copy complete?")
    return Source("image", classes, pool(train), pool([test]),
                  notes=f"torchvision {cls_name}; official test split; images "
                        + (f"resized (shorter side) and centre-cropped to {image_size}px" if image_size else "as stored"))


@declare(produces={"image": "image_field", "text": "text_fields"})
def load_hf_dataset(path: str, text_fields: list[str] | None = None, label_field: str = "label", name: str | None = None,
                    train_split: str = "train", test_split: str | None = "test", image_field: str | None = None,
                    image_size: int | None = None, sep: str = " [SEP] ", cache_dir: str | None = None,
                    data_files: str | list | dict | None = None, data_dir: str | None = None,
                    image_root: str | None = None) -> Source:
    """A Hugging Face dataset (`datasets.load_dataset(path, name, data_files=, data_dir=)`): a hub
    id such as `imdb`, `google/boolq`, `glue` + name `sst2`; a local folder (parquet/arrow/CSV
    files, or one sub-folder of images per class: the `imagefolder` layout, labels from the folder
    names); or a builder (`csv`, `parquet`, `json`) with `data_files`. Texts are the `text_fields`
    joined with `sep` (sentence pairs: premise [SEP] hypothesis); `image_field` is an image
    column: decoded images, or file paths (relative ones from `image_root`, default the folder of
    the data files). An image-only dataset has no `text_fields`. Labels are integer class ids or
    class names (sorted names number the classes); GLUE's hidden test labels (-1) are refused:
    use `test_split: null` to hold a test split out of train."""
    import datasets as hfd

    text_fields = list(text_fields or [])
    if not text_fields and not image_field:
        raise ValueError(f"Hugging Face dataset {path!r}: give `text_fields` (text columns), `image_field` (an "
                         f"image column), or both")
    try:
        dd = hfd.load_dataset(path, name, cache_dir=cache_dir, data_files=data_files, data_dir=data_dir)
    except (FileNotFoundError, ConnectionError, OSError, ValueError) as err:
        raise MissingDataError(f"Hugging Face dataset {path!r} ({name}) could not be loaded: "
                               f"{str(err).splitlines()[0][:300]}. Offline? Run once with internet (it is cached "
                               f"under ~/.cache/huggingface/datasets) or point `path` at a local copy.") from None
    root = Path(image_root) if image_root else _data_folder(path, data_files, data_dir)
    classes: list[str] | None = None

    def labels_of(ds, split) -> np.ndarray:
        nonlocal classes
        raw = ds[label_field]
        if raw and isinstance(raw[0], str):  # class names: number them by sorted name, from train
            classes = classes or sorted(set(raw))
            unknown = sorted(set(raw) - set(classes))
            if unknown:
                raise ValueError(f"Hugging Face dataset {path!r}/{split}: labels {unknown[:5]} do not occur in "
                                 f"{train_split!r}")
            lookup = {c: i for i, c in enumerate(classes)}
            return np.asarray([lookup[c] for c in raw], np.int64)
        return np.asarray(raw, np.int64)

    def pool(split):
        if split not in dd:
            raise KeyError(f"Hugging Face dataset {path!r} has no split {split!r}; it has {sorted(dd)}")
        ds = dd[split]
        missing = [f for f in [*text_fields, label_field, *([image_field] if image_field else [])] if f not in ds.column_names]
        if missing:
            raise KeyError(f"Hugging Face dataset {path!r}/{split}: no column(s) {missing}; columns: {ds.column_names}")
        labels = labels_of(ds, split)
        if (labels < 0).any():
            raise ValueError(f"Hugging Face dataset {path!r}/{split}: {int((labels < 0).sum())} examples have no "
                             f"label (-1); use another split as test")
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
    return Source(modality, classes, train, test,
                  notes=f"Hugging Face {path}" + (f"/{name}" if name else "") + text_note
                        + (f"; image = column {image_field!r}" if image_field else ""))


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
                raise MissingDataError(f"Hugging Face dataset {path!r}: image {value!r} (row {row}, column "
                                       f"{field!r}) not found at {file}; set `image_root` to the folder it is "
                                       f"relative to")
            return Image.open(file)
        if value is None:
            raise ValueError(f"Hugging Face dataset {path!r}: row {row} has no image in column {field!r}")
        return value

    return get


LOADERS = {
    "fashion_mnist": load_fashion_mnist,
    "wordnet_supersenses": load_wordnet_supersenses,
    "openclipart": load_openclipart,
    "sklearn_digits": load_sklearn_digits,
    "tsv": load_tsv,
    "torchvision": load_torchvision,
    "hf_dataset": load_hf_dataset,
}


# ----------------------------------------------------------------------------- splits
def _stratified_pick(labels: np.ndarray, n: int, rng: np.random.Generator) -> np.ndarray:
    """n indices drawn with the class proportions of `labels` (sklearn's stratified split)."""
    from sklearn.model_selection import train_test_split

    if n > len(labels):
        raise ValueError(f"asked for {n} examples but only {len(labels)} are available")
    idx = np.arange(len(labels))
    if n == len(labels):
        return idx
    picked, _ = train_test_split(idx, train_size=n, stratify=labels,
                                 random_state=int(rng.integers(2**31 - 1)))
    return np.sort(picked)


def build_split(spec: dict) -> tuple[Source, dict[str, Pool]]:
    """Load the source named by `spec['loader']` and draw the seeded stratified split."""
    loader = spec["loader"]
    if loader not in LOADERS:
        raise KeyError(f"unknown dataset loader {loader!r}; known: {sorted(LOADERS)}")
    src = LOADERS[loader](**spec.get("args", {}))
    rng = np.random.default_rng(spec.get("split_seed", 0))
    n_tr, n_va, n_te = spec["n_train"], spec["n_val"], spec["n_test"]
    pool = src.train
    if src.test is not None:
        test = src.test.take(_stratified_pick(src.test.labels, n_te, rng)) if n_te < len(src.test.labels) else src.test
    else:  # no official test split: hold it out of the pool first
        te_idx = _stratified_pick(pool.labels, n_te, rng)
        rest = np.setdiff1d(np.arange(len(pool.labels)), te_idx)
        test, pool = pool.take(te_idx), pool.take(rest)
    trva = _stratified_pick(pool.labels, n_tr + n_va, rng)
    va_local = _stratified_pick(pool.labels[trva], n_va, rng)
    tr_idx = np.setdiff1d(trva, trva[va_local])
    va_idx = trva[va_local]
    return src, {"train": pool.take(tr_idx), "val": pool.take(va_idx), "test": test}


def split_images_dir(npz_path) -> Path:
    """Where a split's images live: `<name>.images/<part>.npy` beside `<name>.npz` (the `split`
    rule declares this folder as an output)."""
    return Path(npz_path).with_suffix(".images")


_IMAGE_PATH = re.compile(r"\S+\.(png|jpe?g|bmp|gif|webp|tiff?)", re.I)
_NUMBERS = re.compile(r"[-+0-9.,;\s]+")


def check_texts(dataset_id: str, loader: str, texts: np.ndarray) -> None:
    """Refuse texts that are not text: image file paths or rows of numbers (a pixel table) read
    by a text loader would become a text task whose "words" are file names or pixel values."""
    if texts is None or not len(texts):
        return
    sample = [str(t).strip() for t in texts[:1000]]
    for pattern, what, fix in ((_IMAGE_PATH, "image file paths", "an image column: `loader: hf_dataset` with "
                                "`image_field`"),
                               (_NUMBERS, "numbers only (a pixel or feature table?)", "images as image files, "
                                "one folder per class, with `loader: hf_dataset`")):
        hits = sum(bool(pattern.fullmatch(t)) for t in sample)
        if hits > len(sample) / 2:
            raise ValueError(f"datasets.{dataset_id}: {hits} of the first {len(sample)} texts from loader {loader!r} "
                             f"are {what}, e.g. {sample[0][:80]!r}; they are not text. Use {fix} "
                             f"(README: Add a dataset)")


def make_split(dataset_id: str, spec: dict, out_npz: str, out_json: str) -> None:
    src, parts = build_split(spec)
    if spec.get("modality", src.modality) != src.modality:
        raise ValueError(f"datasets.{dataset_id}.modality: declared {spec['modality']!r}, but loader "
                         f"{spec['loader']!r} produced {src.modality!r} data with these args; set `modality: "
                         f"{src.modality}` or change the args")
    if "text" in src.modality.split("+"):
        check_texts(dataset_id, spec["loader"], parts["train"].texts)
    images_dir = split_images_dir(out_npz)
    images_dir.mkdir(parents=True, exist_ok=True)  # stays empty for text datasets
    arrays, image_files, image_shape = {"classes": np.asarray(src.classes)}, [], None
    for name, p in parts.items():
        arrays[f"{name}_labels"] = p.labels
        arrays[f"{name}_index"] = p.index
        if p.texts is not None:
            arrays[f"{name}_texts"] = p.texts
        if p.images is not None:
            path = images_dir / f"{name}.npy"
            with atomic_path(path) as tmp:
                if isinstance(p.images, LazyImages):  # library datasets decode only the examples the split keeps
                    p.images.save(tmp)
                else:
                    np.save(tmp, np.ascontiguousarray(p.images, dtype=np.uint8))
            image_files.append(path)
            shape = list(np.load(path, mmap_mode="r").shape[1:])
            if image_shape is not None and shape != image_shape:
                raise ValueError(f"dataset {dataset_id!r}: {name} images are {shape} but train images are "
                                 f"{image_shape}; set `image_size` in its args")
            image_shape = shape
    with atomic_path(out_npz) as tmp:
        np.savez(tmp, **arrays)
    meta = {
        "dataset": dataset_id,
        "spec": spec,
        "modality": src.modality,
        "classes": src.classes,
        "sizes": {k: int(len(v.labels)) for k, v in parts.items()},
        "class_counts": {k: np.bincount(v.labels, minlength=len(src.classes)).tolist() for k, v in parts.items()},
        "image_shape": image_shape,
        "image_files": [f.name for f in image_files],
        "notes": src.notes,
        "sha256": file_sha256(out_npz, *image_files),  # the npz, then the image files in this order
    }
    write_json(out_json, meta)


@dataclass
class Split:
    """A dataset split artifact, loaded. `part(name)` gives one of train/val/test."""

    dataset: str
    modality: str
    classes: list[str]
    parts: dict[str, Pool]
    sha256: str

    @property
    def n_classes(self) -> int:
        return len(self.classes)


def _load_images(path: Path, n: int, shape, npz_path: Path) -> np.ndarray:
    """One part's images, memory-mapped copy-on-write: pages are read on use, never written back."""
    redo = f"Delete {npz_path} and rerun to rebuild the split."
    try:
        images = np.load(path, mmap_mode="c", allow_pickle=False)
    except FileNotFoundError:
        raise MissingDataError(f"split images missing: {path}. {redo}") from None
    except Exception as err:  # truncated file, bad header
        raise ValueError(f"corrupt split images {path}: {err}. {redo}") from None
    if images.dtype != np.uint8 or images.shape[0] != n or list(images.shape[1:]) != list(shape):
        raise ValueError(f"corrupt split images {path}: {images.dtype} {images.shape}, expected uint8 "
                         f"({n}, {', '.join(map(str, shape))}). {redo}")
    return images


def load_split(npz_path: str, json_path: str | None = None) -> Split:
    npz_path = Path(npz_path)
    json_path = Path(json_path) if json_path else npz_path.with_suffix(".json")
    meta = read_json(json_path)
    try:
        with np.load(npz_path, allow_pickle=False) as z:
            data = {k: z[k] for k in z.files}
    except FileNotFoundError:
        raise MissingDataError(f"split artifact missing: {npz_path}") from None
    except Exception as err:  # zipfile.BadZipFile, ValueError, ...
        raise ValueError(f"corrupt split artifact {npz_path}: {err}. Delete it and rerun.") from None
    images_dir, files = split_images_dir(npz_path), meta.get("image_files")

    def images(part):
        if files is None:  # written before aftbench kept images beside the npz: they are inside it
            return data.get(f"{part}_images")
        n = len(data[f"{part}_labels"])
        return _load_images(images_dir / f"{part}.npy", n, meta["image_shape"], npz_path) if f"{part}.npy" in files else None

    parts = {s: Pool(data[f"{s}_labels"], images(s), data.get(f"{s}_texts"), data.get(f"{s}_index")) for s in SPLITS}
    return Split(meta["dataset"], meta["modality"], list(data["classes"]), parts, meta["sha256"])
