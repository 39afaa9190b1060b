#!/usr/bin/env bash
# Run a command against a real one-node SLURM cluster on localhost, always torn down afterwards:
#   bash tests/with_slurm_cluster.sh CMD...
# The cluster comes from the project's own scripts in tests/slurm/ (start.sh, stop.sh; see the
# README there). AFTBENCH_SLURM_RECIPE=DIR uses another folder with a start.sh and a stop.sh.
# Needs root (start.sh apt-installs slurm, munge and MariaDB if missing and starts their daemons).
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
RECIPE="${AFTBENCH_SLURM_RECIPE:-$ROOT/tests/slurm}"
[ -f "$RECIPE/start.sh" ] && [ -f "$RECIPE/stop.sh" ] \
  || { echo "no SLURM recipe (start.sh, stop.sh) in $RECIPE" >&2; exit 2; }
export SLURM_LOCAL_DIR="${SLURM_LOCAL_DIR:-/tmp/aftbench-slurm}"
trap 'bash "$RECIPE/stop.sh"' EXIT
bash "$RECIPE/start.sh"
# SLURM commands and jobs find the cluster without the /etc/slurm/slurm.conf link too.
if [ -f "$SLURM_LOCAL_DIR/slurm.conf" ]; then export SLURM_CONF="$SLURM_LOCAL_DIR/slurm.conf"; fi
# A hung test must not hang CI: SIGTERM after 25 min, SIGKILL 30 s later (the trap still runs).
AFTBENCH_SLURM=1 timeout -k 30 1500 "$@"
