"""Cost of verifying a feature cache at load (aftbench.teachers.features.load_features: content digests,
shapes, dtypes, finite check) against reading it without checks (safetensors load_file), per GB.

    python benchmarks/cache_verify.py --gb 1 --repeat 3
"""

import argparse
import os
import tempfile
import time
from pathlib import Path

import numpy as np
from safetensors.numpy import load_file

from aftbench.teachers.features import load_features, write_cache


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--gb", type=float, default=1.0, help="cache size (float16), split 80/10/10 over train/val/test")
    ap.add_argument("--dim", type=int, default=1024)
    ap.add_argument("--repeat", type=int, default=3)
    a = ap.parse_args()
    rows = int(a.gb * 1e9 / (2 * a.dim))
    rng = np.random.default_rng(0)
    sizes = {"train": int(rows * 0.8), "val": rows // 10, "test": rows - int(rows * 0.8) - rows // 10}
    feats = {s: rng.standard_normal((n, a.dim), dtype=np.float32).astype(np.float16) for s, n in sizes.items()}
    nbytes = sum(v.nbytes for v in feats.values())
    with tempfile.TemporaryDirectory() as d:
        out = Path(d) / "t.safetensors"
        identity = {
            "teacher": "t",
            "dataset": "d",
            "split_sha256": "0" * 64,
            "modality": "image",
            "pretrained": True,
            "spec": {"backend": "x"},
        }
        write_cache(str(out), str(out.with_suffix(".json")), feats, identity, {"dim": a.dim})
        del feats
        plain, before, checked = [], [], []
        for _ in range(a.repeat):  # interleaved, page cache warm for all
            t = time.perf_counter()
            load_file(str(out))
            plain.append(time.perf_counter() - t)
            t = time.perf_counter()  # what load_features did before verification: read, widen, concatenate
            arrays = load_file(str(out))
            {s: np.concatenate([arrays[s].astype(np.float32, copy=False)], axis=1) for s in arrays}
            before.append(time.perf_counter() - t)
            t = time.perf_counter()
            load_features([str(out)], "0" * 64, ["t"])
            checked.append(time.perf_counter() - t)
    gb = nbytes / 1e9
    print(f"cache {gb:.2f} GB float16 ({rows:,} rows x {a.dim}); load average {os.getloadavg()[0]:.2f}")
    print(f"plain load_file:        median {np.median(plain):.2f} s ({np.median(plain) / gb:.2f} s/GB)")
    unverified, verified = np.median(before), np.median(checked)
    print(
        f"unverified load as before (read, widen, concatenate): median {unverified:.2f} s ({unverified / gb:.2f} s/GB)"
    )
    print(f"verified load_features (digests, dtypes, finite check): median {verified:.2f} s ({verified / gb:.2f} s/GB)")


if __name__ == "__main__":
    main()
