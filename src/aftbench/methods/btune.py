"""B-Tuning (You et al., JMLR 2022) and the LogME evidence it rests on (You et al., ICML 2021).

LogME scores how well features F (n × d) explain one-hot labels with Bayesian linear
regression: prior w ~ N(0, α⁻¹ I), noise N(0, β⁻¹); α, β maximise the evidence (fixed-point
iteration in the SVD basis of F). B-Tuning weights teachers by softmax(evidence / τ), forms the
target  Σ_k π_k F_k M_k  from each teacher's posterior-mean predictions M_k, and pulls the
student's predictions h · M_s toward that target, M_s the LogME posterior mean of the initial
student's features (fixed, as the AFT reference code does). LogME
itself lives in aftbench.selection.transferability (it is also a teacher-selection score).
"""

from __future__ import annotations

import numpy as np
import torch

from aftbench.core.declare import declare
from aftbench.methods.base import Penalty
from aftbench.selection.transferability import logme


@declare(choices={"student_map": ("initial", "batch")})
class BTuning(Penalty):
    """Penalty: MSE between the student's label predictions and the LogME-weighted teachers'
    predictions. `prepare_targets` builds the per-example teacher target once, from the cached
    training features (the labels ride along in the same matrix).

    `student_map: initial` (the default, the AFT reference code's B-Tuning): the student's
    predictions are h · M, M the LogME posterior mean of the *initial* student's features on the
    fitted examples (computed once before the first step, `fit_initial`, and kept fixed).
    `student_map: batch`: M is refitted on every batch, ridge regression of the batch's one-hot
    labels on its standardised features (λ = `ridge`): a different regulariser whose β is not
    the reference's."""

    needs_initial_features = True

    def __init__(
        self, d_h: int, d_phi: int, ridge: float = 1.0, temperature: float = 0.1, student_map: str = "initial"
    ):
        super().__init__()
        if d_phi % 2:
            raise ValueError("BTuning expects prepared targets [teacher prediction | one-hot label]")
        self.n_classes, self.ridge, self.student_map = d_phi // 2, ridge, student_map
        self.register_buffer("initial_map", torch.zeros(d_h, self.n_classes))  # M, saved with checkpoints

    def fit_initial(self, h: np.ndarray, labels: np.ndarray) -> None:
        """M = the LogME posterior mean of the initial student's features for the one-hot labels."""
        if self.student_map == "initial":
            _, m = logme(np.asarray(h, np.float64), labels, self.n_classes)
            self.initial_map.copy_(torch.from_numpy(np.asarray(m, np.float32)))

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
        if self.student_map == "initial":
            return ((h @ self.initial_map.to(h.dtype) - target) ** 2).mean()
        hc = h - h.mean(0, keepdim=True)
        hc = hc / (hc.pow(2).mean().sqrt() + 1e-8)
        eye = torch.eye(h.shape[1], dtype=h.dtype, device=h.device)
        w = torch.linalg.solve(hc.T @ hc + self.ridge * eye, hc.T @ y)  # posterior mean, batch ridge
        return ((hc @ w - target) ** 2).mean()
