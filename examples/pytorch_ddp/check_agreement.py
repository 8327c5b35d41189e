"""Checks that PyTorch and webtune predict the same with one exported model.

    webtune imagenet --save-input input.f32 IMAGE...        # webtune's own preprocessed pixels
    webtune predict --json MODEL.safetensors IMAGE... > webtune.json
    python check_agreement.py MODEL.safetensors input.f32 webtune.json IMAGE... [--max-prob-diff 1e-3]

PyTorch runs the model (loaded with strict=True, in eval mode) on exactly the tensor webtune fed
its own model, so any difference is the models' arithmetic, not the pictures' decoding. Exit 0
when every picture's most probable class is the same on both sides (or the two sides' top classes
are within the tolerance of each other, a tie) and no class probability differs by more than
--max-prob-diff; 1 otherwise. It also reports, for information, how close continue_training.py's
PIL preprocessing comes to webtune's.
"""

import argparse
import json
import sys

import torch
from PIL import Image

from continue_training import Preprocess, load_model


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("model")
    parser.add_argument("input", help="raw little-endian f32 NCHW from `webtune imagenet --save-input`")
    parser.add_argument("predictions", help="`webtune predict --json` output for the same images, in the same order")
    parser.add_argument("images", nargs="+")
    parser.add_argument("--max-prob-diff", type=float, default=1e-3)
    args = parser.parse_args()

    model, metadata = load_model(args.model)
    model.eval()
    labels = json.loads(metadata["labels"])
    size = int(metadata["input_size"])
    with open(args.input, "rb") as f:
        raw = bytearray(f.read())
    batch = torch.frombuffer(raw, dtype=torch.float32).view(-1, 3, size, size)
    if len(batch) != len(args.images):
        sys.exit(f"check_agreement: {args.input} holds {len(batch)} pictures, {len(args.images)} named")
    with open(args.predictions) as f:
        webtune = json.load(f)
    if [r["file"] for r in webtune] != args.images:
        sys.exit("check_agreement: the predictions are not for the named images, in that order")
    theirs = torch.tensor([[{p["label"]: p["probability"] for p in r["predictions"]}[label] for label in labels] for r in webtune],
                          dtype=torch.float64)

    with torch.no_grad():
        ours = torch.softmax(model(batch).double(), dim=1)
        preprocess = Preprocess(metadata)
        pil_batch = torch.stack([preprocess(Image.open(path)) for path in args.images])
        ours_pil = torch.softmax(model(pil_batch).double(), dim=1)

    diff = (ours - theirs).abs()
    top_ours, top_theirs = ours.argmax(1), theirs.argmax(1)
    rows = torch.arange(len(ours))
    # A disagreement only counts when webtune's own top class is clearly below PyTorch's.
    ties = (ours[rows, top_ours] - ours[rows, top_theirs]) <= args.max_prob_diff
    agree = (top_ours == top_theirs).double().mean().item()
    pixel_diff = (pil_batch - batch).abs()
    print(json.dumps({
        "pictures": len(ours),
        "top1_agreement": agree,
        "max_abs_prob_diff": diff.max().item(),
        "tolerance": args.max_prob_diff,
        "pil_preprocessing": {
            "max_abs_input_diff": pixel_diff.max().item(),
            "mean_abs_input_diff": pixel_diff.mean().item(),
            "top1_agreement": (ours_pil.argmax(1) == top_theirs).double().mean().item(),
            "max_abs_prob_diff": (ours_pil - theirs).abs().max().item(),
        },
    }))
    failures = []
    if diff.max().item() > args.max_prob_diff:
        failures.append(f"a probability differs by {diff.max().item():.2e} (tolerance {args.max_prob_diff:.0e})")
    bad = [args.images[i] for i in range(len(ours)) if top_ours[i] != top_theirs[i] and not ties[i]]
    if bad:
        failures.append(f"top-1 differs on {bad}")
    if failures:
        sys.exit("check_agreement: PyTorch and webtune disagree: " + "; ".join(failures))


if __name__ == "__main__":
    main()
