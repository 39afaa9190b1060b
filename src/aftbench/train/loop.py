"""The one training loop: cross-entropy + β · penalty(h, Φ), Adam on student and penalty jointly.

Teacher features come from the cache (never a teacher forward pass). The reported checkpoint is
the final step (no early stopping, so the test split cannot leak into when training stops).
`train_run` reads top to bottom: set up the student and its data, the penalty's target Φ, the
state (resumed from its checkpoint if one of this exact spec exists: aftbench.train.state),
the steps, then evaluation and the run's record. A job killed or requeued (SLURM preemption,
timeout) and started again ends with the same weights and metrics as one never interrupted;
the checkpoint is deleted once the metrics are written.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
from dataclasses import dataclass, field
from functools import cached_property

import numpy as np
import torch

from aftbench.core.device import resolve_device
from aftbench.core.records import divergence_check, divergence_window, encode_predictions, run_inputs, write_run_record
from aftbench.core.roles import NO_PENALTY, method_role, penalty_of
from aftbench.core.schema import PER_DATASET_TRAIN_KEYS, defaults
from aftbench.data.splits import SPLITS, load_split
from aftbench.methods.registry import build_penalty, penalty_class
from aftbench.students.registry import build_student
from aftbench.teachers.features import CachedFeatures, load_features, rms_scale
from aftbench.train import fast
from aftbench.train.feed import Feed
from aftbench.train.kept import keep_record, restore_unchanged
from aftbench.train.state import TrainState, checkpoint_path_for
from aftbench.train.steps import run_steps


@dataclass
class TrainConfig:
    """A run's training settings: config.yaml's `train:` (and the block's overrides) over the
    schema's defaults (aftbench.core.schema)."""

    steps: int
    batch_size: int
    lr: float
    weight_decay: float
    eval_batch_size: int
    log_every: int
    device: str
    threads: int
    checkpoint_every: int  # steps between resumable checkpoints (0: none)
    amp: bool  # bf16 autocast of the student's forward pass on GPUs (losses stay float32)
    schedule: str  # "constant" | "cosine": every parameter group's lr over the run (lr_factor)
    fit_on: str  # "train" | "train+val": the examples the student is fitted on
    resident_gb: float  # on a GPU, the fitted examples live on the device if they fit (aftbench.train.feed)
    tf32: bool | str  # the step's fast paths, true | false | auto (aftbench.train.fast)
    channels_last: bool | str
    compile: bool | str

    @classmethod
    def resolve(cls, settings: dict | None = None) -> TrainConfig:
        # per-dataset keys are resolved into `steps` / `fit_on` by aftbench.sweep.runs.run_train_overrides
        merged = {k: v for k, v in {**defaults("train"), **(settings or {})}.items() if k not in PER_DATASET_TRAIN_KEYS}
        return cls(**merged)


def lr_factor(schedule: str, steps: int):
    """The multiplier of every group's learning rate after k optimiser steps (LambdaLR's
    argument; the scheduler steps once after every optimiser step, so step 1 runs at k = 0).
    cosine: 0.5 · (1 + cos(π k / steps)), i.e. the full lr at step 1, half at the middle step,
    0.5 · (1 + cos(π (steps − 1) / steps)) ≈ 0 at the last; it would reach 0 one step after the
    run. The reference code steps a cosine once per epoch instead (a staircase of the same curve)."""
    if schedule == "constant":
        return lambda k: 1.0
    if schedule == "cosine":
        return lambda k: 0.5 * (1.0 + math.cos(math.pi * min(k, steps) / steps))
    raise ValueError(f"train.schedule: unknown {schedule!r}; known: constant, cosine")


@dataclass
class RunSpec:
    run_id: str
    dataset: str
    student_id: str
    student: dict
    method_id: str
    method: dict
    teacher_set: str
    teachers: list[str]
    seed: int
    train: TrainConfig = field(default_factory=TrainConfig.resolve)
    noise_null: bool = False  # Φ: the matched noise null of the teacher set's features
    tuning: dict | None = None  # a refit run: its tune stage's choice (aftbench.train.refit)

    @classmethod
    def from_dict(cls, d: dict) -> RunSpec:
        d = dict(d)
        d["train"] = TrainConfig.resolve(d.get("train"))
        return cls(**d)


def _batches(x: dict, bs: int, device):
    """`x` in batches of `bs` rows on `device` (uploads from page-locked memory on a GPU)."""
    n = len(next(iter(x.values())))
    for i in range(0, n, bs):
        batch = {k: v[i : i + bs] for k, v in x.items()}
        if device.type == "cuda":
            batch = {k: v.pin_memory().to(device, non_blocking=True) for k, v in batch.items()}
        yield batch


@torch.no_grad()
def predict(model, x: dict, bs: int, device) -> np.ndarray:
    """The predicted class of every example of `x`, in eval mode (read back once, at the end)."""
    model.eval()
    out = [model(batch)[0].argmax(1) for batch in _batches(x, bs, device)]
    model.train()
    return torch.cat(out).cpu().numpy()


@torch.no_grad()
def features_of(model, x: dict, bs: int, device) -> np.ndarray:
    """The student's features h of every example of `x`, in eval mode (no statistics updated)."""
    model.eval()
    out = [model.features(batch).float() for batch in _batches(x, bs, device)]
    model.train()
    return torch.cat(out).cpu().numpy()


def rho_summary(rho: np.ndarray, teachers: list[str], dims: list[int]) -> dict:
    out, start = {}, 0
    for t, d in zip(teachers, dims, strict=False):
        r = rho[start : start + d]
        out[t] = {
            "mean": float(r.mean()),
            "std": float(r.std()),
            "frac_above_half": float((r > 0.5).mean()),
            "min": float(r.min()),
            "max": float(r.max()),
        }
        start += d
    return out


def load_targets(path: str, n_rows: dict[str, int]) -> np.ndarray:
    """Φ from a target file (paraphraser factors, probe logits) instead of the features: the rows
    of the parts the student is fitted on (`n_rows`: part -> its size in the split), in order."""
    from safetensors.numpy import load_file

    try:
        stored = load_file(path)
        parts = [stored[p] for p in n_rows]
    except Exception as err:
        raise ValueError(f"corrupt or incomplete target file {path}: {err}. Delete it and rerun.") from None
    for (part, n), rows in zip(n_rows.items(), parts, strict=True):
        if len(rows) != n:
            raise ValueError(f"target file {path} has {len(rows)} {part} rows, the split has {n}")
    return np.concatenate(parts) if len(parts) > 1 else parts[0]


def spec_fingerprint(spec: RunSpec) -> str:
    """What a checkpoint must match to be resumed: everything that determines the trajectory."""
    d = {
        **spec.__dict__,
        "train": {
            k: v
            for k, v in spec.train.__dict__.items()
            if k not in ("log_every", "eval_batch_size", "checkpoint_every", "threads", "resident_gb")
        },
    }
    return hashlib.sha256(json.dumps(d, sort_keys=True, default=str).encode()).hexdigest()


def make_optimizer(student: torch.nn.Module, penalty, cfg: TrainConfig) -> torch.optim.Adam:
    """Adam over the student (its lr and weight decay) and the penalty's own parameter groups
    (ρ, linear maps: their own lr where the penalty sets one, never weight decay, as in the
    reference code, where only the student's group is decayed)."""
    groups = [{"params": list(student.parameters()), "lr": cfg.lr, "weight_decay": cfg.weight_decay}]
    if penalty is not None:
        penalty.to(next(student.parameters()).device)
        groups += [{"lr": cfg.lr, **g, "weight_decay": 0.0} for g in penalty.param_groups()]
    # fused: one kernel per step for every parameter (5× faster than the default on a CPU for a
    # 4M-parameter embedding table; the same update up to rounding)
    return torch.optim.Adam(groups, lr=cfg.lr, fused=True)


@dataclass
class FitData:
    """A split as the student sees it: every part's inputs encoded once, its labels, and the
    parts it is fitted on (the training split, or train + val: the reference protocol)."""

    x: dict
    y: dict
    fit_parts: tuple[str, ...]

    @classmethod
    def encode(cls, student, split, fit_on: str) -> FitData:
        x = {s: student.encode_inputs(split.parts[s]) for s in SPLITS}
        y = {s: torch.from_numpy(split.parts[s].labels) for s in SPLITS}
        return cls(x, y, ("train", "val") if fit_on == "train+val" else ("train",))

    @cached_property
    def x_fit(self) -> dict:
        return {k: torch.cat([self.x[p][k] for p in self.fit_parts]) for k in self.x["train"]}

    @cached_property
    def y_fit(self) -> torch.Tensor:
        return torch.cat([self.y[p] for p in self.fit_parts])


@dataclass
class Target:
    """What the penalty pulls the student toward: Φ (one row per example fitted on), the
    cached features it came from, and what the penalty's own preparation reported."""

    phi: torch.Tensor | None = None
    cached: CachedFeatures | None = None
    info: dict | None = None
    scaling: dict | None = None  # how cached features became Φ (Penalty.target_scale) and their train RMS


def penalty_target(spec: RunSpec, split, data: FitData, feature_paths: list[str], targets_path: str | None) -> Target:
    """Φ for the run's penalty: the teacher set's cached features (divided by their train RMS, or
    raw: the penalty's `target_scale`), prepared by the penalty (e.g. B-Tuning's posteriors), or its own target file (paraphraser
    factors, probe logits). Runs without a penalty have none."""
    name = penalty_of(spec.method)
    if name == NO_PENALTY:
        return Target()
    if not spec.teachers:
        raise ValueError(f"run {spec.run_id}: method {spec.method_id!r} needs a teacher set")
    cached = load_features(feature_paths, split.sha256, spec.teachers)
    if spec.noise_null:
        cached = cached.noise_null(spec.teacher_set)
    union = None
    mode = spec.method.get("union_norm", "none")
    if mode != "none":  # each teacher balanced on its own training statistics before the union
        cached, teacher_scales = cached.balanced(mode)
        union = {"mode": mode, "teacher_train_rms": dict(zip(spec.teachers, teacher_scales, strict=True))}
    cls = penalty_class(name)
    args = spec.method.get("args", {})
    scaling = {"mode": args.get("target_scale", cls.target_scale), "train_rms": rms_scale(cached.splits["train"])}
    if union:
        scaling["union_norm"] = union
    feats = np.concatenate([cached.splits[p] for p in data.fit_parts])
    if scaling["mode"] == "rms":
        feats = feats / scaling["train_rms"]
    # e.g. B-Tuning: per-example targets built once from the features (others: unchanged)
    feats, info = cls.prepare_targets(feats, data.y_fit.numpy(), cached.dims, split.n_classes, **args)
    if cls.target_source:
        if not targets_path:
            raise ValueError(f"run {spec.run_id}: penalty {name!r} needs its {cls.target_source} file")
        feats = load_targets(targets_path, {p: len(data.y[p]) for p in data.fit_parts})
        scaling = None
    return Target(torch.from_numpy(np.ascontiguousarray(feats, dtype=np.float32)), cached, info, scaling)


def start_state(spec: RunSpec, student, penalty, n: int, device) -> TrainState:
    """Step 0: the optimiser, the lr schedule and the batch sampler, seeded by the run's seed."""
    cfg = spec.train
    if cfg.batch_size > n:  # never clamped silently: the run would not be the one configured
        raise ValueError(
            f"run {spec.run_id}: train.batch_size {cfg.batch_size} exceeds the {n} training examples "
            f"of dataset {spec.dataset!r}; lower batch_size or raise datasets.{spec.dataset}.n_train"
        )
    opt = make_optimizer(student, penalty, cfg)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lr_factor(cfg.schedule, cfg.steps))
    sampler = torch.Generator().manual_seed(spec.seed)
    perm = torch.randperm(n, generator=sampler)
    return TrainState(
        student, penalty, opt, sched, sampler, perm, window_ce=torch.zeros((), dtype=torch.float64, device=device)
    )


def train_run(
    spec: RunSpec, split_path: str, feature_paths: list[str], out_json: str, targets_path: str | None = None
) -> dict:
    cfg = spec.train
    torch.set_num_threads(max(1, cfg.threads))
    torch.manual_seed(spec.seed)
    np.random.seed(spec.seed)
    device = resolve_device(cfg.device)
    fingerprint = spec_fingerprint(spec)  # what a checkpoint, a kept record and the run's record are matched on
    restored = restore_unchanged(out_json, fingerprint)
    if restored is not None:  # a rerun caused by an input rebuilt or touched, byte-identical (aftbench.train.kept)
        print(f"[{spec.run_id}] its inputs are unchanged since it was trained: record restored, not retrained")
        return restored

    # setup: the student, its data, the penalty and its target, the state to start from
    split = load_split(split_path)
    student = build_student(spec.student, split)
    data = FitData.encode(student, split, cfg.fit_on)
    student.to(device)
    switches = fast.resolve(cfg, device, student)
    step_model = fast.apply(student, switches)
    target = penalty_target(spec, split, data, feature_paths, targets_path)
    phi, cached = target.phi, target.cached
    penalty = build_penalty(
        penalty_of(spec.method),
        student.head.in_features if phi is not None else 0,  # no dummy forward: it would touch BatchNorm statistics
        phi.shape[1] if phi is not None else 0,
        spec.method.get("args", {}),
        dims=cached.dims if cached is not None else [],
    )
    if penalty is not None and penalty.needs_initial_features:  # e.g. B-Tuning's map of the initial student
        penalty.fit_initial(features_of(student, data.x_fit, cfg.eval_batch_size, device), data.y_fit.numpy())
    state = start_state(spec, student, penalty, len(data.y_fit), device)
    checkpoint = checkpoint_path_for(out_json)
    if cfg.checkpoint_every > 0:
        state.resume(checkpoint, fingerprint, spec.run_id)

    # the loop
    feed = Feed(data.x_fit, data.y_fit, phi, cfg.batch_size, device, cfg.resident_gb)
    train_seconds = run_steps(spec, state, feed, step_model, checkpoint, fingerprint)

    # evaluation: the final step's weights (fitted on val too: its accuracy there says nothing)
    window = divergence_window(cfg.steps)
    divergence = divergence_check(float(state.first_ce), float(state.window_ce) / window, window)
    if divergence["diverged"]:
        print(f"[{spec.run_id}] DIVERGED: {divergence['rule']}", flush=True)
    x, y = data.x, data.y
    val_pred = None if "val" in data.fit_parts else predict(student, x["val"], cfg.eval_batch_size, device)
    val_acc = None if val_pred is None else float((val_pred == y["val"].numpy()).mean())
    test_pred = predict(student, x["test"], cfg.eval_batch_size, device)
    test_correct = test_pred == y["test"].numpy()
    test_acc = float(test_correct.mean())

    # the record
    metrics = dict(
        run_id=spec.run_id,
        kind="train",
        role=method_role(spec.method),
        dataset=spec.dataset,
        modality=split.modality,
        student=spec.student_id,
        student_arch=spec.student["arch"],
        student_init=student.init,
        student_params=student.n_params(),
        method=spec.method_id,
        penalty=penalty_of(spec.method),
        teacher_set=spec.teacher_set,
        teachers=spec.teachers,
        beta=float(spec.method["beta"]),
        seed=spec.seed,
        val_acc=val_acc,
        test_acc=test_acc,
        checkpoint="final step",
        train_seconds=round(train_seconds, 3),
        steps=cfg.steps,
        batch_size=cfg.batch_size,
        lr=cfg.lr,
        schedule=cfg.schedule,
        fit_on=cfg.fit_on,
        n_fit=len(data.y_fit),
        weight_decay=cfg.weight_decay,
        final_ce=state.history[-1]["ce"],
        final_penalty=state.history[-1]["penalty"],
        history=state.history,
        device=str(device),
        fast_paths=switches,
        inputs_resident_on_device=feed.resident,
        resumed_from_steps=state.resumed_from,
        diverged=divergence["diverged"],
        divergence=divergence,
        **encode_predictions(test_pred, test_correct),  # per-example: the report pairs runs on them
    )
    if penalty is not None and hasattr(penalty, "rho"):
        metrics["rho"] = rho_summary(penalty.rho.detach().cpu().numpy(), spec.teachers, cached.dims)
    optional = {
        "teachers_pretrained": cached.pretrained if cached is not None else None,
        "noise_null": True if spec.noise_null else None,
        "tuning": spec.tuning or None,
        "label_smoothing": float(spec.method["label_smoothing"]) if "label_smoothing" in spec.method else None,
        "penalty_info": target.info or None,
        "target_scale": target.scaling or None,
    }
    metrics.update({k: v for k, v in optional.items() if v is not None})
    digests = cached.digests if cached is not None else ()
    inputs = run_inputs(split_path, split.sha256, feature_paths[: len(digests)], digests, targets_path)
    metrics = write_run_record(out_json, inputs, spec_sha256=fingerprint, **metrics)
    keep_record(out_json)
    if os.path.exists(checkpoint):
        os.unlink(checkpoint)  # the metrics are the result; a finished run needs no resume point
    return metrics
