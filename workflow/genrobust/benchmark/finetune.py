"""Fine-tuning throughput of Stable Diffusion v1.5 (images/s), full UNet and LoRA, per precision.

Table 6's model is SD v1.5 fine-tuned for one epoch on the 1.28M ImageNet-1K train images, so
images/s of a fine-tuning step on the target GPU decides that job's cost. Throughput does not
depend on the weights: this builds the full-size architectures (genrobust.architectures) with
random weights and times the very training step the finetune stage runs (finetune.loop.Trainer:
VAE encode, noise, UNet forward and backward under accelerate's mixed precision, clipping, the
optimizer step) on random 512-px batches, after warm-up steps. `--tiny MODEL_DIR` times a tiny
demo pipeline folder instead (the CPU test). It prints images/s and what one epoch of
ImageNet-1K would take at that rate (arithmetic).

Command line: `python -m genrobust benchmark-finetune --device cuda --method full lora
--precision fp16 bf16 --batch-size 16`; the optional rule benchmark_finetune (config
`benchmarks: finetune:`) runs it on a cluster GPU.
"""

from __future__ import annotations

import argparse
import json
import time

from . import system
from .runner import run_measurement
from .system import BenchmarkError

NAME = "benchmark-finetune"
IMAGENET_TRAIN = 1_281_167  # ImageNet-1K train images (the paper's "1.3M")


def build_parser(add_help: bool = True) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog=NAME, description=__doc__.splitlines()[0], add_help=add_help)
    p.add_argument("--device", default=None, help="cuda or cpu (default: cuda if available)")
    p.add_argument("--method", nargs="+", default=["full", "lora"], choices=["full", "lora"])
    p.add_argument("--precision", nargs="+", default=None, choices=["fp32", "fp16", "bf16"],
                   help="mixed precision (default: fp16 bf16 on CUDA, fp32 on the CPU)")
    p.add_argument("--batch-size", type=int, nargs="+", default=[16], help="per GPU; one or more (a sweep)")
    p.add_argument("--size", type=int, default=512, help="training resolution (the paper's 512)")
    p.add_argument("--steps", type=int, default=10, help="timed optimizer steps")
    p.add_argument("--warmup-steps", type=int, default=3)
    p.add_argument("--optimizer", default="adamw8bit", choices=["adamw", "adamw8bit"],
                   help="adamw8bit (bitsandbytes) as the paper's run; adamw for torch's")
    p.add_argument("--gradient-checkpointing", action="store_true")
    p.add_argument("--lora-rank", type=int, default=4)
    p.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    p.add_argument("--tiny", metavar="MODEL_DIR", default=None, help="time this tiny demo pipeline folder instead")
    p.add_argument("--options", type=json.loads, default=None, metavar="JSON",
                   help="options as a JSON mapping (config 'benchmarks: finetune:'); they override the flags")
    p.add_argument("--json-out", default=None, help="write all results as JSON here")
    return p


def _parts(args, device):
    """Fresh components (each configuration trains its own copy)."""
    from ..finetune.loop import _load_components

    if args.tiny:
        return _load_components(args.tiny, None)
    from diffusers import DDPMScheduler, PNDMScheduler

    from .. import architectures
    from .pipelines import _tokenizer, build_sd15_components

    parts = build_sd15_components(device, "float32")  # float32 master weights, cast by the trainer
    scheduler = DDPMScheduler.from_config(PNDMScheduler(**architectures.sd15_scheduler_config()).config)
    return {**parts, "noise_scheduler": scheduler, "tokenizer": _tokenizer(None)}


def _reset_accelerate() -> None:
    """accelerate keeps one global state per process; each configuration sets its own precision."""
    from accelerate.state import AcceleratorState, GradientState

    AcceleratorState._reset_state(True)
    GradientState._reset_state()


def benchmark_config(args, device, method: str, precision: str, batch_size: int) -> dict:
    """images/s of `steps` optimizer steps of one configuration, after warm-up steps."""
    import torch

    from ..finetune.loop import Plan, Trainer
    from ..finetune.recipe import FinetuneRecipe

    _reset_accelerate()
    recipe = FinetuneRecipe(base="benchmark", dataset="random", method=method, batch_size=batch_size,
                            resolution=args.size, mixed_precision=precision, optimizer=args.optimizer,
                            gradient_checkpointing=args.gradient_checkpointing, lora_rank=args.lora_rank,
                            max_steps=args.steps + args.warmup_steps, lr=1e-6 if method == "full" else 1e-4)
    captions = [f"a photo of a class {i}" for i in range(16)]
    plan = Plan.of(recipe, batch_size * recipe.max_steps, 1)
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    trainer = Trainer.create(recipe, None, None, captions, plan, device.type, parts=_parts(args, device))
    generator = torch.Generator(trainer.accelerator.device).manual_seed(0)
    pixels = torch.rand(batch_size, 3, args.size, args.size, generator=torch.Generator().manual_seed(0)) * 2 - 1
    pixels = pixels.to(trainer.accelerator.device)
    caption_ids = torch.arange(batch_size) % len(captions)
    trainer.unet.train()
    for _ in range(args.warmup_steps):
        trainer.micro_step(pixels, caption_ids, generator)
    system.sync(device)
    start = time.perf_counter()
    for _ in range(args.steps):
        loss = trainer.micro_step(pixels, caption_ids, generator)
    loss = float(loss)
    system.sync(device)
    seconds = time.perf_counter() - start
    trained = sum(p.numel() for p in trainer.unet.parameters() if p.requires_grad)
    result = {"method": method, "precision": trainer.precision, "batch_size": batch_size, "size": args.size,
              "optimizer": args.optimizer, "gradient_checkpointing": args.gradient_checkpointing,
              "steps": args.steps, "seconds": round(seconds, 3), "step_seconds": seconds / args.steps,
              "images_per_s": batch_size * args.steps / seconds, "trained_parameters": trained, "last_loss": loss,
              "peak_memory_gb": (torch.cuda.max_memory_allocated(device) / 2**30 if device.type == "cuda" else None),
              "model": args.tiny or "SD v1.5 architecture, random weights"}
    result["imagenet_epoch_hours"] = IMAGENET_TRAIN / result["images_per_s"] / 3600
    del trainer
    if device.type == "cuda":
        torch.cuda.empty_cache()
    return result


def format_results(results: list[dict]) -> str:
    lines = [f"{'method':<6} {'prec':<5} {'batch':>5} {'size':>5} {'images/s':>9} {'s/step':>7} {'peak GB':>8} "
             f"{'ImageNet epoch (h)':>19}"]
    for r in results:
        peak = "-" if r["peak_memory_gb"] is None else f"{r['peak_memory_gb']:.1f}"
        lines.append(f"{r['method']:<6} {r['precision']:<5} {r['batch_size']:>5} {r['size']:>5} "
                     f"{r['images_per_s']:>9.2f} {r['step_seconds']:>7.3f} {peak:>8} {r['imagenet_epoch_hours']:>19.1f}")
    lines.append(f"(ImageNet epoch: {IMAGENET_TRAIN:,} images / images/s on one device; arithmetic, not measured)")
    return "\n".join(lines)


def _measure(args: argparse.Namespace, results: list[dict]) -> None:
    """Every (method, precision, batch size) of args, appended to `results` as each finishes."""
    if args.steps < 1 or args.warmup_steps < 0 or min(args.batch_size) < 1 or args.size % 8:
        raise BenchmarkError("need --steps >= 1, --warmup-steps >= 0, --batch-size >= 1, --size a multiple of 8")
    device = system.resolve_device(args.device)
    precisions = args.precision or (["fp16", "bf16"] if device.type == "cuda" else ["fp32"])
    system.warn_if_busy(device, NAME)
    system.log(NAME, f"{system.device_name(device)}; load {system.load_average()}")
    for method in args.method:
        for precision in precisions:
            for batch in args.batch_size:
                result = benchmark_config(args, device, method, precision, batch)
                result.update(device=system.device_name(device), versions=system.versions(
                    "diffusers", "accelerate", "peft", "bitsandbytes"))
                results.append(result)
                system.log(NAME, f"{method} {result['precision']} batch {batch}: {result['images_per_s']:.2f} images/s")


def run(args: argparse.Namespace) -> int:
    """Run the benchmark for parsed options (build_parser); prints the table, returns an exit code."""
    return run_measurement(NAME, args, build_parser(), _measure, format_results, errors=(ValueError,),
                           oom_hint="try a smaller --batch-size or --gradient-checkpointing")
