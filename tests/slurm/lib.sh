# Helpers shared by start.sh and stop.sh (sourced, never run on its own).
# Everything the local cluster writes lives under $SLURM_LOCAL_DIR:
#   slurm.conf slurmdbd.conf db.pass   generated configuration (from the templates beside this file)
#   pids/NAME.pid                      "PID STARTTIME" of each daemon start.sh started itself
#   log/NAME.log log/NAME.out          each daemon's log file and its captured stdout/stderr
#   state/ mysql/ run/                 slurmctld/slurmd state, MariaDB data, sockets and pid files
DIR="${SLURM_LOCAL_DIR:-/tmp/aftbench-slurm}"
export SLURM_CONF="$DIR/slurm.conf"

say() { printf '[aftbench-slurm %s] %s\n' "$(date +%T)" "$*" >&2; }

# proc_start PID: print the process's start time (field 22 of /proc/PID/stat, clock ticks since
# boot); fail if there is no such process or it is a zombie. PID 1 on these machines reaps
# orphans only every couple of seconds, so a dead daemon can linger as a zombie: `kill -0` is
# not enough to tell whether it is still running.
proc_start() {
  local stat
  stat=$(cat "/proc/$1/stat" 2>/dev/null) || return 1
  set -- ${stat##*) }          # the fields after "(comm) ": $1 is the state, $20 the start time
  [ "$1" != Z ] && [ "$1" != X ] || return 1
  echo "${20}"
}

# record NAME PID: remember that start.sh started PID as NAME. The start time makes the record
# exact: a reused pid is never mistaken for our daemon.
record() {
  local st
  st=$(proc_start "$2") || return 1
  mkdir -p "$DIR/pids" && echo "$2 $st" > "$DIR/pids/$1.pid"
}

# ours NAME: print the pid of the daemon start.sh recorded as NAME, if that process still runs.
ours() {
  local pid st now
  read -r pid st 2>/dev/null < "$DIR/pids/$1.pid" || return 1
  now=$(proc_start "$pid") || return 1
  [ "$now" = "$st" ] && echo "$pid"
}

# halt NAME...: SIGTERM each recorded daemon that still runs, wait for all of them to exit
# (SIGKILL after 30 s), forget the records. Quiet and successful when there is nothing to stop.
halt() {
  local name pid p i
  local -a pids=()
  for name in "$@"; do
    if pid=$(ours "$name"); then
      say "stopping $name (pid $pid)"
      kill -TERM "$pid" 2>/dev/null
      pids+=("$pid:$name")
    fi
    rm -f "$DIR/pids/$name.pid"
  done
  for p in "${pids[@]}"; do
    pid=${p%%:*}
    for i in $(seq 150); do
      proc_start "$pid" >/dev/null || continue 2
      sleep 0.2
    done
    say "${p#*:} (pid $pid) still running 30 s after SIGTERM: SIGKILL"
    kill -KILL "$pid" 2>/dev/null
  done
  return 0
}
