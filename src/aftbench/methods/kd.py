"""Feature distillation as the AFT paper's reference code runs it: a learned linear map from
student features to teacher features, penalty = mean squared error over all entries, against the
raw cached features. `target_scale: rms` divides the features by their training RMS r first
(the same β then means the same for teachers of any scale); that run's reference-equivalent β is
β / r², r recorded as `target_scale.train_rms` in its metrics.json (docs/method.md)."""

from __future__ import annotations

from torch import nn

from aftbench.core.declare import declare
from aftbench.methods.base import Penalty


@declare(choices={"target_scale": ("raw", "rms")})
class FeatureKD(Penalty):
    target_scale = "raw"

    def __init__(self, d_h: int, d_phi: int, lr: float | None = None, target_scale: str = "raw"):
        super().__init__()
        self.proj = nn.Linear(d_h, d_phi)
        self.lr = lr  # None: the student's learning rate
        self.target_scale = target_scale  # applied by the training loop before Φ reaches forward

    def forward(self, h, phi):
        return ((self.proj(h) - phi) ** 2).mean()
