"""A training run's resumable state, and the one home of its checkpoint format.

`TrainState` holds what a run's trajectory depends on beyond its spec: the student, the penalty,
Adam and the lr schedule, the batch sampler (its generator, permutation and position), torch's
RNG, the step reached, the loss history and the divergence bookkeeping. Every
`checkpoint_every` steps the loop writes `to_dict()` atomically to `checkpoint.pt` beside the
run's metrics; a job killed or requeued and started again restores it (`restore`) and ends
with the same weights and metrics as a run never interrupted. A checkpoint of another spec (its
`fingerprint` differs) or an unreadable one is reported and ignored, never resumed from.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field

import torch

from aftbench.core.io import atomic_path

# Every key `to_dict` writes: a checkpoint lacking one is not resumed.
CHECKPOINT_KEYS = (
    "fingerprint",
    "step",
    "student",
    "penalty",
    "optimizer",
    "scheduler",
    "sampler_generator",
    "torch_rng",
    "perm",
    "pos",
    "history",
    "resumed_from",
    "train_seconds",
    "first_ce",
    "window_ce",
)


def checkpoint_path_for(out_json: str) -> str:
    return os.path.join(os.path.dirname(os.path.abspath(out_json)), "checkpoint.pt")


@dataclass
class TrainState:
    student: torch.nn.Module
    penalty: torch.nn.Module | None
    optimizer: torch.optim.Optimizer
    scheduler: torch.optim.lr_scheduler.LRScheduler
    sampler: torch.Generator  # draws each epoch's permutation of the examples fitted on
    perm: torch.Tensor
    pos: int = 0  # the next batch starts at perm[pos]
    step: int = 0  # optimiser steps done
    history: list = field(default_factory=list)  # one entry every log_every steps
    resumed_from: list = field(default_factory=list)  # the steps each resume started after
    train_seconds: float = 0.0  # spent in the loop before this process started
    first_ce: float | torch.Tensor | None = (
        None  # the first step's cross-entropy (the divergence rule's reference; on the device while the loop runs)
    )
    window_ce: torch.Tensor | None = None  # sum of the last steps' cross-entropy (float64, on the device)

    def to_dict(self, fingerprint: str, train_seconds: float) -> dict:
        """The checkpoint: plain tensors and numbers, readable with torch.load(weights_only=True)."""
        return {
            "fingerprint": fingerprint,
            "step": self.step,
            "student": self.student.state_dict(),
            "penalty": self.penalty.state_dict() if self.penalty is not None else {},
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict(),
            "sampler_generator": self.sampler.get_state(),
            "torch_rng": torch.get_rng_state(),
            "perm": self.perm,
            "pos": self.pos,
            "history": self.history,
            "resumed_from": self.resumed_from,
            "train_seconds": train_seconds,
            "first_ce": None if self.first_ce is None else float(self.first_ce),
            "window_ce": float(self.window_ce),
        }

    def restore(self, d: dict) -> None:
        """Continue from checkpoint `d` (what `to_dict` wrote), in place."""
        self.student.load_state_dict(d["student"])
        if self.penalty is not None:
            self.penalty.load_state_dict(d["penalty"])
        self.optimizer.load_state_dict(d["optimizer"])
        self.scheduler.load_state_dict(d["scheduler"])
        self.sampler.set_state(d["sampler_generator"])
        torch.set_rng_state(d["torch_rng"])
        self.perm, self.pos, self.step = d["perm"], int(d["pos"]), int(d["step"])
        self.history, self.resumed_from = list(d["history"]), list(d["resumed_from"]) + [self.step]
        self.train_seconds, self.first_ce = float(d["train_seconds"]), d["first_ce"]
        self.window_ce = torch.tensor(d["window_ce"], dtype=torch.float64, device=self.window_ce.device)

    def save(self, path: str, fingerprint: str, train_seconds: float) -> None:
        with atomic_path(path) as tmp:
            torch.save(self.to_dict(fingerprint, train_seconds), tmp)

    def resume(self, path: str, fingerprint: str, run_id: str) -> bool:
        """Restore from the checkpoint at `path` if it is this exact spec's (else say why not in
        the log); True when resumed."""
        if not os.path.exists(path):
            return False
        try:
            d = torch.load(path, map_location="cpu", weights_only=True)
        except Exception as err:  # a torn file cannot happen (atomic writes) but a foreign one can
            print(f"[{run_id}] ignoring unreadable checkpoint {path}: {err}", flush=True)
            return False
        if d.get("fingerprint") != fingerprint:
            print(f"[{run_id}] ignoring checkpoint {path}: written for a different run spec", flush=True)
            return False
        missing = [k for k in CHECKPOINT_KEYS if k not in d]
        if missing:  # this spec's, but not all of it: it cannot be resumed exactly
            print(f"[{run_id}] ignoring incomplete checkpoint {path}: it lacks {missing}", flush=True)
            return False
        self.restore(d)
        print(f"[{run_id}] resumed from checkpoint {path} at step {self.step}", flush=True)
        return True
