#!/usr/bin/env python3
"""Writes the ONNX fixtures of tests/io/test_onnx.cpp (checked in; rerun to remake them).

  LD_LIBRARY_PATH=/usr/lib/x86_64-linux-gnu/openblas-pthread /usr/bin/python3 make_torch_fixture.py

torch_cnn.onnx: a small CNN in Debian's PyTorch 1.13 (Conv-ReLU-BN-MaxPool, a residual block whose
Add has an identity shortcut, GlobalAveragePool, Flatten, Linear-ReLU-Dropout-Linear, Softmax),
trained with a few hundred seeded SGD steps on random data so that the batch-norm statistics are
not trivial, put in eval mode and exported with torch.onnx.export (opset 13, dynamic batch axis).
The export folds a BatchNorm that follows a Conv into it, hence BN after the ReLU, and leaves an
eval-mode Dropout out of the file (the operator test cases cover Dropout).
torch_cnn_input.bin holds 16 inputs [16, 1, 12, 12] and torch_cnn_probs.bin PyTorch's softmax
probabilities [16, 5] for them, raw little-endian float32.

bad_*.onnx: small models lockstep must refuse with a clear error (built with onnx.helper).
"""
import os

import numpy as np
import onnx
import torch
from onnx import TensorProto, helper

HERE = os.path.dirname(os.path.abspath(__file__))


class Block(torch.nn.Module):
    def __init__(self, c):
        super().__init__()
        self.conv1 = torch.nn.Conv2d(c, c, 3, padding=1)
        self.conv2 = torch.nn.Conv2d(c, c, 3, padding=1, bias=False)

    def forward(self, x):
        return torch.relu(self.conv2(torch.relu(self.conv1(x))) + x)


class Net(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = torch.nn.Conv2d(1, 6, 3, stride=1, padding=1)
        self.bn = torch.nn.BatchNorm2d(6)
        self.pool = torch.nn.MaxPool2d(2)
        self.block = Block(6)
        self.gap = torch.nn.AdaptiveAvgPool2d(1)
        self.fc1 = torch.nn.Linear(6, 8)
        self.drop = torch.nn.Dropout(0.25)
        self.fc2 = torch.nn.Linear(8, 5)

    def forward(self, x):
        x = self.pool(self.bn(torch.relu(self.conv(x))))  # BN after the ReLU: export keeps it a node
        x = torch.flatten(self.gap(self.block(x)), 1)
        return torch.softmax(self.fc2(self.drop(torch.relu(self.fc1(x)))), dim=1)


def torch_fixture():
    torch.manual_seed(11)
    net = Net()
    opt = torch.optim.SGD(net.parameters(), lr=0.05, momentum=0.9)
    gen = torch.Generator().manual_seed(12)
    for _ in range(300):
        x = torch.randn(32, 1, 12, 12, generator=gen) * 2.0 + 0.5
        y = torch.randint(0, 5, (32,), generator=gen)
        loss = torch.nn.functional.nll_loss(torch.log(net(x) + 1e-9), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
    net.eval()
    x = torch.randn(16, 1, 12, 12, generator=gen) * 2.0 + 0.5
    with torch.no_grad():
        probs = net(x)
    path = os.path.join(HERE, "torch_cnn.onnx")
    torch.onnx.export(net, x, path, opset_version=13, input_names=["image"], output_names=["probs"],
                      dynamic_axes={"image": {0: "batch"}, "probs": {0: "batch"}},
                      do_constant_folding=False)
    onnx.checker.check_model(onnx.load(path))
    x.numpy().astype("<f4").tofile(os.path.join(HERE, "torch_cnn_input.bin"))
    probs.numpy().astype("<f4").tofile(os.path.join(HERE, "torch_cnn_probs.bin"))


def save(name, nodes, inits, opset=13, inp=("x", [None, 8]), out=("y", [None, 4])):
    def info(n, dims):
        return helper.make_tensor_value_info(n, TensorProto.FLOAT, ["N" if d is None else d for d in dims])
    graph = helper.make_graph(nodes, name, [info(*inp)], [info(*out)], inits)
    model = helper.make_model(graph, producer_name="make_torch_fixture.py",
                              opset_imports=[helper.make_opsetid("", opset)])
    onnx.save(model, os.path.join(HERE, name + ".onnx"))


def bad_models():
    rng = np.random.default_rng(5)
    w = helper.make_tensor("fc.weight", TensorProto.FLOAT, [4, 8], rng.standard_normal(32).astype(np.float32))
    gemm = helper.make_node("Gemm", ["x", "fc.weight"], ["h"], name="fc", transB=1)
    # An operator lockstep does not have.
    save("bad_unknown_op", [gemm, helper.make_node("Celu", ["h"], ["y"], name="mystery")], [w])
    # B of shape [4, 7] for 8 input features.
    w7 = helper.make_tensor("fc.weight", TensorProto.FLOAT, [4, 7], rng.standard_normal(28).astype(np.float32))
    save("bad_init_shape", [helper.make_node("Gemm", ["x", "fc.weight"], ["y"], name="fc", transB=1)], [w7])
    # An opset newer than lockstep reads.
    save("bad_opset", [gemm, helper.make_node("Relu", ["h"], ["y"], name="act")], [w], opset=18)
    # int64 weights.
    wi = helper.make_tensor("fc.weight", TensorProto.INT64, [4, 8], list(range(32)))
    save("bad_int64_weights", [helper.make_node("Gemm", ["x", "fc.weight"], ["y"], name="fc", transB=1)], [wi])


if __name__ == "__main__":
    torch_fixture()
    bad_models()
