#!/usr/bin/env bash
# The transfer-learning example of docs/transfer.md, end to end at np 2 (NP to change it):
# pretrain a CNN on Fashion-MNIST classes 0-4, then learn classes 5-9 from 1% of their training
# labels three ways, and print the three test accuracies (all 5,000 test images of classes 5-9).
#   scripts/transfer_example.sh            (from the repository root, after building)
# Then the ONNX leg: the pretrained network exported, imported again by predict over the PNG folder.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/mpi_env.sh
NP=${NP:-2}
BIN=${BIN:-build/bin/lockstep}
run() { mpirun -np "$NP" "$BIN" "$@"; }
# Each run starts from an empty output folder (train refuses to mix runs, fit keeps one model).
for d in transfer_pretrain transfer_raw_lr transfer_featurizer_lr transfer_finetune transfer_predict_folder; do rm -rf "runs/$d"; done

run train configs/transfer_pretrain.yaml
run fit configs/transfer_raw_lr.yaml
run fit configs/transfer_featurizer_lr.yaml
run train configs/transfer_finetune.yaml

# The ONNX leg: export the pretrained network, import it again through predict over the PNG folder
# (when runs/fmnist_folder/png exists), and compare with predict from the checkpoint itself.
"$BIN" export --checkpoint runs/transfer_pretrain/checkpoint.h5 --output runs/transfer_pretrain/net.onnx
onnx_leg="skipped (no runs/fmnist_folder/png: python3 scripts/make_fmnist_folder.py runs/fmnist_folder --formats png)"
if [ -d runs/fmnist_folder/png ]; then
  for m in net.onnx checkpoint.h5; do
    run predict configs/transfer_predict_folder.yaml --model "runs/transfer_pretrain/$m" --input runs/fmnist_folder/png \
      --output "runs/transfer_pretrain/folder_$m.csv"
  done
  same=differ
  cmp -s runs/transfer_pretrain/folder_net.onnx.csv runs/transfer_pretrain/folder_checkpoint.h5.csv && same=byte-identical
  # Accuracy on the test images of classes 0-4 (origin test/0k/...), what the pretrained network knows.
  acc=$(awk -F, 'NR > 1 && $1 ~ /^test\/0[0-4]\// { split($1, p, "/"); n++; if ($2 == p[2] + 0) c++ }
                 END { if (n) printf "%.4f on %d test images of classes 0-4", c / n, n }' \
          runs/transfer_pretrain/folder_net.onnx.csv)
  onnx_leg="$(tail -1 runs/transfer_predict_folder/predict.jsonl | sed 's/.*"images_per_sec":\([0-9.]*\).*/\1/') images/s; \
accuracy $acc; ONNX and checkpoint predictions $same"
fi

# The test split's accuracy: fit's {"split":"test",...} line, train's last epoch line.
fit_acc() { grep '"split":"test"' "runs/$1/metrics.jsonl" | tail -1 | sed 's/.*"accuracy":\([0-9.e-]*\).*/\1/'; }
train_acc() { tail -1 "runs/$1/metrics.jsonl" | sed 's/.*"test_accuracy":\([0-9.e-]*\).*/\1/'; }
echo
echo "pretrained on classes 0-4:                 test accuracy $(train_acc transfer_pretrain)"
echo "classes 5-9 from 1% of their labels:"
echo "  (a) raw pixels -> LogisticRegression:     test accuracy $(fit_acc transfer_raw_lr)"
echo "  (b) NeuralFeaturizer -> LogisticRegression: test accuracy $(fit_acc transfer_featurizer_lr)"
echo "  (c) frozen convolutions, new dense head:  test accuracy $(train_acc transfer_finetune)"
echo "ONNX export -> import -> predict over the PNG folder: $onnx_leg"
