"""Method registry: a transfer method is a penalty (aftbench.methods.base.Penalty) added to the
one training loop.

`PENALTIES` maps a method entry's `penalty` to its class, built as cls(d_h, d_φ, **args);
`none` builds nothing: plain cross-entropy (STL). The `probe` method kind is not a penalty: it
is a linear classifier on teacher features (aftbench.train.probe).
"""

from __future__ import annotations

from aftbench.core.registry import Registry
from aftbench.core.roles import NO_PENALTY
from aftbench.methods.aft import AFT, AFTNoKernel, kernel_penalty, product_kernel_penalty, product_target_kernel
from aftbench.methods.base import Penalty
from aftbench.methods.btune import BTuning
from aftbench.methods.cospress import CosPress
from aftbench.methods.ft import FactorTransfer
from aftbench.methods.kd import FeatureKD
from aftbench.methods.logit_kd import LogitKD
from aftbench.methods.rcka import RCKA
from aftbench.methods.rkd import RKD
from aftbench.methods.vkd import VkD

PENALTIES = Registry(
    "penalty",
    {
        NO_PENALTY: None,  # plain cross-entropy (STL)
        "kd": FeatureKD,
        "aft": AFT,  # args: rho_lr, learn_rho (false = the fixed-ρ ablation)
        "aft_nokernel": AFTNoKernel,
        "rkd": RKD,
        "btune": BTuning,  # prepare_targets: its Φ is built from the cached features before training
        "ft": FactorTransfer,  # target_source "factors": Φ comes from the train_paraphraser step
        "logit_kd": LogitKD,  # target_source "probe_logits": Φ = the teacher set's probe logits
        "rcka": RCKA,  # 1 − CKA of the batch Gram matrices (Zhou et al. 2024); args: center, l2_norm
        "cospress": CosPress,  # cosine-preserving compression of Φ + angle loss (Mannix et al. 2025)
        "vkd": VkD,  # orthogonal map, layer-normalised Φ, smooth L1 (Miles et al. 2024)
    },
    injected=("d_h", "d_phi", "dims"),
    base=Penalty,
)


def penalty_class(name: str) -> type[Penalty] | None:
    return PENALTIES.entry(name)


def build_penalty(
    name: str, d_h: int, d_phi: int, args: dict | None = None, dims: list[int] | tuple = ()
) -> Penalty | None:
    cls = PENALTIES.entry(name)
    extra = {"dims": list(dims)} if cls is not None and cls.needs_dims else {}
    return PENALTIES.build(name, args, d_h=d_h, d_phi=d_phi, **extra)


__all__ = [
    "AFT",
    "AFTNoKernel",
    "BTuning",
    "CosPress",
    "FactorTransfer",
    "FeatureKD",
    "LogitKD",
    "PENALTIES",
    "Penalty",
    "RCKA",
    "RKD",
    "VkD",
    "build_penalty",
    "kernel_penalty",
    "product_kernel_penalty",
    "product_target_kernel",
    "penalty_class",
]
