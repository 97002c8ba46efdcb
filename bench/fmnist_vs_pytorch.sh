#!/usr/bin/env bash
# Side-by-side Fashion-MNIST MLP benchmark: lockstep (mpirun -np 2) vs PyTorch
# (threads1, threads2 with OMP_WAIT_POLICY=passive, ddp2 gloo), per /work/shared/PEERS.md.
#
# Runs alternate within each round (lockstep, threads1, threads2, ddp2, lockstep, ...),
# then prints the median samples/s and test accuracy per setting, and the ratio
# lockstep / best-PyTorch-setting (by median samples/s).
#
# Environment:
#   ROUNDS=3          rounds of the A B C D cycle
#   EPOCHS=1          epochs for both sides
#   LOCKSTEP_EXTRA=   extra arguments for lockstep, e.g. "--set training.lr=0.05"
#   PYTORCH_ONLY=0    1 = skip lockstep entirely (no ratio); for checking the PyTorch side
#   TORCH_EXTRA=      extra arguments for bench/torch_mlp.py (e.g. "--batch 128")
#
#   PEER_OPENBLAS_CORETYPE=auto  OpenBLAS kernel for PyTorch (see below); "" leaves OpenBLAS alone
#   NOISE=0           1 = one competing busy process (a shell loop, nice 0, not pinned) runs on the
#                     node during every run of both sides: the noisy-node comparison
#   ISA=native        avx2 = both sides on AVX2 only, as on an AVX2 node: lockstep from an
#                     -DLOCKSTEP_ARCH=x86-64-v3 build (LOCKSTEP_BIN, default build-avx2/bin/lockstep),
#                     PyTorch with ATEN_CPU_CAPABILITY=avx2 and OpenBLAS's Haswell kernels
#   LOCKSTEP_BIN=build/bin/lockstep
#   BIND=core         mpirun --bind-to for lockstep (none lets the kernel move ranks off a busy core)
#
# PyTorch runs use --seed <round>, so its accuracy median spans several initialisations.
#
# OpenBLAS 0.3.21 (Debian 12) does not recognise recent Xeons and falls back to its generic
# "Prescott" SSE3 kernels, which run sgemm about 5x slower than its AVX-512 ones on these
# machines. Running the peer at its best means forcing the right kernel: with "auto", a CPU with
# avx512f gets OPENBLAS_CORETYPE=SkylakeX and one with avx2 gets Haswell, but only when OpenBLAS's
# own choice is Prescott. (Checked: SkylakeX results match Eigen's to float rounding.)
# Raw JSON lines (one per run, both peers) go to bench/results/fmnist_<UTC date-time>.jsonl.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"

ROUNDS="${ROUNDS:-3}"
EPOCHS="${EPOCHS:-1}"
LOCKSTEP_EXTRA="${LOCKSTEP_EXTRA:-}"
TORCH_EXTRA="${TORCH_EXTRA:-}"
PYTORCH_ONLY="${PYTORCH_ONLY:-0}"
PY=/usr/bin/python3
BLAS_DIR=/usr/lib/x86_64-linux-gnu/openblas-pthread
NOISE="${NOISE:-0}"
BIND="${BIND:-core}"  # mpirun --bind-to for lockstep: core (Open MPI's default at np <= 2) or none
ISA="${ISA:-native}"
if [[ "$ISA" == "avx2" ]]; then
  LOCKSTEP_BIN="${LOCKSTEP_BIN:-build-avx2/bin/lockstep}"
  PEER_OPENBLAS_CORETYPE="${PEER_OPENBLAS_CORETYPE:-Haswell}"
  export ATEN_CPU_CAPABILITY=avx2
elif [[ "$ISA" != "native" ]]; then
  echo "error: ISA=$ISA: expected native or avx2" >&2; exit 1
fi
LOCKSTEP_BIN="${LOCKSTEP_BIN:-build/bin/lockstep}"
LOCKSTEP_CFG="configs/fmnist_mlp.yaml"
# The peer's training recipe (bench/torch_mlp.py defaults): plain SGD, lr 0.05, momentum 0.9,
# constant learning rate, global batch 64. The demo config's Nesterov and cosine schedule are
# switched off so both sides run the same optimizer.
SAME_AS_PEER="--set optimizer.lr=0.05 --set optimizer.momentum=0.9 --set optimizer.nesterov=false --set schedule.type=constant --set schedule.warmup_steps=0 --set training.batch_size=64 --set output.progress=none"

if [[ "$PYTORCH_ONLY" != "1" ]]; then
  if [[ ! -x "$LOCKSTEP_BIN" ]]; then
    echo "error: $LOCKSTEP_BIN is missing (build it first: cmake --build build), or set PYTORCH_ONLY=1" >&2
    exit 1
  fi
  if [[ ! -f "$LOCKSTEP_CFG" ]]; then
    echo "error: $LOCKSTEP_CFG is missing" >&2
    exit 1
  fi
  command -v mpirun >/dev/null || { echo "error: mpirun not found" >&2; exit 1; }
fi
[[ -x "$PY" ]] || { echo "error: $PY not found" >&2; exit 1; }
[[ -d "$BLAS_DIR" ]] || echo "warning: $BLAS_DIR missing (install libopenblas0-pthread); PyTorch will be slow" >&2

PEER_OPENBLAS_CORETYPE="${PEER_OPENBLAS_CORETYPE-auto}"
if [[ "$PEER_OPENBLAS_CORETYPE" == "auto" ]]; then
  PEER_OPENBLAS_CORETYPE=""
  detected=$(LD_LIBRARY_PATH="$BLAS_DIR" OPENBLAS_VERBOSE=2 "$PY" -c \
    'import torch; a = torch.ones(64, 64); print((a @ a).sum().item())' 2>&1 | sed -n 's/^Core: //p' | head -1)
  if [[ "$detected" == "Prescott" ]]; then
    if grep -qw avx512f /proc/cpuinfo; then PEER_OPENBLAS_CORETYPE=SkylakeX;
    elif grep -qw avx2 /proc/cpuinfo; then PEER_OPENBLAS_CORETYPE=Haswell; fi
  fi
  echo "OpenBLAS picks core '${detected:-unknown}' on its own; peer runs with OPENBLAS_CORETYPE='${PEER_OPENBLAS_CORETYPE}'"
fi

TMP="$(mktemp -d "${TMPDIR:-/tmp}/fmnist_bench.XXXXXX")"
BUSY_PID=""
stop_noise() { [[ -z "$BUSY_PID" ]] || { kill "$BUSY_PID" 2>/dev/null; wait "$BUSY_PID" 2>/dev/null || true; BUSY_PID=""; }; }
start_noise() { [[ "$NOISE" == "1" ]] || return 0; bash -c 'while :; do :; done' & BUSY_PID=$!; sleep 0.2; }
trap 'stop_noise; rm -rf "$TMP"' EXIT
mkdir -p bench/results
OUT="bench/results/fmnist_$(date -u +%Y%m%dT%H%M%SZ).jsonl"
: > "$OUT"

# Appends one JSON line (from stdin) to $OUT with "round" added; echoes a short summary.
record() {  # record ROUND
  "$PY" -c '
import json, sys
rnd = int(sys.argv[1]); out = sys.argv[2]
lines = [l for l in sys.stdin.read().splitlines() if l.strip().startswith("{")]
if not lines:
    sys.exit("no JSON line produced")
d = json.loads(lines[-1]); d["round"] = rnd; d["noise"] = int(sys.argv[3]); d["isa"] = sys.argv[4]
with open(out, "a") as f:
    f.write(json.dumps(d) + "\n")
print("  %-9s %-9s %10.1f samples/s  acc %.4f" % (d["peer"], d["mode"], d["samples_per_sec"], d["test_accuracy"]))
' "$1" "$OUT" "$NOISE" "$ISA"
}

run_lockstep() {  # run_lockstep ROUND
  local i="$1" dir="$TMP/ls_run_$1"
  start_noise
  # shellcheck disable=SC2086  # LOCKSTEP_EXTRA is intentionally word-split
  if ! OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 \
       mpirun -np 2 --oversubscribe --bind-to "$BIND" "$LOCKSTEP_BIN" train "$LOCKSTEP_CFG" \
       --set training.epochs="$EPOCHS" --set output.dir="$dir" $SAME_AS_PEER $LOCKSTEP_EXTRA \
       > "$TMP/ls_$i.log" 2>&1; then
    echo "error: lockstep run $i failed; log:" >&2; tail -n 30 "$TMP/ls_$i.log" >&2; exit 1
  fi
  stop_noise
  [[ -s "$dir/metrics.jsonl" ]] || { echo "error: $dir/metrics.jsonl not written" >&2; exit 1; }
  # Summarise the per-epoch lines: samples_per_sec = harmonic mean over epochs
  # (= total samples / total time for equal-size epochs); accuracy = last epoch's.
  "$PY" -c '
import json, sys
eps = [json.loads(l) for l in open(sys.argv[1]) if l.strip().startswith("{")]
eps = [e for e in eps if "samples_per_sec" in e and "test_accuracy" in e]
if not eps:
    sys.exit("metrics.jsonl has no line with samples_per_sec and test_accuracy")
sps = [float(e["samples_per_sec"]) for e in eps]
print(json.dumps({"peer": "lockstep", "mode": "mpi2", "ranks": 2,
                  "samples_per_sec": len(sps) / sum(1.0 / s for s in sps),
                  "test_accuracy": float(eps[-1]["test_accuracy"]),
                  "epochs": len(eps), "extra": sys.argv[2], "per_epoch": eps}))
' "$dir/metrics.jsonl" "$LOCKSTEP_EXTRA" | record "$i"
}

run_torch() {  # run_torch ROUND MODE
  local i="$1" mode="$2" args
  local -a envs=(LD_LIBRARY_PATH="$BLAS_DIR")
  [[ -z "$PEER_OPENBLAS_CORETYPE" ]] || envs+=(OPENBLAS_CORETYPE="$PEER_OPENBLAS_CORETYPE")
  case "$mode" in
    threads1) args="--threads 1" ;;
    threads2) args="--threads 2"; envs+=(OMP_WAIT_POLICY=passive) ;;
    ddp2)     args="--ddp 2" ;;
  esac
  start_noise
  # shellcheck disable=SC2086
  if ! env "${envs[@]}" "$PY" bench/torch_mlp.py $args --epochs "$EPOCHS" --seed "$i" $TORCH_EXTRA \
       > "$TMP/pt_${mode}_$i.out" 2> "$TMP/pt_${mode}_$i.err"; then
    echo "error: pytorch $mode run $i failed:" >&2; tail -n 30 "$TMP/pt_${mode}_$i.err" >&2; exit 1
  fi
  stop_noise
  record "$i" < "$TMP/pt_${mode}_$i.out"
}

echo "fmnist_vs_pytorch: ROUNDS=$ROUNDS EPOCHS=$EPOCHS NOISE=$NOISE ISA=$ISA LOCKSTEP_BIN=$LOCKSTEP_BIN LOCKSTEP_EXTRA='$LOCKSTEP_EXTRA' -> $OUT"
for ((i = 1; i <= ROUNDS; i++)); do
  echo "round $i/$ROUNDS"
  [[ "$PYTORCH_ONLY" == "1" ]] || run_lockstep "$i"
  for m in threads1 threads2 ddp2; do run_torch "$i" "$m"; done
done

"$PY" -c '
import json, statistics, sys
rows = [json.loads(l) for l in open(sys.argv[1])]
groups = {}
for r in rows:
    groups.setdefault((r["peer"], r["mode"]), []).append(r)
med = {k: (statistics.median(r["samples_per_sec"] for r in v),
           statistics.median(r["test_accuracy"] for r in v), len(v)) for k, v in groups.items()}
print()
print("%-9s %-9s %4s %14s %10s" % ("peer", "mode", "runs", "samples/s(med)", "acc(med)"))
for (p, m), (s, a, n) in med.items():
    print("%-9s %-9s %4d %14.1f %10.4f" % (p, m, n, s, a))
pt = {k: v for k, v in med.items() if k[0] == "pytorch"}
best = max(pt, key=lambda k: pt[k][0])
print("pytorch best setting: %s (%.1f samples/s median)" % (best[1], pt[best][0]))
ls = med.get(("lockstep", "mpi2"))
if ls:
    print("ratio lockstep / pytorch-best (samples/s medians): %.3f" % (ls[0] / pt[best][0]))
print("raw results: %s" % sys.argv[1])
' "$OUT"
