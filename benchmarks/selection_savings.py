"""What an adaptive sweep saves: job time of the runs a full sweep trains on every teacher set
and its adaptive twin (the same blocks with `teacher_sets: {select: ...}`) never trains, from the
full sweep's own `benchmark:` files, against what the adaptive sweep adds (the score jobs and the
selections). Run from the project folder after both sweeps have run:

    python benchmarks/selection_savings.py --full offline_teachers --adaptive offline_select
"""

import argparse
from collections import Counter
from pathlib import Path

from aftbench.config.check import validate_config
from aftbench.config.load import load_config
from aftbench.core.layout import BENCHMARKS_DIR, LOGS_DIR
from aftbench.selection.adaptive import known_selections, scored_sets
from aftbench.sweep.expand import expand_sweep


def seconds(path: Path) -> float | None:
    if not path.exists():
        return None
    return float(path.read_text().splitlines()[-1].split("\t")[0])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--full", required=True, help="the sweep that trains on every teacher set")
    ap.add_argument("--adaptive", required=True, help="its adaptive twin")
    ap.add_argument("--configfile", default="config.yaml")
    a = ap.parse_args()
    cfg = validate_config(load_config([a.configfile], []))
    full = {r.run_id: r for r in expand_sweep(cfg, a.full)}
    chosen = known_selections(cfg, a.adaptive)
    adaptive = {r.run_id for r in expand_sweep(cfg, a.adaptive, chosen)}
    skipped = [r for rid, r in full.items() if rid not in adaptive]
    missing = [rid for rid in adaptive if rid not in full]
    t_skipped = [seconds(Path(BENCHMARKS_DIR) / "runs" / f"{r.run_id}.tsv") for r in skipped]
    t_full = [seconds(Path(BENCHMARKS_DIR) / "runs" / f"{rid}.tsv") for rid in full]
    scores = [seconds(Path(BENCHMARKS_DIR) / "scores" / d / f"{ts}.tsv") for d, ts in scored_sets(cfg, a.adaptive)]
    print(f"selections made: {len(chosen)}")
    print(
        f"{a.full}: {len(full)} runs, job time {sum(t for t in t_full if t):.0f} s ({sum(t is None for t in t_full)} without a benchmark file)"
    )
    print(f"{a.adaptive}: {len(adaptive)} runs ({len(missing)} not in {a.full})")
    print(f"not trained by {a.adaptive}: {len(skipped)} runs, {Counter(r.teacher_set for r in skipped)}")
    print(f"  their job time in {a.full}: {sum(t for t in t_skipped if t):.0f} s")
    print(
        f"added by {a.adaptive}: {len(scores)} score jobs, {sum(t for t in scores if t):.1f} s (selection jobs: light, logs in {LOGS_DIR}/selections)"
    )


if __name__ == "__main__":
    main()
