#!/usr/bin/python3
"""scikit-learn side of bench/ml_vs_sklearn.sh: fits one estimator with parameters equivalent to
lockstep's (see the translations in docs/ml.md) and prints one JSON line like build/bench/ml_fit.
Usage: sklearn_fit.py ESTIMATOR"""
import gzip
import json
import sys
import time

import numpy as np

D = "/usr/share/datasets/fashion-mnist/"


def fmnist(split):
    with gzip.open(D + split + "-images-idx3-ubyte.gz") as f:
        X = np.frombuffer(f.read(), np.uint8, offset=16).reshape(-1, 784) / 255.0
    with gzip.open(D + split + "-labels-idx1-ubyte.gz") as f:
        y = np.frombuffer(f.read(), np.uint8, offset=8)
    return X, y


def linear_objective(est, m, X, y, reg):
    """(1/n) sum_i loss_i + reg/2 |coef|^2: softmax cross-entropy, or the one-vs-rest hinges."""
    Z = X @ m.coef_.T + m.intercept_
    if est == "logistic":
        Z = Z - Z.max(1, keepdims=True)
        loss = np.log(np.exp(Z).sum(1)) - Z[np.arange(len(y)), y]
    else:
        T = np.where(y[:, None] == np.arange(Z.shape[1])[None, :], 1.0, -1.0)
        loss = np.maximum(0.0, 1.0 - T * Z).sum(1)
    return float(loss.mean() + 0.5 * reg * (m.coef_ ** 2).sum())


def main():
    est = sys.argv[1]
    out = {"estimator": est, "peer": "scikit-learn"}
    if est == "linear":
        rng = np.random.default_rng(7)
        n, d = 1_000_000, 100
        X = rng.standard_normal((n, d), dtype=np.float32).astype(np.float64)
        beta = np.array([1.0 if j % 3 == 0 else 0.1 * (j % 7) for j in range(d)])
        y = X @ beta + 3.0 + rng.standard_normal(n)
        from sklearn.linear_model import LinearRegression
        t = time.time()
        m = LinearRegression().fit(X, y)
        out["fit_seconds"] = time.time() - t
        out["train_rmse"] = float(np.sqrt(np.mean((m.predict(X) - y) ** 2)))
        print(json.dumps(out))
        return
    X, y = fmnist("train")
    Xt, yt = fmnist("t10k")
    n = len(y)
    t = time.time()
    if est == "logistic":
        from sklearn.linear_model import LogisticRegression
        m = LogisticRegression(C=1.0 / (0.001 * n), max_iter=100, tol=1e-6).fit(X, y)
    elif est == "svc":
        from sklearn.svm import LinearSVC
        m = LinearSVC(loss="hinge", C=1.0 / (0.001 * n), max_iter=1000).fit(X, y)
    elif est == "forest":
        from sklearn.ensemble import RandomForestClassifier
        m = RandomForestClassifier(n_estimators=20, max_depth=10, n_jobs=2, random_state=0).fit(X, y)
    elif est == "kmeans":
        from sklearn.cluster import KMeans
        m = KMeans(n_clusters=10, n_init=1, max_iter=300, tol=1e-4, random_state=0).fit(X)
        out["iterations"] = int(m.n_iter_)
    elif est == "pca":
        from sklearn.decomposition import PCA
        m = PCA(n_components=50).fit(X)
    else:
        sys.exit("unknown estimator " + est)
    out["fit_seconds"] = time.time() - t
    if est == "kmeans":
        out["cost"] = float(m.inertia_)
    elif est == "pca":
        out["explained_variance_ratio"] = float(m.explained_variance_ratio_.sum())
    else:
        out["accuracy"] = float(m.score(Xt, yt))
    if est in ("logistic", "svc"):  # lockstep's objective (docs/ml.md) at scikit-learn's solution
        out["objective"] = linear_objective(est, m, X, y, 0.001)
    print(json.dumps(out))


if __name__ == "__main__":
    import warnings
    warnings.simplefilter("ignore")
    main()
