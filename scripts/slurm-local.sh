#!/usr/bin/env bash
# A real single-node Slurm on this machine, for trying the cluster profile and for the tests.
#
#   sudo scripts/slurm-local.sh start    # munged + slurmctld + slurmd, idle node "local"
#   sudo scripts/slurm-local.sh status   # exit 0 when all three daemons run
#   sudo scripts/slurm-local.sh stop     # stops only the daemons this script started
#
# Needs root (slurmd runs jobs as their user) and Debian's packages (Slurm 22.05 on Debian 12):
#   apt-get install --no-install-recommends munge slurmctld slurmd slurm-client
# No systemd: the daemons are started by hand, every address is 127.0.0.1, state, pid files and
# logs live under $SLURM_LOCAL_DIR (default /tmp/sentscale-slurm). The config is written there
# and linked from /etc/slurm/slurm.conf: the Snakemake job-step plugin strips SLURM_* variables
# (SLURM_CONF included) before its inner `srun`, so only the default path works. A regular file
# at /etc/slurm/slurm.conf (a real cluster's config) is never touched.
#
# Environment: SLURM_LOCAL_DIR, SLURM_LOCAL_CTLD_PORT (6817), SLURM_LOCAL_SLURMD_PORT (6818).
# Run the study through it with the cluster profile plus the local overlay (README).
set -euo pipefail

DIR="${SLURM_LOCAL_DIR:-/tmp/sentscale-slurm}"
CTLD_PORT="${SLURM_LOCAL_CTLD_PORT:-6817}"
SLURMD_PORT="${SLURM_LOCAL_SLURMD_PORT:-6818}"
ETC_CONF=/etc/slurm/slurm.conf
CONF="$DIR/slurm.conf"
NODE=localnode
DAEMONS=(munged slurmctld slurmd)   # start order; stop runs in reverse

log() { echo "slurm-local: $*" >&2; }
die() { log "error: $*"; exit 1; }

pidfile() { echo "$DIR/run/$1.pid"; }

alive() {  # alive DAEMON: its pid file names a live process of that program
    local pf pid
    pf="$(pidfile "$1")"
    [[ -s "$pf" ]] || return 1
    pid="$(cat "$pf")"
    [[ "$pid" =~ ^[0-9]+$ ]] || return 1
    kill -0 "$pid" 2>/dev/null || return 1
    # guard against pid reuse: the process must be the daemon we started
    [[ "$(cat "/proc/$pid/comm" 2>/dev/null)" == "$1"* ]]
}

running_count() {
    local n=0 d
    for d in "${DAEMONS[@]}"; do alive "$d" && n=$((n + 1)); done
    echo "$n"
}

stop_one() {  # stop_one DAEMON: TERM the pid from our pid file, wait up to 15 s, then KILL
    local d="$1" pf pid i
    pf="$(pidfile "$d")"
    if alive "$d"; then
        pid="$(cat "$pf")"
        kill -TERM "$pid" 2>/dev/null || true
        for i in $(seq 1 150); do
            kill -0 "$pid" 2>/dev/null || break
            sleep 0.1
        done
        if kill -0 "$pid" 2>/dev/null; then
            log "$d (pid $pid) ignored SIGTERM; sending SIGKILL"
            kill -KILL "$pid" 2>/dev/null || true
        fi
        log "stopped $d (pid $pid)"
    fi
    rm -f "$pf"
}

cmd_stop() {
    local i
    for ((i = ${#DAEMONS[@]} - 1; i >= 0; i--)); do stop_one "${DAEMONS[i]}"; done
    # remove the /etc link only when it is ours
    if [[ -L "$ETC_CONF" && "$(readlink "$ETC_CONF")" == "$CONF" ]]; then
        rm -f "$ETC_CONF"
    fi
}

cmd_status() {
    local d rc=0
    for d in "${DAEMONS[@]}"; do
        if alive "$d"; then
            echo "$d: running (pid $(cat "$(pidfile "$d")"))"
        else
            echo "$d: stopped"
            rc=1
        fi
    done
    if [[ $rc -eq 0 ]]; then
        sinfo -N -o "%N %P %T %c %m" 2>/dev/null || rc=1
    fi
    echo "state: $DIR"
    return "$rc"
}

write_conf() {
    local node_line
    # `slurmd -C` prints the hardware as a node line: keep CPUs/sockets/cores/memory
    node_line="$(slurmd -C | head -n 1 | sed -e 's/^NodeName=[^ ]* *//')"
    [[ -n "$node_line" ]] || die "slurmd -C printed no node line"
    cat >"$CONF" <<EOF
# Written by scripts/slurm-local.sh; single node, everything on 127.0.0.1.
ClusterName=sentscale-local
SlurmctldHost=$(hostname -s)(127.0.0.1)
SlurmctldPort=$CTLD_PORT
SlurmdPort=$SLURMD_PORT
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
AuthInfo=socket=$DIR/munge/munge.socket
StateSaveLocation=$DIR/ctld
SlurmdSpoolDir=$DIR/slurmd
SlurmctldPidFile=$(pidfile slurmctld)
SlurmdPidFile=$(pidfile slurmd)
SlurmctldLogFile=$DIR/log/slurmctld.log
SlurmdLogFile=$DIR/log/slurmd.log
SlurmctldDebug=info
SlurmdDebug=info
SchedulerType=sched/backfill
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
ProctrackType=proctrack/linuxproc
TaskPlugin=task/affinity
MpiDefault=none
SwitchType=switch/none
AccountingStorageType=accounting_storage/none
JobAcctGatherType=jobacct_gather/none
JobCompType=jobcomp/none
ReturnToService=2
# accept the node line even where the detected hardware differs slightly
SlurmdParameters=config_overrides
# finished jobs stay visible to squeue for an hour: the Snakemake plugin polls with squeue
# (no accounting, so no sacct) and needs MinJobAge >= 3 x its first status-check delay; a
# long test run can still list every one of its jobs afterwards
MinJobAge=3600
KillWait=5
InactiveLimit=0
NodeName=$NODE NodeHostname=$(hostname -s) NodeAddr=127.0.0.1 $node_line State=UNKNOWN
PartitionName=local Nodes=$NODE Default=YES MaxTime=INFINITE State=UP
EOF
}

wait_idle() {
    local i state
    for i in $(seq 1 60); do
        state="$(sinfo -h -N -n "$NODE" -o %T 2>/dev/null || true)"
        case "$state" in
            idle* | mixed* | allocated*) return 0 ;;
        esac
        sleep 0.5
    done
    log "node $NODE not idle after 30 s (state: ${state:-none}); logs under $DIR/log"
    tail -n 20 "$DIR/log/slurmctld.log" "$DIR/log/slurmd.log" >&2 || true
    return 1
}

cmd_start() {
    [[ $EUID -eq 0 ]] || die "must run as root (slurmd starts jobs as their owner)"
    local b
    for b in munged slurmctld slurmd sbatch squeue sinfo; do
        command -v "$b" >/dev/null || die "'$b' not found; apt-get install --no-install-recommends munge slurmctld slurmd slurm-client"
    done
    if [[ "$(running_count)" -eq ${#DAEMONS[@]} ]]; then
        log "already running (state $DIR)"
        wait_idle
        return 0
    fi
    # a partial start (a daemon died): stop what is left, start clean
    cmd_stop
    if [[ -e "$ETC_CONF" && ! -L "$ETC_CONF" ]]; then
        die "$ETC_CONF is a real file (a cluster's config?); refusing to replace it"
    fi
    if [[ -L "$ETC_CONF" && "$(readlink "$ETC_CONF")" != "$CONF" ]]; then
        local other_dir
        other_dir="$(dirname "$(readlink "$ETC_CONF")")"
        if SLURM_LOCAL_DIR="$other_dir" bash "$0" status >/dev/null 2>&1; then
            die "another local Slurm (state $other_dir) owns $ETC_CONF; stop it first"
        fi
    fi

    mkdir -p "$DIR"
    chmod 700 "$DIR"
    rm -rf "$DIR/ctld" "$DIR/slurmd"        # fresh job ids and no stale jobs on every start
    mkdir -p "$DIR/run" "$DIR/log" "$DIR/munge" "$DIR/ctld" "$DIR/slurmd"
    # job ids restart at 1: keep the previous logs as *.prev so no old JobId lines remain
    local f
    for f in "$DIR"/log/*.log; do
        if [[ -e "$f" ]]; then mv -f "$f" "$f.prev"; fi
    done
    chmod 700 "$DIR/munge"

    # munge: a private key and socket (never the system's /run/munge)
    if [[ ! -s "$DIR/munge/munge.key" ]]; then
        dd if=/dev/urandom of="$DIR/munge/munge.key" bs=1024 count=1 status=none
    fi
    chmod 600 "$DIR/munge/munge.key"
    munged --force --key-file="$DIR/munge/munge.key" --socket="$DIR/munge/munge.socket" \
        --pid-file="$(pidfile munged)" --log-file="$DIR/log/munged.log" \
        --seed-file="$DIR/munge/munged.seed"

    write_conf
    mkdir -p "$(dirname "$ETC_CONF")"
    ln -sfn "$CONF" "$ETC_CONF"

    # both daemons fork into the background and write their pid files
    slurmctld -c
    slurmd -N "$NODE"
    local i
    for i in $(seq 1 50); do
        [[ "$(running_count)" -eq ${#DAEMONS[@]} ]] && break
        sleep 0.2
    done
    if [[ "$(running_count)" -ne ${#DAEMONS[@]} ]]; then
        cmd_status >&2 || true
        tail -n 20 "$DIR"/log/*.log >&2 || true
        cmd_stop
        die "daemons did not start"
    fi
    wait_idle || { cmd_stop; die "node never became idle"; }
    log "running: partition 'local', node $NODE, state $DIR"
}

case "${1:-}" in
    start) cmd_start ;;
    stop) cmd_stop ;;
    status) cmd_status ;;
    *)
        echo "usage: $0 start|stop|status   (state under \$SLURM_LOCAL_DIR, default /tmp/sentscale-slurm)" >&2
        exit 2
        ;;
esac
