"""What a dataset loader returns: labelled examples (`Pool`) of a source dataset (`Source`),
images decoded lazily where a library holds them (`LazyImages`), and the error that says how to
get missing data."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np


class MissingDataError(FileNotFoundError):
    pass


def require(path: Path, what: str, package: str) -> Path:
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

    def take(self, idx: np.ndarray) -> Pool:
        pick = lambda a: None if a is None else a[idx]  # noqa: E731
        return Pool(self.labels[idx], pick(self.images), pick(self.texts), self.index[idx])


@dataclass
class Source:
    modality: str  # "image" | "text" | "image+text"
    classes: list[str]
    train: Pool
    test: Pool | None = None  # the official test split, where the dataset has one
    notes: str = ""


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

    def __getitem__(self, idx) -> LazyImages:
        return LazyImages(self.get, self.rows[idx], self.size)

    def _one(self, row) -> np.ndarray:
        from PIL import Image

        im = self.get(int(row)).convert("RGB")
        if self.size:
            scale = self.size / min(im.size)
            im = im.resize(
                (max(self.size, round(im.width * scale)), max(self.size, round(im.height * scale))),
                Image.Resampling.BICUBIC,
            )
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
                raise ValueError(
                    f"source image {int(row)} is {im.shape[1]}×{im.shape[0]} but the first one is "
                    f"{first.shape[1]}×{first.shape[0]}; set `image_size` in the dataset's args so "
                    f"every image is resized and centre-cropped to one square size"
                )
            out[i] = im
        out.flush()
        del out
