#!/usr/bin/env python3
"""Writes configs/data/diabetes3_{train,test}.csv for configs/keras_regression.yaml from the
diabetes data that Debian's python3-sklearn ships (442 patients; Efron et al., 2004).

Three features (bmi, bp, s5: body-mass index, blood pressure, log serum triglycerides) and the
disease progression after one year as the target. Rows are split 80/20 by a seeded shuffle;
features and target are standardised with the training rows' mean and standard deviation, as
one would before a Keras model (R^2 is the same in standardised and original units).
  /usr/bin/python3 scripts/make_keras_data.py [OUT_DIR]"""
import csv, gzip, os, sys

import numpy as np

SRC = "/usr/lib/python3/dist-packages/sklearn/datasets/data"
COLUMNS = ["age", "sex", "bmi", "bp", "s1", "s2", "s3", "s4", "s5", "s6"]
KEEP = ["bmi", "bp", "s5"]

def main():
    out = sys.argv[1] if len(sys.argv) > 1 else os.path.join(os.path.dirname(__file__), "..", "configs", "data")
    with gzip.open(os.path.join(SRC, "diabetes_data_raw.csv.gz"), "rt") as f:
        x = np.loadtxt(f)
    with gzip.open(os.path.join(SRC, "diabetes_target.csv.gz"), "rt") as f:
        y = np.loadtxt(f)
    x = x[:, [COLUMNS.index(c) for c in KEEP]]
    order = np.random.RandomState(0).permutation(len(y))
    cut = int(round(0.8 * len(y)))
    tr, te = order[:cut], order[cut:]
    mx, sx = x[tr].mean(0), x[tr].std(0)
    my, sy = y[tr].mean(), y[tr].std()
    os.makedirs(out, exist_ok=True)
    for name, idx in (("train", tr), ("test", te)):
        with open(os.path.join(out, f"diabetes3_{name}.csv"), "w", newline="") as f:
            w = csv.writer(f)
            w.writerow(KEEP + ["progression"])
            for i in idx:
                w.writerow([f"{v:.9g}" for v in (x[i] - mx) / sx] + [f"{(y[i] - my) / sy:.9g}"])
    print(f"wrote {len(tr)} training and {len(te)} test rows to {out}")

if __name__ == "__main__":
    main()
