"""CosPress (Mannix, Hodgkinson, Bondell, TMLR 2025, "Preserving Angles Improves Feature
Distillation"): a learned compression g of the teachers' space into the student's width that
preserves the cosine similarities between examples, and a student pulled towards g(Φ) by angle.

As the authors' code runs it (emannix/cospress, `Proteus.model_step`), reduced to one feature
vector per example: g = LayerNorm(d_φ) then Linear(d_φ, d_h), learned with the student;
penalty = SNE-KL(Φ, g(Φ)) + mean_i (1 − cos(h_i, g(Φ)_i)). The first term trains g only: the
cosine matrices of Φ and of g(Φ) (diagonal masked) become neighbour distributions softmax(D/τ)
per row, symmetrised over the matrix (their `sne_style: full`), and KL(P‖Q) is averaged over
τ ∈ {0.01, …, 0.10}. The second trains the student only: g(Φ) is detached (their
`freeze_heads_backwards`). The authors weight both 1; β weights their sum here, as for every
method. Their token-level (per patch) term has no counterpart for one vector per example.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from aftbench.methods.base import Penalty

TAUS = tuple(round(0.01 * k, 2) for k in range(1, 11))


def log_neighbour_distribution(x: torch.Tensor, tau: float) -> torch.Tensor:
    """log P over all pairs (i ≠ j; the diagonal is about −1e8, P's diagonal 0): each row's softmax of cosine / τ,
    symmetrised and normalised over the whole matrix (P sums to 1). In log space throughout: at
    τ = 0.01 a far pair's probability is below what float32 holds."""
    z = F.normalize(x, dim=1)
    d = (z @ z.T) / tau
    # the diagonal masked as the authors do (−1e8, not −inf: −inf would make the gradient of the
    # symmetrisation NaN); exp(−1e8) is 0 in any precision
    d = d.masked_fill(torch.eye(len(x), dtype=torch.bool, device=x.device), -1e8)
    logp = torch.log_softmax(d, dim=1)
    sym = torch.logaddexp(logp, logp.T)  # log(p_j|i + p_i|j)
    return sym - torch.logsumexp(sym.flatten(), 0)


def neighbour_distribution(x: torch.Tensor, tau: float) -> torch.Tensor:
    return log_neighbour_distribution(x, tau).exp()


def sne_kl(phi: torch.Tensor, g: torch.Tensor, taus=TAUS) -> torch.Tensor:
    """KL(P_Φ ‖ P_g) averaged over the temperatures: 0 where g keeps every cosine of Φ."""
    total = phi.new_zeros(())
    off = ~torch.eye(len(phi), dtype=torch.bool, device=phi.device)
    for tau in taus:
        logp, logq = log_neighbour_distribution(phi, tau)[off], log_neighbour_distribution(g, tau)[off]
        total = total + (logp.exp() * (logp - logq)).sum()
    return total / len(taus)


class CosPress(Penalty):
    """SNE-KL between the cosines of Φ and of its learned compression g(Φ) (trains g), plus
    1 − cos(h, g(Φ)) (trains the student)."""

    def __init__(self, d_h: int, d_phi: int, lr: float | None = None):
        super().__init__()
        self.compress = nn.Sequential(nn.LayerNorm(d_phi), nn.Linear(d_phi, d_h))
        self.lr = lr

    def forward(self, h, phi):
        g = self.compress(phi)
        angles = (1 - F.cosine_similarity(h, g.detach(), dim=1)).mean()
        return sne_kl(phi, g) + angles
