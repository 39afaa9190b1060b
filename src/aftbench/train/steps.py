"""The optimiser steps of a run: cross-entropy + β · penalty(h, Φ), Adam on student and penalty.

A step never waits for the host: nothing in it reads a device value back. Whether the loss
stayed finite is recorded on the device (`NonFinite`: the first step whose loss was not, with its
cross-entropy and penalty) and read back with the history every `log_every` steps, before every
checkpoint and at the end: a non-finite loss still stops the run and names its term, at most
`log_every` steps after it happened, and never reaches a checkpoint. The first step's
cross-entropy and the divergence window's sum stay on the device until the run ends.
"""

from __future__ import annotations

import time

import numpy as np
import torch
import torch.nn.functional as F

from aftbench.core.device import autocast
from aftbench.core.records import divergence_window


def non_finite_message(spec, step: int, ce: float, pen: float, beta: float) -> str:
    """Which term went non-finite, and what that points to (the features were checked at load)."""
    if not np.isfinite(ce):
        why = (
            "the cross-entropy went non-finite: the student's updates are too large (lower train.lr), or its "
            "inputs are not finite"
        )
    elif not np.isfinite(pen) and beta == 0:
        why = (
            f"the {spec.method.get('penalty')} penalty went non-finite (β = 0 here, so it cannot be β): the "
            f"penalty's own lr or its inputs"
        )
    elif not np.isfinite(pen):
        why = (
            f"the {spec.method.get('penalty')} penalty went non-finite: lower the method's beta or its own lr "
            f"(the teacher features were checked finite when loaded)"
        )
    else:
        why = f"beta × penalty overflowed (beta={beta}): lower the method's beta"
    return f"run {spec.run_id}: non-finite loss at step {step} (ce={ce:.4g}, penalty={pen:.4g}, beta={beta}): {why}"


class NonFinite:
    """The first step whose loss was not finite, and its terms, kept on the device."""

    def __init__(self, device, step: int):
        self.step = torch.tensor(float(step), dtype=torch.float64, device=device)  # the step counter, on the device
        self.first = torch.zeros(3, dtype=torch.float64, device=device)  # (step, ce, penalty); step 0: none yet

    def see(self, loss, ce, pen) -> None:
        self.step += 1
        bad = ~torch.isfinite(loss) & (self.first[0] == 0)
        now = torch.stack([self.step, ce.detach().double(), pen.detach().double()])
        self.first = torch.where(bad, now, self.first)

    def check(self, spec, beta: float) -> None:
        step, ce, pen = self.first.tolist()
        if step:
            raise FloatingPointError(non_finite_message(spec, int(step), ce, pen, beta))


def run_steps(spec, state, feed, model, checkpoint: str, fingerprint: str) -> float:
    """The steps from where `state` is to the end (`model`: what the step calls, the student or its
    compiled forward; `feed`: aftbench.train.feed); returns the run's seconds in the loop (those
    before a resume included)."""
    cfg, beta = spec.train, float(spec.method["beta"])
    smoothing = float(spec.method.get("label_smoothing", 0.0))  # the baseline's own tuned knob
    student, penalty, opt, sched = state.student, state.penalty, state.optimizer, state.scheduler
    device = feed.device
    window = divergence_window(cfg.steps)
    watch = NonFinite(device, state.step)
    no_penalty = torch.zeros((), device=device)
    learns_rho = penalty is not None and hasattr(penalty, "rho")
    t0 = time.time()
    student.train()
    for step in range(state.step + 1, cfg.steps + 1):
        x, y, phi = feed.next(state)
        with autocast(device, cfg.amp):
            logits, h = model(x)
        logits, h = logits.float(), h.float()
        ce = F.cross_entropy(logits, y, label_smoothing=smoothing)
        # logit distillation compares logits; every other penalty compares features
        pen = no_penalty if penalty is None else penalty(logits if penalty.uses_logits else h, phi)
        loss = ce + beta * pen
        watch.see(loss, ce, pen)
        if state.first_ce is None:
            state.first_ce = ce.detach().double()
        if step > cfg.steps - window:
            state.window_ce += ce.detach()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        lrs = [g["lr"] for g in opt.param_groups]  # what this step ran at (student first, then the penalty's)
        opt.step()
        sched.step()
        state.step = step
        logged = step % cfg.log_every == 0 or step == cfg.steps
        saved = cfg.checkpoint_every > 0 and step % cfg.checkpoint_every == 0 and step < cfg.steps
        if logged or saved:
            watch.check(spec, beta)
        if logged:  # one read-back: the losses (and ρ's mean, for a penalty that learns ρ)
            read = [ce.detach().double(), pen.detach().double()]
            if learns_rho:
                read.append(penalty.rho.detach().double().mean())
            c, p, *r = torch.stack(read).tolist()
            state.history.append({"step": step, "ce": c, "penalty": p, "lr": lrs, **({"rho_mean": r[0]} if r else {})})
            print(f"[{spec.run_id}] step {step}/{cfg.steps} ce {c:.4f} penalty {p:.4f}", flush=True)
        if saved:
            state.save(checkpoint, fingerprint, state.train_seconds + time.time() - t0)
        if step < cfg.steps:
            feed.prefetch(state)  # after the checkpoint: it holds this step's sampler
    return state.train_seconds + time.time() - t0
