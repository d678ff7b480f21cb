"""A generation shard's overhead around its pipeline calls: what the shard itself costs (planning,
seeds, progress records, JPEG encoding and writes, the manifest) beside the denoising it wraps.

At 30+ images/s per GPU (a few-step generator) every millisecond a shard spends per image outside
the pipeline is a few percent of the run, so this runs the real shard code (generate.run_shard
with the class-label renderer) on a tiny demo pipeline, times every pipeline call, and reports
the rest as the overhead, model loading apart:

    python -m genrobust benchmark-shard --tiny results/demo/models/sd --images 240 --batch-size 8
    python -m genrobust benchmark-shard --tiny results/demo/models/sd --steps 1 --guidance 1 --scheduler LCMScheduler

The tiny model's pipeline call is milliseconds where SD v1.5's is seconds, so the overhead it
shows is an upper bound of a full-size run's at the same images/s.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

NAME = "benchmark-shard"
WNIDS = ["n01440764", "n01443537", "n01484850", "n01491361", "n01494475", "n01496331", "n01498041", "n01514668",
         "n01514859", "n01518878"]  # ten ImageNet classes, as the demo has


class _TimedPipe:
    """The pipeline, with the seconds spent in its calls added up."""

    def __init__(self, pipe):
        self.pipe, self.seconds, self.calls = pipe, 0.0, 0

    def __call__(self, *args, **kwargs):
        start = time.perf_counter()
        try:
            return self.pipe(*args, **kwargs)
        finally:
            self.seconds += time.perf_counter() - start
            self.calls += 1

    def __getattr__(self, name):
        return getattr(self.pipe, name)


def measure_shard(model_dir: str, out: str, *, images: int, batch_size: int, steps: int, size: int,
                  guidance: float = 7.5, scheduler: str = "PNDMScheduler", jpeg_quality: int = 95) -> dict:
    """Run one class-label shard of `images` images into `out`; its wall time split into model
    loading, pipeline calls and the rest (the overhead)."""
    from ..generate.plan import plan_shard
    from ..generate.renderers import RENDERERS
    from ..generate.shard import run_shard
    from ..generate.spec import StrategySpec

    per_class = -(-images // len(WNIDS))
    spec = StrategySpec.from_dict({
        "kind": "class_labels", "model_id": model_dir, "scheduler": scheduler, "steps": steps, "guidance": guidance,
        "height": size, "width": size, "batch_size": batch_size, "dtype": "float32", "save_size": size,
        "jpeg_quality": jpeg_quality, "per_class": per_class, "n_shards": 1, "seed": 0})
    items = plan_shard("class_labels", "bench", "train", spec, WNIDS, 1, 0, 0, None)[:images]
    renderer = RENDERERS["class_labels"](spec, WNIDS, "cpu")
    timed = {}

    def prepare():
        start = time.perf_counter()
        renderer.prepare()
        renderer.pipe = timed["pipe"] = _TimedPipe(renderer.pipe)
        timed["load"] = time.perf_counter() - start

    start = time.perf_counter()
    run_shard(items=items, render=renderer, prepare=prepare, batch_size=batch_size, settings=spec.settings(),
              out_manifest=str(Path(out) / "shard~0" / "manifest.csv"), save_size=size, jpeg_quality=jpeg_quality,
              desc=NAME, device="cpu")
    wall = time.perf_counter() - start - timed["load"]
    pipeline = timed["pipe"].seconds
    return {"images": len(items), "batch_size": batch_size, "steps": steps, "guidance": guidance, "size": size,
            "scheduler": scheduler, "model_load_s": round(timed["load"], 3), "wall_s": round(wall, 3),
            "pipeline_s": round(pipeline, 3), "pipeline_calls": timed["pipe"].calls,
            "overhead_s": round(wall - pipeline, 3), "overhead_percent": round(100 * (wall - pipeline) / wall, 2),
            "images_per_s": round(len(items) / wall, 2)}


def build_parser(add_help: bool = True) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog=NAME, description=__doc__.splitlines()[0], add_help=add_help)
    p.add_argument("--tiny", metavar="MODEL_DIR", required=True, help="a tiny demo SD pipeline folder")
    p.add_argument("--images", type=int, default=240)
    p.add_argument("--batch-size", type=int, default=8)
    p.add_argument("--steps", type=int, default=3, help="the demo's 3")
    p.add_argument("--guidance", type=float, default=7.5, help="<= 1: no classifier-free guidance")
    p.add_argument("--scheduler", default="PNDMScheduler")
    p.add_argument("--size", type=int, default=64, help="image side (the demo's 64)")
    p.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    p.add_argument("--json-out", default=None)
    return p


def run(args) -> int:
    import torch

    if args.threads:
        torch.set_num_threads(args.threads)
    with tempfile.TemporaryDirectory(prefix="genrobust-shard-") as out:
        result = measure_shard(args.tiny, out, images=args.images, batch_size=args.batch_size, steps=args.steps,
                               size=args.size, guidance=args.guidance, scheduler=args.scheduler)
    print(f"[{NAME}] {result['images']} images at {result['size']} px, batch {result['batch_size']}, "
          f"{result['steps']} steps ({result['scheduler']}, guidance {result['guidance']:g}): "
          f"{result['wall_s']:.2f} s, {result['pipeline_s']:.2f} s in {result['pipeline_calls']} pipeline calls, "
          f"overhead {result['overhead_s']:.2f} s = {result['overhead_percent']:.1f}% "
          f"({result['images_per_s']:.1f} images/s; model load {result['model_load_s']:.2f} s apart)")
    if args.json_out:
        Path(args.json_out).write_text(json.dumps(result, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(run(build_parser().parse_args()))
