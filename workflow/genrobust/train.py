"""Classifier training: the ffcv-imagenet recipe (rn18 configs), with the paper's fixes.

SGD (momentum, no Nesterov), label smoothing, BlurPool, a linear warm-up / linear decay
schedule evaluated per iteration, progressive resizing, mixed precision, channels_last,
validation with horizontal-flip test-time averaging. Differences from ffcv-imagenet, all on
purpose (see PAPER.md, "Training"):

* weight decay is switched off on normalisation layers by module type, not by `'bn' in name`
  (which misses torchvision's `downsample.1` and every EfficientNet/MobileNet norm);
* the warm-up starts at `warmup_start_factor * lr` instead of 0;
* `lr` is the peak at a total batch of 512 and is scaled linearly when `scale_lr` is true;
* the progressive-resizing ramp depends on the run length (`default_ramp`);
* any timm or torchvision architecture gets the right head (`num_classes` at construction).

`recipe['batch_size']` is the TOTAL batch over all processes (each of W processes loads
batch_size / W images per step).
"""

from __future__ import annotations

import contextlib
import difflib
import hashlib
import json
import math
import os
import sys
import time
from pathlib import Path
from typing import Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from genrobust import beton
from genrobust.io import atomic_path, write_text

REFERENCE_BATCH = 512

RECIPE_KEYS = (
    "epochs", "batch_size", "lr", "scale_lr", "momentum", "weight_decay", "label_smoothing",
    "lr_peak_epoch", "warmup_start_factor", "blurpool", "min_res", "max_res", "start_ramp",
    "end_ramp", "res_step", "val_res", "crop_ratio", "precision", "channels_last",
    "num_workers",
)

# ffcv-imagenet's rn18 configs: epochs -> (start_ramp, end_ramp)
FFCV_RAMPS = {16: (11, 13), 24: (17, 20), 32: (23, 27), 40: (29, 34), 56: (41, 48),
              88: (65, 76)}

# Tests set this to a callable(epoch, iteration) to simulate a crash mid-training.
_fault_hook = None


# ----------------------------------------------------------------------------------------
# Schedules
# ----------------------------------------------------------------------------------------

def peak_lr(recipe: dict, total_batch: int) -> float:
    """recipe['lr'] is the peak learning rate at a total batch of 512; scaled linearly by
    total_batch / 512 when recipe['scale_lr'] is true."""
    lr = float(recipe["lr"])
    if recipe["scale_lr"]:
        lr *= float(total_batch) / REFERENCE_BATCH
    return lr


def lr_at(epoch: float, recipe: dict, peak: float | None = None) -> float:
    """Learning rate at fractional epoch `epoch` (epoch index + iteration / iterations).

    Linear from warmup_start_factor * peak at epoch 0 to `peak` at lr_peak_epoch, then linear
    to 0 at `epochs`. `peak` defaults to recipe['lr'] (pass peak_lr(...) to scale it).
    """
    peak = float(recipe["lr"]) if peak is None else float(peak)
    start = float(recipe["warmup_start_factor"]) * peak
    peak_epoch = float(recipe["lr_peak_epoch"])
    epochs = float(recipe["epochs"])
    if peak_epoch <= 0:
        return float(np.interp(epoch, [0.0, epochs], [peak, 0.0]))
    return float(np.interp(epoch, [0.0, peak_epoch, epochs], [start, peak, 0.0]))


def default_ramp(epochs: int) -> tuple[int, int]:
    """(start_ramp, end_ramp) of progressive resizing for a run of `epochs` epochs.

    ffcv-imagenet's rn18 table where it has the length; otherwise the ramp's start and end
    as fractions of the run (start/epochs, end/epochs) are interpolated linearly in `epochs`
    between the table's neighbouring lengths (held at the table's first/last fractions
    outside 16..88 epochs), multiplied by `epochs` and rounded; end is capped at the last
    epoch (epochs - 1) and start at end.
    """
    epochs = int(epochs)
    if epochs in FFCV_RAMPS:
        return FFCV_RAMPS[epochs]
    lengths = sorted(FFCV_RAMPS)
    start_frac = np.interp(epochs, lengths, [FFCV_RAMPS[e][0] / e for e in lengths])
    end_frac = np.interp(epochs, lengths, [FFCV_RAMPS[e][1] / e for e in lengths])
    end = min(int(round(end_frac * epochs)), max(epochs - 1, 0))
    start = min(int(round(start_frac * epochs)), end)
    return start, end


def ramp(recipe: dict) -> tuple[int, int]:
    """The recipe's (start_ramp, end_ramp), default_ramp(epochs) where either is null."""
    start, end = recipe.get("start_ramp"), recipe.get("end_ramp")
    if start is None or end is None:
        return default_ramp(recipe["epochs"])
    return int(start), int(end)


def resolution_at(epoch: int, recipe: dict) -> int:
    """Training resolution of (0-based) epoch `epoch`, as ffcv-imagenet's get_resolution:
    min_res up to start_ramp, max_res from end_ramp, in between linear and rounded to a
    multiple of res_step."""
    min_res, max_res = int(recipe["min_res"]), int(recipe["max_res"])
    if min_res > max_res:
        raise ValueError(f"min_res {min_res} > max_res {max_res}")
    step = int(recipe.get("res_step") or 32)
    start, end = ramp(recipe)
    if epoch <= start:
        return min_res
    if epoch >= end:
        return max_res
    res = float(np.interp(epoch, [start, end], [min_res, max_res]))
    return int(np.round(res / step)) * step


# ----------------------------------------------------------------------------------------
# Models
# ----------------------------------------------------------------------------------------

class BlurPoolConv2d(nn.Module):
    """ffcv-imagenet's BlurPool: a fixed 3x3 binomial blur (depthwise) before a strided conv."""

    def __init__(self, conv: nn.Conv2d):
        super().__init__()
        default_filter = torch.tensor([[[[1, 2, 1], [2, 4, 2], [1, 2, 1]]]]) / 16.0
        filt = default_filter.repeat(conv.in_channels, 1, 1, 1)
        self.conv = conv
        self.register_buffer("blur_filter", filt)

    def forward(self, x):
        blurred = F.conv2d(x, self.blur_filter, stride=1, padding=(1, 1),
                           groups=self.conv.in_channels, bias=None)
        return self.conv.forward(blurred)


def apply_blurpool(module: nn.Module) -> nn.Module:
    """Wrap every Conv2d with stride > 1 and at least 16 input channels (in place)."""
    for name, child in module.named_children():
        if isinstance(child, nn.Conv2d) and max(child.stride) > 1 and child.in_channels >= 16:
            setattr(module, name, BlurPoolConv2d(child))
        else:
            apply_blurpool(child)
    return module


def create_model(arch: str, num_classes: int, blurpool: bool = True) -> nn.Module:
    """A randomly initialised classifier with a `num_classes` head.

    timm's model of that name if timm knows it, else torchvision's; prefix the name with
    'timm:' or 'torchvision:' to choose the library explicitly.
    """
    import timm
    import torchvision.models as tvm

    source, name = (arch.split(":", 1) if ":" in arch else (None, arch))
    if source not in (None, "timm", "torchvision"):
        raise ValueError(f"unknown model library {source!r} in {arch!r} (timm: or torchvision:)")
    if source in (None, "timm") and timm.is_model(name):
        model = timm.create_model(name, pretrained=False, num_classes=int(num_classes))
    elif source in (None, "torchvision") and name in tvm.list_models():
        model = tvm.get_model(name, weights=None, num_classes=int(num_classes))
    else:
        known = list(dict.fromkeys(list(timm.list_models()) + list(tvm.list_models())))
        close = difflib.get_close_matches(name, known, n=8, cutoff=0.6)
        hint = f"; did you mean one of: {', '.join(close)}" if close else ""
        raise ValueError(f"unknown architecture {arch!r} (neither timm nor torchvision "
                         f"has it){hint}")
    if blurpool:
        apply_blurpool(model)
    return model


def classifier_head(model: nn.Module) -> nn.Linear:
    """The final Linear layer (the classification head) of a model."""
    head = None
    if hasattr(model, "get_classifier"):
        head = model.get_classifier()
    if not isinstance(head, nn.Linear):
        linears = [m for m in model.modules() if isinstance(m, nn.Linear)]
        if not linears:
            raise ValueError("model has no Linear layer")
        head = linears[-1]
    return head


def _norm_types() -> tuple[type, ...]:
    types = [nn.modules.batchnorm._NormBase, nn.GroupNorm, nn.LayerNorm, nn.LocalResponseNorm]
    if hasattr(nn, "RMSNorm"):
        types.append(nn.RMSNorm)
    try:  # timm norms that do not subclass torch's
        import timm.layers as tl

        types += [getattr(tl, n) for n in ("RmsNorm", "RmsNorm2d", "SimpleNorm", "SimpleNorm2d",
                                           "FrozenBatchNorm2d") if hasattr(tl, n)]
    except ImportError:
        pass
    return tuple(types)


def parameter_groups(model: nn.Module, weight_decay: float) -> list[dict]:
    """Two SGD groups: normalisation-layer parameters (by module type: BatchNorm*, SyncBN,
    InstanceNorm, GroupNorm, LayerNorm, RMSNorm, timm's BatchNormAct2d etc.) without weight
    decay, every other parameter with `weight_decay`."""
    norm_types = _norm_types()
    no_decay_ids = set()
    for module in model.modules():
        if isinstance(module, norm_types):
            no_decay_ids.update(id(p) for p in module.parameters(recurse=False))
    decay, no_decay, seen = [], [], set()
    for p in model.parameters():
        if not p.requires_grad or id(p) in seen:
            continue
        seen.add(id(p))
        (no_decay if id(p) in no_decay_ids else decay).append(p)
    return [{"params": decay, "weight_decay": float(weight_decay)},
            {"params": no_decay, "weight_decay": 0.0}]


# ----------------------------------------------------------------------------------------
# Training
# ----------------------------------------------------------------------------------------

def check_recipe(recipe: dict) -> None:
    missing = [k for k in RECIPE_KEYS if k not in recipe]
    if missing:
        raise ValueError(f"training recipe lacks {missing}")
    if recipe["precision"] not in ("bf16", "fp16", "fp32"):
        raise ValueError(f"precision must be bf16, fp16 or fp32, not {recipe['precision']!r}")


def _epoch_seed(seed: int, epoch: int) -> int:
    return int(np.random.SeedSequence([int(seed), int(epoch), 0x7E7]).generate_state(1)[0])


def _indices_digest(indices: np.ndarray) -> str:
    return hashlib.sha1(np.ascontiguousarray(indices, dtype=np.int64).tobytes()).hexdigest()


class _Dist:
    """torchrun environment: WORLD_SIZE > 1 starts a process group (NCCL on GPUs)."""

    def __init__(self):
        import torch.distributed as dist

        self.world = int(os.environ.get("WORLD_SIZE", "1"))
        self.rank = int(os.environ.get("RANK", "0"))
        self.local_rank = int(os.environ.get("LOCAL_RANK", "0"))
        self.owner = False
        if self.world > 1 and not dist.is_initialized():
            dist.init_process_group("nccl" if torch.cuda.is_available() else "gloo")
            self.owner = True
        if self.world > 1:
            self.rank, self.world = dist.get_rank(), dist.get_world_size()

    @property
    def main(self) -> bool:
        return self.rank == 0

    def barrier(self):
        if self.world > 1:
            torch.distributed.barrier()

    def sum(self, values: list[float], device) -> list[float]:
        if self.world == 1:
            return values
        t = torch.tensor(values, dtype=torch.float64, device=device)
        torch.distributed.all_reduce(t)
        return t.tolist()

    def close(self):
        if self.owner:
            torch.distributed.destroy_process_group()


def _autocast(device: torch.device, precision: str):
    if device.type != "cuda" or precision == "fp32":
        return contextlib.nullcontext()
    dtype = torch.bfloat16 if precision == "bf16" else torch.float16
    return torch.autocast("cuda", dtype=dtype)


def train_step(net, criterion, optimizer, scaler, images, labels, device, precision: str):
    """One SGD step (autocast on GPUs, loss scaling for fp16); the benchmark times this too."""
    optimizer.zero_grad(set_to_none=True)
    with _autocast(device, precision):
        loss = criterion(net(images), labels)
    scaler.scale(loss).backward()
    scaler.step(optimizer)
    scaler.update()
    return loss


@torch.no_grad()
def evaluate(model: nn.Module, loader, device, precision: str = "fp32",
             flip_tta: bool = True) -> tuple[float, float]:
    """(top-1, top-5) accuracy as fractions; logits averaged with the mirrored image's."""
    model.eval()
    correct1 = torch.zeros((), dtype=torch.float64, device=device)
    correct5 = torch.zeros((), dtype=torch.float64, device=device)
    count = 0
    for images, labels in loader:
        with _autocast(device, precision):
            logits = model(images).float()
            if flip_tta:
                logits = (logits + model(torch.flip(images, dims=[3])).float()) / 2
        k = min(5, logits.shape[1])
        top = logits.topk(k, dim=1).indices
        correct1 += (top[:, 0] == labels).sum()
        correct5 += (top == labels[:, None]).any(dim=1).sum()
        count += labels.shape[0]
    if count == 0:
        raise ValueError("the validation set is empty")
    return correct1.item() / count, correct5.item() / count


def _labels_in_range(beton_path, manifest_path, indices, num_classes, backend, what):
    if beton.choose_backend(beton_path, manifest_path, backend) == "ffcv":
        labels = beton.beton_labels(beton_path)
    else:
        labels = beton._read_manifest(manifest_path)[1]
    if indices is not None:
        if len(indices) and (np.max(indices) >= len(labels) or np.min(indices) < 0):
            raise ValueError(f"{what} indices out of range 0..{len(labels) - 1}")
        labels = labels[indices]
    if len(labels) and (labels.max() >= num_classes or labels.min() < 0):
        raise ValueError(f"{what} labels span {labels.min()}..{labels.max()} but there are "
                         f"{num_classes} classes")
    return len(labels)


def train_classifier(train_beton, train_manifest, train_indices, val_beton, val_manifest,
                     class_wnids: Sequence[str], arch: str, recipe: dict, seed: int,
                     out_model, out_metrics, checkpoint_path, device=None, threads=None,
                     *, backend: str = "auto", keep_checkpoint: bool = False) -> list[dict]:
    """Train `arch` from scratch on the given rows of the training beton/manifest.

    Resumes from `checkpoint_path` when it exists (written atomically after every epoch; it
    must come from the same arch / classes / recipe / seed / training rows, else ValueError;
    the resumed run is bit-identical on the same device type and process count), and removes
    it at the end unless keep_checkpoint. Writes `out_model` (torch.save of a dict: arch,
    num_classes, class_wnids, blurpool, state_dict, recipe) and `out_metrics` (JSON lines,
    one per epoch). Either val path may be None (no validation). Returns the metrics.
    Under torchrun (WORLD_SIZE > 1) it trains with DDP; rank 0 writes every file.
    """
    check_recipe(recipe)
    recipe = dict(recipe)
    class_wnids = [str(w) for w in class_wnids]
    num_classes = len(class_wnids)
    if num_classes < 2:
        raise ValueError("need at least two classes")
    dist_env = _Dist()
    try:
        return _train(dist_env, train_beton, train_manifest, train_indices, val_beton,
                      val_manifest, class_wnids, arch, recipe, int(seed), out_model,
                      out_metrics, checkpoint_path, device, threads, backend, keep_checkpoint)
    finally:
        dist_env.close()


def _train(d: _Dist, train_beton, train_manifest, train_indices, val_beton, val_manifest,
           class_wnids, arch, recipe, seed, out_model, out_metrics, checkpoint_path, device,
           threads, backend, keep_checkpoint):
    from tqdm import tqdm

    if d.world > 1 and torch.cuda.is_available():
        device = torch.device("cuda", d.local_rank)
    device = beton._device(device)
    if device.type == "cuda":
        torch.cuda.set_device(device)
        torch.backends.cudnn.benchmark = True
    if threads:  # the job's cores, shared by the processes torchrun started on this node
        local = int(os.environ.get("LOCAL_WORLD_SIZE", d.world))
        torch.set_num_threads(max(1, int(threads) // local))
    precision = recipe["precision"] if device.type == "cuda" else "fp32"
    num_classes = len(class_wnids)
    epochs = int(recipe["epochs"])
    total_batch = int(recipe["batch_size"])
    if total_batch % d.world:
        raise ValueError(f"batch_size {total_batch} is not divisible by {d.world} processes")
    batch = total_batch // d.world
    peak = peak_lr(recipe, total_batch)
    channels_last = bool(recipe["channels_last"])
    memory_format = torch.channels_last if channels_last else torch.contiguous_format

    n_rows = _labels_in_range(train_beton, train_manifest, None, num_classes, backend,
                              "training")
    indices = (np.arange(n_rows, dtype=np.int64) if train_indices is None
               else np.asarray(train_indices, dtype=np.int64))
    _labels_in_range(train_beton, train_manifest, indices, num_classes, backend, "training")
    has_val = val_beton is not None or val_manifest is not None
    if has_val:
        _labels_in_range(val_beton, val_manifest, None, num_classes, backend, "validation")

    identity = {"arch": arch, "num_classes": num_classes, "class_wnids": class_wnids,
                "seed": seed, "recipe": recipe, "train_indices": _indices_digest(indices)}

    torch.manual_seed(seed)
    model = create_model(arch, num_classes, blurpool=bool(recipe["blurpool"]))
    model = model.to(device=device, memory_format=memory_format)
    optimizer = torch.optim.SGD(parameter_groups(model, recipe["weight_decay"]), lr=peak,
                                momentum=float(recipe["momentum"]), nesterov=False)
    scaler = torch.amp.GradScaler("cuda", enabled=(precision == "fp16"))
    criterion = nn.CrossEntropyLoss(label_smoothing=float(recipe["label_smoothing"]))

    start_epoch, metrics = 0, []
    checkpoint_path = Path(checkpoint_path)
    if checkpoint_path.exists():
        ckpt = torch.load(checkpoint_path, map_location=device, weights_only=True)
        differs = [k for k, v in identity.items() if ckpt.get("identity", {}).get(k) != v]
        if differs:
            raise ValueError(f"checkpoint {checkpoint_path} belongs to a different run "
                             f"(differs in {differs}); delete it to start afresh")
        model.load_state_dict(ckpt["model"])
        optimizer.load_state_dict(ckpt["optimizer"])
        if scaler.is_enabled() and ckpt.get("scaler"):
            scaler.load_state_dict(ckpt["scaler"])
        start_epoch, metrics = int(ckpt["epoch"]), list(ckpt["metrics"])
        if d.main:
            print(f"resuming {arch} from {checkpoint_path} after epoch {start_epoch}",
                  file=sys.stderr)
    if d.main:  # the metrics file always matches the checkpoint's epochs
        _write_metrics(out_metrics, metrics)

    train_loader = beton.create_train_loader(
        train_beton, train_manifest, indices, batch, resolution_at(start_epoch, recipe),
        recipe["num_workers"], seed, device, distributed=d.world > 1, order="random",
        os_cache=True, channels_last=channels_last, backend=backend)
    iters = len(train_loader)
    if iters == 0:
        raise ValueError(f"{len(indices)} training images make no full batch of {batch}")
    val_loader = None
    if has_val:
        val_loader = beton.create_val_loader(
            val_beton, val_manifest, batch, int(recipe["val_res"]), recipe["num_workers"],
            device, crop_ratio=float(recipe["crop_ratio"]), channels_last=channels_last,
            backend=backend)

    net = model
    if d.world > 1:
        net = nn.parallel.DistributedDataParallel(
            model, device_ids=[device.index] if device.type == "cuda" else None)

    for epoch in range(start_epoch, epochs):
        t_epoch = time.perf_counter()
        res = resolution_at(epoch, recipe)
        train_loader.set_epoch(epoch)
        train_loader.set_resolution(res)
        torch.manual_seed(_epoch_seed(seed, epoch))  # dropout / drop-path, resumable
        net.train()
        loss_sum = torch.zeros((), dtype=torch.float64, device=device)
        seen, lr = 0, 0.0
        bar = tqdm(train_loader, total=iters, disable=not d.main, mininterval=1.0,
                   desc=f"{arch} epoch {epoch + 1}/{epochs} @{res}px", file=sys.stderr)
        for i, (images, labels) in enumerate(bar):
            lr = lr_at(epoch + i / iters, recipe, peak)
            for group in optimizer.param_groups:
                group["lr"] = lr
            loss = train_step(net, criterion, optimizer, scaler, images, labels, device, precision)
            loss_sum += loss.detach().double()
            seen += labels.shape[0]
            if _fault_hook is not None:
                _fault_hook(epoch, i)
        bar.close()
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        train_seconds = time.perf_counter() - t_epoch
        loss_total, seen_total = d.sum([loss_sum.item(), float(seen)], device)
        train_loss = loss_total / (iters * d.world)
        if not math.isfinite(train_loss):  # stop before a diverged epoch becomes the checkpoint
            raise ValueError(
                f"{arch} diverged in epoch {epoch + 1}: mean training loss {train_loss}. Lower "
                f"recipe.lr (peak {peak:.4g} at total batch {total_batch}), lengthen the warm-up "
                "(lr_peak_epoch) or train in bf16 rather than fp16")
        top1 = top5 = None
        if val_loader is not None:
            top1, top5 = evaluate(model, val_loader, device, precision)
        record = {"epoch": epoch, "train_loss": train_loss, "lr": lr, "resolution": res,
                  "val_top1": top1, "val_top5": top5, "images": int(seen_total),
                  "processes": d.world,
                  "images_per_s": seen_total / max(train_seconds, 1e-9),
                  "seconds": time.perf_counter() - t_epoch}
        metrics.append(record)
        if d.main:
            with atomic_path(checkpoint_path, suffix=".pt") as tmp:
                torch.save({"identity": identity, "epoch": epoch + 1, "metrics": metrics,
                            "model": model.state_dict(), "optimizer": optimizer.state_dict(),
                            "scaler": scaler.state_dict()}, tmp)
            with open(out_metrics, "a") as f:
                f.write(json.dumps(record, sort_keys=True) + "\n")
            top = "" if top1 is None else f" val top-1 {top1:.4f} top-5 {top5:.4f}"
            print(f"{arch} epoch {epoch + 1}/{epochs}: loss {train_loss:.4f}{top} "
                  f"({record['images_per_s']:.0f} img/s)", file=sys.stderr)
        d.barrier()

    if d.main:
        state = {k: v.detach().cpu() for k, v in model.state_dict().items()}
        with atomic_path(out_model, suffix=".pt") as tmp:
            torch.save({"arch": arch, "num_classes": num_classes, "class_wnids": class_wnids,
                        "blurpool": bool(recipe["blurpool"]), "state_dict": state,
                        "recipe": recipe}, tmp)
        _write_metrics(out_metrics, metrics)
        if not keep_checkpoint:
            checkpoint_path.unlink(missing_ok=True)
    d.barrier()
    return metrics


def _write_metrics(path, metrics: list[dict]) -> None:
    write_text(path, "".join(json.dumps(m, sort_keys=True) + "\n" for m in metrics))


def read_metrics(path) -> list[dict]:
    return [json.loads(line) for line in Path(path).read_text().splitlines() if line.strip()]


def load_classifier(path, device=None) -> tuple[nn.Module, list[str]]:
    """(model in eval mode on `device`, class_wnids) from a train_classifier output."""
    payload = torch.load(path, map_location="cpu", weights_only=True)
    model = create_model(payload["arch"], int(payload["num_classes"]),
                         blurpool=bool(payload["blurpool"]))
    model.load_state_dict(payload["state_dict"])
    model = model.to(beton._device(device)).eval()
    return model, list(payload["class_wnids"])


__all__ = ["RECIPE_KEYS", "REFERENCE_BATCH", "FFCV_RAMPS", "peak_lr", "lr_at", "default_ramp",
           "ramp", "resolution_at", "BlurPoolConv2d", "apply_blurpool", "create_model",
           "classifier_head", "parameter_groups", "check_recipe", "evaluate",
           "train_classifier", "read_metrics", "load_classifier"]

