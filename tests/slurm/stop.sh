#!/usr/bin/env bash
# Tear down the cluster start.sh brought up: cancel every job, then stop exactly the daemons
# start.sh started (by their recorded pid and start time, never by name), newest first.
# Idempotent and quiet when nothing runs; always exits 0.
#   SLURM_LOCAL_DIR   as for start.sh                (default /tmp/aftbench-slurm)
#   SLURM_PURGE=1     also delete SLURM_LOCAL_DIR: job state, accounting database, logs
set -uo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
. "$HERE/lib.sh"

# 1. Cancel all jobs while slurmctld and slurmd still run, so that no job outlives them; wait
#    (KillWait is 5 s) until none is running or completing.
if ours slurmctld >/dev/null && [ -f "$SLURM_CONF" ]; then
  ids="$(squeue -h -o %A 2>/dev/null | sort -un | tr '\n' ' ')"
  if [ -n "${ids// /}" ]; then
    say "cancelling jobs: $ids"
    scancel $ids 2>/dev/null
    for _ in $(seq 100); do
      [ -z "$(squeue -h -t PD,R,CG,S 2>/dev/null)" ] && break
      sleep 0.2
    done
  fi
fi

# 2. The daemons, in the reverse order of start.sh. munged only if start.sh started it.
halt slurmd slurmctld
halt slurmdbd
halt mariadbd
halt munged

# 3. A job step whose slurmd is gone (should be none after step 1): only those of this cluster,
#    recognised by the SLURM_CONF that slurmd passed on to them.
for d in /proc/[0-9]*; do
  [ "$(cat "$d/comm" 2>/dev/null)" = slurmstepd ] || continue
  if tr '\0' '\n' < "$d/environ" 2>/dev/null | grep -qx "SLURM_CONF=$SLURM_CONF"; then
    say "killing leftover slurmstepd ${d#/proc/}"
    kill -KILL "${d#/proc/}" 2>/dev/null
  fi
done

# 4. The /etc/slurm/slurm.conf link start.sh made (only if it still points at our file).
if [ -L /etc/slurm/slurm.conf ] && [ "$(readlink /etc/slurm/slurm.conf)" = "$SLURM_CONF" ]; then
  rm -f /etc/slurm/slurm.conf
fi

if [ "${SLURM_PURGE:-0}" = 1 ] && [ -d "$DIR" ]; then
  rm -rf "$DIR"
  say "deleted $DIR"
fi
exit 0
