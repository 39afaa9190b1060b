"""The one rule that chooses a cell's configuration on validation: among the runs of one
(dataset, student, method, teacher set, seed) that did not diverge, the highest validation
accuracy; ties go to the smaller β, then the smaller label smoothing (the weaker regulariser).
The test split plays no part. The report applies it to every cell (aftbench.report.build); a
tune-then-refit job applies it to its tune stage before it trains (aftbench.train.refit)."""

from __future__ import annotations

import math


def _number(record: dict, key: str, missing: float) -> float:
    """`record[key]` as a float; `missing` where it is absent, None or NaN."""
    v = record.get(key)
    return missing if v is None or (isinstance(v, float) and math.isnan(v)) else float(v)


def val_rank(record: dict) -> tuple[float, float, float]:
    """A record's place in the choice (smallest first): −val accuracy, β, label smoothing. A run
    fitted on train + val has no validation accuracy and ranks as −(−1): last among any with one."""
    return (-_number(record, "val_acc", -1.0), _number(record, "beta", 0.0), _number(record, "label_smoothing", 0.0))


def pick_on_val(records: list[dict]) -> int | None:
    """The index in `records` of the chosen configuration, or None where every run diverged."""
    kept = [i for i, r in enumerate(records) if not r.get("diverged")]
    return min(kept, key=lambda i: val_rank(records[i])) if kept else None
