#!/usr/bin/env bash
# Stop the daemons tests/slurm/start_cluster.sh started, by the pid files in STATE_DIR. Daemons are stopped one by
# one and waited for, so none outlives the test run; their files stay in STATE_DIR, nothing else was written.
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
