#!/usr/bin/env python3
"""A straightforward NumPy ALS, the reference for lockstep's ALS (bench/als_vs_numpy.sh).

The same formulation as lockstep and Spark ML (src/ml/recommendation.cpp):
  explicit: (sum_i v_i v_i^T + regParam * n_u * I) x = sum_i r_ui v_i          (ALS-WR)
  implicit: (V^T V + sum_i alpha|r| v_i v_i^T + regParam * n+_u * I) x = sum_{r>0} (1 + alpha|r|) v_i
items updated first, then users, maxIter times; the same starting factors (standard normals by
Box-Muller from a splitmix64 stream keyed by (seed, side, id), scaled to unit length), and each
normal-equation sum over an id's ratings in the order of the other side's id. Batched: the outer
products of all ratings are summed per id with np.add.reduceat and the systems solved with one
np.linalg.solve (Cholesky is what lockstep uses; both solve the same SPD systems).

usage: als_numpy.py TRAIN.csv TEST.csv [--rank 10] [--max-iter 10] [--reg-param 0.1]
       [--implicit] [--alpha 1.0] [--seed 0]
Prints one line: "numpy_als fit_s=<seconds> test_rmse=<rmse> test_rows=<scored> cold_rows=<dropped>"
(coldStartStrategy drop: test rows whose user or item is not in training are not scored).
"""
import argparse
import math
import time

import numpy as np

M64 = (1 << 64) - 1


def splitmix64(state):
    state = (state + 0x9E3779B97F4A7C15) & M64
    z = state
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & M64
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & M64
    return state, z ^ (z >> 31)


def initial_factor(seed, side, ident, rank):
    state = (seed * 0x9E3779B97F4A7C15 + side * 0xD1B54A32D192ED03 + ident * 0xC2B2AE3D27D4EB4F) & M64
    x = []
    norm2 = 0.0
    for _ in range(rank):
        state, u1 = splitmix64(state)
        state, u2 = splitmix64(state)
        a = float((u1 >> 11) + 1) * 2.0**-53
        b = float(u2 >> 11) * 2.0**-53
        z = math.sqrt(-2.0 * math.log(a)) * math.cos(2.0 * math.pi * b)
        x.append(z)
        norm2 += z * z
    return np.array(x) / math.sqrt(norm2)


def read(path):
    d = np.loadtxt(path, delimiter=",", skiprows=1, ndmin=2)
    return d[:, 0].astype(np.int64), d[:, 1].astype(np.int64), d[:, 2].astype(np.float64)


class Side:
    """The ratings of one side grouped by its id, each group sorted by the other side's id."""

    def __init__(self, own, other, r, other_ids):
        order = np.lexsort((other, own))  # by own id, then other id; stable
        own, other, self.r = own[order], other[order], r[order]
        self.ids, self.starts = np.unique(own, return_index=True)
        self.src = np.searchsorted(other_ids, other)  # row in the other side's table
        self.count = np.diff(np.append(self.starts, len(own)))


def solve(side, src, args):
    k = src.shape[1]
    v = src[side.src]  # one row per rating
    if args.implicit:
        c1 = args.alpha * np.abs(side.r)
        pos = side.r > 0
        a = np.add.reduceat(np.einsum("n,ni,nj->nij", c1, v, v), side.starts, axis=0)
        a += src.T @ src
        b = np.add.reduceat(v * np.where(pos, 1.0 + c1, 0.0)[:, None], side.starts, axis=0)
        n = np.add.reduceat(pos.astype(np.float64), side.starts)
    else:
        a = np.add.reduceat(np.einsum("ni,nj->nij", v, v), side.starts, axis=0)
        b = np.add.reduceat(v * side.r[:, None], side.starts, axis=0)
        n = side.count.astype(np.float64)
    a += (args.reg_param * n)[:, None, None] * np.eye(k)
    return np.linalg.solve(a, b[:, :, None])[:, :, 0]


def main():
    p = argparse.ArgumentParser()
    p.add_argument("train")
    p.add_argument("test")
    p.add_argument("--rank", type=int, default=10)
    p.add_argument("--max-iter", type=int, default=10)
    p.add_argument("--reg-param", type=float, default=0.1)
    p.add_argument("--implicit", action="store_true")
    p.add_argument("--alpha", type=float, default=1.0)
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args()
    u, i, r = read(args.train)
    tu, ti, tr = read(args.test)
    t0 = time.perf_counter()
    user_ids, item_ids = np.unique(u), np.unique(i)
    users, items = Side(u, i, r, item_ids), Side(i, u, r, user_ids)
    uf = np.array([initial_factor(args.seed, 0, int(x), args.rank) for x in user_ids])
    itf = np.array([initial_factor(args.seed, 1, int(x), args.rank) for x in item_ids])
    for _ in range(args.max_iter):
        itf = solve(items, uf, args)
        uf = solve(users, itf, args)
    fit_s = time.perf_counter() - t0
    ur = np.searchsorted(user_ids, tu).clip(0, len(user_ids) - 1)
    ir = np.searchsorted(item_ids, ti).clip(0, len(item_ids) - 1)
    warm = (user_ids[ur] == tu) & (item_ids[ir] == ti)
    pred = np.einsum("nk,nk->n", uf[ur[warm]], itf[ir[warm]])
    rmse = math.sqrt(np.mean((pred - tr[warm]) ** 2))
    print(f"numpy_als fit_s={fit_s:.3f} test_rmse={rmse:.9f} test_rows={int(warm.sum())} "
          f"cold_rows={int((~warm).sum())}")


if __name__ == "__main__":
    main()
