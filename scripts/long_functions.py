#!/usr/bin/env python3
"""Lists functions longer than a limit in C++ sources (a rough brace matcher, good enough for our
clang-formatted code): a definition opens with '{' at the end of a line at namespace indentation
and closes with '}' at the same indentation.
  scripts/long_functions.py [--max 100] src apps"""
import argparse, pathlib, re, sys

def functions(path):
    lines = path.read_text(errors="replace").splitlines()
    i = 0
    while i < len(lines):
        line = lines[i]
        m = re.match(r"^( {0,2})\S.*\)\s*(const\s*)?(override\s*)?(noexcept\s*)?(->\s*[\w:<>]+\s*)?\{\s*$", line)
        if m and not re.match(r"^\s*(namespace|struct|class|enum|if|for|while|switch)\b", line):
            indent = m.group(1)
            for j in range(i + 1, len(lines)):
                if lines[j].startswith(indent + "}") and not lines[j].startswith(indent + " "):
                    yield i + 1, j - i + 1, line.strip()
                    i = j
                    break
        i += 1

ap = argparse.ArgumentParser()
ap.add_argument("--max", type=int, default=100)
ap.add_argument("dirs", nargs="*", default=["src", "apps"])
a = ap.parse_args()
bad = 0
for d in a.dirs:
    for p in sorted(pathlib.Path(d).rglob("*")):
        if p.suffix not in (".cpp", ".cu", ".hpp"):
            continue
        for start, n, sig in functions(p):
            if n > a.max:
                bad += 1
                print(f"{p}:{start}: {n} lines: {sig[:90]}")
sys.exit(1 if bad else 0)
