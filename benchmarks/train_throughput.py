"""aftbench's training loop against a bare loop, per student and method, on one device in one run.

For each student and method (STL, KD, AFT) three loops run the same student, batch size and
precision (bf16 autocast on a GPU with --amp; the fast paths of aftbench.train.fast as resolved for
the device, in all three):
  bare    one synthetic batch already on the device: forward, cross-entropy (+ the penalty),
          backward, fused Adam step; nothing else (no sampler, no logging, no checks);
  loop    aftbench.train.steps.run_steps with its Feed (the batch sampler over a synthetic split
          of --batches batches, resident on the device), as a run trains;
  legacy  the loop as it was before issue #30 (benchmarks/legacy_loop.py: a host sync every step,
          batches gathered on the host), for the before/after.
Reported: examples/s, the ratio loop/bare (goal ≥ 0.9 for STL) and AFT's step time over STL's in
the loop (goal ≤ 1.03 at batch 128), and TFLOP/s from torch's FLOP counter (one step, forward and
backward). Steps are timed after --warmup steps, loops interleaved per repeat (a drift in machine
speed affects all alike), the median of --repeats blocks of --steps steps.

    python benchmarks/train_throughput.py                      # CPU: tiny students, ratios only
    python benchmarks/train_throughput.py --device cuda --amp  # the paper's students, random init
"""

from __future__ import annotations

import argparse
import platform
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).parent))
from legacy_loop import legacy_run_steps  # noqa: E402
from step_time import fake_split  # noqa: E402

from aftbench.core.device import autocast, resolve_device  # noqa: E402
from aftbench.methods.registry import build_penalty  # noqa: E402
from aftbench.students.registry import build_student  # noqa: E402
from aftbench.train import fast  # noqa: E402
from aftbench.train.feed import Feed  # noqa: E402
from aftbench.train.loop import RunSpec, start_state  # noqa: E402
from aftbench.train.steps import run_steps  # noqa: E402

MINILM_AS = {  # BERT-architecture students of the paper's sizes, from the embedded MiniLM's config (no download)
    "bert_small": {"hidden_size": 512, "num_hidden_layers": 4, "num_attention_heads": 8, "intermediate_size": 2048},
    "distilbert": {"hidden_size": 768, "num_hidden_layers": 6, "num_attention_heads": 12, "intermediate_size": 3072},
}
STUDENTS = {
    "cpu": {
        "cnn_m (28 px)": ({"arch": "cnn", "args": {"width": 16, "depth": 3, "image_size": 28}}, "image", 28),
        "wp_bag_m (text)": ({"arch": "wordpiece_bag", "args": {"emb_dim": 96, "hidden": 96}}, "text", 0),
    },
    "cuda": {
        "ViT-S/16": ({"arch": "timm", "args": {"model": "vit_small_patch16_224", "pretrained": False}}, "image", 224),
        "MLP-Mixer-B/16": ({"arch": "timm", "args": {"model": "mixer_b16_224", "pretrained": False}}, "image", 224),
        "ResNet-50": ({"arch": "timm", "args": {"model": "resnet50", "pretrained": False}}, "image", 224),
        **{
            f"{name}-shaped BERT": (
                {"arch": "hf_classifier", "args": {"pretrained": False, "max_length": 256, "config": cfg}},
                "text",
                0,
            )
            for name, cfg in MINILM_AS.items()
        },
    },
}
METHODS = {"stl": ("none", 0.0, {}), "kd": ("kd", 1.0, {}), "aft": ("aft", 1.0, {"rho_lr": 0.01})}


def synthetic(kind, size, n, d_phi, method):
    split = fake_split(kind, n, image_size=size, words=300)
    penalty_name, beta, args = METHODS[method]
    torch.manual_seed(1)
    phi = None if penalty_name == "none" else torch.randn(n, d_phi)
    return split, phi, penalty_name, beta, args


def fresh(student_spec, split, pname, phi, args, device):
    """The same initial student and penalty each call (a copy.deepcopy would not do: a student's
    hooks may hold the original)."""
    torch.manual_seed(0)
    student = build_student(student_spec, split).to(device)
    switches = fast.resolve(argparse.Namespace(tf32="auto", channels_last="auto", compile=False), device, student)
    model = fast.apply(student, switches)
    penalty = build_penalty(pname, student.head.in_features, phi.shape[1] if phi is not None else 0, args)
    return student, penalty, model


def build(student_spec, kind, size, method, batch, batches, d_phi, device, amp):
    """The three loops of one (student, method), each a function running k steps."""
    n = batch * batches
    split, phi, pname, beta, args = synthetic(kind, size, n, d_phi, method)
    student, penalty, model = fresh(student_spec, split, pname, phi, args, device)
    x = student.encode_inputs(split.parts["train"])
    y = torch.from_numpy(split.parts["train"].labels)
    train = {"steps": 1, "batch_size": batch, "log_every": 50, "checkpoint_every": 0, "device": str(device), "amp": amp}
    run = {
        "run_id": f"bench/{method}", "dataset": "bench", "student_id": "s", "student": student_spec,
        "method_id": method, "method": {"kind": "train", "penalty": pname, "beta": beta, "args": args},
        "teacher_set": "t", "teachers": ["t"], "seed": 0, "train": train,
    }  # fmt: skip
    spec = RunSpec.from_dict(run)
    state = start_state(spec, student, penalty, n, device)
    feed = Feed(x, y, phi, batch, device, resident_gb=16.0)

    def loop(k):
        spec.train.steps = state.step + k
        run_steps(spec, state, feed, model, "/dev/null", "bench")

    legacy_spec, legacy_state = RunSpec.from_dict(run), None

    def legacy(k):
        nonlocal legacy_state
        if legacy_state is None:  # its own student, penalty and Adam
            s2, p2, _ = fresh(student_spec, split, pname, phi, args, device)
            legacy_state = start_state(legacy_spec, s2, p2, n, device)
        legacy_spec.train.steps = legacy_state.step + k
        legacy_run_steps(legacy_spec, legacy_state, x, y, phi, device)

    _, bare_pen, bare_model = fresh(student_spec, split, pname, phi, args, device)
    groups = [{"params": list(bare_model.parameters())}] + (bare_pen.param_groups() if bare_pen else [])
    opt = torch.optim.Adam(groups, lr=1e-3, fused=True)
    xb = {k: v[:batch].to(device) for k, v in x.items()}
    yb, pb = y[:batch].to(device), phi[:batch].to(device) if phi is not None else None

    def bare_step():
        with autocast(device, amp):
            logits, h = bare_model(xb)
        logits, h = logits.float(), h.float()
        loss = F.cross_entropy(logits, yb)
        if bare_pen is not None:
            loss = loss + beta * bare_pen(logits if bare_pen.uses_logits else h, pb)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    def bare(k):
        for _ in range(k):
            bare_step()

    from torch.utils.flop_counter import FlopCounterMode

    with FlopCounterMode(display=False) as counter:
        bare_step()
    return {"bare": bare, "loop": loop, "legacy": legacy}, counter.get_total_flops()


def timed(fn, k, device) -> float:
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    t0 = time.perf_counter()
    fn(k)
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    return time.perf_counter() - t0


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--amp", action="store_true", help="bf16 autocast (GPU)")
    ap.add_argument("--batch", type=int, default=128)
    ap.add_argument("--batches", type=int, default=4, help="the synthetic split's size, in batches")
    ap.add_argument("--d-phi", type=int, default=1024)
    ap.add_argument("--steps", type=int, default=10, help="steps per timed block")
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--warmup", type=int, default=3)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--students", nargs="*", help="names from the device's list (default: all)")
    ap.add_argument("--out", help="also write the markdown table here")
    a = ap.parse_args(argv)
    torch.set_num_threads(a.threads)
    device = resolve_device(a.device)
    students = STUDENTS["cuda" if device.type == "cuda" else "cpu"]
    names = a.students or list(students)
    where = torch.cuda.get_device_name(device) if device.type == "cuda" else platform.processor() or platform.machine()
    lines = [
        f"{where}, torch {torch.__version__}, batch {a.batch}, amp {a.amp}, {a.threads} CPU thread(s); median of "
        f"{a.repeats} blocks of {a.steps} steps after {a.warmup} warm-up steps, loops interleaved; "
        f"{time.strftime('%Y-%m-%d')}. `python benchmarks/train_throughput.py {' '.join(argv or sys.argv[1:])}`",
        "",
        "| student | method | bare (ex/s) | loop (ex/s) | legacy (ex/s) | loop / bare | loop / legacy | step / STL's | TFLOP/s (loop) |",
        "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for name in names:
        spec, kind, size = students[name]
        stl_step = None
        for method in METHODS:
            loops, flops = build(spec, kind, size, method, a.batch, a.batches, a.d_phi, device, a.amp)
            for fn in loops.values():
                fn(a.warmup)
            times = {k: [] for k in loops}
            for _ in range(a.repeats):
                for k, fn in loops.items():
                    times[k].append(timed(fn, a.steps, device) / a.steps)
            med = {k: statistics.median(v) for k, v in times.items()}
            stl_step = stl_step or med["loop"]
            rate = {k: a.batch / v for k, v in med.items()}
            row = (
                f"| {name} | {method} | {rate['bare']:.0f} | {rate['loop']:.0f} | {rate['legacy']:.0f} | "
                f"{med['bare'] / med['loop']:.3f} | {med['legacy'] / med['loop']:.3f} | "
                f"{med['loop'] / stl_step:.3f} | {flops / med['loop'] / 1e12:.3g} |"
            )
            lines.append(row)
            print(row, flush=True)
            del loops
            if device.type == "cuda":
                torch.cuda.empty_cache()
    text = "\n".join(lines)
    print("\n" + text)
    if a.out:
        Path(a.out).write_text(text + "\n")
    return 0


if __name__ == "__main__":
    np.seterr(all="ignore")
    raise SystemExit(main())
