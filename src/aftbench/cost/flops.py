"""Floating-point operations of teachers and students, counted without weights: each model is built
on PyTorch's `meta` device (shapes only, nothing allocated, nothing downloaded) from the same spec
the sweep uses, and one forward (a teacher) or one forward + backward (a student's training step)
runs under `torch.utils.flop_counter.FlopCounterMode`. What that counter counts is what is
reported: matrix products, convolutions and attention, 2 FLOPs per multiply-add; norms,
activations and embedding look-ups are not counted.

Text models run at their configured `max_length` (a teacher's batches are padded to their longest
text, so for short texts this is an upper bound; a student pads to `max_length` always).
Each teacher backend builds its own weightless forward (`Teacher.meta_forward`, beside the class);
Hugging Face architectures come from the local cache, else from core/hub_architectures.yaml,
else the config (kilobytes, never weights) is fetched (aftbench.core.weights.hf_config).
aftbench.cost.bill turns these counts into hours.
"""

from __future__ import annotations

import inspect
from dataclasses import dataclass

import numpy as np
import torch
from torch.utils.flop_counter import FlopCounterMode

from aftbench.core.weights import FlopCountError, meta_device, weightless_builds
from aftbench.data.sources import Pool
from aftbench.data.splits import Split
from aftbench.students.registry import ARCHS
from aftbench.teachers.registry import BACKENDS, build_teacher
from aftbench.teachers.specs import parse_spec


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


# ----------------------------------------------------------------------------- teachers
def teacher_flops(spec: dict | str) -> TeacherFlops:
    """Forward FLOPs per example and feature width of one teacher (a config.yaml entry). The
    backend's class says how: no network (`counts_flops` false) is 0 FLOPs at the built width,
    else its `meta_forward` runs once on the meta device."""
    spec = parse_spec(spec)
    cls, args = BACKENDS.entry(spec["backend"]), spec.get("args", {})
    if not cls.counts_flops:
        return TeacherFlops(0, int(build_teacher(spec).dim))
    try:
        with weightless_builds():
            forward = cls.meta_forward(**args)
    except NotImplementedError as err:
        raise FlopCountError(f"teacher backend {spec['backend']!r}: {err}") from None
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
    example's forward when scoring, for one student (a config.yaml entry): from the forward its
    arch declares (`Student.meta_forward`), else from the arch built without weights on the meta
    device (on the CPU where its code needs real values)."""
    arch, args = spec["arch"], spec.get("args", {})
    with weightless_builds():
        declared = ARCHS.entry(arch).meta_forward(args, n_classes, COUNT_BATCH)
        if declared is not None:  # the arch builds its own weightless forward
            step, evaluation = _student_counts(declared)
        else:
            try:
                forward = _built_student(arch, args, n_classes, COUNT_BATCH, modality, image_size, meta_device())
                step, evaluation = _student_counts(forward)
            except Exception:  # data-dependent code (a check on values, a library that moves its model
                # to the CPU itself) cannot run on meta: count the same model at random init on the CPU
                try:
                    forward = _built_student(
                        arch, args, n_classes, COUNT_BATCH, modality, image_size, torch.device("cpu")
                    )
                    step, evaluation = _student_counts(forward)
                except Exception as err:
                    raise FlopCountError(
                        f"student arch {arch!r}: FLOPs not countable ({type(err).__name__}: {err})"
                    ) from err
    return StudentFlops(step * batch_size // COUNT_BATCH, evaluation // COUNT_BATCH, batch_size)
