#!/usr/bin/env bash
# How a job fails: every fault kind, injected with LOCKSTEP_FAULT on the first and on the last rank
# at np 2 and 3, must end the whole job promptly with a non-zero status and a message (never a
# hang, never exit 0), and every stop by signal must leave a checkpoint from which a resumed run
# ends with the uninterrupted run's parameters. Prints the seconds from launch to exit of each case;
# docs/failure-modes.md quotes them.
set -u
LOCKSTEP=$1
SRC=$2
MPIEXEC=${3:-mpiexec}
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OMPI_MCA_rmaps_base_oversubscribe=1
WORK=$(mktemp -d /tmp/lockstep-faults-XXXXXX)
trap 'umount "$WORK/full" 2>/dev/null; rm -rf "$WORK"' EXIT
passed=0
failed=0
ok() { passed=$((passed + 1)); echo "PASS: $1"; }
bad() { failed=$((failed + 1)); echo "FAIL: $1"; [ -f "$WORK/out" ] && sed 's/^/    | /' "$WORK/out" | tail -25; }

TINY="$SRC/configs/tiny_synthetic.yaml"
DET=(--set training.deterministic=true --set output.progress=none)

# run NP FAULT ARGS...: output in $WORK/out, status in $rc, seconds in $secs (120 s: a hang)
run() {
  local np=$1 fault=$2
  shift 2
  local t0 t1
  t0=$(date +%s.%N)
  LOCKSTEP_FAULT=$fault timeout -k 5 120 "$MPIEXEC" -n "$np" --oversubscribe "$LOCKSTEP" "$@" >"$WORK/out" 2>&1
  rc=$?
  t1=$(date +%s.%N)
  secs=$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.1f", b - a }')
  # from the injected fault (its unix time, printed by the faulting rank) to the job's exit
  local tf
  tf=$(sed -n 's/.*LOCKSTEP_FAULT=.*(unix time \([0-9.]*\)).*/\1/p' "$WORK/out" | head -1)
  after=""
  [ -n "$tf" ] && after=$(awk -v a="$tf" -v b="$t1" 'BEGIN { printf "%.1f", b - a }')
}

digest() { "$LOCKSTEP" info --checkpoint "$1" 2>/dev/null | sed -n 's/.*digest \([0-9a-f]*\).*/\1/p' | head -1; }

# expect_resume NAME: after a fault in $WORK/f, `--auto-resume` at np 2 (from the last checkpoint, or
# afresh if the fault came before the first) must end with the uninterrupted run's parameters
expect_resume() {
  local from="afresh"
  [ -f "$WORK/f/checkpoint.h5" ] && from="from global step $("$LOCKSTEP" info --checkpoint "$WORK/f/checkpoint.h5" | sed -n 's/.*global_step \([0-9]*\).*/\1/p' | head -1)"
  run 2 "" train "$TINY" "${DET[@]}" --set "output.dir=$WORK/f" --auto-resume
  local got
  got=$(digest "$WORK/f/checkpoint.h5")
  if [ "$rc" = 0 ] && [ "$got" = "$ref" ]; then ok "  resumed $from after $1: digest = uninterrupted";
  else bad "  resume after $1: exit $rc, digest $got, expected $ref"; fi
  rm -rf "$WORK/f"
}

# expect_fault NAME PATTERN LIMIT NP FAULT ARGS...: non-zero, not a hang, PATTERN shown, within LIMIT s
expect_fault() {
  local name=$1 pattern=$2 limit=$3
  shift 3
  run "$@"
  if [ "$rc" = 124 ] || awk -v s="$secs" 'BEGIN { exit !(s >= 119) }'; then bad "$name: hung (killed after 120 s)";
  elif [ "$rc" = 0 ]; then bad "$name: exited 0";
  elif ! grep -q -- "$pattern" "$WORK/out"; then bad "$name: exit $rc but no '$pattern' in the output";
  elif awk -v s="$secs" -v l="$limit" 'BEGIN { exit !(s > l) }'; then bad "$name: took ${secs} s (limit ${limit} s)";
  else ok "$name: exit $rc ${after:+${after} s after the fault, }${secs} s in all"; fi
}

# ---- the reference: an uninterrupted deterministic run ----
run 2 "" train "$TINY" "${DET[@]}" --set "output.dir=$WORK/ref"
ref=$(digest "$WORK/ref/checkpoint.h5")
[ "$rc" = 0 ] && [ -n "$ref" ] && ok "reference run (digest $ref, ${secs} s)" || bad "reference run (exit $rc)"

# ---- an exception on one rank, at each phase ----
cat >"$WORK/fit.yaml" <<YAML
data:
  format: synthetic
  synthetic: {samples: 600, test_samples: 200, features: 8, classes: 3, seed: 1}
pipeline:
  - StandardScaler: {}
  - LogisticRegression: {maxIter: 20}
output: {dir: $WORK/fit, progress: none}
YAML
for np in 2 3; do
  for rank in 0 $((np - 1)); do
    at="np $np, rank $rank"
    rm -rf "$WORK/f"
    expect_fault "exception while loading data ($at)" "injected fault at load" 30 $np "load:$rank" \
      train "$TINY" "${DET[@]}" --set "output.dir=$WORK/f"
    expect_fault "exception in a training step ($at)" "injected fault at step" 30 $np "step:$rank:throw:25" \
      train "$TINY" "${DET[@]}" --set "output.dir=$WORK/f"
    expect_resume "an exception in step 25 ($at)"
    expect_fault "exception while writing a checkpoint ($at)" "injected fault at checkpoint" 30 $np \
      "checkpoint:$rank" train "$TINY" "${DET[@]}" --set "output.dir=$WORK/f"
    expect_resume "an exception in the first checkpoint ($at)"
    expect_fault "exception in evaluation ($at)" "injected fault at eval" 30 $np "eval:$rank" \
      train "$TINY" "${DET[@]}" --set "output.dir=$WORK/f"
    expect_resume "an exception in the first evaluation ($at)"
    expect_fault "exception in a pipeline fit ($at)" "injected fault at fit" 30 $np "fit:$rank" fit "$WORK/fit.yaml"
  done
done

# ---- a rank that dies, a rank that stalls ----
for np in 2 3; do
  last=$((np - 1))
  expect_fault "rank $last killed mid-step (np $np)" "" 30 $np "step:$last:exit:25" \
    train "$TINY" "${DET[@]}" --set "output.dir=$WORK/f"
  expect_resume "rank $last killed at step 25 (np $np)"
  expect_fault "rank 0 stalled mid-step, comm.timeout_s 3 (np $np)" "no progress for" 40 $np "step:0:stall:25" \
    train "$TINY" "${DET[@]}" --set "output.dir=$WORK/f" --set comm.timeout_s=3
  expect_resume "rank 0 stalled at step 25 (np $np)"
  expect_fault "rank $last stalled mid-step, comm.timeout_s 3 (np $np)" "no progress for" 40 $np "step:$last:stall:25" \
    train "$TINY" "${DET[@]}" --set "output.dir=$WORK/f" --set comm.timeout_s=3
  expect_resume "rank $last stalled at step 25 (np $np)"
done

# ---- a stop by signal on one rank: every rank stops at the same step, 75, then resume ----
for sig in usr1 term; do
  for np in 2 3; do
    last=$((np - 1))
    rm -rf "$WORK/s"
    run $np "step:$last:$sig:40" train "$TINY" "${DET[@]}" --set "output.dir=$WORK/s"
    if [ "$rc" = 75 ] && grep -q "stopped by SIG" "$WORK/out" && grep -q "global step 41" "$WORK/out"; then
      ok "SIG${sig^^} on rank $last (np $np): every rank stopped after step 41, exit 75 ${after} s after the signal"
    else bad "SIG${sig^^} on rank $last (np $np): exit $rc"; fi
    # resume at the other rank count: deterministic mode is the same at any np
    run $((5 - np)) "" train "$TINY" "${DET[@]}" --set "output.dir=$WORK/s" --resume
    got=$(digest "$WORK/s/checkpoint.h5")
    if [ "$rc" = 0 ] && [ "$got" = "$ref" ]; then ok "resumed at np $((5 - np)) after SIG${sig^^}: digest $got = uninterrupted";
    else bad "resume after SIG${sig^^} at np $((5 - np)): exit $rc, digest $got, expected $ref"; fi
  done
done

# ---- the same faults on the tiled step (the default for CPU ranks on one node outside deterministic
# mode): ranks wait on each other's tiles and chunks in the shared window, not in MPI calls ----
TILED=(--set output.progress=none --set training.tile_rows=8)
for np in 2 3; do
  last=$((np - 1))
  run $np "" train "$TINY" "${TILED[@]}" --set "output.dir=$WORK/tref"
  tref=$(digest "$WORK/tref/checkpoint.h5")
  grep -q "gradient sync: shared window, tiles of 8" "$WORK/tref/train.log" && [ -n "$tref" ] &&
    ok "tiled step, reference run (np $np, digest $tref)" || bad "tiled step reference (np $np, exit $rc)"
  expect_fault "tiled step: exception on rank $last (np $np)" "injected fault at step" 30 $np "step:$last:throw:25" \
    train "$TINY" "${TILED[@]}" --set "output.dir=$WORK/f"
  expect_fault "tiled step: rank $last killed mid-step (np $np)" "" 30 $np "step:$last:exit:25" \
    train "$TINY" "${TILED[@]}" --set "output.dir=$WORK/f"
  for r in 0 $last; do
    expect_fault "tiled step: rank $r stalled mid-step, comm.timeout_s 3 (np $np)" "no progress for" 40 $np "step:$r:stall:25" \
      train "$TINY" "${TILED[@]}" --set "output.dir=$WORK/f" --set comm.timeout_s=3
  done
  rm -rf "$WORK/f" "$WORK/s"
  # a stop by signal takes effect with the staged rows (up to 8 steps later), on every rank at once
  run $np "step:$last:usr1:40" train "$TINY" "${TILED[@]}" --set "output.dir=$WORK/s"
  if [ "$rc" = 75 ] && grep -q "stopped by SIG" "$WORK/out"; then
    run $np "" train "$TINY" "${TILED[@]}" --set "output.dir=$WORK/s" --resume
    got=$(digest "$WORK/s/checkpoint.h5")
    if [ "$rc" = 0 ] && [ "$got" = "$tref" ]; then ok "tiled step: SIGUSR1 on rank $last (np $np), exit 75; resumed: digest = uninterrupted";
    else bad "tiled step: resume after SIGUSR1 (np $np): exit $rc, digest $got, expected $tref"; fi
  else bad "tiled step: SIGUSR1 on rank $last (np $np): exit $rc"; fi
  rm -rf "$WORK/s" "$WORK/tref"
done

# ---- a full disk while a checkpoint is written (needs root to mount a small tmpfs) ----
mkdir -p "$WORK/full"
if mount -t tmpfs -o size=48k tmpfs "$WORK/full" 2>/dev/null; then
  run 2 "" train "$TINY" "${DET[@]}" --set "output.dir=$WORK/full/run"
  if [ "$rc" != 0 ] && [ "$rc" != 124 ] && grep -q "No space left on device" "$WORK/out" &&
     ! grep -q "Segmentation fault\|signal 11" "$WORK/out" && "$LOCKSTEP" info --checkpoint "$WORK/full/run/checkpoint.h5" >/dev/null 2>&1; then
    ok "disk full during a checkpoint: exit $rc naming ENOSPC in ${secs} s, no crash, the previous checkpoint intact"
  else bad "disk full during a checkpoint (exit $rc)"; fi
  rm -rf "$WORK/f" && cp -r "$WORK/full/run" "$WORK/f" && rm -f "$WORK/f"/*.tmp.* "$WORK/f/lockstep.lock"
  umount "$WORK/full"
  expect_resume "the disk filled up (resumed on a disk with room)"
else
  echo "SKIP: disk full during a checkpoint: cannot mount a tmpfs here (not root?)"
fi

# ---- LOCKSTEP_STATUS_FILE: what a restart wrapper reads ----
export LOCKSTEP_STATUS_FILE="$WORK/status.json"
run 2 "step:1:usr1:3" train "$TINY" "${DET[@]}" --set "output.dir=$WORK/st"
grep -q '"status":"stopped"' "$LOCKSTEP_STATUS_FILE" && grep -q '"exit_code":75' "$LOCKSTEP_STATUS_FILE" &&
  ok "status file after a stop: $(cat "$LOCKSTEP_STATUS_FILE")" || bad "status file after a stop: $(cat "$LOCKSTEP_STATUS_FILE" 2>&1)"
run 2 "" train "$TINY" "${DET[@]}" --set "output.dir=$WORK/st" --auto-resume
grep -q '"status":"done"' "$LOCKSTEP_STATUS_FILE" && grep -q "resumed from" "$WORK/out" &&
  ok "--auto-resume continues; status file says done" || bad "--auto-resume (exit $rc): $(cat "$LOCKSTEP_STATUS_FILE" 2>&1)"
run 2 "" train "$TINY" --set optimizer.lr=-1 --set "output.dir=$WORK/st2" --auto-resume
grep -q '"kind":"config"' "$LOCKSTEP_STATUS_FILE" && grep -q '"retryable":false' "$LOCKSTEP_STATUS_FILE" &&
  ok "status file after a config error: not retryable" || bad "status file after a config error: $(cat "$LOCKSTEP_STATUS_FILE" 2>&1)"
rm -f "$LOCKSTEP_STATUS_FILE"
run 2 "step:1:exit:3" train "$TINY" "${DET[@]}" --set "output.dir=$WORK/st3"
[ "$rc" != 0 ] && [ ! -f "$LOCKSTEP_STATUS_FILE" ] && ok "no status file after a crash (exit $rc)" || bad "status file after a crash (exit $rc)"
unset LOCKSTEP_STATUS_FILE

echo "faults_e2e: $passed passed, $failed failed"
[ "$failed" = 0 ]
