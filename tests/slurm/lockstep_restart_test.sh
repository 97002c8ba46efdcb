#!/usr/bin/env bash
# scripts/lockstep-restart with real launches (ctest `lockstep_restart`):
#  - a rank killed with SIGKILL after the first checkpoint: the wrapper restarts the run (at np 1
#    after np 2, with --auto-resume) and the final parameters equal an uninterrupted run's;
#  - a config error is not retried;
#  - SIGUSR1 to the wrapper: lockstep stops with a checkpoint, the wrapper exits 75, no restart.
# Tiny config in deterministic mode, so runs at different rank counts are bit-identical.
set -u
LOCKSTEP=$1
SRC=$2
MPIEXEC=${3:-mpiexec}
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OMPI_MCA_rmaps_base_oversubscribe=1
WORK=$(mktemp -d /tmp/lockstep-restart-XXXXXX)
trap 'rm -rf "$WORK"' EXIT
RESTART="$SRC/scripts/lockstep-restart"
failed=0
ok() { echo "PASS: $1"; }
bad() {
  failed=1
  echo "FAIL: $1"
  [[ -f $WORK/log ]] && sed 's/^/    | /' "$WORK/log" | tail -n 30
}

train=(train "$SRC/configs/tiny_synthetic.yaml" --set training.deterministic=true --set training.epochs=40
       --set checkpoint.every_steps=5 --set output.progress=none)
digest() { "$LOCKSTEP" info --checkpoint "$1/checkpoint.h5" 2>/dev/null | sed -n 's/.*digest \([0-9a-f]*\).*/\1/p'; }
global_step() { "$LOCKSTEP" info --checkpoint "$1/checkpoint.h5" 2>/dev/null | sed -n 's/.*global_step \([0-9]*\).*/\1/p'; }

# until_true SECONDS COMMAND...: polls COMMAND every 0.1 s; non-zero if it never succeeded.
until_true() {
  local deadline=$((SECONDS + $1))
  shift
  until "$@"; do
    ((SECONDS < deadline)) || return 1
    sleep 0.1
  done
}
# A rank of the run writing to DIR (not mpiexec): the newest `lockstep` process naming DIR.
rank_pid() {
  local pid
  for pid in $(pgrep -f -- "output.dir=$1" | sort -rn); do
    [[ $(cat "/proc/$pid/comm" 2>/dev/null) == lockstep ]] && { echo "$pid"; return 0; }
  done
  return 1
}

# ---- reference: uninterrupted at np 2 ----
timeout 120 "$MPIEXEC" -n 2 --oversubscribe "$LOCKSTEP" "${train[@]}" --set "output.dir=$WORK/ref" >"$WORK/log" 2>&1
ref=$(digest "$WORK/ref")
if [[ -n $ref ]]; then ok "reference run (digest $ref)"; else bad "reference run"; fi

# ---- a rank killed mid-run: restarted at np 1 with --auto-resume, same parameters ----
timeout 300 "$RESTART" --max-restarts 2 --backoff 0 --np-sequence 2,1 -- \
  "$MPIEXEC" -n "{np}" --oversubscribe "$LOCKSTEP" "${train[@]}" --set "output.dir=$WORK/crash" >"$WORK/log" 2>&1 &
wrapper=$!
killed=
if until_true 60 test -f "$WORK/crash/checkpoint.h5" && pid=$(rank_pid "$WORK/crash"); then
  kill -KILL "$pid"
  killed="pid $pid at checkpoint step $(global_step "$WORK/crash")"
fi
wait "$wrapper"
rc=$?
if [[ -z $killed ]]; then
  bad "crash: the run ended before a rank could be killed (exit $rc)"
elif [[ $rc == 0 ]] && grep -q "attempt 1 exited .*no status file" "$WORK/log" &&
     grep -q "attempt 2/3 (np 1): .*--auto-resume" "$WORK/log" && [[ $(grep -c "attempt [0-9]/3 (np" "$WORK/log") == 2 ]]; then
  ok "crash: rank $killed killed, wrapper restarted once at np 1 with --auto-resume, exit 0"
else
  bad "crash: rank $killed killed; expected one restart at np 1 and exit 0, got exit $rc"
fi
if [[ $(digest "$WORK/crash") == "$ref" ]]; then ok "crash: final parameters equal the uninterrupted run's"
else bad "crash: digest $(digest "$WORK/crash"), expected $ref"; fi

# ---- a config error is not retried ----
timeout 120 "$RESTART" --max-restarts 3 --backoff 0 -- "$MPIEXEC" -n 2 --oversubscribe "$LOCKSTEP" "${train[@]}" \
  --set "output.dir=$WORK/bad" --set training.epochs=many >"$WORK/log" 2>&1
rc=$?
if [[ $rc != 0 && $rc != 124 ]] && [[ $(grep -c "attempt [0-9]/4" "$WORK/log") == 1 ]] &&
   grep -q "config error that a restart would repeat" "$WORK/log"; then
  ok "config error: one attempt, not retried (exit $rc)"
else
  bad "config error: expected one attempt and no restart, got exit $rc"
fi

# ---- SIGUSR1 to the wrapper: a stop with a checkpoint, exit 75, no restart ----
timeout 300 "$RESTART" --max-restarts 3 --backoff 0 -- "$MPIEXEC" -n 2 --oversubscribe "$LOCKSTEP" "${train[@]}" \
  --set "output.dir=$WORK/stop" >"$WORK/log" 2>&1 &
timeout_pid=$!
signalled=
# The signal goes to the wrapper itself, timeout's child.
if until_true 60 test -f "$WORK/stop/checkpoint.h5" && rank_pid "$WORK/stop" >/dev/null; then
  kill -USR1 "$(pgrep -P "$timeout_pid")" && signalled=1
fi
wait "$timeout_pid"
rc=$?
if [[ -z $signalled ]]; then
  bad "stop: the run ended before the signal (exit $rc)"
elif [[ $rc == 75 ]] && [[ $(grep -c "attempt [0-9]/4" "$WORK/log") == 1 ]] && grep -q "stopped by SIGUSR1 at global step" "$WORK/log" &&
     [[ $(global_step "$WORK/stop") -lt 1280 ]]; then
  ok "stop: SIGUSR1 to the wrapper stops lockstep at step $(global_step "$WORK/stop") with a checkpoint, exit 75, no restart"
else
  bad "stop: expected exit 75 after one attempt with 'stopped by SIGUSR1', got exit $rc"
fi

[[ $failed == 0 ]] && echo "all passed" || exit 1
