#!/usr/bin/env bash
# Packing under submitit_local on the offline default sweep: the training part of the sweep (every
# job after feature extraction and teacher scores) run twice from the same extracted features,
#   A: launcher submitit_local, pack 1, snakemake --cores 2    (two jobs at a time, one start-up each)
#   B: launcher submitit_local, pack 8, snakemake --cores 2    (two packs at a time, each taking the next
#                                                                queued run when free: one start-up per 8 runs)
# Prints each wall time and checks the two sweeps' metrics are identical.
#   bash benchmarks/pack_local.sh [WORKDIR]      (from the project root, with .venv set up)
#   VARIANTS="B A" bash benchmarks/pack_local.sh  (the other order: a drift in machine speed shows)
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
W="${1:-$(mktemp -d)}"
export PATH="$ROOT/.venv/bin:$PATH" HF_HUB_OFFLINE=1
git -C "$ROOT" clone -q "$ROOT" "$W/base"
cd "$W/base"
echo "load before: $(cut -d' ' -f1-3 /proc/loadavg)"
t0=$(date +%s)
snakemake --cores 2 --quiet rules --until extract_features score_teachers > "$W/extract.log" 2>&1
echo "extraction and scores: $(( $(date +%s) - t0 )) s"
for variant in ${VARIANTS:-A B}; do
  rm -rf "$W/$variant" && cp -a "$W/base" "$W/$variant" && cd "$W/$variant"
  if [ $variant = A ]; then args=(--cores 2 --config launcher=submitit_local)
  else args=(--cores 2 --config launcher=submitit_local 'launch={"pack": 8}'); fi
  t0=$(date +%s.%N)
  snakemake --quiet rules "${args[@]}" > "$W/$variant.log" 2>&1
  t1=$(date +%s.%N)
  jobs=$(find results/logs/jobs -name '*_submitted.pkl' | wc -l)
  [ $variant = B ] && echo "B: runs per pack: $(for r in results/logs/jobs/*/packs/*/runs.json; do python -c "import json,sys; print(len(json.load(open(sys.argv[1]))))" "$r"; done | sort -n | uniq -c | tr '\n' ' ')"
  echo "$variant (${args[*]}): $(python -c "print(f'{$t1 - $t0:.0f}')") s, $jobs submitit jobs, load after $(cut -d' ' -f1-3 /proc/loadavg)"
done
python - "$W" <<'PY'
import json, sys
from pathlib import Path
w = Path(sys.argv[1])
def metrics(d):
    return {str(p.relative_to(d)): json.loads(p.read_text()) for p in (d / "results" / "runs").rglob("metrics.json")}
a, b = metrics(w / "A"), metrics(w / "B")
keys = ("val_acc", "test_acc", "history", "final_ce", "final_penalty")
same = a.keys() == b.keys() and all(a[k].get(x) == b[k].get(x) for k in a for x in keys)
print(f"{len(a)} runs; metrics identical in A and B: {same}")
PY
