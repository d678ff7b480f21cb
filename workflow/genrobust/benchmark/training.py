"""Training throughput: data loading (FFCV vs the plain PyTorch loader) and training steps, in images/s.

Two independent measurements, printed as tables (and written as JSON with --json-out):

1. Loaders. The training loaders of genrobust.beton (`create_train_loader`, backend "ffcv" and
   "plain": random-resized crop, flip, normalisation, on the device) iterate over the SAME images:
   by default N procedural labelled images drawn here (genrobust.benchmark.synthetic) into a
   temporary folder, with a manifest CSV and a beton written from it; or an existing manifest and beton
   (--manifest, --beton; a manifest alone gets a beton written from it). The first epoch is timed
   on its own (FFCV compiles its pipeline with numba in it; the plain loader starts its worker
   processes in every epoch, as in training), then --epochs timed epochs. Epochs drop the last
   partial batch, as the training loaders do: an epoch is floor(N / batch) x batch images.
2. Training steps. forward + backward + SGD step (label smoothing, momentum, no weight decay on
   norm layers, as genrobust.train) of each --arch (genrobust.train.create_model, BlurPool,
   channels_last), on a fixed random batch already on the device, so loading costs nothing here.
   Warm-up steps first (cuDNN autotuning, torch.compile), then timed steps, synchronised on GPU.

If the training steps are slower than the loader, the GPU (or CPU) is the bottleneck; if the
loader is slower, more loader workers (or FFCV) pay off.

Commands (the optional rule benchmark_training runs the same with config `benchmarks: training:`):

    # CPU, defaults (~30 s on 2 cores): 512 images at 64 px, batch 32, res 64, 2 workers, a warm-up
    # + 2 timed epochs; resnet18 + resnet50, fp32, 2 warm-up + 5 timed steps
    python -m genrobust benchmark-training --device cpu --threads 2

    # H100: the paper's ResNet-50 step at res 176, batch 256, bf16 (+ loaders at 176 px)
    python -m genrobust benchmark-training --device cuda --arch resnet50 \\
        --res 176 --batch-size 256 --precision bf16 --steps 50 --warmup-steps 10 \\
        --images 4096 --image-size 256 --epochs 3 --workers 12 --json-out benchmark_training.json
    # (drawing 4096 images of 256 px takes ~40 s on one core; --skip-loaders for the step alone)

    # the demo's own data (its beton was written with max_resolution 64)
    python -m genrobust benchmark-training --skip-training \\
        --manifest results/demo/beton/demo10/train/real.csv --beton results/demo/beton/demo10/train/real.beton \\
        --max-resolution 64
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import tempfile
import time
from pathlib import Path

from . import system
from .options import apply_options
from .report import format_loaders, format_training
from .synthetic import draw_images
from .system import BenchmarkError

NAME = "benchmark-training"
BACKENDS = ("ffcv", "plain")
PRECISIONS = ("fp32", "bf16", "fp16")
ARCH_HINT = ("names: python -c \"import timm; print(timm.list_models('resnet*'))\" or "
             "python -c \"import torchvision; print(torchvision.models.list_models())\"; "
             "prefix 'timm:' or 'torchvision:' to pick the library")


def _log(msg: str) -> None:
    system.log(NAME, msg)


def _versions() -> dict:
    """Versions of the training stack; ffcv's only where it imports (beton.ffcv_available)."""
    import importlib.metadata

    from ..beton import ffcv_available

    out = system.versions("timm", "torchvision", "numba")
    out["ffcv"] = None
    if ffcv_available():
        try:
            out["ffcv"] = importlib.metadata.version("ffcv")
        except importlib.metadata.PackageNotFoundError:
            out["ffcv"] = "?"
    return out


# ----------------------------------------------------------------------------- data


def _usable_manifest(manifest_path, work_dir: Path) -> Path:
    """The manifest itself if its image paths exist from here, else a copy (in work_dir) with the
    paths made relative to the manifest's folder (as generated manifests store them)."""
    from .. import io
    from ..beton import manifest_columns

    frame = io.read_csv(manifest_path)
    paths, _ = manifest_columns(frame)
    if not paths:
        raise BenchmarkError(f"manifest {manifest_path} is empty")
    probe = paths[:: max(1, len(paths) // 20)]
    if all(os.path.isfile(p) for p in probe):
        return Path(manifest_path)
    resolved = io.resolve_manifest_paths(frame, manifest_path)
    if all(os.path.isfile(p) for p in resolved.iloc[:: max(1, len(paths) // 20)]):
        frame = frame.assign(path=resolved)
        out = work_dir / "manifest.csv"
        io.write_csv(out, frame)
        return out
    missing = next(p for p in probe if not os.path.isfile(p))
    raise BenchmarkError(f"image {missing} of manifest {manifest_path} does not exist (neither from "
                         f"the working directory {os.getcwd()} nor from the manifest's folder); run "
                         "from the folder its paths are relative to")


def prepare_data(work_dir, *, n_images: int, image_size: int, num_classes: int, seed: int,
                 max_resolution: int, workers: int, manifest=None, beton_path=None,
                 need_beton: bool = True) -> dict:
    """Manifest CSV and (if need_beton and ffcv is there) beton to benchmark the loaders on."""
    from .. import io
    from ..beton import ffcv_available, num_rows, write_beton

    work_dir = Path(work_dir)
    info = {"source": "drawn", "images": None, "image_size": None}
    if manifest is None and beton_path is not None:
        raise BenchmarkError("--beton needs --manifest too (the same images, for the plain loader)")
    if manifest is None:
        start = time.perf_counter()
        frame = draw_images(work_dir / "images", n_images, image_size, num_classes, seed)
        manifest = work_dir / "train.csv"
        io.write_csv(manifest, frame)
        info.update(images=len(frame), image_size=image_size,
                    draw_s=round(time.perf_counter() - start, 3))
        _log(f"drew {len(frame)} images of {image_size}x{image_size} px ({num_classes} classes) "
             f"under {work_dir / 'images'} in {info['draw_s']:.1f} s")
    else:
        if not Path(manifest).is_file():
            raise BenchmarkError(f"--manifest {manifest} does not exist")
        info["source"] = str(manifest)
        manifest = _usable_manifest(manifest, work_dir)
        info["images"] = len(io.read_csv(manifest))
    if beton_path is not None:
        if not Path(beton_path).is_file():
            raise BenchmarkError(f"--beton {beton_path} does not exist")
        if ffcv_available():
            rows = num_rows(beton_path, None)
            if rows != info["images"]:
                raise BenchmarkError(f"--beton {beton_path} has {rows} images but --manifest has "
                                     f"{info['images']}: they must hold the same images")
    elif need_beton and ffcv_available():
        start = time.perf_counter()
        beton_path = work_dir / "train.beton"
        write_beton(io.read_csv(manifest), beton_path, max_resolution=max_resolution,
                    num_workers=max(1, workers))
        info["write_beton_s"] = round(time.perf_counter() - start, 3)
        _log(f"wrote {beton_path} (max_resolution {max_resolution}) in "
             f"{info['write_beton_s']:.1f} s")
    info.update(manifest=str(manifest), beton=None if beton_path is None else str(beton_path))
    return info


# ----------------------------------------------------------------------------- loaders


def benchmark_loader(backend: str, beton_path, manifest_path, *, batch_size: int, resolution: int,
                     workers: int, epochs: int, device=None, seed: int = 0,
                     max_resolution: int = 256) -> dict:
    """images/s of one training loader: a warm-up epoch timed on its own, then `epochs` epochs."""
    from .. import beton

    device = system.resolve_device(device)
    if epochs < 1:
        raise BenchmarkError("--epochs must be at least 1")
    if backend == "ffcv":
        loader = beton.create_ffcv_train_loader(beton_path, None, batch_size, resolution, workers,
                                                seed, device)
    elif backend == "plain":
        loader = beton.create_plain_train_loader(manifest_path, None, batch_size, resolution,
                                                 workers, seed, device,
                                                 max_resolution=max_resolution)
    else:
        raise BenchmarkError(f"backend must be one of {BACKENDS}, not {backend!r}")
    batches = len(loader)
    if batches == 0:
        raise BenchmarkError(f"too few images for one full batch of {batch_size}: lower "
                             "--batch-size (or --loader-batch-size) or raise --images")
    expected = batches * batch_size

    def one_epoch(epoch: int) -> tuple[float, int, int]:
        loader.set_epoch(epoch)
        seen = n_batches = 0
        start = time.perf_counter()
        for images, labels in loader:
            if n_batches == 0 and tuple(images.shape[1:]) != (3, resolution, resolution):
                raise RuntimeError(f"{backend} loader gave images of shape {tuple(images.shape)}")
            seen += int(labels.shape[0])
            n_batches += 1
        system.sync(device)
        return time.perf_counter() - start, seen, n_batches

    _log(f"{backend}: warm-up epoch ({batches} batches of {batch_size} at {resolution} px, "
         f"{workers} workers)")
    warmup_s, warmup_images, _ = one_epoch(0)
    epoch_s, images, batch_counts = [], [], []
    for e in range(1, epochs + 1):
        seconds, seen, n_batches = one_epoch(e)
        epoch_s.append(seconds)
        images.append(seen)
        batch_counts.append(n_batches)
        _log(f"{backend}: epoch {e}/{epochs}: {seen} images in {seconds:.2f} s "
             f"({seen / max(seconds, 1e-9):.0f} images/s)")
    total = sum(epoch_s)
    return {"backend": backend, "batch_size": batch_size, "resolution": resolution,
            "workers": workers, "device": str(device), "batches_per_epoch": batches,
            "expected_images_per_epoch": expected, "warmup_images": warmup_images,
            "warmup_s": warmup_s, "warmup_images_per_s": warmup_images / max(warmup_s, 1e-9),
            "epochs": epochs, "epoch_s": epoch_s, "images_per_epoch": images,
            "batches_per_epoch_seen": batch_counts,
            "images_per_s": sum(images) / max(total, 1e-9)}


# ----------------------------------------------------------------------------- training steps


def check_arch(arch: str) -> None:
    """Raise BenchmarkError (naming close matches and how to list names) for an unknown model."""
    import timm
    import torchvision.models as tvm

    source, name = arch.split(":", 1) if ":" in arch else (None, arch)
    if source in (None, "timm") and timm.is_model(name):
        return
    if source in (None, "torchvision") and name in tvm.list_models():
        return
    from ..train import create_model

    try:
        create_model(arch, 2, blurpool=False)  # raises, with its "did you mean" hint
    except ValueError as e:
        raise BenchmarkError(f"--arch: {e}; {ARCH_HINT}") from e


def _step_precision(device, precision: str, *, steps: int, warmup_steps: int, batch_size: int,
                    resolution: int) -> str:
    """The precision the step runs in (fp32 on the CPU), after checking the step's options."""
    import torch

    if precision not in PRECISIONS:
        raise BenchmarkError(f"--precision must be one of {PRECISIONS}, not {precision!r}")
    if steps < 1 or warmup_steps < 0 or batch_size < 1 or resolution < 8:
        raise BenchmarkError("need --steps >= 1, --warmup-steps >= 0, --batch-size >= 1, --res >= 8")
    if device.type != "cuda" and precision != "fp32":
        _log(f"{precision} autocast is CUDA-only in genrobust.train: timing fp32 on the CPU")
        return "fp32"
    if device.type == "cuda" and precision == "bf16" and not torch.cuda.is_bf16_supported():
        raise BenchmarkError("this GPU does not support bf16; use --precision fp16 or fp32")
    return precision


def _timed(step, n: int, device) -> tuple[float, object]:
    """Seconds of n calls of step (GPU synchronised before and after), and the last result."""
    out = None
    system.sync(device)
    start = time.perf_counter()
    for _ in range(n):
        out = step()
    system.sync(device)
    return time.perf_counter() - start, out


def benchmark_training_step(arch: str, *, resolution: int, batch_size: int, device=None,
                            precision: str = "fp32", steps: int = 5, warmup_steps: int = 2,
                            num_classes: int = 1000, compile: bool = False,
                            compile_mode: str | None = None, channels_last: bool = True,
                            seed: int = 0) -> dict:
    """images/s of forward + backward + SGD step on a random batch already on the device."""
    import torch
    from torch import nn

    from ..train import create_model, parameter_groups, train_step

    device = system.resolve_device(device)
    requested = precision
    precision = _step_precision(device, precision, steps=steps, warmup_steps=warmup_steps,
                                batch_size=batch_size, resolution=resolution)
    check_arch(arch)
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True
    memory_format = torch.channels_last if channels_last else torch.contiguous_format

    torch.manual_seed(seed)
    model = create_model(arch, num_classes, blurpool=True)
    n_params = sum(p.numel() for p in model.parameters())
    model = model.to(device=device, memory_format=memory_format).train()
    optimizer = torch.optim.SGD(parameter_groups(model, 5e-5), lr=0.01, momentum=0.9)
    scaler = torch.amp.GradScaler("cuda", enabled=(device.type == "cuda" and precision == "fp16"))
    criterion = nn.CrossEntropyLoss(label_smoothing=0.1)
    net = torch.compile(model, mode=compile_mode) if compile else model
    gen = torch.Generator().manual_seed(seed)
    images = torch.randn(batch_size, 3, resolution, resolution, generator=gen)
    images = images.to(device).contiguous(memory_format=memory_format)
    labels = torch.randint(0, num_classes, (batch_size,), generator=gen).to(device)

    def step():
        return train_step(net, criterion, optimizer, scaler, images, labels, device, precision)

    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    _log(f"{arch}: {warmup_steps} warm-up steps (batch {batch_size}, res {resolution}, {precision}"
         f"{', torch.compile' if compile else ''})")
    warmup_s, _ = _timed(step, warmup_steps, device)
    seconds, loss = _timed(step, steps, device)
    loss_value = float(loss.detach().float().cpu())
    if not math.isfinite(loss_value):
        _log(f"{arch}: warning: the loss is {loss_value} (timings still stand)")
    result = {"arch": arch, "resolution": resolution, "batch_size": batch_size,
              "precision": precision, "requested_precision": requested, "device": str(device),
              "channels_last": channels_last, "compile": bool(compile),
              "compile_mode": compile_mode if compile else None, "num_classes": num_classes,
              "parameters": n_params, "warmup_steps": warmup_steps, "warmup_s": warmup_s,
              "steps": steps, "seconds": seconds, "ms_per_step": 1000 * seconds / steps,
              "images_per_s": steps * batch_size / max(seconds, 1e-9), "last_loss": loss_value,
              "peak_memory_gib": None}
    if device.type == "cuda":
        result["peak_memory_gib"] = torch.cuda.max_memory_allocated(device) / 2**30
    _log(f"{arch}: {steps} steps in {seconds:.2f} s ({result['images_per_s']:.1f} images/s)")
    return result


# ----------------------------------------------------------------------------- command line


def build_parser(add_help: bool = True) -> argparse.ArgumentParser:
    """The benchmark's options (add_help=False to reuse it as a parent of a CLI subcommand)."""
    p = argparse.ArgumentParser(prog=NAME, description=__doc__.splitlines()[0], add_help=add_help)
    p.add_argument("--device", default=None, help="cuda or cpu (default: cuda if available)")
    p.add_argument("--threads", type=int, default=None, help="torch CPU threads (torch.set_num_threads)")
    p.add_argument("--batch-size", type=int, default=32, help="training-step batch (and loader batch)")
    p.add_argument("--res", type=int, default=64, help="training-step resolution (and loader output side)")
    p.add_argument("--json-out", default=None, help="write every figure as JSON here")
    p.add_argument("--options", type=json.loads, default=None, metavar="JSON",
                   help="options as a JSON mapping of option names (batch_size, arch, ...) to values, "
                        "as config 'benchmarks: training:' holds them; they override the flags")
    p.add_argument("--seed", type=int, default=0)
    g = p.add_argument_group("loaders")
    g.add_argument("--skip-loaders", action="store_true")
    g.add_argument("--backends", nargs="+", choices=BACKENDS, default=list(BACKENDS))
    g.add_argument("--images", type=int, default=512, help="number of images to draw")
    g.add_argument("--image-size", type=int, default=64, help="side of the drawn images in px")
    g.add_argument("--classes", type=int, default=10, help="classes of the drawn images")
    g.add_argument("--manifest", default=None, help="use this manifest (path, label) instead of drawing")
    g.add_argument("--beton", default=None, help="the beton of --manifest's images (else one is written)")
    g.add_argument("--max-resolution", type=int, default=256,
                   help="longer side cap of the beton's images (write_beton; the plain loader shrinks "
                        "images the same way); the demo's betons use 64")
    g.add_argument("--work-dir", default=None,
                   help="keep the drawn images, manifest and beton here (default: a temporary folder)")
    g.add_argument("--workers", type=int, default=2,
                   help="loader workers (FFCV threads / DataLoader processes)")
    g.add_argument("--epochs", type=int, default=2, help="timed epochs after the warm-up epoch")
    g.add_argument("--loader-batch-size", type=int, default=None, help="default: --batch-size")
    g.add_argument("--loader-res", type=int, default=None, help="default: --res")
    g = p.add_argument_group("training steps")
    g.add_argument("--skip-training", action="store_true")
    g.add_argument("--arch", nargs="+", default=["resnet18", "resnet50"],
                   help="timm or torchvision names (prefix timm: or torchvision: to choose)")
    g.add_argument("--precision", default="fp32", choices=PRECISIONS,
                   help="autocast dtype on CUDA (fp16 with GradScaler); the CPU always runs fp32")
    g.add_argument("--steps", type=int, default=5, help="timed steps")
    g.add_argument("--warmup-steps", type=int, default=2)
    g.add_argument("--num-classes", type=int, default=1000, help="classifier head size")
    g.add_argument("--compile", action="store_true", help="torch.compile the model")
    g.add_argument("--compile-mode", default=None, help="torch.compile mode (e.g. max-autotune)")
    g.add_argument("--no-channels-last", action="store_true")
    return p


def _settings(args, device) -> dict:
    import torch

    load, cores = system.load_average(), os.cpu_count() or 1
    _log(f"{system.device_name(device)}, {torch.get_num_threads()} torch threads, load average "
         f"{load} on {cores} cores")
    system.warn_if_busy(device, NAME)
    return {"device": str(device), "device_name": system.device_name(device),
            "torch_threads": torch.get_num_threads(), "cpu_count": cores, "load_average_start": load,
            "options": {k: v for k, v in vars(args).items() if not callable(v)}, **_versions()}


def _run_loaders(args, device, has_ffcv: bool) -> dict:
    backends = list(dict.fromkeys(args.backends))
    if "ffcv" in backends and not has_ffcv:
        print("ffcv is NOT importable here: benchmarking the plain PyTorch loader only", flush=True)
        backends.remove("ffcv")
    if not backends:
        raise BenchmarkError("no loader backend left to benchmark (ffcv is not importable)")
    batch = args.loader_batch_size or args.batch_size
    res = args.loader_res or args.res
    with tempfile.TemporaryDirectory(prefix="benchmark-training-") as tmp:
        work = Path(args.work_dir) if args.work_dir else Path(tmp)
        work.mkdir(parents=True, exist_ok=True)
        data = prepare_data(work, n_images=args.images, image_size=args.image_size,
                            num_classes=args.classes, seed=args.seed,
                            max_resolution=args.max_resolution, workers=args.workers,
                            manifest=args.manifest, beton_path=args.beton,
                            need_beton="ffcv" in backends)
        results = [benchmark_loader(b, data["beton"], data["manifest"], batch_size=batch,
                                    resolution=res, workers=args.workers, epochs=args.epochs,
                                    device=device, seed=args.seed, max_resolution=args.max_resolution)
                   for b in backends]
    by = {r["backend"]: r for r in results}
    ratio = (by["ffcv"]["images_per_s"] / by["plain"]["images_per_s"]
             if {"ffcv", "plain"} <= set(by) else None)
    return {"ffcv_available": has_ffcv, "data": data, "results": results, "ffcv_over_plain": ratio}


def _run_training(args, device) -> list[dict]:
    import torch

    rows = []
    for arch in args.arch:
        try:
            rows.append(benchmark_training_step(
                arch, resolution=args.res, batch_size=args.batch_size, device=device,
                precision=args.precision, steps=args.steps, warmup_steps=args.warmup_steps,
                num_classes=args.num_classes, compile=args.compile, compile_mode=args.compile_mode,
                channels_last=not args.no_channels_last, seed=args.seed))
            if device.type == "cuda":
                torch.cuda.empty_cache()  # the model and its optimizer state are gone
        except torch.OutOfMemoryError as err:
            _log(f"{arch}: out of GPU memory at batch {args.batch_size} ({err}); try a smaller --batch-size")
            torch.cuda.empty_cache()
    return rows


def run(args: argparse.Namespace) -> int:
    """Run the benchmark for parsed options (build_parser); prints the tables, returns an exit code."""
    import torch

    from .. import io
    from ..beton import ffcv_available

    has_ffcv = ffcv_available()  # importing ffcv resets torch's thread count: before --threads
    report = {"settings": {}, "loaders": None, "training": []}
    try:
        args = apply_options(args, build_parser())
        if args.threads:
            torch.set_num_threads(max(1, args.threads))
        if args.skip_loaders and args.skip_training:
            raise BenchmarkError("--skip-loaders and --skip-training together leave nothing to run")
        device = system.resolve_device(args.device)
        if not args.skip_training:
            for arch in args.arch:  # fail before the (slower) loader part
                check_arch(arch)
        report["settings"] = _settings(args, device)
        if not args.skip_loaders:
            report["loaders"] = _run_loaders(args, device, has_ffcv)
            print(format_loaders(report["loaders"]), flush=True)
        if not args.skip_training:
            report["training"] = _run_training(args, device)
            if report["loaders"] is not None:
                print()
            print(format_training(report["training"]), flush=True)
        report["settings"]["load_average_end"] = system.load_average()
    except (BenchmarkError, FileNotFoundError) as err:
        print(f"{NAME}: error: {err}", file=sys.stderr)
        return 2
    if args.json_out:
        io.write_json(args.json_out, report)
        _log(f"wrote {args.json_out}")
    if not args.skip_training and not report["training"]:
        return 3  # every architecture ran out of memory
    return 0
