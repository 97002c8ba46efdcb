#!/usr/bin/python3
"""PyTorch peer for the Fashion-MNIST MLP benchmark (side-by-side with lockstep).

Model: MLP 784-256-128-10 (ReLU), PyTorch default Linear init.
Data:  Fashion-MNIST decoded from the IDX .gz files with gzip+numpy, pixels x/255.
Train: softmax cross-entropy, SGD(lr, momentum), shuffled each epoch, last partial
       batch dropped.

Modes (exactly one):
  --threads N   single process, torch.set_num_threads(N)          -> mode "threadsN"
  --ddp N       N processes (torch.multiprocessing, spawn), gloo
                DistributedDataParallel, 1 thread each, global batch
                split evenly (per-rank batch = batch/N), each rank its
                own shard via DistributedSampler(drop_last=True)   -> mode "ddpN"

Timing covers the training loop only (no data loading, no evaluation). The first
--warmup-steps optimizer steps (default 20) of the first epoch are excluded from
samples_per_sec: the clock for it starts after step 20. train_seconds is the wall
time of the whole loop including those warm-up steps. In DDP mode the times are
taken on rank 0 between dist.barrier() calls. Test accuracy on the 10k test set is
computed after training.

Prints exactly one JSON line on stdout. Run it as PEERS.md says, e.g.
  LD_LIBRARY_PATH=/usr/lib/x86_64-linux-gnu/openblas-pthread /usr/bin/python3 bench/torch_mlp.py --threads 1
  OMP_WAIT_POLICY=passive LD_LIBRARY_PATH=... /usr/bin/python3 bench/torch_mlp.py --threads 2
  LD_LIBRARY_PATH=... /usr/bin/python3 bench/torch_mlp.py --ddp 2
"""

import argparse
import gzip
import json
import os
import socket
import sys
import time

DATA_DIR_DEFAULT = "/usr/share/datasets/fashion-mnist"


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    g = p.add_mutually_exclusive_group()
    g.add_argument("--threads", type=int, default=None, help="single process with N intra-op threads")
    g.add_argument("--ddp", type=int, default=None, help="N gloo DDP processes, 1 thread each")
    p.add_argument("--lr", type=float, default=0.05)
    p.add_argument("--momentum", type=float, default=0.9)
    p.add_argument("--batch", type=int, default=64, help="global batch size")
    p.add_argument("--epochs", type=int, default=1)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--warmup-steps", type=int, default=20,
                   help="steps at the start of training excluded from samples_per_sec")
    p.add_argument("--data-dir", default=DATA_DIR_DEFAULT)
    a = p.parse_args(argv)
    if a.threads is None and a.ddp is None:
        a.threads = 1
    n = a.threads if a.threads is not None else a.ddp
    if n < 1:
        p.error("thread / process count must be >= 1")
    if a.ddp is not None and a.batch % a.ddp != 0:
        p.error(f"--batch {a.batch} is not divisible by --ddp {a.ddp}")
    return a


# BLAS / OpenMP thread counts must be fixed before torch (and libopenblas) is loaded.
# torch.set_num_threads() does not resize OpenBLAS's own pthread pool, so we size it
# here to match the mode (unless the caller set it explicitly). Spawned DDP children
# inherit this environment.
ARGS = parse_args() if __name__ == "__main__" else None
if ARGS is not None:
    _n = ARGS.threads if ARGS.threads is not None else 1
    os.environ.setdefault("OPENBLAS_NUM_THREADS", str(_n))
    os.environ.setdefault("OMP_NUM_THREADS", str(_n))

import numpy as np  # noqa: E402
import torch  # noqa: E402
import torch.distributed as dist  # noqa: E402
import torch.multiprocessing as mp  # noqa: E402
import torch.nn as nn  # noqa: E402
import torch.nn.functional as F  # noqa: E402


def read_idx_gz(path):
    with gzip.open(path, "rb") as f:
        raw = f.read()
    magic = int.from_bytes(raw[0:4], "big")
    if magic >> 8 != 0x08:  # 0x08 = unsigned byte data
        raise ValueError(f"{path}: unsupported IDX type, magic {magic:#x}")
    ndim = magic & 0xFF
    dims = [int.from_bytes(raw[4 + 4 * i:8 + 4 * i], "big") for i in range(ndim)]
    data = np.frombuffer(raw, dtype=np.uint8, offset=4 + 4 * ndim)
    return data.reshape(dims)


def load_split(data_dir, prefix):
    x = read_idx_gz(os.path.join(data_dir, f"{prefix}-images-idx3-ubyte.gz"))
    y = read_idx_gz(os.path.join(data_dir, f"{prefix}-labels-idx1-ubyte.gz"))
    # Scale in numpy (not torch) so the parent process starts no OpenMP pool.
    x = (x.reshape(x.shape[0], -1).astype(np.float32) / np.float32(255.0))
    return torch.from_numpy(np.ascontiguousarray(x)), torch.from_numpy(y.astype(np.int64))


def make_model():
    return nn.Sequential(
        nn.Linear(784, 256), nn.ReLU(),
        nn.Linear(256, 128), nn.ReLU(),
        nn.Linear(128, 10),
    )


@torch.no_grad()
def test_accuracy(model, x, y):
    model.eval()
    correct = 0
    for i in range(0, x.shape[0], 1000):
        correct += (model(x[i:i + 1000]).argmax(dim=1) == y[i:i + 1000]).sum().item()
    model.train()
    return correct / x.shape[0]


def run_single(a, xtr, ytr, xte, yte):
    torch.set_num_threads(a.threads)
    torch.manual_seed(a.seed)
    model = make_model()
    opt = torch.optim.SGD(model.parameters(), lr=a.lr, momentum=a.momentum)
    gen = torch.Generator().manual_seed(a.seed + 1)
    n = xtr.shape[0]
    steps_per_epoch = n // a.batch  # drop last partial batch

    step = 0
    t_timed = None
    timed_samples = 0
    loss_v = float("nan")
    t0 = time.perf_counter()
    for _ in range(a.epochs):
        perm = torch.randperm(n, generator=gen)
        for s in range(steps_per_epoch):
            idx = perm[s * a.batch:(s + 1) * a.batch]
            xb, yb = xtr[idx], ytr[idx]
            opt.zero_grad(set_to_none=True)
            loss = F.cross_entropy(model(xb), yb)
            loss.backward()
            opt.step()
            step += 1
            if step == a.warmup_steps:  # exclude the first warm-up steps from throughput
                t_timed = time.perf_counter()
            elif step > a.warmup_steps:
                timed_samples += a.batch
        loss_v = loss.item()
    t1 = time.perf_counter()
    if t_timed is None:  # fewer steps than warm-up: time everything
        t_timed, timed_samples = t0, step * a.batch
    acc = test_accuracy(model, xte, yte)
    return dict(mode=f"threads{a.threads}", threads=a.threads, ranks=1, per_rank_batch=a.batch,
                steps=step, train_seconds=t1 - t0, timed_seconds=t1 - t_timed,
                timed_samples=timed_samples, samples_per_sec=timed_samples / (t1 - t_timed),
                test_accuracy=acc, final_loss=loss_v)


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def ddp_worker(rank, a, world, port, xtr, ytr, xte, yte, q):
    torch.set_num_threads(1)
    os.environ["MASTER_ADDR"] = "127.0.0.1"
    os.environ["MASTER_PORT"] = str(port)
    dist.init_process_group("gloo", rank=rank, world_size=world)
    try:
        torch.manual_seed(a.seed)  # DDP also broadcasts rank 0's parameters at construction
        model = nn.parallel.DistributedDataParallel(make_model())
        opt = torch.optim.SGD(model.parameters(), lr=a.lr, momentum=a.momentum)
        from torch.utils.data.distributed import DistributedSampler
        sampler = DistributedSampler(range(xtr.shape[0]), num_replicas=world, rank=rank,
                                     shuffle=True, seed=a.seed + 1, drop_last=True)
        pb = a.batch // world
        steps_per_epoch = len(sampler) // pb  # drop last partial batch of the shard

        step = 0
        t_timed = None
        timed_samples = 0
        loss_v = float("nan")
        dist.barrier()
        t0 = time.perf_counter()
        for e in range(a.epochs):
            sampler.set_epoch(e)
            perm = torch.tensor(list(iter(sampler)), dtype=torch.int64)
            for s in range(steps_per_epoch):
                idx = perm[s * pb:(s + 1) * pb]
                xb, yb = xtr[idx], ytr[idx]
                opt.zero_grad(set_to_none=True)
                loss = F.cross_entropy(model(xb), yb)
                loss.backward()  # gradient allreduce (mean over ranks) happens here
                opt.step()
                step += 1
                if step == a.warmup_steps:  # exclude the first warm-up steps from throughput
                    dist.barrier()
                    t_timed = time.perf_counter()
                elif step > a.warmup_steps:
                    timed_samples += a.batch  # global samples
            loss_v = loss.item()
        dist.barrier()
        t1 = time.perf_counter()
        if rank == 0:
            if t_timed is None:
                t_timed, timed_samples = t0, step * a.batch
            acc = test_accuracy(model.module, xte, yte)
            q.put(dict(mode=f"ddp{world}", threads=1, ranks=world, per_rank_batch=pb,
                       steps=step, train_seconds=t1 - t0, timed_seconds=t1 - t_timed,
                       timed_samples=timed_samples,
                       samples_per_sec=timed_samples / (t1 - t_timed),
                       test_accuracy=acc, final_loss=loss_v))
        dist.barrier()
    finally:
        dist.destroy_process_group()


def run_ddp(a, xtr, ytr, xte, yte):
    world = a.ddp
    ctx = mp.get_context("spawn")
    q = ctx.SimpleQueue()
    # Tensors are passed to the children through shared memory (no reload per rank).
    for t in (xtr, ytr, xte, yte):
        t.share_memory_()
    mp.spawn(ddp_worker, args=(a, world, _free_port(), xtr, ytr, xte, yte, q),
             nprocs=world, join=True)
    return q.get()


def main():
    a = ARGS
    xtr, ytr = load_split(a.data_dir, "train")
    xte, yte = load_split(a.data_dir, "t10k")
    res = run_single(a, xtr, ytr, xte, yte) if a.ddp is None else run_ddp(a, xtr, ytr, xte, yte)
    out = {"peer": "pytorch", "mode": res.pop("mode")}
    out.update(res)
    out.update(epochs=a.epochs, batch=a.batch, lr=a.lr, momentum=a.momentum, seed=a.seed,
               warmup_steps=a.warmup_steps, torch=torch.__version__,
               omp_wait_policy=os.environ.get("OMP_WAIT_POLICY", ""),
               openblas_num_threads=os.environ.get("OPENBLAS_NUM_THREADS", ""),
               openblas_coretype=os.environ.get("OPENBLAS_CORETYPE", ""),
               ld_library_path=os.environ.get("LD_LIBRARY_PATH", ""))
    for k in ("samples_per_sec", "train_seconds", "timed_seconds", "final_loss"):
        out[k] = round(out[k], 4)
    print(json.dumps(out), flush=True)


if __name__ == "__main__":
    main()
