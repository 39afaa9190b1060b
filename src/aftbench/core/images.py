"""Image batches between the split's uint8 arrays and what models take: float tensors in
[0, 1], uint8 NCHW tensors, or PIL images through a model's own transform. Written once."""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F


def images_to_float(images: np.ndarray, size: int) -> torch.Tensor:
    """uint8 N×H×W×C -> float N×3×size×size in [0, 1] (grey images repeated to 3 channels)."""
    x = torch.from_numpy(np.ascontiguousarray(images)).permute(0, 3, 1, 2).float().div_(255.0)
    if x.shape[1] == 1:
        x = x.expand(-1, 3, -1, -1)
    if x.shape[-1] != size or x.shape[-2] != size:
        x = F.interpolate(x, size=(size, size), mode="bilinear", antialias=True, align_corners=False)
    return x


def uint8_nchw(images) -> torch.Tensor:
    """uint8 N×H×W×C (numpy, or a tensor already on a device) -> N×3×H×W, grey repeated to RGB
    (contiguous, so it can be pinned and copied)."""
    x = images if torch.is_tensor(images) else torch.from_numpy(np.ascontiguousarray(images))
    x = x.permute(0, 3, 1, 2)
    return x.expand(-1, 3, -1, -1).contiguous() if x.shape[1] == 1 else x


def pil_batch(images: np.ndarray, transform) -> torch.Tensor:
    """uint8 N×H×W×C -> the model's own eval transform applied to each image as PIL RGB."""
    from PIL import Image

    arr = np.ascontiguousarray(images)
    if arr.shape[-1] == 1:
        arr = np.repeat(arr, 3, axis=-1)
    return torch.stack([transform(Image.fromarray(a, mode="RGB")) for a in arr])
