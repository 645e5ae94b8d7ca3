#!/usr/bin/env bash
# A throw-away single-node SLURM cluster on localhost, for testing `modicl sweep slurm`.
# Debian/Ubuntu, as root, no systemd, cgroups or slurmdbd. Everything (config, state, logs,
# munge key and socket) lives in one directory; `down` stops exactly the daemons `up` started.
#
#   slurm-local.sh install         apt-get slurm-wlm and munge (starts no system service)
#   slurm-local.sh up DIR          munged + slurmctld + slurmd under DIR; waits for the node
#   source DIR/env.sh              exports SLURM_CONF: clients then talk to this cluster only
#   slurm-local.sh down DIR        cancel all jobs, stop our daemons (by recorded PID), rm DIR
#   slurm-local.sh run -- CMD ...  up in a fresh temp dir, run CMD with SLURM_CONF set, down;
#                                  exits with CMD's status
set -euo pipefail

say() { echo "[slurm-local] $*" >&2; }
fail() { say "error: $*"; exit 1; }

[ "$(id -u)" = 0 ] || fail "run as root (slurmd must be root to start jobs)"

install() {
  export DEBIAN_FRONTEND=noninteractive
  if command -v slurmctld >/dev/null && command -v munged >/dev/null; then
    say "already installed"; return
  fi
  # Keep package scripts from starting the system's own munge/slurm services; the policy file
  # is removed again whatever happens.
  if [ ! -e /usr/sbin/policy-rc.d ]; then
    printf '#!/bin/sh\nexit 101\n' >/usr/sbin/policy-rc.d; chmod 755 /usr/sbin/policy-rc.d
    trap 'rm -f /usr/sbin/policy-rc.d' EXIT
  fi
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends slurm-wlm munge >/dev/null
  say "installed $(dpkg-query -W -f '${Package} ${Version}; ' slurmctld slurmd munge)"
}

# A port is free when nothing has a socket on it (ss, from iproute2), or, without ss, when
# nothing accepts a connection on it.
is_free() {
  if command -v ss >/dev/null; then
    ! ss -Htan "( sport = :$1 )" | grep -q .
  else
    ! (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null
  fi
}

alive() { [ -e "/proc/$1" ] && ! grep -q '^State:.*Z' "/proc/$1/status" 2>/dev/null; }

# Starts a daemon in the background and records "name pid".
spawn() {
  local dir=$1 name=$2; shift 2
  "$@" >>"$dir/log/$name.out" 2>&1 &
  echo "$name $!" >>"$dir/pids"
}

up() {
  local dir=${1:?usage: up DIR}
  mkdir -p "$dir"; dir=$(cd "$dir" && pwd)
  [ ! -e "$dir/pids" ] || fail "$dir already has a cluster"
  mkdir -p "$dir"/{munge,state,spool,log}
  : >"$dir/.slurm-local"   # marks the directory as ours: down removes nothing else
  chmod 755 "$dir" "$dir/munge"   # munged refuses writable dirs; 755 lets others read the conf
  local port=${SLURM_LOCAL_PORT:-26817}
  while ! { is_free "$port" && is_free $((port + 1)); }; do
    port=$((port + 2)); [ "$port" -lt 27100 ] || fail "no free port pair"
  done
  dd if=/dev/urandom of="$dir/munge/key" bs=1024 count=1 status=none
  chmod 400 "$dir/munge/key"
  local sock=$dir/munge/socket
  trap 'down "'"$dir"'"' ERR   # a failure below stops what was started
  spawn "$dir" munged munged --foreground --force --socket="$sock" --key-file="$dir/munge/key" \
    --pid-file="$dir/munge/pid" --log-file="$dir/log/munged.log" --seed-file="$dir/munge/seed"
  for _ in $(seq 100); do
    munge --socket="$sock" -n 2>/dev/null | unmunge --socket="$sock" >/dev/null 2>&1 && break
    sleep 0.1
  done
  cat >"$dir/slurm.conf" <<CONF
ClusterName=local$$
SlurmctldHost=localhost
SlurmctldPort=$port
SlurmdPort=$((port + 1))
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
AuthInfo=socket=$sock
StateSaveLocation=$dir/state
SlurmdSpoolDir=$dir/spool/%n
SlurmctldPidFile=$dir/slurmctld.pid
SlurmdPidFile=$dir/slurmd.pid
SlurmctldLogFile=$dir/log/slurmctld.log
SlurmdLogFile=$dir/log/slurmd.log
# Process groups, not cgroups or the parent-PID tree: nothing outside DIR is touched.
ProctrackType=proctrack/pgid
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/filetxt
JobCompLoc=$dir/log/jobcomp.txt
MinJobAge=3600
SchedulerType=sched/backfill
SchedulerParameters=batch_sched_delay=0
SelectType=select/cons_tres
SelectTypeParameters=CR_CPU
SlurmdParameters=config_overrides
ReturnToService=2
MpiDefault=none
MailProg=/bin/true
KillWait=5
InactiveLimit=0
NodeName=localhost NodeAddr=127.0.0.1 CPUs=${SLURM_LOCAL_CPUS:-$(nproc)} RealMemory=1024 State=UNKNOWN
PartitionName=local Nodes=localhost Default=YES MaxTime=INFINITE State=UP
CONF
  printf 'export SLURM_CONF=%q\n' "$dir/slurm.conf" >"$dir/env.sh"
  export SLURM_CONF=$dir/slurm.conf
  spawn "$dir" slurmctld slurmctld -D -f "$dir/slurm.conf"
  spawn "$dir" slurmd slurmd -D -f "$dir/slurm.conf" -N localhost
  local deadline=$((SECONDS + 60)) name pid
  until [ "$(timeout 5 sinfo -h -n localhost -o %T 2>/dev/null || true)" = idle ]; do
    while read -r name pid; do
      alive "$pid" || { tail -n 20 "$dir/log/$name.out" >&2; down "$dir"; fail "$name exited"; }
    done <"$dir/pids"
    [ $SECONDS -lt $deadline ] || { down "$dir"; fail "node not idle after 60 s"; }
    sleep 0.2
  done
  trap - ERR
  say "cluster up in $dir (ports $port/$((port + 1)))"
}

down() {
  local dir=${1:?usage: down DIR}
  [ -d "$dir" ] || return 0
  dir=$(cd "$dir" && pwd)
  [ -e "$dir/.slurm-local" ] || fail "$dir was not made by 'up': not touching it"
  if [ -e "$dir/slurm.conf" ]; then
    export SLURM_CONF=$dir/slurm.conf
    timeout 5 squeue -h -o %A 2>/dev/null | sort -u | xargs -r timeout 10 scancel --full --quiet 2>/dev/null || true
    local deadline=$((SECONDS + 30))
    while timeout 5 squeue -h 2>/dev/null | grep -q . && [ $SECONDS -lt $deadline ]; do sleep 0.2; done
  fi
  if [ -e "$dir/pids" ]; then
    local name pid
    # Reverse start order: slurmd, slurmctld, munged. Only PIDs whose command line names DIR.
    tac "$dir/pids" | while read -r name pid; do
      if alive "$pid" && tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | grep -qF "$dir"; then
        kill "$pid" 2>/dev/null || true
        for _ in $(seq 50); do alive "$pid" || break; sleep 0.1; done
        ! alive "$pid" || kill -9 "$pid" 2>/dev/null || true
      fi
    done
  fi
  if [ -n "${SLURM_LOCAL_KEEP_LOGS:-}" ] && [ -d "$dir/log" ]; then
    mkdir -p "$SLURM_LOCAL_KEEP_LOGS"; cp -r "$dir/log/." "$SLURM_LOCAL_KEEP_LOGS/" || true
  fi
  rm -rf "$dir"
  say "cluster in $dir stopped"
}

run() {
  [ "${1:-}" = "--" ] && shift
  [ $# -gt 0 ] || fail "usage: run -- CMD ARGS..."
  local rc=0
  RUN_DIR=$(mktemp -d /tmp/slurm-local.XXXXXX)
  # Whatever ends this script (CMD failing, Ctrl-C, SIGTERM), the cluster goes down.
  trap 'down "$RUN_DIR"' EXIT
  trap 'exit 130' INT
  trap 'exit 143' TERM
  up "$RUN_DIR"
  # shellcheck disable=SC1091
  source "$RUN_DIR/env.sh"
  "$@" || rc=$?
  return $rc
}

case "${1:-}" in
  install) install ;;
  up) up "${2:-}" ;;
  down) down "${2:-}" ;;
  run) shift; run "$@" ;;
  *) sed -n '2,12p' "$0"; exit 2 ;;
esac
