"""The training batches, as the loop asks for them: never a reason for the device to wait.

`Feed.next(state)` moves the run's batch sampler one step (the one place it moves: an epoch's
permutation from the run's own generator, then `batch_size` rows at a time, the ragged tail
dropped) and returns that step's inputs, labels and Φ rows on the device. The order is the same
whatever the device, so a run's trajectory does not depend on where its batches come from.

- On the CPU, and on a GPU when the fitted examples (inputs, labels, Φ) fit in `train.resident_gb`,
  every tensor lives on the device once, and a batch is an index into it: nothing crosses the
  bus per step (the epoch's permutation goes up once, from page-locked memory).
- Otherwise (a GPU and a split too large), `prefetch(state)`, called by the loop right after it
  queued a step's work, gathers the next batch on the host into page-locked buffers (two, used in
  turn) and copies it up on a side stream while the device computes; `next` then only makes the
  compute stream wait for that copy.

`prefetch` moves the sampler too, so the loop calls it after the step's checkpoint: a checkpoint
always holds the sampler of the step it was written at.
"""

from __future__ import annotations

import torch


def nbytes(tensors) -> int:
    return sum(t.numel() * t.element_size() for t in tensors)


class Feed:
    def __init__(self, x: dict, y: torch.Tensor, phi: torch.Tensor | None, batch_size: int, device, resident_gb: float):
        self.device, self.bs, self.n = torch.device(device), batch_size, len(y)
        cuda = self.device.type == "cuda"
        tensors = {**{f"x.{k}": v for k, v in x.items()}, "y": y, **({"phi": phi} if phi is not None else {})}
        self.resident = not cuda or nbytes(tensors.values()) <= resident_gb * 1e9
        self.keys = list(x)
        if self.resident:
            self.data = {k: v.to(self.device) for k, v in tensors.items()}
        else:
            self.data = tensors
            self.stream = torch.cuda.Stream(self.device)
            self.staging = [{k: _pinned_like(v, batch_size) for k, v in tensors.items()} for _ in range(2)]
            self.copied = [None, None]  # the event after which staging[i] may be written again
            self.turn = 0
        self.perm_dev: torch.Tensor | None = None
        self.perm_of: torch.Tensor | None = None
        self.pending: dict | None = None

    # --- the sampler (TrainState.perm / pos / sampler)
    def _advance(self, state) -> tuple[torch.Tensor, int]:
        if state.pos + self.bs > self.n:  # new epoch; drop the ragged tail so every batch has bs rows
            state.perm, state.pos = torch.randperm(self.n, generator=state.sampler), 0
        start = state.pos
        state.pos += self.bs
        return state.perm, start

    def _on_device(self, perm: torch.Tensor) -> torch.Tensor:
        if self.perm_of is not perm:  # once per epoch (and after a resume)
            src = perm.pin_memory() if self.device.type == "cuda" else perm
            self.perm_dev, self.perm_of = src.to(self.device, non_blocking=True), perm
        return self.perm_dev

    def _split(self, batch: dict) -> tuple[dict, torch.Tensor, torch.Tensor | None]:
        return {k: batch[f"x.{k}"] for k in self.keys}, batch["y"], batch.get("phi")

    # --- the loop's two calls
    def next(self, state) -> tuple[dict, torch.Tensor, torch.Tensor | None]:
        """This step's batch on the device: (inputs, labels, Φ rows or None)."""
        if self.pending is not None:
            batch, self.pending = self.pending, None
            torch.cuda.current_stream(self.device).wait_stream(self.stream)
            for v in batch.values():
                v.record_stream(torch.cuda.current_stream(self.device))
            return self._split(batch)
        perm, start = self._advance(state)
        if self.resident:
            idx = self._on_device(perm)[start : start + self.bs]
            return self._split({k: v[idx] for k, v in self.data.items()})
        self.prefetch(state, _advanced=(perm, start))
        return self.next(state)

    def prefetch(self, state, _advanced: tuple | None = None) -> None:
        """Gather and upload the next step's batch now, while the device computes (streaming only)."""
        if self.resident or self.pending is not None:
            return
        perm, start = _advanced or self._advance(state)
        idx = perm[start : start + self.bs]
        i, self.turn = self.turn, 1 - self.turn
        if self.copied[i] is not None:
            self.copied[i].synchronize()  # its last upload is done: the buffer may be reused
        buf = self.staging[i]
        for k, v in self.data.items():
            torch.index_select(v, 0, idx, out=buf[k])
        with torch.cuda.stream(self.stream):
            self.pending = {k: b.to(self.device, non_blocking=True) for k, b in buf.items()}
            self.copied[i] = torch.cuda.Event()
            self.copied[i].record(self.stream)


def _pinned_like(t: torch.Tensor, rows: int) -> torch.Tensor:
    return torch.empty((rows, *t.shape[1:]), dtype=t.dtype).pin_memory()
