#!/usr/bin/env bash
# A real one-node SLURM cluster on this machine (Debian's slurm-wlm 22.05 + munge), for testing the
# workflow's SLURM path (tests/test_slurm_cluster.py). No systemd, no cgroups, no accounting
# (no slurmdbd: the executor plugin then needs `--slurm-status-command squeue` and no account).
#
#   scripts/slurm_local_cluster.sh install   # apt-get install slurm-wlm munge (root; best effort)
#   scripts/slurm_local_cluster.sh start     # write slurm.conf, start munged/slurmctld/slurmd
#   scripts/slurm_local_cluster.sh env       # the line to eval in a shell that uses the cluster
#   scripts/slurm_local_cluster.sh stop      # stop the daemons this script started (by PID)
#
# Everything lives in $SOLARGEN_SLURM_DIR (default /tmp/solargen-slurm): slurm.conf, spool, logs,
# PID files. /etc/slurm/slurm.conf becomes a link to that slurm.conf (removed by `stop`): the
# executor plugin's job step drops SLURM_CONF with the other SLURM_* variables before its srun,
# so the nested srun only finds the default path. The script refuses to replace a slurm.conf it
# did not write, so one such cluster runs at a time. One partition, `cpu`, with every core of the
# machine. Needs root (slurmd runs jobs as their users). Ports: $SOLARGEN_SLURM_PORT (6817) and
# the next one.
set -euo pipefail

DIR=${SOLARGEN_SLURM_DIR:-/tmp/solargen-slurm}
PORT=${SOLARGEN_SLURM_PORT:-6817}
CONF=$DIR/slurm.conf
HOST=$(hostname -s)

die() { echo "slurm_local_cluster: $*" >&2; exit 1; }

install() {
  if command -v slurmctld >/dev/null && command -v slurmd >/dev/null && command -v munged >/dev/null; then
    return 0
  fi
  [ "$(id -u)" = 0 ] || die "installing slurm-wlm and munge needs root"
  command -v apt-get >/dev/null || die "no apt-get: install slurm-wlm and munge by hand"
  export DEBIAN_FRONTEND=noninteractive
  apt-get install -y --no-install-recommends slurm-wlm munge >/dev/null \
    || { apt-get update >/dev/null && apt-get install -y --no-install-recommends slurm-wlm munge >/dev/null; }
}

running() {  # running PIDFILE: the daemon whose PID is in the file is alive
  [ -s "$1" ] && kill -0 "$(cat "$1")" 2>/dev/null
}

start() {
  [ "$(id -u)" = 0 ] || die "starting slurmd needs root"
  for b in munged slurmctld slurmd sbatch; do command -v $b >/dev/null || die "$b not found (run: $0 install)"; done
  mkdir -p "$DIR/ctld" "$DIR/d" "$DIR/munge" /etc/slurm
  if [ -e /etc/slurm/slurm.conf ] && [ "$(readlink /etc/slurm/slurm.conf)" != "$CONF" ]; then
    grep -q "^# solargen local cluster" /etc/slurm/slurm.conf 2>/dev/null \
      || die "/etc/slurm/slurm.conf exists and is not this script's: not replacing it"
    running "$(dirname "$(readlink -f /etc/slurm/slurm.conf)")/slurmctld.pid" \
      && die "another solargen local cluster is running ($(readlink -f /etc/slurm/slurm.conf))"
  fi

  # munge: reuse a running munged (another cluster's or the system's), else start our own.
  if ! munge -n </dev/null 2>/dev/null | unmunge >/dev/null 2>&1; then
    mkdir -p /run/munge /var/log/munge /var/lib/munge /etc/munge
    [ -s /etc/munge/munge.key ] || { dd if=/dev/urandom bs=1 count=1024 of=/etc/munge/munge.key 2>/dev/null; }
    chown -R munge:munge /run/munge /var/log/munge /var/lib/munge /etc/munge 2>/dev/null || true
    chmod 0400 /etc/munge/munge.key
    chown munge "$DIR/munge" 2>/dev/null || true
    runuser -u munge -- /usr/sbin/munged --pid-file="$DIR/munge/munged.pid" 2>/dev/null \
      || /usr/sbin/munged --force --pid-file="$DIR/munge/munged.pid"
    sleep 0.5
    munge -n </dev/null | unmunge >/dev/null || die "munged does not answer"
  fi

  # The node as slurmd sees it; keep 1 GiB of memory for the system.
  read -r CPUS MEM < <(slurmd -C | awk '/NodeName/{for(i=1;i<=NF;i++){split($i,a,"=");
    if(a[1]=="CPUs")c=a[2]; if(a[1]=="RealMemory")m=a[2]}} END{print c, m}')
  MEM=$(( MEM > 2048 ? MEM - 1024 : MEM ))
  cat >"$CONF" <<EOF
# solargen local cluster (scripts/slurm_local_cluster.sh)
ClusterName=solargen
SlurmctldHost=$HOST
SlurmctldPort=$PORT
SlurmdPort=$((PORT + 1))
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
# No cgroups or systemd here: track processes by parent PID, bind nothing.
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
DefMemPerCPU=1000
SchedulerType=sched/backfill
# No slurmdbd: sacct cannot answer; squeue must see finished jobs long enough (plugin: >= 120 s).
AccountingStorageType=accounting_storage/none
JobAcctGatherType=jobacct_gather/none
JobCompType=jobcomp/none
MinJobAge=600
MpiDefault=none
ReturnToService=2
StateSaveLocation=$DIR/ctld
SlurmdSpoolDir=$DIR/d
SlurmctldPidFile=$DIR/slurmctld.pid
SlurmdPidFile=$DIR/slurmd.pid
SlurmctldLogFile=$DIR/slurmctld.log
SlurmdLogFile=$DIR/slurmd.log
NodeName=$HOST CPUs=$CPUS RealMemory=$MEM State=UNKNOWN
PartitionName=cpu Nodes=ALL Default=YES MaxTime=INFINITE State=UP
EOF
  ln -sfn "$CONF" /etc/slurm/slurm.conf
  export SLURM_CONF=$CONF
  running "$DIR/slurmctld.pid" || /usr/sbin/slurmctld -f "$CONF"
  running "$DIR/slurmd.pid" || /usr/sbin/slurmd -f "$CONF"
  for _ in $(seq 60); do
    if sinfo -h -o %T 2>/dev/null | grep -qE '^(idle|mixed|allocated)'; then
      echo "slurm_local_cluster: up ($CPUS CPUs, partition cpu); export SLURM_CONF=$CONF"
      return 0
    fi
    sleep 0.5
  done
  die "the node did not come up; see $DIR/slurmctld.log and $DIR/slurmd.log"
}

stop() {
  for f in "$DIR/slurmd.pid" "$DIR/slurmctld.pid" "$DIR/munge/munged.pid"; do
    if running "$f"; then
      kill "$(cat "$f")"
      for _ in $(seq 50); do running "$f" || break; sleep 0.1; done
    fi
    rm -f "$f"
  done
  [ "$(readlink /etc/slurm/slurm.conf 2>/dev/null)" = "$CONF" ] && rm -f /etc/slurm/slurm.conf
  return 0
}

case "${1:-}" in
  install) install ;;
  start) start ;;
  stop) stop ;;
  env) echo "export SLURM_CONF=$CONF" ;;
  *) die "usage: $0 install|start|stop|env" ;;
esac
