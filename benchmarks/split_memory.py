"""Memory of writing and reading a split artifact of decoded images (the Food-101 / SNLI-VE case).

A synthetic library dataset (`--n` random 320×400 images, decoded lazily like torchvision's and
Hugging Face's) goes through `make_split` at `--size` px; then, in a fresh process, `load_split`
and one pass over the training images in batches of 256 (what extraction and timm students
do). Each stage runs in its own process; a thread samples /proc/self/status every 20 ms and
reports the peak of anonymous memory (heap: what a cgroup cannot reclaim) and of file-backed
resident pages (page cache mapped by memmap: reclaimable). Works on any aftbench revision with
the same `make_split`/`load_split` signatures, so before/after can be compared:

    python benchmarks/split_memory.py --n 10000 --size 256 --dir /tmp/split-bench
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np

SYNTHETIC = "synthetic_images"


class Peak(threading.Thread):
    def __init__(self):
        super().__init__(daemon=True)
        self.anon = self.file = 0
        self.stop = False

    def run(self):
        while not self.stop:
            fields = dict(line.split(":", 1) for line in Path("/proc/self/status").read_text().splitlines())
            self.anon = max(self.anon, int(fields["RssAnon"].split()[0]) * 1024)
            self.file = max(self.file, int(fields["RssFile"].split()[0]) * 1024)
            time.sleep(0.02)


def _synthetic_loader(n: int, image_size: int):
    from PIL import Image

    from aftbench.data.sources import LazyImages, Pool, Source

    def get(row):
        rng = np.random.default_rng(row)
        return Image.fromarray(rng.integers(0, 256, (320, 400, 3), dtype=np.uint8))

    labels = np.arange(n) % 10
    return Source("image", [str(c) for c in range(10)], Pool(labels, images=LazyImages(get, np.arange(n), image_size)))


def stage(name: str, n: int, size: int, folder: Path) -> dict:
    from aftbench.data import registry as datasets

    datasets.LOADERS[SYNTHETIC] = _synthetic_loader
    npz = folder / "bench.npz"
    peak = Peak()
    peak.start()
    t = time.perf_counter()
    if name == "write":
        spec = {
            "loader": SYNTHETIC,
            "args": {"n": n, "image_size": size},
            "n_train": int(n * 0.7),
            "n_val": int(n * 0.1),
            "n_test": n - int(n * 0.7) - int(n * 0.1),
        }
        datasets.make_split("bench", spec, str(npz), str(folder / "bench.json"))
    else:
        split = datasets.load_split(str(npz))
        images = split.parts["train"].images
        total = 0
        for i in range(0, len(images), 256):
            total += int(np.asarray(images[i : i + 256]).sum(dtype=np.int64) % 7)
    seconds = time.perf_counter() - t
    time.sleep(0.05)
    peak.stop = True
    peak.join()
    on_disk = sum(f.stat().st_size for f in folder.rglob("*") if f.is_file())
    return {
        "stage": name,
        "seconds": round(seconds, 1),
        "peak_anon_gb": peak.anon / 1e9,
        "peak_file_gb": peak.file / 1e9,
        "on_disk_gb": on_disk / 1e9,
    }


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=10000)
    ap.add_argument("--size", type=int, default=256)
    ap.add_argument("--dir", default="/tmp/aftbench-split-bench")
    ap.add_argument("--stage", choices=["write", "read"], help=argparse.SUPPRESS)
    a = ap.parse_args(argv)
    folder = Path(a.dir)
    if a.stage:
        print(json.dumps(stage(a.stage, a.n, a.size, folder)))
        return
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    print(f"{a.n} images at {a.size} px = {a.n * a.size * a.size * 3 / 1e9:.2f} GB of uint8\n")
    print("| stage | seconds | peak anonymous memory | peak file-backed resident | on disk |")
    print("| --- | ---: | ---: | ---: | ---: |")
    for name in ("write", "read"):
        out = subprocess.run(
            [sys.executable, __file__, "--n", str(a.n), "--size", str(a.size), "--dir", a.dir, "--stage", name],
            check=True,
            capture_output=True,
            text=True,
        ).stdout
        r = json.loads(out.strip().splitlines()[-1])
        print(
            f"| {name} | {r['seconds']} | {r['peak_anon_gb']:.2f} GB | {r['peak_file_gb']:.2f} GB | {r['on_disk_gb']:.2f} GB |"
        )
    shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    main()
