"""The digest an input artifact of a run has now: a split, a teacher's feature cache, a targets
file (FT's factors, a probe's logits). One home for what a run record's `inputs` are compared
against: by aggregation (from the sidecars, which were verified when the artifacts were read) and
by a rerun deciding whether a finished run's inputs really changed (by content)."""

from __future__ import annotations

from pathlib import Path

from aftbench.core.io import file_sha256, read_json
from aftbench.core.layout import sidecar
from aftbench.data.splits import verify_split
from aftbench.teachers.features import cache_digest, verify_cache


def digest_now(kind: str, path: str, by_content: bool = False) -> str | None:
    """The digest of the artifact at `path` as it is now, or None when it is gone or unreadable
    (nothing to compare). `by_content`: hash every byte and refuse nothing (a damaged artifact
    has no digest: None), instead of trusting its sidecar."""
    try:
        if kind == "targets":
            return file_sha256(path) if Path(path).exists() else None
        if kind == "split":
            meta = read_json(sidecar(path))
            if by_content:
                verify_split(path, meta)
            return meta.get("sha256")
        if kind == "features":
            return verify_cache(path) if by_content else cache_digest(read_json(sidecar(path)))
    except (FileNotFoundError, ValueError):  # MissingDataError is a FileNotFoundError
        return None
    return None
