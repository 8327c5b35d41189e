#!/usr/bin/env python3
"""Writes PyTorch checkpoints without torch, byte-compatible with ``torch.save``.

webtune reads ``torch.save`` files with its own Rust unpickler; its tests check
that reader against files written here. Nothing is shared with the Rust code:
this script writes the formats the way torch/serialization.py does, with the
standard ``pickle`` module. Fake ``torch`` and ``torch._utils`` modules are put
in ``sys.modules`` so that pickle names the same globals torch's own objects do
(``torch._utils._rebuild_tensor_v2``, ``torch.FloatStorage``,
``collections.OrderedDict``), and a ``pickle.Pickler`` subclass turns storages
into persistent ids exactly as ``_save`` (zip) and ``_legacy_save`` do.

Usage:
    make_torch_checkpoint.py SPEC.json OUT [--format zip|legacy] [--root NAME]
        [--wrap KEY] [--prefix PREFIX] [--storage-type class|dtype]
        [--inject-global MODULE.NAME] [--omit-entry NAME]

SPEC.json: {"tensors": [{"name": "conv.weight", "dtype": "float32",
            "shape": [2, 3], "values": [... row-major ...],
            "layout": "contiguous" | "transposed", "offset": 0}, ...]}
    dtype: float32, float16, bfloat16, float64 or int64.
    layout "transposed": the storage holds the tensor with all dimensions
        reversed (as ``x.t().contiguous().t()`` would), so the saved view
        has reversed strides.
    offset: elements of padding before the tensor in its storage (a view
        that does not start at the beginning of its storage).
--wrap KEY: save a training checkpoint {"epoch": 7, KEY: state_dict,
    "optimizer": {... one float64 momentum tensor ...}, "best_acc": 0.75}.
--prefix PREFIX: prepend PREFIX ("module.") to every state dict key.
--storage-type dtype: name storage types by dtype (torch.float32) instead of
    storage class (torch.FloatStorage) in the persistent ids.
--inject-global MODULE.NAME: add an entry that calls MODULE.NAME, the way a
    hostile file would (for refusal tests).
--omit-entry NAME: leave NAME (e.g. data.pkl) out of the zip.
"""

import argparse
import collections
import io
import json
import pickle
import sys
import types
import zipfile

import numpy as np

LEGACY_MAGIC = 0x1950A86A20F9469CFC6C
LEGACY_PROTOCOL_VERSION = 1001
PICKLE_PROTOCOL = 2  # torch.serialization.DEFAULT_PROTOCOL

# --- fake torch: only what pickling a state dict names --------------------------------------

torch = types.ModuleType("torch")
torch_utils = types.ModuleType("torch._utils")
torch._utils = torch_utils
sys.modules["torch"] = torch
sys.modules["torch._utils"] = torch_utils


def _rebuild_tensor_v2(storage, storage_offset, size, stride, requires_grad, backward_hooks, metadata=None):
    raise NotImplementedError("this fake torch only writes checkpoints")


_rebuild_tensor_v2.__module__ = "torch._utils"
torch_utils._rebuild_tensor_v2 = _rebuild_tensor_v2


class dtype:
    """torch.dtype pickles as a global of the torch module (its __reduce__ returns its name)."""

    __module__ = "torch"

    def __init__(self, name):
        self.name = name

    def __reduce__(self):
        return self.name


# name -> (storage class name, numpy element type)
DTYPES = {
    "float32": ("FloatStorage", "<f4"),
    "float16": ("HalfStorage", "<f2"),
    "bfloat16": ("BFloat16Storage", "<u2"),
    "float64": ("DoubleStorage", "<f8"),
    "int64": ("LongStorage", "<i8"),
}
for _name, (_storage, _) in DTYPES.items():
    setattr(torch, _storage, type(_storage, (), {"__module__": "torch"}))
    setattr(torch, _name, dtype(_name))


class _Injected:
    """Stands for a global a hostile file would name; replaced in the pickle bytes afterwards."""

    __module__ = "torch"


torch._Injected = _Injected


class Storage:
    """A typed storage: its dtype name and its raw little-endian bytes."""

    def __init__(self, dtype_name, data):
        self.dtype_name = dtype_name
        self.data = data
        self.numel = len(data) // np.dtype(DTYPES[dtype_name][1]).itemsize

    def pickle_storage_type(self, by):
        if by == "dtype":
            return getattr(torch, self.dtype_name)
        return getattr(torch, DTYPES[self.dtype_name][0])


class Tensor:
    """A view into a storage; pickles as torch.Tensor._reduce_ex_internal does for CPU tensors."""

    def __init__(self, storage, offset, size, stride):
        self.storage, self.offset, self.size, self.stride = storage, offset, tuple(size), tuple(stride)

    def __reduce_ex__(self, protocol):
        backward_hooks = collections.OrderedDict()
        args = (self.storage, self.offset, self.size, self.stride, False, backward_hooks)
        return (torch_utils._rebuild_tensor_v2, args)


class HostileCall:
    def __init__(self, argument):
        self.argument = argument

    def __reduce__(self):
        return (_Injected, (self.argument,))


# --- building tensors from the spec ---------------------------------------------------------


def encode(values, dtype_name):
    values = np.asarray(values, dtype=np.float64 if dtype_name != "int64" else np.int64)
    if dtype_name == "bfloat16":
        bits = values.astype("<f4").view("<u4").astype(np.uint64)
        rounded = (bits + 0x7FFF + ((bits >> 16) & 1)) >> 16  # round to nearest even
        return rounded.astype("<u2")
    return values.astype(DTYPES[dtype_name][1])


def c_strides(shape):
    strides, step = [], 1
    for d in reversed(shape):
        strides.insert(0, step)
        step *= d
    return strides


def make_tensor(spec):
    shape = list(spec["shape"])
    array = encode(spec["values"], spec["dtype"]).reshape(shape)
    layout = spec.get("layout", "contiguous")
    if layout == "transposed":
        stored = np.ascontiguousarray(array.transpose())
        stride = list(reversed(c_strides(list(stored.shape))))
    elif layout == "contiguous":
        stored = np.ascontiguousarray(array)
        stride = c_strides(shape)
    else:
        raise SystemExit(f"unknown layout {layout}")
    offset = int(spec.get("offset", 0))
    padding = encode([99] * offset, spec["dtype"])
    data = padding.tobytes() + stored.tobytes()
    return Tensor(Storage(spec["dtype"], data), offset, shape, stride)


def build_object(spec, args):
    state_dict = collections.OrderedDict()
    for entry in spec["tensors"]:
        state_dict[args.prefix + entry["name"]] = make_tensor(entry)
    if args.inject_global:
        state_dict[args.prefix + "injected"] = HostileCall("echo pwned")
    # Module.state_dict() attaches per-module versions; pickle writes them with BUILD.
    state_dict._metadata = collections.OrderedDict([("", {"version": 1})])
    if not args.wrap:
        return state_dict
    momentum = Tensor(Storage("float64", encode([0.5, -0.5], "float64").tobytes()), 0, [2], [1])
    optimizer = {
        "state": {0: {"momentum_buffer": momentum}},
        "param_groups": [{"lr": 0.1, "momentum": 0.9, "params": [0]}],
    }
    return {"epoch": 7, args.wrap: state_dict, "optimizer": optimizer, "best_acc": 0.75}


# --- the two torch.save formats -------------------------------------------------------------


def pickle_with_storages(obj, key_of, storage_type_by):
    """Pickles obj with storages as persistent ids, as torch.save does; returns (bytes, storages)."""
    storages = {}

    class TorchPickler(pickle.Pickler):
        def persistent_id(self, obj):
            if not isinstance(obj, Storage):
                return None
            key = key_of(obj)
            storages[key] = obj
            pid = ("storage", obj.pickle_storage_type(storage_type_by), key, "cpu", obj.numel)
            return pid + ((None,) if key_of is legacy_key else ())

    buffer = io.BytesIO()
    TorchPickler(buffer, protocol=PICKLE_PROTOCOL).dump(obj)
    return buffer.getvalue(), storages


def legacy_key(storage):
    # _legacy_save keys storages by their C pointer; id() plays that part.
    return str(id(storage))


def inject(data, target):
    if not target:
        return data
    module, name = target.rsplit(".", 1)
    placeholder = b"ctorch\n_Injected\n"
    assert placeholder in data
    return data.replace(placeholder, f"c{module}\n{name}\n".encode())


def save_zip(obj, out, args):
    ids = {}

    def zip_key(storage):
        return ids.setdefault(id(storage), str(len(ids)))

    data, storages = pickle_with_storages(obj, zip_key, args.storage_type)
    records = [("data.pkl", inject(data, args.inject_global)), ("byteorder", b"little")]
    records += [(f"data/{key}", storages[key].data) for key in sorted(storages)]
    # Newer torch adds bookkeeping entries such as .data/version; readers must ignore them.
    records += [(".data/version", b"3\n"), ("version", b"3\n")]
    with zipfile.ZipFile(out, "w", compression=zipfile.ZIP_STORED) as archive:
        for name, payload in records:
            if name == args.omit_entry:
                continue
            info = zipfile.ZipInfo(f"{args.root}/{name}", date_time=(1980, 1, 1, 0, 0, 0))
            info.compress_type = zipfile.ZIP_STORED
            archive.writestr(info, payload)


def save_legacy(obj, out, args):
    data, storages = pickle_with_storages(obj, legacy_key, args.storage_type)
    sys_info = dict(
        protocol_version=LEGACY_PROTOCOL_VERSION,
        little_endian=True,
        type_sizes=dict(short=2, int=4, long=4),
    )
    with open(out, "wb") as f:
        pickle.dump(LEGACY_MAGIC, f, protocol=PICKLE_PROTOCOL)
        pickle.dump(LEGACY_PROTOCOL_VERSION, f, protocol=PICKLE_PROTOCOL)
        pickle.dump(sys_info, f, protocol=PICKLE_PROTOCOL)
        f.write(inject(data, args.inject_global))
        keys = sorted(storages)
        pickle.dump(keys, f, protocol=PICKLE_PROTOCOL)
        for key in keys:
            # storage._write_file: the element count as int64, then the elements.
            f.write(np.int64(storages[key].numel).astype("<i8").tobytes())
            f.write(storages[key].data)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("spec")
    parser.add_argument("out")
    parser.add_argument("--format", choices=["zip", "legacy"], default="zip")
    parser.add_argument("--root", default="archive")
    parser.add_argument("--wrap")
    parser.add_argument("--prefix", default="")
    parser.add_argument("--storage-type", choices=["class", "dtype"], default="class")
    parser.add_argument("--inject-global")
    parser.add_argument("--omit-entry")
    args = parser.parse_args()
    with open(args.spec) as f:
        spec = json.load(f)
    obj = build_object(spec, args)
    (save_zip if args.format == "zip" else save_legacy)(obj, args.out, args)


if __name__ == "__main__":
    main()
