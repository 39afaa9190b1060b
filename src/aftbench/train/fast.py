"""The fast paths of a training step, each a `train:` switch with a default per device.

- `tf32` (auto: on for CUDA): float32 matmuls and convolutions on tensor cores as TF32 (10-bit
  mantissa, float32 range; what `torch.set_float32_matmul_precision("high")` selects). The
  losses, the optimiser and the checkpoint stay float32.
- `channels_last` (auto: on for a student with 2-d convolutions on CUDA): the student's weights,
  and so its activations, in NHWC, the layout cuDNN's fastest convolutions use.
- `compile` (false): `torch.compile` of the student's forward for the training steps (evaluation
  runs eager: other batch shapes). It costs a compilation of tens of seconds per job, so it pays
  only for long runs; the first run of a shape is slower.

On the CPU every switch at its default leaves the step the plain eager one, bit for bit
(channels_last and tf32 are CUDA-only under `auto`). What each run used is in its record
(`fast_paths`). Results with a switch on stay within the tolerance BENCHMARKS.md states for it.
"""

from __future__ import annotations

import torch

SWITCHES = ("tf32", "channels_last", "compile")


def _convolutional(module: torch.nn.Module) -> bool:
    return any(isinstance(m, torch.nn.Conv2d) for m in module.modules())


def resolve(cfg, device: torch.device, student: torch.nn.Module) -> dict[str, bool]:
    """Each switch's value for this run: the config's true/false, or its `auto` default on `device`."""
    cuda = device.type == "cuda"
    auto = {"tf32": cuda, "channels_last": cuda and _convolutional(student), "compile": False}
    return {k: auto[k] if getattr(cfg, k) == "auto" else bool(getattr(cfg, k)) for k in SWITCHES}


def apply(student: torch.nn.Module, switches: dict[str, bool]):
    """Set the process's matmul precision, move the student to its memory format, and return what
    the training step calls (the student, or its compiled forward)."""
    torch.set_float32_matmul_precision("high" if switches["tf32"] else "highest")
    torch.backends.cudnn.allow_tf32 = switches["tf32"]
    if switches["channels_last"]:
        student.to(memory_format=torch.channels_last)
    return torch.compile(student) if switches["compile"] else student
