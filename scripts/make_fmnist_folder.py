#!/usr/bin/python3
"""Writes Fashion-MNIST (Debian's dataset-fashion-mnist) as image folders for data.format: image_folder.

    OUT/png/train/<class>/<index>.png    OUT/png/test/<class>/<index>.png
    OUT/jpeg/train/<class>/<index>.jpg   OUT/jpeg/test/<class>/<index>.jpg

<class> is the label written as two digits (00 .. 09), so that the sorted class folders are the IDX
labels; <index> is the record's index in its IDX file, zero-padded to 5 digits, so the files sort in
file order and the folder's rows are the IDX rows grouped by class. 70,000 files per variant.

Idempotent: a file that exists with the size it would be written with is left alone (PNG bytes are
deterministic; JPEG too, at the fixed quality), and each file is written to a temporary and renamed,
so an interrupted run leaves no half-written image. PNGs are written with zlib alone (8-bit gray);
JPEGs need Pillow (python3-pil), which is why this runs under Debian's /usr/bin/python3.

    scripts/make_fmnist_folder.py OUT [--formats png,jpeg] [--limit N] [--quality 95] [--src DIR]
"""
import argparse
import gzip
import os
import struct
import sys
import time
import zlib

SRC = "/usr/share/datasets/fashion-mnist"
SPLITS = {"train": ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz"),
          "test": ("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz")}


def read_idx(path):
    with gzip.open(path, "rb") as f:
        data = f.read()
    zero, dtype, ndim = struct.unpack(">HBB", data[:4])
    if zero != 0 or dtype != 0x08:
        sys.exit(f"{path}: not an unsigned-byte IDX file")
    dims = struct.unpack(">" + "I" * ndim, data[4:4 + 4 * ndim])
    return dims, memoryview(data)[4 + 4 * ndim:]


def png_bytes(pixels, w, h):
    def chunk(tag, body):
        return struct.pack(">I", len(body)) + tag + body + struct.pack(">I", zlib.crc32(tag + body) & 0xFFFFFFFF)
    raw = b"".join(b"\x00" + bytes(pixels[y * w:(y + 1) * w]) for y in range(h))  # filter 0 per row
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, 0, 0, 0, 0)) +
            chunk(b"IDAT", zlib.compress(raw, 9)) + chunk(b"IEND", b""))


def jpeg_bytes(pixels, w, h, quality):
    import io
    from PIL import Image
    out = io.BytesIO()
    Image.frombytes("L", (w, h), bytes(pixels)).save(out, format="JPEG", quality=quality)
    return out.getvalue()


def write_if_changed(path, data):
    try:
        if os.path.getsize(path) == len(data):
            return False
    except OSError:
        pass
    tmp = f"{path}.tmp{os.getpid()}"
    with open(tmp, "wb") as f:
        f.write(data)
    os.replace(tmp, path)
    return True


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("out")
    ap.add_argument("--formats", default="png,jpeg", help="png, jpeg or png,jpeg")
    ap.add_argument("--limit", type=int, default=0, help="only the first N records of each split (0: all)")
    ap.add_argument("--quality", type=int, default=95, help="JPEG quality")
    ap.add_argument("--src", default=SRC, help="the folder holding the four IDX .gz files")
    a = ap.parse_args()
    formats = [f for f in a.formats.split(",") if f]
    if any(f not in ("png", "jpeg") for f in formats):
        sys.exit(f"--formats: expected png and/or jpeg, got {a.formats}")
    for split, (img_name, lab_name) in SPLITS.items():
        for name in (img_name, lab_name):
            if not os.path.exists(os.path.join(a.src, name)):
                sys.exit(f"{os.path.join(a.src, name)} not found (apt-get install dataset-fashion-mnist)")
    start = time.time()
    written = total = 0
    for split, (img_name, lab_name) in SPLITS.items():
        (n, h, w), pixels = read_idx(os.path.join(a.src, img_name))
        (nl,), labels = read_idx(os.path.join(a.src, lab_name))
        if nl != n:
            sys.exit(f"{lab_name}: {nl} labels for {n} images")
        count = min(n, a.limit) if a.limit > 0 else n
        for fmt in formats:
            ext = "png" if fmt == "png" else "jpg"
            made = set()  # class folders are made when first used: --limit must not leave one empty
            for i in range(count):
                px = pixels[i * h * w:(i + 1) * h * w]
                data = png_bytes(px, w, h) if fmt == "png" else jpeg_bytes(px, w, h, a.quality)
                folder = os.path.join(a.out, fmt, split, f"{labels[i]:02d}")
                if folder not in made:
                    os.makedirs(folder, exist_ok=True)
                    made.add(folder)
                path = os.path.join(folder, f"{i:05d}.{ext}")
                written += write_if_changed(path, data)
                total += 1
    print(f"{a.out}: {total} files ({written} written, {total - written} already there) in "
          f"{time.time() - start:.1f} s")


if __name__ == "__main__":
    main()
