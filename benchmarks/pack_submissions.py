"""How many jobs a sweep submits to SLURM with and without `launch.pack` (no cluster needed).

Every heavy job is one submission unpacked; packed N to a job, a kind's runs need at least
ceil(runs / N) submissions — exactly that when every pack fills, i.e. when N runs of the kind are
waiting together (the slurm profile keeps 100 jobs in flight; a kind's runs become ready in
waves, so a wave's last pack may be partial and the real count a little higher). The local
SLURM suite measures the real count on the tiny sweep (tests/test_slurm.py).

    python benchmarks/pack_submissions.py --sweep paper --pack 8
"""

from __future__ import annotations

import argparse
import math
from collections import Counter

from aftbench.config.load import load_config
from aftbench.sweep.plan import sweep_jobs

SUBMITTED = {"extract": "extract", "score": "score", "paraphraser": "paraphraser", "probe": "probe"}
SUBMITTED.update(train="train", refit="train")  # refits are training jobs (job kind `train`)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sweep", default="paper")
    ap.add_argument("--pack", type=int, nargs="+", default=[8])
    a = ap.parse_args()
    config = load_config(["config.yaml"], [f"sweep={a.sweep}"])
    jobs, _ = sweep_jobs(config)
    kinds = Counter(SUBMITTED[j.kind] for j in jobs.values() if j.kind in SUBMITTED)
    local = sum(1 for j in jobs.values() if j.kind not in SUBMITTED)
    print(f"sweep {a.sweep}: {len(jobs)} jobs; {local} run on the submitting host (split, select, report)")
    header = "| job kind | runs | " + " | ".join(f"submissions, pack {n}" for n in a.pack) + " |"
    print(header + "\n|" + "---|" * (2 + len(a.pack)))
    for kind, n in sorted(kinds.items()) + [("all", sum(kinds.values()))]:
        packed = [sum(math.ceil(c / p) for c in kinds.values()) if kind == "all" else math.ceil(n / p) for p in a.pack]
        print(f"| {kind} | {n} | " + " | ".join(str(x) for x in packed) + " |")


if __name__ == "__main__":
    main()
