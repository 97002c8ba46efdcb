#!/usr/bin/env bash
# Side-by-side ML benchmark: lockstep (mpirun -np 2 build/bench/ml_fit) against scikit-learn
# (2 threads, OpenBLAS pinned and its kernel forced as ../shared/PEERS.md says) on Fashion-MNIST
# and a synthetic regression set (1M x 100), with equivalent parameters (docs/ml.md):
#   logistic  LogisticRegression maxIter 45, regParam 1e-3, standardization false   | C = 1/(n 1e-3), max_iter 100
#   svc       LinearSVC (hinge) maxIter 40, regParam 1e-3, standardization false     | C = 1/(n 1e-3), max_iter 1000
#             (solver auto: dual-cd, 4 blocks; 40 rounds)
#   (both sides also print "objective", lockstep's objective at their solution: at these budgets
#   lockstep's is the lower; LOGISTIC_MAXITER, SVC_MAXITER change lockstep's budget)
#   forest    RandomForestClassifier numTrees 20, maxDepth 10                        | n_estimators 20, max_depth 10
#   kmeans    KMeans k 10, maxIter 300, tol 1e-4 tolMode relative, one k-means|| init | n_init 1, max_iter 300, tol 1e-4 (the same rule)
#   pca       PCA k 50                                                               | PCA(50) (its automatic solver)
#   linear    LinearRegression, normal equations                                     | LinearRegression
# The two sides alternate within each round; medians per side and the ratio
# (scikit-learn seconds / lockstep seconds) are printed. Raw lines go to bench/results/.
# Environment: ROUNDS=3, ESTIMATORS="logistic svc forest kmeans pca linear".
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
ROUNDS="${ROUNDS:-3}"
ESTIMATORS="${ESTIMATORS:-logistic svc forest kmeans pca linear}"
PY=/usr/bin/python3
BLAS_DIR=/usr/lib/x86_64-linux-gnu/openblas-pthread
# ISA=avx2: both sides on AVX2 only, as on an AVX2 node: lockstep from an -DLOCKSTEP_ARCH=x86-64-v3
# build (ML_FIT, default build-avx2/bench/ml_fit), scikit-learn with OpenBLAS's Haswell kernels.
ISA="${ISA:-native}"
if [[ "$ISA" == "avx2" ]]; then ML_FIT="${ML_FIT:-build-avx2/bench/ml_fit}"; fi
ML_FIT="${ML_FIT:-build/bench/ml_fit}"
[[ -x "$ML_FIT" ]] || { echo "error: $ML_FIT is missing (cmake --build build)" >&2; exit 1; }
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
CORETYPE=""
detected=$(LD_LIBRARY_PATH="$BLAS_DIR" OPENBLAS_VERBOSE=2 "$PY" -c 'import numpy as np; a = np.ones((64, 64)); print((a @ a).sum())' 2>&1 | sed -n 's/^Core: //p' | head -1)
if [[ "$detected" == "Prescott" ]]; then
  grep -qw avx512f /proc/cpuinfo && CORETYPE=SkylakeX || { grep -qw avx2 /proc/cpuinfo && CORETYPE=Haswell; }
fi
[[ "$ISA" != "avx2" ]] || CORETYPE=Haswell
echo "OpenBLAS picks '${detected:-unknown}'; scikit-learn runs with OPENBLAS_CORETYPE='$CORETYPE'; lockstep runs $ML_FIT"
mkdir -p bench/results
OUT="bench/results/ml_$(date -u +%Y%m%dT%H%M%SZ).jsonl"
: > "$OUT"
# ml_fit's arguments: the registry's stage name, then its parameters as in a pipeline YAML.
declare -A LS_ARGS=(
  [logistic]="LogisticRegression regParam=0.001 standardization=false maxIter=${LOGISTIC_MAXITER:-45}"
  [svc]="LinearSVC regParam=0.001 standardization=false maxIter=${SVC_MAXITER:-40}"
  [forest]="RandomForestClassifier numTrees=20 maxDepth=10 seed=1"
  [kmeans]="KMeans k=10 maxIter=300 tol=1e-4 tolMode=relative seed=1"
  [pca]="PCA k=50"
  [linear]="LinearRegression rows=1000000 features=100"
)
for r in $(seq 1 "$ROUNDS"); do
  for est in $ESTIMATORS; do
    mpirun -np 2 "$ML_FIT" ${LS_ARGS[$est]} 2>/dev/null | grep '^{' | \
      "$PY" -c 'import json,sys; d=json.loads(sys.stdin.read()); d["stage"]=d["estimator"]; d["estimator"]=sys.argv[2]; d["peer"]="lockstep"; d["round"]=int(sys.argv[1]); print(json.dumps(d))' "$r" "$est" | tee -a "$OUT"
    OMP_NUM_THREADS=2 OPENBLAS_NUM_THREADS=2 LD_LIBRARY_PATH="$BLAS_DIR" OPENBLAS_CORETYPE="$CORETYPE" \
      "$PY" bench/sklearn_fit.py "$est" | \
      "$PY" -c 'import json,sys; d=json.loads(sys.stdin.read()); d["round"]=int(sys.argv[1]); print(json.dumps(d))' "$r" | tee -a "$OUT"
  done
done
"$PY" - "$OUT" <<'PYEOF'
import json, statistics, sys
rows = [json.loads(l) for l in open(sys.argv[1])]
print("\n%-9s %12s %12s %8s   %s" % ("estimator", "lockstep s", "sklearn s", "ratio", "quality (lockstep / scikit-learn, medians)"))
for est in dict.fromkeys(r["estimator"] for r in rows):
    a = [r for r in rows if r["estimator"] == est and r["peer"] == "lockstep"]
    b = [r for r in rows if r["estimator"] == est and r["peer"] == "scikit-learn"]
    key = next(k for k in ("accuracy", "cost", "explained_variance_ratio", "train_rmse") if k in a[0])
    ta, tb = statistics.median(r["fit_seconds"] for r in a), statistics.median(r["fit_seconds"] for r in b)
    qa, qb = statistics.median(r[key] for r in a), statistics.median(r[key] for r in b)
    print("%-9s %12.3f %12.3f %7.2fx   %s %.4f / %.4f" % (est, ta, tb, tb / ta, key, qa, qb))
print("raw:", sys.argv[1])
PYEOF
