"""Control teachers, with no knowledge of the task: a fixed random projection (tiny, for tests
and as a 'no knowledge' control) and pure Gaussian noise (appended to a real teacher, it tests
whether AFT's ρ learns to ignore features that carry nothing)."""

from __future__ import annotations

import numpy as np
import torch

from aftbench.core.declare import declare
from aftbench.core.images import images_to_float
from aftbench.core.weights import (
    word_tokens,
)
from aftbench.teachers.base import Teacher


@declare(choices={"modality": ("image", "text")})
class RandomProjection(Teacher):
    """A fixed random feature map (tanh of a seeded projection): a tiny, download-free teacher
    for tests and a 'no knowledge' control. Images: resized pixels; texts: hashed words."""

    counts_flops = False  # one small projection, or noise: nothing a FLOP bill would show
    pretrained = False

    def __init__(
        self, modality: str = "image", dim: int = 16, image_size: int = 8, seed: int = 0, n_buckets: int = 256
    ):
        self.modality, self._dim, self.image_size, self.n_buckets = modality, dim, image_size, n_buckets
        g = torch.Generator().manual_seed(seed)
        n_in = 3 * image_size * image_size if modality == "image" else n_buckets
        self.w = torch.randn(n_in, dim, generator=g) / n_in**0.5

    @property
    def dim(self) -> int:
        return self._dim

    def preprocessing(self) -> str:
        return (
            f"resize to {self.image_size}px, flatten"
            if self.modality == "image"
            else f"hashed bag of {self.n_buckets} word buckets"
        ) + ", tanh(x W), W seeded Gaussian"

    def forward(self, inputs) -> np.ndarray:
        if self.modality == "image":
            x = images_to_float(inputs, self.image_size).flatten(1)
        else:
            import zlib

            x = torch.zeros(len(inputs), self.n_buckets)
            for i, t in enumerate(inputs):
                for w in word_tokens(t):
                    x[i, zlib.crc32(w.encode()) % self.n_buckets] += 1.0
        return torch.tanh(x @ self.w * 3.0).numpy()


@declare(choices={"modality": ("image", "text")})
class GaussianNoise(Teacher):
    """Pure noise: i.i.d. Gaussian features, fixed per example (seeded by the example's position
    in its split) but unrelated to the input. Appended to a real teacher it tests whether AFT's
    ρ learns to ignore features that carry nothing."""

    counts_flops = False  # one small projection, or noise: nothing a FLOP bill would show
    pretrained = False

    def __init__(self, modality: str = "image", dim: int = 64, seed: int = 0):
        self.modality, self._dim, self.seed = modality, dim, seed
        self._calls = 0

    @property
    def dim(self) -> int:
        return self._dim

    def preprocessing(self) -> str:
        return f"none: N(0, 1) noise, {self._dim}-d, seed {self.seed} (ignores the input)"

    def forward(self, inputs) -> np.ndarray:
        # a new seeded stream per batch: deterministic given the batch order extract() uses
        rng = np.random.default_rng([self.seed, self._calls])
        self._calls += 1
        return rng.standard_normal((len(inputs), self._dim)).astype(np.float32)
