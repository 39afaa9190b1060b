#!/usr/bin/env bash
# The cost model (python -m aftbench cost) against one GPU: runs sweep `gpu_calibration` one job at a
# time (each job's benchmark file then times it alone), with extraction on the GPU too, then prices
# the same sweep on the `cost.devices` entry given and sets each job's estimate against its
# measured seconds. Meant for a CUDA GPU (without one every job runs on the CPU); downloads
# nothing (random-init timm models, scikit-learn's digits). From the project root, in a checkout
# whose results/ does not hold the sweep:
#
#   bash benchmarks/gpu_calibration.sh [DEVICE_ENTRY] [OUT_DIR] [extra snakemake arguments]
#
# DEVICE_ENTRY (default h100) is the prior the estimate uses; OUT_DIR (default
# results/gpu_calibration) gets gpu.txt (the device), jobs.csv (each job's FLOPs and estimate) and
# cost.md (the bill and the comparison). BENCHMARKS.md: "Cost estimate vs measured".
set -euo pipefail
entry=${1:-h100}
out=${2:-results/gpu_calibration}
shift $(($# < 2 ? $# : 2))
mkdir -p "$out"
{
  nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.max.sm --format=csv,noheader 2>/dev/null || true
  python -c "import torch; c = torch.cuda.is_available(); print('torch', torch.__version__, 'cuda', torch.version.cuda, torch.cuda.get_device_name() if c else 'NO GPU: the jobs run on the CPU')"
} | tee "$out/gpu.txt"
# benchmarks/gpu_calibration.yaml: the sweep, and extraction on the GPU (CALIBRATION_CONFIG: another
# file, which must hold both itself). --omit-from aggregate: the jobs priced, without the report.
config=${CALIBRATION_CONFIG:-benchmarks/gpu_calibration.yaml}
snakemake --cores 1 --configfile "$config" --omit-from aggregate "$@"
python -m aftbench cost --configfile "$config" --device "$entry" --everything --gpus 1 \
  --compare results/benchmarks --csv "$out/jobs.csv" --out "$out/cost.md"
cat "$out/cost.md"
