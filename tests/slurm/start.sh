#!/usr/bin/env bash
# Bring up a real one-node SLURM cluster on this machine, with accounting, for tests/test_slurm.py:
#   munged -> MariaDB -> slurmdbd -> slurmctld -> slurmd, then `srun hostname` as a smoke check.
# Needs root (Debian/Ubuntu with apt; no systemd needed). Idempotent: installs only missing
# packages, starts only daemons that are not running, restarts the SLURM daemons whose generated
# config changed. Stop it all with stop.sh (beside this file).
#
# Settings (environment):
#   SLURM_LOCAL_DIR       everything the cluster writes      (default /tmp/aftbench-slurm)
#   SLURM_CLUSTER_NAME    accounting cluster name            (default aftbench)
#   SLURM_CPUS            CPUs of the node                   (default: nproc)
#   SLURM_MEM_MB          RealMemory of the node             (default: `free -m` total minus 10%)
#   SLURM_DEF_MEM_PER_CPU MB for a job that gives no --mem   (default: SLURM_MEM_MB / SLURM_CPUS)
#   SLURM_CTLD_PORT SLURM_SLURMD_PORT SLURM_DBD_PORT SLURM_DB_PORT   (6817 6818 6819 3307)
#   SLURM_LINK_ETC        1: point /etc/slurm/slurm.conf at the generated file, so SLURM commands
#                         work without SLURM_CONF (default 1; a real file there is left alone)
# Afterwards, without the /etc link: export SLURM_CONF=$SLURM_LOCAL_DIR/slurm.conf
set -euo pipefail
trap 'say "ERROR: start.sh stopped at line $LINENO: $BASH_COMMAND"' ERR
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
. "$HERE/lib.sh"
T0=$SECONDS

CLUSTER="${SLURM_CLUSTER_NAME:-aftbench}"
CTLD_PORT="${SLURM_CTLD_PORT:-6817}"
SLURMD_PORT="${SLURM_SLURMD_PORT:-6818}"
DBD_PORT="${SLURM_DBD_PORT:-6819}"
DB_PORT="${SLURM_DB_PORT:-3307}"
LINK_ETC="${SLURM_LINK_ETC:-1}"
NODE="$(hostname -s)"
DB_SOCK="$DIR/run/mariadb.sock"

# die MESSAGE [DAEMON...]: report what failed and the end of each named daemon's log, then exit 1.
# A daemon's own log is log/NAME.log; log/NAME.out has what it printed (all of munged's log,
# and anything a daemon said before it could open its log file).
die() {
  local msg=$1 name f
  shift
  say "ERROR: $msg"
  for name in "$@"; do
    for f in "$DIR/log/$name.log" "$DIR/log/$name.out"; do
      if [ -s "$f" ]; then
        printf -- '--- %s: last lines of %s\n' "$name" "$f" >&2
        tail -n 15 "$f" >&2
        break
      fi
    done
  done
  exit 1
}

# launch NAME CMD...: run a daemon in the foreground mode of its own (so the pid we get is the
# daemon's), in a session of its own and detached from our stdin/stdout (a CI step that pipes
# our output must not wait for the daemons), and record its pid for stop.sh.
launch() {
  local name=$1 pid
  shift
  say "starting $name"
  setsid "$@" </dev/null >>"$DIR/log/$name.out" 2>&1 &
  pid=$!
  record "$name" "$pid" || die "$name exited at once" "$name"
}

# await NAME SECONDS WHAT CMD...: poll CMD until it succeeds; fail at once, naming the daemon and
# its logs, if the daemon we started has died, or after SECONDS. Each CMD has its own short
# timeout: a client talking to something else on the port could otherwise hang.
await() {
  local name=$1 end=$((SECONDS + $2)) what=$3
  shift 3
  until "$@" >/dev/null 2>&1; do
    if [ -e "$DIR/pids/$name.pid" ] && ! ours "$name" >/dev/null; then
      die "$name exited during start-up (waiting for: $what)" "$name"
    fi
    ((SECONDS < end)) || die "$name: no $what after $2 s" "$name"
    sleep 0.2
  done
}

# render TEMPLATE OUT: fill in the @...@ placeholders; replace OUT only if the text changed,
# and then set CHANGED=1 (else CHANGED=0).
render() {
  local tmp="$2.new"
  sed -e "s|@DIR@|$DIR|g" -e "s|@CLUSTER@|$CLUSTER|g" -e "s|@NODE@|$NODE|g" \
      -e "s|@CPUS@|$CPUS|g" -e "s|@MEM_MB@|$MEM_MB|g" -e "s|@DEF_MEM_PER_CPU@|$DEF_MEM|g" \
      -e "s|@CTLD_PORT@|$CTLD_PORT|g" -e "s|@SLURMD_PORT@|$SLURMD_PORT|g" \
      -e "s|@DBD_PORT@|$DBD_PORT|g" -e "s|@DB_PORT@|$DB_PORT|g" -e "s|@DB_PASS@|$DB_PASS|g" \
      "$1" > "$tmp"
  local left
  left="$(grep -v '^#' "$tmp" | grep -o '@[A-Z_]*@' | head -n1 || true)"
  [ -z "$left" ] || die "$1 has a placeholder start.sh does not fill in: $left"
  if cmp -s "$tmp" "$2"; then rm -f "$tmp"; CHANGED=0; else mv -f "$tmp" "$2"; CHANGED=1; fi
}

[ "$(id -u)" = 0 ] || die "run as root: it installs packages and starts system daemons"
umask 022
mkdir -p "$DIR"/{pids,log,run,state/ctld,state/slurmd}

# ------------------------------------------------------------------ 1. Debian packages
missing=()
for pkg in slurm-wlm slurmdbd munge mariadb-server; do
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -qx 'install ok installed' || missing+=("$pkg")
done
if ((${#missing[@]})); then
  say "installing ${missing[*]} (apt-get; log: $DIR/log/apt.log)"
  t=$SECONDS
  # The packages' maintainer scripts would try to start system-wide munge/MariaDB/slurm
  # services; a policy-rc.d answering 101 ("forbidden") stops them (Docker images ship one).
  if [ ! -e /usr/sbin/policy-rc.d ]; then
    printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d
    chmod 755 /usr/sbin/policy-rc.d
    trap 'rm -f /usr/sbin/policy-rc.d' EXIT
  fi
  apt=(apt-get -o DPkg::Lock::Timeout=300)   # wait for another apt run instead of failing
  "${apt[@]}" update -qq >"$DIR/log/apt.log" 2>&1 || die "apt-get update failed" apt
  DEBIAN_FRONTEND=noninteractive "${apt[@]}" install -y -qq --no-install-recommends "${missing[@]}" \
    >>"$DIR/log/apt.log" 2>&1 || die "apt-get install ${missing[*]} failed" apt
  if [ "$(trap -p EXIT)" ]; then rm -f /usr/sbin/policy-rc.d; trap - EXIT; fi
  say "packages installed in $((SECONDS - t)) s"
fi

# ------------------------------------------------------------------ 2. configuration
CPUS="${SLURM_CPUS:-$(nproc)}"
TOTAL_MB="$(free -m | awk '/^Mem:/ {print $2}')"
MEM_MB="${SLURM_MEM_MB:-$((TOTAL_MB - TOTAL_MB / 10))}"
DEF_MEM="${SLURM_DEF_MEM_PER_CPU:-$((MEM_MB / CPUS))}"
# slurmdbd's MariaDB password: random, made once, kept with the data it protects.
if [ ! -s "$DIR/db.pass" ]; then
  (umask 077; head -c 18 /dev/urandom | base64 | tr -d '+/=' > "$DIR/db.pass")
fi
DB_PASS="$(cat "$DIR/db.pass")"
render "$HERE/slurm.conf.template" "$SLURM_CONF"
SLURM_CHANGED=$CHANGED
umask 077   # slurmdbd.conf holds the password: slurmdbd refuses it unless it is mode 600
render "$HERE/slurmdbd.conf.template" "$DIR/slurmdbd.conf"
DBD_CHANGED=$CHANGED
umask 022
chmod 600 "$DIR/slurmdbd.conf"
if [ "$SLURM_CHANGED" = 1 ]; then
  say "wrote $SLURM_CONF: node $NODE, $CPUS CPUs, RealMemory=$MEM_MB MB, DefMemPerCPU=$DEF_MEM MB"
fi

if [ "$LINK_ETC" = 1 ]; then
  if [ -e /etc/slurm/slurm.conf ] && [ ! -L /etc/slurm/slurm.conf ]; then
    say "note: /etc/slurm/slurm.conf is a real file, left alone: export SLURM_CONF=$SLURM_CONF"
  elif [ "$(readlink /etc/slurm/slurm.conf 2>/dev/null)" != "$SLURM_CONF" ]; then
    mkdir -p /etc/slurm
    ln -sfn "$SLURM_CONF" /etc/slurm/slurm.conf
    say "linked /etc/slurm/slurm.conf -> $SLURM_CONF"
  fi
fi

# ------------------------------------------------------------------ 3. munge (authentication)
# Every SLURM daemon and command authenticates through munged's socket (/run/munge). A munged
# that is already running (a system one) is used as it is, and stop.sh leaves it running.
munge_ok() { timeout 5 munge -n </dev/null | timeout 5 unmunge >/dev/null; }
if [ ! -s /etc/munge/munge.key ]; then   # the munge package normally creates one
  say "creating /etc/munge/munge.key"
  mungekey --create --keyfile=/etc/munge/munge.key || die "mungekey failed"
  chown munge:munge /etc/munge/munge.key
  chmod 400 /etc/munge/munge.key
fi
if ! ours munged >/dev/null && ! munge_ok 2>/dev/null; then
  install -d -o munge -g munge -m 0755 /run/munge   # /run is empty after a reboot without systemd
  # setpriv execs munged as the munge user (runuser/su would fork and hand us their own pid).
  # --force: start even if a dead munged left its socket behind.
  launch munged setpriv --reuid=munge --regid=munge --init-groups /usr/sbin/munged --foreground --force
  await munged 15 "working munge socket" munge_ok
fi

# ------------------------------------------------------------------ 4. MariaDB + slurmdbd (accounting)
db() { mariadb --no-defaults --socket="$DB_SOCK" -u root "$@"; }
if ! ours mariadbd >/dev/null; then
  if [ ! -d "$DIR/mysql/mysql" ]; then
    say "creating the accounting database in $DIR/mysql"
    mariadb-install-db --no-defaults --user=root --datadir="$DIR/mysql" --skip-test-db \
      --auth-root-authentication-method=socket >"$DIR/log/mariadb-install.out" 2>&1 \
      || die "mariadb-install-db failed" mariadb-install
  fi
  # --no-defaults: none of the machine's /etc/mysql settings; our own datadir, socket and port.
  # The two innodb values are what slurmdbd asks for (otherwise it logs "error: Database settings
  # not recommended values"); a database this small touches little of the buffer pool.
  launch mariadbd /usr/sbin/mariadbd --no-defaults --user=root --datadir="$DIR/mysql" \
    --socket="$DB_SOCK" --pid-file="$DIR/run/mariadbd.pid" --bind-address=127.0.0.1 --port="$DB_PORT" \
    --skip-name-resolve --log-error="$DIR/log/mariadbd.log" \
    --innodb-buffer-pool-size=512M --innodb-lock-wait-timeout=900
  await mariadbd 60 "answer on $DB_SOCK" timeout 5 mariadb-admin --no-defaults --socket="$DB_SOCK" ping
fi
db -e "CREATE USER IF NOT EXISTS 'slurm'@'127.0.0.1';
       ALTER USER 'slurm'@'127.0.0.1' IDENTIFIED BY '$DB_PASS';
       GRANT ALL ON slurm_acct_db.* TO 'slurm'@'127.0.0.1';" 2>"$DIR/log/mariadb-grant.out" \
  || die "could not create slurmdbd's MariaDB user" mariadb-grant mariadbd

[ "$DBD_CHANGED" = 0 ] || halt slurmdbd   # a running slurmdbd keeps its old config
if ! ours slurmdbd >/dev/null; then
  launch slurmdbd slurmdbd -D
fi
await slurmdbd 60 "answer to sacctmgr on port $DBD_PORT" timeout 5 sacctmgr -n show cluster
# Register the cluster before slurmctld starts: slurmctld only sends job records for a
# cluster that slurmdbd knows.
if ! sacctmgr -n -P show cluster format=cluster | grep -qx "$CLUSTER"; then
  say "registering cluster $CLUSTER in accounting"
  sacctmgr -i add cluster "$CLUSTER" >"$DIR/log/sacctmgr.out" 2>&1 \
    || die "sacctmgr add cluster failed" sacctmgr slurmdbd
fi

# ------------------------------------------------------------------ 5. slurmctld + slurmd
[ "$SLURM_CHANGED" = 0 ] || halt slurmd slurmctld   # they read slurm.conf only at start
ctld_up() { timeout 5 scontrol ping | grep -q 'is UP'; }
if ! ours slurmctld >/dev/null; then
  launch slurmctld slurmctld -D
fi
await slurmctld 30 "answer to scontrol ping on port $CTLD_PORT" ctld_up
if ! ours slurmd >/dev/null; then
  # -N: the node's name as slurm.conf has it, whatever the host name resolves to
  launch slurmd slurmd -D -N "$NODE"
fi
# slurmctld also keeps jobs across restarts: those of a run that was killed before its stop.sh
# (a session ended mid-suite) would come back pending, hold the node and delay every test.
# This cluster has no other users: cancel them.
left="$(squeue -h -o %A 2>/dev/null | tr '\n' ' ')"
if [ -n "${left// /}" ]; then
  say "cancelling jobs left from an earlier run: $left"
  scancel $left || true
fi
# Wait for the node to be usable. slurmctld keeps node states across restarts, so a node that
# a failed job drained in an earlier run would stay drained for good: resume it once (this
# cluster has no other users). If the cause is still there, slurmctld drains it again.
end=$((SECONDS + 30)) resumed=0
while :; do
  state="$(sinfo -h -N -n "$NODE" -o %t 2>/dev/null || true)"
  case $state in
    idle | mix | alloc) break ;;
    drain* | drng* | down | fail*)
      if [ "$resumed" = 0 ]; then
        say "node $NODE is $state ($(sinfo -h -N -n "$NODE" -o %E)): resuming it"
        scontrol update nodename="$NODE" state=resume || true
        resumed=1
      fi ;;
  esac
  ours slurmd >/dev/null || die "slurmd exited during start-up" slurmd
  ((SECONDS < end)) \
    || die "node $NODE not ready after 30 s: $(sinfo -h -N -n "$NODE" -o '%t, reason: %E' 2>&1)" \
      slurmd slurmctld
  sleep 0.2
done

# ------------------------------------------------------------------ 6. smoke check
# Compare the output, not only the exit status: srun exits 0 even when slurmstepd could not
# launch the task (seen with proctrack/cgroup here: "task 0 launch failed").
# --quiet: no "job N queued and waiting for resources" line in the output when the node is busy.
out="$(timeout 60 srun --quiet -N1 -n1 -t 1 hostname 2>&1)" && [ "$out" = "$(hostname)" ] \
  || die "srun hostname printed \"$out\", not \"$(hostname)\"" slurmd slurmctld
say "srun hostname -> $out"
say "cluster up in $((SECONDS - T0)) s: $(sinfo -h -o '%P %a %D %t %N') (SLURM_CONF=$SLURM_CONF)"
