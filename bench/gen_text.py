#!/usr/bin/python3
"""Writes SIZE bytes (at least; whole lines) of generated English-like text to OUT, the same bytes
every time: words drawn from a Zipf law (s = 1.1) over 200,000 made-up words, one in ten
capitalised, some followed by punctuation, 4-20 words a line. For bench/wordcount_vs_unix.sh.
Usage: gen_text.py SIZE_BYTES OUT"""
import os
import sys

import numpy as np


def main():
    size, out = int(float(sys.argv[1])), sys.argv[2]
    rng = np.random.default_rng(20261130)
    letters = np.frombuffer(b"etaoinshrdlcumwfgypbvkjxqz", np.uint8)
    freq = np.array([12.7, 9.1, 8.2, 7.5, 7.0, 6.7, 6.3, 6.1, 6.0, 4.3, 4.0, 2.8, 2.8, 2.4, 2.4, 2.2, 2.0, 2.0,
                     1.9, 1.5, 1.0, 0.8, 0.2, 0.2, 0.1, 0.1])
    vocab = []
    for i in range(200_000):
        n = 2 + min(int(rng.exponential(4.0)), 12)
        w = bytes(letters[rng.choice(26, n, p=freq / freq.sum())])
        if i % 10 == 3:
            w = w.capitalize()
        if i % 37 == 5:
            w += b","
        if i % 53 == 7:
            w += b"."
        vocab.append(w)
    spaced = np.array([w + b" " for w in vocab], dtype=object)
    ended = np.array([w + b"\n" for w in vocab], dtype=object)
    tmp = out + ".tmp"
    written = 0
    with open(tmp, "wb") as f:
        while written < size:
            n = 2_000_000
            idx = np.minimum(rng.zipf(1.1, n), len(vocab)) - 1
            end = rng.random(n) < 1.0 / 12.0
            chunk = b"".join(np.where(end, ended[idx], spaced[idx]).tolist())
            if written + len(chunk) >= size:  # finish on a whole line
                cut = chunk.find(b"\n", size - written)
                chunk = chunk[: cut + 1] if cut >= 0 else chunk + b"\n"
            f.write(chunk)
            written += len(chunk)
    os.replace(tmp, out)


if __name__ == "__main__":
    main()
