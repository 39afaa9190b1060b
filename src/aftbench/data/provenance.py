"""What a split was drawn from: a fingerprint of the source files on disk (every file's relative
path, size and modification time under the dataset's declared data paths), recorded in the split's
sidecar when it is written. Before any job, a split whose sources have changed since (images
added to a folder, a file replaced) is refused with the command that redraws it: the old split
would silently stand for data that no longer exists."""

from __future__ import annotations

import glob
import hashlib
import json
import os
from pathlib import Path

from aftbench.core.declare import resolved
from aftbench.core.layout import sidecar, split_images_dir, split_path


def _files(root: Path):
    if root.is_file():
        yield root, root.name
        return
    for dirpath, dirnames, filenames in os.walk(root, followlinks=False):
        dirnames.sort()
        for name in sorted(filenames):
            p = Path(dirpath) / name
            yield p, str(p.relative_to(root))


def source_fingerprint(paths: dict[str, str]) -> str | None:
    """sha256 of (argument, relative path, size, mtime) of every file under the given data paths;
    None when there are none (hub datasets, generated data)."""
    if not paths:
        return None
    h = hashlib.sha256()
    for key in sorted(paths):
        root = Path(paths[key])
        if not root.exists():
            h.update(f"{key}\0missing\n".encode())
            continue
        for p, rel in _files(root):
            try:
                st = p.stat()
            except OSError:  # a dangling link: part of what the folder holds
                h.update(f"{key}\0{rel}\0dangling\n".encode())
                continue
            h.update(f"{key}\0{rel}\0{st.st_size}\0{st.st_mtime_ns}\n".encode())
    return h.hexdigest()


def split_rebuild_hint(npz_path) -> str:
    """How to redraw a split: its three artifacts removed, then Snakemake."""
    return (
        f"redraw it: `rm -r {npz_path} {sidecar(npz_path)} {split_images_dir(npz_path)}`, then run "
        f"snakemake (everything on this dataset reruns)"
    )


def _local_paths(key: str, value) -> dict[str, str]:
    """{key: path} for a path, a glob (each match), or a list or mapping of them (`data_files`)."""
    if isinstance(value, list):
        return {k: v for i, x in enumerate(value) for k, v in _local_paths(f"{key}[{i}]", x).items()}
    if isinstance(value, dict):
        return {k: v for n, x in sorted(value.items()) for k, v in _local_paths(f"{key}.{n}", x).items()}
    if not isinstance(value, str):
        return {}
    if glob.has_magic(value):
        return {f"{key}:{m}": m for m in sorted(glob.glob(value, recursive=True))} or {key: value}
    return {key: value}


def data_paths(loader_summary: dict, args: dict) -> dict[str, str]:
    """The data paths a loader declares (`paths`, which must exist, and `sources`, which may name
    local files or not: a hub id is fingerprinted as absent, i.e. not at all), defaults applied."""
    values = resolved(loader_summary, args)
    keys = [*loader_summary.get("paths", {}), *loader_summary.get("sources", [])]
    return {k: v for key in keys for k, v in _local_paths(key, values.get(key)).items()}


def stale_splits(config: dict, loaders: dict, datasets) -> list[str]:
    """The existing splits of `datasets` whose source files changed since they were drawn."""
    problems = []
    for did in sorted(datasets):
        meta_path = Path(sidecar(split_path(did)))
        if not meta_path.exists():
            continue
        try:
            meta = json.loads(meta_path.read_text())
        except (OSError, ValueError):
            continue  # the split job rewrites a broken sidecar; nothing to compare yet
        d, recorded = config["datasets"][did], meta.get("source_fingerprint")
        if recorded is None or d["loader"] not in loaders or meta.get("spec") != d:
            continue  # drawn before fingerprints were kept, from a hub dataset, or redrawn anyway (new spec)
        paths = data_paths(loaders[d["loader"]], d.get("args", {}))
        now = source_fingerprint(paths)
        if now != recorded:
            problems.append(
                f"datasets.{did}: its source files changed since results/splits/{did}.npz was drawn (files added, "
                f"removed or modified under {sorted(paths.values())}); {split_rebuild_hint(split_path(did))}"
            )
    return problems
