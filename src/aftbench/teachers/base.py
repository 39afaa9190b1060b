"""What every teacher backend is: a frozen feature extractor with its own eval preprocessing,
run on one device (aftbench.teachers.extract drives it). The backends live in image_teachers,
text_teachers and control_teachers; aftbench.teachers.registry registers them."""

from __future__ import annotations

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
