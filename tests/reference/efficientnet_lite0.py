#!/usr/bin/env python3
"""Independent numpy reference for EfficientNet-Lite0 (ImageNet classifier).

webtune imports this backbone from a legacy PyTorch ``.pth`` with its own Rust
reader; its tests compare logits against this script. Nothing here is shared
with the Rust code: the file reader, the layer arithmetic and the padding rule
are written from the format and the architecture, using numpy only.

Usage:
    efficientnet_lite0.py WEIGHTS INPUT.f32 OUTPUT.f32 [--features FEATURES.f32]
                          [--gradcam CAM.f32 [--class C]]
        WEIGHTS:    the published legacy ``.pth``, or a ``.safetensors`` file
                    with the same names (a webtune export: its classifier
                    ``_fc`` is one Linear, or ``_fc.1``/``_fc.4`` around a ReLU).
        INPUT.f32:  raw little-endian float32, NCHW [N, 3, 224, 224], already
                    normalized ((x - 127) / 128 on 0..255 RGB).
        OUTPUT.f32: raw little-endian float32 logits [N, classes].
        FEATURES.f32: pooled head features [N, 1280] (before `_fc`).
        CAM.f32:    Grad-CAM maps [N, 7, 7] of class C (default: each image's
                    top class) on the last convolution's output (after its
                    BatchNorm and ReLU6, before pooling). The gradient of the
                    logit is derived by hand here, not by autodiff.
    efficientnet_lite0.py --self-check WEIGHTS.pth [INPUT.f32]
        Checks tensor and parameter counts; with INPUT.f32 also prints the
        top-5 classes and logits per image.
"""

import argparse
import collections
import os
import pickle
import re
import sys
import time

import numpy as np

IMAGE_SIZE = 224
NUM_CLASSES = 1000
HEAD_CHANNELS = 1280
BN_EPS = 1e-3  # TF BatchNorm epsilon; some running_var are exactly 0, so it matters.

# Stage table of EfficientNet-B0/Lite0: (kernel, stride of first block, repeats).
STAGES = [(3, 1, 1), (3, 2, 2), (5, 2, 2), (3, 2, 3), (5, 1, 3), (5, 2, 4), (3, 1, 1)]

EXPECTED_ENTRIES = 296
EXPECTED_INT64_ENTRIES = 49
EXPECTED_LEARNABLE = 4_652_008
EXPECTED_WITH_RUNNING_STATS = 4_694_024


class WeightsError(Exception):
    pass


# --------------------------------------------------------------------------
# Legacy (pre-1.6, non-zip) PyTorch serialization reader
# --------------------------------------------------------------------------

LEGACY_MAGIC = 0x1950A86A20F9469CFC6C
LEGACY_PROTOCOL = 1001

STORAGE_DTYPES = {
    "FloatStorage": np.dtype("<f4"),
    "DoubleStorage": np.dtype("<f8"),
    "HalfStorage": np.dtype("<f2"),
    "LongStorage": np.dtype("<i8"),
    "IntStorage": np.dtype("<i4"),
    "ShortStorage": np.dtype("<i2"),
    "CharStorage": np.dtype("i1"),
    "ByteStorage": np.dtype("u1"),
    "BoolStorage": np.dtype("?"),
}


class StorageType:
    """Stand-in for ``torch.<X>Storage`` classes: only carries the dtype."""

    def __init__(self, name):
        self.name = name
        self.dtype = STORAGE_DTYPES[name]


class Storage:
    """A storage referenced by the state-dict pickle; filled after the pickles."""

    def __init__(self, key, storage_type, size):
        self.key = key
        self.dtype = storage_type.dtype
        self.size = size
        self.data = None  # np.ndarray of `size` elements once read


class PendingTensor:
    """Result of ``_rebuild_tensor_v2``; materialized once storage data is known."""

    def __init__(self, storage, offset, size, stride):
        self.storage = storage
        self.offset = offset
        self.size = tuple(size)
        self.stride = tuple(stride)

    def materialize(self):
        n = self.storage.size
        if any(s < 0 for s in self.size) or any(s < 0 for s in self.stride):
            raise WeightsError(f"negative size/stride in storage {self.storage.key}")
        if 0 not in self.size:
            last = self.offset + sum((d - 1) * s for d, s in zip(self.size, self.stride))
            if self.offset < 0 or last >= n:
                raise WeightsError(
                    f"tensor view out of bounds of storage {self.storage.key} "
                    f"(offset {self.offset}, size {self.size}, stride {self.stride}, storage {n})"
                )
        # Strides matter: this file stores many weights non-contiguously
        # (e.g. `_conv_stem.weight` size (32,3,3,3), stride (1,32,288,96)).
        base = self.storage.data
        item = base.dtype.itemsize
        view = np.lib.stride_tricks.as_strided(
            base[self.offset:],
            shape=self.size,
            strides=tuple(s * item for s in self.stride),
            writeable=False,
        )
        return np.array(view, order="C")  # C-contiguous copy


def _rebuild_tensor_v2(storage, storage_offset, size, stride, requires_grad=False,
                       backward_hooks=None, metadata=None):
    if not isinstance(storage, Storage):
        raise WeightsError("_rebuild_tensor_v2 got a non-storage argument")
    return PendingTensor(storage, storage_offset, size, stride)


class LegacyUnpickler(pickle.Unpickler):
    """Strict unpickler: only the globals a state dict needs are allowed."""

    def __init__(self, file, storages):
        super().__init__(file)
        self.storages = storages

    def find_class(self, module, name):
        if module == "collections" and name == "OrderedDict":
            return collections.OrderedDict
        if module == "torch._utils" and name == "_rebuild_tensor_v2":
            return _rebuild_tensor_v2
        if module == "torch" and name in STORAGE_DTYPES:
            return StorageType(name)
        raise WeightsError(f"unsupported global in pickle: {module}.{name}")

    def persistent_load(self, pid):
        if not (isinstance(pid, tuple) and len(pid) in (5, 6) and pid[0] == "storage"):
            raise WeightsError(f"unsupported persistent id: {pid!r}")
        _, storage_type, key, _location, size = pid[:5]
        if len(pid) == 6 and pid[5] is not None:
            # Storage views (pre-0.4 files); this project's files have none.
            raise WeightsError(f"storage views are not supported (key {key})")
        if not isinstance(storage_type, StorageType):
            raise WeightsError(f"unknown storage type for key {key}")
        st = self.storages.get(key)
        if st is None:
            st = Storage(key, storage_type, size)
            self.storages[key] = st
        elif st.dtype != storage_type.dtype or st.size != size:
            raise WeightsError(f"storage {key} referenced with inconsistent type/size")
        return st


class _PlainUnpickler(pickle.Unpickler):
    """For the header pickles and the key list: no globals at all."""

    def find_class(self, module, name):
        raise WeightsError(f"unexpected global in header pickle: {module}.{name}")


def load_legacy_pth(path):
    """Returns an ordered dict name -> np.ndarray from a legacy PyTorch file."""
    with open(path, "rb") as f:
        head = f.read(2)
        if head[:2] == b"PK":
            raise WeightsError(f"{path}: zip-format .pth, not the legacy format")
        f.seek(0)
        try:
            magic = _PlainUnpickler(f).load()
            if magic != LEGACY_MAGIC:
                raise WeightsError(f"{path}: bad magic number {magic!r}")
            protocol = _PlainUnpickler(f).load()
            if protocol != LEGACY_PROTOCOL:
                raise WeightsError(f"{path}: unsupported protocol version {protocol!r}")
            sys_info = _PlainUnpickler(f).load()
            if not sys_info.get("little_endian", False):
                raise WeightsError(f"{path}: big-endian files are not supported")
            storages = {}
            state = LegacyUnpickler(f, storages).load()
            keys = _PlainUnpickler(f).load()
        except (pickle.UnpicklingError, EOFError, AttributeError, TypeError, ValueError) as e:
            raise WeightsError(f"{path}: malformed pickle: {e}") from e

        if not isinstance(state, dict):
            raise WeightsError(f"{path}: top-level object is not a state dict")
        if sorted(keys) != sorted(storages):
            raise WeightsError(f"{path}: storage key list does not match the referenced storages")

        # Raw storages follow, in the listed order: int64 LE element count, then data.
        for key in keys:
            st = storages[key]
            count_bytes = f.read(8)
            if len(count_bytes) != 8:
                raise WeightsError(f"{path}: truncated before storage {key}")
            count = int.from_bytes(count_bytes, "little", signed=True)
            if count != st.size:
                raise WeightsError(f"{path}: storage {key} has {count} elements, pickle said {st.size}")
            nbytes = count * st.dtype.itemsize
            raw = f.read(nbytes)
            if len(raw) != nbytes:
                raise WeightsError(f"{path}: truncated data for storage {key}")
            st.data = np.frombuffer(raw, dtype=st.dtype)
        if f.read(1):
            raise WeightsError(f"{path}: trailing bytes after the last storage")

    out = collections.OrderedDict()
    for name, value in state.items():
        if not isinstance(value, PendingTensor):
            raise WeightsError(f"{path}: entry {name!r} is not a tensor")
        out[name] = value.materialize()
    return out


SAFETENSORS_DTYPES = {"F32": np.dtype("<f4"), "F64": np.dtype("<f8"), "F16": np.dtype("<f2"),
                      "I64": np.dtype("<i8"), "I32": np.dtype("<i4")}


def load_safetensors(path):
    """name -> np.ndarray from a safetensors file (8-byte header size, JSON header, data)."""
    import json
    with open(path, "rb") as f:
        raw = f.read()
    if len(raw) < 8:
        raise WeightsError(f"{path}: too short for safetensors")
    n = int.from_bytes(raw[:8], "little")
    header = json.loads(raw[8 : 8 + n])
    data = raw[8 + n :]
    out = collections.OrderedDict()
    for name, entry in header.items():
        if name == "__metadata__":
            continue
        dtype = SAFETENSORS_DTYPES.get(entry["dtype"])
        if dtype is None:
            raise WeightsError(f"{path}: {name} has unsupported dtype {entry['dtype']}")
        start, end = entry["data_offsets"]
        out[name] = np.frombuffer(data[start:end], dtype=dtype).reshape(entry["shape"]).copy()
    return out


def load_weights(path):
    with open(path, "rb") as f:
        head = f.read(9)
    if len(head) == 9 and head[8:9] == b"{":
        return load_safetensors(path)
    return load_legacy_pth(path)


# --------------------------------------------------------------------------
# Model description from the weights
# --------------------------------------------------------------------------


def count_parameters(weights):
    """(learnable, including BN running stats) element counts of float tensors."""
    learnable = 0
    total = 0
    for name, w in weights.items():
        if not np.issubdtype(w.dtype, np.floating):
            continue
        total += w.size
        if not (name.endswith(".running_mean") or name.endswith(".running_var")):
            learnable += w.size
    return learnable, total


def block_configs(weights):
    """Per-block dicts (expand?, kernel, stride, in, out), checked against STAGES."""
    indices = sorted({int(m.group(1)) for k in weights
                      for m in [re.match(r"_blocks\.(\d+)\.", k)] if m})
    table = [(k, s if r == 0 else 1) for k, s, n in STAGES for r in range(n)]
    if indices != list(range(len(table))):
        raise WeightsError(f"expected blocks 0..{len(table) - 1}, found {indices}")
    configs = []
    for i, (kernel, stride) in enumerate(table):
        p = f"_blocks.{i}."
        dw = weights[p + "_depthwise_conv.weight"]
        proj = weights[p + "_project_conv.weight"]
        if dw.shape[1] != 1 or dw.shape[2] != dw.shape[3]:
            raise WeightsError(f"block {i}: unexpected depthwise shape {dw.shape}")
        if dw.shape[2] != kernel:
            raise WeightsError(f"block {i}: kernel {dw.shape[2]} but the stage table says {kernel}")
        has_expand = (p + "_expand_conv.weight") in weights
        if has_expand:
            c_in = weights[p + "_expand_conv.weight"].shape[1]
        else:
            c_in = dw.shape[0]
        if p + "_se_reduce.weight" in weights:
            raise WeightsError(f"block {i}: squeeze-excite weights present; not a Lite model")
        configs.append(dict(index=i, expand=has_expand, kernel=kernel, stride=stride,
                            c_in=c_in, c_out=proj.shape[0]))
    return configs


# --------------------------------------------------------------------------
# Forward pass (NHWC float64 internally)
# --------------------------------------------------------------------------


def same_padding(size, kernel, stride):
    """TensorFlow "SAME" padding along one axis, from the actual input size.

    out = ceil(size / stride); total = max((out - 1) * stride + kernel - size, 0);
    before = total // 2, after = total - before. So odd totals put the extra
    pixel at the bottom/right: 3x3/s2 on 224 pads (0, 1); 5x5/s2 on 56 pads
    (1, 2); stride-1 k×k pads (k//2, k//2). (PyTorch's symmetric padding would
    shift every stride-2 layer by one pixel.)
    """
    out = -(-size // stride)
    total = max((out - 1) * stride + kernel - size, 0)
    return out, (total // 2, total - total // 2)


def pad_same(x, kernel, stride):
    """Zero-pads NHWC `x` for a k×k/stride SAME conv; returns (padded, out_h, out_w)."""
    _, h, w, _ = x.shape
    oh, ph = same_padding(h, kernel, stride)
    ow, pw = same_padding(w, kernel, stride)
    return np.pad(x, ((0, 0), ph, pw, (0, 0))), oh, ow


def conv2d(x, weight, stride):
    """Dense conv, NHWC input, torch OIHW weight, SAME padding, no bias."""
    k = weight.shape[2]
    if k == 1 and stride == 1:
        return x @ weight[:, :, 0, 0].T
    xp, oh, ow = pad_same(x, k, stride)
    # Windows: [N, H', W', C, kh, kw]; take every `stride`-th window origin.
    win = np.lib.stride_tricks.sliding_window_view(xp, (k, k), axis=(1, 2))
    win = win[:, : (oh - 1) * stride + 1 : stride, : (ow - 1) * stride + 1 : stride]
    return np.einsum("nhwcij,ocij->nhwo", win, weight, optimize=True)


def depthwise_conv2d(x, weight, stride):
    """Depthwise conv, NHWC input, torch weight [C, 1, k, k], SAME padding, no bias."""
    k = weight.shape[2]
    xp, oh, ow = pad_same(x, k, stride)
    out = np.zeros((x.shape[0], oh, ow, x.shape[3]), dtype=x.dtype)
    # Sum of k*k shifted, strided slices: each is one whole-tensor multiply-add.
    for i in range(k):
        for j in range(k):
            patch = xp[:, i : i + (oh - 1) * stride + 1 : stride, j : j + (ow - 1) * stride + 1 : stride]
            out += patch * weight[:, 0, i, j]
    return out


def batch_norm(x, weights, prefix):
    """Inference BatchNorm over the channel (last) axis with running stats."""
    gamma = weights[prefix + ".weight"]
    beta = weights[prefix + ".bias"]
    mean = weights[prefix + ".running_mean"]
    var = weights[prefix + ".running_var"]
    return (x - mean) / np.sqrt(var + BN_EPS) * gamma + beta


def relu6(x):
    return np.clip(x, 0.0, 6.0)


class EfficientNetLite0:
    def __init__(self, weights):
        # float64 throughout so the reference's own rounding is far below 1e-3.
        self.w = {k: v.astype(np.float64) for k, v in weights.items()
                  if np.issubdtype(v.dtype, np.floating)}
        self.blocks = block_configs(self.w)
        # The classifier: `_fc` (Linear) or `_fc.1` -> ReLU -> `_fc.4` (webtune's hidden layer).
        self.hidden = "_fc.1.weight" in self.w
        first = self.w["_fc.1.weight" if self.hidden else "_fc.weight"]
        if first.shape[1] != HEAD_CHANNELS:
            raise WeightsError(f"classifier input has shape {first.shape}")

    def feature_maps(self, x_nchw):
        """[N, 3, H, W] normalized input -> [N, H/32, W/32, 1280] last-conv activations."""
        w = self.w
        x = np.ascontiguousarray(x_nchw.transpose(0, 2, 3, 1), dtype=np.float64)
        x = relu6(batch_norm(conv2d(x, w["_conv_stem.weight"], 2), w, "_bn0"))  # [N,112,112,32]
        for b in self.blocks:
            p = f"_blocks.{b['index']}."
            inp = x
            if b["expand"]:
                x = relu6(batch_norm(conv2d(x, w[p + "_expand_conv.weight"], 1), w, p + "_bn0"))
            x = relu6(batch_norm(depthwise_conv2d(x, w[p + "_depthwise_conv.weight"], b["stride"]),
                                 w, p + "_bn1"))
            x = batch_norm(conv2d(x, w[p + "_project_conv.weight"], 1), w, p + "_bn2")
            if b["stride"] == 1 and b["c_in"] == b["c_out"]:
                x = x + inp
        return relu6(batch_norm(conv2d(x, w["_conv_head.weight"], 1), w, "_bn1"))  # [N,7,7,1280]

    def features(self, x_nchw):
        """[N, 3, H, W] normalized input -> [N, 1280] pooled head features."""
        return self.feature_maps(x_nchw).mean(axis=(1, 2))

    def logits(self, features):
        """[N, 1280] -> [N, classes]; dropout is identity at inference."""
        w = self.w
        if self.hidden:
            h = np.maximum(features @ w["_fc.1.weight"].T + w["_fc.1.bias"], 0.0)
            return h @ w["_fc.4.weight"].T + w["_fc.4.bias"]
        return features @ w["_fc.weight"].T + w["_fc.bias"]

    def logit_gradient(self, features, cls):
        """d logit[cls] / d features, [N, 1280], by the chain rule through the head."""
        w = self.w
        if not self.hidden:
            return np.repeat(w["_fc.weight"][cls][None, :], len(features), axis=0)
        pre = features @ w["_fc.1.weight"].T + w["_fc.1.bias"]  # [N, hidden]
        upstream = w["_fc.4.weight"][cls][None, :] * (pre > 0)  # ReLU passes where positive
        return upstream @ w["_fc.1.weight"]

    def grad_cam(self, x_nchw, classes=None):
        """Grad-CAM maps [N, h, w] on the last convolution: ReLU(sum_k alpha_k A_k) with
        alpha_k the spatial mean of d logit / d A_k. Global average pooling spreads the
        feature gradient evenly: d logit / d A_k[i, j] = d logit / d f_k / (h * w)."""
        maps = self.feature_maps(x_nchw)  # [N, h, w, K]
        n, h, w_, _ = maps.shape
        feats = maps.mean(axis=(1, 2))
        logits = self.logits(feats)
        out = np.zeros((n, h, w_))
        for i in range(n):
            cls = int(np.argmax(logits[i])) if classes is None else classes
            grad_maps = np.broadcast_to(self.logit_gradient(feats[i : i + 1], cls)[0] / (h * w_), maps[i].shape)
            alpha = grad_maps.mean(axis=(0, 1))  # [K]
            out[i] = np.maximum(maps[i] @ alpha, 0.0)
        return out, logits


# --------------------------------------------------------------------------
# CLI
# --------------------------------------------------------------------------


def read_input(path):
    per_image = 3 * IMAGE_SIZE * IMAGE_SIZE
    nbytes = os.path.getsize(path)
    if nbytes == 0 or nbytes % (per_image * 4) != 0:
        raise WeightsError(
            f"{path}: {nbytes} bytes is not a positive multiple of one "
            f"[3,{IMAGE_SIZE},{IMAGE_SIZE}] float32 image ({per_image * 4} bytes)")
    x = np.fromfile(path, dtype="<f4").reshape(-1, 3, IMAGE_SIZE, IMAGE_SIZE)
    if not np.all(np.isfinite(x)):
        raise WeightsError(f"{path}: input contains non-finite values")
    return x


def run(model, x, batch=8):
    """Forward in chunks to bound memory; returns (logits, features) as float64."""
    feats = np.concatenate([model.features(x[i : i + batch]) for i in range(0, len(x), batch)])
    return model.logits(feats), feats


def self_check(weights_path, input_path):
    weights = load_legacy_pth(weights_path)
    n_int64 = sum(1 for v in weights.values() if v.dtype == np.int64)
    learnable, total = count_parameters(weights)
    print(f"tensors: {len(weights)} ({n_int64} int64)")
    print(f"learnable parameters: {learnable:,} ({total:,} with BN running stats)")
    problems = []
    if len(weights) != EXPECTED_ENTRIES:
        problems.append(f"expected {EXPECTED_ENTRIES} entries")
    if n_int64 != EXPECTED_INT64_ENTRIES:
        problems.append(f"expected {EXPECTED_INT64_ENTRIES} int64 entries")
    if learnable != EXPECTED_LEARNABLE:
        problems.append(f"expected {EXPECTED_LEARNABLE:,} learnable parameters")
    if total != EXPECTED_WITH_RUNNING_STATS:
        problems.append(f"expected {EXPECTED_WITH_RUNNING_STATS:,} with running stats")
    model = EfficientNetLite0(weights)
    if input_path is not None:
        logits, _ = run(model, read_input(input_path))
        for n, row in enumerate(logits):
            top = np.argsort(-row)[:5]
            print(f"image {n} top-5: " + ", ".join(f"{c} ({row[c]:.4f})" for c in top))
    if problems:
        raise WeightsError("self-check failed: " + "; ".join(problems))


def main(argv):
    if argv and argv[0] == "--self-check":
        if len(argv) not in (2, 3):
            raise WeightsError("usage: --self-check WEIGHTS.pth [INPUT.f32]")
        self_check(argv[1], argv[2] if len(argv) == 3 else None)
        return
    ap = argparse.ArgumentParser(description="numpy EfficientNet-Lite0 reference forward pass")
    ap.add_argument("weights")
    ap.add_argument("input")
    ap.add_argument("output")
    ap.add_argument("--features")
    ap.add_argument("--gradcam")
    ap.add_argument("--class", dest="cls", type=int)
    args = ap.parse_args(argv)
    t0 = time.perf_counter()
    model = EfficientNetLite0(load_weights(args.weights))
    x = read_input(args.input)
    if args.gradcam:
        cams, logits = model.grad_cam(x, args.cls)
        cams.astype("<f4").tofile(args.gradcam)
        logits.astype("<f4").tofile(args.output)
    else:
        logits, feats = run(model, x)
        logits.astype("<f4").tofile(args.output)
        if args.features:
            feats.astype("<f4").tofile(args.features)
    print(f"efficientnet_lite0 reference: {len(x)} image(s) in {time.perf_counter() - t0:.2f}s",
          file=sys.stderr)


if __name__ == "__main__":
    try:
        main(sys.argv[1:])
    except (WeightsError, OSError, KeyError, ValueError) as e:
        print(f"error: {e}", file=sys.stderr)
        sys.exit(1)
