"""VkD (Miles, Elezi, Deng, CVPR 2024, "VkD: Improving Knowledge Distillation using Orthogonal
Projections"): feature distillation through an orthogonal map and a task-specific
normalisation, as the authors' code runs it for classification (roymiles/VkD, train.py and
engine.py): p = h Wᵀ with W (d_φ × d_h) kept orthogonal during training by PyTorch's orthogonal
parametrisation (orthonormal columns where d_φ ≥ d_h, orthonormal rows otherwise), the teacher
features standardised per example over their width (`layer_norm`, no affine), penalty =
smooth L1 (β = 1) between p and the standardised Φ, mean over entries. W is learned with the
student (its own learning rate `lr`, else the student's); the authors' logit term (KL on a
distillation token) is not part of it.
"""

from __future__ import annotations

import torch.nn.functional as F
from torch import nn
from torch.nn.utils.parametrizations import orthogonal

from aftbench.methods.base import Penalty


class VkD(Penalty):
    """Smooth L1 between the student's features through an orthogonal map and the layer-normalised Φ."""

    def __init__(self, d_h: int, d_phi: int, lr: float | None = None):
        super().__init__()
        self.proj = orthogonal(nn.Linear(d_h, d_phi, bias=False))
        self.lr = lr

    def forward(self, h, phi):
        target = F.layer_norm(phi, phi.shape[-1:])
        return F.smooth_l1_loss(self.proj(h), target)
