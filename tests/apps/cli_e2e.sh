#!/usr/bin/env bash
# End-to-end checks of the CLI as a user runs it: training, evaluation, prediction, resume, and
# every kind of bad input, each of which must end with a clear message and a non-zero exit on
# every rank, never a hang (each launch runs under a timeout; 124 means it hung).
set -u
LOCKSTEP=$1
SRC=$2
MPIEXEC=${3:-mpiexec}
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OMPI_MCA_rmaps_base_oversubscribe=1
WORK=$(mktemp -d /tmp/lockstep-cli-XXXXXX)
trap 'rm -rf "$WORK"' EXIT
passed=0
failed=0

ok() { passed=$((passed + 1)); echo "PASS: $1"; }
bad() { failed=$((failed + 1)); echo "FAIL: $1"; [ -f "$WORK/out" ] && sed 's/^/    | /' "$WORK/out" | tail -20; }

# run NP ARGS...: runs lockstep under mpiexec with a hang timeout; output in $WORK/out, status in $rc
run() {
  local np=$1
  shift
  timeout 120 "$MPIEXEC" -n "$np" --oversubscribe "$LOCKSTEP" "$@" >"$WORK/out" 2>&1
  rc=$?
}

# expect_fail NAME PATTERN NP ARGS...: non-zero exit (not a hang) and PATTERN in the output
expect_fail() {
  local name=$1 pattern=$2
  shift 2
  run "$@"
  if [ "$rc" = 124 ]; then bad "$name: hung (killed after 120 s)";
  elif [ "$rc" = 0 ]; then bad "$name: exited 0, expected an error";
  elif ! grep -q -- "$pattern" "$WORK/out"; then bad "$name: exit $rc but the message lacks '$pattern'";
  else ok "$name (exit $rc)"; fi
}

TINY="$SRC/configs/tiny_synthetic.yaml"

# ---- success paths ----
run 2 train "$TINY" --set "output.dir=$WORK/run"
if [ "$rc" = 0 ] && [ "$(wc -l <"$WORK/run/metrics.jsonl")" = 3 ] && [ -f "$WORK/run/checkpoint.h5" ] &&
   [ -f "$WORK/run/train.log" ] && [ -f "$WORK/run/config.yaml" ] && ! ls "$WORK/run" | grep -q '\.tmp' &&
   [ ! -e "$WORK/run/lockstep.lock" ]; then
  ok "train writes metrics.jsonl (3 epochs), train.log, config.yaml and checkpoint.h5, no temporary, lock released"
else bad "train tiny config (exit $rc)"; fi
for key in epoch step train_loss test_loss test_accuracy samples_per_sec comm_seconds compute_seconds; do
  grep -q "\"$key\":" "$WORK/run/metrics.jsonl" || bad "metrics.jsonl lacks $key"
done
acc=$(/usr/bin/python3 -c "import json,sys; print(json.loads(open(sys.argv[1]).readlines()[-1])['test_accuracy'])" "$WORK/run/metrics.jsonl" 2>/dev/null || tail -1 "$WORK/run/metrics.jsonl" | sed 's/.*"test_accuracy":\([0-9.]*\).*/\1/')
awk -v a="$acc" 'BEGIN { exit !(a > 0.8) }' && ok "tiny synthetic test accuracy $acc > 0.8" || bad "tiny synthetic accuracy $acc"

run 3 evaluate "$TINY" --set "output.dir=$WORK/run" --checkpoint "$WORK/run/checkpoint.h5"
if [ "$rc" = 0 ] && grep -q "test_accuracy $acc" "$WORK/out"; then ok "evaluate at np=3 reproduces the training run's test accuracy ($acc)";
else bad "evaluate (exit $rc, expected test_accuracy $acc)"; fi

# predict: the same data at np=1 and np=4 gives the same file, rows in input order
mkdir -p "$WORK/pred"
printf 'label,a,b,c\n' >"$WORK/pred/in.csv"
for i in $(seq 0 40); do printf '%d,%d.5,%d,-%d\n' $((i % 3)) "$i" $((i * 2)) "$i" >>"$WORK/pred/in.csv"; done
cat >"$WORK/pred/cfg.yaml" <<YAML
data: {format: csv, train: {features: $WORK/pred/in.csv}, test: {features: $WORK/pred/in.csv}, label_column: label}
model: {layers: [{type: dense, units: 8}, {type: relu}, {type: dense, units: 3}]}
optimizer: {type: adam, lr: 0.01}
training: {epochs: 2, batch_size: 8}
output: {dir: $WORK/pred/run, progress: none}
YAML
run 2 train "$WORK/pred/cfg.yaml"
[ "$rc" = 0 ] && ok "train on CSV with adam" || bad "train on CSV (exit $rc)"
run 1 predict "$WORK/pred/cfg.yaml" --checkpoint "$WORK/pred/run/checkpoint.h5" --input "$WORK/pred/in.csv" --output "$WORK/pred/p1.csv"
r1=$rc
run 4 predict "$WORK/pred/cfg.yaml" --checkpoint "$WORK/pred/run/checkpoint.h5" --input "$WORK/pred/in.csv" --output "$WORK/pred/p4.csv"
if [ "$r1" = 0 ] && [ "$rc" = 0 ] && cmp -s "$WORK/pred/p1.csv" "$WORK/pred/p4.csv" &&
   [ "$(wc -l <"$WORK/pred/p4.csv")" = 42 ] && [ "$(sed -n 2p "$WORK/pred/p4.csv" | cut -d, -f1)" = 0 ] &&
   [ "$(tail -1 "$WORK/pred/p4.csv" | cut -d, -f1)" = 40 ]; then
  ok "predict at np=1 and np=4 writes identical files, 41 rows in input order"
else bad "predict (exit $r1/$rc)"; fi

# The tiled step with a straggler: rank 1 sleeps 3 ms at every step (LOCKSTEP_FAULT=step:1:slow),
# rank 0 takes over some of its tiles, and the run still ends with the undisturbed run's exact
# parameters (compared through their ONNX export, which holds nothing but the network).
run 2 train "$TINY" --set "output.dir=$WORK/steady" --set checkpoint.every_steps=0 --set training.tile_rows=8
steady_rc=$rc
export LOCKSTEP_FAULT=step:1:slow
run 2 train "$TINY" --set "output.dir=$WORK/straggler" --set checkpoint.every_steps=0 --set training.tile_rows=8
unset LOCKSTEP_FAULT
taken=$(tail -1 "$WORK/straggler/metrics.jsonl" 2>/dev/null | grep -o '"tiles_taken_over":[0-9]*' | cut -d: -f2)
if [ "$steady_rc" = 0 ] && [ "$rc" = 0 ] && grep -q "tiles of 8 rows" "$WORK/straggler/train.log" && [ "${taken:-0}" -gt 0 ]; then
  run 1 export --checkpoint "$WORK/steady/checkpoint.h5" --output "$WORK/steady/net.onnx"
  run 1 export --checkpoint "$WORK/straggler/checkpoint.h5" --output "$WORK/straggler/net.onnx"
  if cmp -s "$WORK/steady/net.onnx" "$WORK/straggler/net.onnx"; then
    ok "tiled step: a straggler's tiles taken over ($taken in the last epoch), the same parameters as without it"
  else bad "tiled step: the straggler run's parameters differ from the undisturbed run's"; fi
else bad "tiled step with a straggler (exit $steady_rc / $rc, tiles taken over: ${taken:-none})"; fi
# A straggler late while holding a tile (3 ms inside each of rank 1's tiles): rank 0 recomputes
# such tiles as backups, the first copy published wins, and the parameters are still the same bits.
export LOCKSTEP_FAULT=tile:1:slow
run 2 train "$TINY" --set "output.dir=$WORK/backup" --set checkpoint.every_steps=0 --set training.tile_rows=8
unset LOCKSTEP_FAULT
backed=$(tail -1 "$WORK/backup/metrics.jsonl" 2>/dev/null | grep -o '"tiles_backed_up":[0-9]*' | cut -d: -f2)
if [ "$steady_rc" = 0 ] && [ "$rc" = 0 ] && [ "${backed:-0}" -gt 0 ]; then
  run 1 export --checkpoint "$WORK/backup/checkpoint.h5" --output "$WORK/backup/net.onnx"
  if cmp -s "$WORK/steady/net.onnx" "$WORK/backup/net.onnx"; then
    ok "tiled step: $backed backup tiles published in the last epoch, the same parameters as without a straggler"
  else bad "tiled step: the run with backup tiles ends with different parameters"; fi
else bad "tiled step with backup tiles (exit $steady_rc / $rc, tiles backed up: ${backed:-none})"; fi

# resume: stop at a step limit, continue, and match an uninterrupted run's final checkpoint params
run 2 train "$TINY" --set "output.dir=$WORK/stop" --max-steps 45
if [ "$rc" = 0 ] && grep -q "continue with" "$WORK/out"; then ok "--max-steps stops with a checkpoint"; else bad "--max-steps (exit $rc)"; fi
# checkpoint.keep (2 by default): a damaged newest checkpoint is named in a warning and the
# previous one is used; resuming from it still ends where an uninterrupted run does.
cp -r "$WORK/stop" "$WORK/damaged"
if [ -f "$WORK/damaged/checkpoint.1.h5" ]; then ok "the previous checkpoint is kept as checkpoint.1.h5"; else bad "no checkpoint.1.h5"; fi
truncate -s 3000 "$WORK/damaged/checkpoint.h5"
cp "$WORK/damaged/checkpoint.h5" "$WORK/damaged/checkpoint.h5.bad"
run 2 train "$TINY" --set "output.dir=$WORK/damaged" --resume
if [ "$rc" = 0 ] && grep -q "damaged/checkpoint.h5.*using the previous checkpoint .*checkpoint.1.h5" "$WORK/out" &&
   grep -q "resumed from .*checkpoint.1.h5" "$WORK/out"; then
  ok "--resume falls back from a damaged checkpoint.h5 to checkpoint.1.h5, naming both"
else bad "--resume fallback (exit $rc)"; fi
run 2 evaluate "$TINY" --set "output.dir=$WORK/damaged" --checkpoint "$WORK/damaged/checkpoint.h5"
grep -q "test_accuracy $acc" "$WORK/out" && ok "the run resumed from checkpoint.1.h5 ends with the uninterrupted run's accuracy" ||
  bad "fallback-resumed accuracy differs from $acc"
expect_fail "evaluate a damaged checkpoint" "damaged/checkpoint.h5" 2 evaluate "$TINY" --set "output.dir=$WORK/damaged" \
  --checkpoint "$WORK/damaged/checkpoint.h5.bad"
# A checkpoint whose step lies past the end of an epoch of the current data (the CSV shrank under
# the same name): a CheckpointError naming the field, the range and the value, not a crash.
mkdir -p "$WORK/shrink"
printf 'label,a,b\n' >"$WORK/shrink/d.csv"
for i in $(seq 0 199); do printf '%d,%d,%d\n' $((i % 2)) "$i" $((i % 7)) >>"$WORK/shrink/d.csv"; done
cat >"$WORK/shrink/cfg.yaml" <<YAML
data: {format: csv, train: {features: $WORK/shrink/d.csv}, test: {features: $WORK/shrink/d.csv}, label_column: label}
model: {layers: [{type: dense, units: 4}, {type: relu}, {type: dense, units: 2}]}
training: {epochs: 1, batch_size: 10}
output: {dir: $WORK/shrink/run, progress: none}
YAML
run 2 train "$WORK/shrink/cfg.yaml" --max-steps 15
head -41 "$WORK/shrink/d.csv" >"$WORK/shrink/d40.csv" && mv "$WORK/shrink/d40.csv" "$WORK/shrink/d.csv"
expect_fail "--resume at a step past the end of an epoch" "checkpoint.h5: attribute step_in_epoch: expected an integer in \[0, 3\].*found 15" \
  2 train "$WORK/shrink/cfg.yaml" --resume
run 2 train "$TINY" --set "output.dir=$WORK/stop" --resume
if [ "$rc" = 0 ] && grep -q "resumed from" "$WORK/out"; then ok "--resume continues"; else bad "--resume (exit $rc)"; fi
run 2 evaluate "$TINY" --set "output.dir=$WORK/stop" --checkpoint "$WORK/stop/checkpoint.h5"
grep -q "test_accuracy $acc" "$WORK/out" && ok "resumed run ends with the uninterrupted run's test accuracy" || bad "resumed accuracy differs from $acc"

# The demo config without its data files: an error naming the file and the package, never a
# quiet run on synthetic data (only scripts/run_demo.sh falls back, and says so).
expect_fail "missing Fashion-MNIST files" "data.train.features: /usr/share/datasets/fashion-mnist/nope-images.gz not found (Fashion-MNIST: on Debian, apt-get install dataset-fashion-mnist)" \
  2 train "$SRC/configs/fmnist_mlp.yaml" --set "output.dir=$WORK/nofiles" --set data.train.features=/usr/share/datasets/fashion-mnist/nope-images.gz
[ ! -e "$WORK/nofiles/metrics.jsonl" ] && ok "no metrics written without the data" || bad "metrics written without the data"
expect_fail "missing test file (fit)" "data.test.features: /nonexistent/t10k.gz not found" \
  3 fit "$SRC/configs/fmnist_logreg.yaml" --set "output.dir=$WORK/nofiles" --set data.test.features=/nonexistent/t10k.gz
grep -rq "synthetic_fallback" "$SRC/configs" && bad "a shipped config still has data.synthetic_fallback" || ok "no shipped config falls back to synthetic data"

# A NaN feature in a training CSV: one agreed error before training, on the first or the last
# rank, at np 1, 2 and 3 (it used to train to exit 0 with NaN parameters); data.on_invalid: skip
# leaves the row out.
mkdir -p "$WORK/nan"
for bad in 0 47; do
  printf 'label,a,b\n' >"$WORK/nan/t$bad.csv"
  for i in $(seq 0 47); do
    if [ "$i" = "$bad" ]; then printf '%d,%d.5,nan\n' $((i % 3)) "$i"; else printf '%d,%d.5,%d\n' $((i % 3)) "$i" $((i * 2)); fi
  done >>"$WORK/nan/t$bad.csv"
  cat >"$WORK/nan/c$bad.yaml" <<YAML
data: {format: csv, train: {features: $WORK/nan/t$bad.csv}, test: {features: $WORK/nan/t$bad.csv}, label_column: label}
model: {layers: [{type: dense, units: 3}]}
training: {epochs: 1, batch_size: 6}
output: {dir: $WORK/nan/run$bad, progress: none}
YAML
  for np in 1 2 3; do
    expect_fail "NaN feature at row $bad, np=$np" "t$bad.csv: row $bad: feature column 1 (\"b\") is NaN or infinite (data.on_invalid: error" \
      "$np" train "$WORK/nan/c$bad.yaml"
  done
done
run 3 train "$WORK/nan/c47.yaml" --set data.on_invalid=skip
if [ "$rc" = 0 ] && grep -q "skipped 1 of 48 rows" "$WORK/out" && ! grep -q '"train_loss":null' "$WORK/nan/run47/metrics.jsonl"; then
  ok "data.on_invalid: skip trains on the 47 finite rows"
else bad "data.on_invalid: skip (exit $rc)"; fi

run 2 info
if [ "$rc" = 0 ] && grep -q "ranks:   2" "$WORK/out" && grep -q "rank 1: host" "$WORK/out" && grep -q "^conv:    " "$WORK/out"; then ok "info lists 2 ranks and the conv libraries"; else bad "info (exit $rc)"; fi

# ---- bad input: clear error, non-zero exit, every rank, no hang ----
expect_fail "missing config file" "nope.yaml: cannot open" 2 train "$WORK/nope.yaml"
printf 'training: {epochs: 2}\nmodel: {layers: [{type: dense, units: 2}]}\ndata: {format: synthetic}\nbogus: 1\n' >"$WORK/unknown.yaml"
expect_fail "unknown config key" "unknown.yaml:4: bogus: unknown key" 2 train "$WORK/unknown.yaml"
expect_fail "unknown nested key via --set" "optimizer.lrr: unknown key" 2 train "$TINY" --set optimizer.lrr=1
expect_fail "wrong type" "training.epochs: expected an integer, got \"ten\"" 2 train "$TINY" --set training.epochs=ten
expect_fail "out of range" "optimizer.lr: expected a finite number > 0, got \"-1\"" 2 train "$TINY" --set optimizer.lr=-1
expect_fail "checkpoint.keep out of range" "checkpoint.keep: expected an integer in \[1, 1000\], got \"0\"" 2 train "$TINY" --set checkpoint.keep=0
printf 'training: {epochs: 2}\nmodel: {layers: [{type: dense, units: 2}]}\ndata: {format: synthetic}\ntraining: {epochs: 3}\n' >"$WORK/dup.yaml"
expect_fail "duplicate config key" "dup.yaml:4: training: duplicate key (first given on line 1)" 2 train "$WORK/dup.yaml"
printf 'training: {epochs: 1}\nmodel:\n  layers:\n    - {type: dense, units: 922337203685477581}\ndata: {format: synthetic}\n' >"$WORK/huge.yaml"
expect_fail "layer too large (no bad_alloc)" "huge.yaml:4: model.layers\[0\].units: parameter weight of shape" 2 train "$WORK/huge.yaml" --set "output.dir=$WORK/huge"
# ranks started with different configs (MPMD launch: rank 1 gets another --set)
timeout 120 "$MPIEXEC" --oversubscribe -n 1 "$LOCKSTEP" train "$TINY" --set "output.dir=$WORK/x" : \
  -n 1 "$LOCKSTEP" train "$TINY" --set "output.dir=$WORK/x" --set training.epochs=5 >"$WORK/out" 2>&1
rc=$?
if [ "$rc" != 0 ] && [ "$rc" != 124 ] && grep -q "ranks resolved different configs" "$WORK/out"; then ok "different configs per rank (exit $rc)";
else bad "different configs per rank (exit $rc)"; fi
expect_fail "--resume without a checkpoint" "no checkpoint at" 2 train "$TINY" --set "output.dir=$WORK/empty" --resume
# device: cuda on this machine (no GPU here, or no CUDA backend): a reason, on every rank, no hang
if [ "$(nvidia-smi -L 2>/dev/null | grep -c GPU)" = 0 ]; then
  expect_fail "device: cuda without a GPU" 'training.device: "cuda"' 2 train "$TINY" --set training.device=cuda \
    --set "output.dir=$WORK/cuda"
fi

mkdir -p "$WORK/data"
idx_cfg() { # images labels -> config path
  cat >"$WORK/data/idx.yaml" <<YAML
data: {format: idx, train: {features: $1, labels: $2}, test: {features: $1, labels: $2}}
model: {layers: [{type: dense, units: 10}]}
training: {epochs: 1, batch_size: 4}
output: {dir: $WORK/idxrun, progress: none}
YAML
  echo "$WORK/data/idx.yaml"
}
expect_fail "missing data file" "$WORK/data/none.idx" 2 train "$(idx_cfg "$WORK/data/none.idx" "$WORK/data/none.idx")"
# wrong magic: a text file
echo "this is not an idx file at all, just text" >"$WORK/data/text.idx"
expect_fail "IDX wrong magic" "magic" 2 train "$(idx_cfg "$WORK/data/text.idx" "$WORK/data/text.idx")"
# truncated: header says 100 images of 2x2 but only 10 bytes follow
printf '\x00\x00\x08\x03\x00\x00\x00\x64\x00\x00\x00\x02\x00\x00\x00\x02abcdefghij' >"$WORK/data/trunc.idx"
printf '\x00\x00\x08\x01\x00\x00\x00\x64' >"$WORK/data/labels.idx"
head -c 100 /dev/zero >>"$WORK/data/labels.idx"
expect_fail "IDX truncated" "trunc.idx" 2 train "$(idx_cfg "$WORK/data/trunc.idx" "$WORK/data/labels.idx")"
grep -qi "expected\|truncated" "$WORK/out" || bad "IDX truncated: message does not say what was expected"

printf 'label,a,b\n0,1,2\n1,3,4\n0,5\n1,7,8\n' >"$WORK/data/bad.csv"
cat >"$WORK/data/csv.yaml" <<YAML
data: {format: csv, train: {features: $WORK/data/bad.csv}, test: {features: $WORK/data/bad.csv}}
model: {layers: [{type: dense, units: 2}]}
training: {epochs: 1, batch_size: 2}
output: {dir: $WORK/csvrun, progress: none}
YAML
expect_fail "CSV row with the wrong number of columns" "bad.csv:4" 2 train "$WORK/data/csv.yaml"

printf '1 1:0.5 3:1\n0 2:1 0:4\n' >"$WORK/data/bad.svm"
cat >"$WORK/data/svm.yaml" <<YAML
data: {format: libsvm, train: {features: $WORK/data/bad.svm}, test: {features: $WORK/data/bad.svm}}
model: {layers: [{type: dense, units: 2}]}
training: {epochs: 1, batch_size: 2}
output: {dir: $WORK/svmrun, progress: none}
YAML
expect_fail "LIBSVM row with a bad index" "bad.svm:2" 2 train "$WORK/data/svm.yaml"

# ---- ML pipelines: fit (tuned by cross-validation), predict and transform at other rank counts ----
ML="$SRC/tests/data/ml"
mkdir -p "$WORK/ml"
cat >"$WORK/ml/pipe.yaml" <<YAML
data: {format: csv, train: {features: $ML/classification.csv}, test: {features: $ML/classification.csv},
       label_column: label, feature_columns: [x0, x1, x2, x3, x4]}
pipeline:
  - StandardScaler: {withMean: true}
  - LogisticRegression: {maxIter: 200}
tuning:
  type: CrossValidator
  numFolds: 3
  seed: 7
  grid: {LogisticRegression.regParam: [0.0, 0.01, 10.0]}
output: {dir: $WORK/ml/run}
YAML
run 2 fit "$WORK/ml/pipe.yaml"
if [ "$rc" = 0 ] && [ -f "$WORK/ml/run/model.h5" ] && [ "$(grep -c '"tuning"' "$WORK/ml/run/metrics.jsonl")" = 3 ] &&
   grep -q '"split":"test"' "$WORK/ml/run/metrics.jsonl" && ! ls "$WORK/ml/run" | grep -q '\.tmp'; then
  ok "fit with CrossValidator: model.h5, 3 tuning lines and test metrics in metrics.jsonl, no .tmp"
else bad "fit with CrossValidator (exit $rc)"; fi
grep -q "CrossValidator chose LogisticRegression.regParam=0" "$WORK/out" && ok "cross-validation rejects regParam 10 (which underfits)" ||
  bad "cross-validation chose an underfitting regParam"
run 3 fit "$WORK/ml/pipe.yaml" --set tuning.type=TrainValidationSplit --set tuning.trainRatio=0.7 --set "output.dir=$WORK/ml/tvs"
if [ "$rc" = 0 ] && [ "$(grep -c '"tuning":"TrainValidationSplit"' "$WORK/ml/tvs/metrics.jsonl")" = 3 ] && [ -f "$WORK/ml/tvs/model.h5" ]; then
  ok "fit with TrainValidationSplit at np=3: 3 candidates scored, model saved"
else bad "fit with TrainValidationSplit (exit $rc)"; fi
for np in 1 3; do run "$np" predict "$WORK/ml/pipe.yaml" --model "$WORK/ml/run/model.h5" --input "$ML/classification.csv" --output "$WORK/ml/pred$np.csv"; done
if [ "$rc" = 0 ] && [ "$(wc -l <"$WORK/ml/pred1.csv")" = 401 ] && cmp -s "$WORK/ml/pred1.csv" "$WORK/ml/pred3.csv"; then
  ok "a model fitted at np=2 predicts the same file at np=1 and np=3"
else bad "pipeline predict across rank counts (exit $rc)"; fi
run 4 transform "$WORK/ml/pipe.yaml" --model "$WORK/ml/run/model.h5" --input "$ML/classification.csv" --output "$WORK/ml/t.csv"
if [ "$rc" = 0 ] && head -1 "$WORK/ml/t.csv" | grep -q "^index,label,x0,x1,x2,x3,x4$" && [ "$(wc -l <"$WORK/ml/t.csv")" = 401 ]; then
  ok "transform writes the scaled features in input order"
else bad "transform (exit $rc)"; fi
cat >"$WORK/ml/bad_param.yaml" <<YAML
data: {format: csv, train: {features: $ML/classification.csv}, label_column: label}
pipeline:
  - LogisticRegression: {maxIter: 10,
                         regparam: 0.1}
output: {dir: $WORK/ml/bad}
YAML
expect_fail "unknown stage parameter" "bad_param.yaml:4: pipeline\[0\].LogisticRegression.regparam: unknown parameter" 2 fit "$WORK/ml/bad_param.yaml"
expect_fail "parameter out of range" "pipeline\[0\].LogisticRegression.*elasticNetParam" 2 fit "$WORK/ml/bad_param.yaml" --set 'pipeline=[{LogisticRegression: {elasticNetParam: 2}}]'
expect_fail "k larger than the row count" "k = 1000 is larger than the number of rows (400)" 3 fit "$WORK/ml/bad_param.yaml" --set 'pipeline=[{KMeans: {k: 1000}}]'
printf 'x0,x1,label\n1,2,0\n3,4,1\n5,6,2.5\n7,8,1\n' >"$WORK/ml/frac.csv"
cat >"$WORK/ml/frac.yaml" <<YAML
data: {format: csv, train: {features: $WORK/ml/frac.csv}, label_column: label}
pipeline: [{RandomForestClassifier: {numTrees: 2}}]
output: {dir: $WORK/ml/frac}
YAML
expect_fail "a label outside the class range" "label 2.5 at row 2 is not a class index" 2 fit "$WORK/ml/frac.yaml"
printf 'x0,x1,label\n1,2,0\n3,nan,1\n5,6,0\n7,8,1\n' >"$WORK/ml/nan.csv"
sed "s/frac/nan/g" "$WORK/ml/frac.yaml" >"$WORK/ml/nan.yaml"
expect_fail "NaN in features" "nan.csv: row 1: feature column 1 (\"x1\") is NaN or infinite" 2 fit "$WORK/ml/nan.yaml"
# StringIndexer: a text feature one-hot encoded, and a text label, at np=2; predict at np=3.
/usr/bin/awk -F, 'NR == 1 { print "kind,size,color"; next }
  { c = ($1 > 0 ? "red" : "blue"); k = ($5 == 0 ? "cat" : ($5 == 1 ? "dog" : "eel")); print k "," $2 "," c }' \
  "$ML/classification.csv" >"$WORK/ml/text.csv"
cat >"$WORK/ml/text.yaml" <<YAML
data: {format: csv, train: {features: $WORK/ml/text.csv}, test: {features: $WORK/ml/text.csv},
       label_column: kind, string_columns: [kind, color]}
pipeline:
  - StringIndexer: {inputCols: [color, kind], outputCols: [color_index, label]}
  - OneHotEncoder: {inputCols: [color_index]}
  - LogisticRegression: {regParam: 0.01}
output: {dir: $WORK/ml/text}
YAML
run 2 fit "$WORK/ml/text.yaml"
for np in 1 3; do [ "$rc" = 0 ] && run "$np" predict "$WORK/ml/text.yaml" --model "$WORK/ml/text/model.h5" --input "$WORK/ml/text.csv" --output "$WORK/ml/textpred$np.csv"; done
if [ "$rc" = 0 ] && grep -q '"split":"test"' "$WORK/ml/text/metrics.jsonl" && cmp -s "$WORK/ml/textpred1.csv" "$WORK/ml/textpred3.csv" &&
   [ "$(wc -l <"$WORK/ml/textpred1.csv")" = 401 ]; then
  ok "StringIndexer on a text feature and a text label; the saved model predicts the same at np=1 and 3"
else bad "StringIndexer pipeline (exit $rc)"; fi
# A binary text label is scored as indexed, in fit's metrics and in CrossValidator: the constant
# model (regParam 100, index 0 everywhere) must not win, the test accuracy is the fraction of
# predictions equal to the indexed label, and the AUC is a number (it was accuracy 1 and AUC null,
# scored against the text column's constant 0).
/usr/bin/awk -F, 'NR == 1 { print "x0,x1,x2,x3,x4,kind"; next } { print $1 "," $2 "," $3 "," $4 "," $5 "," ($6 == 2 ? "yes" : "no") }' \
  "$ML/classification.csv" >"$WORK/ml/bin.csv"
cat >"$WORK/ml/bin.yaml" <<YAML
data: {format: csv, train: {features: $WORK/ml/bin.csv}, test: {features: $WORK/ml/bin.csv},
       label_column: kind, string_columns: [kind]}
pipeline:
  - StringIndexer: {inputCol: kind, outputCol: label}
  - LogisticRegression: {}
tuning: {type: CrossValidator, numFolds: 3, grid: {LogisticRegression.regParam: [0.001, 100]}}
output: {dir: $WORK/ml/bin}
YAML
run 2 fit "$WORK/ml/bin.yaml"
chose=$(grep -o "CrossValidator chose [^ ]*" "$WORK/out")
[ "$rc" = 0 ] && run 3 predict "$WORK/ml/bin.yaml" --model "$WORK/ml/bin/model.h5" --input "$WORK/ml/bin.csv" --output "$WORK/ml/binpred.csv"
test_line=$(grep '"split":"test"' "$WORK/ml/bin/metrics.jsonl" 2>/dev/null)
acc=$(echo "$test_line" | sed -n 's/.*"accuracy":\([0-9.e-]*\).*/\1/p')
auc=$(echo "$test_line" | sed -n 's/.*"areaUnderROC":\([0-9.e-]*\).*/\1/p')
# "no" is the more frequent value, so index 0; "yes" is 1.
want=$(paste -d, <(tail -n +2 "$WORK/ml/bin.csv" | cut -d, -f6) <(tail -n +2 "$WORK/ml/binpred.csv" 2>/dev/null | cut -d, -f2) |
  /usr/bin/awk -F, '{ n++; if (($1 == "yes") == ($2 + 0 == 1)) h++ } END { if (n) printf "%.9f", h / n }')
if [ "$rc" = 0 ] && [ "$chose" = "CrossValidator chose LogisticRegression.regParam=0.001" ] && [ -n "$auc" ] &&
   /usr/bin/awk -v a="${acc:-0}" -v w="${want:-1}" -v u="$auc" 'BEGIN { exit !(a < 1 && (a - w < 1e-8 && w - a < 1e-8) && u > 0.7) }'; then
  ok "a StringIndexer text label is scored as indexed: accuracy $acc = predictions' agreement, AUC $auc, tuning chose regParam 0.001"
else bad "StringIndexer label scoring (exit $rc, ${chose:-no choice}, accuracy ${acc:-none} vs $want, AUC ${auc:-null})"; fi
printf 'kind,size,color\ncat,1,mauve\n' >"$WORK/ml/unseen.csv"
expect_fail "predict --batch with a pipeline model" "--batch is for a network" 2 predict "$WORK/ml/pipe.yaml" --model "$WORK/ml/run/model.h5" --input "$ML/classification.csv" --output "$WORK/ml/x.csv" --batch 8
expect_fail "a category the fit did not see" "has the value \"mauve\", which the fit did not see" 2 predict "$WORK/ml/text.yaml" --model "$WORK/ml/text/model.h5" --input "$WORK/ml/unseen.csv" --output "$WORK/ml/u.csv"
# LIBSVM stays sparse (CSR) through the estimators.
/usr/bin/awk -F, 'NR > 1 { line = $6; for (j = 1; j <= 5; j++) if ($j != 0) line = line " " j ":" $j; print line }' \
  "$ML/classification.csv" >"$WORK/ml/cls.svm"
cat >"$WORK/ml/svm.yaml" <<YAML
data: {format: libsvm, train: {features: $WORK/ml/cls.svm}, test: {features: $WORK/ml/cls.svm}}
pipeline: [{LinearSVC: {regParam: 0.01}}]
output: {dir: $WORK/ml/svmfit}
YAML
run 2 fit "$WORK/ml/svm.yaml"
acc=$(grep '"split":"test"' "$WORK/ml/svmfit/metrics.jsonl" 2>/dev/null | sed 's/.*"accuracy":\([0-9.]*\).*/\1/')
if [ "$rc" = 0 ] && awk -v a="${acc:-0}" 'BEGIN { exit !(a > 0.85) }'; then ok "LIBSVM (sparse) fit: LinearSVC test accuracy $acc";
else bad "LIBSVM fit (exit $rc, accuracy ${acc:-none})"; fi
# Text: the same mails as CSV (quoted fields holding commas and doubled quotes) and as JSON lines,
# through Tokenizer -> StopWordsRemover -> HashingTF -> IDF -> LogisticRegression; both formats
# give the same predictions, and a saved model predicts the same at np 1 and 3.
python3 - "$WORK/ml" <<'PY'
import json, random, sys
d = sys.argv[1]
rng = random.Random(5)
spam = ["free", "offer", "win", "prize", "cash", "click", "now"]
ham = ["meeting", "lunch", "report", "project", "review", "tomorrow", "team"]
common = ["the", "a", "is", "and", "Hello", "please", "see", "attached"]
rows = []
for i in range(300):
    y = i % 2
    words = [rng.choice(spam if y else ham) for _ in range(rng.randint(2, 6))] + [rng.choice(common) for _ in range(rng.randint(1, 8))]
    rng.shuffle(words)
    text = " ".join(words) + rng.choice(["", ", thanks", '. "quoted", end', "!"])
    rows.append((y, text))
with open(d + "/mail.csv", "w") as f:
    f.write("label,text\n")
    for y, t in rows:
        f.write('%d,"%s"\n' % (y, t.replace('"', '""')))
with open(d + "/mail.jsonl", "w") as f:
    for i, (y, t) in enumerate(rows):
        f.write(json.dumps({"id": i, "label": y, "text": t, "meta": {"n": [i, None]}}) + "\n")
PY
for fmt in csv jsonl; do
  cat >"$WORK/ml/mail_$fmt.yaml" <<YAML
data: {format: $fmt, train: {features: $WORK/ml/mail.$fmt}, test: {features: $WORK/ml/mail.$fmt},
       label_column: label, string_columns: [text]}
pipeline:
  - Tokenizer: {inputCol: text, outputCol: words}
  - StopWordsRemover: {inputCol: words, outputCol: terms}
  - HashingTF: {inputCol: terms, numFeatures: 1024}
  - IDF: {}
  - LogisticRegression: {regParam: 0.01, maxIter: 50}
output: {dir: $WORK/ml/mail_$fmt}
YAML
done
run 2 fit "$WORK/ml/mail_csv.yaml"
[ "$rc" = 0 ] && run 3 fit "$WORK/ml/mail_jsonl.yaml"
for np in 1 3; do [ "$rc" = 0 ] && run "$np" predict "$WORK/ml/mail_csv.yaml" --model "$WORK/ml/mail_csv/model.h5" --input "$WORK/ml/mail.csv" --output "$WORK/ml/mailpred$np.csv"; done
[ "$rc" = 0 ] && run 2 predict "$WORK/ml/mail_jsonl.yaml" --model "$WORK/ml/mail_jsonl/model.h5" --input "$WORK/ml/mail.jsonl" --output "$WORK/ml/mailpredj.csv"
acc=$(grep '"split":"test"' "$WORK/ml/mail_csv/metrics.jsonl" 2>/dev/null | sed 's/.*"accuracy":\([0-9.]*\).*/\1/')
if [ "$rc" = 0 ] && awk -v a="${acc:-0}" 'BEGIN { exit !(a > 0.95) }' && cmp -s "$WORK/ml/mailpred1.csv" "$WORK/ml/mailpred3.csv" &&
   cmp -s <(cut -d, -f1,2 "$WORK/ml/mailpred1.csv") <(cut -d, -f1,2 "$WORK/ml/mailpredj.csv") && [ "$(wc -l <"$WORK/ml/mailpred1.csv")" = 301 ]; then
  ok "text pipeline from CSV (quoted) and JSON lines: test accuracy $acc, the same predictions from both, at np 1 and 3"
else bad "text pipeline (exit $rc, accuracy ${acc:-none})"; fi
# A parameter mistake in the last stage stops the run before any data is read.
run 2 fit "$WORK/ml/mail_csv.yaml" --set 'pipeline=[{Tokenizer: {inputCol: text, outputCol: w}}, {HashingTF: {inputCol: w}}, {NGram: {inputCol: w, outputCol: g, n: 0}}]'
if [ "$rc" != 0 ] && [ "$rc" != 124 ] && grep -q "pipeline\[2\].NGram.n: expected an integer >= 1" "$WORK/out" && ! grep -q "^data:" "$WORK/out" &&
   ! grep -q "MPI_ABORT" "$WORK/out"; then ok "a late stage's bad parameter: reported before reading data, no MPI_Abort (exit $rc)"
else bad "late stage parameter check (exit $rc)"; fi
expect_fail "a network whose input is not the data's" "the network takes inputs of shape" 2 predict "$WORK/ml/pipe.yaml" --model "$WORK/run/checkpoint.h5" --input "$ML/classification.csv" --output "$WORK/ml/x.csv"

# ---- Keras-style heads ----
# Regression on the shipped diabetes split: RMSE and R^2 in every output, real-valued predictions.
KR="$SRC/configs/keras_regression.yaml"
run 2 train "$KR" --set "output.dir=$WORK/kr" --set training.epochs=20 --set output.progress=none \
  --set "data.train.features=$SRC/configs/data/diabetes3_train.csv" --set "data.test.features=$SRC/configs/data/diabetes3_test.csv"
r2=$(tail -1 "$WORK/kr/metrics.jsonl" 2>/dev/null | sed -n 's/.*"test_r2":\([-0-9.e]*\).*/\1/p')
if [ "$rc" = 0 ] && grep -q '"task":"regression"' "$WORK/kr/metrics.jsonl" && grep -q "test_r2" "$WORK/out" &&
   awk -v r="${r2:-0}" 'BEGIN { exit !(r > 0.45 && r < 0.7) }'; then ok "keras_regression.yaml: test R^2 $r2 in metrics.jsonl";
else bad "keras_regression.yaml (exit $rc, R^2 ${r2:-none})"; fi
run 3 evaluate "$KR" --set "output.dir=$WORK/kr" --checkpoint "$WORK/kr/checkpoint.h5" \
  --set "data.train.features=$SRC/configs/data/diabetes3_train.csv" --set "data.test.features=$SRC/configs/data/diabetes3_test.csv"
if [ "$rc" = 0 ] && grep -q "test_r2 $(printf '%.4f' "${r2:-0}")" "$WORK/out" && grep -q '"test_rmse"' "$WORK/kr/eval.jsonl"; then
  ok "evaluate at np=3 reproduces the regression's R^2 and writes test_rmse to eval.jsonl"
else bad "evaluate a regression (exit $rc)"; fi
run 2 predict "$KR" --checkpoint "$WORK/kr/checkpoint.h5" --input "$SRC/configs/data/diabetes3_test.csv" --output "$WORK/kr/pred.csv"
if [ "$rc" = 0 ] && [ "$(wc -l <"$WORK/kr/pred.csv")" = 89 ] && head -1 "$WORK/kr/pred.csv" | grep -q '^origin,prediction,output_0$' &&
   awk -F, 'NR > 1 && $2 != int($2) { real = 1 } END { exit !real }' "$WORK/kr/pred.csv"; then
  ok "predict writes real-valued regression predictions, one per input row"
else bad "predict a regression (exit $rc)"; fi
expect_fail "binary_crossentropy without a final sigmoid" "binary_crossentropy takes probabilities" 1 train "$TINY" \
  --set training.loss=binary_crossentropy
expect_fail "a binary head on labels other than 0 and 1" "is not 0 or 1" 2 train "$TINY" --set "output.dir=$WORK/bin" \
  --set training.loss=bce_with_logits --set "model.layers=[{type: dense, units: 8, activation: relu}, {type: dense, units: 1}]"

# ---- output directories, write failures, JSON and the command line ----
# A second run into an output.dir another process holds is refused before it writes anything,
# naming the directory and the holder; a holder killed with SIGKILL leaves nothing that blocks
# the next run (the lock is the kernel's, released with the process).
mkdir -p "$WORK/held"
coproc HOLDER { /usr/bin/python3 -c '
import fcntl, os, sys
fd = os.open(sys.argv[1], os.O_RDWR | os.O_CREAT)
fcntl.lockf(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
os.write(fd, b"host otherhost, pid 4242, started earlier, lockstep train\n")
print("locked", flush=True)
sys.stdin.read()' "$WORK/held/lockstep.lock"; }
holder_pid=$HOLDER_PID
read -r -t 60 -u "${HOLDER[0]}" held || held=""
[ "$held" = locked ] || bad "the test's lock holder did not start"
expect_fail "a second run into a held output.dir" "output.dir $WORK/held is in use by another lockstep run (host otherhost, pid 4242" \
  2 train "$TINY" --set "output.dir=$WORK/held"
[ "$(grep -c 'in use by another' "$WORK/out")" = 1 ] && [ ! -e "$WORK/held/metrics.jsonl" ] && [ ! -e "$WORK/held/config.yaml" ] &&
  ok "the refusal is one message, and nothing was written into the held directory" || bad "refused run wrote into the held directory"
expect_fail "fit into a held output.dir" "is in use by another lockstep run" 2 fit "$WORK/ml/pipe.yaml" --set "output.dir=$WORK/held"
kill -9 "$holder_pid"
wait "$holder_pid" 2>/dev/null
run 2 train "$TINY" --set "output.dir=$WORK/held" --set training.epochs=1
if [ "$rc" = 0 ] && [ -f "$WORK/held/checkpoint.h5" ] && [ ! -e "$WORK/held/lockstep.lock" ]; then
  ok "after the holder is killed (SIGKILL) the next run takes the directory and releases it"
else bad "run after a killed holder (exit $rc)"; fi

# The resume hint repeats the --set overrides, shell-quoted: pasting it resumes the same run, in a
# directory whose name has a space and a quote.
ODD="$WORK/odd dir 'quoted'"
run 2 train "$TINY" --set "output.dir=$ODD" --set training.epochs=2 --max-steps 45
hint=$(sed -n 's/.*continue with: //p' "$WORK/out" | head -1)
lockstep() { timeout 120 "$MPIEXEC" -n 2 --oversubscribe "$LOCKSTEP" "$@"; }
case "$hint" in lockstep\ train\ *) eval "$hint" >"$WORK/out" 2>&1; rc=$? ;; *) rc=99 ;; esac
if [ "$rc" = 0 ] && grep -q "resumed from" "$WORK/out" && [ "$(wc -l <"$ODD/metrics.jsonl")" = 2 ]; then
  ok "the printed resume command resumes the same run ($hint)"
else bad "resume hint '$hint' (exit $rc)"; fi

# JSON lines stay JSON: a checkpoint path with a quote, a backslash and a newline.
WEIRD="$WORK/we\"ird\\dir
line"
mkdir -p "$WEIRD" && cp "$WORK/run/checkpoint.h5" "$WEIRD/ck.h5"
run 1 evaluate "$TINY" --set "output.dir=$WORK/evalweird" --checkpoint "$WEIRD/ck.h5"
if [ "$rc" = 0 ] && /usr/bin/python3 -c '
import json, sys
lines = open(sys.argv[1]).read().splitlines()
assert len(lines) == 1 and json.loads(lines[0])["checkpoint"] == sys.argv[2]' "$WORK/evalweird/eval.jsonl" "$WEIRD/ck.h5"; then
  ok "eval.jsonl is one valid JSON line for a path with a quote, a backslash and a newline"
else bad "eval.jsonl with an odd checkpoint path (exit $rc)"; fi

# Write failures are errors naming the file, exit 1, on every rank. As root, chmod does not stop
# a write; sysfs refuses new files even to root, and a device node of /dev/full is a full disk.
if [ -d /sys ] && ! : 2>/dev/null >/sys/lockstep-probe; then
  expect_fail "evaluate into a directory that refuses new files" "/sys/eval.jsonl: cannot open for appending" \
    2 evaluate "$TINY" --set output.dir=/sys --checkpoint "$WORK/run/checkpoint.h5"
  expect_fail "train into a directory that refuses new files" "/sys" 2 train "$TINY" --set output.dir=/sys
  expect_fail "predict to a directory that refuses new files" "/sys/p.csv" \
    2 predict "$WORK/pred/cfg.yaml" --checkpoint "$WORK/pred/run/checkpoint.h5" --input "$WORK/pred/in.csv" --output /sys/p.csv
fi
printf '' >"$WORK/afile"
expect_fail "predict to a path under a regular file" "$WORK/afile/p.csv" \
  2 predict "$WORK/pred/cfg.yaml" --checkpoint "$WORK/pred/run/checkpoint.h5" --input "$WORK/pred/in.csv" --output "$WORK/afile/p.csv"
mkdir -p "$WORK/full"
if mknod "$WORK/full/eval.jsonl" c 1 7 2>/dev/null; then
  expect_fail "evaluate onto a full disk" "eval.jsonl: write failed: No space left on device" \
    3 evaluate "$TINY" --set "output.dir=$WORK/full" --checkpoint "$WORK/run/checkpoint.h5"
  [ "$rc" = 1 ] || bad "a full disk exits $rc, expected 1"
  run 2 train "$TINY" --set "output.dir=$WORK/fullrun" --max-steps 45
  rm -f "$WORK/fullrun/train.log" && mknod "$WORK/fullrun/train.log" c 1 7
  expect_fail "train.log on a full disk" "train.log: write failed: No space left on device" \
    2 train "$TINY" --set "output.dir=$WORK/fullrun" --resume
fi
# A symbolic link planted at an output name is neither followed nor replaced.
printf 'precious\n' >"$WORK/victim"
ln -s "$WORK/victim" "$WORK/pred/linked.csv"
expect_fail "predict onto a symbolic link" "linked.csv: exists and is not a regular file (a symbolic link)" \
  2 predict "$WORK/pred/cfg.yaml" --checkpoint "$WORK/pred/run/checkpoint.h5" --input "$WORK/pred/in.csv" --output "$WORK/pred/linked.csv"
[ "$(cat "$WORK/victim")" = precious ] && ok "the link's target is untouched" || bad "predict wrote through a symbolic link"

# Usage errors exit 1 with CLI11's message; --help exits 0.
expect_fail "--max-steps -5" "max-steps" 1 train "$TINY" --max-steps -5
[ "$rc" = 1 ] || bad "--max-steps -5 exits $rc, expected 1"
expect_fail "an unknown option" "bogus" 1 train "$TINY" --bogus
[ "$rc" = 1 ] || bad "an unknown option exits $rc, expected 1"
"$LOCKSTEP" train --help >"$WORK/out" 2>&1 && grep -q -- "--resume" "$WORK/out" && ok "train --help exits 0" || bad "train --help"

# predict on new data, without the label column (CSV) the config names.
cut -d, -f2- "$WORK/pred/in.csv" >"$WORK/pred/nolabel.csv"
run 2 predict "$WORK/pred/cfg.yaml" --checkpoint "$WORK/pred/run/checkpoint.h5" --input "$WORK/pred/nolabel.csv" --output "$WORK/pred/pn.csv"
if [ "$rc" = 0 ] && cmp -s "$WORK/pred/p1.csv" "$WORK/pred/pn.csv"; then
  ok "predict --checkpoint on a CSV without the label column gives the labelled file's predictions"
else bad "predict --checkpoint without labels (exit $rc)"; fi
cut -d, -f1-5 "$ML/classification.csv" >"$WORK/ml/nolabel.csv"
run 3 predict "$WORK/ml/pipe.yaml" --model "$WORK/ml/run/model.h5" --input "$WORK/ml/nolabel.csv" --output "$WORK/ml/predn.csv"
if [ "$rc" = 0 ] && cmp -s "$WORK/ml/pred1.csv" "$WORK/ml/predn.csv"; then
  ok "predict --model on a CSV without the label column gives the labelled file's predictions"
else bad "predict --model without labels (exit $rc)"; fi
expect_fail "train still needs the label column" "label column" 2 train "$WORK/pred/cfg.yaml" \
  --set "data.train.features=$WORK/pred/nolabel.csv" --set "output.dir=$WORK/pred/nl"

# ---- image folders: the test, evaluate and predict folders take the training folder's classes ----
# Classes told apart by brightness (ant dark, bee mid, cat bright); the test folder lacks "ant", so
# renumbering its classes (bee 0, cat 1) would score near 0, mapping them to the training indices
# (1, 2) near 1.
if /usr/bin/python3 - "$WORK/img" <<'PY'
import os, struct, sys, zlib
def png(path, v):
    raw = b"".join(b"\x00" + bytes([v] * 4) for _ in range(4))
    chunk = lambda t, d: struct.pack(">I", len(d)) + t + d + struct.pack(">I", zlib.crc32(t + d))
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "wb") as f:
        f.write(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", 4, 4, 8, 0, 0, 0, 0)) +
                chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b""))
root = sys.argv[1]
for k, (c, base) in enumerate([("ant", 20), ("bee", 120), ("cat", 220)]):
    for i in range(8):
        png(f"{root}/train/{c}/{i}.png", base + i)
        if c != "ant":
            png(f"{root}/test/{c}/{i}.png", base + 30 - i)
            png(f"{root}/odd/{c if c != 'cat' else 'dog'}/{i}.png", base)
PY
then
  cat >"$WORK/img/cfg.yaml" <<YAML
data: {format: image_folder, train: {features: $WORK/img/train}, test: {features: $WORK/img/test}, channels: 1}
model: {layers: [{type: flatten}, {type: dense, units: 3}]}
optimizer: {type: adam, lr: 0.05}
training: {epochs: 40, batch_size: 8}
output: {dir: $WORK/img/run, progress: none}
YAML
  run 2 train "$WORK/img/cfg.yaml"
  iacc=$(tail -1 "$WORK/img/run/metrics.jsonl" 2>/dev/null | sed 's/.*"test_accuracy":\([0-9.]*\).*/\1/')
  if [ "$rc" = 0 ] && awk -v a="$iacc" 'BEGIN { exit !(a > 0.9) }' && grep -q "decoded 24 images in" "$WORK/out" &&
     grep -q '"load_seconds":' "$WORK/img/run/metrics.jsonl"; then
    ok "image folder: a test folder without a class keeps the training indices (test accuracy $iacc), decode logged"
  else bad "image folder test split mapped to the training classes (exit $rc, accuracy $iacc)"; fi
  # evaluate with the training folder gone: the checkpoint's class names map the test folder.
  run 3 evaluate "$WORK/img/cfg.yaml" --set "data.train.features=$WORK/img/gone" --checkpoint "$WORK/img/run/checkpoint.h5"
  if [ "$rc" = 0 ] && grep -q "test_accuracy $iacc" "$WORK/out"; then
    ok "evaluate maps an image folder's classes by the checkpoint's class names ($iacc)"
  else bad "evaluate an image folder by the checkpoint's classes (exit $rc, expected test_accuracy $iacc)"; fi
  expect_fail "image folder test class the training folder lacks" \
    "odd/dog: class folder \"dog\" is not one of the 3 classes of the training data $WORK/img/train" \
    2 train "$WORK/img/cfg.yaml" --set "data.test.features=$WORK/img/odd" --set "output.dir=$WORK/img/odd_run"
  # Streaming predict over a folder (class folders are only folders here: "dog" is not an error).
  P="predict $WORK/img/cfg.yaml --checkpoint $WORK/img/run/checkpoint.h5 --input $WORK/img/odd"
  for np in 1 2 3; do
    run $np $P --output "$WORK/img/p$np.csv" --features flatten0 --features-output "$WORK/img/f$np.h5"
    eval "r$np=\$rc"
  done
  # The features file: the same bytes at np 1, 2 and 3 (no times in HDF5's object headers), and
  # again in blocks of 3 images (5 or 6 chunks a rank at np 1, ragged last chunks at np 3).
  run 3 $P --output "$WORK/img/p3b.csv" --features flatten0 --features-output "$WORK/img/f3b.h5" --batch 3
  if [ "$r1$r2$r3$rc" = 0000 ] && [ -s "$WORK/img/f1.h5" ] && cmp "$WORK/img/f1.h5" "$WORK/img/f2.h5" >>"$WORK/out" 2>&1 &&
     cmp "$WORK/img/f1.h5" "$WORK/img/f3.h5" >>"$WORK/out" 2>&1 && cmp "$WORK/img/f1.h5" "$WORK/img/f3b.h5" >>"$WORK/out" 2>&1 &&
     [ "$(wc -l <"$WORK/img/p3b.csv")" = 17 ]; then
    ok "predict --features: a byte-identical features file at np 1, 2, 3 and at --batch 3"
  else bad "predict --features files differ between np 1, 2, 3 or --batch 3 (exit $r1/$r2/$r3/$rc; cmp in $WORK/out)"; fi
  if [ "$r1$r2$r3" = 000 ] && cmp -s "$WORK/img/p1.csv" "$WORK/img/p2.csv" && cmp -s "$WORK/img/p1.csv" "$WORK/img/p3.csv" &&
     [ "$(wc -l <"$WORK/img/p1.csv")" = 17 ] &&
     head -1 "$WORK/img/p1.csv" | grep -q '^origin,prediction,class,probability_0,probability_1,probability_2$' &&
     sed -n 2p "$WORK/img/p1.csv" | grep -q '^bee/0.png,1,bee,' && [ -s "$WORK/img/f1.h5" ] && [ -s "$WORK/img/f3.h5" ] &&
     ! ls "$WORK/img" | grep -q 'tmp'; then
    ok "predict over a folder: identical CSV at np 1, 2, 3, a features file at each, origins relative, class names, no parts left"
  else bad "predict over a folder at np 1, 2, 3 (exit $r1/$r2/$r3)"; fi
  run 2 $P --output "$WORK/img/parts/"
  if [ "$rc" = 0 ] && [ -f "$WORK/img/parts/_SUCCESS" ] && [ "$(cat "$WORK/img/parts"/part-0000[01].csv | grep -vc '^origin')" = 16 ] &&
     [ "$(grep -c '^origin' "$WORK/img/parts/part-00001.csv")" = 1 ]; then
    ok "predict to a folder: part-00000.csv and part-00001.csv with a header each, and _SUCCESS"
  else bad "predict to a part-file folder (exit $rc)"; fi
  run 2 $P/bee/0.png --output "$WORK/img/one.csv"
  [ "$rc" = 0 ] && [ "$(wc -l <"$WORK/img/one.csv")" = 2 ] && ok "predict one image file" || bad "predict one image file (exit $rc)"
  run 2 predict "$WORK/img/cfg.yaml" --model "$WORK/img/run/checkpoint.h5" --input "$WORK/img/odd" --output "$WORK/img/m.csv"
  [ "$rc" = 0 ] && cmp -s "$WORK/img/m.csv" "$WORK/img/p1.csv" && ok "predict --model checkpoint.h5 (read_network) = --checkpoint" ||
    bad "predict --model with a checkpoint (exit $rc)"
  printf 'not an image' >"$WORK/img/odd/dog/3.png"
  expect_fail "predict: a corrupt image is an agreed error naming it" "odd/dog/3.png: not a PNG or JPEG" 3 $P --output "$WORK/img/c.csv"
  [ ! -e "$WORK/img/c.csv" ] && ! ls "$WORK/img" | grep -q 'tmp' && ok "no partial output after the error" || bad "partial output left"
  run 3 $P --output "$WORK/img/d.csv" --set data.drop_invalid=true
  if [ "$rc" = 0 ] && [ "$(wc -l <"$WORK/img/d.csv")" = 16 ] && ! grep -q 'dog/3.png' "$WORK/img/d.csv" && grep -q "skipped 1 file" "$WORK/out"; then
    ok "predict with drop_invalid: the corrupt image skipped (no row), counted"
  else bad "predict drop_invalid (exit $rc)"; fi
  expect_fail "predict: an unknown --features layer" 'no layer "conv9"' 2 $P --output "$WORK/img/x.csv" --features conv9 --features-output "$WORK/img/x.h5"
  mkdir -p "$WORK/img/empty"
  expect_fail "predict: an empty folder" "no image files" 2 predict "$WORK/img/cfg.yaml" --checkpoint "$WORK/img/run/checkpoint.h5" --input "$WORK/img/empty/" --output "$WORK/img/x.csv"
else bad "writing the image folder fixture"; fi

# ---- export: a checkpoint's network as ONNX (docs/onnx.md), checked by onnx.checker ----
onnx_ok() { # FILE: python3-onnx's checker accepts it (skipped without python3-onnx)
  /usr/bin/python3 -c "import onnx" 2>/dev/null || return 0
  /usr/bin/python3 -c "import onnx, sys; onnx.checker.check_model(onnx.load(sys.argv[1]))" "$1" >>"$WORK/out" 2>&1
}
for ck in "$WORK/run/checkpoint.h5" "$WORK/img/run/checkpoint.h5"; do
  [ -f "$ck" ] || continue
  run 2 export --checkpoint "$ck" --output "${ck%/*}/net.onnx"
  if [ "$rc" = 0 ] && [ -f "${ck%/*}/net.onnx" ] && onnx_ok "${ck%/*}/net.onnx" && grep -q "ONNX opset 13" "$WORK/out"; then
    ok "export ${ck#$WORK/} to ONNX at np=2, accepted by onnx.checker"
  else bad "export ${ck#$WORK/} (exit $rc)"; fi
done
expect_fail "export of a missing checkpoint" "nope/checkpoint.h5" 2 export --checkpoint "$WORK/nope/checkpoint.h5" \
  --output "$WORK/nope.onnx"
expect_fail "export to a name without .onnx" "expected a file name ending in .onnx" 2 export \
  --checkpoint "$WORK/run/checkpoint.h5" --output "$WORK/net.h5"
# ---- transfer learning: a new head on a frozen pretrained base (model.init_from) ----
run 2 train "$TINY" --set "output.dir=$WORK/pre" --set training.epochs=1
if [ "$rc" = 0 ] && [ -f "$WORK/pre/checkpoint.h5" ]; then
  cat >"$WORK/tl.yaml" <<YAML
data:
  format: synthetic
  synthetic: {samples: 1536, test_samples: 384, features: 20, classes: 4, seed: 3, noise: 1.5}
model:
  init_from: $WORK/pre/checkpoint.h5
  replace_from: dense5
  base_trainable: false
  layers: [{type: dense, units: 4}]
optimizer: {type: sgd, lr: 0.1, momentum: 0.9}
training: {epochs: 2, batch_size: 48, seed: 5}
output: {dir: $WORK/tl, progress: none}
YAML
  run 2 train "$WORK/tl.yaml"
  if [ "$rc" = 0 ] && grep -q "(68 trainable, 1200 frozen)" "$WORK/out" && grep -q "init_layers: 5" "$WORK/tl/config.yaml" &&
     grep -q "trainable: false" "$WORK/tl/config.yaml"; then
    ok "init_from + replace_from + base_trainable: false trains a new head on the frozen base (68 trainable, 1200 frozen)"
  else bad "transfer training (exit $rc)"; fi
  # The run's config.yaml holds the whole network: evaluate needs the source no more.
  mv "$WORK/pre/checkpoint.h5" "$WORK/pre/moved.h5"
  run 2 evaluate "$WORK/tl/config.yaml" --checkpoint "$WORK/tl/checkpoint.h5"
  [ "$rc" = 0 ] && ok "evaluate a transfer run from its config.yaml without the source" || bad "evaluate a transfer run (exit $rc)"
  expect_fail "init_from: a missing file" "model.init_from: $WORK/pre/checkpoint.h5: no such file" 2 train "$WORK/tl.yaml"
  mv "$WORK/pre/moved.h5" "$WORK/pre/checkpoint.h5"
  expect_fail "replace_from: no such layer" "no layer \"dense9\" in $WORK/pre/checkpoint.h5 (its layers: dense0, relu1" \
    2 train "$WORK/tl.yaml" --set model.replace_from=dense9 --set "output.dir=$WORK/tl9"
else bad "pretraining for transfer (exit $rc)"; fi

# ---- export of pipeline stages, a final Softmax folded, bad ONNX models (docs/onnx.md) ----
# expect_agreed NAME PATTERN OUTPUT ARGS...: expect_fail at np 2, and the error is agreed (exit 1 on
# every rank, no MPI_ABORT) and OUTPUT was not left behind (nor a temporary beside it).
expect_agreed() {
  local name=$1 pattern=$2 output=$3
  shift 3
  expect_fail "$name" "$pattern" 2 "$@"
  if [ "$rc" != 1 ] || grep -q "MPI_ABORT" "$WORK/out"; then bad "$name: exit $rc, not an agreed error";
  elif [ -e "$output" ] || ls "$(dirname "$output")" 2>/dev/null | grep -q 'tmp'; then bad "$name: left output behind";
  else ok "$name: agreed, exit 1, nothing written"; fi
}
mkdir -p "$WORK/xs"
cat >"$WORK/xs/nn.yaml" <<YAML
data: {format: csv, train: {features: $ML/classification.csv}, test: {features: $ML/classification.csv},
       label_column: label, feature_columns: [x0, x1, x2, x3, x4]}
pipeline:
  - StandardScaler: {withMean: true}
  - NeuralNetwork:
      model: {layers: [{type: dense, units: 8}, {type: relu}, {type: dense, units: 3}]}
      optimizer: {type: adam, lr: 0.01}
      training: {epochs: 2, batch_size: 12}
output: {dir: $WORK/xs/nn, progress: none}
YAML
run 2 fit "$WORK/xs/nn.yaml"
run 2 export --model "$WORK/xs/nn/model.h5" --output "$WORK/xs/nn.onnx"
if [ "$rc" = 0 ] && onnx_ok "$WORK/xs/nn.onnx" && grep -q "model.h5 stage 1 (NeuralNetwork) (3 layers, input \[5\] per sample)" "$WORK/out"; then
  ok "export --model: the pipeline's NeuralNetwork stage (input [5]) at np=2, accepted by onnx.checker"
else bad "export --model of a NeuralNetwork stage (exit $rc)"; fi
sed -e "s|  - StandardScaler: {withMean: true}|  - NeuralFeaturizer: {modelPath: $WORK/xs/nn.onnx, layer: relu1}|" \
    -e "s|$WORK/xs/nn,|$WORK/xs/feat,|" "$WORK/xs/nn.yaml" >"$WORK/xs/feat.yaml"
run 2 fit "$WORK/xs/feat.yaml"
expect_agreed "export --model with two network stages and no --stage" \
  "has 2 stages holding a network, 0 (NeuralFeaturizer), 1 (NeuralNetwork); give --stage" "$WORK/xs/two.onnx" \
  export --model "$WORK/xs/feat/model.h5" --output "$WORK/xs/two.onnx"
run 2 export --model "$WORK/xs/feat/model.h5" --stage 0 --output "$WORK/xs/feat.onnx"
[ "$rc" = 0 ] && onnx_ok "$WORK/xs/feat.onnx" && grep -q "stage 0 (NeuralFeaturizer) (2 layers" "$WORK/out" &&
  ok "export --model --stage 0: the featurizer's truncated network" || bad "export --stage 0 (exit $rc)"
expect_agreed "export --model of a pipeline without a network stage" "no stage of this pipeline holds a network" \
  "$WORK/xs/lr.onnx" export --model "$WORK/ml/run/model.h5" --output "$WORK/xs/lr.onnx"
expect_agreed "export --stage of a stage without a network" "stage 0 is a StandardScaler, which holds no network" \
  "$WORK/xs/s0.onnx" export --model "$WORK/xs/nn/model.h5" --stage 0 --output "$WORK/xs/s0.onnx"

# A network ending in Softmax predicts the probabilities of the same network without it.
run 2 export --checkpoint "$WORK/pred/run/checkpoint.h5" --output "$WORK/xs/pred.onnx"
if [ "$rc" = 0 ] && /usr/bin/python3 - "$WORK/xs/pred.onnx" "$WORK/xs/pred_softmax.onnx" <<'PY' >>"$WORK/out" 2>&1
import sys
import onnx
from onnx import helper
m = onnx.load(sys.argv[1])
g = m.graph
out = g.output[0].name
g.node[-1].output[0] = "logits"
g.node.append(helper.make_node("Softmax", ["logits"], [out], name="probs", axis=-1))
onnx.checker.check_model(m)
onnx.save(m, sys.argv[2])
PY
then
  Q="predict $WORK/pred/cfg.yaml --input $WORK/pred/in.csv"
  run 2 $Q --model "$WORK/xs/pred.onnx" --output "$WORK/xs/plain.csv"
  r1=$rc
  run 2 $Q --model "$WORK/xs/pred_softmax.onnx" --output "$WORK/xs/softmax.csv"
  if [ "$r1$rc" = 00 ] && cmp -s "$WORK/xs/plain.csv" "$WORK/xs/softmax.csv" && cmp -s "$WORK/xs/plain.csv" "$WORK/pred/p1.csv" &&
     [ "$(grep -c "pred_softmax.onnx: its final layer softmax3 is folded into the loss" "$WORK/out")" = 1 ]; then
    ok "predict --model net.onnx ending in Softmax: the same probabilities as without it (= --checkpoint), folding logged once"
  else bad "predict with a final Softmax (exit $r1/$rc)"; fi
  # Bad models through the CLI: an agreed error on every rank, exit 1, no output, no hang.
  head -c "$(($(stat -c %s "$WORK/xs/pred.onnx") / 2))" "$WORK/xs/pred.onnx" >"$WORK/xs/truncated.onnx"
  expect_agreed "predict --model with an unknown operator" 'node 1 (Celu "mystery"): operator Celu is not supported' \
    "$WORK/xs/bad1.csv" $Q --model "$SRC/tests/data/onnx/bad_unknown_op.onnx" --output "$WORK/xs/bad1.csv"
  expect_agreed "predict --model with a truncated file" "truncated.onnx: not an ONNX model" \
    "$WORK/xs/bad2.csv" $Q --model "$WORK/xs/truncated.onnx" --output "$WORK/xs/bad2.csv"
  expect_agreed "predict --model with a wrong-shape initializer" 'initializer "fc.weight" (B) has shape \[4, 7\]' \
    "$WORK/xs/bad3.csv" $Q --model "$SRC/tests/data/onnx/bad_init_shape.onnx" --output "$WORK/xs/bad3.csv"
  expect_agreed "train with model.init_from: a truncated .onnx" "truncated.onnx: not an ONNX model" \
    "$WORK/xs/tl/checkpoint.h5" train "$WORK/pred/cfg.yaml" --set "model.init_from=$WORK/xs/truncated.onnx" \
    --set "output.dir=$WORK/xs/tl"
  # init_from an exported checkpoint trains like any source (the whole network, no new head).
  run 2 train "$WORK/pred/cfg.yaml" --set "model.init_from=$WORK/xs/pred.onnx" --set "model.layers=[]" \
    --set "output.dir=$WORK/xs/tlok" --set training.epochs=1
  [ "$rc" = 0 ] && grep -q "init_layers: 3" "$WORK/xs/tlok/config.yaml" && ok "train with model.init_from: net.onnx (exported)" ||
    bad "train from net.onnx (exit $rc)"
else bad "writing a network that ends in Softmax (exit $rc)"; fi

# ---- output.trace: one Chrome trace JSON for all ranks; trace_summary.py and plot_metrics.py ----
# The static step (tile_rows 0) has every event kind; the tiled step (the default here) its own.
run 2 train "$TINY" --set "output.dir=$WORK/trace" --set output.trace=true --set training.epochs=1 \
  --set training.tile_rows=0
if [ "$rc" = 0 ] && /usr/bin/python3 - "$WORK/trace/trace.json" <<'PY'
import json, sys
d = json.load(open(sys.argv[1]))
X = [e for e in d["traceEvents"] if e["ph"] == "X"]
assert d["displayTimeUnit"] == "ms" and sorted({e["pid"] for e in X}) == [0, 1], "two ranks"
for r in (0, 1):
    names = {e["name"] for e in X if e["pid"] == r}
    assert {"step", "data", "forward", "backward", "wait", "optimizer", "checkpoint"} <= names, (r, names)
    assert all(k in e for e in X for k in ("ph", "ts", "dur", "pid", "tid", "name", "cat"))
PY
then ok "output.trace: trace.json parses, 2 ranks, each with step/data/forward/backward/wait/optimizer/checkpoint events"
else bad "output.trace (exit $rc)"; fi
run 2 train "$TINY" --set "output.dir=$WORK/trace_tiled" --set output.trace=true --set training.epochs=1
if [ "$rc" = 0 ] && /usr/bin/python3 - "$WORK/trace_tiled/trace.json" <<'PY'
import json, sys
X = [e for e in json.load(open(sys.argv[1]))["traceEvents"] if e["ph"] == "X"]
names = {e["name"] for e in X}
assert {"step", "data", "forward", "backward", "reduce+optimizer", "checkpoint"} <= names, names
assert all("tile" in e.get("args", {}) for e in X if e["name"] in ("forward", "backward"))
assert {e["pid"] for e in X if e["name"] == "reduce+optimizer"} == {0, 1}, "both ranks update chunks"
PY
then ok "output.trace, tiled step: forward/backward per tile, reduce+optimizer per chunk on both ranks"
else bad "output.trace, tiled step (exit $rc)"; fi
if /usr/bin/python3 "$SRC/scripts/trace_summary.py" "$WORK/trace/trace.json" >"$WORK/out" 2>&1 &&
   grep -q "== rank 1: 31 steps" "$WORK/out" && grep -q "wait share" "$WORK/out"; then
  ok "trace_summary.py: a breakdown per rank over the 31 steps after the first, with the wait share"
else bad "trace_summary.py"; fi
run 1 train "$TINY" --set "output.dir=$WORK/notrace" --set training.epochs=1
[ "$rc" = 0 ] && [ ! -e "$WORK/notrace/trace.json" ] && ok "no trace.json by default" || bad "trace.json without output.trace (exit $rc)"
run 2 fit "$WORK/ml/pipe.yaml" --set "output.dir=$WORK/ml/trace" --set output.trace=true --set tuning.type=none
if [ "$rc" = 0 ] && /usr/bin/python3 - "$WORK/ml/trace/trace.json" <<'PY'
import json, sys
names = {(e["pid"], e["name"]) for e in json.load(open(sys.argv[1]))["traceEvents"] if e["ph"] == "X"}
for r in (0, 1):
    for n in ("fit StandardScaler", "transform StandardScaler", "fit LogisticRegression", "lbfgs iteration", "objective"):
        assert (r, n) in names, (r, n)
PY
then ok "fit with output.trace: each stage's fit and transform, L-BFGS iterations and objective evaluations on both ranks"
else bad "fit with output.trace (exit $rc)"; fi
if /usr/bin/python3 -c "import matplotlib" 2>/dev/null; then
  if /usr/bin/python3 "$SRC/scripts/plot_metrics.py" "$WORK/trace" -o "$WORK/curves.png" >"$WORK/out" 2>&1 &&
     [ "$(head -c 4 "$WORK/curves.png" | od -An -c | tr -d ' ')" = "211PNG" ]; then
    ok "plot_metrics.py writes a PNG from metrics.jsonl"
  else bad "plot_metrics.py"; fi
else echo "SKIP: plot_metrics.py (no matplotlib; apt-get install python3-matplotlib)"; fi

echo "$passed passed, $failed failed"
[ "$failed" = 0 ]
