"""B-Tuning (You et al., JMLR 2022) and the LogME evidence it rests on (You et al., ICML 2021).

LogME scores how well features F (n × d) explain one-hot labels with Bayesian linear
regression: prior w ~ N(0, α⁻¹ I), noise N(0, β⁻¹); α, β maximise the evidence (fixed-point
iteration in the SVD basis of F). B-Tuning weights teachers by softmax(evidence / τ), forms the
target  Σ_k π_k F_k M_k  from each teacher's posterior-mean predictions M_k, and pulls the
student's own Bayesian-linear-regression predictions of the labels toward that target. LogME
itself lives in aftbench.selection.transferability (it is also a teacher-selection score).
"""

from __future__ import annotations

import numpy as np
import torch

from aftbench.methods.base import Penalty
from aftbench.selection.transferability import logme


class BTuning(Penalty):
    """Penalty: MSE between the student's batch posterior-mean label predictions (ridge
    regression of the batch's one-hot labels on its standardised features, ridge λ) and the
    LogME-weighted teachers' predictions. `prepare_targets` builds the per-example target once,
    from the cached training features; the labels ride along in the same matrix."""

    def __init__(self, d_h: int, d_phi: int, ridge: float = 1.0, temperature: float = 0.1):
        super().__init__()
        if d_phi % 2:
            raise ValueError("BTuning expects prepared targets [teacher prediction | one-hot label]")
        self.n_classes, self.ridge = d_phi // 2, ridge

    @staticmethod
    def prepare_targets(
        train_feats: np.ndarray, labels: np.ndarray, dims: list[int], n_classes: int, temperature: float = 0.1, **_
    ) -> tuple[np.ndarray, dict]:
        preds, evid, start = [], [], 0
        for d in dims:
            f = train_feats[:, start : start + d]
            f = (f - f.mean(0)) / (f.std() + 1e-12)  # LogME is not scale-free in α, β; standardise
            e, m = logme(f, labels, n_classes)
            evid.append(e)
            preds.append(f @ m)
            start += d
        w = np.exp((np.asarray(evid) - max(evid)) / temperature)
        w /= w.sum()
        target = sum(wk * p for wk, p in zip(w, preds, strict=False))
        onehot = np.eye(n_classes)[labels]
        info = {"logme": [float(e) for e in evid], "teacher_weights": [float(x) for x in w]}
        return np.concatenate([target, onehot], axis=1).astype(np.float32), info

    def param_groups(self) -> list[dict]:
        return []

    def forward(self, h, phi):
        target, y = phi[:, : self.n_classes], phi[:, self.n_classes :]
        hc = h - h.mean(0, keepdim=True)
        hc = hc / (hc.pow(2).mean().sqrt() + 1e-8)
        eye = torch.eye(h.shape[1], dtype=h.dtype, device=h.device)
        w = torch.linalg.solve(hc.T @ hc + self.ridge * eye, hc.T @ y)  # posterior mean, batch ridge
        return ((hc @ w - target) ** 2).mean()
