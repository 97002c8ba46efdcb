#!/usr/bin/env bash
# Sets everything up (scripts/setup.sh) and runs the demo: Fashion-MNIST, MLP, 2 ranks.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
source scripts/mpi_env.sh
mpirun -np 2 build/bin/lockstep train configs/fmnist_mlp.yaml "$@"
