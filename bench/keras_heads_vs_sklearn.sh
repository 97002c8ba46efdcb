#!/usr/bin/env bash
# The two Keras heads against scikit-learn on the same data and split:
#   configs/keras_regression.yaml (lockstep, np=2, SEEDS seeds) vs MLPRegressor of the same shape,
#     optimiser and epochs (SEEDS seeds): median test R^2 of each and their difference;
#   configs/keras_binary.yaml (lockstep, np=2, SEEDS seeds) vs LogisticRegression: median test
#     accuracy and ROC AUC, and the difference in points.
# Accuracy, not speed: the machine's noise does not enter. Raw lines go to bench/results/.
# Environment: SEEDS=5, EPOCHS (regression; default: the config's).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
SEEDS="${SEEDS:-5}"
EPOCHS="${EPOCHS:-$(sed -n 's/^  epochs: \([0-9]*\).*/\1/p' configs/keras_regression.yaml)}"
[[ -x build/bin/lockstep ]] || { echo "error: build/bin/lockstep is missing (scripts/setup.sh)" >&2; exit 1; }
source scripts/mpi_env.sh
mkdir -p bench/results
OUT="bench/results/keras_heads_$(date -u +%Y%m%dT%H%M%SZ).jsonl"
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT
last() { tail -1 "$1/metrics.jsonl"; }
for seed in $(seq 1 "$SEEDS"); do
  mpirun -np 2 build/bin/lockstep train configs/keras_regression.yaml --set "training.seed=$seed" \
    --set "training.epochs=$EPOCHS" --set "output.dir=$WORK/reg$seed" --set output.progress=none >/dev/null
  last "$WORK/reg$seed" | sed "s/^{/{\"side\":\"lockstep\",\"seed\":$seed,/" >>"$OUT"
  mpirun -np 2 build/bin/lockstep train configs/keras_binary.yaml --set "training.seed=$seed" \
    --set "output.dir=$WORK/bin$seed" --set output.progress=none >/dev/null
  last "$WORK/bin$seed" | sed "s/^{/{\"side\":\"lockstep\",\"seed\":$seed,/" >>"$OUT"
done
OMP_NUM_THREADS=2 /usr/bin/python3 bench/keras_heads_vs_sklearn.py "$EPOCHS" "$SEEDS" >>"$OUT"
/usr/bin/python3 - "$OUT" "$EPOCHS" <<'PY'
import json, statistics, sys
rows = [json.loads(l) for l in open(sys.argv[1])]
def med(side, task, key):
    return statistics.median(r[key] for r in rows if r["side"] == side and r["task"] == task)
ls_r2, sk_r2 = med("lockstep", "regression", "test_r2"), med("sklearn", "regression", "test_r2")
print(f"regression ({sys.argv[2]} epochs): test R^2 lockstep {ls_r2:.4f}, MLPRegressor {sk_r2:.4f}, "
      f"difference {ls_r2 - sk_r2:+.4f}")
ls_acc, sk_acc = med("lockstep", "binary", "test_accuracy"), med("sklearn", "binary", "test_accuracy")
print(f"binary: test accuracy lockstep {100 * ls_acc:.2f}%, LogisticRegression {100 * sk_acc:.2f}% "
      f"({100 * (ls_acc - sk_acc):+.2f} points); ROC AUC {med('lockstep', 'binary', 'test_auc'):.4f} vs "
      f"{med('sklearn', 'binary', 'test_auc'):.4f}")
print(f"raw lines: {sys.argv[1]}")
PY
