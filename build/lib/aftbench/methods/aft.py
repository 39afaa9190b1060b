"""Adaptive Feature Transfer: the kernel-form regulariser of Qiu et al. (ICML 2024), docs/method.md."""

from __future__ import annotations

import torch
from torch import nn

from .base import Penalty

EPS = 1e-8


def _centred_unit_rows(x: torch.Tensor) -> torch.Tensor:
    x = x - x.mean(dim=0, keepdim=True)
    return x / (x.norm(dim=1, keepdim=True) + EPS)


def kernel_penalty(h: torch.Tensor, phi: torch.Tensor, rho: torch.Tensor) -> torch.Tensor:
    """R = sqrt(mean((K - K_rho)^2) + eps) with K = H Hᵀ and K_rho = T Tᵀ, T = Φ ⊙ ρ, where both
    H and T are centred over the batch and L2-normalised per row.

    h: student features (B × d_h); phi: teacher features (B × d_φ); rho: weights (d_φ,) in (0, 1).
    """
    hn = _centred_unit_rows(h)
    tn = _centred_unit_rows(phi * rho)
    k, k_rho = hn @ hn.T, tn @ tn.T
    return torch.sqrt(((k - k_rho) ** 2).mean() + EPS)


class AFT(Penalty):
    """ρ = sigmoid(s), s learned (own learning rate) jointly with the student."""

    def __init__(self, d_h: int, d_phi: int, rho_lr: float = 1e-2, learn_rho: bool = True):
        super().__init__()
        # s = 0 -> ρ = 0.5 everywhere. It is a Parameter with requires_grad, so ρ really moves
        # (the reference code's default leaves it at 0.5).
        self.s = nn.Parameter(torch.zeros(d_phi), requires_grad=learn_rho)
        self.rho_lr = rho_lr

    @property
    def rho(self) -> torch.Tensor:
        return torch.sigmoid(self.s)

    def param_groups(self) -> list[dict]:
        return [{"params": [self.s], "lr": self.rho_lr}] if self.s.requires_grad else []

    def forward(self, h, phi):
        return kernel_penalty(h, phi, self.rho)


class AFTNoKernel(Penalty):
    """Ablation: AFT without the kernel. A learned linear map from teacher to student features,
    MSE between the centred student features and the centred mapped teacher features."""

    def __init__(self, d_h: int, d_phi: int):
        super().__init__()
        self.map = nn.Linear(d_phi, d_h, bias=False)

    def param_groups(self) -> list[dict]:
        return [{"params": list(self.map.parameters())}]

    def forward(self, h, phi):
        hc = h - h.mean(dim=0, keepdim=True)
        tc = self.map(phi - phi.mean(dim=0, keepdim=True))
        return ((hc - tc) ** 2).mean()
