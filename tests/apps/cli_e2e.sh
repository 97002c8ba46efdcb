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
   [ -f "$WORK/run/train.log" ] && [ -f "$WORK/run/config.yaml" ] && ! ls "$WORK/run"/*.tmp >/dev/null 2>&1; then
  ok "train writes metrics.jsonl (3 epochs), train.log, config.yaml and checkpoint.h5, no .tmp"
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

# resume: stop at a step limit, continue, and match an uninterrupted run's final checkpoint params
run 2 train "$TINY" --set "output.dir=$WORK/stop" --max-steps 45
if [ "$rc" = 0 ] && grep -q "continue with" "$WORK/out"; then ok "--max-steps stops with a checkpoint"; else bad "--max-steps (exit $rc)"; fi
run 2 train "$TINY" --set "output.dir=$WORK/stop" --resume
if [ "$rc" = 0 ] && grep -q "resumed from" "$WORK/out"; then ok "--resume continues"; else bad "--resume (exit $rc)"; fi
run 2 evaluate "$TINY" --set "output.dir=$WORK/stop" --checkpoint "$WORK/stop/checkpoint.h5"
grep -q "test_accuracy $acc" "$WORK/out" && ok "resumed run ends with the uninterrupted run's test accuracy" || bad "resumed accuracy differs from $acc"

# The demo config without the Fashion-MNIST package: it says so and trains on synthetic data.
run 2 train "$SRC/configs/fmnist_mlp.yaml" --set "output.dir=$WORK/fallback" --set training.epochs=1 \
  --set data.train.features=/nonexistent/train-images.gz --set data.test.features=/nonexistent/t10k-images.gz \
  --set data.synthetic.samples=2048 --set data.synthetic.test_samples=512
if [ "$rc" = 0 ] && grep -q "dataset-fashion-mnist" "$WORK/out" && grep -q "synthetic" "$WORK/out" &&
   [ -f "$WORK/fallback/checkpoint.h5" ]; then ok "demo falls back to synthetic data and says why";
else bad "synthetic fallback (exit $rc)"; fi

run 2 info
if [ "$rc" = 0 ] && grep -q "ranks:   2" "$WORK/out" && grep -q "rank 1: host" "$WORK/out"; then ok "info lists 2 ranks"; else bad "info (exit $rc)"; fi

# ---- bad input: clear error, non-zero exit, every rank, no hang ----
expect_fail "missing config file" "nope.yaml: cannot open" 2 train "$WORK/nope.yaml"
printf 'training: {epochs: 2}\nmodel: {layers: [{type: dense, units: 2}]}\ndata: {format: synthetic}\nbogus: 1\n' >"$WORK/unknown.yaml"
expect_fail "unknown config key" "unknown.yaml:4: bogus: unknown key" 2 train "$WORK/unknown.yaml"
expect_fail "unknown nested key via --set" "optimizer.lrr: unknown key" 2 train "$TINY" --set optimizer.lrr=1
expect_fail "wrong type" "training.epochs: expected an integer, got \"ten\"" 2 train "$TINY" --set training.epochs=ten
expect_fail "out of range" "optimizer.lr: expected a finite number > 0, got \"-1\"" 2 train "$TINY" --set optimizer.lr=-1
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
   grep -q '"split":"test"' "$WORK/ml/run/metrics.jsonl" && ! ls "$WORK/ml/run"/*.tmp >/dev/null 2>&1; then
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
expect_fail "NaN in features" "NaN or infinite value at row 1, column 1" 2 fit "$WORK/ml/nan.yaml"
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
printf 'kind,size,color\ncat,1,mauve\n' >"$WORK/ml/unseen.csv"
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
expect_fail "a pipeline model is not a checkpoint" "not a lockstep pipeline model" 2 predict "$WORK/ml/pipe.yaml" --model "$WORK/run/checkpoint.h5" --input "$ML/classification.csv" --output "$WORK/ml/x.csv"

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
if [ "$rc" = 0 ] && [ "$(wc -l <"$WORK/kr/pred.csv")" = 89 ] && head -1 "$WORK/kr/pred.csv" | grep -q '^index,prediction,score_0$' &&
   awk -F, 'NR > 1 && $2 != int($2) { real = 1 } END { exit !real }' "$WORK/kr/pred.csv"; then
  ok "predict writes real-valued regression predictions, one per input row"
else bad "predict a regression (exit $rc)"; fi
expect_fail "binary_crossentropy without a final sigmoid" "binary_crossentropy takes probabilities" 1 train "$TINY" \
  --set training.loss=binary_crossentropy
expect_fail "a binary head on labels other than 0 and 1" "is not 0 or 1" 2 train "$TINY" --set "output.dir=$WORK/bin" \
  --set training.loss=bce_with_logits --set "model.layers=[{type: dense, units: 8, activation: relu}, {type: dense, units: 1}]"

echo "$passed passed, $failed failed"
[ "$failed" = 0 ]
