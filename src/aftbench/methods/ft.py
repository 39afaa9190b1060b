"""Factor transfer (Kim et al., NeurIPS 2018) on cached teacher features.

A paraphraser (autoencoder) is trained once per (dataset, teacher set) on the *training* split's
teacher features — its own DAG step, `train_paraphraser` (aftbench.train.paraphraser) — and its code
("factors") is cached. During student training a translator maps student features to the factor
space; the penalty is the L1 distance between the L2-normalised translated student factors and
teacher factors, summed over the factor's entries and averaged over the batch (Kim et al.'s
per-example ‖·‖₁, and the AFT reference code's scale: a β here is its β).

Two deliberate differences from the AFT reference code, which regresses the raw teacher
features through a 3-layer MLP: the target is the paraphraser's factor (Kim et al.'s method; the
paraphraser is fitted on the training split only, so validation and test features never shape
it), and the translator is Kim et al.'s (two layers, leaky ReLU)."""

from __future__ import annotations

import torch.nn.functional as F
from torch import nn

from aftbench.methods.base import Penalty


class FactorTransfer(Penalty):
    target_source = "factors"  # Φ = the paraphraser's factors on the training split

    def __init__(self, d_h: int, d_phi: int, rate: float = 0.5, paraphraser_steps: int = 500):
        super().__init__()
        self.translator = nn.Sequential(nn.Linear(d_h, d_h), nn.LeakyReLU(0.1), nn.Linear(d_h, d_phi))

    def param_groups(self) -> list[dict]:
        return [{"params": list(self.translator.parameters())}]

    def forward(self, h, factors):
        return (F.normalize(self.translator(h), dim=1) - F.normalize(factors, dim=1)).abs().sum(dim=1).mean()
