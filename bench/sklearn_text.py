#!/usr/bin/python3
"""scikit-learn side of bench/text_vs_sklearn.sh: the same text pipeline as lockstep's
(lower case, tokens of two or more word characters, Spark's English stop words, 2^18 hashed term
counts, IDF, then a classifier) with scikit-learn's HashingVectorizer + TfidfTransformer, on the
SpamAssassin split that scripts/fetch_spam.sh writes. Prints one JSON line.
Usage: sklearn_text.py DATA_DIR ESTIMATOR REG_PARAM MAX_ITER STOP_WORDS_FILE
  ESTIMATOR: logistic | svc | bayes"""
import csv
import json
import sys
import time

import numpy as np

csv.field_size_limit(1 << 30)


def read(path):
    with open(path, newline="", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    return [r["text"] for r in rows], np.array([int(r["label"]) for r in rows])


def main():
    data, est, reg, max_iter, stop_file = sys.argv[1], sys.argv[2], float(sys.argv[3]), int(sys.argv[4]), sys.argv[5]
    from sklearn.feature_extraction.text import HashingVectorizer, TfidfTransformer
    from sklearn.pipeline import make_pipeline
    stop = [w for w in open(stop_file).read().split() if w]
    X, y = read(data + "/spam_train.csv")
    Xt, yt = read(data + "/spam_test.csv")
    n = len(y)
    # token_pattern's default, \b\w\w+\b, is lockstep's RegexTokenizer(pattern \W+, minTokenLength 2).
    steps = [HashingVectorizer(n_features=1 << 18, alternate_sign=False, norm=None, stop_words=stop)]
    if est == "bayes":
        from sklearn.naive_bayes import MultinomialNB
        steps += [MultinomialNB(alpha=1.0)]
    else:
        steps += [TfidfTransformer(norm=None, smooth_idf=True)]
        if est == "logistic":
            from sklearn.linear_model import LogisticRegression
            steps += [LogisticRegression(C=1.0 / (reg * n), max_iter=max_iter, tol=1e-6)]
        else:
            from sklearn.svm import LinearSVC
            steps += [LinearSVC(loss="hinge", C=1.0 / (reg * n), max_iter=max_iter * 10)]
    m = make_pipeline(*steps)
    t = time.time()
    m.fit(X, y)
    fit = time.time() - t
    print(json.dumps({"estimator": est, "peer": "scikit-learn", "fit_seconds": fit,
                      "accuracy": float((m.predict(Xt) == yt).mean()), "train_rows": n}))


if __name__ == "__main__":
    main()
