"""Relational knowledge distillation (Park et al., CVPR 2019): match the *structure* of the
batch — pairwise distances (normalised by the mean of the positive ones) and triplet angles —
with smooth-L1. No learned parameters: student and teacher dimensions may differ. The default
weights give the AFT reference code's loss, (distance + 2 · angle) / 2, so a β here is its β."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from aftbench.methods.base import Penalty


def distance_loss(h: torch.Tensor, phi: torch.Tensor) -> torch.Tensor:
    def normalised_pdist(x):
        d = torch.cdist(x, x)
        positive = d[d > 0]  # the diagonal and duplicate rows carry no scale
        return d / (positive.mean() if len(positive) else d.new_tensor(1.0))

    with torch.no_grad():
        t = normalised_pdist(phi)
    return F.smooth_l1_loss(normalised_pdist(h), t)


def triplet_cosines(x: torch.Tensor, eps: float = 1e-12) -> torch.Tensor:
    """cos of the angle at x_j between x_i and x_k, for all (j, i, k), flattened; 0 where i = j
    or k = j. Computed from the Gram matrix G = X Xᵀ:
        <x_i - x_j, x_k - x_j> = G_ik - G_ij - G_jk + G_jj,   |x_i - x_j|² = G_ii + G_jj - 2 G_ij,
    so the cost is O(B³) scalars, not the O(B² d) tensor of explicit difference vectors."""
    g = x @ x.T
    diag = g.diagonal()
    # clamp before sqrt: a zero distance (the diagonal) must not send an infinite gradient back
    norms = (diag[:, None] + diag[None, :] - 2 * g).clamp_min(eps * eps).sqrt()  # |x_i - x_j|
    gj = g.unsqueeze(1)  # [j, 1, k] -> G_jk
    num = g.unsqueeze(0) - g.T.unsqueeze(2) - gj + diag[:, None, None]  # [j, i, k]
    cos = num / (norms.unsqueeze(2) * norms.unsqueeze(1))  # norms[j, i] * norms[j, k]
    same = torch.eye(len(x), dtype=torch.bool, device=x.device)
    cos = cos.masked_fill(same.unsqueeze(2) | same.unsqueeze(1), 0.0)  # i = j or k = j
    return cos.reshape(-1)


def angle_loss(h: torch.Tensor, phi: torch.Tensor) -> torch.Tensor:
    with torch.no_grad():
        t = triplet_cosines(phi)
    return F.smooth_l1_loss(triplet_cosines(h), t)


class RKD(Penalty):
    def __init__(self, d_h: int, d_phi: int, dist_weight: float = 0.5, angle_weight: float = 1.0):
        super().__init__()
        # (dist + 2·angle)/2, the AFT reference's RKD; Park et al. weight them 25 and 50 beside
        # their cross-entropy: the same 1:2 ratio, β = 50 here.
        self.dist_weight, self.angle_weight = dist_weight, angle_weight

    def param_groups(self) -> list[dict]:
        return []

    def forward(self, h, phi):
        return self.dist_weight * distance_loss(h, phi) + self.angle_weight * angle_loss(h, phi)
