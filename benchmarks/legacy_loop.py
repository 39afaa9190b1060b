"""The training loop's steps as they were before issue #30 (aftbench.train.loop.run_steps at
6447064), kept callable for the before/after of benchmarks/train_throughput.py: a host sync every
step (`torch.isfinite(loss)` read as a Python bool), batches gathered on the host and copied from
pageable memory, no prefetch. Not used by the pipeline."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from aftbench.core.device import autocast


def _to(batch: dict, device) -> dict:
    return {k: v.to(device, non_blocking=True) for k, v in batch.items()}


def _slice(x: dict, idx) -> dict:
    return {k: v[idx] for k, v in x.items()}


def legacy_run_steps(spec, state, x_fit: dict, y_fit, phi, device) -> None:
    cfg, beta = spec.train, float(spec.method["beta"])
    smoothing = float(spec.method.get("label_smoothing", 0.0))
    student, penalty, opt, sched = state.student, state.penalty, state.optimizer, state.scheduler
    n, bs = len(y_fit), cfg.batch_size
    student.train()
    for step in range(state.step + 1, cfg.steps + 1):
        if state.pos + bs > n:
            state.perm, state.pos = torch.randperm(n, generator=state.sampler), 0
        idx = state.perm[state.pos : state.pos + bs]
        state.pos += bs
        with autocast(device, cfg.amp):
            logits, h = student(_to(_slice(x_fit, idx), device))
        logits, h = logits.float(), h.float()
        ce = F.cross_entropy(logits, y_fit[idx].to(device), label_smoothing=smoothing)
        if penalty is None:
            pen = torch.zeros((), device=device)
        else:
            pen = penalty(logits if penalty.uses_logits else h, phi[idx].to(device))
        loss = ce + beta * pen
        if not torch.isfinite(loss):
            raise FloatingPointError(f"non-finite loss at step {step}")
        if state.first_ce is None:
            state.first_ce = ce.item()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        sched.step()
        state.step = step
        if step % cfg.log_every == 0 or step == cfg.steps:
            state.history.append({"step": step, "ce": ce.item(), "penalty": pen.item()})
