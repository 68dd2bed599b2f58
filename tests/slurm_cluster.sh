#!/usr/bin/env bash
# A throwaway single-node Slurm for testing the cluster path (tests/test_slurm.py).
#
#   tests/slurm_cluster.sh install  install Debian's slurmctld slurmd slurm-client munge if missing (root)
#   tests/slurm_cluster.sh start    install if needed, configure, start, wait for the node
#   tests/slurm_cluster.sh stop     kill what `start` started, by its pid files
#   tests/slurm_cluster.sh status   exit 0 when the node answers idle/mixed/allocated
#   tests/slurm_cluster.sh env      print `export SLURM_CONF=...` for sbatch/squeue/snakemake
#
# Idempotent: `start` twice leaves one set of daemons, `stop` without `start` is a no-op.
# State, logs and slurm.conf live under $DKP_SLURM_DIR (default /tmp/dkp-slurm).
# /etc/slurm/slurm.conf becomes a symlink to that slurm.conf (removed again by `stop`): the
# executor plugin's job step drops SLURM_CONF from the environment of the srun it calls, so
# clients inside jobs only find the default path. A real slurm.conf there is never touched:
# then the script refuses. Exit 3 = cannot run here (the reason on stderr).
set -euo pipefail

DIR=${DKP_SLURM_DIR:-/tmp/dkp-slurm}
CONF=$DIR/slurm.conf
ETC_CONF=/etc/slurm/slurm.conf
PARTITION=dkp
NODE_WAIT_S=${DKP_SLURM_WAIT_S:-60}

say() { echo "slurm_cluster: $*" >&2; }
unavailable() { say "unavailable: $*"; exit 3; }

alive() {  # alive PIDFILE: the process named in PIDFILE is running
    [[ -s $1 ]] && kill -0 "$(cat "$1")" 2>/dev/null
}

install_packages() {
    local bins=(slurmctld slurmd sinfo sbatch squeue munged)
    local missing=0 b
    for b in "${bins[@]}"; do command -v "$b" >/dev/null || [[ -x /usr/sbin/$b ]] || missing=1; done
    [[ $missing == 0 ]] && return 0
    [[ $(id -u) == 0 ]] || unavailable "Slurm is not installed and installing it needs root"
    command -v apt-get >/dev/null || unavailable "Slurm is not installed and there is no apt-get"
    say "installing slurmctld slurmd slurm-client munge (apt-get)"
    local apt=(env DEBIAN_FRONTEND=noninteractive timeout 600 apt-get -qq -o Dpkg::Use-Pty=0)
    if ! "${apt[@]}" install -y --no-install-recommends slurmctld slurmd slurm-client munge \
            >"$DIR/apt.log" 2>&1; then
        "${apt[@]}" update >>"$DIR/apt.log" 2>&1 || unavailable "apt-get update failed (no network?); see $DIR/apt.log"
        "${apt[@]}" install -y --no-install-recommends slurmctld slurmd slurm-client munge \
            >>"$DIR/apt.log" 2>&1 || unavailable "apt-get install failed; see $DIR/apt.log"
    fi
}

write_conf() {
    local host node
    host=$(hostname -s)
    # First line of `slurmd -C` is this machine's NodeName line (CPUs, sockets, RealMemory).
    node=$(slurmd -C | head -n 1)
    [[ $node == NodeName=* ]] || unavailable "slurmd -C printed no NodeName line"
    mkdir -p "$DIR/state" "$DIR/spool"
    cat >"$CONF.tmp" <<EOF
# Written by tests/slurm_cluster.sh: one node, no accounting daemon, no cgroups.
ClusterName=dkp
SlurmctldHost=$host(127.0.0.1)
AuthType=auth/munge
CredType=cred/munge
SlurmUser=root
SlurmdUser=root
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
# squeue must still see finished jobs when snakemake polls (>= 3x its first-check delay)
# and when test_slurm.py counts them after a run of up to 840 s (+20 s to kill it): the
# first jobs of a slow run finish that long before the count.
MinJobAge=1200
ReturnToService=2
StateSaveLocation=$DIR/state
SlurmdSpoolDir=$DIR/spool
SlurmctldPidFile=$DIR/slurmctld.pid
SlurmdPidFile=$DIR/slurmd.pid
SlurmctldLogFile=$DIR/slurmctld.log
SlurmdLogFile=$DIR/slurmd.log
$node NodeAddr=127.0.0.1 State=UNKNOWN
PartitionName=$PARTITION Nodes=ALL Default=YES MaxTime=INFINITE State=UP
EOF
    mv "$CONF.tmp" "$CONF"
}

link_conf() {
    if [[ -L $ETC_CONF ]]; then
        local target
        target=$(readlink "$ETC_CONF")
        if [[ $target != "$CONF" && -e $target ]] && SLURM_CONF=$target sinfo >/dev/null 2>&1; then
            unavailable "$ETC_CONF points to another running test cluster ($target)"
        fi
    elif [[ -e $ETC_CONF ]]; then
        unavailable "a real Slurm configuration exists at $ETC_CONF; not replacing it"
    fi
    mkdir -p "$(dirname "$ETC_CONF")"
    ln -sfn "$CONF" "$ETC_CONF"
}

start_munge() {
    # A munged we did not start (e.g. a real cluster's) is used as it is, and never stopped by us.
    if munge -n </dev/null >/dev/null 2>&1; then return 0; fi
    [[ $(id -u) == 0 ]] || unavailable "munged is not running and starting it needs root"
    install -d -o munge -g munge -m 0755 /run/munge
    [[ -s /etc/munge/munge.key ]] || unavailable "no /etc/munge/munge.key"
    local pidfile=/run/munge/munged.pid
    runuser -u munge -- /usr/sbin/munged --force || unavailable "munged did not start"
    for _ in $(seq 50); do [[ -s $pidfile ]] && break; sleep 0.1; done
    cp "$pidfile" "$DIR/munged.started.pid"
}

node_state() {
    SLURM_CONF=$CONF sinfo -h -N -o '%T' 2>/dev/null | head -n 1
}

start() {
    mkdir -p "$DIR"
    install_packages
    export SLURM_CONF=$CONF
    if alive "$DIR/slurmctld.pid" && alive "$DIR/slurmd.pid"; then
        say "already running ($CONF)"
    else
        write_conf
        link_conf
        start_munge
        # -c: clear saved state, so a rerun never inherits jobs or a DOWN node from an older run.
        alive "$DIR/slurmctld.pid" || /usr/sbin/slurmctld -c -f "$CONF" || unavailable "slurmctld did not start; see $DIR/slurmctld.log"
        alive "$DIR/slurmd.pid" || /usr/sbin/slurmd -f "$CONF" || unavailable "slurmd did not start; see $DIR/slurmd.log"
    fi
    local state=""
    for _ in $(seq $((NODE_WAIT_S * 2))); do
        state=$(node_state)
        case $state in idle*|mixed*|allocated*) say "node $state"; return 0 ;; esac
        sleep 0.5
    done
    unavailable "node not idle after ${NODE_WAIT_S}s (state '${state}'); see $DIR/slurmctld.log and $DIR/slurmd.log"
}

stop() {
    local name pidfile pid
    for name in slurmd slurmctld munged.started; do
        pidfile=$DIR/$name.pid
        alive "$pidfile" || { rm -f "$pidfile"; continue; }
        pid=$(cat "$pidfile")
        kill "$pid"
        for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
        kill -0 "$pid" 2>/dev/null && kill -9 "$pid"
        rm -f "$pidfile"
        say "stopped ${name%.started} ($pid)"
    done
    if [[ -L $ETC_CONF && $(readlink "$ETC_CONF") == "$CONF" ]]; then rm -f "$ETC_CONF"; fi
}

status() {
    case $(node_state) in idle*|mixed*|allocated*) return 0 ;; *) return 1 ;; esac
}

case ${1:-} in
    install) mkdir -p "$DIR"; install_packages ;;
    start) start ;;
    stop) stop ;;
    status) status ;;
    env) echo "export SLURM_CONF=$CONF" ;;
    *) echo "usage: $0 install|start|stop|status|env" >&2; exit 2 ;;
esac
