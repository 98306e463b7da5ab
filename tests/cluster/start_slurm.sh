#!/usr/bin/env bash
# Start (or restart) a single-node SLURM test cluster on this machine.
#
# Idempotent: installs slurm-wlm + munge only when slurmctld is missing, creates
# a munge key only when none exists, rewrites /etc/slurm/slurm.conf, restarts
# slurmctld/slurmd and waits until the node `localhost` is idle in partition
# `debug`. Needs root and apt-get (Debian/Ubuntu); exits 77 ("skip") otherwise.
#
# Environment:
#   FAKE_GPU=1 (default)  declare one fake GPU (gres/gpu backed by /dev/null)
#                         so jobs asking --gpus=1 / --gres=gpu:1 schedule; such
#                         jobs see CUDA_VISIBLE_DEVICES=0. FAKE_GPU=0: no GRES.
#   WAIT_SECONDS=60       how long to wait for the node to become idle.
set -euo pipefail

FAKE_GPU="${FAKE_GPU:-1}"
WAIT_SECONDS="${WAIT_SECONDS:-60}"
CONF_DIR=/etc/slurm
LOG_DIR=/var/log/slurm
SPOOL_CTLD=/var/spool/slurmctld
SPOOL_D=/var/spool/slurmd
CTLD_PID=/run/slurmctld.pid
SLURMD_PID=/run/slurmd.pid
MUNGE_PID=/run/munge/munged.pid

log() { echo "start_slurm: $*" >&2; }

if [[ "$(id -u)" -ne 0 ]]; then
    log "must run as root (installs packages, writes /etc/slurm); skipping"
    exit 77
fi
if ! command -v apt-get >/dev/null 2>&1; then
    log "apt-get not found; this script only supports Debian/Ubuntu; skipping"
    exit 77
fi

# --- packages ---------------------------------------------------------------
if ! command -v slurmctld >/dev/null 2>&1; then
    log "installing slurm-wlm and munge with apt-get (a minute or two)"
    export DEBIAN_FRONTEND=noninteractive
    # another apt-get/dpkg (e.g. a second install started at the same time) holds the dpkg
    # lock: wait up to 10 min for it instead of failing with exit 100 "Could not get lock"
    apt-get -o DPkg::Lock::Timeout=600 update -q
    apt-get -o DPkg::Lock::Timeout=600 install -y -q slurm-wlm munge >/dev/null
fi

# --- munge ------------------------------------------------------------------
mkdir -p /etc/munge /run/munge /var/lib/munge /var/log/munge
if [[ ! -s /etc/munge/munge.key ]]; then
    log "creating /etc/munge/munge.key"
    if command -v mungekey >/dev/null 2>&1; then
        mungekey --create --keyfile=/etc/munge/munge.key --force
    else
        dd if=/dev/urandom of=/etc/munge/munge.key bs=1 count=1024 status=none
    fi
fi
chown -R munge:munge /etc/munge /run/munge /var/lib/munge /var/log/munge
chmod 0700 /etc/munge /var/lib/munge /var/log/munge
chmod 0755 /run/munge
chmod 0400 /etc/munge/munge.key
if ! munge -n 2>/dev/null | unmunge >/dev/null 2>&1; then
    log "starting munged as user munge"
    # a stale pid/socket from a dead munged blocks a new one
    if [[ -f "$MUNGE_PID" ]] && ! kill -0 "$(cat "$MUNGE_PID")" 2>/dev/null; then
        rm -f "$MUNGE_PID" /run/munge/munge.socket.2 /run/munge/munge.socket.2.lock
    fi
    runuser -u munge -- /usr/sbin/munged
    for _ in $(seq 1 20); do
        munge -n 2>/dev/null | unmunge >/dev/null 2>&1 && break
        sleep 0.5
    done
fi
if ! munge -n | unmunge >/dev/null; then
    log "munge -n | unmunge fails; see /var/log/munge/munged.log"
    exit 1
fi

# --- slurm.conf -------------------------------------------------------------
CPUS="$(nproc)"
avail_mb=$(( $(awk '/^MemAvailable:/ {print $2}' /proc/meminfo) / 1024 ))
REAL_MEM=$(( avail_mb * 9 / 10 ))        # a bit below what is free now
mkdir -p "$CONF_DIR" "$LOG_DIR" "$SPOOL_CTLD" "$SPOOL_D"

node_gres=""
gres_types=""
if [[ "$FAKE_GPU" == "1" ]]; then
    # (AccountingStorageTRES=gres/gpu would show the GPU in jobcomp.log's Tres=,
    # but slurmctld then refuses to start without slurmdbd.)
    gres_types="GresTypes=gpu"
    node_gres="Gres=gpu:1"
    # slurmd 22.05 drops a file-less GPU ("Removing file-less GPU"; the node
    # then goes INVAL: "gres/gpu count reported lower than configured"), so the
    # fake GPU points at /dev/null. With TaskPlugin=task/none and no cgroups
    # nothing is constrained; it only lets --gpus=1 / --gres=gpu:1 jobs schedule.
    cat > "$CONF_DIR/gres.conf" <<EOF
# Written by tests/cluster/start_slurm.sh: one fake GPU backed by /dev/null.
AutoDetect=off
NodeName=localhost Name=gpu File=/dev/null
EOF
else
    rm -f "$CONF_DIR/gres.conf"
fi

cat > "$CONF_DIR/slurm.conf" <<EOF
# Written by tests/cluster/start_slurm.sh (single-node test cluster).
ClusterName=largebatch-test
SlurmctldHost=localhost
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
MpiDefault=none
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SchedulerType=sched/backfill
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
DefMemPerCPU=1024
ReturnToService=2
MinJobAge=600
SlurmctldPort=6817
SlurmdPort=6818
StateSaveLocation=$SPOOL_CTLD
SlurmdSpoolDir=$SPOOL_D
SlurmctldPidFile=$CTLD_PID
SlurmdPidFile=$SLURMD_PID
SlurmctldLogFile=$LOG_DIR/slurmctld.log
SlurmdLogFile=$LOG_DIR/slurmd.log
AccountingStorageType=accounting_storage/none
JobAcctGatherType=jobacct_gather/none
JobCompType=jobcomp/filetxt
JobCompLoc=$LOG_DIR/jobcomp.log
$gres_types
NodeName=localhost CPUs=$CPUS RealMemory=$REAL_MEM $node_gres State=UNKNOWN
PartitionName=debug Nodes=localhost Default=YES MaxTime=INFINITE State=UP
EOF

# --- (re)start daemons ------------------------------------------------------
stop_daemon() {  # name pidfile
    local name=$1 pidfile=$2 pids=""
    [[ -f "$pidfile" ]] && pids="$(cat "$pidfile")"
    # daemons whose pid file went missing: exact process name only
    pids="$pids $(pgrep -x "$name" || true)"
    for pid in $pids; do
        kill "$pid" 2>/dev/null || true
    done
    for _ in $(seq 1 20); do
        pgrep -x "$name" >/dev/null || break
        sleep 0.5
    done
    for pid in $(pgrep -x "$name" || true); do kill -9 "$pid" 2>/dev/null || true; done
    rm -f "$pidfile"
}
stop_daemon slurmd "$SLURMD_PID"
stop_daemon slurmctld "$CTLD_PID"

slurmctld              # forks into the background, logs to $LOG_DIR/slurmctld.log
slurmd -N localhost    # the hostname is not `localhost`: name the node; logs to $LOG_DIR/slurmd.log
# a node left DRAIN/INVAL by an earlier (bad) configuration is not resumed by a
# restart alone; resuming an idle node fails harmlessly
sleep 1
scontrol update NodeName=localhost State=RESUME >/dev/null 2>&1 || true

# --- wait for the node ------------------------------------------------------
# sinfo itself blocks ~10 s when slurmctld is unreachable: use a deadline and
# give up early when a daemon has died (e.g. a fatal error in slurm.conf).
state=""
deadline=$(( SECONDS + WAIT_SECONDS ))
while (( SECONDS < deadline )); do
    for name in slurmctld slurmd; do
        if ! pgrep -x "$name" >/dev/null; then
            log "$name is not running; last lines of $LOG_DIR/$name.log:"
            tail -n 5 "$LOG_DIR/$name.log" >&2 || true
            exit 1
        fi
    done
    state="$(timeout 10 sinfo -h -n localhost -o '%t' 2>/dev/null | head -n1 || true)"
    [[ "$state" == "idle" ]] && break
    sleep 1
done
if [[ "$state" != "idle" ]]; then
    log "node localhost not idle after ${WAIT_SECONDS}s (state: '${state:-none}');" \
        "see $LOG_DIR/slurmctld.log and $LOG_DIR/slurmd.log"
    exit 1
fi

gres_summary="${node_gres#Gres=}"
echo "slurm up: node localhost idle, partition debug, CPUs=$CPUS," \
     "RealMemory=${REAL_MEM}MB, gres=${gres_summary:-none}, jobcomp=$LOG_DIR/jobcomp.log"
