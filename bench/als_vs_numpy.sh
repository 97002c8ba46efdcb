#!/usr/bin/env bash
# ALS side by side: lockstep's ALS (`lockstep fit configs/insteval_als.yaml`: Spark's defaults,
# rank 10, maxIter 10, regParam 0.1, explicit, seed 0, coldStartStrategy drop) at np 1 and 2
# against bench/als_numpy.py (the same formulation, starting factors and summation order, NumPy
# with OpenBLAS pinned as ../shared/PEERS.md says) on InstEval's fixed train/test split
# (scripts/fetch_ratings.sh, cached in $RATINGS, default ~/.cache/lockstep/ratings).
# Each round runs numpy, lockstep np 1, lockstep np 2 in turn; per side the median fit seconds
# (lockstep: metrics.jsonl's fit_seconds; numpy: the fit loop, both without reading the CSV), the
# test RMSE, its relative difference from NumPy's (issue 13: within 1%) and the speed ratio
# (numpy seconds / lockstep seconds) are printed. Raw lines go to bench/results/als_<time>.txt.
# Environment: ROUNDS=3, RATINGS=DIR, LOCKSTEP=build/bin/lockstep; ISA=avx2: both sides on AVX2
# only (lockstep from an -DLOCKSTEP_ARCH=x86-64-v3 build, default build-avx2/bin/lockstep; NumPy
# with OPENBLAS_CORETYPE=Haswell).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
ROUNDS="${ROUNDS:-3}"
RATINGS="${RATINGS:-$HOME/.cache/lockstep/ratings}"
ISA="${ISA:-native}"
if [[ "$ISA" == "avx2" ]]; then LOCKSTEP="${LOCKSTEP:-build-avx2/bin/lockstep}"; export OPENBLAS_CORETYPE=Haswell; fi
LOCKSTEP="${LOCKSTEP:-build/bin/lockstep}"
PY=/usr/bin/python3
BLAS_DIR=/usr/lib/x86_64-linux-gnu/openblas-pthread
[[ -x "$LOCKSTEP" ]] || { echo "error: $LOCKSTEP is missing (cmake --build build)" >&2; exit 1; }
scripts/fetch_ratings.sh "$RATINGS" >/dev/null
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
mkdir -p bench/results
OUT="bench/results/als_$(date -u +%Y%m%dT%H%M%SZ).txt"
: > "$OUT"
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT

run_numpy() {
  LD_LIBRARY_PATH="$BLAS_DIR" "$PY" bench/als_numpy.py "$RATINGS/ratings_train.csv" "$RATINGS/ratings_test.csv" \
    --rank 10 --max-iter 10 --reg-param 0.1 --seed 0 | tee -a "$OUT"
}
run_lockstep() {  # $1: ranks
  mpirun -np "$1" --oversubscribe "$LOCKSTEP" fit configs/insteval_als.yaml \
    --set "data.train.features=$RATINGS/ratings_train.csv" --set "data.test.features=$RATINGS/ratings_test.csv" \
    --set "output.dir=$WORK/np$1" >/dev/null
  local fit rmse
  fit=$(sed -n 's/.*"split":"train".*"fit_seconds":\([0-9.e+-]*\).*/\1/p' "$WORK/np$1/metrics.jsonl" | tail -1)
  rmse=$(sed -n 's/.*"split":"test".*"rmse":\([0-9.e+-]*\).*/\1/p' "$WORK/np$1/metrics.jsonl" | tail -1)
  echo "lockstep_np$1 fit_s=$fit test_rmse=$rmse" | tee -a "$OUT"
}

echo "# $(date -u) $(lscpu | sed -n 's/^Model name: *//p'); ISA $ISA ($LOCKSTEP); load: $(cut -d' ' -f1-3 /proc/loadavg)" | tee -a "$OUT"
for ((r = 0; r < ROUNDS; r++)); do
  run_numpy
  run_lockstep 1
  run_lockstep 2
done
"$PY" - "$OUT" <<'EOF'
import re, statistics, sys
rows = {}
for line in open(sys.argv[1]):
    m = re.match(r"(\S+) fit_s=(\S+) test_rmse=(\S+)", line)
    if m:
        rows.setdefault(m.group(1), []).append((float(m.group(2)), float(m.group(3))))
ref_s = statistics.median(s for s, _ in rows["numpy_als"])
ref_rmse = rows["numpy_als"][0][1]
print(f"{'side':<14} {'fit_s':>8} {'test_rmse':>10} {'rmse vs numpy':>14} {'numpy_s/side_s':>15}")
for side, v in rows.items():
    s = statistics.median(x for x, _ in v)
    rmse = v[0][1]
    print(f"{side:<14} {s:8.3f} {rmse:10.6f} {100 * (rmse - ref_rmse) / ref_rmse:+13.4f}% {ref_s / s:15.1f}")
EOF
echo "raw: $OUT"
