"""The feature cache of one (dataset, teacher): how it is stored (float16 where lossless
enough), read back and checked against the split it was computed on, concatenated per teacher
set, and rescaled the one way every consumer rescales it."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from .io import read_json
from .splits import SPLITS


def store_dtype(f, store: str, tol: float = 1e-3) -> tuple[np.ndarray, dict]:
    """float16 where lossless enough (`store: auto`): the rounding error is at most `tol` of the
    matrix in relative Frobenius norm (what kernels and MSE penalties see), no entry moves by
    more than 10 × tol × the matrix RMS, and nothing overflows or flushes to zero wholesale;
    else float32. Says what it chose and the measured error. `f` (numpy, or a tensor on any
    device: the check runs where the features are and only the chosen dtype is copied back)."""
    f = torch.as_tensor(f).float()
    if store == "float32":
        return f.cpu().numpy(), {"dtype": "float32"}
    half = f.half()
    d = half.float() - f
    norm = float(torch.linalg.vector_norm(f, dtype=torch.float64)) or 1.0  # float64: no overflow
    rel = float(torch.linalg.vector_norm(d, dtype=torch.float64)) / norm if f.numel() else 0.0
    worst = float(d.abs().max()) / (norm / f.numel() ** 0.5) if f.numel() else 0.0
    finite = bool(torch.isfinite(half).all())
    ok = finite and rel <= tol and worst <= 10 * tol
    info = {"relative_error": rel, "max_error_over_rms": worst}
    if store == "float16" and not ok:
        raise ValueError(
            f"features do not fit float16 (relative error {rel:.2g}, max {worst:.2g} × RMS, finite={finite})"
        )
    if ok:
        return half.cpu().numpy(), {"dtype": "float16", **info}
    return f.cpu().numpy(), {"dtype": "float32", "float16": info}


def pooled_std(matrices) -> float:
    """Standard deviation of every entry of several matrices together, without concatenating them."""
    n = total = total_sq = 0.0
    for m in matrices:
        for i in range(0, len(m), 4096):  # float64 sums, 4,096 rows at a time
            c = m[i : i + 4096].astype(np.float64)
            n, total, total_sq = n + c.size, total + c.sum(), total_sq + (c * c).sum()
    return float(np.sqrt(max(total_sq / n - (total / n) ** 2, 0.0))) if n else 0.0


def rms_scale(train_feats: np.ndarray) -> float:
    """The one scalar every consumer divides cached features by (train-split RMS), so penalties
    such as KD's MSE see a sane scale whatever the teacher; scale-free ones (AFT) are unaffected."""
    return float(np.sqrt((train_feats**2).mean())) or 1.0


@dataclass
class CachedFeatures:
    """Cached features of a teacher set: per-split matrices (teachers concatenated in the set's
    order), each teacher's dimension (to split ρ back per teacher) and whether it is pre-trained."""

    splits: dict[str, np.ndarray]
    dims: list[int]
    pretrained: list[bool]


def load_features(paths: list[str], split_sha256: str, teacher_ids: list[str]) -> CachedFeatures:
    """Load and concatenate cached features of several teachers, checking each cache was
    computed on exactly this split artifact and is complete."""
    from safetensors.numpy import load_file

    per_split: dict[str, list] = {s: [] for s in SPLITS}
    dims, pretrained = [], []
    for tid, path in zip(teacher_ids, paths, strict=True):
        meta = read_json(Path(path).with_suffix(".json"))
        if meta["split_sha256"] != split_sha256:
            raise ValueError(
                f"feature cache {path} (teacher {tid!r}) was computed on another split "
                f"({meta['split_sha256'][:12]} != {split_sha256[:12]}); delete it and rerun"
            )
        try:
            arrays = load_file(path)
        except Exception as err:
            raise ValueError(f"corrupt feature cache {path} (teacher {tid!r}): {err}. Delete it and rerun.") from None
        for s in SPLITS:
            if s not in arrays or list(arrays[s].shape) != meta["shapes"][s]:
                raise ValueError(f"feature cache {path} (teacher {tid!r}) lacks a complete {s!r} matrix")
            per_split[s].append(arrays[s].astype(np.float32, copy=False))  # float16 caches widen here
        dims.append(int(meta["dim"]))
        pretrained.append(bool(meta["pretrained"]))
    return CachedFeatures({s: np.concatenate(v, axis=1) for s, v in per_split.items()}, dims, pretrained)
