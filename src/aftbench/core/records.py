"""One record per finished run, written by training and by the probe (metrics.json): the fields
every record has, in one order, and the rule that marks a run diverged. A record's `role` comes
from aftbench.core.roles."""

from __future__ import annotations

from aftbench.core.io import write_json

# A run diverged when the mean training CE of its last steps exceeds this × its first step's CE
# (aftbench.train.loop.divergence_check); it is recorded, never reported as a result.
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


def write_run_record(out_json: str, **fields) -> dict:
    """metrics.json of one run: the common fields (all required) first, then the writer's own."""
    missing = [k for k in COMMON_FIELDS if k not in fields]
    if missing:
        raise KeyError(f"run record for {out_json} lacks {missing}")
    record = {k: fields[k] for k in COMMON_FIELDS} | {k: v for k, v in fields.items() if k not in COMMON_FIELDS}
    write_json(out_json, record)
    return record


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
