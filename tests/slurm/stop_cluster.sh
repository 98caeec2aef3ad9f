#!/usr/bin/env bash
# Stop the daemons tests/slurm/start_cluster.sh started, by the pid files in STATE_DIR, and put back the machine's
# /etc/slurm/slurm.conf as it was (restored from STATE_DIR, or removed when there was none). Daemons are stopped
# one by one and waited for, so none outlives the test run.
set -uo pipefail
STATE_DIR=${1:?usage: stop_cluster.sh STATE_DIR}
for daemon in slurmd slurmctld munged; do
  pid_file="$STATE_DIR/$daemon.pid"
  [[ -s $pid_file ]] || continue
  pid=$(cat "$pid_file")
  if kill "$pid" 2>/dev/null; then
    for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
  fi
  rm -f "$pid_file"
done

if [[ -e $STATE_DIR/machine-conf-saved ]]; then
  if [[ -e $STATE_DIR/machine-slurm.conf ]]; then
    cp -p "$STATE_DIR/machine-slurm.conf" /etc/slurm/slurm.conf
  else
    rm -f /etc/slurm/slurm.conf
    [[ -e $STATE_DIR/machine-had-no-etc-slurm ]] && rmdir /etc/slurm 2>/dev/null
  fi
  rm -f "$STATE_DIR/machine-conf-saved"
fi
exit 0
