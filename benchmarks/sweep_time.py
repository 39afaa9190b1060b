"""Where a finished sweep's time went, from its jobs' own `benchmark:` files and metrics: per
job kind (split, extraction per teacher, training, probe, paraphraser) the job count and the
summed wall seconds; for training jobs, the training loop itself (metrics' train_seconds) vs the
rest of the job (Python + torch start-up, loading the split, building the student, encoding the
inputs, evaluation); and the interpreter start-up floors measured here (`import torch`,
`import aftbench.train.loop`). Give the sweep's measured wall time to get Snakemake's own share.

    python benchmarks/sweep_time.py --results RESULTS_DIR --wall 540 --cores 2
"""

import argparse
import json
import statistics
import subprocess
import sys
import time
from pathlib import Path


def tsv_seconds(path: Path) -> float:
    lines = path.read_text().splitlines()
    return float(lines[-1].split("\t")[0])


def startup(code: str, repeat: int = 3) -> float:
    times = []
    for _ in range(repeat):
        t = time.time()
        subprocess.run([sys.executable, "-c", code], check=True)
        times.append(time.time() - t)
    return statistics.median(times)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--results", default="results")
    ap.add_argument("--wall", type=float, help="the sweep's measured wall time (s)")
    ap.add_argument("--cores", type=int, default=2)
    a = ap.parse_args()
    bench = Path(a.results) / "benchmarks"
    rows = []
    for p in sorted((bench / "split").glob("*.tsv")):
        rows.append(("split", p.stem, tsv_seconds(p)))
    for p in sorted((bench / "features").glob("*/*.tsv")):
        rows.append(("extract", f"{p.parent.name}/{p.stem}", tsv_seconds(p)))
    for p in sorted((bench / "factors").glob("**/*.tsv")) if (bench / "factors").exists() else []:
        rows.append(("paraphraser", str(p.relative_to(bench)), tsv_seconds(p)))
    loop, other = [], []
    for p in sorted((bench / "runs").glob("**/*.tsv")):
        rel = p.relative_to(bench / "runs").with_suffix("")
        metrics = Path(a.results) / "runs" / rel / "metrics.json"
        kind = "probe" if "student~probe" in str(rel) else "train"
        seconds = tsv_seconds(p)
        rows.append((kind, str(rel), seconds))
        if kind == "train" and metrics.exists():
            m = json.loads(metrics.read_text())
            loop.append(m["train_seconds"])
            other.append(seconds - m["train_seconds"])
    total = sum(s for _, _, s in rows)
    print("| job kind | jobs | summed job wall (s) | mean (s) | share |")
    print("| --- | --- | --- | --- | --- |")
    for kind in ("split", "extract", "paraphraser", "train", "probe"):
        s = [x for k, _, x in rows if k == kind]
        if s:
            print(f"| {kind} | {len(s)} | {sum(s):.0f} | {sum(s) / len(s):.1f} | {sum(s) / total:.0%} |")
    print(f"| all jobs | {len(rows)} | {total:.0f} | | |")
    print()
    for k, name, s in rows:
        if k == "extract":
            print(f"- extract {name}: {s:.1f} s")
    if loop:
        print(
            f"\ntraining jobs: the training loop {sum(loop):.0f} s (mean {statistics.mean(loop):.1f} s), "
            f"the rest of the job {sum(other):.0f} s (mean {statistics.mean(other):.1f} s: start-up, split, "
            f"student build, input encoding, evaluation)"
        )
    torch_s = startup("import torch")
    train_s = startup("import aftbench.train.loop")
    print(
        f"start-up floors (median of 3): `import torch` {torch_s:.2f} s, `import aftbench.train.loop` {train_s:.2f} s"
    )
    if a.wall:
        print(
            f"\nwall {a.wall:.0f} s on {a.cores} cores = {a.wall * a.cores:.0f} core-s; the jobs' summed wall "
            f"{total:.0f} s = {total / (a.wall * a.cores):.0%} of it (the rest: Snakemake's DAG build and "
            f"scheduling, and cores left idle where the DAG waits on a dependency)"
        )


if __name__ == "__main__":
    main()
