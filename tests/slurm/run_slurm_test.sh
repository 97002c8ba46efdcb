#!/usr/bin/env bash
# slurm/train.sbatch on a real one-node Slurm cluster started here, as root: a private munged, a
# slurmctld and a slurmd with their configuration, state and logs in a temporary directory (the
# system's /etc/slurm and munge are left alone). Run by .ci/run after the test suite:
#
#   tests/slurm/run_slurm_test.sh        # LOCKSTEP=path/to/lockstep to test another binary,
#                                        # KEEP=1 to keep the job outputs and daemon logs
#
# (a) a job runs to the end: the reference parameter digest;
# (b) a job preempted by `scontrol requeue` after its first checkpoint comes back, continues from
#     its checkpoint and ends with the reference digest;
# (c) SIGUSR1 to a job's batch shell (what `#SBATCH --signal=B:USR1@N` does before the time limit):
#     lockstep stops with exit 75, the script requeues the job, and the next run ends with the
#     reference digest.
# Training is the tiny config in deterministic mode at 2 ranks (srun --mpi=pmix). Every wait has a
# timeout; a failure prints the job's output, `scontrol show job` and the daemons' logs.
set -euo pipefail
cd "$(dirname "$0")/../.."
ROOT=$PWD
LOCKSTEP=${LOCKSTEP:-$ROOT/build/bin/lockstep}
JOB_TIMEOUT=${JOB_TIMEOUT:-120} # seconds for one job, requeues included

say() { echo "slurm-test: $*"; }
[[ $(id -u) == 0 ]] || { say "needs root (it starts slurmctld, slurmd and munged)"; exit 1; }
[[ -x $LOCKSTEP ]] || { say "no binary at $LOCKSTEP: build first (scripts/run_tests.sh)"; exit 1; }
if ! command -v slurmctld >/dev/null || ! command -v slurmd >/dev/null || ! command -v sbatch >/dev/null ||
   ! command -v munged >/dev/null; then
  say "installing slurmctld slurmd slurm-client munge"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq slurmctld slurmd slurm-client munge >/dev/null
fi

WORK=$(mktemp -d /tmp/lockstep-slurm-XXXXXX)
chmod 711 "$WORK" # munged wants its socket's directory traversable by everyone
export SLURM_CONF=$WORK/slurm.conf
pids=()
failed=0
jobs_submitted=()

show_logs() {
  local f
  for f in "$WORK"/job-*.out; do
    [[ -f $f ]] && { echo "---- $f"; tail -n 60 "$f"; }
  done
  for id in ${jobs_submitted[@]+"${jobs_submitted[@]}"}; do
    echo "---- scontrol show job $id"
    scontrol show job "$id" 2>&1 | head -n 30
  done
  # A daemon's stderr holds what it printed before it could open its log file (config errors).
  for f in slurmctld slurmd munged; do
    [[ -s $WORK/$f.log ]] || f=$f.stderr
    [[ -s $WORK/$f ]] && { echo "---- $f (last 40 lines)"; tail -n 40 "$WORK/$f"; }
  done
}
cleanup() {
  local rc=$?
  set +e
  [[ $rc != 0 || $failed != 0 ]] && show_logs
  if [[ ${#jobs_submitted[@]} -gt 0 ]]; then scancel "${jobs_submitted[@]}" 2>/dev/null || true; fi
  # slurmd first, then slurmctld, then munged; each is our own child.
  for ((i = ${#pids[@]} - 1; i >= 0; i--)); do
    kill "${pids[$i]}" 2>/dev/null || true
    wait "${pids[$i]}" 2>/dev/null || true
  done
  if [[ ${KEEP:-0} == 1 ]]; then say "kept $WORK"; else rm -rf "$WORK"; fi
  exit "$rc"
}
trap cleanup EXIT

# poll SECONDS WHAT COMMAND...: runs COMMAND every 0.2 s until it succeeds; fails after SECONDS.
poll() {
  local limit=$1 what=$2 start=$SECONDS
  shift 2
  until "$@"; do
    if ((SECONDS - start > limit)); then
      say "FAIL: timed out after $limit s waiting for $what"
      exit 1
    fi
    sleep 0.2
  done
}

start_cluster() {
  local host node
  host=$(hostname -s)
  dd if=/dev/urandom of="$WORK/munge.key" bs=1024 count=1 status=none
  chmod 600 "$WORK/munge.key"
  munged -F --key-file="$WORK/munge.key" --socket="$WORK/munge.sock" --pid-file="$WORK/munged.pid" \
    --seed-file="$WORK/munged.seed" --log-file="$WORK/munged.log" >"$WORK/munged.stderr" 2>&1 &
  pids+=($!)
  poll 10 "munged's socket" test -S "$WORK/munge.sock"

  # The node as slurmd sees it (CPUs, sockets, cores, RealMemory), so it is never drained for
  # having less than configured.
  node=$(slurmd -C | head -n 1)
  mkdir -p "$WORK/state" "$WORK/spool"
  cat >"$SLURM_CONF" <<EOF
ClusterName=lockstep-ci
SlurmctldHost=$host(127.0.0.1)
SlurmctldPort=16817
SlurmdPort=16818
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
# cred_expire is also how long a requeued job waits before it may start again (120 s by default).
AuthInfo=socket=$WORK/munge.sock,cred_expire=10
StateSaveLocation=$WORK/state
SlurmdSpoolDir=$WORK/spool
SlurmctldPidFile=$WORK/slurmctld.pid
SlurmdPidFile=$WORK/slurmd.pid
SlurmctldLogFile=$WORK/slurmctld.log
SlurmdLogFile=$WORK/slurmd.log
SlurmctldDebug=info
SlurmdDebug=info
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/none
SelectType=select/cons_tres
SelectTypeParameters=CR_CPU
MpiDefault=none
ReturnToService=2
SlurmctldTimeout=30
SlurmdTimeout=30
MessageTimeout=10
InactiveLimit=0
KillWait=30
MinJobAge=600
# Start a requeued job as soon as its cred_expire delay is over, not at the next 30/60 s pass.
SchedulerParameters=sched_interval=2,bf_interval=2
$node NodeAddr=127.0.0.1 State=UNKNOWN
PartitionName=debug Nodes=$host Default=YES MaxTime=INFINITE State=UP
EOF
  slurmctld -D -i -f "$SLURM_CONF" >"$WORK/slurmctld.stderr" 2>&1 &
  pids+=($!)
  poll 20 "slurmctld to answer" scontrol ping >/dev/null 2>&1
  slurmd -D -f "$SLURM_CONF" >"$WORK/slurmd.stderr" 2>&1 &
  pids+=($!)
  poll 30 "node $host to be idle" node_idle
  say "cluster up: $(sinfo -h -o '%P %D %T %c CPUs %m MB' | head -n 1)"
}
node_idle() { [[ $(sinfo -h -o %T 2>/dev/null | head -n 1) == idle ]]; }

# submit NAME [SBATCH_ARGS...]: submits train.sbatch on the tiny config; sets $job. 1000 epochs
# (32,000 steps, about 20 s): with 30 (under a second of training) a CI run once finished the whole
# job before Slurm's SIGTERM for the requeue arrived, so the first run had nothing left to stop; at
# 300 epochs the SIGTERM came at step 7,459 of 9,600, too close.
submit() {
  local name=$1
  shift
  job=$(CONFIG=configs/tiny_synthetic.yaml OUTPUT_DIR="$WORK/$name" LOCKSTEP="$LOCKSTEP" \
        sbatch --parsable --job-name="ci-$name" --output="$WORK/job-$name.out" --time=10 "$@" slurm/train.sbatch \
        --set training.epochs=1000 --set checkpoint.every_steps=100 --set training.deterministic=true)
  jobs_submitted+=("$job")
  say "($name) submitted job $job"
}
job_field() { scontrol show job "$1" 2>/dev/null | tr ' ' '\n' | sed -n "s/^$2=//p" | head -n 1; }
job_finished() {
  case $(job_field "$1" JobState) in
    COMPLETED | FAILED | CANCELLED | TIMEOUT | NODE_FAIL | OUT_OF_MEMORY | BOOT_FAIL | DEADLINE) return 0 ;;
    *) return 1 ;;
  esac
}
job_running() { [[ $(job_field "$1" JobState) == RUNNING ]]; }
digest() { "$LOCKSTEP" info --checkpoint "$1/checkpoint.h5" | sed -n 's/.*digest \([0-9a-f]*\).*/\1/p'; }
# check NAME COMMAND...: PASS or FAIL (the script carries on and fails at the end).
check() {
  local name=$1
  shift
  if "$@"; then say "PASS: $name"; else say "FAIL: $name"; failed=1; fi
}
# completed_after JOB N: the job ended COMPLETED with exit 0 after exactly N requeues.
completed_after() {
  [[ $(job_field "$1" JobState) == COMPLETED && $(job_field "$1" ExitCode) == 0:0 && $(job_field "$1" Restarts) == "$2" ]]
}
same_digest() { [[ -n $ref && $(digest "$1") == "$ref" ]]; }
wait_done() {
  poll "$JOB_TIMEOUT" "job $1 to finish" job_finished "$1"
  say "job $1: $(job_field "$1" JobState), exit $(job_field "$1" ExitCode), restarts $(job_field "$1" Restarts)"
}
# mid_run NAME: waits until job $job runs and its first checkpoint exists.
mid_run() {
  poll "$JOB_TIMEOUT" "job $job's first checkpoint" test -f "$WORK/$1/checkpoint.h5"
  job_running "$job" || { say "FAIL: job $job no longer runs after its first checkpoint: the run is too short"; exit 1; }
}

start_cluster

# (a) an uninterrupted job: the reference.
submit a
wait_done "$job"
ref=$(digest "$WORK/a")
check "(a) job completes, exit 0 (digest $ref)" completed_after "$job" 0

# (b) preempted: scontrol requeue after the first checkpoint (SIGTERM to every process, then Slurm
# requeues the job). lockstep stops with a checkpoint; the next run continues from it.
submit b
mid_run b
scontrol requeue "$job"
say "(b) requeued job $job at checkpoint step $("$LOCKSTEP" info --checkpoint "$WORK/b/checkpoint.h5" | sed -n 's/.*global_step \([0-9]*\).*/\1/p')"
wait_done "$job"
check "(b) preempted job completes after one requeue" completed_after "$job" 1
check "(b) the first run stopped with a checkpoint on the signal" grep -Eq "stopped by SIG(TERM|USR1) at global step" "$WORK/job-b.out"
check "(b) the second run resumed from the checkpoint" grep -q "resumed from $WORK/b/checkpoint.h5" "$WORK/job-b.out"
check "(b) final parameters equal the uninterrupted run's" same_digest "$WORK/b"

# (c) the time-limit warning: SIGUSR1 to the batch shell only, as --signal=B:USR1@N sends it.
submit c
mid_run c
scancel --signal=USR1 --batch "$job"
say "(c) sent SIGUSR1 to job $job's batch shell"
wait_done "$job"
check "(c) job completes after one requeue" completed_after "$job" 1
check "(c) lockstep stopped on SIGUSR1" grep -q "stopped by SIGUSR1 at global step" "$WORK/job-c.out"
check "(c) with exit 75" grep -q "lockstep exited 75 after SIGUSR1" "$WORK/job-c.out"
check "(c) train.sbatch requeued the job" grep -q "requeueing job $job" "$WORK/job-c.out"
check "(c) final parameters equal the uninterrupted run's" same_digest "$WORK/c"

if [[ $failed != 0 ]]; then
  say "FAILED after $SECONDS s"
  exit 1
fi
say "all passed in $SECONDS s"
