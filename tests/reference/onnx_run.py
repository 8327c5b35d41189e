#!/usr/bin/env python3
"""Runs an ONNX classifier exported by webtune with onnxruntime, independently of webtune.

Usage:
    onnx_run.py MODEL.onnx INPUT.f32 LOGITS.f32 [--probabilities FILE.f32]
        INPUT.f32:  raw little-endian float32, NCHW [N, 3, H, W] (H and W taken from the model's
                    input), already normalised as the model's "normalization" metadata says.
        LOGITS.f32: raw little-endian float32 [N, classes].

Prints one JSON line: the shapes of both outputs and the model's metadata keys.
"""

import argparse
import json
import sys

import numpy as np
import onnxruntime as ort


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("model")
    parser.add_argument("input")
    parser.add_argument("logits")
    parser.add_argument("--probabilities")
    args = parser.parse_args()

    options = ort.SessionOptions()
    options.intra_op_num_threads = 2  # the test machines are small and shared
    session = ort.InferenceSession(args.model, options, providers=["CPUExecutionProvider"])
    (model_input,) = session.get_inputs()
    channels, height, width = model_input.shape[1:]
    pixels = np.fromfile(args.input, dtype="<f4")
    per_image = channels * height * width
    if pixels.size == 0 or pixels.size % per_image:
        sys.exit(f"{args.input}: {pixels.size} values is not a whole number of {channels}x{height}x{width} images")
    batch = pixels.reshape(-1, channels, height, width)

    logits, probabilities = session.run(["logits", "probabilities"], {model_input.name: batch})
    logits.astype("<f4").tofile(args.logits)
    if args.probabilities:
        probabilities.astype("<f4").tofile(args.probabilities)
    metadata = session.get_modelmeta().custom_metadata_map
    print(json.dumps({"logits": list(logits.shape), "probabilities": list(probabilities.shape), "metadata": sorted(metadata)}))


if __name__ == "__main__":
    main()
