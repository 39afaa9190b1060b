"""The base class of every penalty: what the training loop may ask of a transfer method.

A penalty is built as cls(d_h, d_φ, **args) (student feature width, target width, the method's
`args` from config.yaml) and added to cross-entropy as β · penalty(input, Φ[batch]). The hooks
below have defaults, so a penalty overrides only what it changes:

- `target_source`: where Φ comes from. None = the cached teacher features; "factors" = a
  factor-transfer paraphraser's output (the `train_paraphraser` step); "probe_logits" = the
  teacher set's probe logits (the `probe` step).
- `target_scale`: how cached features reach the penalty: "rms" divided by one scalar, their
  training split's RMS (teachers of any scale mean the same β); "raw" as cached (the reference
  code's choice). Scale-free penalties (AFT's normalised kernels, RKD's normalised distances and
  angles) are unaffected. A penalty that takes a `target_scale` argument lets a method choose;
  the run records the mode and the RMS (`target_scale` in metrics.json).
- `uses_logits`: the penalty compares the student's logits, not its features h.
- `prepare_targets`: turns the cached training features into the per-example Φ once, before
  training (B-Tuning's LogME-weighted predictions); returns (Φ, info for metrics.json or None).
- `needs_initial_features` / `fit_initial(h, labels)`: the penalty sees the student's features
  of every fitted example once, before the first step (B-Tuning's fixed LogME map of the
  initial student); what it keeps must be a buffer, so a resumed run restores it.
- `param_groups`: the penalty's own learnable parameters, optionally with their own lr (never
  weight decay: the training loop decays the student only).
"""

from __future__ import annotations

import numpy as np
from torch import nn


class Penalty(nn.Module):
    target_source: str | None = None
    target_scale: str = "rms"
    uses_logits: bool = False
    needs_dims: bool = False  # True: built with `dims`, the width of each teacher in Φ (in set order)
    needs_initial_features: bool = False  # True: fit_initial sees the initial student's features once

    def fit_initial(self, h: np.ndarray, labels: np.ndarray) -> None:
        """Called once before the first step with the initial student's features of the fitted examples."""

    @staticmethod
    def prepare_targets(
        train_feats: np.ndarray, labels: np.ndarray, dims: list[int], n_classes: int, **args
    ) -> tuple[np.ndarray, dict | None]:
        return train_feats, None

    lr: float | None = None  # the penalty's own learning rate (None: the student's)

    def param_groups(self) -> list[dict]:
        """One group of every parameter, at `lr` where the penalty sets one."""
        if not any(True for _ in self.parameters()):
            return []
        return [{"params": list(self.parameters()), **({"lr": self.lr} if self.lr is not None else {})}]

    def forward(self, x, phi):
        raise NotImplementedError
