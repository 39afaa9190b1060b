"""One record per finished run, written by training and by the probe (metrics.json): the fields
every record has, in one order, and the rule that marks a run diverged. A record's `role` comes
from aftbench.core.roles."""

from __future__ import annotations

from aftbench import __version__
from aftbench.core.io import file_sha256, write_json

# A run diverged when the mean training CE of its last steps exceeds this × its first step's CE
# (divergence_check); it is recorded, never reported as a result.
DIVERGENCE_FACTOR = 1.25

# Fields every record has, in this order (each writer adds its own after them).
COMMON_FIELDS = (
    "run_id",
    "kind",
    "role",
    "dataset",
    "modality",
    "student",
    "student_arch",
    "student_init",
    "student_params",
    "method",
    "penalty",
    "teacher_set",
    "teachers",
    "beta",
    "seed",
    "val_acc",
    "test_acc",
    "checkpoint",
    "train_seconds",
)


def divergence_window(steps: int) -> int:
    """The last steps whose mean cross-entropy judges divergence: 10% of the run, at least 5."""
    return min(steps, max(5, steps // 10))


def divergence_check(first_ce: float, final_ce: float, window: int) -> dict:
    """A run diverged when its training loss ended well above where it started: the mean
    cross-entropy of its last `window` steps (10% of the run, at least 5) exceeds 1.25 × the
    cross-entropy of its first step (≈ log(classes) at init). Such a run is recorded, never
    reported as a result: tables leave it out of means and β selection never picks it."""
    diverged = bool(final_ce > DIVERGENCE_FACTOR * first_ce)
    return {
        "diverged": diverged,
        "first_ce": first_ce,
        "final_ce_mean": final_ce,
        "window_steps": window,
        "rule": f"mean CE of the last {window} steps {final_ce:.4g} "
        f"{'>' if diverged else '<='} {DIVERGENCE_FACTOR} × first-step CE {first_ce:.4g}",
    }


def write_run_record(out_json: str, inputs: list[dict] | None = None, **fields) -> dict:
    """metrics.json of one run: the common fields (all required) first, then the writer's own,
    then what it was computed from (`inputs`: `run_input` entries, the run spec's digest, the code
    version) and the record's own digest (`sign_record`)."""
    missing = [k for k in COMMON_FIELDS if k not in fields]
    if missing:
        raise KeyError(f"run record for {out_json} lacks {missing}")
    record = {k: fields[k] for k in COMMON_FIELDS} | {k: v for k, v in fields.items() if k not in COMMON_FIELDS}
    record["inputs"] = list(inputs or [])
    record["aftbench_version"] = __version__
    record = sign_record(record)
    write_json(out_json, record)
    return record


def run_input(kind: str, path: str, sha256: str) -> dict:
    """One input of a run as its record keeps it: what it is (`split`, `features`, `targets`),
    where it was and the digest it had when the run read it (aftbench.report.verify compares it
    with the artifact there now)."""
    return {"kind": kind, "path": str(path), "sha256": sha256}


def run_inputs(split_path, split_sha256: str, feature_paths=(), feature_digests=(), targets_path=None) -> list[dict]:
    """A run's inputs as its record keeps them: the split (its verified SHA-256), each feature
    cache (its verified cache digest) and a targets file (its bytes' SHA-256)."""
    out = [run_input("split", split_path, split_sha256)]
    out += [run_input("features", p, d) for p, d in zip(feature_paths, feature_digests, strict=True)]
    if targets_path:
        out.append(run_input("targets", targets_path, file_sha256(targets_path)))
    return out


RECORD_DIGEST = "record_sha256"


def record_digest(record: dict) -> str:
    """SHA-256 of a record's canonical JSON (sorted keys, compact), its own digest left out."""
    import hashlib
    import json

    body = {k: v for k, v in record.items() if k != RECORD_DIGEST}
    return hashlib.sha256(json.dumps(body, sort_keys=True, separators=(",", ":"), allow_nan=False).encode()).hexdigest()


def sign_record(record: dict) -> dict:
    """The record with its digest (`record_sha256`): any later edit of a field shows."""
    return {**record, RECORD_DIGEST: record_digest(record)}


def signature_problem(path, record: dict) -> str | None:
    """Why a record's own digest fails (none, or not its content), or None."""
    if RECORD_DIGEST not in record:
        return f"{path}: carries no digest (written by hand, or by an aftbench older than signed records)"
    if record_digest(record) != record[RECORD_DIGEST]:
        return f"{path}: edited since its run wrote it (its content no longer matches its digest)"
    return None


def encode_predictions(pred, correct) -> dict:
    """Per-example test outcomes, compact (a record stays small at 10,000 test examples): the
    predicted class of each test example in split order (uint16, little-endian, base64) and
    whether it was right (numpy.packbits, base64). The report pairs runs example by example."""
    import base64

    import numpy as np

    pred = np.asarray(pred).astype("<u2")
    correct = np.asarray(correct, bool)
    return {
        "test_pred": base64.b64encode(pred.tobytes()).decode(),
        "test_correct": f"{len(correct)}:{base64.b64encode(np.packbits(correct).tobytes()).decode()}",
    }


def decode_correct(text):
    """The boolean array `encode_predictions` packed into `test_correct`, or None (no predictions:
    a record written before they were saved, or a hand-made one)."""
    import base64

    import numpy as np

    if not isinstance(text, str) or ":" not in text:
        return None
    n, bits = text.split(":", 1)
    return np.unpackbits(np.frombuffer(base64.b64decode(bits), np.uint8))[: int(n)].astype(bool)
