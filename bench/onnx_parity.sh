#!/usr/bin/env bash
# A PyTorch-trained CNN through ONNX: PyTorch 1.13 trains bench/torch_onnx_cnn.py's network on
# Fashion-MNIST, exports it to ONNX and writes its test-set probabilities; `lockstep predict
# --model net.onnx` scores the same test images at np 1, 2 and 3; the script reports the largest
# probability difference against PyTorch, the predictions that differ, and whether lockstep's three
# outputs are byte-identical.
#
# Usage:  bench/onnx_parity.sh [OUTDIR]     (default /tmp/lockstep_onnx_parity; PyTorch trains only
#         when OUTDIR lacks torch_cnn.onnx). Results: bench/results/onnx_parity_<UTC date-time>.md
# Environment: EPOCHS=2 (PyTorch training epochs), LOCKSTEP=build/bin/lockstep
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
OUT="${1:-/tmp/lockstep_onnx_parity}"
EPOCHS="${EPOCHS:-2}"
LOCKSTEP="${LOCKSTEP:-build/bin/lockstep}"
source scripts/mpi_env.sh
mkdir -p "$OUT"
export LD_LIBRARY_PATH=/usr/lib/x86_64-linux-gnu/openblas-pthread OMP_WAIT_POLICY=passive
if [[ ! -s "$OUT/torch_cnn.onnx" || ! -s "$OUT/torch_probs.csv" ]]; then
  /usr/bin/python3 bench/torch_onnx_cnn.py "$OUT" --epochs "$EPOCHS" | tee "$OUT/torch.log"
fi
unset LD_LIBRARY_PATH
cat > "$OUT/predict.yaml" <<YAML
# Decoding for bench/onnx_parity.sh: Fashion-MNIST IDX test images as {1, 28, 28}, pixels / 255.
data:
  format: idx
  test:
    features: /usr/share/datasets/fashion-mnist/t10k-images-idx3-ubyte.gz
    labels: /usr/share/datasets/fashion-mnist/t10k-labels-idx1-ubyte.gz
  scale: 0.00392156862745098
output: {dir: $OUT/run}
YAML
for np in 1 2 3; do
  mpirun -np "$np" --oversubscribe "$LOCKSTEP" predict "$OUT/predict.yaml" --model "$OUT/torch_cnn.onnx" \
    --input /usr/share/datasets/fashion-mnist/t10k-images-idx3-ubyte.gz --output "$OUT/lockstep_np$np.csv"
done
identical="lockstep predictions: NOT byte-identical at np 1, 2 and 3"
cmp -s "$OUT/lockstep_np1.csv" "$OUT/lockstep_np2.csv" && cmp -s "$OUT/lockstep_np1.csv" "$OUT/lockstep_np3.csv" &&
  identical="lockstep predictions: byte-identical at np 1, 2 and 3"
echo "$identical"
mkdir -p bench/results
RESULT="bench/results/onnx_parity_$(date -u +%Y%m%dT%H%M%SZ).md"
{
  echo "# bench/onnx_parity.sh, $(date -u +%Y-%m-%dT%H:%MZ)"
  echo "CPU: $(lscpu | sed -n 's/^Model name: *//p'); PyTorch $(/usr/bin/python3 -c 'import torch; print(torch.__version__)'); $("$LOCKSTEP" info 2>/dev/null | grep -i onnx | head -1)"
  grep "pytorch test accuracy" "$OUT/torch.log" 2>/dev/null || true
} > "$RESULT"
/usr/bin/python3 - "$OUT/torch_probs.csv" "$OUT/lockstep_np2.csv" <<'PY' | tee -a "$RESULT"
import csv, sys
def probs(path):
    with open(path) as f:
        r = csv.DictReader(f)
        cols = [c for c in r.fieldnames if c.startswith("probability_")]
        return [[float(row[c]) for c in cols] for row in r]
t, l = probs(sys.argv[1]), probs(sys.argv[2])
assert len(t) == len(l), (len(t), len(l))
diff = max(abs(a - b) for pt, pl in zip(t, l) for a, b in zip(pt, pl))
argmax = lambda p: max(range(len(p)), key=p.__getitem__)
differ = sum(argmax(pt) != argmax(pl) for pt, pl in zip(t, l))
print(f"rows {len(t)}  max |p_lockstep - p_pytorch| = {diff:.3g}  predictions that differ: {differ}")
sys.exit(0 if diff < 1e-5 else 1)
PY
echo "$identical" >> "$RESULT"
echo "results: $RESULT"
