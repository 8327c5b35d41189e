"""Writes scikit-learn's bundled handwritten digits (8×8, 10 classes, 1797 images) as a folder of
class sub-folders of PNG files: a real labelled image set that a package ships, for comparing the
recipe natively and in the browser.

    python3 bench/digits.py OUT_DIR [--per-class 20] [--wheel-dir DIR]

The digits come from `sklearn/datasets/data/digits.csv.gz` inside the scikit-learn wheel,
downloaded with pip (no install, no network beyond PyPI). Needs numpy.
"""

import argparse
import glob
import gzip
import io
import os
import struct
import subprocess
import sys
import tempfile
import zipfile
import zlib

import numpy as np


def png(gray):
    """An 8-bit RGB PNG of a 2-D uint8 array."""
    h, w = gray.shape
    rgb = np.repeat(gray[:, :, None], 3, axis=2)
    raw = b"".join(b"\x00" + rgb[y].tobytes() for y in range(h))

    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    header = struct.pack(">IIBBBBB", w, h, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(raw, 9)) + chunk(b"IEND", b"")


def load_digits(wheel_dir):
    wheels = glob.glob(os.path.join(wheel_dir, "scikit_learn-*.whl"))
    if not wheels:
        subprocess.run(
            [sys.executable, "-m", "pip", "download", "-q", "--no-deps", "--only-binary=:all:", "scikit-learn==1.7.2", "-d", wheel_dir],
            check=True,
        )
        wheels = glob.glob(os.path.join(wheel_dir, "scikit_learn-*.whl"))
    with zipfile.ZipFile(wheels[0]) as wheel:
        data = gzip.decompress(wheel.read("sklearn/datasets/data/digits.csv.gz"))
    table = np.loadtxt(io.StringIO(data.decode()), delimiter=",")
    return table[:, :-1].reshape(-1, 8, 8), table[:, -1].astype(int)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out")
    parser.add_argument("--per-class", type=int, default=20)
    parser.add_argument("--wheel-dir", default=os.path.join(tempfile.gettempdir(), "webtune-wheels"))
    args = parser.parse_args()
    os.makedirs(args.wheel_dir, exist_ok=True)
    images, labels = load_digits(args.wheel_dir)
    for digit in range(10):
        folder = os.path.join(args.out, f"digit{digit}")
        os.makedirs(folder, exist_ok=True)
        for n, index in enumerate(np.flatnonzero(labels == digit)[: args.per_class]):
            # 0..16 ink → 0..255, upscaled 8× (nearest) so each source pixel stays a crisp block.
            gray = np.kron(np.round(images[index] * 255 / 16).astype(np.uint8), np.ones((8, 8), np.uint8))
            with open(os.path.join(folder, f"{index:04d}.png"), "wb") as f:
                f.write(png(gray))
    print(f"wrote {10 * args.per_class} images to {args.out}")


if __name__ == "__main__":
    main()
