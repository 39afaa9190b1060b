"""Before any job: every split and feature cache the sweep reads that is already on disk is
checked by content (`verify_split`, `verify_cache`), so a damaged one is refused before Snakemake
deletes anything downstream of it, in one message naming each file and its fix, instead of each
consumer failing on it in turn after its finished outputs were removed.

Hashing every byte on every start would cost ~0.85 s/GB (BENCHMARKS.md): each file's size and
mtime are remembered once it verified (`VERIFIED_MEMO`), and only an artifact whose files changed
since is hashed again. Only the Snakemake main process and `validate` run it (jobs do not)."""

from __future__ import annotations

import os
from pathlib import Path

from aftbench.core.io import read_json, write_json
from aftbench.core.layout import RESULTS, features_path, sidecar, split_images_dir, split_path
from aftbench.data.splits import verify_split
from aftbench.selection.adaptive import scored_sets
from aftbench.sweep.runs import teachers_of
from aftbench.teachers.features import verify_cache

VERIFIED_MEMO = f"{RESULTS}/verified.json"  # path -> the size and mtime of its files when it verified


def sweep_artifacts(config: dict) -> tuple[list[str], list[str]]:
    """The split of every dataset and the cache of every (dataset, teacher) the sweep reads."""
    pairs = scored_sets(config)  # every teacher set a block trains on or selects from
    datasets = sorted({d for b in config["sweeps"][config["sweep"]] for d in b["datasets"]})
    caches = sorted({features_path(d, t) for d, ts in pairs for t in teachers_of(config, ts)})
    return [split_path(d) for d in datasets], caches


def _files(kind: str, path: str) -> list[Path] | None:
    """The files an existing artifact is made of (None: not there, or not finished: nothing to check)."""
    meta = Path(sidecar(path))
    if not (Path(path).exists() and meta.exists()):
        return None
    files = [Path(path), meta]
    if kind == "split":
        try:
            files += [Path(split_images_dir(path)) / f for f in read_json(meta).get("image_files") or []]
        except ValueError:
            pass  # an unreadable sidecar: the check below names it
    return files


def _stamp(files: list[Path]) -> list[list[int]]:
    out = []
    for f in files:
        st = f.stat() if f.exists() else None
        out.append([st.st_size, st.st_mtime_ns] if st else [-1, -1])
    return out


def _problem(kind: str, path: str) -> str | None:
    try:
        if kind == "split":
            verify_split(path, read_json(sidecar(path)))
        else:
            verify_cache(path)
    except (OSError, ValueError) as err:
        return str(err)
    return None


def damaged_artifacts(config: dict, memo_path: str = VERIFIED_MEMO) -> list[str]:
    """One line per existing split or cache of the sweep that fails its content check (empty: all good)."""
    splits, caches = sweep_artifacts(config)
    try:
        memo = read_json(memo_path)
    except (OSError, ValueError):
        memo = {}
    fresh, problems, seen = {}, [], set()
    for kind, path in [("split", p) for p in splits] + [("features", p) for p in caches]:
        files = _files(kind, path)
        seen.add(path)
        if files is None:
            continue
        stamp = _stamp(files)
        if memo.get(path) == stamp:
            fresh[path] = stamp
            continue
        problem = _problem(kind, path)
        if problem:
            problems.append(problem)
        else:
            fresh[path] = stamp
    kept = {p: s for p, s in memo.items() if p not in seen and os.path.exists(p)}  # other sweeps' artifacts
    if fresh and {**kept, **fresh} != memo:
        try:
            write_json(memo_path, {**kept, **fresh})
        except OSError:
            pass  # a memo that cannot be written (a full disk): the next start hashes again, nothing else

    return problems
