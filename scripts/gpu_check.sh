#!/usr/bin/env bash
# The first thing to run on a GPU machine (docs/running.md "GPUs"): the CUDA tests at one rank and
# at one rank per GPU, then short training runs on the GPU (MLP fp32 and bf16, batch 64 and 1024;
# the CNN on cuDNN, twice in deterministic mode, which must repeat bit for bit), the same MLP on
# the CPU, and PyTorch's MLP on the GPU beside it when python3 has torch with CUDA.
# Usage: scripts/gpu_check.sh [BUILD_DIR] [OUT_DIR]; DATA=<folder with Fashion-MNIST's IDX files>.
set -uo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
B="$(cd "${1:-$ROOT/build}" && pwd)"; OUTD="${2:-$ROOT/runs/gpu_check}"; mkdir -p "$OUTD"
DATA="${DATA:-/usr/share/datasets/fashion-mnist}"
MPIRUN="${MPIRUN:-mpirun}"
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
cd "$ROOT"
L="$B/bin/lockstep"; T="$B/tests/cuda"
fails=0
run() {
  echo; echo "== $*"; local t0; t0=$(date +%s.%N)
  timeout 300 "$@"; local rc=$?
  echo "-- rc=$rc ($(awk -v a="$t0" -v b="$(date +%s.%N)" 'BEGIN{printf "%.1f", b-a}') s)"
  [[ $rc == 0 ]] || fails=$((fails + 1))
}
gpus=$(nvidia-smi -L 2>/dev/null | grep -c '^GPU') || gpus=0
echo "GPUs: $gpus"; nvidia-smi -L 2>/dev/null
[[ $gpus -gt 0 ]] || { echo "no GPU here: nothing to check" >&2; exit 1; }
run "$MPIRUN" -np 1 "$L" info
for t in test_cuda test_nccl test_cuda_train; do run "$MPIRUN" -np 1 "$T/$t"; done
if [[ $gpus -gt 1 ]]; then
  for t in test_nccl test_cuda_train; do run "$MPIRUN" -np "$gpus" "$T/$t"; done
fi
# The configs with their data paths pointed at $DATA.
for c in fmnist_mlp fmnist_cnn; do
  sed "s#/usr/share/datasets/fashion-mnist/#$DATA/#" "configs/$c.yaml" >"$OUTD/$c.yaml"
done
S=(--set output.progress=lines --set checkpoint.every_steps=0)
M=(train "$OUTD/fmnist_mlp.yaml" --set training.epochs=3 "${S[@]}")
C=(train "$OUTD/fmnist_cnn.yaml" --set training.epochs=2 --set training.device=cuda "${S[@]}")
run "$MPIRUN" -np 1 "$L" "${M[@]}" --set training.device=cuda --set output.dir="$OUTD/mlp_cuda"
run "$MPIRUN" -np 1 "$L" "${M[@]}" --set training.device=cuda --set training.precision=bf16 --set output.dir="$OUTD/mlp_bf16"
run "$MPIRUN" -np 1 "$L" "${M[@]}" --set training.device=cuda --set training.batch_size=1024 --set optimizer.lr=0.1 --set output.dir="$OUTD/mlp_cuda_b1024"
run "$MPIRUN" -np "$gpus" "$L" "${M[@]}" --set training.device=cuda --set output.dir="$OUTD/mlp_cuda_np$gpus"
run "$MPIRUN" -np 1 "$L" "${M[@]}" --set output.dir="$OUTD/mlp_cpu"
run "$MPIRUN" -np 1 "$L" "${C[@]}" --set output.dir="$OUTD/cnn_cuda"
run "$MPIRUN" -np 1 "$L" "${C[@]}" --set training.deterministic=true --set output.dir="$OUTD/cnn_det1"
run "$MPIRUN" -np 1 "$L" "${C[@]}" --set training.deterministic=true --set output.dir="$OUTD/cnn_det2"
if cmp -s <(grep -o '"train_loss":[^,]*' "$OUTD/cnn_det1/metrics.jsonl") <(grep -o '"train_loss":[^,]*' "$OUTD/cnn_det2/metrics.jsonl"); then
  echo "deterministic CNN on the GPU: the two runs' losses are identical"
else
  echo "deterministic CNN on the GPU: the two runs differ"; fails=$((fails + 1))
fi
if python3 -c 'import torch, sys; sys.exit(0 if torch.cuda.is_available() else 1)' 2>/dev/null; then
  run python3 bench/torch_mlp_gpu.py 64 "$DATA"
  run python3 bench/torch_mlp_gpu.py 1024 "$DATA"
fi
echo; echo "last epoch of each run (samples/s, test accuracy):"
for m in "$OUTD"/*/metrics.jsonl; do
  python3 -c 'import json,sys; d=[json.loads(l) for l in open(sys.argv[1])][-1]; print("%-16s %10.0f samples/s  acc %.4f" % (sys.argv[2], d["samples_per_sec"], d["test_accuracy"]))' "$m" "$(basename "$(dirname "$m")")"
done
echo "$fails failed"
[[ $fails == 0 ]]
