"""Which torch device a job runs on, and the autocast it may use there."""

from __future__ import annotations

import torch


def resolve_device(name: str) -> torch.device:
    """`cpu`, `cuda`, `cuda:N` or `auto` (cuda when available)."""
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise RuntimeError(f"device {name!r} requested but CUDA is not available")
    return torch.device(name)


def autocast(device: torch.device, enabled: bool):
    """bf16 autocast on GPUs; on the CPU it would be slower than fp32, so it stays off there."""
    return torch.autocast(device.type, dtype=torch.bfloat16, enabled=bool(enabled) and device.type == "cuda")
