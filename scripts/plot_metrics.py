#!/usr/bin/env python3
"""Curves of a training run: loss, accuracy (or RMSE) and throughput per epoch, from metrics.jsonl.

    scripts/plot_metrics.py RUN_DIR_or_metrics.jsonl [-o out.png]

Reads the epoch lines `lockstep train` appends to <output.dir>/metrics.jsonl (a resumed run's
repeated epoch keeps its last line) and writes one PNG with three panels: train and test loss;
test accuracy (classifiers; test RMSE for regression); samples/s. The default output is
metrics.png next to metrics.jsonl. Needs matplotlib (Debian: python3-matplotlib).
"""
import argparse
import json
import os
import sys


def read_epochs(path):
    by_epoch = {}
    with open(path) as f:
        for n, line in enumerate(f, 1):
            line = line.strip()
            if not line:
                continue
            try:
                m = json.loads(line)
            except ValueError as e:
                sys.exit(f"plot_metrics: {path}:{n}: not a JSON line ({e})")
            if "epoch" in m:  # lockstep fit's lines (split, tuning) have no epochs
                by_epoch[m["epoch"]] = m
    return [by_epoch[k] for k in sorted(by_epoch)]


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("run", help="a run directory (output.dir) or its metrics.jsonl")
    p.add_argument("-o", "--output", help="PNG to write (default: metrics.png beside metrics.jsonl)")
    a = p.parse_args()
    path = os.path.join(a.run, "metrics.jsonl") if os.path.isdir(a.run) else a.run
    if not os.path.isfile(path):
        sys.exit(f"plot_metrics: {path}: no such file (expected a run directory or its metrics.jsonl)")
    rows = read_epochs(path)
    if not rows:
        sys.exit(f"plot_metrics: {path}: no epoch lines (written by lockstep train)")
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
        import matplotlib.ticker
    except ImportError:
        sys.exit("plot_metrics: needs matplotlib (Debian: apt-get install python3-matplotlib)")
    out = a.output or os.path.join(os.path.dirname(os.path.abspath(path)), "metrics.png")
    ep = [r["epoch"] for r in rows]
    fig, ax = plt.subplots(1, 3, figsize=(13, 3.8))
    ax[0].plot(ep, [r.get("train_loss") for r in rows], marker="o", label="train")
    ax[0].plot(ep, [r.get("test_loss") for r in rows], marker="o", label="test")
    ax[0].set_title("loss")
    ax[0].legend()
    metric = "test_accuracy" if "test_accuracy" in rows[-1] else "test_rmse"
    ax[1].plot(ep, [r.get(metric) for r in rows], marker="o", color="tab:green")
    ax[1].set_title(metric.replace("_", " "))
    ax[2].plot(ep, [r.get("samples_per_sec") for r in rows], marker="o", color="tab:red")
    ax[2].set_title("throughput (samples/s)")
    ax[2].set_ylim(bottom=0)
    for x in ax:
        x.xaxis.set_major_locator(matplotlib.ticker.MaxNLocator(integer=True))
        x.set_xlabel("epoch")
        x.grid(alpha=0.3)
    ws = rows[-1].get("world_size")
    fig.suptitle(f"{path}" + (f" ({ws} ranks)" if ws else ""), fontsize=9)
    fig.tight_layout()
    tmp = out + ".tmp.png"  # written whole, then renamed into place
    fig.savefig(tmp, dpi=110)
    os.replace(tmp, out)
    print(f"wrote {out} ({len(rows)} epochs)")


if __name__ == "__main__":
    main()
