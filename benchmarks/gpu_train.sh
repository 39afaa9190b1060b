#!/usr/bin/env bash
# Issue #30 on one GPU, one command: the training loop's throughput before (legacy) and after, against
# a bare loop, for the paper's students at random init (nothing to download), then the CUDA tests.
#   bash benchmarks/gpu_train.sh [OUT_DIR]        (from the project root, with .venv set up)
# OUT_DIR (default results/gpu_train) gets gpu.txt, throughput.md (bf16 autocast, batch 128) and
# pytest.txt. BENCHMARKS.md: "Training loop throughput (issue #30)".
set -uo pipefail
out=${1:-results/gpu_train}
mkdir -p "$out"
export PATH="$PWD/.venv/bin:$PATH" HF_HUB_OFFLINE=1
{
  nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.max.sm --format=csv,noheader 2>/dev/null || true
  python -c "import torch; print('torch', torch.__version__, 'cuda', torch.version.cuda, torch.cuda.get_device_name())"
  echo "load: $(cut -d' ' -f1-3 /proc/loadavg)"
} | tee "$out/gpu.txt"
python benchmarks/train_throughput.py --device cuda --amp --batch 128 --steps 20 --repeats 5 --out "$out/throughput.md"
python -m pytest -q -p no:cacheprovider tests/test_gpu.py 2>&1 | tee "$out/pytest.txt" | tail -5
