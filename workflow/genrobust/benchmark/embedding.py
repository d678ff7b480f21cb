"""Embedding throughput of the metric extractors, in images/s: clean-fid's Inception (pool3,
2048-d at 299 px) and CLIP ViT-B/32 (224 px), full-size architectures with random weights (no
download), on the device the metrics jobs use.

Two measurements per extractor, printed as a table (and written as JSON with --json-out):

1. model: forward passes on a fixed random batch already on the device (warm-up steps first,
   then timed steps, synchronised on GPU), per batch size: the GPU's ceiling;
2. pipeline: `metrics.embeddings.embed_image_set`, the production function, over --images
   procedural JPEGs of --image-size px drawn here, with --workers DataLoader workers decoding and
   resizing (clean-fid's 'clean' resize for Inception, open_clip's transform for CLIP): what an
   embedding job reaches. If it is far below the model figure, more workers pay off.

    python -m genrobust benchmark-embedding --device cpu --threads 2 --batch-size 4 --steps 2 --images 16
    python -m genrobust benchmark-embedding --device cuda --batch-size 128 256 --precision fp16 \\
        --steps 20 --warmup-steps 5 --images 4096 --image-size 500 --workers 12 --json-out embedding.json

Inception here is torchvision's inception_v3 (the architecture of clean-fid's TorchScript file,
with its pool3 features), since the real weights are a download; CLIP is open_clip's ViT-B-32.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

from . import system
from .synthetic import draw_images
from .system import BenchmarkError

NAME = "benchmark-embedding"
EXTRACTORS = ("inception", "clip")


def _inception(device):
    """Full-size Inception-v3 with random weights, in clean-fid's convention (0..255 in, 2048 out)."""
    import torch
    import torchvision

    from genrobust.metrics.extractors import Extractor, _clean_resize

    net = torchvision.models.inception_v3(weights=None, aux_logits=False, init_weights=False)
    net.fc = torch.nn.Identity()
    net = net.to(device).eval()

    def embed(batch):
        return net((batch - 128) / 128).float()

    return Extractor("inception", _clean_resize, embed, {"extractor": "inception", "weights": "random"}, net)


def _clip(device):
    import open_clip
    import torch

    from genrobust.metrics.extractors import Extractor

    model, _, preprocess = open_clip.create_model_and_transforms("ViT-B-32", pretrained=None, device=device)
    model = model.eval()

    def embed(batch):
        return torch.nn.functional.normalize(model.encode_image(batch).float(), dim=-1)

    return Extractor("clip", preprocess, embed, {"extractor": "clip", "model": "ViT-B-32", "weights": "random"}, model)


def build_random(name: str, device):
    if name not in EXTRACTORS:
        raise BenchmarkError(f"unknown extractor {name!r} (one of {', '.join(EXTRACTORS)})")
    return {"inception": _inception, "clip": _clip}[name](device)


def time_model(extractor, device, batch_size: int, steps: int, warmup: int, precision: str) -> dict:
    import torch

    from genrobust.scoring import autocast

    size = 299 if extractor.name == "inception" else 224
    batch = torch.rand(batch_size, 3, size, size, device=device) * (255 if extractor.name == "inception" else 1)
    with torch.inference_mode(), autocast(device, precision):
        for _ in range(warmup):
            extractor.embed(batch)
        system.sync(device)
        start = time.perf_counter()
        for _ in range(steps):
            extractor.embed(batch)
        system.sync(device)
    seconds = time.perf_counter() - start
    return {"batch_size": batch_size, "steps": steps, "seconds": round(seconds, 3),
            "images_per_second": round(batch_size * steps / seconds, 1)}


def time_pipeline(extractor, device, table: Path, out: Path, batch_size: int, workers: int, precision: str) -> dict:
    from genrobust.metrics.embeddings import embed_image_set

    record = embed_image_set(table, out / extractor.name, extractor, extractor_name=extractor.name,
                             spec={"benchmark": True, "batch_size": batch_size}, batch_size=batch_size,
                             num_workers=workers, device=str(device), precision=precision, dtype="float16")
    return {"batch_size": batch_size, "workers": workers, "images": record["images"],
            "seconds": record["seconds"], "images_per_second": record["images_per_second"]}


def build_parser(add_help: bool = True) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog=f"genrobust {NAME}", add_help=add_help, description=__doc__.splitlines()[0])
    p.add_argument("--device", help="cpu or cuda (default: cuda if available)")
    p.add_argument("--extractor", nargs="+", default=list(EXTRACTORS), choices=EXTRACTORS)
    p.add_argument("--batch-size", type=int, nargs="+", default=[64])
    p.add_argument("--precision", default="fp16", choices=["fp32", "bf16", "fp16"], help="autocast on GPUs")
    p.add_argument("--steps", type=int, default=10)
    p.add_argument("--warmup-steps", type=int, default=2)
    p.add_argument("--images", type=int, default=256, help="procedural JPEGs for the pipeline (0: skip it)")
    p.add_argument("--image-size", type=int, default=256)
    p.add_argument("--workers", type=int, default=4)
    p.add_argument("--threads", type=int)
    p.add_argument("--options", type=json.loads, default=None, metavar="JSON",
                   help="options as a JSON mapping of option names (batch_size, ...) to values (the rule's form)")
    p.add_argument("--json-out")
    return p


def run(args: argparse.Namespace) -> int:
    import torch

    from .options import apply_options

    try:
        args = apply_options(args, build_parser())
        if args.threads:
            torch.set_num_threads(args.threads)
        device = system.resolve_device(args.device)
        args.batch_size = args.batch_size if isinstance(args.batch_size, list) else [args.batch_size]
        if min(args.batch_size) < 1 or args.steps < 1:
            raise BenchmarkError("--batch-size and --steps must be at least 1")
        system.warn_if_busy(device, NAME)
        results = {"device": system.device_name(device), "precision": args.precision,
                   "threads": torch.get_num_threads(), "versions": system.versions("open_clip", "cleanfid"),
                   "extractors": {}}
        with tempfile.TemporaryDirectory(prefix="genrobust-embedding-") as tmp:
            table = None
            if args.images:
                frame = draw_images(Path(tmp) / "images", args.images, args.image_size)
                table = Path(tmp) / "index.csv"
                frame.assign(wnid="n01440764").to_csv(table, index=False)
            for name in args.extractor:
                extractor = build_random(name, device)
                entry = {"model": [time_model(extractor, device, b, args.steps, args.warmup_steps, args.precision)
                                   for b in args.batch_size]}
                if table is not None:
                    entry["pipeline"] = time_pipeline(extractor, device, table, Path(tmp) / "features",
                                                      max(args.batch_size), args.workers, args.precision)
                results["extractors"][name] = entry
                for row in entry["model"]:
                    system.log(NAME, f"{name} model, batch {row['batch_size']}: {row['images_per_second']} images/s")
                if "pipeline" in entry:
                    p = entry["pipeline"]
                    system.log(NAME, f"{name} pipeline ({p['workers']} workers, {args.image_size}-px JPEGs): "
                               f"{p['images_per_second']} images/s")
    except BenchmarkError as err:
        print(f"{NAME}: error: {err}", file=sys.stderr)
        return 2
    print(json.dumps(results, indent=2))
    if args.json_out:
        from genrobust import io

        io.write_json(args.json_out, results)
    return 0
