"""A transfer method defined outside aftbench: the worked example of docs/plugins.md.

Cosine feature distillation: a learned linear map W takes the student's features h to the
teachers' width, and the penalty is the mean of 1 − cos(W h, φ) over the batch (angles only,
so the teachers' scale does not matter). Put this file's folder on PYTHONPATH and name the
module in config.yaml:

    plugins: [cosine_penalty]
    methods:
      cos: {kind: train, penalty: cosine, beta: [1.0, 4.0]}
"""

from __future__ import annotations

import torch.nn.functional as F
from torch import nn

from aftbench.plugins import Penalty, declare, register_method


@register_method("cosine")
@declare(choices={"reduction": ("mean", "sum")})
class CosineDistill(Penalty):
    """1 − cos(W h, φ) per example, averaged (or summed) over the batch; W learned with the student."""

    target_scale = "raw"  # scale-free: the cached features reach the penalty as they are

    def __init__(self, d_h: int, d_phi: int, reduction: str = "mean"):
        super().__init__()
        self.proj = nn.Linear(d_h, d_phi)
        self.reduction = reduction

    def forward(self, h, phi):
        loss = 1 - F.cosine_similarity(self.proj(h), phi, dim=1)
        return loss.mean() if self.reduction == "mean" else loss.sum()
