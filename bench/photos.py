"""Writes class folders of camera-sized JPEG photos for the scale benchmark (bench/page-scale.mjs
--dataset): each picture 1 to 4 megapixels, its own smooth random scene around its class's hue
with sensor-like noise, so that files are photo-sized (a few hundred KB) and no two pictures share
their pixels (the engine counts exact copies once).

    python3 bench/photos.py OUT [--count 5000] [--classes 20] [--seed 1] [--size 640x480]

`--size` gives every photo that size (the end-to-end benchmark's 200 photos of 640×480)
instead of the camera sizes below.
"""

import argparse
import os

import numpy as np
from PIL import Image

# Landscape and portrait sizes of common cameras and phones, 1 to 4 megapixels.
SIZES = [(1152, 864), (1280, 960), (1600, 1200), (2048, 1536), (2304, 1728), (1536, 2048), (960, 1280), (1920, 1080)]


def photo(rng, class_index, classes, size=None):
    width, height = size or SIZES[rng.integers(len(SIZES))]
    hue = class_index / classes * 2 * np.pi
    base = np.array([128 + 90 * np.cos(hue + shift * np.pi / 3) for shift in (0, 2, 4)], dtype=np.float32)
    # A coarse random field, smoothly upscaled: shapes and shading rather than noise.
    coarse = rng.normal(0, 45, size=(rng.integers(4, 12), rng.integers(4, 12), 3)).astype(np.float32) + base
    scene = Image.fromarray(np.clip(coarse, 0, 255).astype(np.uint8)).resize((width, height), Image.BICUBIC)
    pixels = np.asarray(scene, dtype=np.int16)
    pixels = pixels + rng.integers(-6, 7, size=pixels.shape, dtype=np.int16)
    return Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8))


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("out")
    parser.add_argument("--count", type=int, default=5000)
    parser.add_argument("--classes", type=int, default=20)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--size", type=lambda s: tuple(int(v) for v in s.split("x")), default=None, help="WIDTHxHEIGHT of every photo")
    args = parser.parse_args()
    rng = np.random.default_rng(args.seed)
    total = 0
    for i in range(args.count):
        label = f"class-{i % args.classes:02d}"
        folder = os.path.join(args.out, label)
        os.makedirs(folder, exist_ok=True)
        path = os.path.join(folder, f"photo-{i:05d}.jpg")
        photo(rng, i % args.classes, args.classes, args.size).save(path, quality=88)
        total += os.path.getsize(path)
    print(f"wrote {args.count} photos in {args.classes} classes to {args.out}: {total / 2**20:.0f} MB")


if __name__ == "__main__":
    main()
