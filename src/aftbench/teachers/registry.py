"""Teacher registry: frozen pre-trained models whose features AFT transfers.

A teacher entry in config.yaml names a `backend` from BACKENDS plus its arguments. Each backend
sees the examples with its *own* eval preprocessing and returns one feature row per example.
`aftbench.teachers.extract` runs a teacher over all splits of a dataset exactly once and caches the matrices
(aftbench.teachers.features); training reads that cache and never runs a teacher. Weights are loaded by
aftbench.core.weights, which students share.
"""

from __future__ import annotations

from aftbench.core.registry import Registry
from aftbench.teachers.base import Teacher
from aftbench.teachers.controls import GaussianNoise, RandomProjection
from aftbench.teachers.image import EffNetLite, OpenClip, TimmImage
from aftbench.teachers.specs import parse_spec
from aftbench.teachers.text import GloVeMean, HFText, HFTextEncoder, StaticModel, WordLlama

BACKENDS = Registry(
    "teacher backend",
    {
        "effnet_lite": EffNetLite,
        "hf_text": HFTextEncoder,
        "timm": TimmImage,
        "open_clip": OpenClip,
        "hf": HFText,
        "glove": GloVeMean,
        "static_model": StaticModel,
        "wordllama": WordLlama,
        "random_projection": RandomProjection,
        "gaussian_noise": GaussianNoise,
    },
    base=Teacher,
)


def build_teacher(spec: dict | str) -> Teacher:
    spec = parse_spec(spec)
    return BACKENDS.build(spec["backend"], spec.get("args", {}))
