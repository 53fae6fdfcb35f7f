#!/usr/bin/env bash
# A real one-node SLURM cluster on this machine, to try the cluster path and for `make test-cluster`
# (docs/sweeps.md, "A SLURM cluster on this machine"). Needs root and Debian's packages:
#   apt-get install slurmctld slurmd slurm-client munge
#
#   scripts/slurm-local.sh start   write /etc/slurm/slurm.conf, start munged, slurmctld, slurmd; then check
#   scripts/slurm-local.sh check   sinfo shows the node idle or busy, and `srun hostname` runs a job
#   scripts/slurm-local.sh stop    stop the daemons this script started (and none other)
#   scripts/slurm-local.sh status  one line: up or down, the partition, and the config's node line
#
# Every command is idempotent: start leaves running daemons alone, stop leaves alone what it did not
# start. The config names this host with the cores and memory `slurmd -C` finds, one partition
# (`local`, the default), proctrack/linuxproc, task/none, memory a consumable resource (a job that asks
# for more than the node has is refused at sbatch), and no accounting (sacct has nothing to report:
# bnstudy's SLURM launcher follows its jobs through squeue and their result files instead).
# /etc/slurm/slurm.conf is written only if it is absent or was written by this script.
set -euo pipefail

CONF=${SLURM_CONF:-/etc/slurm/slurm.conf}
MARK="# written by bnstudy scripts/slurm-local.sh"
PARTITION=local
STATE=/run/bnstudy-slurm  # which daemons this script started (stop ends those only)
LOGS=/var/log/slurm
CTLD_PID=/run/slurmctld.pid
SLURMD_PID=/run/slurmd.pid
MUNGE_PID=/run/munge/munged.pid
WAIT_S=${SLURM_LOCAL_WAIT_S:-60}

die() { echo "error: $*" >&2; exit 1; }
say() { echo "slurm-local: $*"; }

need_root() { [ "$(id -u)" = 0 ] || die "$1 needs root (it starts system daemons): sudo $0 $1"; }

need_packages() {
  local missing=()
  for tool in munged slurmctld slurmd sinfo srun; do
    command -v "$tool" >/dev/null 2>&1 || [ -x "/usr/sbin/$tool" ] || missing+=("$tool")
  done
  [ ${#missing[@]} = 0 ] || die "not installed: ${missing[*]}; install Debian's packages first: apt-get install slurmctld slurmd slurm-client munge"
}

# a pid file naming a live process with this command name
alive() {
  local pidfile=$1 name=$2 pid
  [ -f "$pidfile" ] || return 1
  pid=$(tr -dc 0-9 <"$pidfile")
  [ -n "$pid" ] && [ "$(cat "/proc/$pid/comm" 2>/dev/null)" = "$name" ]
}

node_line() {
  # slurmd -C: this host's name, sockets, cores, threads and memory (MB), as slurm.conf wants them
  local line
  line=$(slurmd -C | head -1)
  case $line in NodeName=*) ;; *) die "slurmd -C did not describe this host: $line";; esac
  echo "$line State=UNKNOWN"
}

write_conf() {
  local host node tmp
  host=$(hostname -s)
  node=$(node_line)
  if [ -e "$CONF" ] && [ "$(head -c ${#MARK} "$CONF")" != "$MARK" ]; then
    die "$CONF exists and was not written by this script: it is left alone (move it away to use the local cluster)"
  fi
  mkdir -p "$(dirname "$CONF")" "$LOGS" /var/lib/slurm/slurmctld /var/lib/slurm/slurmd
  chown slurm:slurm /var/lib/slurm/slurmctld "$LOGS" 2>/dev/null || true
  tmp=$(mktemp "$CONF.XXXXXX")
  cat >"$tmp" <<EOF
$MARK (start, check, stop: see that script)
ClusterName=bnstudy
SlurmctldHost=$host
SlurmUser=slurm
AuthType=auth/munge
# a requeued job waits cred_expire seconds before it may start again (default 120)
AuthInfo=cred_expire=10
CredType=cred/munge
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
MpiDefault=none
SchedulerType=sched/backfill
# look at pending jobs every 2 s (default 60): a requeued job starts as soon as it may
SchedulerParameters=sched_interval=2,bf_interval=2
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
DefMemPerCPU=1024
ReturnToService=2
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/none
# a cancelled job's processes get SIGTERM, then SIGKILL this many seconds later
KillWait=2
# finished jobs stay visible to squeue this long (no accounting here to ask later)
MinJobAge=300
StateSaveLocation=/var/lib/slurm/slurmctld
SlurmdSpoolDir=/var/lib/slurm/slurmd
SlurmctldPidFile=$CTLD_PID
SlurmdPidFile=$SLURMD_PID
SlurmctldLogFile=$LOGS/slurmctld.log
SlurmdLogFile=$LOGS/slurmd.log
$node
PartitionName=$PARTITION Nodes=ALL Default=YES MaxTime=INFINITE State=UP
EOF
  chmod 644 "$tmp"
  if [ -f "$CONF" ] && cmp -s "$tmp" "$CONF"; then
    rm -f "$tmp"
    return 1  # unchanged
  fi
  mv "$tmp" "$CONF"
  say "wrote $CONF ($node)"
}

start_munge() {
  if alive "$MUNGE_PID" munged; then return; fi
  if [ ! -s /etc/munge/munge.key ]; then
    mkdir -p /etc/munge
    mungekey --create --keyfile /etc/munge/munge.key
    chown munge:munge /etc/munge/munge.key
    chmod 400 /etc/munge/munge.key
  fi
  install -d -o munge -g munge -m 0755 /run/munge
  runuser -u munge -- /usr/sbin/munged
  touch "$STATE/munged"
  say "started munged"
}

start_daemon() {  # name pidfile
  local name=$1 pidfile=$2
  if alive "$pidfile" "$name"; then return; fi
  "/usr/sbin/$name"
  touch "$STATE/$name"
  say "started $name (log: $LOGS/$name.log)"
}

wait_for_node() {
  local state="" waited=0
  while [ "$waited" -lt "$WAIT_S" ]; do
    state=$(sinfo -h -N -o %T 2>/dev/null | head -1 || true)
    case $state in
      idle|mixed|allocated|completing) return 0;;
      down*|drain*|drained*)
        scontrol update NodeName="$(hostname -s)" State=RESUME >/dev/null 2>&1 || true;;
    esac
    sleep 1
    waited=$((waited + 1))
  done
  die "the node is not up after ${WAIT_S}s (sinfo says: ${state:-nothing}); see $LOGS/slurmctld.log and $LOGS/slurmd.log"
}

check() {
  local out
  sinfo -h >/dev/null 2>&1 || die "no SLURM controller answers (sinfo failed): start it with $0 start"
  wait_for_node
  out=$(timeout 60 srun --partition="$PARTITION" --time=1 --mem=100M --ntasks=1 hostname 2>&1) \
    || die "srun hostname failed: $out"
  [ "$out" = "$(hostname)" ] || [ "$out" = "$(hostname -s)" ] || die "srun hostname printed '$out', not this host"
  say "up: partition $PARTITION, node $(sinfo -h -N -o '%N %c CPUs %m MB %T' | head -1); srun hostname ran"
}

start() {
  need_root start
  need_packages
  mkdir -p "$STATE"
  local changed=0
  write_conf && changed=1
  start_munge
  if [ "$changed" = 1 ] && { alive "$CTLD_PID" slurmctld || alive "$SLURMD_PID" slurmd; }; then
    if [ -f "$STATE/slurmctld" ] || [ -f "$STATE/slurmd" ]; then
      # some settings (AuthInfo's cred_expire) are read only when a daemon starts: restart ours
      stop_daemon slurmd "$SLURMD_PID"
      stop_daemon slurmctld "$CTLD_PID"
    else
      scontrol reconfigure
      say "reconfigured the running daemons (not started by this script: some settings need their restart)"
    fi
  fi
  start_daemon slurmctld "$CTLD_PID"
  start_daemon slurmd "$SLURMD_PID"
  check
}

stop_daemon() {  # name pidfile
  local name=$1 pidfile=$2 pid i
  [ -f "$STATE/$name" ] || { alive "$pidfile" "$name" && say "$name was not started by this script: left running"; return 0; }
  if alive "$pidfile" "$name"; then
    pid=$(tr -dc 0-9 <"$pidfile")
    kill -TERM "$pid"
    for i in $(seq 1 30); do
      [ -d "/proc/$pid" ] || break
      sleep 0.5
    done
    [ -d "/proc/$pid" ] && die "$name (pid $pid) did not stop within 15 s"
    say "stopped $name"
  fi
  rm -f "$STATE/$name"
}

stop() {
  need_root stop
  stop_daemon slurmd "$SLURMD_PID"
  stop_daemon slurmctld "$CTLD_PID"
  stop_daemon munged "$MUNGE_PID"
}

status() {
  if sinfo -h >/dev/null 2>&1; then
    echo "up: $(sinfo -h -o 'partition %P, %D node(s) %t, %c CPUs, %m MB' | head -1)"
  else
    echo "down"
  fi
  [ -f "$CONF" ] && grep -E '^NodeName=' "$CONF" || true
}

case ${1:-} in
  start) start;;
  check) check;;
  stop) stop;;
  status) status;;
  *) echo "usage: $0 start|check|stop|status" >&2; exit 2;;
esac
