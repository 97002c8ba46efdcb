#!/usr/bin/env bash
# Batch inference over an image folder: `lockstep predict` at np 2 against PyTorch 1.13 on the same
# 2 cores, per /work/shared/PEERS.md. Both sides list FOLDER recursively, decode every PNG, score
# it with CONFIG's network and write origin, prediction and class probabilities to one CSV:
#
#   lockstep  mpirun -np 2 lockstep predict CONFIG --checkpoint C --input FOLDER --output OUT.csv
#             --batch B; images/s from its predict.jsonl (predict_seconds: from
#             after start-up to the CSV renamed into place; max_rss_mb beside it).
#   pytorch   bench/torch_predict.py: an ImageFolder-like dataset over the same files (PIL decode,
#             ToTensor, the config's normalisation), torch_cnn.py's build of CONFIG's model.layers
#             (random weights: speed only), model.eval() + torch.no_grad(), DataLoader(num_workers W,
#             batch B); one process with T threads (T = 2 with OMP_WAIT_POLICY=passive), or 2
#             processes each scoring half of the sorted files (DDP-style sharding, no process group).
#
# Every round alternates the two sides (lockstep, then each PyTorch setting, for each batch); the
# table gives medians, PyTorch's best setting by median, and the ratio lockstep / that best.
#
# Usage:  nice -n 19 bench/predict_vs_pytorch.sh [FOLDER]
#         FOLDER default /work/wt-imgfolder/runs/fmnist_folder/png (the 70,000-image PNG folder,
#         written by scripts/make_fmnist_folder.py DIR --formats png); a sub-folder such as
#         FOLDER/test (10,000 images) for a trial run
# Environment:
#   ROUNDS=3
#   CONFIG=configs/fmnist_folder_cnn.yaml
#   CHECKPOINT=            lockstep's checkpoint of CONFIG's network; default: trained here first,
#                          one epoch on 5% of the training images (only the weights' values matter
#                          to that, not the work predict does)
#   TRAIN_PNG=/work/wt-imgfolder/runs/fmnist_folder/png  the folder with train/ and test/ for that
#   BATCHES="256 1000"     lockstep's --batch and PyTorch's DataLoader batch
#   MODES="procs1_w0_t1 procs1_w1_t1 procs1_w2_t1 procs1_w0_t2 procs1_w1_t2 procs1_w2_t2 procs2_w0_t1 procs2_w1_t1"
#                          PyTorch settings: procsP_wW_tT = P processes, W DataLoader workers each,
#                          T torch threads each
#   PEER_OPENBLAS_CORETYPE=auto  SkylakeX/Haswell when OpenBLAS picks Prescott (as cnn_vs_pytorch.sh)
# Output: a table on stdout; bench/results/predict_<UTC date-time>.jsonl (a "meta" line, then one
# line per run) and .md (the table, the CPU, the command, the load average).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"

FOLDER="${1:-/work/wt-imgfolder/runs/fmnist_folder/png}"
ROUNDS="${ROUNDS:-3}"
CONFIG="${CONFIG:-configs/fmnist_folder_cnn.yaml}"
CHECKPOINT="${CHECKPOINT:-}"
TRAIN_PNG="${TRAIN_PNG:-/work/wt-imgfolder/runs/fmnist_folder/png}"
BATCHES="${BATCHES:-256 1000}"
MODES="${MODES:-procs1_w0_t1 procs1_w1_t1 procs1_w2_t1 procs1_w0_t2 procs1_w1_t2 procs1_w2_t2 procs2_w0_t1 procs2_w1_t1}"
PY=/usr/bin/python3
BLAS_DIR=/usr/lib/x86_64-linux-gnu/openblas-pthread
LOCKSTEP_BIN=build/bin/lockstep
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1

die() { echo "error: $*" >&2; exit 1; }
[[ -x "$LOCKSTEP_BIN" ]] || die "$LOCKSTEP_BIN is missing (build it: cmake --build build --target lockstep_cli)"
[[ -f "$CONFIG" ]] || die "$CONFIG is missing"
[[ -d "$FOLDER" ]] || die "$FOLDER is missing (write it: $PY scripts/make_fmnist_folder.py DIR --formats png)"
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

TMP="$(mktemp -d "${TMPDIR:-/tmp}/predict_bench.XXXXXX")"
trap 'rm -rf "$TMP"' EXIT
mpi2() { mpirun -np 2 --oversubscribe --bind-to core "$@"; }

if [[ -z "$CHECKPOINT" ]]; then
  echo "training a checkpoint of $CONFIG (1 epoch on 5% of the training images) into $TMP/ckpt"
  mpi2 "$LOCKSTEP_BIN" train "$CONFIG" --set training.epochs=1 --set data.train_fraction=0.05 \
    --set data.train.features="$TRAIN_PNG/train" --set data.test.features="$TRAIN_PNG/test" \
    --set output.dir="$TMP/ckpt" --set output.progress=none > "$TMP/train.log" 2>&1 ||
    { tail -n 30 "$TMP/train.log" >&2; die "lockstep train"; }
  CHECKPOINT="$TMP/ckpt/checkpoint.h5"
fi
[[ -f "$CHECKPOINT" ]] || die "$CHECKPOINT is missing"

# Both sides read from the page cache: read every file once before the first timed run.
find "$FOLDER" -type f -print0 | xargs -0 cat > /dev/null
NFILES="$(find "$FOLDER" -type f ! -name '.*' | wc -l)"

mkdir -p bench/results
STAMP="$(date -u +%Y%m%dT%H%M%SZ)"
OUT="bench/results/predict_$STAMP.jsonl"
MD="bench/results/predict_$STAMP.md"
CPU="$(lscpu | sed -n 's/^Model name:[[:space:]]*//p' | head -1)"
"$PY" -c 'import json, sys
keys = ["cpu", "cores", "nice", "rounds", "config", "checkpoint", "batches", "modes", "folder", "files",
        "command", "utc", "git", "loadavg"]
d = dict(zip(keys, sys.argv[1:])); d["meta"] = True
print(json.dumps(d))' "$CPU" "$(nproc)" "$(nice)" "$ROUNDS" "$CONFIG" "$CHECKPOINT" "$BATCHES" "$MODES" "$FOLDER" \
  "$NFILES" "ROUNDS=$ROUNDS BATCHES='$BATCHES' MODES='$MODES' $0 $FOLDER" "$STAMP" \
  "$(git rev-parse --short HEAD 2>/dev/null || echo unknown)" "$(cut -d' ' -f1-3 /proc/loadavg)" > "$OUT"

# Appends the last JSON line of stdin to $OUT with round and batch added; prints a summary.
record() {  # record ROUND BATCH
  "$PY" -c '
import json, sys
rnd, batch, out = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
lines = [l for l in sys.stdin.read().splitlines() if l.strip().startswith("{")]
if not lines:
    sys.exit("no JSON line produced")
d = json.loads(lines[-1]); d["round"] = rnd; d["batch"] = batch
with open(out, "a") as f:
    f.write(json.dumps(d) + "\n")
rss = "  max RSS %.0f MB per rank" % d["max_rss_mb"] if "max_rss_mb" in d else ""
print("  %-5d %-9s %-14s %8.0f images/s  %d images%s" % (batch, d["peer"], d["mode"], d["images_per_sec"],
      d["images"], rss))
' "$1" "$2" "$OUT"
}

lockstep_run() {  # ROUND BATCH
  local i="$1" b="$2" dir="$TMP/ls_$1_$2"
  mpi2 "$LOCKSTEP_BIN" predict "$CONFIG" --checkpoint "$CHECKPOINT" --input "$FOLDER" --output "$TMP/ls.csv" \
    --batch "$b" --set output.dir="$dir" --set output.progress=none > "$dir.log" 2>&1 ||
    { tail -n 30 "$dir.log" >&2; die "lockstep predict, round $i, batch $b"; }
  "$PY" -c '
import json, sys
d = json.loads(open(sys.argv[1]).read().splitlines()[-1])
d.update(peer="lockstep", mode="mpi2")
print(json.dumps(d))' "$dir/predict.jsonl" | record "$i" "$b"
  [[ "$(wc -l < "$TMP/ls.csv")" -eq $((NFILES + 1)) ]] || die "lockstep's CSV has $(wc -l < "$TMP/ls.csv") lines for $NFILES files"
}

torch_run() {  # ROUND BATCH MODE
  local i="$1" b="$2" m="$3" log="$TMP/pt_$1_$2_$3"
  [[ "$m" =~ ^procs([0-9]+)_w([0-9]+)_t([0-9]+)$ ]] || die "MODES: $m is not procsP_wW_tT"
  local p="${BASH_REMATCH[1]}" w="${BASH_REMATCH[2]}" t="${BASH_REMATCH[3]}"
  local -a envs=(LD_LIBRARY_PATH="$BLAS_DIR")
  [[ -z "$PEER_OPENBLAS_CORETYPE" ]] || envs+=(OPENBLAS_CORETYPE="$PEER_OPENBLAS_CORETYPE")
  [[ "$t" -lt 2 ]] || envs+=(OMP_WAIT_POLICY=passive)
  env "${envs[@]}" "$PY" bench/torch_predict.py --config "$CONFIG" --folder "$FOLDER" --output "$TMP/pt.csv" \
    --procs "$p" --workers "$w" --threads "$t" --batch "$b" > "$log.out" 2> "$log.err" ||
    { tail -n 30 "$log.err" >&2; die "pytorch $m, round $i, batch $b"; }
  record "$i" "$b" < "$log.out"
  [[ "$(wc -l < "$TMP/pt.csv")" -eq $((NFILES + 1)) ]] || die "PyTorch's CSV has $(wc -l < "$TMP/pt.csv") lines for $NFILES files"
}

echo "predict_vs_pytorch: ROUNDS=$ROUNDS CONFIG=$CONFIG over $FOLDER ($NFILES files) on $CPU, nice $(nice) -> $OUT"
for ((i = 1; i <= ROUNDS; i++)); do
  echo "round $i/$ROUNDS"
  for b in $BATCHES; do
    lockstep_run "$i" "$b"
    for m in $MODES; do torch_run "$i" "$b" "$m"; done
  done
done

"$PY" - "$OUT" "$MD" <<'EOF'
import json, statistics, sys
rows = [json.loads(l) for l in open(sys.argv[1])]
meta, rows = rows[0], rows[1:]
groups = {}
for r in rows:
    groups.setdefault((r["batch"], r["peer"], r["mode"]), []).append(r)
med = {k: statistics.median(r["images_per_sec"] for r in v) for k, v in groups.items()}
lines = ["| batch | lockstep np 2 (median images/s, max RSS/rank) | PyTorch best (median images/s, setting) | ratio | per-round ratios | other PyTorch settings |",
         "|---|---|---|---|---|---|"]
ls_all = {b: v for (b, p, m), v in med.items() if p == "lockstep"}
pt_all = {(b, m): v for (b, p, m), v in med.items() if p == "pytorch"}
overall_pt = max(pt_all, key=pt_all.get)
for b in sorted({k[0] for k in groups}):
    ls = ls_all[b]
    rss = max(r["max_rss_mb"] for r in groups[(b, "lockstep", "mpi2")])
    pt = {m: v for (bb, m), v in pt_all.items() if bb == b}
    best = max(pt, key=pt.get)
    by_round = {}
    for r in groups[(b, "lockstep", "mpi2")]:
        by_round.setdefault(r["round"], {})["ls"] = r["images_per_sec"]
    for r in groups[(b, "pytorch", best)]:
        by_round.setdefault(r["round"], {})["pt"] = r["images_per_sec"]
    per_round = ", ".join("%.2f" % (v["ls"] / v["pt"]) for _, v in sorted(by_round.items()) if len(v) == 2)
    others = ", ".join("%s %.0f" % (m, v) for m, v in sorted(pt.items()) if m != best)
    lines.append("| %d | %.0f (%.0f MB) | %.0f (%s) | **%.2f** | %s | %s |" % (b, ls, rss, pt[best], best, ls / pt[best],
                 per_round, others or "-"))
best_ls = max(ls_all, key=ls_all.get)
summary = ("lockstep's best (batch %d, %.0f images/s) / PyTorch's best over every setting (batch %d, %s, %.0f images/s): **%.2f**"
           % (best_ls, ls_all[best_ls], overall_pt[0], overall_pt[1], pt_all[overall_pt], ls_all[best_ls] / pt_all[overall_pt]))
head = ["CPU: %s (%s cores), nice %s, load average at start %s, git %s, UTC %s" % (
            meta["cpu"], meta["cores"], meta["nice"], meta["loadavg"], meta["git"], meta["utc"]),
        "Command: `%s`; config %s, %s files, %s round(s)" % (meta["command"], meta["config"], meta["files"], meta["rounds"]), ""]
text = "\n".join(head + lines + ["", summary]) + "\n"
open(sys.argv[2], "w").write(text)
print()
print(text)
print("raw results: %s; table: %s" % (sys.argv[1], sys.argv[2]))
EOF
