#!/usr/bin/env bash
# fetch_ratings.sh OUTDIR
#
# Fetches the InstEval ratings (lme4 package data: 73,421 course evaluations,
# 2,972 students x 1,128 lecturers, rating y in 1..5; ETH Zurich lecture
# evaluations, shipped with R's lme4, GPL-2+) from Debian bookworm's
# r-cran-lme4 1.1-31-1 (amd64 .deb) and writes an ALS ratings set:
#
#   OUTDIR/ratings.csv        all rows, header "user,item,rating"
#   OUTDIR/ratings_train.csv  fixed 80% split, same header
#   OUTDIR/ratings_test.csv   fixed 20% split, same header
#   OUTDIR/MANIFEST.txt       counts, source, checksum
#
# user = student factor code - 1 (0..2971, dense; original student ids are
#        1..2972 so user = id - 1), item = lecturer factor code - 1 (0..1127,
#        dense; original lecturer ids are sparse 1..2160, kept in increasing
#        order), rating = y (integer 1..5). No (user,item) pair repeats.
# Rows keep lme4's row order. Split: row r (0-based) goes to train iff
# sha256("insteval/" + str(r))[:8] as big-endian uint64 % 100 < 80.
#
# The data sits in R's lazy-load database (data/Rdata.rdb/.rdx) inside the
# .deb; it is decoded by a small pure-Python reader of R's XDR serialization
# below, so neither R nor any Python package is needed.
#
# Needs: bash, apt-get (or curl), dpkg-deb, tar, sha256sum, python3 (stdlib).
# Idempotent: re-running with the outputs present does nothing; the .deb is
# kept in OUTDIR/.cache and re-verified.
set -euo pipefail

DEB='r-cran-lme4_1.1-31-1_amd64.deb'
APTSPEC='r-cran-lme4:amd64=1.1-31-1'
URL='http://deb.debian.org/debian/pool/main/l/lme4/r-cran-lme4_1.1-31-1_amd64.deb'
SHA256='232c90c0504309ee64749af8ca8359e999a00e6dc0c1abf697640f1c16ecb4aa'
STAMP_VERSION='ratings-v1'

OUT=${1:?usage: fetch_ratings.sh OUTDIR}
mkdir -p "$OUT/.cache"
OUT=$(cd "$OUT" && pwd)
CACHE="$OUT/.cache"

if [[ -f "$OUT/.done" && "$(cat "$OUT/.done")" == "$STAMP_VERSION $SHA256" ]] \
   && [[ -f "$OUT/ratings.csv" && -f "$OUT/ratings_train.csv" && -f "$OUT/ratings_test.csv" ]]; then
  echo "fetch_ratings: up to date in $OUT"; cat "$OUT/MANIFEST.txt"; exit 0
fi

verify() { [[ -f "$1" ]] && echo "$SHA256  $1" | sha256sum -c --status -; }

if ! verify "$CACHE/$DEB"; then
  rm -f "$CACHE/$DEB"
  echo "fetch_ratings: downloading $APTSPEC"
  if command -v apt-get >/dev/null 2>&1; then
    (cd "$CACHE" && apt-get download -q "$APTSPEC" >/dev/null 2>&1) || true
  fi
  if ! verify "$CACHE/$DEB" && command -v curl >/dev/null 2>&1; then
    curl -fsSL --retry 3 -o "$CACHE/$DEB" "$URL" || true
  fi
  verify "$CACHE/$DEB" || { echo "fetch_ratings: could not fetch $DEB with sha256 $SHA256" >&2; exit 1; }
fi
echo "fetch_ratings: $DEB sha256 OK"

WORK=$(mktemp -d "$CACHE/x.XXXXXX")
trap 'rm -rf "$WORK"' EXIT
dpkg-deb --fsys-tarfile "$CACHE/$DEB" \
  | tar -x -C "$WORK" ./usr/lib/R/site-library/lme4/data/Rdata.rdb ./usr/lib/R/site-library/lme4/data/Rdata.rdx

python3 - "$WORK/usr/lib/R/site-library/lme4/data/Rdata" "$OUT" "$APTSPEC" "$SHA256" <<'PY'
import bz2, gzip, hashlib, lzma, os, struct, sys, zlib

class RObj:
    def __init__(self, t, v, attr=None):
        self.t, self.v, self.attr = t, v, attr or {}

class Reader:
    """R serialization, XDR ("X\\n") format, versions 2 and 3: the subset
    that data frames, factors and the lazy-load index use."""
    def __init__(self, b):
        if b[:2] != b"X\n":
            raise ValueError("not an XDR R serialization")
        self.b, self.p, self.refs = b, 2, []
        ver = self.i(); self.i(); self.i()
        if ver == 3:
            n = self.i(); self.p += n           # native encoding name
    def i(self):
        v = struct.unpack_from(">i", self.b, self.p)[0]; self.p += 4; return v
    def arr(self, fmt, size, n):
        v = struct.unpack_from(">%d%s" % (n, fmt), self.b, self.p); self.p += size * n; return list(v)
    def pl2dict(self, pl):
        d = {}
        while pl is not None and pl.t == 2:
            tag, car, cdr = pl.v; d[tag] = car; pl = cdr
        return d
    def item(self):
        f = self.i(); t = f & 0xFF
        has_attr, has_tag = f & 512, f & 1024
        if t == 254: return None                                  # NILVALUE_SXP
        if t in (253, 252, 251, 250, 242, 241): return RObj(t, None)
        if t == 255:                                              # REFSXP
            k = f >> 8
            return self.refs[(k if k else self.i()) - 1]
        if t == 1:                                                # SYMSXP
            o = self.item().v; self.refs.append(o); return o
        if t in (2, 6, 17, 239, 240):                             # pairlists, calls
            attr = self.item() if has_attr else None
            tag = self.item() if has_tag else None
            car = self.item(); cdr = self.item()
            return RObj(2 if t in (2, 239) else t, (tag, car, cdr), self.pl2dict(attr))
        if t == 4:                                                # ENVSXP
            o = RObj(4, None); self.refs.append(o)
            self.i(); self.item(); self.item(); self.item(); self.item(); return o
        if t == 9:                                                # CHARSXP
            n = self.i()
            if n == -1: return RObj(9, None)
            s = self.b[self.p:self.p + n].decode("utf-8", "replace"); self.p += n
            return RObj(9, s)
        if t in (10, 13): v = self.arr("i", 4, self.i())          # LGLSXP, INTSXP
        elif t == 14: v = self.arr("d", 8, self.i())              # REALSXP
        elif t == 16: v = [self.item().v for _ in range(self.i())]  # STRSXP
        elif t in (19, 20): v = [self.item() for _ in range(self.i())]  # VECSXP
        else: raise ValueError("unsupported SEXP type %d" % t)
        return RObj(t, v, self.pl2dict(self.item()) if has_attr else None)

def lazyload(prefix, name):
    raw = open(prefix + ".rdx", "rb").read()
    raw = gzip.decompress(raw) if raw[:2] == b"\x1f\x8b" else zlib.decompress(raw[4:])
    idx = Reader(raw).item()
    variables = idx.v[idx.attr["names"].v.index("variables")]
    off, ln = (int(x) for x in variables.v[variables.attr["names"].v.index(name)].v)
    with open(prefix + ".rdb", "rb") as f:
        f.seek(off); chunk = f.read(ln)
    kind = chunk[4:5]
    if kind == b"Z": data = zlib.decompress(chunk[5:])
    elif kind == b"2": data = bz2.decompress(chunk[5:])
    elif kind == b"X": data = lzma.decompress(chunk[5:])
    elif kind == b"0": data = chunk[5:]
    else: data = zlib.decompress(chunk[4:])
    return Reader(data).item()

prefix, out, spec, sha = sys.argv[1:5]
df = lazyload(prefix, "InstEval")
cols = dict(zip(df.attr["names"].v, df.v))
s, d, y = cols["s"], cols["d"], cols["y"]
n = len(y.v)
assert n == 73421 and len(s.v) == n and len(d.v) == n, n
assert len(s.attr["levels"].v) == 2972 and len(d.attr["levels"].v) == 1128
assert min(y.v) == 1 and max(y.v) == 5
assert len(set(zip(s.v, d.v))) == n
counts = {"train": 0, "test": 0}
fa = open(os.path.join(out, "ratings.csv.tmp"), "w", newline="\n")
ft = {k: open(os.path.join(out, f"ratings_{k}.csv.tmp"), "w", newline="\n") for k in counts}
for f in (fa, *ft.values()):
    f.write("user,item,rating\n")
for r in range(n):
    line = "%d,%d,%d\n" % (s.v[r] - 1, d.v[r] - 1, y.v[r])
    h = struct.unpack(">Q", hashlib.sha256(("insteval/%d" % r).encode()).digest()[:8])[0]
    k = "train" if h % 100 < 80 else "test"
    fa.write(line); ft[k].write(line); counts[k] += 1
for f in (fa, *ft.values()):
    f.close()
for name in ("ratings", "ratings_train", "ratings_test"):
    p = os.path.join(out, name + ".csv"); os.replace(p + ".tmp", p)
# cold-start rows in test: user or item never seen in train
tr_u, tr_i, cold = set(), set(), 0
rows = [(s.v[r] - 1, d.v[r] - 1) for r in range(n)]
split = [struct.unpack(">Q", hashlib.sha256(("insteval/%d" % r).encode()).digest()[:8])[0] % 100 < 80 for r in range(n)]
for (u, i), t in zip(rows, split):
    if t: tr_u.add(u); tr_i.add(i)
cold = sum(1 for (u, i), t in zip(rows, split) if not t and (u not in tr_u or i not in tr_i))
with open(os.path.join(out, "MANIFEST.txt"), "w") as m:
    m.write(f"source: Debian bookworm {spec} (data/Rdata.rdb, object InstEval), sha256 {sha}\n")
    m.write("licence: lme4 is GPL (>= 2) (DESCRIPTION; data shipped with the package)\n")
    m.write("columns: user = student code 0..2971, item = lecturer code 0..1127, rating = y 1..5\n")
    m.write("split: sha256('insteval/'+row)[:8] as uint64 % 100 < 80 -> train\n")
    m.write(f"total: {n} rows, {len(s.attr['levels'].v)} users, {len(d.attr['levels'].v)} items, mean rating {sum(y.v)/n:.6f}\n")
    m.write(f"train: {counts['train']} rows ({len(tr_u)} users, {len(tr_i)} items)\n")
    m.write(f"test: {counts['test']} rows ({cold} with a user or item absent from train)\n")
PY
echo "$STAMP_VERSION $SHA256" > "$OUT/.done"
cat "$OUT/MANIFEST.txt"
