#!/usr/bin/env python3
"""Trains a small CNN on Fashion-MNIST in PyTorch, exports it to ONNX, and writes PyTorch's class
probabilities for the test images: the PyTorch side of bench/onnx_parity.sh.

  torch_onnx_cnn.py OUTDIR [--epochs 2] [--threads 2]

Writes OUTDIR/torch_cnn.onnx (opset 13, dynamic batch) and OUTDIR/torch_probs.csv
(index,probability_0..probability_9, '%.9g'), and prints the test accuracy. The network has the
operators lockstep imports: Conv, BatchNormalization, Relu, MaxPool, Add (a residual block),
Flatten, Gemm, Dropout.
"""
import argparse
import gzip
import os
import sys
import time

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

FMNIST = "/usr/share/datasets/fashion-mnist"


def idx(path):
    with gzip.open(path, "rb") as f:
        data = f.read()
    dims = data[3]
    shape = [int.from_bytes(data[4 + 4 * i:8 + 4 * i], "big") for i in range(dims)]
    return np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * dims).reshape(shape)


class Block(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.conv1 = nn.Conv2d(c, c, 3, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(c)
        self.conv2 = nn.Conv2d(c, c, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(c)

    def forward(self, x):
        return x + self.bn2(self.conv2(F.relu(self.bn1(self.conv1(x)))))


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(1, 16, 3, padding=1, bias=False)
        self.bn = nn.BatchNorm2d(16)
        self.block = Block(16)
        self.fc1 = nn.Linear(16 * 7 * 7, 64)
        self.drop = nn.Dropout(0.25)
        self.fc2 = nn.Linear(64, 10)

    def forward(self, x):
        x = F.max_pool2d(F.relu(self.bn(self.conv(x))), 2)
        x = F.max_pool2d(F.relu(self.block(x)), 2)
        x = torch.flatten(x, 1)
        return self.fc2(self.drop(F.relu(self.fc1(x))))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("outdir")
    ap.add_argument("--epochs", type=int, default=2)
    ap.add_argument("--threads", type=int, default=2)
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    torch.manual_seed(0)
    os.makedirs(a.outdir, exist_ok=True)
    x = torch.from_numpy(idx(f"{FMNIST}/train-images-idx3-ubyte.gz").astype(np.float32) / 255.0).unsqueeze(1)
    y = torch.from_numpy(idx(f"{FMNIST}/train-labels-idx1-ubyte.gz").astype(np.int64))
    xt = torch.from_numpy(idx(f"{FMNIST}/t10k-images-idx3-ubyte.gz").astype(np.float32) / 255.0).unsqueeze(1)
    yt = idx(f"{FMNIST}/t10k-labels-idx1-ubyte.gz").astype(np.int64)
    net = Net()
    opt = torch.optim.Adam(net.parameters(), lr=1e-3)
    start = time.time()
    for epoch in range(a.epochs):
        net.train()
        perm = torch.randperm(len(x))
        for i in range(0, len(x), 64):
            b = perm[i:i + 64]
            opt.zero_grad()
            F.cross_entropy(net(x[b]), y[b]).backward()
            opt.step()
        print(f"epoch {epoch + 1}: {time.time() - start:.1f} s", file=sys.stderr)
    net.eval()
    with torch.no_grad():
        probs = torch.cat([F.softmax(net(xt[i:i + 1000]), dim=1) for i in range(0, len(xt), 1000)]).numpy()
    acc = float((probs.argmax(1) == yt).mean())
    print(f"pytorch test accuracy {acc:.4f}")
    torch.onnx.export(net, x[:1], f"{a.outdir}/torch_cnn.onnx", opset_version=13, input_names=["input"],
                      output_names=["logits"], dynamic_axes={"input": {0: "batch"}, "logits": {0: "batch"}})
    with open(f"{a.outdir}/torch_probs.csv", "w") as f:
        f.write("index," + ",".join(f"probability_{j}" for j in range(10)) + "\n")
        for i, p in enumerate(probs):
            f.write(f"{i}," + ",".join(f"{v:.9g}" for v in p) + "\n")


if __name__ == "__main__":
    main()
