#!/usr/bin/env bash
# A one-node SLURM cluster on this machine, for tests of `hydra/launcher=slurm`.
#
#   scripts/slurm_cluster.sh start    install (Debian/Ubuntu, as root) if needed, configure, start, wait until idle
#   scripts/slurm_cluster.sh stop     stop slurmd, slurmctld and munged started by this script
#   scripts/slurm_cluster.sh status   sinfo + squeue
#
# No systemd and no cgroups are needed: proctrack/linuxproc, task/none, select/cons_tres.
# State and logs live under $SLURM_TEST_DIR (default /tmp/sweep-slurm); the config is written to
# /etc/slurm/slurm.conf (where the client tools look), so this is for test machines and CI only.
set -euo pipefail

STATE_DIR="${SLURM_TEST_DIR:-/tmp/sweep-slurm}"
CONF_DIR=/etc/slurm
NODE="$(hostname -s)"
CPUS="$(nproc)"
MEM_MB=$(( $(awk '/MemTotal/ {print $2}' /proc/meminfo) / 1024 - 512 ))

log() { echo "[slurm_cluster] $*" >&2; }

need_root() {
    if [ "$(id -u)" != 0 ]; then
        log "must run as root (it installs packages and starts daemons)"; exit 1
    fi
}

install() {
    if command -v slurmctld >/dev/null && command -v slurmd >/dev/null && command -v munged >/dev/null \
        && command -v sinfo >/dev/null; then
        return
    fi
    log "installing slurmctld slurmd munge slurm-client (apt-get)"
    # Keep the packages' init scripts from starting daemons with the stock config.
    local policy=/usr/sbin/policy-rc.d created=0
    if [ ! -e "$policy" ]; then printf '#!/bin/sh\nexit 101\n' > "$policy"; chmod +x "$policy"; created=1; fi
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends slurmctld slurmd munge slurm-client >/dev/null
    if [ "$created" = 1 ]; then rm -f "$policy"; fi
}

write_config() {
    mkdir -p "$CONF_DIR" "$STATE_DIR"/{ctld,d,log} /run/munge
    cat > "$CONF_DIR/slurm.conf" <<EOF
# Written by scripts/slurm_cluster.sh: one node, one partition, no cgroups, no accounting.
ClusterName=sweeptest
SlurmctldHost=${NODE}(127.0.0.1)
AuthType=auth/munge
# A requeued job waits for its credential to expire before it starts again (default 120 s); the
# preemption tests requeue jobs, so keep it short.
AuthInfo=cred_expire=10
SlurmUser=root
SlurmdUser=root
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
SchedulerType=sched/backfill
# backfill every 5 s (default 30): a requeued job whose BeginTime has passed starts within seconds
SchedulerParameters=bf_interval=5
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
MpiDefault=none
ReturnToService=2
StateSaveLocation=${STATE_DIR}/ctld
SlurmdSpoolDir=${STATE_DIR}/d
SlurmctldPidFile=${STATE_DIR}/slurmctld.pid
SlurmdPidFile=${STATE_DIR}/slurmd.pid
SlurmctldLogFile=${STATE_DIR}/log/slurmctld.log
SlurmdLogFile=${STATE_DIR}/log/slurmd.log
SlurmctldTimeout=30
SlurmdTimeout=30
MinJobAge=300
NodeName=${NODE} NodeAddr=127.0.0.1 CPUs=${CPUS} RealMemory=${MEM_MB} State=UNKNOWN
PartitionName=debug Nodes=${NODE} Default=YES MaxTime=INFINITE State=UP
EOF
}

# A live daemon from its pid file (a killed daemon whose parent never reaps it stays a zombie, so
# pgrep by name is not enough).
alive() {
    local pidfile=$1 pid
    [ -s "$pidfile" ] || return 1
    pid="$(cat "$pidfile" 2>/dev/null)" || return 1
    [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null && [ "$(ps -o stat= -p "$pid" | cut -c1)" != Z ]
}

start_munge() {
    if alive /run/munge/munged.pid; then return; fi
    if [ ! -s /etc/munge/munge.key ]; then
        if command -v mungekey >/dev/null; then mungekey --create --force; else
            dd if=/dev/urandom bs=1 count=1024 of=/etc/munge/munge.key 2>/dev/null; fi
    fi
    chown -R munge:munge /etc/munge /run/munge /var/lib/munge /var/log/munge 2>/dev/null || true
    chmod 0700 /etc/munge; chmod 0400 /etc/munge/munge.key
    runuser -u munge -- /usr/sbin/munged
}

wait_idle() {
    local t0=$SECONDS
    until sinfo -h -N -o '%t' 2>/dev/null | grep -qE '^idle'; do
        if (( SECONDS - t0 > 60 )); then
            log "node not idle after 60 s; sinfo says: $(sinfo -h -N -o '%N %t %E' 2>&1)"
            log "see ${STATE_DIR}/log/"; exit 1
        fi
        sleep 0.5
    done
}

start() {
    need_root
    local t0=$SECONDS
    install
    write_config
    start_munge
    alive "$STATE_DIR/slurmctld.pid" || slurmctld -c          # -c: forget state from an earlier run
    alive "$STATE_DIR/slurmd.pid" || slurmd -N "$NODE"
    wait_idle
    # A node left 'down' by an earlier unclean stop is brought back.
    scontrol update NodeName="$NODE" State=RESUME >/dev/null 2>&1 || true
    log "cluster up in $(( SECONDS - t0 )) s: $(sinfo -h -o '%P %a %D %t')"
}

stop_pidfile() {
    local pidfile=$1 pid
    alive "$pidfile" || return 0
    pid="$(cat "$pidfile")"
    kill "$pid" 2>/dev/null || true
    for _ in $(seq 50); do
        kill -0 "$pid" 2>/dev/null && [ "$(ps -o stat= -p "$pid" | cut -c1)" != Z ] || break
        sleep 0.1
    done
}

stop() {
    need_root
    scancel --user=root >/dev/null 2>&1 || true
    stop_pidfile "$STATE_DIR/slurmd.pid"
    stop_pidfile "$STATE_DIR/slurmctld.pid"
    stop_pidfile /run/munge/munged.pid
    log "stopped"
}

status() {
    sinfo && squeue
}

case "${1:-}" in
    start) start ;;
    stop) stop ;;
    status) status ;;
    *) echo "usage: $0 start|stop|status" >&2; exit 2 ;;
esac
