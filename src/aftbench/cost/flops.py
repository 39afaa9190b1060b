"""Floating-point operations of teachers and students, counted without weights: each model is built
on PyTorch's `meta` device (shapes only, nothing allocated, nothing downloaded) from the same spec
the sweep uses, and one forward (a teacher) or one forward + backward (a student's training step)
runs under `torch.utils.flop_counter.FlopCounterMode`. What that counter counts is what is
reported: matrix products, convolutions and attention, 2 FLOPs per multiply-add; norms,
activations and embedding look-ups are not counted.

Text models run at their configured `max_length` (a teacher's batches are padded to their longest
text, so for short texts this is an upper bound; a student pads to `max_length` always).
Hugging Face architectures come from the local cache, else from `hub_architectures.yaml` (the
architecture fields of the hub configs config.yaml names), else the config (kilobytes, never
weights) is fetched. aftbench.cost.bill turns these counts into hours.
"""

from __future__ import annotations

import inspect
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import numpy as np
import torch
import yaml
from torch.utils.flop_counter import FlopCounterMode

from aftbench.core.weights import minilm_dir
from aftbench.data.sources import Pool
from aftbench.data.splits import Split
from aftbench.students.registry import ARCHS
from aftbench.teachers.registry import build_teacher
from aftbench.teachers.specs import parse_spec

HUB_ARCHITECTURES = Path(__file__).with_name("hub_architectures.yaml")
# Backends that run no neural network (table look-ups, noise, one small projection): 0 FLOPs counted.
LOOKUP_BACKENDS = ("glove", "static_model", "gaussian_noise", "random_projection")
META = torch.device("meta")


class FlopCountError(ValueError):
    """A model whose FLOPs cannot be counted offline (names the model and the fix)."""


def count_flops(fn) -> int:
    """FLOPs of everything `fn()` runs (forward and, if it calls it, backward)."""
    with FlopCounterMode(display=False) as counter:
        fn()
    return int(counter.get_total_flops())


@dataclass(frozen=True)
class TeacherFlops:
    per_example: int  # forward FLOPs per example
    dim: int  # feature width (the cache's columns)


@dataclass(frozen=True)
class StudentFlops:
    per_step: int  # forward + backward FLOPs of one training step at `batch_size`
    per_eval_example: int  # forward FLOPs per example when scoring val / test
    batch_size: int


# ----------------------------------------------------------------------------- Hugging Face configs
@cache
def _hub_table() -> dict:
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
            f"to src/aftbench/{HUB_ARCHITECTURES.name}, or run once with internet"
        ) from None


def _hf_stack(config, encoder_only: bool):
    from transformers import AutoModel

    with META:
        net = AutoModel.from_config(config)
    return (net.get_encoder() if encoder_only and config.is_encoder_decoder else net).eval()


def _ids(batch: int, length: int) -> torch.Tensor:
    # No attention mask: all positions are real, the same FLOPs, and no data-dependent mask code on meta.
    return torch.zeros(batch, length, dtype=torch.long, device=META)


# ----------------------------------------------------------------------------- teachers
def _timm_teacher(model: str, model_args: dict | None = None, **_):
    import timm

    with META:
        net = timm.create_model(model, pretrained=False, **(model_args or {})).eval()
    size = timm.data.resolve_model_data_config(net)["input_size"]
    x = torch.zeros(1, *size, device=META)
    return lambda: net.forward_head(net.forward_features(x), pre_logits=True)


def _open_clip_teacher(arch: str, modality: str = "image", **_):
    import open_clip

    net = open_clip.create_model(arch, pretrained=None, device=META).eval()
    if modality == "text":
        ids = _ids(1, net.context_length)
        return lambda: net.encode_text(ids)
    size = net.visual.image_size
    h, w = (size, size) if isinstance(size, int) else size
    x = torch.zeros(1, 3, h, w, device=META)
    return lambda: net.encode_image(x)


def _lite_teacher(variant: str = "lite0", image_size: int = 96, **_):
    from aftbench.core.weights import load_lite

    with META:
        net = load_lite(variant, image_size, pretrained=False).eval()
    x = torch.zeros(1, 3, image_size, image_size, device=META)
    return lambda: net.extract_features(x).mean(dim=(2, 3))


def _hf_teacher(model: str | None = None, max_length: int = 128, **_):
    net = _hf_stack(hf_config(model), encoder_only=True)
    ids = _ids(1, max_length)
    return lambda: net(input_ids=ids).last_hidden_state[:, 0]


def _hf_text_teacher(path: str | None = None, max_length: int = 128, **_):
    return _hf_teacher(path, max_length)


# backend -> builder(**args) -> a zero-argument forward of one example on the meta device
TEACHER_FORWARDS = {
    "timm": _timm_teacher,
    "open_clip": _open_clip_teacher,
    "effnet_lite": _lite_teacher,
    "hf": _hf_teacher,
    "hf_text": _hf_text_teacher,
}


def teacher_flops(spec: dict | str) -> TeacherFlops:
    """Forward FLOPs per example and feature width of one teacher (a config.yaml entry)."""
    spec = parse_spec(spec)
    backend, args = spec["backend"], spec.get("args", {})
    if backend in LOOKUP_BACKENDS:
        return TeacherFlops(0, int(build_teacher(spec).dim))
    if backend not in TEACHER_FORWARDS:
        raise FlopCountError(
            f"teacher backend {backend!r}: no FLOP count (add it to aftbench.cost.flops.TEACHER_FORWARDS)"
        )
    forward = TEACHER_FORWARDS[backend](**args)
    out = []
    flops = count_flops(lambda: out.append(forward()))
    return TeacherFlops(flops, int(out[0].shape[-1]))


# ----------------------------------------------------------------------------- students
def _fake_pool(n: int, modality: str, image_size: int) -> Pool:
    """n examples of the dataset's shape: uint8 images at the stored size, texts long enough to
    fill any max_length."""
    images = np.zeros((n, image_size, image_size, 3), np.uint8) if "image" in modality else None
    texts = np.array([" ".join(["word"] * 512)] * n) if "text" in modality else None
    return Pool(np.arange(n) % 2, images, texts)


def _without_weights(cls, args: dict) -> dict:
    """The arch's arguments with its pre-trained weights off (`pretrained` false, or None where
    that is its default): the same architecture, nothing read or downloaded."""
    params = inspect.signature(cls).parameters
    if "pretrained" not in params:
        return dict(args)
    off = None if params["pretrained"].default is None else False
    return {**args, "pretrained": off}


def _hf_student(args: dict, n_classes: int, batch_size: int):
    from transformers import AutoModelForSequenceClassification

    config = hf_config(args.get("model"), num_labels=n_classes, **args.get("config", {}))
    with META:
        net = AutoModelForSequenceClassification.from_config(config)
    ids = _ids(batch_size, args.get("max_length", 128))
    return lambda: net(input_ids=ids).logits


def _built_student(arch: str, args: dict, n_classes: int, batch_size: int, modality: str, image_size: int, device):
    cls = ARCHS.entry(arch)
    pool = _fake_pool(batch_size, modality, image_size)
    split = Split("flops", modality, [str(i) for i in range(n_classes)], {"train": pool}, "")
    injected = {"split": split} if cls.needs_split else {}
    with device:
        student = ARCHS.build(arch, _without_weights(cls, args), n_classes=n_classes, **injected)
    student.to(device)
    with torch.device("cpu"):  # inputs are encoded as training encodes them (tokenizers, resizing)
        batch = {k: v.to(device) for k, v in student.encode_inputs(pool).items()}
    return lambda: student(batch)[0]


def _student_counts(forward) -> tuple[int, int]:
    step = count_flops(lambda: forward().float().sum().backward())
    with torch.no_grad():
        return step, count_flops(forward)


# Students are counted on a batch of 2 (BatchNorm needs two examples to train) and scaled to the
# configured batch: every counted operation is linear in the batch.
COUNT_BATCH = 2


def student_flops(
    spec: dict, n_classes: int, batch_size: int, modality: str = "image", image_size: int = 32
) -> StudentFlops:
    """FLOPs of one training step (forward + backward of the loss at `batch_size`) and of one
    example's forward when scoring, for one student (a config.yaml entry)."""
    arch, args = spec["arch"], spec.get("args", {})
    if arch == "hf_classifier":  # its tokenizer may not be offline: the config alone gives the shapes
        step, evaluation = _student_counts(_hf_student(args, n_classes, COUNT_BATCH))
    else:
        try:
            forward = _built_student(arch, args, n_classes, COUNT_BATCH, modality, image_size, META)
            step, evaluation = _student_counts(forward)
        except Exception:  # data-dependent code (a check on values, a library that moves its model
            # to the CPU itself) cannot run on meta: count the same model at random init on the CPU
            try:
                forward = _built_student(arch, args, n_classes, COUNT_BATCH, modality, image_size, torch.device("cpu"))
                step, evaluation = _student_counts(forward)
            except Exception as err:
                raise FlopCountError(
                    f"student arch {arch!r}: FLOPs not countable ({type(err).__name__}: {err})"
                ) from err
    return StudentFlops(step * batch_size // COUNT_BATCH, evaluation // COUNT_BATCH, batch_size)
