#!/usr/bin/env python3
"""scikit-learn's side of bench/keras_heads_vs_sklearn.sh, on the same data and split as
configs/keras_regression.yaml and configs/keras_binary.yaml.
  regression: MLPRegressor((64, 64), relu, adam lr 1e-3, batch 32, no L2, EPOCHS full epochs) per seed
  binary:     LogisticRegression (lbfgs, C=1, max_iter 1000) on T-shirt (0) vs shirt (6)
Prints one JSON line per result."""
import gzip, json, sys, time, warnings

import numpy as np
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import r2_score, roc_auc_score
from sklearn.neural_network import MLPRegressor

warnings.filterwarnings("ignore")  # MLPRegressor warns that max_iter ended before convergence: intended

def regression(epochs, seeds):
    tr = np.loadtxt("configs/data/diabetes3_train.csv", delimiter=",", skiprows=1)
    te = np.loadtxt("configs/data/diabetes3_test.csv", delimiter=",", skiprows=1)
    for seed in range(seeds):
        m = MLPRegressor((64, 64), alpha=0.0, batch_size=32, learning_rate_init=1e-3, max_iter=epochs, tol=0,
                         n_iter_no_change=10**9, random_state=seed).fit(tr[:, :3], tr[:, 3])
        print(json.dumps({"side": "sklearn", "task": "regression", "seed": seed, "epochs": epochs,
                          "test_r2": r2_score(te[:, 3], m.predict(te[:, :3]))}), flush=True)

def binary():
    d = "/usr/share/datasets/fashion-mnist/"
    def split(kind):
        with gzip.open(d + kind + "-images-idx3-ubyte.gz") as f:
            x = np.frombuffer(f.read(), np.uint8, offset=16).reshape(-1, 784).astype(np.float32) / 255.0
        with gzip.open(d + kind + "-labels-idx1-ubyte.gz") as f:
            y = np.frombuffer(f.read(), np.uint8, offset=8)
        keep = (y == 0) | (y == 6)
        return x[keep], (y[keep] == 6).astype(int)
    (x, y), (xt, yt) = split("train"), split("t10k")
    t = time.time()
    m = LogisticRegression(max_iter=1000).fit(x, y)
    print(json.dumps({"side": "sklearn", "task": "binary", "test_accuracy": m.score(xt, yt),
                      "test_auc": roc_auc_score(yt, m.decision_function(xt)), "fit_seconds": time.time() - t}),
          flush=True)

if __name__ == "__main__":
    regression(int(sys.argv[1]), int(sys.argv[2]))
    binary()
