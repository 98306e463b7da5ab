#!/usr/bin/env bash
# Stop the single-node test cluster started by start_slurm.sh (slurmd,
# slurmctld, munged). Safe to run when nothing is running.
set -euo pipefail

if [[ "$(id -u)" -ne 0 ]]; then
    echo "stop_slurm: must run as root; skipping" >&2
    exit 77
fi

stop_daemon() {  # name pidfile
    local name=$1 pidfile=$2 pids=""
    [[ -f "$pidfile" ]] && pids="$(cat "$pidfile")"
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

stop_daemon slurmd /run/slurmd.pid
stop_daemon slurmctld /run/slurmctld.pid
stop_daemon munged /run/munge/munged.pid
echo "slurm stopped (slurmd, slurmctld, munged)"
