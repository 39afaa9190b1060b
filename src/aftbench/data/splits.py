"""Splits: a dataset's fixed train/val/test partition, drawn and written once.

`make_split` draws a fixed, seeded, stratified train/val/test split once and writes it as a `.npz` artifact
(labels, source row numbers, texts as unicode arrays; no pickle) with a JSON sidecar, and the
images of each part as a uint8 `.npy` file in a folder beside it (`split_images_dir`). The
images are memory-mapped when read, so a 20 GB split (Food-101 at 256 px) is neither held in
memory by the job that writes it nor by the jobs that read it. Everything downstream
(teachers, students) reads these artifacts, never the raw files.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from aftbench.core.declare import summarize
from aftbench.core.io import atomic_path, file_sha256, read_json, write_json
from aftbench.core.layout import split_images_dir
from aftbench.data.provenance import data_paths, source_fingerprint, split_rebuild_hint
from aftbench.data.registry import LOADERS, load_source
from aftbench.data.sources import LazyImages, MissingDataError, Pool, Source

SPLITS = ("train", "val", "test")


# ----------------------------------------------------------------------------- splits
def _stratified_pick(labels: np.ndarray, n: int, rng: np.random.Generator) -> np.ndarray:
    """n indices drawn with the class proportions of `labels` (sklearn's stratified split)."""
    from sklearn.model_selection import train_test_split

    if n > len(labels):
        raise ValueError(f"asked for {n} examples but only {len(labels)} are available")
    idx = np.arange(len(labels))
    if n == len(labels):
        return idx
    picked, _ = train_test_split(idx, train_size=n, stratify=labels, random_state=int(rng.integers(2**31 - 1)))
    return np.sort(picked)


def build_split(spec: dict, dataset_id: str = "?") -> tuple[Source, dict[str, Pool]]:
    """Load the source named by `spec['loader']` and draw the seeded stratified split. Asking for
    more examples than the data holds is refused, naming the keys (never silently clamped)."""
    src = load_source(spec)
    rng = np.random.default_rng(spec.get("split_seed", 0))
    n_tr, n_va, n_te = spec["n_train"], spec["n_val"], spec["n_test"]
    pool, where = src.train, f"datasets.{dataset_id}"
    if src.test is not None and n_te > len(src.test.labels):
        raise ValueError(
            f"{where}.n_test: {n_te} exceeds the {len(src.test.labels)} examples of its official test "
            f"split; lower n_test"
        )
    if src.test is None and n_tr + n_va + n_te > len(pool.labels):
        raise ValueError(
            f"{where}: n_train + n_val + n_test = {n_tr} + {n_va} + {n_te} exceeds the "
            f"{len(pool.labels)} examples it holds (it has no official test split); lower them"
        )
    if src.test is not None and n_tr + n_va > len(pool.labels):
        raise ValueError(
            f"{where}: n_train + n_val = {n_tr} + {n_va} exceeds the {len(pool.labels)} examples of "
            f"its training pool; lower n_train or n_val"
        )
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


_IMAGE_PATH = re.compile(r"\S+\.(png|jpe?g|bmp|gif|webp|tiff?)", re.I)

_NUMBERS = re.compile(r"[-+0-9.,;\s]+")


def check_texts(dataset_id: str, loader: str, texts: np.ndarray) -> None:
    """Refuse texts that are not text: image file paths or rows of numbers (a pixel table) read
    by a text loader would become a text task whose "words" are file names or pixel values."""
    if texts is None or not len(texts):
        return
    sample = [str(t).strip() for t in texts[:1000]]
    for pattern, what, fix in (
        (_IMAGE_PATH, "image file paths", "an image column: `loader: hf_dataset` with `image_field`"),
        (
            _NUMBERS,
            "numbers only (a pixel or feature table?)",
            "images as image files, one folder per class, with `loader: hf_dataset`",
        ),
    ):
        hits = sum(bool(pattern.fullmatch(t)) for t in sample)
        if hits > len(sample) / 2:
            raise ValueError(
                f"datasets.{dataset_id}: {hits} of the first {len(sample)} texts from loader {loader!r} "
                f"are {what}, e.g. {sample[0][:80]!r}; they are not text. Use {fix} "
                f"(docs/configuration.md: Add a dataset)"
            )


def make_split(dataset_id: str, spec: dict, out_npz: str, out_json: str) -> None:
    loader = summarize(LOADERS.entry(spec["loader"]))
    fingerprint = source_fingerprint(data_paths(loader, spec.get("args", {})))  # before reading: what it read
    src, parts = build_split(spec, dataset_id)
    if spec.get("modality", src.modality) != src.modality:
        raise ValueError(
            f"datasets.{dataset_id}.modality: declared {spec['modality']!r}, but loader "
            f"{spec['loader']!r} produced {src.modality!r} data with these args; set `modality: "
            f"{src.modality}` or change the args"
        )
    if "text" in src.modality.split("+"):
        check_texts(dataset_id, spec["loader"], parts["train"].texts)
    images_dir = Path(split_images_dir(out_npz))
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
                raise ValueError(
                    f"dataset {dataset_id!r}: {name} images are {shape} but train images are "
                    f"{image_shape}; set `image_size` in its args"
                )
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
        "source_fingerprint": fingerprint,
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
        raise ValueError(
            f"corrupt split images {path}: {images.dtype} {images.shape}, expected uint8 "
            f"({n}, {', '.join(map(str, shape))}). {redo}"
        )
    return images


def verify_split(npz_path, meta: dict) -> None:
    """Refuse a split whose files are not the ones its sidecar recorded when it was drawn (the
    SHA-256 of the npz, then its image files): a file swapped for another split seed's, edited or
    truncated since. Hashes every byte (as feature caches are checked): its cost is in BENCHMARKS.md."""
    npz_path = Path(npz_path)
    files = [npz_path] + [Path(split_images_dir(npz_path)) / f for f in meta.get("image_files") or []]
    missing = [str(f) for f in files if not f.exists()]
    if missing:
        raise MissingDataError(f"split artifact missing: {', '.join(missing)}; {split_rebuild_hint(npz_path)}")
    if "sha256" not in meta:
        raise ValueError(f"split sidecar {npz_path.with_suffix('.json')} has no sha256; {split_rebuild_hint(npz_path)}")
    if file_sha256(*files) != meta["sha256"]:
        raise ValueError(
            f"split {npz_path} is not the split that was drawn: its bytes differ from the SHA-256 its "
            f"sidecar recorded ({meta['sha256'][:12]}…): replaced (another split seed's file?), edited or "
            f"corrupted since; {split_rebuild_hint(npz_path)}"
        )


def load_split(npz_path: str, json_path: str | None = None, verify: bool = True) -> Split:
    """A split artifact, verified first (`verify_split`) unless `verify` is False (the caller
    checked it already)."""
    npz_path = Path(npz_path)
    json_path = Path(json_path) if json_path else npz_path.with_suffix(".json")
    meta = read_json(json_path)
    if verify:
        verify_split(npz_path, meta)
    try:
        with np.load(npz_path, allow_pickle=False) as z:
            data = {k: z[k] for k in z.files}
    except FileNotFoundError:
        raise MissingDataError(f"split artifact missing: {npz_path}") from None
    except Exception as err:  # zipfile.BadZipFile, ValueError, ...
        raise ValueError(f"corrupt split artifact {npz_path}: {err}; {split_rebuild_hint(npz_path)}") from None
    images_dir, files = Path(split_images_dir(npz_path)), meta.get("image_files")

    def images(part):
        if files is None:  # written before aftbench kept images beside the npz: they are inside it
            return data.get(f"{part}_images")
        n = len(data[f"{part}_labels"])
        return (
            _load_images(images_dir / f"{part}.npy", n, meta["image_shape"], npz_path)
            if f"{part}.npy" in files
            else None
        )

    parts = {s: Pool(data[f"{s}_labels"], images(s), data.get(f"{s}_texts"), data.get(f"{s}_index")) for s in SPLITS}
    return Split(meta["dataset"], meta["modality"], list(data["classes"]), parts, meta["sha256"])
