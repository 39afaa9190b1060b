"""Feature-extraction throughput of aftbench's pipeline against the teacher's raw batched
forward pass (goal: pipeline ≥ 0.9× raw).

- raw: the model's forward (`forward_features` + `forward_head(pre_logits=True)`) on inputs that
  are already preprocessed and on the device, batch after batch (synchronised timing);
- pipeline: `aftbench.teachers.registry.extract` end to end on a split artifact of uint8 images: the
  teacher's own eval transform in DataLoader workers, host-to-device copies, the same forward,
  features back to the host, the float16/float32 storage decision and the write.

Both under the same device, batch size and autocast. Teachers are timm models at random init
(`pretrained: false`; throughput does not depend on the weights, and nothing is downloaded).

    python benchmarks/extract_throughput.py --device cuda --amp --workers 12 --n 8192 \\
        --models vit_base_patch16_224 resnet50
    python benchmarks/extract_throughput.py   # CPU smoke run with timm's tiny test model
"""

from __future__ import annotations

import argparse
import json
import platform
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from aftbench.data.registry import LOADERS
from aftbench.data.sources import Pool, Source
from aftbench.data.splits import make_split
from aftbench.teachers.extract import extract
from aftbench.teachers.registry import build_teacher


def synthetic_images(n: int, size: int, seed: int = 0) -> Source:
    """Smooth random images (not white noise: JPEG-like statistics do not matter here, but
    every image differs), 10 balanced classes."""
    rng = np.random.default_rng(seed)
    low = rng.integers(0, 256, (n, size // 16, size // 16, 3), dtype=np.uint8)
    images = low.repeat(16, axis=1).repeat(16, axis=2)
    labels = np.arange(n) % 10
    return Source("image", [str(i) for i in range(10)], Pool(labels, images=images))


def raw_forward(teacher, n: int, batch: int, repeats: int) -> float:
    """Images per second of the model alone on preprocessed, device-resident inputs."""
    x = teacher.preprocess(np.zeros((batch, 256, 256, 3), np.uint8) + 127).to(teacher.device)
    if x.dtype == torch.uint8:  # GPU extraction transforms on the device: done once here, not timed
        x = teacher.transform_on_device(x)
    sync = torch.cuda.synchronize if teacher.device.type == "cuda" else (lambda: None)
    with torch.no_grad(), teacher._autocast():
        for _ in range(3):  # warm-up (cuDNN autotuning, allocator)
            teacher.model.forward_head(teacher.model.forward_features(x), pre_logits=True)
        sync()
        best = 0.0
        for _ in range(repeats):
            t0 = time.perf_counter()
            for _ in range(max(1, n // batch)):
                f = teacher.model.forward_head(teacher.model.forward_features(x), pre_logits=True)
                f.float().cpu()  # the pipeline brings features back too
            sync()
            best = max(best, max(1, n // batch) * batch / (time.perf_counter() - t0))
    return best


def transform_only(teacher, batch: int, repeats: int) -> float | None:
    """Images per second of the eval transform alone on device-resident uint8 batches (GPU path)."""
    if not getattr(teacher, "accepts_device_inputs", False):
        return None
    x = teacher.preprocess(torch.full((batch, 256, 256, 3), 127, dtype=torch.uint8, device=teacher.device))
    sync = torch.cuda.synchronize if teacher.device.type == "cuda" else (lambda: None)
    teacher.transform(x.float() / 255.0)
    sync()
    t0 = time.perf_counter()
    for _ in range(repeats * 10):
        teacher.transform(x.float() / 255.0)
    sync()
    return repeats * 10 * batch / (time.perf_counter() - t0)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--models", nargs="+", default=["test_vit.r160_in1k"])
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--amp", action="store_true")
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--workers", type=int, default=0)
    ap.add_argument("--transform-on", default="auto", help="timm teachers' transform_on (auto | tensor | pil)")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--n", type=int, default=256, help="images in the split (train/val/test together)")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--out", help="append the markdown table here (else stdout)")
    a = ap.parse_args(argv)
    torch.set_num_threads(a.threads)

    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        LOADERS["synthetic_bench"] = lambda: synthetic_images(a.n, 256)  # benchmark-only source
        n_tr = a.n // 2
        spec = {
            "loader": "synthetic_bench",
            "modality": "image",
            "n_train": n_tr,
            "n_val": a.n // 4,
            "n_test": a.n - n_tr - a.n // 4,
        }
        make_split("bench", spec, str(tmp / "s.npz"), str(tmp / "s.json"))
        for model in a.models:
            tspec = {"backend": "timm", "args": {"model": model, "pretrained": False, "transform_on": a.transform_on}}
            teacher = build_teacher(tspec).to(a.device, amp=a.amp)
            raw = raw_forward(teacher, a.n, a.batch, a.repeats)
            tr = transform_only(teacher, a.batch, a.repeats)
            del teacher
            best = 0.0
            for r in range(a.repeats):
                out = tmp / f"{model}-{r}.safetensors"
                extract(
                    model,
                    tspec,
                    str(tmp / "s.npz"),
                    str(out),
                    str(out.with_suffix(".json")),
                    threads=a.threads,
                    device=a.device,
                    amp=a.amp,
                    batch_size=a.batch,
                    workers=a.workers,
                )
                meta = json.loads(out.with_suffix(".json").read_text())
                best = max(best, meta["examples_per_second"])
                print(f"  {model} run {r}: {meta['seconds']} s, by stage {meta['seconds_by_stage']}", flush=True)
            rows.append((model, raw, best, meta["stored"]["train"]["dtype"], tr, meta["inputs_resident_on_device"]))
            print(
                f"{model}: raw {raw:.1f} img/s, pipeline {best:.1f} img/s, ratio {best / raw:.3f}, "
                f"transform alone {tr or float('nan'):.1f} img/s",
                flush=True,
            )

    dev = torch.cuda.get_device_name() if a.device.startswith("cuda") else platform.processor() or platform.machine()
    lines = [
        f"\n### Extraction on {dev} ({a.device}, amp={a.amp}, batch {a.batch}, workers {a.workers}, "
        f"transform_on {a.transform_on}, "
        f"{a.n} images of 256 px, torch {torch.__version__})\n",
        "| teacher (timm, random init) | raw forward (img/s) | aftbench extract (img/s) | ratio | eval transform "
        "alone on the device (img/s) | inputs resident on device | stored |",
        "| --- | ---: | ---: | ---: | ---: | --- | --- |",
    ]
    lines += [
        f"| {m} | {r:.1f} | {p:.1f} | {p / r:.3f} | {'—' if t is None else f'{t:.1f}'} | {res} | {d} |"
        for m, r, p, d, t, res in rows
    ]
    text = "\n".join(lines) + "\n"
    if a.out:
        with open(a.out, "a") as f:
            f.write(text)
    else:
        print(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
