"""Continues training a webtune export in PyTorch, across processes or machines, with
DistributedDataParallel, and writes a file webtune reads back.

    torchrun --standalone --nproc_per_node 2 continue_training.py MODEL.safetensors DATA_DIR \
        --out continued.safetensors [--epochs 3] [--train all|head] [--lr 1e-3]

On several machines, run the same line on each with `--nnodes N --node_rank R
--rdzv_endpoint HOST:PORT` instead of `--standalone`; DATA_DIR must be readable from every
machine (a shared file system), but each process reads only its own share of the pictures
(DistributedSampler). The backend is gloo (CPU); `--backend nccl` puts one GPU under each process
(written for, not tested here).

The model is rebuilt from the file's own metadata (`backbone`, `labels`, `head_hidden_units`,
`normalization`, sizes: see README, *The downloaded file*) and loaded with `strict=True`, so every
tensor must match by name and shape. The pictures get webtune's evaluation preprocessing (shorter
side resized to `resize_size`, bilinear, center crop `input_size`, the file's normalisation), and
BatchNorm keeps its running statistics as webtune does (eval mode). Rank 0 writes the trained
state dict with the input's metadata unchanged plus a `pytorch_training` key, so `webtune
predict`, `eval`, `export` and `train --weights` take it like any webtune export.

Needs torch, safetensors and pillow; plus `efficientnet-lite-pytorch` for efficientnet_lite0 or
torchvision for mobilenet_v2 / resnet18 / resnet50 (scripts/test-torch.sh pins versions).
"""

import argparse
import json
import math
import os
import sys
import time

import torch
import torch.distributed as dist
from PIL import Image, ImageOps
from safetensors import safe_open
from safetensors.torch import load_file, save_file
from torch import nn
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import DataLoader, Dataset, DistributedSampler

IMAGE_EXTENSIONS = {".png", ".jpg", ".jpeg", ".gif", ".bmp", ".webp", ".tif", ".tiff"}
REQUIRED_METADATA = ("labels", "backbone", "head_hidden_units", "normalization", "input_size", "resize_size")


class NotAWebtuneExport(Exception):
    pass


def read_metadata(path):
    with safe_open(path, "pt") as f:
        metadata = f.metadata() or {}
    missing = [key for key in REQUIRED_METADATA if key not in metadata]
    if missing:
        raise NotAWebtuneExport(f"{path}: not a webtune export (metadata has no {', '.join(missing)})")
    return metadata


def build_model(metadata):
    """The PyTorch definition the export's tensor names come from, with webtune's head."""
    backbone = metadata["backbone"]
    classes = len(json.loads(metadata["labels"]))
    hidden = int(metadata["head_hidden_units"])

    def head(features):
        if hidden == 0:
            return None
        return nn.Sequential(nn.Dropout(0.2), nn.Linear(features, hidden), nn.ReLU(), nn.Dropout(0.2), nn.Linear(hidden, classes))

    if backbone == "efficientnet_lite0":
        from efficientnet_lite_pytorch import EfficientNet

        # No stochastic depth: webtune's backbone has none, and a few epochs on little data
        # would only be noisier with it.
        model = EfficientNet.from_name("efficientnet-lite0", num_classes=classes, drop_connect_rate=0.0)
        if hidden:
            model._fc = head(model._fc.in_features)
    elif backbone == "mobilenet_v2":
        import torchvision

        model = torchvision.models.mobilenet_v2(num_classes=classes)
        if hidden:
            model.classifier = head(model.classifier[1].in_features)
    elif backbone in ("resnet18", "resnet50"):
        import torchvision

        model = getattr(torchvision.models, backbone)(num_classes=classes)
        if hidden:
            model.fc = head(model.fc.in_features)
    else:
        raise NotAWebtuneExport(f"unknown backbone {backbone!r} in the metadata")
    return model


def load_model(path):
    """The export as a PyTorch module, loaded with strict=True, and its metadata."""
    metadata = read_metadata(path)
    model = build_model(metadata)
    model.load_state_dict(load_file(path), strict=True)
    return model, metadata


def classifier_parameters(model, backbone):
    module = {"efficientnet_lite0": "_fc", "mobilenet_v2": "classifier"}.get(backbone, "fc")
    return getattr(model, module).parameters()


def freeze_batch_norm(model):
    """BatchNorm normalises with its running statistics and leaves them alone, as in webtune."""
    for module in model.modules():
        if isinstance(module, nn.modules.batchnorm._BatchNorm):
            module.eval()


class Preprocess:
    """webtune's evaluation preprocessing (src/data/preprocess.rs): shorter side to resize_size
    (bilinear, antialiased when shrinking), central input_size square, (x - mean) / std of RGB
    0..255, channel-planar. PIL's and the `image` crate's filters differ by a few levels on some
    pixels, so predictions agree closely but not bit for bit (check_agreement.py measures it)."""

    def __init__(self, metadata, flip=False):
        normalization = json.loads(metadata["normalization"])
        self.mean = torch.tensor(normalization["mean"], dtype=torch.float32).view(3, 1, 1)
        self.std = torch.tensor(normalization["std"], dtype=torch.float32).view(3, 1, 1)
        self.resize = int(metadata["resize_size"])
        self.crop = int(metadata["input_size"])
        self.flip = flip

    def __call__(self, image):
        image = ImageOps.exif_transpose(image).convert("RGB")
        w, h = image.size
        scale = self.resize / max(1, min(w, h))
        # Rust's f64::round rounds halves away from zero, Python's round() to even.
        side = lambda s: max(int(math.floor(s * scale + 0.5)), self.crop)
        image = image.resize((side(w), side(h)), Image.BILINEAR)
        x, y = (image.width - self.crop) // 2, (image.height - self.crop) // 2
        image = image.crop((x, y, x + self.crop, y + self.crop))
        if self.flip and torch.rand(()) < 0.5:
            image = ImageOps.mirror(image)
        pixels = torch.frombuffer(bytearray(image.tobytes()), dtype=torch.uint8).view(self.crop, self.crop, 3)
        return (pixels.permute(2, 0, 1).float() - self.mean) / self.std


class ClassFolders(Dataset):
    """A folder of class sub-folders; class indices follow the model's `labels`, not the folder
    order, so a sub-folder whose name is not one of the labels is an error."""

    def __init__(self, root, labels, transform):
        index = {label: i for i, label in enumerate(labels)}
        folders = sorted(d for d in os.listdir(root) if os.path.isdir(os.path.join(root, d)))
        unknown = [d for d in folders if d not in index]
        if unknown:
            raise ValueError(f"{root}: sub-folders {unknown} are not among the model's labels {labels}")
        self.samples = [
            (os.path.join(root, d, name), index[d])
            for d in folders
            for name in sorted(os.listdir(os.path.join(root, d)))
            if os.path.splitext(name)[1].lower() in IMAGE_EXTENSIONS
        ]
        if not self.samples:
            raise ValueError(f"{root}: no pictures in class sub-folders")
        self.transform = transform

    def __len__(self):
        return len(self.samples)

    def __getitem__(self, i):
        path, target = self.samples[i]
        with Image.open(path) as image:
            return self.transform(image), target


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("model", help="a webtune export (.safetensors)")
    parser.add_argument("data", help="folder of class sub-folders named like the model's labels")
    parser.add_argument("--out", default="continued.safetensors")
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--batch-size", type=int, default=16, help="per process")
    # webtune's phase-2 settings (src/train/finetune.rs): AdamW at 1e-3 for the head, label
    # smoothing 0.1, 16 pictures a batch. webtune gives its last unfrozen blocks a tenth of the
    # head's rate after a warm-up epoch; here every layer trains from the first step, and at a
    # tenth (1e-4), on 200 digits, the first epoch's loss was 5.02 and the model came out of two
    # epochs at 0.26 accuracy; at a hundredth the loss went from 1.37 to 1.15: hence 0.01.
    parser.add_argument("--lr", type=float, default=1e-3, help="the head's learning rate")
    parser.add_argument("--backbone-lr-factor", type=float, default=0.01, help="the backbone's learning rate is lr times this")
    parser.add_argument("--weight-decay", type=float, default=1e-2)
    parser.add_argument("--label-smoothing", type=float, default=0.1)
    parser.add_argument("--train", choices=["all", "head"], default="all", help="which parameters to train")
    parser.add_argument("--flip", action="store_true", help="random horizontal flips")
    parser.add_argument("--workers", type=int, default=0, help="DataLoader worker processes per process")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--backend", default="gloo", help="torch.distributed backend: gloo (CPU) or nccl (GPU)")
    args = parser.parse_args()

    device = torch.device("cpu")
    if args.backend == "nccl":
        device = torch.device(f"cuda:{int(os.environ['LOCAL_RANK'])}")
        torch.cuda.set_device(device)  # before the process group, which nccl binds to a GPU
    dist.init_process_group(args.backend)
    rank, world = dist.get_rank(), dist.get_world_size()
    torch.manual_seed(args.seed)
    say = print if rank == 0 else (lambda *a, **k: None)

    try:
        model, metadata = load_model(args.model)
    except (NotAWebtuneExport, RuntimeError) as e:
        # load_state_dict(strict=True) raises RuntimeError naming missing, unexpected and
        # mis-shaped tensors.
        print(f"continue_training: cannot load {args.model} with strict=True: {e}", file=sys.stderr)
        dist.destroy_process_group()
        sys.exit(2)
    labels = json.loads(metadata["labels"])
    if args.train == "head":
        for p in model.parameters():
            p.requires_grad_(False)
        for p in classifier_parameters(model, metadata["backbone"]):
            p.requires_grad_(True)
    model.to(device)
    ddp = DistributedDataParallel(model, device_ids=[device.index] if device.type == "cuda" else None)

    try:
        data = ClassFolders(args.data, labels, Preprocess(metadata, flip=args.flip))
    except (OSError, ValueError) as e:
        print(f"continue_training: {e}", file=sys.stderr)
        dist.destroy_process_group()
        sys.exit(2)
    sampler = DistributedSampler(data, num_replicas=world, rank=rank, shuffle=True, seed=args.seed)
    loader = DataLoader(data, batch_size=args.batch_size, sampler=sampler, num_workers=args.workers)
    head = list(classifier_parameters(model, metadata["backbone"]))
    head_ids = {id(p) for p in head}
    backbone = [p for p in model.parameters() if p.requires_grad and id(p) not in head_ids]
    groups = [{"params": head, "lr": args.lr}] + ([{"params": backbone, "lr": args.lr * args.backbone_lr_factor}] if backbone else [])
    optimizer = torch.optim.AdamW(groups, weight_decay=args.weight_decay)
    say(f"{metadata['backbone']}, {len(labels)} classes, {len(data)} pictures over {world} processes "
        f"({len(sampler)} each), training {args.train} "
        f"({sum(p.numel() for p in model.parameters() if p.requires_grad)} parameters)", flush=True)

    start = time.perf_counter()
    for epoch in range(args.epochs):
        sampler.set_epoch(epoch)
        ddp.train()
        freeze_batch_norm(ddp)
        sums = torch.zeros(3, dtype=torch.float64, device=device)  # loss sum, correct, pictures
        for images, targets in loader:
            images, targets = images.to(device), targets.to(device)
            logits = ddp(images)
            loss = nn.functional.cross_entropy(logits, targets, label_smoothing=args.label_smoothing)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            sums += torch.tensor([loss.item() * len(targets), (logits.argmax(1) == targets).sum().item(), len(targets)],
                                 dtype=torch.float64, device=device)
        dist.all_reduce(sums)
        say(f"epoch {epoch + 1}/{args.epochs}: loss {sums[0] / sums[2]:.4f} acc {sums[1] / sums[2]:.3f} "
            f"({time.perf_counter() - start:.1f} s)", flush=True)

    if rank == 0:
        state = {name: t.detach().cpu().contiguous() for name, t in model.state_dict().items()}
        out_metadata = dict(metadata)
        out_metadata["pytorch_training"] = json.dumps({
            "epochs": args.epochs, "lr": args.lr, "backbone_lr_factor": args.backbone_lr_factor, "train": args.train, "weight_decay": args.weight_decay,
            "label_smoothing": args.label_smoothing, "batch_size_per_process": args.batch_size,
            "processes": world, "pictures": len(data), "flip": args.flip, "torch": torch.__version__,
        })
        save_file(state, args.out, metadata=out_metadata)
        say(f"wrote {args.out}", flush=True)
    dist.barrier()
    dist.destroy_process_group()


if __name__ == "__main__":
    main()
