#!/usr/bin/python3
"""PyTorch peer for the predict benchmark (bench/predict_vs_pytorch.sh): batch inference over an image folder.

What `lockstep predict CONFIG --checkpoint C --input FOLDER --output OUT.csv` does, in PyTorch:
  - list every image under --folder recursively (hidden names skipped, links to folders not
    followed), sorted by the path relative to the folder, as lockstep does; the class sub-folders
    are walked like any other folder (an ImageFolder-like dataset with one more level);
  - decode each with PIL, convert to data.channels (L or RGB), ToTensor (pixels / 255: the
    config's data.scale must be 1/255), then Normalize(data.mean, data.std) when the config has them;
  - score with the config's model.layers built by bench/torch_cnn.py's builder (random weights:
    speed only), model.eval() and torch.no_grad(), --batch images a forward call;
  - write origin,prediction,probability_0..k-1 (softmax, 6 significant digits) to --output.

Settings: --workers N (DataLoader num_workers), --threads N (torch.set_num_threads; pass
OMP_WAIT_POLICY=passive for 2), --procs P (P processes each scoring a contiguous 1/P of the sorted
files and writing a part, DDP-style sharding without a process group; the parent then joins the
parts into --output, in order). The time runs from a barrier after every process has imported
torch (listing, model construction, decoding, scoring and writing the CSV are all counted) to the
joined CSV, as lockstep's predict_seconds runs from after its start-up to its output.

Prints exactly one JSON line on stdout, e.g.
  LD_LIBRARY_PATH=/usr/lib/x86_64-linux-gnu/openblas-pthread /usr/bin/python3 bench/torch_predict.py \\
      --config configs/fmnist_folder_cnn.yaml --folder runs/fmnist_folder/png --output /tmp/p.csv \\
      --procs 2 --workers 1 --threads 1 --batch 256
"""

import argparse
import json
import os
import sys
import time


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--config", default="configs/fmnist_folder_cnn.yaml")
    p.add_argument("--folder", required=True)
    p.add_argument("--output", required=True)
    p.add_argument("--workers", type=int, default=0)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--procs", type=int, default=1)
    p.add_argument("--batch", type=int, default=1000)
    p.add_argument("--seed", type=int, default=42)
    return p.parse_args(argv)


# Thread counts must be fixed before torch (and OpenBLAS) load; spawned children inherit them.
ARGS = parse_args() if __name__ == "__main__" else None
if ARGS is not None:
    os.environ.setdefault("OPENBLAS_NUM_THREADS", str(ARGS.threads))
    os.environ.setdefault("OMP_NUM_THREADS", str(ARGS.threads))

import multiprocessing as mproc  # noqa: E402

import torch  # noqa: E402
import yaml  # noqa: E402

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import torch_cnn  # noqa: E402  (the config's model.layers in torch.nn)

def list_images(root):
    """Relative paths of the files under root (every one, as lockstep takes them), recursively, sorted by their bytes."""
    out = []
    for dirpath, dirnames, filenames in os.walk(root):  # followlinks=False: links to folders not walked
        dirnames[:] = [d for d in dirnames if not d.startswith(".")]
        rel = os.path.relpath(dirpath, root)
        for f in filenames:
            if not f.startswith("."):
                out.append(f if rel == "." else rel + "/" + f)
    out.sort(key=lambda s: s.encode())
    return out


class Images(torch.utils.data.Dataset):
    """An ImageFolder over a list of files: (tensor, index); labels are not read."""

    def __init__(self, root, files, channels, mean, std):
        import torchvision.transforms as T
        self.root, self.files, self.mode = root, files, "L" if channels == 1 else "RGB"
        steps = [T.ToTensor()]
        if mean is not None or std is not None:
            steps.append(T.Normalize(mean if mean is not None else [0.0] * channels,
                                     std if std is not None else [1.0] * channels))
        self.transform = T.Compose(steps)

    def __len__(self):
        return len(self.files)

    def __getitem__(self, i):
        from PIL import Image
        with open(os.path.join(self.root, self.files[i]), "rb") as f:
            img = Image.open(f).convert(self.mode)
        return self.transform(img), i


def data_keys(cfg):
    d = cfg.get("data", {})
    scale = float(d.get("scale", 1.0))
    if abs(scale - 1.0 / 255.0) > 1e-12:
        raise NotImplementedError(f"data.scale {scale} (the peer's ToTensor divides by 255)")
    for k in ("size", "crop", "crop_size"):
        if d.get(k) not in (None, "none"):
            raise NotImplementedError(f"data.{k} (the peer decodes at the images' own size)")
    c = int(d.get("channels", 3))

    def per_channel(v):
        if v is None:
            return None
        return [float(x) for x in v] if isinstance(v, list) else [float(v)] * c
    return c, per_channel(d.get("mean")), per_channel(d.get("std"))


def score_part(a, cfg, files, part_path):
    """Scores files (relative to a.folder) into part_path; returns the rows written."""
    torch.set_num_threads(a.threads)
    torch.manual_seed(a.seed)
    channels, mean, std = data_keys(cfg)
    ds = Images(a.folder, files, channels, mean, std)
    dl = torch.utils.data.DataLoader(ds, batch_size=a.batch, shuffle=False, num_workers=a.workers)
    model = None
    with open(part_path, "w") as out, torch.no_grad():
        for x, idx in dl:
            if model is None:
                model = torch_cnn.make_model(cfg, tuple(x.shape[1:]))
                model.eval()
            p = torch.softmax(model(x), dim=1)
            pred = p.argmax(dim=1).tolist()
            fmt = "%s,%d" + ",%.6g" * p.shape[1] + "\n"
            out.write("".join(fmt % (files[i], c, *row) for i, c, row in zip(idx.tolist(), pred, p.tolist())))
    return len(files)


def header(cfg):
    k = None
    for spec in reversed(cfg["model"]["layers"]):
        if spec["type"] == "dense":
            k = int(spec["units"])
            break
    return "origin,prediction," + ",".join("probability_%d" % j for j in range(k)) + "\n"


def child(rank, a, cfg, barrier, q):
    barrier.wait()
    files = list_images(a.folder)  # as a DDP script does: every process lists, then takes its shard
    lo, hi = len(files) * rank // a.procs, len(files) * (rank + 1) // a.procs
    part = "%s.part-%05d" % (a.output, rank)
    q.put((rank, score_part(a, cfg, files[lo:hi], part), part))


def main():
    a = ARGS
    with open(a.config) as f:
        cfg = yaml.safe_load(f)
    if a.procs == 1:
        t0 = time.perf_counter()
        files = list_images(a.folder)
        parts = [a.output + ".part-00000"]
        rows = score_part(a, cfg, files, parts[0])
    else:
        ctx = mproc.get_context("spawn")
        barrier, q = ctx.Barrier(a.procs + 1), ctx.SimpleQueue()
        procs = [ctx.Process(target=child, args=(r, a, cfg, barrier, q)) for r in range(a.procs)]
        for p in procs:
            p.start()
        barrier.wait()
        t0 = time.perf_counter()
        done = sorted(q.get() for _ in procs)
        rows, parts = sum(d[1] for d in done), [d[2] for d in done]
    with open(a.output + ".tmp", "w") as out:
        out.write(header(cfg))
        for part in parts:
            with open(part) as f:
                while True:
                    buf = f.read(1 << 22)
                    if not buf:
                        break
                    out.write(buf)
            os.remove(part)
    os.replace(a.output + ".tmp", a.output)
    sec = time.perf_counter() - t0
    if a.procs > 1:
        for p in procs:
            p.join()
    mode = "procs%d_w%d_t%d" % (a.procs, a.workers, a.threads)
    out = dict(peer="pytorch", mode=mode, procs=a.procs, workers=a.workers, threads=a.threads, batch=a.batch,
               images=rows, predict_seconds=round(sec, 4), images_per_sec=round(rows / sec, 2),
               folder=a.folder, torch=torch.__version__, omp_wait_policy=os.environ.get("OMP_WAIT_POLICY", ""),
               openblas_coretype=os.environ.get("OPENBLAS_CORETYPE", ""))
    print(json.dumps(out), flush=True)


if __name__ == "__main__":
    main()
