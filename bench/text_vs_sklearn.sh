#!/usr/bin/env bash
# Text classification side by side: `lockstep fit` at np=2 against scikit-learn (2 threads,
# OpenBLAS as ../shared/PEERS.md says) on the SpamAssassin corpus (scripts/fetch_spam.sh; fixed
# 80/20 split, 4,814 / 1,232 mails), the same pipeline on both sides:
#   lockstep      RegexTokenizer(\W+, minTokenLength 2) -> StopWordsRemover (Spark's English list)
#                 -> HashingTF(2^18) -> IDF -> classifier (sparse features throughout)
#   scikit-learn  HashingVectorizer(2^18, token_pattern \b\w\w+\b, the same stop words,
#                 alternate_sign off, no norm) -> TfidfTransformer(norm None) -> classifier
# IDF differs by Spark's formula: log((n+1)/(df+1)) against scikit-learn's log((n+1)/(df+1)) + 1.
# Classifiers (ESTIMATORS): logistic  LogisticRegression regParam 1e-4, maxIter 100 | C = 1/(n 1e-4)
#                           svc       LinearSVC regParam 1e-4, maxIter 100         | hinge, C = 1/(n 1e-4)
#                           bayes     NaiveBayes multinomial on the counts (no IDF) | MultinomialNB(1.0)
# Seconds: each side's pipeline fit (tokenising through the classifier), not reading the CSV.
# Rounds alternate the sides; medians and the ratio (scikit-learn / lockstep) are printed.
# Environment: ROUNDS=3, ESTIMATORS="logistic svc bayes", SPAM_DIR=~/.cache/lockstep/spam.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
ROUNDS="${ROUNDS:-3}"
ESTIMATORS="${ESTIMATORS:-logistic svc bayes}"
SPAM_DIR="${SPAM_DIR:-$HOME/.cache/lockstep/spam}"
PY=/usr/bin/python3
BLAS_DIR=/usr/lib/x86_64-linux-gnu/openblas-pthread
LOCKSTEP="${LOCKSTEP:-build/bin/lockstep}"
[[ -x "$LOCKSTEP" ]] || { echo "error: $LOCKSTEP is missing (cmake --build build)" >&2; exit 1; }
scripts/fetch_spam.sh "$SPAM_DIR" >/dev/null
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
mkdir -p bench/results
STAMP=$(date -u +%Y%m%dT%H%M%SZ)
OUT="bench/results/text_$STAMP.jsonl"
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT
: > "$OUT"
# Spark's English stop words, the list both sides remove (lockstep's default).
"$PY" - "$ROOT/src/ml/text.cpp" > "$WORK/stop.txt" <<'PYEOF'
import re, sys
src = open(sys.argv[1]).read()
body = src[src.index("english_stop_words()"):]
body = body[body.index("{"):body.index("};")]
print("\n".join(re.findall(r'"([^"]*)"', body)))
PYEOF
declare -A CLASSIFIER=(
  [logistic]="{LogisticRegression: {maxIter: 100, regParam: 0.0001, standardization: false}}"
  [svc]="{LinearSVC: {maxIter: 100, regParam: 0.0001, standardization: false}}"
  [bayes]="{NaiveBayes: {}}"
)
for est in $ESTIMATORS; do
  idf="{IDF: {}},"
  [[ "$est" == "bayes" ]] && idf=""
  cat > "$WORK/$est.yaml" <<YAML
data:
  format: csv
  train: {features: $SPAM_DIR/spam_train.csv}
  test: {features: $SPAM_DIR/spam_test.csv}
  label_column: label
  string_columns: [text]
pipeline: [{RegexTokenizer: {inputCol: text, outputCol: words, pattern: "\\\\W+", minTokenLength: 2}},
           {StopWordsRemover: {inputCol: words, outputCol: terms}},
           {HashingTF: {inputCol: terms, numFeatures: 262144}}, $idf ${CLASSIFIER[$est]}]
output: {dir: $WORK/run_$est, progress: none}
YAML
done
for r in $(seq 1 "$ROUNDS"); do
  for est in $ESTIMATORS; do
    mpirun -np 2 "$LOCKSTEP" fit "$WORK/$est.yaml" > "$WORK/log" 2>&1 || { cat "$WORK/log" >&2; exit 1; }
    "$PY" - "$WORK/run_$est/metrics.jsonl" "$est" "$r" <<'PYEOF' | tee -a "$OUT"
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1])]
fit = next(r["fit_seconds"] for r in rows if r.get("split") == "train")
acc = next(r["accuracy"] for r in rows if r.get("split") == "test")
print(json.dumps({"estimator": sys.argv[2], "peer": "lockstep", "ranks": 2, "fit_seconds": fit, "accuracy": acc, "round": int(sys.argv[3])}))
PYEOF
    OMP_NUM_THREADS=2 OPENBLAS_NUM_THREADS=2 LD_LIBRARY_PATH="$BLAS_DIR" \
      "$PY" bench/sklearn_text.py "$SPAM_DIR" "$est" 0.0001 100 "$WORK/stop.txt" | \
      "$PY" -c 'import json,sys; d=json.loads(sys.stdin.read()); d["round"]=int(sys.argv[1]); print(json.dumps(d))' "$r" | tee -a "$OUT"
  done
done
"$PY" - "$OUT" <<'PYEOF'
import json, statistics, sys
rows = [json.loads(l) for l in open(sys.argv[1])]
print("\n%-9s %12s %12s %8s   %s" % ("estimator", "lockstep s", "sklearn s", "ratio", "test accuracy (lockstep / scikit-learn, medians)"))
for est in dict.fromkeys(r["estimator"] for r in rows):
    a = [r for r in rows if r["estimator"] == est and r["peer"] == "lockstep"]
    b = [r for r in rows if r["estimator"] == est and r["peer"] == "scikit-learn"]
    ta, tb = statistics.median(r["fit_seconds"] for r in a), statistics.median(r["fit_seconds"] for r in b)
    qa, qb = statistics.median(r["accuracy"] for r in a), statistics.median(r["accuracy"] for r in b)
    print("%-9s %12.3f %12.3f %7.2fx   %.4f / %.4f (%+.2f points)" % (est, ta, tb, tb / ta, qa, qb, 100 * (qa - qb)))
print("raw:", sys.argv[1])
PYEOF
