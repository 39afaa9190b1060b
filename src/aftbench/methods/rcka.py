"""RCKA (Zhou et al., IJCAI 2024, "Rethinking Centered Kernel Alignment in Knowledge
Distillation"): the student's and the teachers' features are compared through the alignment of
their batch Gram matrices, penalty = 1 − CKA(Φ, h).

As the authors' code computes it (`CenterKernelAlignment` in Klayand/Distill_Knowledge,
distiller/CKA.py): K = X Xᵀ per side (B × B, so student and teacher widths may differ and no
map is learned), each row i of K divided by √K_ii (`l2_norm`, their default), then
CKA = ⟨K_Φ, K_h⟩_F / (‖K_Φ‖_F ‖K_h‖_F). Their Gram matrices are not centred (`center: false`,
the default here); `center: true` centres each side's features over the batch first, the
textbook linear CKA (Kornblith et al. 2019). Their loss is −CKA (a constant apart from this
one) weighted 15 on logits; here it is a feature penalty weighted by β like every other method
(same grid). The authors' second, class-relation term (Gram matrices of the transposed logits)
needs equal widths and is left out for features.
"""

from __future__ import annotations

import torch

from aftbench.methods.base import Penalty


def gram(x: torch.Tensor, center: bool, l2_norm: bool) -> torch.Tensor:
    if center:
        x = x - x.mean(0, keepdim=True)
    k = x @ x.T
    if l2_norm:  # row i over √K_ii, as the reference code does (K is then no longer symmetric)
        k = k / k.diagonal().clamp_min(1e-12).sqrt()[:, None]
    return k


def cka(x: torch.Tensor, y: torch.Tensor, center: bool = False, l2_norm: bool = True) -> torch.Tensor:
    """The alignment of the batch Gram matrices of x (B × d) and y (B × d')."""
    kx, ky = gram(x, center, l2_norm), gram(y, center, l2_norm)
    return (kx * ky).sum() / (kx.norm() * ky.norm()).clamp_min(1e-12)


class RCKA(Penalty):
    """1 − CKA of the batch Gram matrices of Φ and h (RCKA's loss; no learned map)."""

    def __init__(self, d_h: int, d_phi: int, center: bool = False, l2_norm: bool = True):
        super().__init__()
        self.center, self.l2_norm = center, l2_norm

    def forward(self, h, phi):
        return 1 - cka(phi, h, self.center, self.l2_norm)
