"""Adaptive Feature Transfer: the kernel-form regulariser of Qiu et al. (ICML 2024), docs/method.md."""

from __future__ import annotations

import torch
from torch import nn

from aftbench.methods.base import Penalty

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


def product_target_kernel(phi: torch.Tensor, rho: torch.Tensor, dims: list[int]) -> torch.Tensor:
    """The teacher kernel of the tensor-product target T = (Φ_1 ⊙ ρ_1) ⊗ (Φ_2 ⊙ ρ_2) ⊗ …
    (one factor per teacher, split by `dims`), centred over the batch and L2-normalised per row
    like every AFT target, without materialising T (d_1 × d_2 × … columns): its Gram matrix is
    the elementwise product of the factors' Gram matrices, centring T is double-centring that
    matrix, and unit rows divide by the square roots of its diagonal."""
    k = None
    for f in torch.split(phi * rho, list(dims), dim=1):
        k = f @ f.T if k is None else k * (f @ f.T)
    k = k - k.mean(dim=0, keepdim=True) - k.mean(dim=1, keepdim=True) + k.mean()
    norm = k.diagonal().clamp_min(0).sqrt() + EPS
    return k / norm[:, None] / norm[None, :]


def product_kernel_penalty(h: torch.Tensor, phi: torch.Tensor, rho: torch.Tensor, dims: list[int]) -> torch.Tensor:
    """kernel_penalty with the tensor-product teacher target (the paper's SNLI-VE setting, where
    the student's h is the outer product of its image and text embeddings)."""
    hn = _centred_unit_rows(h)
    return torch.sqrt(((hn @ hn.T - product_target_kernel(phi, rho, dims)) ** 2).mean() + EPS)


class AFT(Penalty):
    """ρ = sigmoid(s), s learned (own learning rate) jointly with the student. `tensor_product`:
    the teacher target is the tensor product of the set's teachers (image ⊗ text) instead of
    their concatenation, as the reference code does for SNLI-VE (pair it with a student whose
    h is an outer product, e.g. clip_two_tower with combine: outer)."""

    needs_dims = True

    def __init__(
        self,
        d_h: int,
        d_phi: int,
        rho_lr: float = 1e-2,
        learn_rho: bool = True,
        tensor_product: bool = False,
        dims: list[int] | None = None,
    ):
        super().__init__()
        # s = 0 -> ρ = 0.5 everywhere. It is a Parameter with requires_grad, so ρ really moves
        # (the reference code's default leaves it at 0.5).
        self.s = nn.Parameter(torch.zeros(d_phi), requires_grad=learn_rho)
        self.rho_lr = rho_lr
        self.dims = list(dims or [d_phi])
        if tensor_product and len(self.dims) < 2:
            raise ValueError(
                f"aft tensor_product: the teacher set has {len(self.dims)} teacher(s); a tensor product "
                f"needs two or more (e.g. an image and a text teacher)"
            )
        self.tensor_product = tensor_product

    @property
    def rho(self) -> torch.Tensor:
        return torch.sigmoid(self.s)

    def param_groups(self) -> list[dict]:
        return [{"params": [self.s], "lr": self.rho_lr}] if self.s.requires_grad else []

    def forward(self, h, phi):
        if self.tensor_product:
            return product_kernel_penalty(h, phi, self.rho, self.dims)
        return kernel_penalty(h, phi, self.rho)


class AFTNoKernel(Penalty):
    """Ablation: AFT without the kernel. A learned linear map from teacher to student features,
    MSE between the centred student features and the centred mapped teacher features."""

    def __init__(self, d_h: int, d_phi: int, lr: float = 1e-2):
        super().__init__()
        self.map = nn.Linear(d_phi, d_h, bias=False)
        self.lr = lr  # the penalty lr, as in the reference code (not the student's)

    def param_groups(self) -> list[dict]:
        return [{"params": list(self.map.parameters()), "lr": self.lr}]

    def forward(self, h, phi):
        hc = h - h.mean(dim=0, keepdim=True)
        tc = self.map(phi - phi.mean(dim=0, keepdim=True))
        return ((hc - tc) ** 2).mean()
