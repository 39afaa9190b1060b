"""A finished run is not trained again by a rerun that changed nothing it was computed from.

Snakemake reruns a run whenever one of its inputs is newer than its record: a feature cache that
was damaged, deleted and rebuilt, a split touched by a copy. Snakemake deletes the record before
the job starts, so every finished run keeps a copy of it beside it (`kept_record_path`, not an
output). The job restores that copy instead of training when all of these hold: the copy's
signature is intact; it was made by this aftbench version from this run spec (`spec_sha256`);
every input it records has now, by content, the digest it recorded; and one of those inputs is
newer than the copy (the rerun was caused by a rebuilt or touched input; `--forcerun` or a deleted
record with nothing newer trains again). To retrain in any case, delete the run's folder."""

from __future__ import annotations

import os
import shutil

from aftbench import __version__
from aftbench.core.io import atomic_path, read_json
from aftbench.core.layout import kept_record_path
from aftbench.core.records import signature_problem
from aftbench.teachers.artifacts import digest_now


def keep_record(out_json: str) -> None:
    """Copy a just-written record beside it (after the record itself: the copy is never newer)."""
    with atomic_path(kept_record_path(out_json)) as tmp:
        shutil.copyfile(out_json, tmp)


def restore_unchanged(out_json: str, spec_sha256: str) -> dict | None:
    """The kept record, written back to `out_json`, when the run's inputs really did not change
    (the module's four conditions); None (train) otherwise. Never raises on a bad copy."""
    kept = kept_record_path(out_json)
    try:
        record = read_json(kept)
        kept_at = os.path.getmtime(kept)
    except (OSError, ValueError):
        return None
    inputs = record.get("inputs") or []
    if (
        signature_problem(kept, record)
        or record.get("spec_sha256") != spec_sha256
        or record.get("aftbench_version") != __version__
        or not inputs
        or not any(os.path.exists(i["path"]) and os.path.getmtime(i["path"]) > kept_at for i in inputs)
        or any(digest_now(i["kind"], i["path"], by_content=True) != i["sha256"] for i in inputs)
    ):
        return None
    with atomic_path(out_json) as tmp:
        shutil.copyfile(kept, tmp)
    return record
