"""What every teacher backend is: a frozen feature extractor with its own eval preprocessing,
run on one device (aftbench.teachers.extract drives it), and the facts about it that others read
from its class without building it: how `cost` counts its forward, which argument caps a
text's tokens, whether extraction may hand it inputs already on the GPU. The backends live in
teachers.image, teachers.text and teachers.controls; teachers.registry registers them."""

from __future__ import annotations

import inspect

import numpy as np
import torch

from aftbench.core.device import autocast


class Teacher:
    """A frozen feature extractor. `preprocess(inputs)` turns a batch of raw inputs into model
    inputs on the CPU (it may run in DataLoader worker processes); `forward(batch)` runs the
    model on `self.device` (under autocast when `self.amp`) and returns float32 rows.
    Backends without a torch model only implement `forward` on raw inputs."""

    modality = "image"  # which field of the examples the teacher reads: "image" or "text"
    pretrained = True
    batch_size = 64
    device = torch.device("cpu")
    amp = False

    # Facts read from the class (aftbench.cost, aftbench.teachers.extract), declared per backend:
    counts_flops = True  # False: no network runs (table look-ups, noise, one small projection): 0 FLOPs
    token_limit: str | None = None  # the argument capping a text's tokens: `cost` prices a forward
    # at the dataset's mean tokens up to its value
    accepts_device_inputs = False  # extraction may hand `preprocess` uint8 batches already on the GPU
    transforms_on_device = False  # `transform_on_device` runs the eval transform there (overlapped)

    @classmethod
    def meta_forward(cls, **args):
        """A zero-argument forward of one example on PyTorch's meta device, built from the
        backend's config arguments without weights (aftbench.cost.flops counts its FLOPs). Every
        backend with `counts_flops` declares one."""
        raise NotImplementedError(
            f"teacher backend {cls.__name__} runs a network (counts_flops) but declares no meta_forward: "
            f"add one to its class"
        )

    @classmethod
    def arg_default(cls, name: str):
        """The default of one of the backend's config arguments (from its signature)."""
        return inspect.signature(cls).parameters[name].default

    @property
    def dim(self) -> int:
        raise NotImplementedError

    def preprocessing(self) -> str:
        raise NotImplementedError

    def prepare(self, train_inputs) -> None:
        """Hook run once before extraction with the unlabelled training inputs."""

    def preprocess(self, inputs):
        return inputs

    def forward(self, batch) -> np.ndarray:
        raise NotImplementedError

    def encode(self, inputs) -> np.ndarray:
        return self.forward(self.preprocess(inputs))

    def transform_on_device(self, x: torch.Tensor) -> torch.Tensor:
        """The eval transform of a uint8 batch already on the device (backends that set
        `transforms_on_device` override it)."""
        return x

    def forward_on_device(self, batch) -> torch.Tensor:
        """`forward`, its rows left where they are made (backends on a GPU override it to keep
        them there)."""
        return torch.from_numpy(self.forward(batch))

    def to(self, device, amp: bool = False) -> Teacher:
        self.device, self.amp = torch.device(device), bool(amp)
        if isinstance(getattr(self, "model", None), torch.nn.Module):
            self.model.to(self.device)
        return self

    def _on_device(self, x):
        if isinstance(x, dict):
            return {k: v.to(self.device, non_blocking=True) for k, v in x.items()}
        return x.to(self.device, non_blocking=True)

    def _autocast(self):
        return autocast(self.device, self.amp)
