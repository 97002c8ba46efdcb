#!/usr/bin/env bash
# apps/examples at 1, 2, 3 and 4 ranks: each example's output (its part files, concatenated) must
# equal a reference computed here in Python, byte for byte, at every rank count; bad input must end
# the job with a message naming it, non-zero, never a hang.
set -u
EX=$1
MPIEXEC=${2:-mpiexec}
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OMPI_MCA_rmaps_base_oversubscribe=1
WORK=$(mktemp -d /tmp/lockstep-examples-XXXXXX)
trap 'rm -rf "$WORK"' EXIT
passed=0
failed=0
ok() { passed=$((passed + 1)); echo "PASS: $1"; }
bad() { failed=$((failed + 1)); echo "FAIL: $1"; [ -f "$WORK/out" ] && sed 's/^/    | /' "$WORK/out" | tail -15; }
run() {  # run NP PROGRAM ARGS...: output in $WORK/out, status in $rc
  local np=$1
  shift
  timeout -k 5 60 "$MPIEXEC" -n "$np" --oversubscribe "$@" >"$WORK/out" 2>&1
  rc=$?
}
parts() { cat "$1"/part-* 2>/dev/null; }

# Inputs and references. The corpus is skewed ("the" is half of all words), has capitals,
# punctuation, empty lines, CRLF lines and a file without a final newline.
python3 - "$WORK" <<'PY'
import collections, os, random, re, sys
w = sys.argv[1]
rng = random.Random(13)
vocab = ["alpha", "beta", "gamma", "delta", "Zeta", "eta9", "theta", "iota", "kappa", "lambda"] + ["w%d" % i for i in range(400)]
os.makedirs(w + "/corpus")
text = []
for f, n in (("a.txt", 1500), ("b.txt", 1200)):
    lines = []
    for i in range(n):
        if i % 50 == 0:
            lines.append("")
            continue
        ws = ["The" if rng.random() < 0.5 else rng.choice(vocab) for _ in range(rng.randint(1, 12))]
        line = " ".join(ws) + rng.choice(["", ".", ", ok!", " -- x"])
        lines.append(line + ("\r" if i % 7 == 0 else ""))
    data = "\n".join(lines) + ("" if f == "b.txt" else "\n")
    open(w + "/corpus/" + f, "w", newline="").write(data)
    text.append(data)
counts = collections.Counter(x.lower() for t in text for x in re.findall(r"[A-Za-z0-9]+", t))
lines = [l[:-1] if l.endswith("\r") else l for t in text for l in (t[:-1] if t.endswith("\n") else t).split("\n")]
open(w + "/sort.ref", "wb").write(b"".join(sorted(l.encode() + b"\n" for l in lines)))
open(w + "/wc.ref", "w").write("".join("%s\t%d\n" % (k, counts[k]) for k in sorted(counts)))
docs, index = [], collections.defaultdict(set)
for d in range(400):
    doc_id = "d%04d" % rng.randrange(10000)
    body = " ".join(rng.choice(vocab) for _ in range(rng.randint(0, 8)))
    docs.append(doc_id + "\t" + body)
    for x in re.findall(r"[A-Za-z0-9]+", body):
        index[x.lower()].add(doc_id)
open(w + "/docs.tsv", "w").write("\n".join(docs) + "\n")
open(w + "/ii.ref", "w").write("".join("%s\t%s\n" % (k, ",".join(sorted(index[k]))) for k in sorted(index)))
ids = ["img%05d" % i for i in range(1000)]
labels = {i: str(rng.randrange(10)) for i in ids if rng.random() < 0.9}
lab = list(labels.items())
rng.shuffle(lab)
open(w + "/labels.csv", "w").write("id,label\n" + "".join("%s,%s\n" % kv for kv in lab))
paths = ["train/%s/%s.png" % (rng.choice("abc"), i) for i in ids]
rng.shuffle(paths)
open(w + "/paths.txt", "w").write("\n".join(paths) + "\n")
open(w + "/jl.ref", "w").write("".join("%s\t%s\n" % (p, labels.get(p.split("/")[-1][:-4], "?")) for p in paths))
open(w + "/docs_bad.tsv", "w").write("d1\tfine\nd2\tfine too\nno tab on this line\nd4\tx\n")
# ratings for recommend: 60 users x 25 items, user 0 holding half the rows (repeats allowed)
rows = [(u, i, 1 + (u * 7 + i * 3) % 5) for u in range(60) for i in range(25) if rng.random() < 0.3]
rows += [(0, i % 25, 1 + i % 5) for i in range(len(rows))]
open(w + "/ratings.csv", "w").write("user,item,rating\n" + "".join("%d,%d,%d\n" % r for r in rows))
open(w + "/ratings_bad.csv", "w").write("user,item,rating\n1,2,3\n1,x,3\n")
PY

for np in 1 2 3 4; do
  rm -rf "$WORK/wc" "$WORK/ii" "$WORK/jl" "$WORK/rec"
  run $np "$EX/word_count" "$WORK/corpus" "$WORK/wc"
  if [ "$rc" = 0 ] && cmp -s <(parts "$WORK/wc") "$WORK/wc.ref" && [ "$(ls "$WORK/wc" | grep -c '^part-')" = $np ] &&
     grep -q "distinct words; the most frequent: the " "$WORK/out"; then
    ok "word_count at np $np: $(wc -l <"$WORK/wc.ref") words, equal to the reference"
  else bad "word_count at np $np (exit $rc)"; fi
  run $np "$EX/inverted_index" "$WORK/docs.tsv" "$WORK/ii"
  if [ "$rc" = 0 ] && cmp -s <(parts "$WORK/ii") "$WORK/ii.ref"; then ok "inverted_index at np $np: equal to the reference"
  else bad "inverted_index at np $np (exit $rc)"; fi
  run $np "$EX/join_labels" "$WORK/labels.csv" "$WORK/paths.txt" "$WORK/jl"
  if [ "$rc" = 0 ] && cmp -s <(parts "$WORK/jl") "$WORK/jl.ref" && grep -q "of 1000 paths have a label" "$WORK/out"; then
    ok "join_labels at np $np: equal to the reference ($(sed -n 's/^\([0-9]*\) of 1000.*/\1/p' "$WORK/out") labelled)"
  else bad "join_labels at np $np (exit $rc)"; fi
  rm -rf "$WORK/sl"
  run $np "$EX/sort_lines" "$WORK/corpus" "$WORK/sl"
  if [ "$rc" = 0 ] && cmp -s <(parts "$WORK/sl") "$WORK/sort.ref" && grep -q "lines sorted" "$WORK/out"; then
    ok "sort_lines at np $np: $(wc -l <"$WORK/sort.ref") lines, equal to the reference"
  else bad "sort_lines at np $np (exit $rc)"; fi
  # recommend: one line per user (60), the same bytes as at np 1 (test_als checks it against brute force)
  run $np "$EX/recommend" "$WORK/ratings.csv" 3 "$WORK/rec"
  [ "$np" = 1 ] && parts "$WORK/rec" >"$WORK/rec.ref"
  if [ "$rc" = 0 ] && cmp -s <(parts "$WORK/rec") "$WORK/rec.ref" && [ "$(wc -l <"$WORK/rec.ref")" = 60 ]; then
    ok "recommend at np $np: 60 users, the same bytes as at np 1"
  else bad "recommend at np $np (exit $rc)"; fi
  run $np "$EX/recommend" "$WORK/ratings_bad.csv" 3 "$WORK/rec_bad"
  if [ "$rc" != 0 ] && [ "$rc" != 124 ] && grep -q "ratings_bad.csv: line 3: expected" "$WORK/out"; then ok "recommend, a bad line at np $np: exit $rc naming line 3"
  else bad "recommend, bad line at np $np (exit $rc)"; fi
  # bad input: named, non-zero on every rank, no hang
  run $np "$EX/inverted_index" "$WORK/docs_bad.tsv" "$WORK/ii_bad"
  if [ "$rc" != 0 ] && [ "$rc" != 124 ] && grep -q "docs_bad.tsv: line 3: expected" "$WORK/out"; then ok "inverted_index, a line without a tab at np $np: exit $rc naming line 3"
  else bad "inverted_index, bad line at np $np (exit $rc)"; fi
  run $np "$EX/word_count" "$WORK/missing.txt" "$WORK/wc_missing"
  if [ "$rc" != 0 ] && [ "$rc" != 124 ] && grep -q "missing.txt" "$WORK/out"; then ok "word_count, a missing input at np $np: exit $rc naming it"
  else bad "word_count, missing input at np $np (exit $rc)"; fi
done
# an existing output folder is refused (Spark's saveAsTextFile refuses it too)
run 2 "$EX/word_count" "$WORK/corpus" "$WORK/wc"
if [ "$rc" != 0 ] && grep -q "already holds output" "$WORK/out"; then ok "word_count into an earlier output: refused (exit $rc)"
else bad "word_count into an earlier output (exit $rc)"; fi

echo "examples_e2e: $passed passed, $failed failed"
[ "$failed" = 0 ]
