#!/usr/bin/env bash
# Side-by-side CNN benchmark: lockstep (mpirun -np 2) against PyTorch 1.13 on the same 2 cores, per
# /work/shared/PEERS.md, in one run. Three measurements, each alternating the two sides in every
# round (A B A B ...), medians over the rounds, and the ratio lockstep / PyTorch's best setting:
#
#   train   samples/s training CONFIG for EPOCHS epochs: `lockstep train` (its metrics.jsonl) against
#           bench/torch_cnn.py, which builds the same network from CONFIG's model.layers, with the same
#           optimizer, schedule, batch size and IDX data; PyTorch with 1 thread, 2 threads
#           (OMP_WAIT_POLICY=passive) and DDP over gloo with 2 processes.
#   infer   samples/s of forward passes over the test split at each batch in INFER_BATCHES:
#           `lockstep evaluate` on the checkpoint the round's training wrote (eval.jsonl's
#           samples_per_sec, training.eval_batch = the batch) against torch.no_grad() in the same
#           three settings (ddp2: two processes, half the rows each).
#   decode  images/s per rank reading FOLDER/png/SPLIT once: build/bench/image_folder_decode at np 2
#           against torchvision's ImageFolder + DataLoader(num_workers=2) with ToTensor, both
#           converting to CHANNELS channels.
#
# Usage:  nice -n 19 bench/cnn_vs_pytorch.sh [FOLDER]      (FOLDER default /tmp/fmnist_png; written
#         with scripts/make_fmnist_folder.py FOLDER --formats png when FOLDER/png/SPLIT is missing)
# Environment:
#   ROUNDS=3               rounds
#   EPOCHS=1               training epochs, both sides
#   CONFIG=configs/fmnist_cnn.yaml
#   SETS=                  extra --set overrides for both sides, e.g. "--set data.classes=[0,1]"
#                          (a shorter trial: 2 classes = 12,000 training rows)
#   INFER_BATCHES="64 1000"  inference batches (lockstep's training.eval_batch defaults to 1000)
#   SPLIT=train CHANNELS=1 the image folder split and channels for decode
#   TASKS="train infer decode"
#   PEER_OPENBLAS_CORETYPE=auto  as in fmnist_vs_pytorch.sh: SkylakeX/Haswell when OpenBLAS picks Prescott
# Output: a table on stdout; bench/results/cnn_<UTC date-time>.jsonl (a "meta" line, then one line
# per run) and .md (the table, the CPU, the command).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
set -f  # no globbing: SETS values such as data.classes=[0,1] pass through as written

FOLDER="${1:-/tmp/fmnist_png}"
ROUNDS="${ROUNDS:-3}"
EPOCHS="${EPOCHS:-1}"
CONFIG="${CONFIG:-configs/fmnist_cnn.yaml}"
SETS="${SETS:-}"
INFER_BATCHES="${INFER_BATCHES:-64 1000}"
SPLIT="${SPLIT:-train}"
CHANNELS="${CHANNELS:-1}"
TASKS="${TASKS:-train infer decode}"
PY=/usr/bin/python3
BLAS_DIR=/usr/lib/x86_64-linux-gnu/openblas-pthread
LOCKSTEP_BIN=build/bin/lockstep
DECODE_BIN=build/bench/image_folder_decode
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1

die() { echo "error: $*" >&2; exit 1; }
[[ -x "$LOCKSTEP_BIN" ]] || die "$LOCKSTEP_BIN is missing (build it: cmake --build build --target lockstep_cli)"
[[ " $TASKS " != *" decode "* || -x "$DECODE_BIN" ]] ||
  die "$DECODE_BIN is missing (build it: cmake --build build --target image_folder_decode; needs Google Benchmark's CMake package like the other benches)"
[[ -f "$CONFIG" ]] || die "$CONFIG is missing"
command -v mpirun >/dev/null || die "mpirun not found"
[[ -x "$PY" ]] || die "$PY not found"
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

IMAGES="$FOLDER/png/$SPLIT"
if [[ " $TASKS " == *" decode "* ]]; then
  if [[ ! -d "$IMAGES" ]]; then
    echo "writing the PNG folder: scripts/make_fmnist_folder.py $FOLDER --formats png"
    "$PY" scripts/make_fmnist_folder.py "$FOLDER" --formats png
  fi
  # Both sides read from the page cache: read every file once before the first timed run.
  find "$IMAGES" -type f -print0 | xargs -0 cat > /dev/null
fi

TMP="$(mktemp -d "${TMPDIR:-/tmp}/cnn_bench.XXXXXX")"
trap 'rm -rf "$TMP"' EXIT
mkdir -p bench/results
STAMP="$(date -u +%Y%m%dT%H%M%SZ)"
OUT="bench/results/cnn_$STAMP.jsonl"
MD="bench/results/cnn_$STAMP.md"
CPU="$(lscpu | sed -n 's/^Model name:[[:space:]]*//p' | head -1)"
"$PY" -c 'import json, sys
keys = ["cpu", "cores", "nice", "rounds", "epochs", "config", "sets", "infer_batches", "folder", "channels",
        "command", "utc", "git", "loadavg"]
d = dict(zip(keys, sys.argv[1:])); d["meta"] = True
print(json.dumps(d))' "$CPU" "$(nproc)" "$(nice)" "$ROUNDS" "$EPOCHS" "$CONFIG" "$SETS" "$INFER_BATCHES" "$IMAGES" \
  "$CHANNELS" "ROUNDS=$ROUNDS EPOCHS=$EPOCHS SETS='$SETS' TASKS='$TASKS' INFER_BATCHES='$INFER_BATCHES' SPLIT=$SPLIT CHANNELS=$CHANNELS $0 $FOLDER" "$STAMP" \
  "$(git rev-parse --short HEAD 2>/dev/null || echo unknown)" "$(cut -d' ' -f1-3 /proc/loadavg)" > "$OUT"

# Appends the last JSON line of stdin to $OUT with task, round (and batch) added; prints a summary.
record() {  # record TASK ROUND [BATCH]
  "$PY" -c '
import json, sys
task, rnd, batch, out = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4]
lines = [l for l in sys.stdin.read().splitlines() if l.strip().startswith("{")]
if not lines:
    sys.exit("no JSON line produced")
d = json.loads(lines[-1]); d["task"] = task; d["round"] = rnd
if batch: d["batch"] = int(batch)
d["value"] = d["images_per_sec_per_rank"] if task == "decode" else d["samples_per_sec"]
with open(out, "a") as f:
    f.write(json.dumps(d) + "\n")
extra = "  acc %.4f" % d["test_accuracy"] if "test_accuracy" in d else ""
print("  %-6s %-5s %-9s %-9s %10.1f %s%s" % (task, batch or "", d["peer"], d["mode"], d["value"],
      "images/s per rank" if task == "decode" else "samples/s", extra))
' "$1" "$2" "${3:-}" "$OUT"
}

mpi2() { mpirun -np 2 --oversubscribe --bind-to core "$@"; }

# shellcheck disable=SC2086  # SETS is word-split on purpose
lockstep_train() {  # ROUND -> $TMP/ls_ROUND/checkpoint.h5
  local i="$1" dir="$TMP/ls_$1"
  mpi2 "$LOCKSTEP_BIN" train "$CONFIG" --set training.epochs="$EPOCHS" --set output.dir="$dir" \
    --set output.progress=none $SETS > "$TMP/ls_train_$i.log" 2>&1 ||
    { tail -n 30 "$TMP/ls_train_$i.log" >&2; die "lockstep train, round $i"; }
  "$PY" -c '
import json, sys
eps = [json.loads(l) for l in open(sys.argv[1]) if l.strip().startswith("{")]
sps = [float(e["samples_per_sec"]) for e in eps]
print(json.dumps({"peer": "lockstep", "mode": "mpi2", "ranks": 2, "epochs": len(eps),
                  "samples_per_sec": len(sps) / sum(1.0 / s for s in sps),
                  "test_accuracy": float(eps[-1]["test_accuracy"]), "per_epoch": eps}))
' "$dir/metrics.jsonl" | record train "$i"
}

# shellcheck disable=SC2086
lockstep_infer() {  # ROUND BATCH
  local i="$1" b="$2" dir="$TMP/ls_$1"
  mpi2 "$LOCKSTEP_BIN" evaluate "$CONFIG" --checkpoint "$dir/checkpoint.h5" --set output.dir="$dir/eval_$b" \
    --set training.eval_batch="$b" --set training.epochs="$EPOCHS" $SETS > "$TMP/ls_eval_${i}_$b.log" 2>&1 ||
    { tail -n 30 "$TMP/ls_eval_${i}_$b.log" >&2; die "lockstep evaluate, round $i, batch $b"; }
  "$PY" -c '
import json, sys
d = json.loads(open(sys.argv[1]).read().splitlines()[-1])
d.update(peer="lockstep", mode="mpi2", ranks=2)
print(json.dumps(d))' "$dir/eval_$b/eval.jsonl" | record infer "$i" "$b"
}

lockstep_decode() {  # ROUND
  mpi2 "$DECODE_BIN" "$IMAGES" channels="$CHANNELS" > "$TMP/ls_decode_$1.out" 2>&1 ||
    { tail -n 30 "$TMP/ls_decode_$1.out" >&2; die "lockstep decode, round $1"; }
  record decode "$1" < "$TMP/ls_decode_$1.out"
}

# shellcheck disable=SC2086
torch_run() {  # TASK ROUND MODE [BATCH]
  local task="$1" i="$2" mode="$3" b="${4:-}" log="$TMP/pt_$1_$2_$3_${4:-}"
  local -a envs=(LD_LIBRARY_PATH="$BLAS_DIR") args=(--task "$task")
  [[ -z "$PEER_OPENBLAS_CORETYPE" ]] || envs+=(OPENBLAS_CORETYPE="$PEER_OPENBLAS_CORETYPE")
  case "$mode" in
    threads1) args+=(--threads 1) ;;
    threads2) args+=(--threads 2); envs+=(OMP_WAIT_POLICY=passive) ;;
    ddp2) args+=(--ddp 2) ;;
    workers2) args+=(--workers 2 --folder "$IMAGES" --channels "$CHANNELS") ;;
  esac
  [[ -z "$b" ]] || args+=(--infer-batch "$b")
  env "${envs[@]}" "$PY" bench/torch_cnn.py --config "$CONFIG" --epochs "$EPOCHS" "${args[@]}" \
    $(for s in $SETS; do [[ "$s" == --set ]] || printf -- '--set=%s ' "$s"; done) > "$log.out" 2> "$log.err" ||
    { tail -n 30 "$log.err" >&2; die "pytorch $task $mode, round $i"; }
  record "$task" "$i" "$b" < "$log.out"
}

echo "cnn_vs_pytorch: ROUNDS=$ROUNDS EPOCHS=$EPOCHS CONFIG=$CONFIG SETS='$SETS' on $CPU, nice $(nice) -> $OUT"
for ((i = 1; i <= ROUNDS; i++)); do
  echo "round $i/$ROUNDS"
  if [[ " $TASKS " == *" train "* || " $TASKS " == *" infer "* ]]; then lockstep_train "$i"; fi
  if [[ " $TASKS " == *" train "* ]]; then
    for m in threads1 threads2 ddp2; do torch_run train "$i" "$m"; done
  fi
  if [[ " $TASKS " == *" infer "* ]]; then
    for b in $INFER_BATCHES; do
      lockstep_infer "$i" "$b"
      for m in threads1 threads2 ddp2; do torch_run infer "$i" "$m" "$b"; done
    done
  fi
  if [[ " $TASKS " == *" decode "* ]]; then
    lockstep_decode "$i"
    torch_run decode "$i" workers2
  fi
done

"$PY" - "$OUT" "$MD" <<'EOF'
import json, statistics, sys
rows = [json.loads(l) for l in open(sys.argv[1])]
meta, rows = rows[0], rows[1:]
groups = {}
for r in rows:
    groups.setdefault((r["task"], r.get("batch", "") if r["task"] == "infer" else "", r["peer"], r["mode"]), []).append(r)
med = {k: statistics.median(r["value"] for r in v) for k, v in groups.items()}
unit = {"train": "samples/s", "infer": "samples/s", "decode": "images/s per rank"}
lines = ["| measurement | lockstep (median) | PyTorch best (median, setting) | ratio | per-round ratios | other PyTorch settings |",
         "|---|---|---|---|---|---|"]
for task, batch in sorted({(k[0], k[1]) for k in groups}, key=lambda t: (["train", "infer", "decode"].index(t[0]), int(t[1] or 0))):
    ls = med.get((task, batch, "lockstep", "mpi2"))
    pt = {k[3]: v for k, v in med.items() if k[:3] == (task, batch, "pytorch")}
    best = max(pt, key=pt.get)
    by_round = {}
    for r in groups[(task, batch, "lockstep", "mpi2")]:
        by_round.setdefault(r["round"], {})["ls"] = r["value"]
    for r in groups[(task, batch, "pytorch", best)]:
        by_round.setdefault(r["round"], {})["pt"] = r["value"]
    per_round = ", ".join("%.2f" % (v["ls"] / v["pt"]) for _, v in sorted(by_round.items()) if len(v) == 2)
    others = ", ".join("%s %.0f" % (m, v) for m, v in sorted(pt.items()) if m != best)
    name = task + (" (batch %s)" % batch if batch != "" else "")
    lines.append("| %s, %s | %.0f | %.0f (%s) | **%.2f** | %s | %s |" % (name, unit[task], ls, pt[best], best,
                 ls / pt[best], per_round, others or "-"))
acc = {}
for r in rows:
    if r["task"] == "train":
        acc.setdefault((r["peer"], r["mode"]), []).append(r["test_accuracy"])
head = ["CPU: %s (%s cores), nice %s, load average at start %s, git %s, UTC %s" % (
            meta["cpu"], meta["cores"], meta["nice"], meta["loadavg"], meta["git"], meta["utc"]),
        "Command: `%s`; config %s, %s epoch(s), %s round(s)" % (meta["command"], meta["config"], meta["epochs"], meta["rounds"]), ""]
tail = ["", "Test accuracy after training (median): " + ", ".join(
    "%s %s %.4f" % (p, m, statistics.median(v)) for (p, m), v in sorted(acc.items()))] if acc else []
text = "\n".join(head + lines + tail) + "\n"
open(sys.argv[2], "w").write(text)
print()
print(text)
print("raw results: %s; table: %s" % (sys.argv[1], sys.argv[2]))
EOF
