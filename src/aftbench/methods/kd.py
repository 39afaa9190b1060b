"""Feature distillation as the AFT paper runs it: a learned linear map from student features to
teacher features, penalty = mean squared error over all entries."""

from __future__ import annotations

from torch import nn

from aftbench.methods.base import Penalty


class FeatureKD(Penalty):
    def __init__(self, d_h: int, d_phi: int, lr: float | None = None):
        super().__init__()
        self.proj = nn.Linear(d_h, d_phi)
        self.lr = lr  # None: the student's learning rate

    def param_groups(self) -> list[dict]:
        group = {"params": list(self.proj.parameters())}
        if self.lr is not None:
            group["lr"] = self.lr
        return [group]

    def forward(self, h, phi):
        return ((self.proj(h) - phi) ** 2).mean()
