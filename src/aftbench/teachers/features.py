"""The feature cache of one (dataset, teacher): how it is stored (float16 where lossless
enough), read back and checked against the split it was computed on, concatenated per teacher
set, and rescaled the one way every consumer rescales it."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from aftbench.core.io import atomic_path, read_json, write_json
from aftbench.core.layout import sidecar
from aftbench.data.splits import SPLITS
from aftbench.teachers.balance import apply_balance, fit_balance


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
    """The train-split RMS of cached features: the one scalar a penalty with `target_scale: rms`
    (and the FT paraphraser) divides them by; scale-free penalties (AFT) are unaffected."""
    return float(np.sqrt((train_feats**2).mean())) or 1.0


# What a feature cache is, embedded in the safetensors file's own header (so it travels with the
# tensors and is covered by the consumers' input checks); the JSON sidecar repeats it for people.
IDENTITY = ("teacher", "dataset", "split_sha256", "modality", "pretrained", "spec")


def cache_digest(facts: dict) -> str:
    """One digest for a feature cache: its identity and every matrix's shape, dtype and content
    digest (from its header, or its sidecar, which must agree). What a run records of its caches."""
    keys = (*IDENTITY, "shapes", "dtypes", "tensor_sha256")
    return hashlib.sha256(json.dumps({k: facts.get(k) for k in keys}, sort_keys=True).encode()).hexdigest()


def tensor_sha256(a: np.ndarray) -> str:
    """SHA-256 of a matrix's bytes (C order); its shape and dtype are checked separately."""
    return hashlib.sha256(np.ascontiguousarray(a).view(np.uint8).data).hexdigest()


def write_cache(out_path: str, out_json: str, feats: dict[str, np.ndarray], identity: dict, details: dict) -> dict:
    """Write a (dataset, teacher) cache: the matrices with their identity and content digests in
    the file's header, then the sidecar (identity + digests + `details`: timing, versions, ...)."""
    from safetensors.numpy import save_file

    facts = {
        **{k: identity[k] for k in IDENTITY},
        "shapes": {k: list(v.shape) for k, v in feats.items()},
        "dtypes": {k: str(v.dtype) for k, v in feats.items()},
        "tensor_sha256": {k: tensor_sha256(v) for k, v in feats.items()},
    }
    with atomic_path(out_path) as tmp:
        save_file(feats, str(tmp), metadata={"aftbench": json.dumps(facts, sort_keys=True)})
    write_json(out_json, {**facts, **details})
    return facts


def rebuild_hint(path) -> str:
    return (
        f"rebuild it: `rm {path} {sidecar(path)}`, then run snakemake again (it re-extracts this teacher and "
        f"reruns what used it)"
    )


def _embedded_facts(path: str, tid: str) -> dict | None:
    from safetensors import safe_open

    try:
        with safe_open(path, "np") as f:
            header = f.metadata() or {}
    except Exception as err:
        raise ValueError(f"corrupt feature cache {path} (teacher {tid!r}): {err}; {rebuild_hint(path)}") from None
    if "aftbench" not in header:
        return None
    try:
        return json.loads(header["aftbench"])
    except ValueError:
        raise ValueError(
            f"feature cache {path} (teacher {tid!r}): unreadable identity header; {rebuild_hint(path)}"
        ) from None


@dataclass
class CachedFeatures:
    """Cached features of a teacher set: per-split matrices (teachers concatenated in the set's
    order), each teacher's dimension (to split ρ back per teacher) and whether it is pre-trained."""

    splits: dict[str, np.ndarray]
    dims: list[int]
    pretrained: list[bool]
    dtypes: list[str] = field(default_factory=list)  # each teacher's storage dtype
    digests: list[str] = field(default_factory=list)  # each teacher's cache_digest, verified at load

    def noise_null(self, name: str) -> CachedFeatures:
        """The matched noise null of these features: i.i.d. N(0, 1) of the same shapes, each
        teacher's columns rounded through its storage dtype, fixed per example (seeded by `name`,
        the null's teacher-set id: every run of it sees the same features), not pre-trained."""
        seed = int.from_bytes(hashlib.sha256(name.encode()).digest()[:8], "little")
        rng = np.random.default_rng(seed)
        out = {}
        for s in SPLITS:
            cols = [
                rng.standard_normal((len(self.splits[s]), d)).astype(dtype).astype(np.float32)
                for d, dtype in zip(self.dims, self.dtypes or ["float32"] * len(self.dims), strict=True)
            ]
            out[s] = np.concatenate(cols, axis=1)
        return CachedFeatures(out, list(self.dims), [False] * len(self.dims), list(self.dtypes), list(self.digests))

    def balanced(self, mode: str) -> tuple[CachedFeatures, list[float]]:
        """Each teacher's columns balanced on the training split's statistics alone before the
        union (aftbench.teachers.balance: `per_teacher` centres and divides by one scalar per
        teacher; `phi_s` also rotates each teacher to equal per-column variance). Returns the
        features and each teacher's scale (its training RMS after centring)."""
        fitted = fit_balance(self.splits["train"], self.dims, mode)
        out = {s: apply_balance(x, fitted) for s, x in self.splits.items()}
        return CachedFeatures(out, list(self.dims), list(self.pretrained), list(self.dtypes), list(self.digests)), [
            scale for *_, scale in fitted
        ]


def _cache_facts(path: str, tid: str) -> dict:
    """The identity a cache carries in its own header, after checking that its sidecar says the
    same and that it is teacher `tid`'s."""
    facts = _embedded_facts(path, tid)
    meta_path = sidecar(path)
    meta = read_json(meta_path) if Path(meta_path).exists() else None
    if facts is None:  # aftbench writes its identity into every cache's header
        raise ValueError(
            f"feature cache {path} (teacher {tid!r}) is not the file that was extracted (its header lacks "
            f"the identity aftbench writes): replaced since; {rebuild_hint(path)}"
        )
    if meta is not None:
        edited = [k for k in (*IDENTITY, "shapes", "tensor_sha256") if meta.get(k) != facts.get(k)]
        if edited or ("dim" in meta and any(meta["dim"] != v[1] for v in facts["shapes"].values())):
            raise ValueError(
                f"sidecar {meta_path} disagrees with the cache it describes ({edited or ['dim']}): "
                f"it was edited or belongs to another cache; {rebuild_hint(path)}"
            )
    if facts["teacher"] != tid:
        raise ValueError(f"feature cache {path} holds teacher {facts['teacher']!r}, not {tid!r}; {rebuild_hint(path)}")
    return facts


def _cache_arrays(path: str, tid: str, facts: dict) -> dict[str, np.ndarray]:
    """The cache's matrices, each with the shape, dtype and content digest its header recorded, all finite."""
    from safetensors.numpy import load_file

    try:
        arrays = load_file(path)
    except Exception as err:
        raise ValueError(f"corrupt feature cache {path} (teacher {tid!r}): {err}; {rebuild_hint(path)}") from None
    for s in SPLITS:
        if s not in arrays or list(arrays[s].shape) != facts["shapes"][s]:
            raise ValueError(
                f"feature cache {path} (teacher {tid!r}) lacks a complete {s!r} matrix; {rebuild_hint(path)}"
            )
        a = arrays[s]
        if str(a.dtype) != facts["dtypes"][s]:
            raise ValueError(
                f"feature cache {path} ({s}): dtype {a.dtype}, recorded {facts['dtypes'][s]}; {rebuild_hint(path)}"
            )
        if tensor_sha256(a) != facts["tensor_sha256"][s]:
            raise ValueError(
                f"feature cache {path} (teacher {tid!r}, split {s!r}): its content differs from "
                f"what was written at extraction (digest mismatch: replaced or corrupted since); "
                f"{rebuild_hint(path)}"
            )
        if not np.isfinite(a).all():
            bad = int(a.size - np.isfinite(a).sum())
            raise ValueError(
                f"feature cache {path} (teacher {tid!r}, split {s!r}) holds {bad} non-finite "
                f"entries (NaN/Inf) of {a.size}; {rebuild_hint(path)}"
            )
    return arrays


def verify_cache(path: str) -> str:
    """Check one cache by content against what was written at extraction (header, sidecar, every
    matrix's digest, finiteness; not which split it belongs to: Snakemake re-extracts a cache whose
    split was redrawn). Returns its `cache_digest`; raises ValueError naming the fix."""
    tid = Path(path).name.removesuffix(".safetensors")
    facts = _cache_facts(path, tid)
    _cache_arrays(path, tid, facts)
    return cache_digest(facts)


def load_features(paths: list[str], split_sha256: str, teacher_ids: list[str]) -> CachedFeatures:
    """Load and concatenate cached features of several teachers after verifying each one: it was
    computed for this teacher on exactly this split artifact, every matrix has the shape, dtype and
    content digest recorded when it was written, every entry is finite, and its sidecar says the
    same. What the consumers use (dims, pre-trained or not) comes from the verified file itself.
    A mismatch is refused, naming the file, what differs and how to rebuild it."""
    per_split: dict[str, list] = {s: [] for s in SPLITS}
    dims, pretrained, dtypes, digests = [], [], [], []
    for tid, path in zip(teacher_ids, paths, strict=True):
        facts = _cache_facts(path, tid)
        if facts["split_sha256"] != split_sha256:
            raise ValueError(
                f"feature cache {path} (teacher {tid!r}) was computed on another split "
                f"({facts['split_sha256'][:12]} != {split_sha256[:12]}); {rebuild_hint(path)}"
            )
        arrays = _cache_arrays(path, tid, facts)
        for s in SPLITS:
            per_split[s].append(arrays[s].astype(np.float32, copy=False))  # float16 caches widen here
        dims.append(int(arrays["train"].shape[1]))
        pretrained.append(bool(facts["pretrained"]))
        dtypes.append(str(arrays["train"].dtype))
        digests.append(cache_digest(facts))
    # one teacher: its matrices as they are (concatenating one would copy them for nothing)
    joined = {s: v[0] if len(v) == 1 else np.concatenate(v, axis=1) for s, v in per_split.items()}
    return CachedFeatures(joined, dims, pretrained, dtypes, digests)
