"""How long Snakemake takes to build (and print) the DAG of a sweep, next to Snakemake's own
floor: a trivial Snakefile with the same number of training jobs, each with a log, a benchmark,
one input function and one params function (what every aftbench training job has), nothing else.

Each variant runs `--repeats` times, interleaved; the table gives min / median / max wall time.
Run it on an otherwise idle machine (a busy core shifts every number), in a checkout whose
results/ does not hold the sweep (finished jobs leave the plan).

    python benchmarks/dag_build.py --sweep paper --repeats 3 --seed-multipliers 1 8

`--seed-multipliers 1 8` measures the sweep as configured and with every block's seeds × 8 (a
temporary config file adds that sweep beside the others), both in one run.
"""

from __future__ import annotations

import argparse
import copy
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
FLOOR_SNAKEFILE = """
rule all:
    input: expand("out/{{i}}/metrics.json", i=range({n}))
rule split:
    output: "split/{{d}}.npz"
    shell: "touch {{output}}"
rule feat:
    input: "split/d0.npz"
    output: "feat/{{t}}.st"
    shell: "touch {{output}}"
rule train:
    input: split="split/d0.npz", features=lambda w: f"feat/t{{int(w.i) % 100}}.st"
    output: "out/{{i}}/metrics.json"
    params: spec=lambda w: w.i
    log: "logs/{{i}}.log"
    benchmark: "bench/{{i}}.tsv"
    shell: "touch {{output}}"
"""


def snakemake() -> str:
    exe = Path(sys.executable).with_name("snakemake")
    found = str(exe) if exe.exists() else shutil.which("snakemake")
    if not found:
        raise SystemExit("snakemake not found beside this Python or on PATH (run `make setup`)")
    return found


def timed(cmd: list[str], cwd: Path) -> tuple[float, str]:
    t = time.perf_counter()
    out = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True)
    wall = time.perf_counter() - t
    if out.returncode:
        raise RuntimeError(f"{' '.join(cmd)} failed:\n{out.stderr[-2000:]}")
    return wall, out.stdout + out.stderr


def widened(sweep: str, multiplier: int, out: Path) -> list[str]:
    """Snakemake arguments for `sweep` with every block's seeds × multiplier (a new sweep entry in a
    temporary config file merged over config.yaml)."""
    if multiplier == 1:
        return ["--config", f"sweep={sweep}"]
    config = yaml.safe_load((ROOT / "config.yaml").read_text())
    blocks = copy.deepcopy(config["sweeps"][sweep])
    for b in blocks:
        n = len(b["seeds"])
        b["seeds"] = list(range(n * multiplier))
    name = f"{sweep}_x{multiplier}"
    out.write_text(yaml.safe_dump({"sweep": name, "sweeps": {name: blocks}}, sort_keys=False))
    return ["--configfile", str(out)]


def measure(sm: str, sweep: str, multiplier: int, repeats: int) -> None:
    extra = widened(sweep, multiplier, Path(tempfile.mkdtemp(prefix="dag_cfg_")) / "wide.yaml")
    _, plan = timed([sm, "-n", "--quiet", "rules", *extra], ROOT)
    counts = dict(re.findall(r"^(\w+)\s+(\d+)$", plan, re.M))
    if "total" not in counts:
        raise SystemExit(
            f"sweep {sweep!r} has nothing left to plan here (its results exist?); measure in a "
            f"fresh clone, where every job of the sweep is planned"
        )
    n_jobs, n_train = int(counts["total"]), int(counts.get("train", 0))
    floor = Path(tempfile.mkdtemp(prefix="dag_floor_"))
    (floor / "Snakefile").write_text(FLOOR_SNAKEFILE.format(n=n_jobs - 102))  # + all, split, 100 feat
    label = f"`{sweep}`" + (f" × {multiplier} seeds" if multiplier > 1 else "")
    variants = {
        f"aftbench {label}: `-n --quiet` (no plan printed)": ([sm, "-n", "--quiet", *extra], ROOT),
        f"aftbench {label}: `-n` (plan printed per job)": ([sm, "-n", *extra], ROOT),
        "floor, same job count: `-n --quiet`": ([sm, "-n", "--quiet", "--cores", "1"], floor),
        "floor, same job count: `-n`": ([sm, "-n", "--cores", "1"], floor),
    }
    times = {k: [] for k in variants}
    for _ in range(repeats):
        for name, (cmd, cwd) in variants.items():
            times[name].append(timed(cmd, cwd)[0])
    shutil.rmtree(floor)
    print(
        f"\n{n_jobs:,} jobs ({n_train:,} training runs); floor: {n_jobs:,} trivial jobs with log, benchmark, "
        f"one input and one params function; {repeats} interleaved runs each\n"
    )
    print("| what | min | median | max |\n| --- | ---: | ---: | ---: |")
    for name, t in times.items():
        print(f"| {name} | {min(t):.1f} s | {statistics.median(t):.1f} s | {max(t):.1f} s |")
    med = {k: statistics.median(t) for k, t in times.items()}
    keys = list(med)
    print(
        f"\nratio to the floor: `-n --quiet` {med[keys[0]] / med[keys[2]]:.2f}×, `-n` {med[keys[1]] / med[keys[3]]:.2f}×"
    )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sweep", default="paper")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument(
        "--seed-multipliers", type=int, nargs="+", default=[1], help="each block's seeds × N, one measurement per N"
    )
    args = ap.parse_args()
    sm = snakemake()
    for m in args.seed_multipliers:
        measure(sm, args.sweep, m, args.repeats)


if __name__ == "__main__":
    main()
