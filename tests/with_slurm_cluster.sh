#!/usr/bin/env bash
# Run a command against a real one-node SLURM cluster on localhost, always torn down afterwards:
#   bash tests/with_slurm_cluster.sh CMD...
# Uses the verified recipe in ../shared/slurm (override with AFTBENCH_SLURM_RECIPE=DIR). Needs
# root (it apt-installs slurm, munge and MariaDB if missing and starts their daemons).
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
RECIPE="${AFTBENCH_SLURM_RECIPE:-$ROOT/../shared/slurm}"
[ -x "$RECIPE/start.sh" ] || { echo "no SLURM recipe at $RECIPE (set AFTBENCH_SLURM_RECIPE)" >&2; exit 2; }
trap 'bash "$RECIPE/stop.sh"' EXIT
bash "$RECIPE/start.sh"
# A hung test must not hang CI: SIGTERM after 25 min, SIGKILL 30 s later (the trap still runs).
AFTBENCH_SLURM=1 timeout -k 30 1500 "$@"
