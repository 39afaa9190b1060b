"""How the teachers of a union are balanced before they are concatenated into Φ (a method's
`union_norm`), from each teacher's training-split statistics only:

- `per_teacher`: centred, divided by one scalar per teacher (its training RMS after centring):
  every teacher weighs the same and keeps its geometry;
- `phi_s`: PHI-S (Ranzinger et al. 2024, "PHI-S: Distribution Balancing for Label-Free
  Multi-Teacher Distillation"): centred, rotated onto its principal axes, rotated again by an
  orthogonal matrix that spreads the variance evenly over the axes (a normalised Hadamard matrix
  where the width is a power of 2, as in the paper; otherwise Givens rotations that reach the same
  equal diagonal, Bendel & Mickey 1978), divided by the same scalar: every column of every teacher
  then has unit training variance, and each teacher's geometry is kept up to that one scale.
"""

from __future__ import annotations

import numpy as np
from scipy.linalg import hadamard

UNION_NORMS = ("none", "per_teacher", "phi_s")


def equal_variance_rotation(variances: np.ndarray) -> np.ndarray:
    """An orthogonal Q (d × d) with diag(Qᵀ diag(variances) Q) = mean(variances) in every entry."""
    lam = np.asarray(variances, np.float64)
    d = len(lam)
    if d & (d - 1) == 0:  # a power of 2 (1 included): Sylvester's Hadamard matrix, as PHI-S
        return hadamard(d).astype(np.float64) / np.sqrt(d)
    a, q, target = np.diag(lam), np.eye(d), lam.mean()
    tol = 1e-12 * max(abs(target), 1e-300)
    for _ in range(d - 1):  # each rotation sets one more diagonal entry to the mean
        diag = np.diag(a) - target
        low, high = np.flatnonzero(diag < -tol), np.flatnonzero(diag > tol)
        if not len(low) or not len(high):
            break
        i, j = low[0], high[0]
        # rotate in the (i, j) plane so that the new a_ii = target: (a_jj − t) τ² − 2 a_ij τ + (a_ii − t) = 0
        aii, ajj, aij = a[i, i] - target, a[j, j] - target, a[i, j]
        tau = (aij + np.sqrt(aij * aij - ajj * aii)) / ajj
        c = 1.0 / np.sqrt(1.0 + tau * tau)
        s = c * tau
        g = np.array([[c, s], [-s, c]])  # columns i, j of the Givens matrix, restricted to rows i, j
        idx = [i, j]
        a[:, idx] = a[:, idx] @ g
        a[idx, :] = g.T @ a[idx, :]
        q[:, idx] = q[:, idx] @ g
    return q


def fit_balance(train: np.ndarray, dims: list[int], mode: str) -> list[tuple[slice, np.ndarray, np.ndarray, float]]:
    """Per teacher: its columns (of the `dims` blocks), its training mean, the map its centred
    columns are multiplied by (None for `per_teacher`: the identity) and its scale."""
    edges = np.cumsum([0, *dims])
    out = []
    for a, b in zip(edges[:-1], edges[1:], strict=True):
        x = train[:, a:b].astype(np.float64)
        mu = x.mean(0)
        xc = x - mu
        scale = float(np.sqrt((xc**2).mean())) or 1.0
        rot = None
        if mode == "phi_s":
            lam, u = np.linalg.eigh(xc.T @ xc / len(xc))
            rot = u @ equal_variance_rotation(np.clip(lam, 0, None))
        elif mode != "per_teacher":
            raise ValueError(f"union_norm {mode!r}: expected one of {', '.join(UNION_NORMS[1:])}")
        out.append((slice(a, b), mu, rot, scale))
    return out


def apply_balance(x: np.ndarray, fitted) -> np.ndarray:
    """The features x (n × Σdims) with each teacher's block centred, rotated and scaled as fitted."""
    cols = []
    for cols_of, mu, rot, scale in fitted:
        xc = x[:, cols_of].astype(np.float64) - mu
        cols.append((xc if rot is None else xc @ rot) / scale)
    return np.concatenate(cols, axis=1).astype(np.float32)
