#!/usr/bin/python3
"""PyTorch peer for the CNN benchmark (bench/cnn_vs_pytorch.sh), built from a lockstep config.

The model is the config's model.layers translated into torch.nn (conv2d, max_pool2d, avg_pool2d,
global_avg_pool, flatten, dense, relu, sigmoid, tanh, dropout, batchnorm, residual, and any
layer's `activation:`), initialised as model.init says; the optimizer (sgd, adam, adamw with the
config's keys), the schedule (constant, step, cosine, warm-up, per global step as docs/config.md
says), training.batch_size, training.eval_batch, training.loss (softmax_cross_entropy) and
data.scale come from the config too, and the data from its IDX files (data.format: idx). So the
peer follows the config when it changes.

Tasks (--task):
  train   train for --epochs (or --max-steps), shuffled each epoch, last partial batch dropped;
          samples_per_sec leaves out the first --warmup-steps steps (default 20); then the test
          accuracy (a sanity check that both sides train the same model).
  infer   forward passes only (model.eval(), torch.no_grad()) over --infer-split's images in
          chunks of training.eval_batch rows, after one untimed warm-up chunk.
  decode  torchvision.datasets.ImageFolder(--folder) + DataLoader(num_workers=--workers) iterated
          once with ToTensor (images converted to --channels first, as lockstep's data.channels);
          timed from the listing to the last batch; images_per_sec_per_rank = images / s / workers.

Modes for train and infer (exactly one):
  --threads N   one process, torch.set_num_threads(N)                      -> mode "threadsN"
  --ddp N       N processes (spawn) over gloo, 1 thread each: train with DistributedDataParallel,
                the global batch split evenly (DistributedSampler, drop_last); infer with each
                process taking a contiguous 1/N of the rows; times on rank 0 between barriers
                                                                           -> mode "ddpN"

Prints exactly one JSON line on stdout. Run it as /work/shared/PEERS.md says, e.g.
  LD_LIBRARY_PATH=/usr/lib/x86_64-linux-gnu/openblas-pthread /usr/bin/python3 bench/torch_cnn.py \\
      --config configs/fmnist_cnn.yaml --task train --threads 1
"""

import argparse
import gzip
import json
import math
import os
import socket
import time


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--config", default="configs/fmnist_cnn.yaml")
    p.add_argument("--set", action="append", default=[], metavar="KEY.PATH=VALUE",
                   help="override a config key, as lockstep's --set (the value is read as YAML)")
    p.add_argument("--task", choices=("train", "infer", "decode"), default="train")
    g = p.add_mutually_exclusive_group()
    g.add_argument("--threads", type=int, default=None)
    g.add_argument("--ddp", type=int, default=None)
    p.add_argument("--epochs", type=int, default=None, help="default: training.epochs")
    p.add_argument("--max-steps", type=int, default=0, help="stop after this many steps (0: none)")
    p.add_argument("--warmup-steps", type=int, default=20)
    p.add_argument("--seed", type=int, default=None, help="default: training.seed")
    p.add_argument("--infer-split", choices=("train", "test"), default="test")
    p.add_argument("--infer-batch", type=int, default=None, help="default: training.eval_batch (1000)")
    p.add_argument("--folder", default="/tmp/fmnist_png/png/train")
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--channels", type=int, default=1)
    p.add_argument("--loader-batch", type=int, default=64)
    a = p.parse_args(argv)
    if a.threads is None and a.ddp is None:
        a.threads = 1
    return a


# Thread counts must be fixed before torch (and OpenBLAS) load; spawned children inherit them.
ARGS = parse_args() if __name__ == "__main__" else None
if ARGS is not None:
    _n = ARGS.threads if ARGS.threads is not None and ARGS.task != "decode" else 1
    os.environ.setdefault("OPENBLAS_NUM_THREADS", str(_n))
    os.environ.setdefault("OMP_NUM_THREADS", str(_n))

import numpy as np  # noqa: E402
import torch  # noqa: E402
import torch.distributed as dist  # noqa: E402
import torch.multiprocessing as mp  # noqa: E402
import torch.nn as nn  # noqa: E402
import torch.nn.functional as F  # noqa: E402
import yaml  # noqa: E402


# ---------------------------------------------------------------- the config's model in torch.nn
def pair(v, default=None):
    if v is None:
        v = default
    return (int(v), int(v)) if isinstance(v, (int, float)) else (int(v[0]), int(v[-1]))


def same_pads(size, k, s, d):
    """TensorFlow's `same`: output ceil(in / s), the odd row/column at the bottom/right."""
    out = -(-size // s)
    total = max((out - 1) * s + (k - 1) * d + 1 - size, 0)
    return total // 2, total - total // 2


def pads_for(spec, shape, k, s, d=(1, 1)):
    """(top, bottom, left, right) for a padding spec: valid, same, N or [ph, pw]."""
    pad = spec.get("padding", "valid")
    if pad == "valid":
        return 0, 0, 0, 0
    if pad == "same":
        t, b = same_pads(shape[1], k[0], s[0], d[0])
        l_, r = same_pads(shape[2], k[1], s[1], d[1])
        return t, b, l_, r
    ph, pw = pair(pad)
    return ph, ph, pw, pw


class Residual(nn.Module):
    def __init__(self, body, shortcut):
        super().__init__()
        self.body, self.shortcut = body, shortcut

    def forward(self, x):
        return self.body(x) + self.shortcut(x)


class PadMax(nn.Module):
    """Asymmetric `same` padding for max pooling (padded positions never win)."""
    def __init__(self, pads):
        super().__init__()
        self.pads = pads  # (left, right, top, bottom)

    def forward(self, x):
        return F.pad(x, self.pads, value=float("-inf"))


ACTIVATIONS = {"relu": nn.ReLU, "sigmoid": nn.Sigmoid, "tanh": nn.Tanh}


def out_hw(size, k, s, d, lo, hi):
    return (size + lo + hi - d * (k - 1) - 1) // s + 1


def conv2d(spec, shape):
    k, s, d = pair(spec["kernel"]), pair(spec.get("stride"), 1), pair(spec.get("dilation"), 1)
    t, b, l_, r = pads_for(spec, shape, k, s, d)
    mods = []
    if t != b or l_ != r:
        mods.append(nn.ZeroPad2d((l_, r, t, b)))
        shape = (shape[0], shape[1] + t + b, shape[2] + l_ + r)
        t = b = l_ = r = 0
    ph, pw = t, l_
    mods.append(nn.Conv2d(shape[0], int(spec["filters"]), k, s, (ph, pw), d, int(spec.get("groups", 1)),
                          bool(spec.get("bias", True))))
    return mods, (int(spec["filters"]), out_hw(shape[1], k[0], s[0], d[0], t, b),
                  out_hw(shape[2], k[1], s[1], d[1], l_, r))


def pool2d(spec, shape, kind):
    k = pair(spec["kernel"])
    s = pair(spec.get("stride"), k)
    t, b, l_, r = pads_for(spec, shape, k, s)
    mods = []
    if t != b or l_ != r:
        if kind == "avg_pool2d":
            raise NotImplementedError("avg_pool2d with asymmetric padding")
        mods.append(PadMax((l_, r, t, b)))
        shape = (shape[0], shape[1] + t + b, shape[2] + l_ + r)
        t = b = l_ = r = 0
    if kind == "max_pool2d":
        mods.append(nn.MaxPool2d(k, s, (t, l_)))
    else:
        mods.append(nn.AvgPool2d(k, s, (t, l_), count_include_pad=False))
    return mods, (shape[0], out_hw(shape[1], k[0], s[0], 1, t, b), out_hw(shape[2], k[1], s[1], 1, l_, r))


def build_layers(specs, shape, last_is_output=True):
    """torch modules for a list of lockstep layer mappings; returns (modules, output shape)."""
    mods = []
    for i, spec in enumerate(specs):
        typ = spec["type"]
        if typ == "conv2d":
            m, shape = conv2d(spec, shape)
            mods += m
        elif typ in ("max_pool2d", "avg_pool2d"):
            m, shape = pool2d(spec, shape, typ)
            mods += m
        elif typ == "global_avg_pool":
            mods += [nn.AdaptiveAvgPool2d(1), nn.Flatten()]
            shape = (shape[0],)
        elif typ == "flatten":
            mods.append(nn.Flatten())
            shape = (math.prod(shape),)
        elif typ == "dense":
            if len(shape) > 1:
                mods.append(nn.Flatten())
                shape = (math.prod(shape),)
            mods.append(nn.Linear(shape[0], int(spec["units"]), bool(spec.get("bias", True))))
            shape = (int(spec["units"]),)
        elif typ in ACTIVATIONS:
            mods.append(ACTIVATIONS[typ]())
        elif typ == "dropout":
            mods.append(nn.Dropout(float(spec.get("rate", 0.0))))
        elif typ == "batchnorm":
            bn = nn.BatchNorm2d if len(shape) == 3 else nn.BatchNorm1d
            mods.append(bn(shape[0], eps=float(spec.get("eps", 1e-5)), momentum=float(spec.get("momentum", 0.1)),
                           affine=bool(spec.get("affine", True))))
        elif typ == "residual":
            body, out = build_layers(spec["layers"], shape, False)
            sc = spec.get("shortcut", "identity")
            if sc == "identity":
                short = nn.Identity()
            else:
                short, sc_out = build_layers(sc if isinstance(sc, list) else [sc], shape, False)
                short = nn.Sequential(*short)
                assert tuple(sc_out) == tuple(out), f"residual shortcut shape {sc_out} != {out}"
            mods.append(Residual(nn.Sequential(*body), short))
            shape = out
        else:
            raise NotImplementedError(f"layer type {typ!r}")
        act = spec.get("activation", "linear")
        if act in ACTIVATIONS:
            mods.append(ACTIVATIONS[act]())
        elif act == "softmax" and not (last_is_output and i == len(specs) - 1):
            raise NotImplementedError("softmax activation before the last layer")
    return mods, shape


def init_weights(model, init):
    fn = {"he_uniform": lambda w: nn.init.kaiming_uniform_(w, nonlinearity="relu"),
          "he_normal": lambda w: nn.init.kaiming_normal_(w, nonlinearity="relu"),
          "xavier_uniform": nn.init.xavier_uniform_, "xavier_normal": nn.init.xavier_normal_}[init]
    for m in model.modules():
        if isinstance(m, (nn.Conv2d, nn.Linear)):
            fn(m.weight)
            if m.bias is not None:
                nn.init.zeros_(m.bias)


def make_model(cfg, shape):
    mods, _ = build_layers(cfg["model"]["layers"], shape)
    model = nn.Sequential(*mods)
    init_weights(model, cfg["model"].get("init", "he_uniform"))
    return model


def make_optimizer(cfg, params):
    o = cfg.get("optimizer", {})
    typ = o.get("type", "sgd")
    wd = float(o.get("weight_decay", 0.0))
    if typ == "sgd":
        return torch.optim.SGD(params, lr=float(o.get("lr", 0.01)), momentum=float(o.get("momentum", 0.0)),
                               nesterov=bool(o.get("nesterov", False)), weight_decay=wd)
    betas = (float(o.get("beta1", 0.9)), float(o.get("beta2", 0.999)))
    cls = {"adam": torch.optim.Adam, "adamw": torch.optim.AdamW}[typ]
    return cls(params, lr=float(o.get("lr", 0.001)), betas=betas, eps=float(o.get("eps", 1e-8)), weight_decay=wd)


def lr_factor(cfg, base_lr, steps_per_epoch, epochs):
    """The multiplier of the base rate at global step t (docs/config.md, schedule)."""
    s = cfg.get("schedule", {}) or {}
    typ, warm = s.get("type", "constant"), int(s.get("warmup_steps", 0))
    total = steps_per_epoch * epochs
    min_lr = float(s.get("min_lr", 0.0))

    def f(t):
        if typ == "step":
            v = float(s.get("gamma", 0.1)) ** ((t // steps_per_epoch) // int(s.get("step_size", 1)))
        elif typ == "cosine":
            u = min(max((t - warm) / max(total - warm, 1), 0.0), 1.0)
            v = (min_lr + (base_lr - min_lr) * (1 + math.cos(math.pi * u)) / 2) / base_lr
        else:
            v = 1.0
        return v * (t + 1) / warm if t < warm else v
    return f


# ---------------------------------------------------------------- data
def read_idx_gz(path):
    with gzip.open(path, "rb") as f:
        raw = f.read()
    magic = int.from_bytes(raw[0:4], "big")
    if magic >> 8 != 0x08:
        raise ValueError(f"{path}: unsupported IDX type, magic {magic:#x}")
    ndim = magic & 0xFF
    dims = [int.from_bytes(raw[4 + 4 * i:8 + 4 * i], "big") for i in range(ndim)]
    return np.frombuffer(raw, dtype=np.uint8, offset=4 + 4 * ndim).reshape(dims)


def load_split(cfg, split):
    d = cfg["data"]
    if d.get("format") != "idx":
        raise NotImplementedError(f"data.format {d.get('format')!r} (the peer reads idx)")
    x = read_idx_gz(d[split]["features"])
    y = read_idx_gz(d[split]["labels"])
    if d.get("classes"):  # keep these labels, relabelled 0, 1, ... in list order
        lut = np.full(256, -1, dtype=np.int64)
        lut[np.array(d["classes"])] = np.arange(len(d["classes"]))
        keep = lut[y] >= 0
        x, y = x[keep], lut[y[keep]]
    x = x.reshape(x.shape[0], 1, x.shape[1], x.shape[2]).astype(np.float32) * np.float32(d.get("scale", 1.0))
    return torch.from_numpy(np.ascontiguousarray(x)), torch.from_numpy(y.astype(np.int64))


# ---------------------------------------------------------------- train
@torch.no_grad()
def accuracy(model, x, y, chunk):
    model.eval()
    correct = sum((model(x[i:i + chunk]).argmax(1) == y[i:i + chunk]).sum().item() for i in range(0, len(x), chunk))
    model.train()
    return correct / len(x)


def train_loop(a, cfg, model, xtr, ytr, batches, world=1):
    """batches(epoch) yields index tensors of this process's rows; returns the timing dict."""
    t = cfg["training"]
    if t.get("loss", "softmax_cross_entropy") not in ("softmax_cross_entropy", "sparse_categorical_crossentropy"):
        raise NotImplementedError(f"training.loss {t.get('loss')!r}")
    opt = make_optimizer(cfg, model.parameters())
    base_lr = opt.param_groups[0]["lr"]
    gb = int(t.get("batch_size", 64))
    steps_per_epoch = len(xtr) // gb
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lr_factor(cfg, base_lr, steps_per_epoch, a.epochs))
    step, t_timed, timed, loss = 0, None, 0, None
    sync = dist.barrier if world > 1 else (lambda: None)
    sync()
    t0 = time.perf_counter()
    for e in range(a.epochs):
        for idx in batches(e):
            opt.zero_grad(set_to_none=True)
            loss = F.cross_entropy(model(xtr[idx]), ytr[idx])
            loss.backward()
            opt.step()
            sched.step()
            step += 1
            if step == a.warmup_steps:
                sync()
                t_timed = time.perf_counter()
            elif step > a.warmup_steps:
                timed += gb
            if a.max_steps and step >= a.max_steps:
                break
        if a.max_steps and step >= a.max_steps:
            break
    sync()
    t1 = time.perf_counter()
    if t_timed is None:
        t_timed, timed = t0, step * gb
    return dict(steps=step, batch_size=gb, train_seconds=t1 - t0, timed_seconds=t1 - t_timed, timed_samples=timed,
                samples_per_sec=timed / (t1 - t_timed), final_loss=loss.item())


def shuffled(n, gb, seed):
    def batches(e):
        perm = torch.randperm(n, generator=torch.Generator().manual_seed(seed * 1000003 + e))
        return (perm[s * gb:(s + 1) * gb] for s in range(n // gb))
    return batches


def run_train_single(a, cfg, data):
    xtr, ytr, xte, yte = data
    torch.set_num_threads(a.threads)
    torch.manual_seed(a.seed)
    model = make_model(cfg, tuple(xtr.shape[1:]))
    res = train_loop(a, cfg, model, xtr, ytr, shuffled(len(xtr), int(cfg["training"].get("batch_size", 64)), a.seed))
    res["test_accuracy"] = accuracy(model, xte, yte, int(cfg["training"].get("eval_batch", 1000)))
    return dict(mode=f"threads{a.threads}", threads=a.threads, ranks=1, **res)


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def ddp_worker(rank, a, cfg, world, port, data, q):
    torch.set_num_threads(1)
    os.environ["MASTER_ADDR"], os.environ["MASTER_PORT"] = "127.0.0.1", str(port)
    dist.init_process_group("gloo", rank=rank, world_size=world)
    try:
        q_item = ddp_train(rank, a, cfg, world, data) if a.task == "train" else ddp_infer(rank, a, cfg, world, data)
        if rank == 0:
            q.put(q_item)
        dist.barrier()
    finally:
        dist.destroy_process_group()


def ddp_train(rank, a, cfg, world, data):
    xtr, ytr, xte, yte = data
    torch.manual_seed(a.seed)
    model = nn.parallel.DistributedDataParallel(make_model(cfg, tuple(xtr.shape[1:])))
    from torch.utils.data.distributed import DistributedSampler
    sampler = DistributedSampler(range(len(xtr)), num_replicas=world, rank=rank, shuffle=True, seed=a.seed,
                                 drop_last=True)
    pb = int(cfg["training"].get("batch_size", 64)) // world

    def batches(e):
        sampler.set_epoch(e)
        perm = torch.tensor(list(iter(sampler)), dtype=torch.int64)
        return (perm[s * pb:(s + 1) * pb] for s in range(len(sampler) // pb))
    res = train_loop(a, cfg, model, xtr, ytr, batches, world)
    if rank == 0:
        res["test_accuracy"] = accuracy(model.module, xte, yte, int(cfg["training"].get("eval_batch", 1000)))
    return dict(mode=f"ddp{world}", threads=1, ranks=world, **res)


# ---------------------------------------------------------------- infer
@torch.no_grad()
def infer_rows(a, cfg, x, world=1):
    model = make_model(cfg, tuple(x.shape[1:]))
    model.eval()
    chunk = a.infer_batch or int(cfg["training"].get("eval_batch", 1000))
    model(x[:chunk])  # warm-up: oneDNN primitives for this shape
    sync = dist.barrier if world > 1 else (lambda: None)
    sync()
    t0 = time.perf_counter()
    checksum = 0.0
    for i in range(0, len(x), chunk):
        checksum += model(x[i:i + chunk]).sum().item()
    sync()
    return time.perf_counter() - t0, chunk


def ddp_infer(rank, a, cfg, world, data):
    x = data[0]
    n = len(x)
    lo, hi = n * rank // world, n * (rank + 1) // world
    torch.manual_seed(a.seed)
    sec, chunk = infer_rows(a, cfg, x[lo:hi], world)
    return dict(mode=f"ddp{world}", threads=1, ranks=world, rows=n, infer_batch=chunk, eval_seconds=sec,
                samples_per_sec=n / sec)


def run_infer_single(a, cfg, data):
    torch.set_num_threads(a.threads)
    torch.manual_seed(a.seed)
    x = data[0]
    sec, chunk = infer_rows(a, cfg, x)
    return dict(mode=f"threads{a.threads}", threads=a.threads, ranks=1, rows=len(x), infer_batch=chunk,
                eval_seconds=sec, samples_per_sec=len(x) / sec)


# ---------------------------------------------------------------- decode
def run_decode(a):
    import torchvision
    from PIL import Image
    torch.set_num_threads(1)
    mode = "L" if a.channels == 1 else "RGB"

    def loader(path):
        with open(path, "rb") as f:
            return Image.open(f).convert(mode)
    t0 = time.perf_counter()
    ds = torchvision.datasets.ImageFolder(a.folder, transform=torchvision.transforms.ToTensor(), loader=loader)
    t_list = time.perf_counter() - t0
    dl = torch.utils.data.DataLoader(ds, batch_size=a.loader_batch, shuffle=False, num_workers=a.workers)
    n = 0
    for xb, _ in dl:
        n += xb.shape[0]
    sec = time.perf_counter() - t0
    w = max(a.workers, 1)
    return dict(mode=f"workers{a.workers}", ranks=w, images=n, channels=a.channels, list_seconds=t_list,
                seconds=sec, images_per_sec=n / sec, images_per_sec_per_rank=n / sec / w)


def main():
    a = ARGS
    if a.task == "decode":
        res = run_decode(a)
        out = {"peer": "pytorch", "task": "decode", **res}
    else:
        with open(a.config) as f:
            cfg = yaml.safe_load(f)
        for kv in a.set:
            key, _, value = kv.partition("=")
            node, parts = cfg, key.split(".")
            for k in parts[:-1]:
                node = node.setdefault(k, {})
            node[parts[-1]] = yaml.safe_load(value)
        t = cfg.setdefault("training", {})
        a.epochs = a.epochs or int(t.get("epochs", 10))
        a.seed = a.seed if a.seed is not None else int(t.get("seed", 0))
        if a.task == "train":
            data = load_split(cfg, "train") + load_split(cfg, "test")
        else:
            data = load_split(cfg, a.infer_split)
        if a.ddp is None:
            res = (run_train_single if a.task == "train" else run_infer_single)(a, cfg, data)
        else:
            for tensor in data:
                tensor.share_memory_()
            q = mp.get_context("spawn").SimpleQueue()
            mp.spawn(ddp_worker, args=(a, cfg, a.ddp, _free_port(), data, q), nprocs=a.ddp, join=True)
            res = q.get()
        out = {"peer": "pytorch", "task": a.task, **res, "config": a.config, "epochs": a.epochs,
               "sets": a.set, "max_steps": a.max_steps, "seed": a.seed, "warmup_steps": a.warmup_steps}
    out.update(torch=torch.__version__, omp_wait_policy=os.environ.get("OMP_WAIT_POLICY", ""),
               openblas_coretype=os.environ.get("OPENBLAS_CORETYPE", ""),
               aten_cpu_capability=os.environ.get("ATEN_CPU_CAPABILITY", ""))
    for k, v in list(out.items()):
        if isinstance(v, float):
            out[k] = round(v, 4)
    print(json.dumps(out), flush=True)


if __name__ == "__main__":
    main()
