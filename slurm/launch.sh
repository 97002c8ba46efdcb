# shellcheck shell=bash
# Sourced by train.sbatch and train_gpu.sbatch: starts `lockstep train` as a job step and turns
# Slurm's signals into a clean stop, a checkpoint and, for the time-limit warning, a requeue.
#
#   launch_training NAME LOCKSTEP_ARGS...
#
# Reads LOCKSTEP, LAUNCHER (srun or mpirun), SRUN_MPI, RESTARTS, OUTPUT_DIR; exits the batch
# script with lockstep's exit status.
#
# Why the launcher runs in the background: bash runs a trap only between commands, so a trap set
# around a foreground `srun` would wait for the whole training. With `srun ... &` and `wait`, the
# batch shell's `wait` returns as soon as a trapped signal arrives.
#
#   SIGUSR1 to the batch shell (`#SBATCH --signal=B:USR1@N`: the time limit is N seconds away; or
#   `scancel --signal=USR1 --batch JOBID` by hand): passed to the launcher as SIGUSR1 (srun and
#   mpirun forward it to every rank). lockstep stops every rank at the same global step, writes the
#   checkpoint and exits 75. Then, if the checkpoint moved forward, `scontrol requeue` puts the job
#   back in the queue, and the next run continues with --auto-resume.
#   SIGTERM (preemption, `scontrol requeue` by an admin, `scancel`, or the time limit itself):
#   Slurm also sends it to every task; the batch shell passes SIGUSR1 to the launcher as well, waits
#   for lockstep's checkpoint and exits. A preempted or admin-requeued job is requeued by Slurm
#   itself and continues with --auto-resume; a cancelled one stays cancelled. Slurm kills whatever
#   is left KillWait seconds (30 by default) after the SIGTERM.

# The global step of output.dir's checkpoint (0 when there is none), read with `lockstep info`.
checkpoint_step() {
  local file="$OUTPUT_DIR/checkpoint.h5" step=
  if [[ -f $file ]]; then
    step=$("$LOCKSTEP" info --checkpoint "$file" 2>/dev/null | sed -n 's/.*global_step \([0-9]*\).*/\1/p')
  fi
  echo "${step:-0}"
}

_launch_signal=
_launch_pid=
_launch_interrupted=0
_launch_on_signal() {
  _launch_interrupted=1
  # The first signal decides; USR1 (requeue wanted) wins over a later TERM from the requeue itself.
  _launch_signal=${_launch_signal:-$1}
  if [[ -n $_launch_pid ]]; then
    echo "$_launch_name: SIG$1 received; asking lockstep to stop with a checkpoint (SIGUSR1 to the launcher)"
    kill -USR1 "$_launch_pid" 2>/dev/null || true
  fi
}

launch_training() {
  _launch_name=$1
  shift
  local cmd=()
  # SRUN_MPI may hold several srun options; word splitting is intended.
  # shellcheck disable=SC2206
  case ${LAUNCHER:-srun} in
    srun) cmd=(srun ${SRUN_MPI:-}) ;;
    mpirun) cmd=(mpirun -np "${SLURM_NTASKS:?}") ;;
    *)
      echo "$_launch_name: LAUNCHER must be srun or mpirun, got '$LAUNCHER'" >&2
      exit 2
      ;;
  esac
  if [[ ${RESTARTS:-0} != 0 ]]; then
    # Crash restarts inside this allocation; the wrapper passes SIGUSR1 on and never restarts after it.
    cmd=(scripts/lockstep-restart --max-restarts "$RESTARTS" -- "${cmd[@]}")
  fi
  cmd+=("$LOCKSTEP" "$@")

  local step_before rc step_after
  step_before=$(checkpoint_step)
  echo "$_launch_name: job ${SLURM_JOB_ID:-?} run $((${SLURM_RESTART_COUNT:-0} + 1)), ${SLURM_NTASKS:-?} tasks," \
       "output.dir $OUTPUT_DIR, checkpoint at global step $step_before"
  echo "$_launch_name: ${cmd[*]}"
  trap '_launch_on_signal USR1' USR1
  trap '_launch_on_signal TERM' TERM
  "${cmd[@]}" &
  _launch_pid=$!
  # A trapped signal ends `wait` early (status > 128) while lockstep is still writing its
  # checkpoint: wait again until the launcher itself has exited.
  while :; do
    _launch_interrupted=0
    rc=0
    wait "$_launch_pid" || rc=$?
    [[ $_launch_interrupted == 1 ]] || break
  done
  _launch_pid=
  echo "$_launch_name: lockstep exited $rc${_launch_signal:+ after SIG$_launch_signal}"

  if [[ $_launch_signal == USR1 && $rc == 75 ]]; then
    step_after=$(checkpoint_step)
    if [[ $step_after -le $step_before ]]; then
      # A requeue would start from the same checkpoint and very likely stop there again.
      echo "$_launch_name: the checkpoint did not move past global step $step_before: not requeueing"
    else
      echo "$_launch_name: stopped at global step $step_after (was $step_before); requeueing job $SLURM_JOB_ID"
      # The requeue sends this shell SIGTERM; nothing is left to do but exit.
      trap '' TERM USR1
      scontrol requeue "$SLURM_JOB_ID" || echo "$_launch_name: scontrol requeue failed: resubmit the job to continue"
    fi
  fi
  exit "$rc"
}
