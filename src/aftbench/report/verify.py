"""Run records are verified before anything is aggregated from them: each must carry the digest
it was written with (`aftbench.core.records.sign_record`) and still match it (no field edited
since), and each input it records (its split, feature caches, targets file) must, where that
artifact is still there, be the one it was computed from. A record that fails is refused with
its file and the command that remakes it: a table never shows a number no run produced, or one
computed from data that has since been replaced. Cost: BENCHMARKS.md (record verification)."""

from __future__ import annotations

from aftbench.core.io import read_json
from aftbench.core.records import signature_problem
from aftbench.teachers.artifacts import digest_now

SHOWN = 10  # problems listed in full; the rest are counted


class RecordError(ValueError):
    """Run records that cannot be aggregated (edited, unsigned, or stale against their inputs)."""


def record_problem(path: str, record: dict, now: dict) -> str | None:
    """What is wrong with one record, or None. `now` caches (kind, path) -> digest now."""
    problem = signature_problem(path, record)
    if problem:
        return problem
    for inp in record.get("inputs", []):
        key = (inp["kind"], inp["path"])
        if key not in now:
            now[key] = digest_now(*key)  # from the sidecars: no large file is re-read
        if now[key] is not None and now[key] != inp["sha256"]:
            return (
                f"{path}: computed from {inp['kind']} {inp['path']} as it was then ({inp['sha256'][:12]}…), "
                f"which has been replaced since ({now[key][:12]}…)"
            )
    return None


def verified_records(paths: list[str]) -> list[dict]:
    """The records at `paths`, each verified (`record_problem`); every failure at once, refused."""
    records, problems, now = [], [], {}
    for p in paths:
        record = read_json(p)
        problem = record_problem(str(p), record, now)
        if problem:
            problems.append((str(p), problem))
        records.append(record)
    if problems:
        listed = "\n".join(f"  - {msg}" for _, msg in problems[:SHOWN])
        more = f"\n  ... and {len(problems) - SHOWN} more" if len(problems) > SHOWN else ""
        files = " ".join(p for p, _ in problems[:SHOWN])
        raise RecordError(
            f"{len(problems)} run record(s) cannot be aggregated:\n{listed}{more}\n"
            f"Remake them from their inputs: `rm {files}{' ...' if more else ''}`, then run snakemake "
            f"(it reruns exactly those runs); nothing was aggregated."
        )
    return records
