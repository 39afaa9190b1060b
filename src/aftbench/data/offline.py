"""Loaders of the offline datasets, shipped in Debian packages (Fashion-MNIST, WordNet,
Open Clip Art) or in scikit-learn (digits), and of a plain `label<TAB>text` file."""

from __future__ import annotations

import gzip
import hashlib
import re
from pathlib import Path

import numpy as np

from aftbench.core.declare import declare
from aftbench.data.sources import MissingDataError, Pool, Source, require


# ----------------------------------------------------------------------------- loaders
def _read_idx(path: Path) -> np.ndarray:
    with gzip.open(path, "rb") as f:
        data = f.read()
    ndim = data[3]
    dims = np.frombuffer(data, dtype=">u4", count=ndim, offset=4).astype(int)
    return np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * ndim).reshape(dims)


FMNIST_CLASSES = [
    "t-shirt/top",
    "trouser",
    "pullover",
    "dress",
    "coat",
    "sandal",
    "shirt",
    "sneaker",
    "bag",
    "ankle boot",
]


@declare(produces="image", paths={"root": "dataset-fashion-mnist"}, native_image=(28, 28, 1))
def load_fashion_mnist(root: str = "/usr/share/datasets/fashion-mnist") -> Source:
    """Fashion-MNIST from its idx files (Debian `dataset-fashion-mnist`): 60k train, 10k official test."""
    root = require(Path(root), "Fashion-MNIST", "dataset-fashion-mnist")

    def pool(prefix):
        images = _read_idx(
            require(root / f"{prefix}-images-idx3-ubyte.gz", "Fashion-MNIST images", "dataset-fashion-mnist")
        )
        labels = _read_idx(root / f"{prefix}-labels-idx1-ubyte.gz").astype(np.int64)
        return Pool(labels, images=images[..., None])  # N×28×28×1

    return Source("image", FMNIST_CLASSES, pool("train"), pool("t10k"), notes="official test split")


# Noun lexicographer files of WordNet 3.0 (lexnames(5WN)): the supersense of each synset.
NOUN_LEXNAMES = {
    3: "Tops",
    4: "act",
    5: "animal",
    6: "artifact",
    7: "attribute",
    8: "body",
    9: "cognition",
    10: "communication",
    11: "event",
    12: "feeling",
    13: "food",
    14: "group",
    15: "location",
    16: "motive",
    17: "object",
    18: "person",
    19: "phenomenon",
    20: "plant",
    21: "possession",
    22: "process",
    23: "quantity",
    24: "relation",
    25: "shape",
    26: "state",
    27: "substance",
    28: "time",
}


@declare(produces="text", paths={"root": "wordnet-base"})
def load_wordnet_supersenses(root: str = "/usr/share/wordnet", n_classes: int = 10) -> Source:
    """Noun gloss -> supersense. Only the gloss is used: the lemma would make the task a lookup."""
    path = require(Path(root) / "data.noun", "WordNet noun data", "wordnet-base")
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
    texts = np.asarray([g for g, m in zip(glosses, mask, strict=False) if m])
    return Source(
        "text",
        [NOUN_LEXNAMES[int(k)] for k in keep],
        Pool(labels, texts=texts),
        notes=f"{n_classes} largest noun supersenses; gloss only",
    )


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


@declare(produces="image+text", paths={"root": "openclipart-png openclipart-svg"})
def load_openclipart(
    root: str = "/usr/share/openclipart",
    categories: list[str] | None = None,
    image_size: int = 96,
    max_per_class: int = 280,
    seed: int = 0,
    max_pixels: int = 16_000_000,
) -> Source:
    """Clipart image + title -> top-level category. De-duplicated by SVG content (the Debian
    package repeats many artworks as symlinks or copies under several folders)."""
    root = Path(root)
    png_root = require(root / "png", "Open Clip Art PNGs", "openclipart-png")
    svg_root = require(root / "svg", "Open Clip Art SVGs", "openclipart-svg")
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
    return Source(
        "image+text",
        categories,
        Pool(np.asarray(labels, np.int64), np.stack(images), np.asarray(texts)),
        notes=f"{skipped} oversized PNGs skipped; text = title + description",
    )


@declare(produces="image", native_image=(8, 8, 1))
def load_sklearn_digits() -> Source:
    """8×8 digits shipped inside scikit-learn: tiny, for tests."""
    from sklearn.datasets import load_digits

    d = load_digits()
    images = (d.images * (255.0 / 16.0)).round().astype(np.uint8)[..., None]
    texts = np.asarray([f"digit sample {i % 7}" for i in range(len(d.target))])  # uninformative text
    return Source("image", [str(c) for c in d.target_names], Pool(d.target.astype(np.int64), images, texts))


@declare(produces="text", paths={"path": None})
def load_tsv(path: str) -> Source:
    """A `label<TAB>text` file: the simplest way to bring your own text task."""
    rows = [ln.rstrip("\n").split("\t", 1) for ln in Path(path).read_text().splitlines() if ln.strip()]
    bad = [i + 1 for i, r in enumerate(rows) if len(r) != 2]
    if bad:
        raise ValueError(f"{path}: lines {bad[:5]} are not `label<TAB>text`")
    classes = sorted({r[0] for r in rows})
    labels = np.asarray([classes.index(r[0]) for r in rows], np.int64)
    return Source("text", classes, Pool(labels, texts=np.asarray([r[1] for r in rows])))
