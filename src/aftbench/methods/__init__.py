"""Method registry: a transfer method is a penalty module added to the one training loop.

`PENALTIES` maps a method entry's `penalty` to a module class built as cls(d_h, d_φ, **args);
`None` means plain cross-entropy (STL). A module exposes `param_groups()` (its own learnable
parameters, optionally with their own learning rate) and `forward(h, phi) -> scalar`.
The `probe` method kind is not a penalty: it is a linear classifier on teacher features
(aftbench.probe).
"""

from __future__ import annotations

from .aft import AFT, AFTNoKernel, kernel_penalty
from .btune import BTuning
from .ft import FactorTransfer
from .logit_kd import LogitKD
from .kd import FeatureKD
from .rkd import RKD

PENALTIES = {
    "none": None,
    "kd": FeatureKD,
    "aft": AFT,  # args: rho_lr, learn_rho (false = the fixed-ρ ablation)
    "aft_nokernel": AFTNoKernel,
    "rkd": RKD,
    "btune": BTuning,  # has prepare_targets: its Φ is built from the cached features before training
    "ft": FactorTransfer,  # target_source "factors": Φ comes from the train_paraphraser step
    "logit_kd": LogitKD,  # target_source "probe_logits": Φ = the teacher set's probe logits
}


def target_source(name: str) -> str | None:
    """Where a penalty's Φ comes from when it is not the cached teacher features."""
    return getattr(PENALTIES.get(name), "target_source", None)


def build_penalty(name: str, d_h: int, d_phi: int, args: dict | None = None):
    if name not in PENALTIES:
        raise KeyError(f"unknown penalty {name!r}; known: {sorted(PENALTIES)}")
    cls = PENALTIES[name]
    return None if cls is None else cls(d_h, d_phi, **(args or {}))


__all__ = ["AFT", "AFTNoKernel", "BTuning", "FactorTransfer", "FeatureKD", "LogitKD", "PENALTIES", "RKD", "build_penalty", "kernel_penalty",
           "target_source"]
