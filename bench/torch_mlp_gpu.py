# Usage: python3 bench/torch_mlp_gpu.py [BATCH] [DATA_DIR]   (scripts/gpu_check.sh runs it)
# PyTorch peer on the GPU: the same MLP (784-256-128-10, ReLU), SGD momentum 0.9 nesterov lr 0.05,
# on the Fashion-MNIST rows in DATA_DIR, batch 64, samples/s of epochs 2-3 (epoch 1 warms up).
import gzip, sys, time, numpy as np, torch
D = (sys.argv[2] if len(sys.argv) > 2 else "/usr/share/datasets/fashion-mnist").rstrip("/") + "/"
X = np.frombuffer(gzip.open(D + "train-images-idx3-ubyte.gz").read(), np.uint8, offset=16).reshape(-1, 784) / 255.0
y = np.frombuffer(gzip.open(D + "train-labels-idx1-ubyte.gz").read(), np.uint8, offset=8)
dev = "cuda"
X = torch.tensor(X, dtype=torch.float32, device=dev); y = torch.tensor(y, dtype=torch.long, device=dev)
B = int(sys.argv[1]) if len(sys.argv) > 1 else 64
m = torch.nn.Sequential(torch.nn.Linear(784, 256), torch.nn.ReLU(), torch.nn.Linear(256, 128), torch.nn.ReLU(), torch.nn.Linear(128, 10)).to(dev)
opt = torch.optim.SGD(m.parameters(), lr=0.05, momentum=0.9, nesterov=True)
for ep in range(3):
    torch.cuda.synchronize(); t = time.time(); perm = torch.randperm(len(y), device=dev)
    for i in range(0, len(y) - B + 1, B):
        idx = perm[i:i + B]; opt.zero_grad(set_to_none=True)
        torch.nn.functional.cross_entropy(m(X[idx]), y[idx]).backward(); opt.step()
    torch.cuda.synchronize(); dt = time.time() - t
    print("torch batch %d epoch %d: %.0f samples/s" % (B, ep + 1, (len(y) // B * B) / dt))
