"""Classifier training: one run of the ffcv-imagenet recipe (`genrobust.recipe`) on rows of a
training beton, with validation, per-epoch checkpoints and metrics.

The shape follows ffcv-imagenet's train_imagenet.py: `create_loaders`, `create_optimizer`,
`train_one_epoch`, validation through the one scorer (`genrobust.scoring`), and a short
`train_classifier` that ties them together. Under torchrun (WORLD_SIZE > 1) it trains with
DistributedDataParallel (NCCL on GPUs, gloo on the CPU); rank 0 writes every file.

Preemption: a checkpoint is written atomically after every epoch; a re-run with the same run
identity (arch, classes, recipe, seed, training rows) resumes from it and ends bit-identical to
an uninterrupted run on the same device type and process count.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Mapping, Sequence

import numpy as np
import torch
from torch import nn

from genrobust import beton
from genrobust.classifiers import (  # noqa: F401 (load_classifier: API)
    create_model, load_classifier, parameter_groups, plain_state_dict, set_real_rows, with_separate_bn,
)
from genrobust.io import atomic_path, write_json, write_text
from genrobust.recipe import Recipe, lr_at, peak_lr, resolution_at
from genrobust.scoring import autocast, topk_accuracy


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


# ----------------------------------------------------------------------------- building blocks


def create_optimizer(model: nn.Module, recipe: Recipe, lr: float) -> torch.optim.SGD:
    """SGD with momentum (no Nesterov), no weight decay on normalisation layers."""
    return torch.optim.SGD(parameter_groups(model, recipe.weight_decay), lr=lr,
                           momentum=float(recipe.momentum), nesterov=False)


def train_step(net, criterion, optimizer, scaler, images, labels, device, precision: str):
    """One SGD step (autocast on GPUs, loss scaling for fp16); the benchmark times this too."""
    optimizer.zero_grad(set_to_none=True)
    with autocast(device, precision):
        loss = criterion(net(images), labels)
    scaler.scale(loss).backward()
    scaler.step(optimizer)
    scaler.update()
    return loss


def _epoch_seed(seed: int, epoch: int) -> int:
    return int(np.random.SeedSequence([int(seed), int(epoch), 0x7E7]).generate_state(1)[0])


def _indices_digest(indices: np.ndarray) -> str:
    return hashlib.sha1(np.ascontiguousarray(indices, dtype=np.int64).tobytes()).hexdigest()


def _checked_rows(beton_path, manifest_path, indices, num_classes, backend, what) -> int:
    """Number of rows the loader will read; indices out of range or labels beyond the class
    count are a ValueError naming which data ('training' / 'validation')."""
    if beton.choose_backend(beton_path, manifest_path, backend) == "ffcv":
        labels = beton.beton_labels(beton_path)
    else:
        labels = beton.read_manifest(manifest_path)[1]
    if indices is not None:
        if len(indices) and (np.max(indices) >= len(labels) or np.min(indices) < 0):
            raise ValueError(f"{what} indices out of range 0..{len(labels) - 1}")
        labels = labels[indices]
    if len(labels) and (labels.max() >= num_classes or labels.min() < 0):
        raise ValueError(f"{what} labels span {labels.min()}..{labels.max()} but there are "
                         f"{num_classes} classes")
    return len(labels)


@dataclass
class TrainingSource:
    """One source of a training mixture: its beton (FFCV) and manifest (plain loader), and the
    rows of it the mixture uses (None: all)."""

    beton: str | None
    manifest: str | None
    indices: np.ndarray | None = None
    draws: str | None = None  # the name its seeded order and crops are keyed by (None: its own)


@dataclass
class TrainingData:
    """Where a run's images come from: rows of each source's beton (or manifest, for the plain
    loader), and an optional validation set."""

    sources: dict[str, TrainingSource]
    val_beton: str | None
    val_manifest: str | None
    backend: str = "auto"

    @property
    def has_val(self) -> bool:
        return self.val_beton is not None or self.val_manifest is not None

    @property
    def rows(self) -> int:
        return sum(len(s.indices) for s in self.sources.values())

    def digest(self) -> str:
        """What the run trains on, for the checkpoint identity: every source's rows and the name its
        draws are keyed by (an imported copy trained with its set's draws is another run)."""
        h = hashlib.sha1()
        for name in sorted(self.sources):
            src = self.sources[name]
            keyed = f"@{src.draws}" if src.draws else ""
            h.update(f"{name}{keyed}:{_indices_digest(src.indices)};".encode())
        return h.hexdigest()

    @classmethod
    def checked(cls, sources: dict[str, TrainingSource], val_beton, val_manifest, num_classes: int,
                backend: str) -> TrainingData:
        if not sources:
            raise ValueError("no training source")
        resolved = {}
        for name, src in sources.items():
            what = f"training source '{name}'"
            n_rows = _checked_rows(src.beton, src.manifest, None, num_classes, backend, what)
            indices = (np.arange(n_rows, dtype=np.int64) if src.indices is None
                       else np.asarray(src.indices, dtype=np.int64))
            _checked_rows(src.beton, src.manifest, indices, num_classes, backend, what)
            resolved[name] = TrainingSource(src.beton, src.manifest, indices, src.draws)
        data = cls(resolved, val_beton, val_manifest, backend)
        if data.has_val:
            _checked_rows(val_beton, val_manifest, None, num_classes, backend, "validation")
        return data

    def separate_bn(self, recipe: Recipe) -> bool:
        """recipe.generated_bn 'separate' on a mixture of real and generated images."""
        return recipe.generated_bn == "separate" and "real" in self.sources and len(self.sources) > 1

    def loader_backend(self) -> str:
        first = next(iter(self.sources.values()))
        return beton.choose_backend(first.beton, first.manifest, self.backend)


def create_loaders(data: TrainingData, recipe: Recipe, batch: int, start_epoch: int, seed: int,
                   device, distributed: bool):
    """(train loader at the resolution of `start_epoch`, validation loader or None)."""
    channels_last = bool(recipe.channels_last)
    train_loader = beton.create_mixture_loader(
        {name: (src.beton, src.manifest, src.indices) for name, src in data.sources.items()},
        batch, resolution_at(start_epoch, recipe), recipe.num_workers, seed, device,
        distributed=distributed, os_cache=True, channels_last=channels_last, backend=data.backend,
        draws={name: src.draws for name, src in data.sources.items() if src.draws})
    if len(train_loader) == 0:
        raise ValueError(f"{data.rows} training images make no full batch of {batch}")
    val_loader = None
    if data.has_val:
        val_loader = beton.create_val_loader(
            data.val_beton, data.val_manifest, batch, int(recipe.val_res), recipe.num_workers,
            device, crop_ratio=float(recipe.crop_ratio), channels_last=channels_last,
            backend=data.backend)
    return train_loader, val_loader


# ----------------------------------------------------------------------------- one run


@dataclass
class TrainingRun:
    """The state of one run: the model (and its DDP wrapper), optimizer and loss scaler."""

    arch: str
    class_wnids: list[str]
    recipe: Recipe
    seed: int
    device: torch.device
    precision: str
    peak: float
    model: nn.Module
    optimizer: torch.optim.Optimizer
    scaler: torch.amp.GradScaler
    criterion: nn.Module
    identity: dict
    net: nn.Module | None = None
    processes: int = 1
    resumed_from: dict | None = None  # the runtime of the checkpoint a resumed run started from

    def runtime(self) -> dict:
        """What changes a run's arithmetic without changing the run: kept in the checkpoint, so
        that a resume under other conditions says it will not be bit-identical."""
        return {"threads": torch.get_num_threads(), "processes": self.processes, "device": self.device.type}

    @classmethod
    def create(cls, arch, class_wnids, recipe: Recipe, seed: int, device, total_batch: int,
               data: TrainingData) -> TrainingRun:
        precision = recipe.precision if device.type == "cuda" else "fp32"
        memory_format = torch.channels_last if recipe.channels_last else torch.contiguous_format
        torch.manual_seed(seed)  # the initial weights
        model = create_model(arch, len(class_wnids), blurpool=bool(recipe.blurpool))
        if data.separate_bn(recipe):
            model = with_separate_bn(model)
        model = model.to(device=device, memory_format=memory_format)
        peak = peak_lr(recipe, total_batch)
        identity = {"arch": arch, "num_classes": len(class_wnids), "class_wnids": class_wnids,
                    "seed": seed, "recipe": recipe.as_dict(), "train_rows": data.digest()}
        return cls(arch, class_wnids, recipe, seed, device, precision, peak, model,
                   create_optimizer(model, recipe, peak),
                   torch.amp.GradScaler("cuda", enabled=(precision == "fp16")),
                   nn.CrossEntropyLoss(label_smoothing=float(recipe.label_smoothing)), identity)

    def resume(self, checkpoint_path: Path, say: bool) -> tuple[int, list[dict]]:
        """(epochs done, their metrics) from the checkpoint, or (0, []) without one. A
        checkpoint of another run is refused rather than silently mixed in."""
        if not checkpoint_path.exists():
            return 0, []
        ckpt = torch.load(checkpoint_path, map_location=self.device, weights_only=True)
        differs = [k for k, v in self.identity.items() if ckpt.get("identity", {}).get(k) != v]
        if differs:
            raise ValueError(f"checkpoint {checkpoint_path} belongs to a different run "
                             f"(differs in {differs}); delete it to start afresh")
        before, now = ckpt.get("runtime", {}), self.runtime()
        changed = {k: (before[k], now[k]) for k in now if k in before and before[k] != now[k]}
        if changed and say:
            print(f"NOTICE: resuming {checkpoint_path} with " + ", ".join(
                f"{k} {b} -> {n}" for k, (b, n) in changed.items()) + ": kernels round differently, so the "
                "result will not be bit-identical to an uninterrupted run (run.json records both)", file=sys.stderr)
        self.resumed_from = before
        self.model.load_state_dict(ckpt["model"])
        self.optimizer.load_state_dict(ckpt["optimizer"])
        if self.scaler.is_enabled() and ckpt.get("scaler"):
            self.scaler.load_state_dict(ckpt["scaler"])
        if say:
            print(f"resuming {self.arch} from {checkpoint_path} after epoch {ckpt['epoch']}",
                  file=sys.stderr)
        return int(ckpt["epoch"]), list(ckpt["metrics"])

    def save_checkpoint(self, checkpoint_path: Path, epochs_done: int, metrics: list[dict]) -> None:
        with atomic_path(checkpoint_path, suffix=".pt") as tmp:
            torch.save({"identity": self.identity, "runtime": self.runtime(), "epoch": epochs_done,
                        "metrics": metrics, "model": self.model.state_dict(),
                        "optimizer": self.optimizer.state_dict(), "scaler": self.scaler.state_dict()}, tmp)

    def save_model(self, out_model) -> None:
        """The trained classifier: what `load_classifier` reads."""
        state = {k: v.detach().cpu() for k, v in plain_state_dict(self.model).items()}
        with atomic_path(out_model, suffix=".pt") as tmp:
            torch.save({"arch": self.arch, "num_classes": len(self.class_wnids),
                        "class_wnids": self.class_wnids, "blurpool": bool(self.recipe.blurpool),
                        "state_dict": state, "recipe": self.recipe.as_dict()}, tmp)


def train_one_epoch(run: TrainingRun, loader, epoch: int, show_progress: bool) -> tuple[float, int, float]:
    """(summed loss, images seen, last learning rate) of one epoch on this process; the learning
    rate follows the schedule per iteration."""
    from tqdm import tqdm

    iters = len(loader)
    torch.manual_seed(_epoch_seed(run.seed, epoch))  # dropout / drop-path, resumable
    run.net.train()
    loss_sum = torch.zeros((), dtype=torch.float64, device=run.device)
    seen, lr = 0, 0.0
    bar = tqdm(loader, total=iters, disable=not show_progress, mininterval=1.0, file=sys.stderr,
               desc=f"{run.arch} epoch {epoch + 1}/{run.recipe.epochs} @{loader.resolution}px")
    for i, (images, labels) in enumerate(bar):
        lr = lr_at(epoch + i / iters, run.recipe, run.peak)
        for group in run.optimizer.param_groups:
            group["lr"] = lr
        loss = train_step(run.net, run.criterion, run.optimizer, run.scaler, images, labels,
                          run.device, run.precision)
        loss_sum += loss.detach().double()
        seen += labels.shape[0]
    bar.close()
    return loss_sum.item(), seen, lr


def _check_finite(run: TrainingRun, epoch: int, train_loss: float, total_batch: int) -> None:
    """Stop before a diverged epoch becomes the checkpoint."""
    if not math.isfinite(train_loss):
        raise ValueError(
            f"{run.arch} diverged in epoch {epoch + 1}: mean training loss {train_loss}. Lower "
            f"recipe.lr (peak {run.peak:.4g} at total batch {total_batch}), lengthen the warm-up "
            "(lr_peak_epoch) or train in bf16 rather than fp16")


def _setup_device(d: _Dist, device, threads) -> torch.device:
    if d.world > 1 and torch.cuda.is_available():
        device = torch.device("cuda", d.local_rank)
    device = beton.resolve_device(device)
    if device.type == "cuda":
        torch.cuda.set_device(device)
        torch.backends.cudnn.benchmark = True
    if threads:  # the job's cores, shared by the processes torchrun started on this node
        local = int(os.environ.get("LOCAL_WORLD_SIZE", d.world))
        torch.set_num_threads(max(1, int(threads) // local))
    return device


def write_run_record(path, run: TrainingRun, data: TrainingData, processes: int, backend: str) -> None:
    """run.json: the resolved recipe and the run's identity, beside its metrics."""
    from genrobust.recipe import ramp

    write_json(path, {
        "arch": run.arch, "seed": run.seed, "class_wnids": run.class_wnids,
        "recipe": run.recipe.as_dict(), "resolved": {"peak_lr": run.peak, "ramp": list(ramp(run.recipe)),
                                                    "precision": run.precision},
        "train_rows": data.rows, "sources": {name: len(src.indices) for name, src in data.sources.items()},
        "train_rows_sha1": run.identity["train_rows"],
        "processes": processes, "threads": torch.get_num_threads(), "device": str(run.device),
        "resumed_from": run.resumed_from,
        "loader": backend, "torch": torch.__version__})


# ----------------------------------------------------------------------------- the whole run


def train_classifier(sources: Mapping[str, TrainingSource], val_beton, val_manifest,
                     class_wnids: Sequence[str], arch: str, recipe: Recipe | dict, seed: int,
                     out_model, out_metrics, checkpoint_path, device=None, threads=None,
                     *, out_run=None, backend: str = "auto", keep_checkpoint: bool = False) -> list[dict]:
    """Train `arch` from scratch on the given rows of the training sources (one: a plain
    training set; several: a mixture, every batch in the sources' proportions).

    Resumes from `checkpoint_path` when it exists (see the module docstring) and removes it at
    the end unless keep_checkpoint. Writes `out_model` (torch.save of a dict: arch, num_classes,
    class_wnids, blurpool, state_dict, recipe), `out_metrics` (JSON lines, one per epoch) and
    `out_run` (run.json: resolved recipe and identity; default: beside out_metrics). Either val
    path may be None (no validation). Returns the metrics.
    """
    recipe = recipe if isinstance(recipe, Recipe) else Recipe.from_dict(recipe)
    class_wnids = [str(w) for w in class_wnids]
    if len(class_wnids) < 2:
        raise ValueError("need at least two classes")
    d = _Dist()
    try:
        device = _setup_device(d, device, threads)
        total_batch = int(recipe.batch_size)
        if total_batch % d.world:
            raise ValueError(f"batch_size {total_batch} is not divisible by {d.world} processes")
        data = TrainingData.checked(dict(sources), val_beton, val_manifest, len(class_wnids), backend)
        run = TrainingRun.create(arch, class_wnids, recipe, int(seed), device, total_batch, data)
        run.processes = d.world
        checkpoint_path = Path(checkpoint_path)
        start_epoch, metrics = run.resume(checkpoint_path, say=d.main)
        if d.main:  # the metrics file always matches the checkpoint's epochs
            _write_metrics(out_metrics, metrics)
        train_loader, val_loader = create_loaders(data, recipe, total_batch // d.world, start_epoch,
                                                  run.seed, device, distributed=d.world > 1)
        if data.separate_bn(recipe):  # the real images' rows of every batch, for the split BNs
            set_real_rows(run.model, train_loader.row_ranges()["real"])
        if d.main:
            write_run_record(out_run or Path(out_metrics).with_name("run.json"), run, data, d.world,
                             data.loader_backend())
        run.net = run.model
        if d.world > 1:
            run.net = nn.parallel.DistributedDataParallel(
                run.model, device_ids=[device.index] if device.type == "cuda" else None)
        for epoch in range(start_epoch, recipe.epochs):
            record = _fit_epoch(run, d, train_loader, val_loader, epoch, total_batch)
            metrics.append(record)
            if d.main:
                run.save_checkpoint(checkpoint_path, epoch + 1, metrics)
                with open(out_metrics, "a") as f:
                    f.write(json.dumps(record, sort_keys=True) + "\n")
                _say_epoch(run, record)
            d.barrier()
        if d.main:
            run.save_model(out_model)
            _write_metrics(out_metrics, metrics)
            if not keep_checkpoint:
                checkpoint_path.unlink(missing_ok=True)
        d.barrier()
        return metrics
    finally:
        d.close()


def _fit_epoch(run: TrainingRun, d: _Dist, train_loader, val_loader, epoch: int, total_batch: int) -> dict:
    """Train one epoch at its resolution, check the loss, validate: the epoch's metrics record."""
    t_epoch = time.perf_counter()
    res = resolution_at(epoch, run.recipe)
    train_loader.set_epoch(epoch)
    train_loader.set_resolution(res)
    loss_sum, seen, lr = train_one_epoch(run, train_loader, epoch, show_progress=d.main)
    if run.device.type == "cuda":
        torch.cuda.synchronize(run.device)
    train_seconds = time.perf_counter() - t_epoch
    loss_total, seen_total = d.sum([loss_sum, float(seen)], run.device)
    train_loss = loss_total / (len(train_loader) * d.world)
    _check_finite(run, epoch, train_loss, total_batch)
    top1 = top5 = None
    if val_loader is not None:
        top1, top5 = topk_accuracy(run.model, val_loader, run.device, run.precision)
    return {"epoch": epoch, "train_loss": train_loss, "lr": lr, "resolution": res,
            "val_top1": top1, "val_top5": top5, "images": int(seen_total), "processes": d.world,
            "images_per_s": seen_total / max(train_seconds, 1e-9),
            "seconds": time.perf_counter() - t_epoch}


def _say_epoch(run: TrainingRun, record: dict) -> None:
    top = "" if record["val_top1"] is None else (f" val top-1 {record['val_top1']:.4f} "
                                                  f"top-5 {record['val_top5']:.4f}")
    print(f"{run.arch} epoch {record['epoch'] + 1}/{run.recipe.epochs}: loss {record['train_loss']:.4f}"
          f"{top} ({record['images_per_s']:.0f} img/s)", file=sys.stderr)


def _write_metrics(path, metrics: list[dict]) -> None:
    write_text(path, "".join(json.dumps(m, sort_keys=True) + "\n" for m in metrics))


def read_metrics(path) -> list[dict]:
    return [json.loads(line) for line in Path(path).read_text().splitlines() if line.strip()]
