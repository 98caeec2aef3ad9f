#!/usr/bin/env bash
# Start a single-node SLURM cluster on this machine for the workflow tests (Debian slurm-wlm + munge).
#
#   tests/slurm/start_cluster.sh STATE_DIR      # installs the packages when missing, then starts the daemons
#   tests/slurm/stop_cluster.sh STATE_DIR       # stops exactly the daemons this script started
#
# The cluster leaves the machine as it found it: its slurm.conf, munge key and socket, daemon state, spool, pid and
# log files live in STATE_DIR, and the machine's munge key and any running munged are never touched (slurm.conf
# names the private munge socket, AuthInfo). Commands find the cluster through SLURM_CONF=STATE_DIR/slurm.conf,
# except `srun` inside a job: Snakemake's slurm-jobstep executor strips every SLURM_* variable (SLURM_CONF too)
# before it calls srun, which then reads /etc/slurm/slurm.conf. So the config is also put there for the life of
# the cluster: the machine's own file is saved in STATE_DIR first, and stop_cluster.sh puts it back (or removes
# ours when there was none). A running slurmctld or slurmd is never touched: the script stops instead.
# Accounting is off, so sacct and sacctmgr do not work: runs use `--slurm-status-command squeue` and no account.
# Exit status 3 means SLURM cannot be installed here (not root, or no apt-get); the pytest fixture skips on it.
# On success the last two lines on stdout are `SLURM_CONF=<path>` and `PARTITION=<name>`.
set -euo pipefail

STATE_DIR=${1:?usage: start_cluster.sh STATE_DIR}
PARTITION=modaltune
mkdir -p "$STATE_DIR"
STATE_DIR=$(cd "$STATE_DIR" && pwd)

have_slurm() { command -v slurmctld >/dev/null && command -v slurmd >/dev/null && command -v sbatch >/dev/null \
  && command -v munged >/dev/null; }

if ! have_slurm; then
  if [[ $(id -u) -ne 0 ]]; then
    echo "cannot install SLURM: slurm-wlm/munge are missing and this user is not root" >&2; exit 3
  fi
  if ! command -v apt-get >/dev/null; then
    echo "cannot install SLURM: slurm-wlm/munge are missing and there is no apt-get (not Debian/Ubuntu)" >&2; exit 3
  fi
  echo "installing slurm-wlm and munge with apt-get" >&2
  started=$(date +%s)
  # Keep the packages' init scripts from starting daemons with their default config (Docker images ship this
  # policy file; a bare machine may not).
  created_policy=0
  if [[ ! -e /usr/sbin/policy-rc.d ]]; then
    printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d && chmod +x /usr/sbin/policy-rc.d && created_policy=1
  fi
  export DEBIAN_FRONTEND=noninteractive
  if ! { apt-get update -qq && apt-get install -y -qq --no-install-recommends slurm-wlm munge >&2; }; then
    [[ $created_policy -eq 1 ]] && rm -f /usr/sbin/policy-rc.d
    echo "cannot install SLURM: apt-get install slurm-wlm munge failed (no package mirror reachable?)" >&2; exit 3
  fi
  [[ $created_policy -eq 1 ]] && rm -f /usr/sbin/policy-rc.d
  echo "installed slurm-wlm and munge in $(( $(date +%s) - started )) s" >&2
fi
if [[ $(id -u) -ne 0 ]]; then
  echo "cannot start SLURM: the daemons need root" >&2; exit 3
fi

for daemon in slurmctld slurmd; do
  if pid=$(pgrep -x "$daemon"); then
    echo "$daemon is already running (pid $pid): stop that cluster first (its own stop script, or" \
      "tests/slurm/stop_cluster.sh STATE_DIR for a test cluster); this test does not touch a running SLURM" >&2
    exit 1
  fi
done

# munge authenticates every SLURM message: a private munged with its own key and socket in STATE_DIR, so the
# machine's key (/etc/munge/munge.key) and a munged already running stay untouched.
MUNGE_DIR=$STATE_DIR/munge
MUNGE_SOCKET=$MUNGE_DIR/munge.socket
mkdir -p "$MUNGE_DIR"
chmod 700 "$STATE_DIR" "$MUNGE_DIR"
head -c 1024 /dev/urandom > "$MUNGE_DIR/munge.key"
chmod 400 "$MUNGE_DIR/munge.key"
munged --force --key-file="$MUNGE_DIR/munge.key" --socket="$MUNGE_SOCKET" --pid-file="$STATE_DIR/munged.pid" \
  --log-file="$MUNGE_DIR/munged.log" --seed-file="$MUNGE_DIR/munged.seed"
for _ in $(seq 50); do
  munge --socket="$MUNGE_SOCKET" -n 2>/dev/null | unmunge --socket="$MUNGE_SOCKET" >/dev/null 2>&1 && break
  sleep 0.1
done

HOST=$(hostname -s)
# The node line as slurmd detects this machine (CPUs, sockets, cores, threads, RealMemory): a node declared
# with more CPUs or memory than slurmd finds is drained.
# NodeAddr/SlurmctldHost addresses: the daemons talk over loopback even where the hostname does not resolve.
NODE_LINE=$(slurmd -C | head -n 1 | sed "s/^NodeName=[^ ]*/NodeName=$HOST NodeAddr=127.0.0.1/")
mkdir -p "$STATE_DIR/state" "$STATE_DIR/spool"
export SLURM_CONF=$STATE_DIR/slurm.conf  # read by the daemons and every client command
cat > "$SLURM_CONF" <<CONF
# Written by modaltune tests/slurm/start_cluster.sh for a single-node test cluster; state in $STATE_DIR
ClusterName=modaltune-test
SlurmctldHost=$HOST(127.0.0.1)
AuthType=auth/munge
AuthInfo=socket=$MUNGE_SOCKET
SlurmUser=root
StateSaveLocation=$STATE_DIR/state
SlurmdSpoolDir=$STATE_DIR/spool
SlurmctldPidFile=$STATE_DIR/slurmctld.pid
SlurmdPidFile=$STATE_DIR/slurmd.pid
SlurmctldLogFile=$STATE_DIR/slurmctld.log
SlurmdLogFile=$STATE_DIR/slurmd.log
SlurmctldDebug=info
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
AccountingStorageType=accounting_storage/none
JobAcctGatherType=jobacct_gather/none
JobCompType=jobcomp/filetxt
JobCompLoc=$STATE_DIR/jobcomp.txt
MinJobAge=3600
ReturnToService=2
$NODE_LINE State=UNKNOWN
PartitionName=$PARTITION Nodes=ALL Default=YES MaxTime=INFINITE State=UP
CONF

# For srun inside jobs (see the header): save the machine's file, then install ours until stop_cluster.sh.
MACHINE_CONF=/etc/slurm/slurm.conf
if [[ -e $MACHINE_CONF ]]; then
  cp -p "$MACHINE_CONF" "$STATE_DIR/machine-slurm.conf"
elif [[ ! -d /etc/slurm ]]; then
  touch "$STATE_DIR/machine-had-no-etc-slurm"
fi
touch "$STATE_DIR/machine-conf-saved"  # stop_cluster.sh restores only after this point was reached
mkdir -p /etc/slurm
cp "$SLURM_CONF" "$MACHINE_CONF"

started=$(date +%s)
slurmctld
slurmd
for _ in $(seq 120); do
  state=$(sinfo --noheader --partition "$PARTITION" --format %T 2>/dev/null || true)
  [[ $state == idle ]] && break
  sleep 0.5
done
if [[ $state != idle ]]; then
  echo "SLURM node did not become idle (state: '${state:-no answer}'); logs in $STATE_DIR" >&2
  tail -n 20 "$STATE_DIR/slurmctld.log" "$STATE_DIR/slurmd.log" >&2 || true
  exit 1
fi
echo "SLURM node $HOST idle in partition $PARTITION after $(( $(date +%s) - started )) s" >&2
echo "SLURM_CONF=$SLURM_CONF"
echo "PARTITION=$PARTITION"
