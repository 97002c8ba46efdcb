#!/usr/bin/env bash
# The transfer-learning example of docs/transfer.md, end to end at np 2 (NP to change it):
# pretrain a CNN on Fashion-MNIST classes 0-4, then learn classes 5-9 from 1% of their training
# labels three ways, and print the three test accuracies (all 5,000 test images of classes 5-9).
#   scripts/transfer_example.sh            (from the repository root, after building)
# Way (c) needs model.init_from/replace_from/base_trainable (the transfer-learning keys); without
# them it is reported as not run.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/mpi_env.sh
NP=${NP:-2}
BIN=${BIN:-build/bin/lockstep}
run() { mpirun -np "$NP" "$BIN" "$@"; }
# Each run starts from an empty output folder (train refuses to mix runs, fit keeps one model).
for d in transfer_pretrain transfer_raw_lr transfer_featurizer_lr transfer_finetune; do rm -rf "runs/$d"; done

run train configs/transfer_pretrain.yaml
run fit configs/transfer_raw_lr.yaml
run fit configs/transfer_featurizer_lr.yaml
finetune=ok
run train configs/transfer_finetune.yaml || finetune=failed

# The test split's accuracy: fit's {"split":"test",...} line, train's last epoch line.
fit_acc() { grep '"split":"test"' "runs/$1/metrics.jsonl" | tail -1 | sed 's/.*"accuracy":\([0-9.e-]*\).*/\1/'; }
train_acc() { tail -1 "runs/$1/metrics.jsonl" | sed 's/.*"test_accuracy":\([0-9.e-]*\).*/\1/'; }
echo
echo "pretrained on classes 0-4:                 test accuracy $(train_acc transfer_pretrain)"
echo "classes 5-9 from 1% of their labels:"
echo "  (a) raw pixels -> LogisticRegression:     test accuracy $(fit_acc transfer_raw_lr)"
echo "  (b) NeuralFeaturizer -> LogisticRegression: test accuracy $(fit_acc transfer_featurizer_lr)"
if [ "$finetune" = ok ]; then
  echo "  (c) fine-tuned head, frozen base:         test accuracy $(train_acc transfer_finetune)"
else
  echo "  (c) fine-tuned head, frozen base:         not run (lockstep train configs/transfer_finetune.yaml failed)"
fi
