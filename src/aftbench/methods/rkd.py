"""Relational knowledge distillation (Park et al., CVPR 2019): match the *structure* of the
batch — pairwise distances (normalised by their mean) and triplet angles — with smooth-L1.
No learned parameters: student and teacher dimensions may differ."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


def distance_loss(h: torch.Tensor, phi: torch.Tensor) -> torch.Tensor:
    def normalised_pdist(x):
        d = torch.cdist(x, x)
        off_diag = d[~torch.eye(len(x), dtype=torch.bool, device=x.device)]
        return d / off_diag.mean().clamp_min(1e-12)

    with torch.no_grad():
        t = normalised_pdist(phi)
    return F.smooth_l1_loss(normalised_pdist(h), t)


def angle_loss(h: torch.Tensor, phi: torch.Tensor) -> torch.Tensor:
    def angles(x):
        e = F.normalize(x.unsqueeze(0) - x.unsqueeze(1), p=2, dim=2)  # e[j, i] = unit(x_i - x_j)
        return torch.bmm(e, e.transpose(1, 2)).reshape(-1)  # cos of angle i-j-k, all triplets

    with torch.no_grad():
        t = angles(phi)
    return F.smooth_l1_loss(angles(h), t)


class RKD(nn.Module):
    def __init__(self, d_h: int, d_phi: int, dist_weight: float = 1.0, angle_weight: float = 2.0):
        super().__init__()
        # Park et al. use 25 and 50 with their CE; only the ratio matters here since β scales both.
        self.dist_weight, self.angle_weight = dist_weight, angle_weight

    def param_groups(self) -> list[dict]:
        return []

    def forward(self, h, phi):
        return self.dist_weight * distance_loss(h, phi) + self.angle_weight * angle_loss(h, phi)
