"""Dataset registry: each entry turns raw files on disk into labelled examples (a `Source`).

A dataset entry in config.yaml names a `loader` from LOADERS plus its arguments; every loader
declares which modality it produces (aftbench.core.declare). aftbench.data.splits draws the fixed,
seeded split from it once; everything downstream reads that split, never the raw files.
"""

from __future__ import annotations

from aftbench.core.registry import Registry
from aftbench.data.library import load_hf_dataset, load_torchvision
from aftbench.data.offline import (
    load_fashion_mnist,
    load_openclipart,
    load_sklearn_digits,
    load_tsv,
    load_wordnet_supersenses,
)
from aftbench.data.sources import Source

LOADERS = Registry(
    "dataset loader",
    {
        "fashion_mnist": load_fashion_mnist,
        "wordnet_supersenses": load_wordnet_supersenses,
        "openclipart": load_openclipart,
        "sklearn_digits": load_sklearn_digits,
        "tsv": load_tsv,
        "torchvision": load_torchvision,
        "hf_dataset": load_hf_dataset,
    },
)


def load_source(spec: dict) -> Source:
    """The source dataset a config entry names (`loader` + `args`)."""
    return LOADERS.build(spec["loader"], spec.get("args", {}))
