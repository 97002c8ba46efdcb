#!/usr/bin/env bash
# Word count and sort on a generated text (bench/gen_text.py; SIZE bytes, default 1e9) side by side:
#   lockstep  build/bin/examples/word_count and sort_lines at np 1 and 2 (mpirun), writing part files
#   GNU       LC_ALL=C tr -cs 'A-Za-z0-9' '\n' | tr A-Z a-z | sort --parallel=2 -S 4G | uniq -c,
#             and LC_ALL=C sort --parallel=2 -S 4G for the sort (one process, both cores)
#   Python    collections.Counter over re.findall(rb"[a-z0-9]+") of 64 MiB chunks, lower-cased
# Every side's output is checked against the others (same words, same counts; same sorted bytes).
# Reported: wall seconds (medians over ROUNDS, sides alternating), each rank's peak resident
# memory against its share of the input (SIZE / np), and ratios. Raw lines go to bench/results/.
# Environment: SIZE=1e9, ROUNDS=3, TEXT_DIR=~/.cache/lockstep/text, WHAT="wordcount sort".
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
SIZE="${SIZE:-1e9}"
ROUNDS="${ROUNDS:-3}"
WHAT="${WHAT:-wordcount sort}"
TEXT_DIR="${TEXT_DIR:-$HOME/.cache/lockstep/text}"
PY=/usr/bin/python3
EX=build/bin/examples
for p in word_count sort_lines; do [[ -x "$EX/$p" ]] || { echo "error: $EX/$p is missing (cmake --build build)" >&2; exit 1; }; done
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
mkdir -p "$TEXT_DIR" bench/results
TEXT="$TEXT_DIR/text_$SIZE.txt"
[[ -f "$TEXT" ]] || { echo "generating $TEXT"; "$PY" bench/gen_text.py "$SIZE" "$TEXT"; }
BYTES=$(stat -c %s "$TEXT")
OUT="bench/results/wordcount_$(date -u +%Y%m%dT%H%M%SZ).jsonl"
WORK=$(mktemp -d "${WORK_DIR:-/tmp}/lockstep-wc-XXXXXX")
trap 'rm -rf "$WORK"' EXIT
: > "$OUT"
echo "input $TEXT: $BYTES bytes; CPU: $(lscpu | sed -n 's/^Model name: *//p'), $(nproc) cores"
now() { date +%s.%N; }
record() {  # record TASK SIDE NP SECONDS [RSS_KB...]
  local task=$1 side=$2 np=$3 secs=$4
  shift 4
  local rss
  rss=$(IFS=,; echo "$*")
  echo "{\"task\":\"$task\",\"side\":\"$side\",\"np\":$np,\"seconds\":$secs,\"rss_kb\":[${rss}],\"bytes\":$BYTES,\"round\":$r}" | tee -a "$OUT"
}
lockstep_run() {  # lockstep_run TASK PROGRAM NP: output in $WORK/ls_TASK_NP
  local task=$1 prog=$2 np=$3 dir="$WORK/ls_$1_$3"
  rm -rf "$dir" "$WORK"/rss.*
  local t0 t1
  t0=$(now)
  mpirun -np "$np" sh -c '/usr/bin/time -f %M -o "$0/rss.$OMPI_COMM_WORLD_RANK" "$@"' "$WORK" "$EX/$prog" "$TEXT" "$dir" > "$WORK/log" 2>&1 ||
    { cat "$WORK/log" >&2; exit 1; }
  t1=$(now)
  record "$task" lockstep "$np" "$(printf %.3f "$(echo "$t1 - $t0" | bc)")" $(cat "$WORK"/rss.* | tr '\n' ' ')
}
gnu_wordcount() {
  local t0 t1
  t0=$(now)
  /usr/bin/time -f %M -o "$WORK/rss.gnu" sh -c "LC_ALL=C tr -cs 'A-Za-z0-9' '\n' < '$TEXT' | LC_ALL=C tr 'A-Z' 'a-z' | LC_ALL=C sort --parallel=2 -S 4G -T '$WORK' | LC_ALL=C uniq -c > '$WORK/gnu_wc'"
  t1=$(now)
  record wordcount gnu 1 "$(printf %.3f "$(echo "$t1 - $t0" | bc)")" "$(cat "$WORK/rss.gnu")"
}
python_wordcount() {
  local t0 t1
  t0=$(now)
  /usr/bin/time -f %M -o "$WORK/rss.py" "$PY" - "$TEXT" "$WORK/py_wc" <<'PYEOF'
import collections, re, sys
counts = collections.Counter()
word = re.compile(rb"[a-z0-9]+")
rest = b""
with open(sys.argv[1], "rb") as f:
    while True:
        block = f.read(64 << 20)
        if not block:
            break
        block = rest + block
        cut = block.rfind(b"\n") + 1
        rest = block[cut:]
        counts.update(word.findall(block[:cut].lower()))
counts.update(word.findall(rest.lower()))
with open(sys.argv[2], "wb") as out:
    out.writelines(b"%s\t%d\n" % (w, counts[w]) for w in sorted(counts))
PYEOF
  t1=$(now)
  record wordcount python 1 "$(printf %.3f "$(echo "$t1 - $t0" | bc)")" "$(cat "$WORK/rss.py")"
}
gnu_sort() {
  local t0 t1
  t0=$(now)
  /usr/bin/time -f %M -o "$WORK/rss.gnusort" sh -c "LC_ALL=C sort --parallel=2 -S 4G -T '$WORK' '$TEXT' > '$WORK/gnu_sort'"
  t1=$(now)
  record sort gnu 1 "$(printf %.3f "$(echo "$t1 - $t0" | bc)")" "$(cat "$WORK/rss.gnusort")"
}
check() {  # the outputs agree
  if [[ " $WHAT " == *" wordcount "* ]]; then
    awk '$2 != "" {print $2 "\t" $1}' "$WORK/gnu_wc" > "$WORK/gnu_wc.tsv"
    for f in "$WORK/py_wc" <(cat "$WORK"/ls_wordcount_1/part-*) <(cat "$WORK"/ls_wordcount_2/part-*); do
      cmp -s "$f" "$WORK/gnu_wc.tsv" || { echo "error: word counts differ ($f)" >&2; exit 1; }
    done
  fi
  if [[ " $WHAT " == *" sort "* ]]; then
    for np in 1 2; do
      cmp -s <(cat "$WORK"/ls_sort_$np/part-*) "$WORK/gnu_sort" || { echo "error: sorted lines differ at np $np" >&2; exit 1; }
    done
  fi
  echo "outputs agree"
}
for r in $(seq 1 "$ROUNDS"); do
  if [[ " $WHAT " == *" wordcount "* ]]; then
    lockstep_run wordcount word_count 2; gnu_wordcount; lockstep_run wordcount word_count 1; python_wordcount
  fi
  if [[ " $WHAT " == *" sort "* ]]; then
    gnu_sort; lockstep_run sort sort_lines 2; lockstep_run sort sort_lines 1
  fi
  [[ $r == 1 ]] && check
done
"$PY" - "$OUT" <<'PYEOF'
import json, statistics, sys
rows = [json.loads(l) for l in open(sys.argv[1])]
def med(task, side, np):
    v = [r for r in rows if r["task"] == task and r["side"] == side and r["np"] == np]
    return (statistics.median(r["seconds"] for r in v), max(max(r["rss_kb"]) for r in v), v[0]["bytes"]) if v else None
for task, peers in (("wordcount", ("gnu", "python")), ("sort", ("gnu",))):
    base = {p: med(task, p, 1) for p in peers}
    if not any(base.values()):
        continue
    print("\n%s" % task)
    for p in peers:
        s, rss, b = base[p]
        print("  %-22s %8.2f s   peak RSS %6.0f MiB" % (p, s, rss / 1024))
    for np in (1, 2):
        m = med(task, "lockstep", np)
        if not m:
            continue
        s, rss, b = m
        share = b / np / 1048576
        ratios = ", ".join("%.2fx %s" % (base[p][0] / s, p) for p in peers)
        print("  %-22s %8.2f s   peak RSS per rank %6.0f MiB = %.2fx its share (%.0f MiB)   %s" %
              ("lockstep np=%d" % np, s, rss / 1024, rss / 1024 / share, share, ratios))
print("raw:", sys.argv[1])
PYEOF
