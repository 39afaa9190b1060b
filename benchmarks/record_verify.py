"""Cost of the integrity checks of issue #29: verifying a split at load (SHA-256 of its npz and image
files, aftbench.data.splits.verify_split) per GB, verifying run records before aggregation
(each record's own digest and its inputs' sidecar digests, aftbench.report.verify) per 1,000 runs,
and the preflight of a start whose splits and caches did not change since they last verified
(aftbench.config.preflight: a stat per file against its memo) for the `paper` sweep's artifacts.

    python benchmarks/record_verify.py --gb 0.5 --runs 1000 --test-examples 10000 --repeat 3
"""

import argparse
import json
import tempfile
import time
from pathlib import Path

import numpy as np

from aftbench.core.io import file_sha256, write_json
from aftbench.core.records import encode_predictions, run_input, sign_record
from aftbench.data.splits import verify_split
from aftbench.report.verify import verified_records


def split_cost(d: Path, gb: float, repeat: int) -> tuple[float, float]:
    """(seconds per verification, GB) of a split of `gb` GB of uint8 images."""
    rng = np.random.default_rng(0)
    n = int(gb * 1e9 / (224 * 224 * 3))
    npz = d / "s.npz"
    np.savez(npz, train_labels=rng.integers(0, 10, n), classes=np.arange(10).astype(str))
    (d / "s.images").mkdir()
    images = np.lib.format.open_memmap(d / "s.images" / "train.npy", "w+", np.uint8, (n, 224, 224, 3))
    for i in range(0, n, 1024):
        images[i : i + 1024] = rng.integers(0, 255, (min(1024, n - i), 224, 224, 3), dtype=np.uint8)
    images.flush()
    del images
    files = [npz, d / "s.images" / "train.npy"]
    meta = {"image_files": ["train.npy"], "sha256": file_sha256(*files)}
    size = sum(f.stat().st_size for f in files) / 1e9
    times = []
    for _ in range(repeat):
        t = time.perf_counter()
        verify_split(npz, meta)
        times.append(time.perf_counter() - t)
    return float(np.median(times)), size


def record_cost(d: Path, runs: int, test_examples: int, repeat: int) -> float:
    """Seconds to verify `runs` records (one split and one cache each, 12 caches in all)."""
    rng = np.random.default_rng(0)
    write_json(d / "split.json", {"sha256": "a" * 64})
    for c in range(12):
        write_json(d / f"c{c}.json", {"teacher": f"t{c}", "tensor_sha256": {"train": "b" * 64}})
    from aftbench.teachers.features import cache_digest

    paths = []
    for i in range(runs):
        c = i % 12
        digest = cache_digest(json.loads((d / f"c{c}.json").read_text()))
        pred = rng.integers(0, 10, test_examples)
        record = {
            "run_id": f"r{i}",
            "test_acc": 0.5,
            "history": [{"step": s, "ce": 1.0, "penalty": 0.1} for s in range(0, 1000, 50)],
            "inputs": [
                run_input("split", str(d / "split.npz"), "a" * 64),
                run_input("features", str(d / f"c{c}.safetensors"), digest),
            ],
            **encode_predictions(pred, pred == 0),
        }
        p = d / f"r{i}.json"
        write_json(p, sign_record(record))
        paths.append(str(p))
    times = []
    for _ in range(repeat):
        t = time.perf_counter()
        verified_records(paths)
        times.append(time.perf_counter() - t)
    return float(np.median(times))


def preflight_cost(d: Path, repeat: int) -> tuple[float, int]:
    """(seconds, artifacts) of `damaged_artifacts` for the paper sweep when every artifact is in the
    memo unchanged (stand-in files: a memo hit never reads them)."""
    import os

    from aftbench.config import preflight
    from aftbench.config.check import validate_config
    from aftbench.config.load import load_config
    from aftbench.core.layout import sidecar

    root = Path(__file__).resolve().parents[1]
    config = validate_config(load_config([str(root / "config.yaml")], ["sweep=paper"]))
    os.chdir(d)
    splits, caches = preflight.sweep_artifacts(config)
    memo = {}
    for kind, path in [("split", p) for p in splits] + [("features", p) for p in caches]:
        for f in (path, sidecar(path)):
            Path(f).parent.mkdir(parents=True, exist_ok=True)
            Path(f).write_text("{}")
        memo[path] = preflight._stamp(preflight._files(kind, path))
    write_json(preflight.VERIFIED_MEMO, memo)
    times = []
    for _ in range(repeat):
        t = time.perf_counter()
        assert preflight.damaged_artifacts(config) == []
        times.append(time.perf_counter() - t)
    os.chdir(root)
    return float(np.median(times)), len(memo)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--gb", type=float, default=0.5)
    ap.add_argument("--runs", type=int, default=1000)
    ap.add_argument("--test-examples", type=int, default=10000)
    ap.add_argument("--repeat", type=int, default=3)
    a = ap.parse_args()
    with tempfile.TemporaryDirectory() as d:
        s, gb = split_cost(Path(d), a.gb, a.repeat)
        print(f"split verification: {s:.2f} s for {gb:.2f} GB = {s / gb:.2f} s/GB (median of {a.repeat})")
    with tempfile.TemporaryDirectory() as d:
        r = record_cost(Path(d), a.runs, a.test_examples, a.repeat)
        print(
            f"record verification: {r:.2f} s for {a.runs} records ({a.test_examples} test examples each) = "
            f"{1000 * r / a.runs:.2f} s per 1,000 runs (median of {a.repeat})"
        )
    with tempfile.TemporaryDirectory() as d:
        p, n = preflight_cost(Path(d), a.repeat)
        print(f"preflight, nothing changed: {1000 * p:.1f} ms for the paper sweep's {n} splits and caches")


if __name__ == "__main__":
    main()
