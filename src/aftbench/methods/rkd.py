"""Relational knowledge distillation (Park et al., CVPR 2019): match the *structure* of the
batch — pairwise distances (normalised by their mean) and triplet angles — with smooth-L1.
No learned parameters: student and teacher dimensions may differ."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from aftbench.methods.base import Penalty


def distance_loss(h: torch.Tensor, phi: torch.Tensor) -> torch.Tensor:
    def normalised_pdist(x):
        d = torch.cdist(x, x)
        off_diag = d[~torch.eye(len(x), dtype=torch.bool, device=x.device)]
        return d / off_diag.mean().clamp_min(1e-12)

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
    def __init__(self, d_h: int, d_phi: int, dist_weight: float = 1.0, angle_weight: float = 2.0):
        super().__init__()
        # Park et al. use 25 and 50 with their CE; only the ratio matters here since β scales both.
        self.dist_weight, self.angle_weight = dist_weight, angle_weight

    def param_groups(self) -> list[dict]:
        return []

    def forward(self, h, phi):
        return self.dist_weight * distance_loss(h, phi) + self.angle_weight * angle_loss(h, phi)
