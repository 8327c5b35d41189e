#!/usr/bin/env python3
"""Independent numpy reference for torchvision's mobilenet_v2, resnet18 and resnet50.

webtune's tests compare the pooled features of its Rust backbones against this
script. Nothing here is shared with the Rust code: the safetensors reader, the
layer arithmetic and the architectures are written from the file format and
from torchvision's model definitions (torchvision/models/mobilenetv2.py and
resnet.py), using numpy only. Tensors are looked up by torchvision's own
state-dict names.

Usage:
    torchvision_models.py ARCH WEIGHTS.safetensors INPUT.f32 FEATURES.f32 [--size N]
        ARCH:         mobilenet_v2, resnet18 or resnet50.
        INPUT.f32:    raw little-endian float32, NCHW [B, 3, N, N] (N defaults
                      to 224), already normalized with the ImageNet mean/std.
        FEATURES.f32: raw little-endian float32 pooled features [B, F] (before
                      the classifier; F = 1280, 512 or 2048).
    torchvision_models.py --self-check ARCH WEIGHTS.safetensors
        Checks every tensor's name and shape and the parameter count.
"""

import argparse
import json
import os
import struct
import sys
import time

import numpy as np

BN_EPS = 1e-5  # PyTorch's BatchNorm2d default, which torchvision uses.

# torchvision's published learnable-parameter totals, including the classifier.
PUBLISHED_PARAMETERS = {"mobilenet_v2": 3_504_872, "resnet18": 11_689_512, "resnet50": 25_557_032}
FEATURES = {"mobilenet_v2": 1280, "resnet18": 512, "resnet50": 2048}


class WeightsError(Exception):
    pass


# --------------------------------------------------------------------------
# safetensors reader: 8-byte little-endian header length, JSON header, data
# --------------------------------------------------------------------------

SAFETENSORS_DTYPES = {
    "F64": np.dtype("<f8"),
    "F32": np.dtype("<f4"),
    "F16": np.dtype("<f2"),
    "I64": np.dtype("<i8"),
    "I32": np.dtype("<i4"),
}


def load_safetensors(path):
    """Returns a dict name -> np.ndarray (C order) from a safetensors file."""
    with open(path, "rb") as f:
        raw = f.read()
    if len(raw) < 8:
        raise WeightsError(f"{path}: too short for a safetensors file")
    (header_len,) = struct.unpack("<Q", raw[:8])
    if 8 + header_len > len(raw):
        raise WeightsError(f"{path}: header length {header_len} exceeds the file")
    try:
        header = json.loads(raw[8 : 8 + header_len])
    except ValueError as e:
        raise WeightsError(f"{path}: header is not JSON: {e}") from e
    data = memoryview(raw)[8 + header_len :]
    out = {}
    for name, info in header.items():
        if name == "__metadata__":
            continue
        dtype = SAFETENSORS_DTYPES.get(info["dtype"])
        if dtype is None:
            raise WeightsError(f"{name}: unsupported dtype {info['dtype']}")
        start, end = info["data_offsets"]
        shape = tuple(info["shape"])
        count = int(np.prod(shape, dtype=np.int64))
        if not (0 <= start <= end <= len(data)) or end - start != count * dtype.itemsize:
            raise WeightsError(f"{name}: data offsets {start}..{end} do not fit shape {shape}")
        out[name] = np.frombuffer(data[start:end], dtype=dtype).reshape(shape).copy()
    return out


# --------------------------------------------------------------------------
# Layers (NHWC float64 activations, torch OIHW weights)
# --------------------------------------------------------------------------


def pad(x, p, value=0.0):
    return np.pad(x, ((0, 0), (p, p), (p, p), (0, 0)), constant_values=value)


def out_size(size, kernel, stride, padding):
    return (size + 2 * padding - kernel) // stride + 1


def conv2d(x, weight, stride, groups=1):
    """nn.Conv2d(padding=(k-1)//2, bias=False): symmetric zero padding, like PyTorch."""
    o, i_per_group, k, _ = weight.shape
    p = (k - 1) // 2
    n, h, w, c = x.shape
    oh, ow = out_size(h, k, stride, p), out_size(w, k, stride, p)
    xp = pad(x, p)
    if groups == c and i_per_group == 1 and o == c:
        # Depthwise: a sum of k*k shifted, strided slices.
        out = np.zeros((n, oh, ow, c), dtype=x.dtype)
        for i in range(k):
            for j in range(k):
                patch = xp[:, i : i + (oh - 1) * stride + 1 : stride, j : j + (ow - 1) * stride + 1 : stride]
                out += patch * weight[:, 0, i, j]
        return out
    if groups != 1:
        raise WeightsError(f"grouped convolution with {groups} groups is not needed here")
    if k == 1:
        return xp[:, ::stride, ::stride][:, :oh, :ow] @ weight[:, :, 0, 0].T
    win = np.lib.stride_tricks.sliding_window_view(xp, (k, k), axis=(1, 2))  # [N, H', W', C, k, k]
    win = win[:, : (oh - 1) * stride + 1 : stride, : (ow - 1) * stride + 1 : stride]
    return np.einsum("nhwcij,ocij->nhwo", win, weight, optimize=True)


def max_pool_3x3_s2_p1(x):
    """nn.MaxPool2d(kernel_size=3, stride=2, padding=1): padding never wins the max."""
    n, h, w, c = x.shape
    oh, ow = out_size(h, 3, 2, 1), out_size(w, 3, 2, 1)
    xp = pad(x, 1, value=-np.inf)
    out = np.full((n, oh, ow, c), -np.inf, dtype=x.dtype)
    for i in range(3):
        for j in range(3):
            out = np.maximum(out, xp[:, i : i + (oh - 1) * 2 + 1 : 2, j : j + (ow - 1) * 2 + 1 : 2])
    return out


def relu(x):
    return np.maximum(x, 0.0)


def relu6(x):
    return np.clip(x, 0.0, 6.0)


class Weights:
    """Float64 tensors by torchvision name; remembers which were read and checks shapes."""

    def __init__(self, tensors):
        self.tensors = {k: v.astype(np.float64) for k, v in tensors.items() if np.issubdtype(v.dtype, np.floating)}
        self.used = set()

    def get(self, name, shape):
        if name not in self.tensors:
            raise WeightsError(f"missing tensor {name}")
        t = self.tensors[name]
        if t.shape != tuple(shape):
            raise WeightsError(f"tensor {name} has shape {t.shape}, expected {tuple(shape)}")
        self.used.add(name)
        return t

    def conv(self, x, name, c_out, k, stride=1, groups=1):
        c_in = x.shape[3]
        return conv2d(x, self.get(name + ".weight", (c_out, c_in // groups, k, k)), stride, groups)

    def bn(self, x, name):
        c = x.shape[3]
        gamma, beta = self.get(name + ".weight", (c,)), self.get(name + ".bias", (c,))
        mean, var = self.get(name + ".running_mean", (c,)), self.get(name + ".running_var", (c,))
        return (x - mean) / np.sqrt(var + BN_EPS) * gamma + beta

    def unused(self, ignorable):
        return sorted(k for k in self.tensors if k not in self.used and not k.startswith(ignorable))


# --------------------------------------------------------------------------
# Architectures
# --------------------------------------------------------------------------

# torchvision mobilenetv2.py: inverted_residual_setting (t, c, n, s).
MOBILENET_V2_SETTING = [(1, 16, 1, 1), (6, 24, 2, 2), (6, 32, 3, 2), (6, 64, 4, 2),
                        (6, 96, 3, 1), (6, 160, 3, 2), (6, 320, 1, 1)]


def mobilenet_v2_features(w, x):
    def conv_bn_relu6(x, name, c_out, k, stride=1, groups=1):
        # Conv2dNormActivation: Sequential(conv, bn, ReLU6) -> names .0 and .1
        return relu6(w.bn(w.conv(x, name + ".0", c_out, k, stride, groups), name + ".1"))

    x = conv_bn_relu6(x, "features.0", 32, 3, 2)
    index = 1
    for t, c, n, s in MOBILENET_V2_SETTING:
        for r in range(n):
            stride = s if r == 0 else 1
            c_in = x.shape[3]
            hidden = c_in * t
            p = f"features.{index}.conv"
            y = x
            layer = 0
            if t != 1:
                y = conv_bn_relu6(y, f"{p}.0", hidden, 1)
                layer = 1
            y = conv_bn_relu6(y, f"{p}.{layer}", hidden, 3, stride, groups=hidden)
            y = w.bn(w.conv(y, f"{p}.{layer + 1}", c, 1), f"{p}.{layer + 2}")
            x = x + y if stride == 1 and c_in == c else y
            index += 1
    x = conv_bn_relu6(x, f"features.{index}", 1280, 1)
    return x.mean(axis=(1, 2))


def basic_block(w, x, p, width, stride):
    out = relu(w.bn(w.conv(x, p + ".conv1", width, 3, stride), p + ".bn1"))
    out = w.bn(w.conv(out, p + ".conv2", width, 3), p + ".bn2")
    return out, width


def bottleneck(w, x, p, width, stride):
    # torchvision's Bottleneck ("ResNet v1.5"): the stride is on conv2, the 3×3.
    out = relu(w.bn(w.conv(x, p + ".conv1", width, 1), p + ".bn1"))
    out = relu(w.bn(w.conv(out, p + ".conv2", width, 3, stride), p + ".bn2"))
    out = w.bn(w.conv(out, p + ".conv3", width * 4, 1), p + ".bn3")
    return out, width * 4


RESNETS = {"resnet18": (basic_block, [2, 2, 2, 2]), "resnet50": (bottleneck, [3, 4, 6, 3])}


def resnet_features(w, x, arch):
    block, layers = RESNETS[arch]
    x = relu(w.bn(w.conv(x, "conv1", 64, 7, 2), "bn1"))
    x = max_pool_3x3_s2_p1(x)
    for stage, (width, n) in enumerate(zip([64, 128, 256, 512], layers)):
        for b in range(n):
            stride = 2 if b == 0 and stage > 0 else 1
            p = f"layer{stage + 1}.{b}"
            out, c_out = block(w, x, p, width, stride)
            if stride != 1 or x.shape[3] != c_out:
                identity = w.bn(w.conv(x, p + ".downsample.0", c_out, 1, stride), p + ".downsample.1")
            else:
                identity = x
            x = relu(out + identity)
    return x.mean(axis=(1, 2))


def features(arch, weights, x_nchw):
    """[B, 3, N, N] normalized input -> [B, F] pooled features (float64)."""
    w = Weights(weights)
    x = np.ascontiguousarray(x_nchw.transpose(0, 2, 3, 1), dtype=np.float64)
    if arch == "mobilenet_v2":
        f = mobilenet_v2_features(w, x)
        classifier = "classifier."
    else:
        f = resnet_features(w, x, arch)
        classifier = "fc."
    unused = w.unused(classifier)
    if unused:
        raise WeightsError(f"unexpected tensor {unused[0]}: this file does not match {arch}")
    return f


# --------------------------------------------------------------------------
# CLI
# --------------------------------------------------------------------------


def read_input(path, size):
    per_image = 3 * size * size
    nbytes = os.path.getsize(path)
    if nbytes == 0 or nbytes % (per_image * 4) != 0:
        raise WeightsError(f"{path}: {nbytes} bytes is not a positive multiple of one [3,{size},{size}] float32 image")
    x = np.fromfile(path, dtype="<f4").reshape(-1, 3, size, size)
    if not np.all(np.isfinite(x)):
        raise WeightsError(f"{path}: input contains non-finite values")
    return x


def self_check(arch, weights_path):
    weights = load_safetensors(weights_path)
    # A forward pass on a small input reads (and shape-checks) every backbone tensor.
    features(arch, weights, np.zeros((1, 3, 32, 32), dtype=np.float32))
    learnable = sum(v.size for k, v in weights.items()
                    if np.issubdtype(v.dtype, np.floating) and not k.endswith(("running_mean", "running_var")))
    print(f"{arch}: {len(weights)} tensors, {learnable:,} learnable parameters")
    if learnable != PUBLISHED_PARAMETERS[arch]:
        raise WeightsError(f"expected {PUBLISHED_PARAMETERS[arch]:,} learnable parameters (with the classifier)")


def main(argv):
    if argv and argv[0] == "--self-check":
        if len(argv) != 3:
            raise WeightsError("usage: --self-check ARCH WEIGHTS.safetensors")
        self_check(argv[1], argv[2])
        return
    ap = argparse.ArgumentParser(description="numpy torchvision backbone reference forward pass")
    ap.add_argument("arch", choices=sorted(FEATURES))
    ap.add_argument("weights")
    ap.add_argument("input")
    ap.add_argument("output")
    ap.add_argument("--size", type=int, default=224)
    args = ap.parse_args(argv)
    t0 = time.perf_counter()
    weights = load_safetensors(args.weights)
    x = read_input(args.input, args.size)
    feats = np.concatenate([features(args.arch, weights, x[i : i + 8]) for i in range(0, len(x), 8)])
    feats.astype("<f4").tofile(args.output)
    print(f"{args.arch} reference: {len(x)} image(s) in {time.perf_counter() - t0:.2f}s", file=sys.stderr)


if __name__ == "__main__":
    try:
        main(sys.argv[1:])
    except (WeightsError, OSError) as e:
        print(f"error: {e}", file=sys.stderr)
        sys.exit(1)
