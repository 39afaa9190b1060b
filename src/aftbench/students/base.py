"""What every student is: an nn.Module with `features(batch) -> h` (the input of its final
linear classifier `head`, what AFT regularises) and `encode_inputs(pool)`, which turns a split into
tensors once, deterministically (transfer methods train without augmentation: the teacher
features are fixed per example). The archs live in students.image, students.text and
students.multimodal; aftbench.students.registry registers them."""

from __future__ import annotations

import torch
from torch import nn

from aftbench.data.sources import Pool


class Student(nn.Module):
    modality = "image"
    init = "scratch"  # shown in every table: "scratch" or "pretrained:<what>"
    needs_split = False  # True: built with the dataset's split (e.g. a vocabulary from its texts)

    @classmethod
    def meta_forward(cls, args: dict, n_classes: int, batch_size: int):
        """A zero-argument forward of `batch_size` examples, built from the entry's `args` without
        weights on PyTorch's meta device, for aftbench.cost.flops to count; None (the default):
        `cost` builds the arch itself without its weights and counts that."""
        return None

    def encode_inputs(self, pool: Pool) -> dict[str, torch.Tensor]:
        raise NotImplementedError

    def features(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        raise NotImplementedError

    def forward(self, batch):
        h = self.features(batch)
        return self.head(h), h

    def n_params(self) -> int:
        return sum(p.numel() for p in self.parameters())
