"""One fine-tuning run, end to end: data, steps, checkpoints, the saved model and its records.

`finetune_model` writes `out_dir` atomically when the run ends: for method full a
StableDiffusionPipeline folder (save_pretrained: the base's components with the trained UNet),
for method lora the adapter in diffusers' format with a pointer to the base (finetune.lora); both
with metrics.jsonl (step, epoch, loss, lr, images, seconds) and run.json (recipe, resolved plan,
throughput, device, versions).
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import sys
import time
from pathlib import Path

from .. import io
from ..seeding import derive_seed
from . import data as fdata
from . import loop
from .loop import METRICS_FILE, RUN_FILE, Plan, Trainer
from .recipe import FinetuneRecipe


def _index_digest(index: fdata.CaptionedIndex) -> str:
    rows = "\n".join(f"{p}\t{c}" for p, c in zip(index.paths, index.caption_ids.tolist()))
    return hashlib.sha1(rows.encode()).hexdigest()


def _versions() -> dict:
    from ..benchmark.system import versions

    return versions("diffusers", "transformers", "accelerate", "peft", "bitsandbytes")


def _threads(threads: int | None) -> None:
    if threads:
        import torch

        local = int(os.environ.get("LOCAL_WORLD_SIZE", "1"))  # the job's cores, shared by its processes
        torch.set_num_threads(max(1, int(threads) // local))


def finetune_model(base_id: str, base_revision: str | None, recipe: FinetuneRecipe | dict, index_csv: str,
                   out_dir: str, checkpoint_dir: str, seed: int, *, threads: int | None = None,
                   device: str | None = None, keep_checkpoints: bool = False) -> dict:
    """Fine-tune `base_id` on the images of `index_csv` (a dataset index) captioned by class
    name; write `out_dir` (see the module docstring) and return the run record."""
    import torch
    from accelerate.utils import set_seed
    from tqdm import tqdm

    recipe = recipe if isinstance(recipe, FinetuneRecipe) else FinetuneRecipe.from_dict(recipe)
    seed = int(recipe.seed if recipe.seed is not None else seed)
    _threads(threads)
    index = fdata.read_captioned_index(index_csv, recipe.caption_template, recipe.class_names)
    set_seed(seed)  # the LoRA adapter's initial weights
    processes = int(os.environ.get("WORLD_SIZE", "1"))
    plan = Plan.of(recipe, len(index), processes)
    trainer = Trainer.create(recipe, base_id, base_revision, index.captions, plan, device)
    acc = trainer.accelerator
    identity = {"recipe": recipe.identity(), "base": [base_id, base_revision], "data": _index_digest(index),
                "seed": seed, "processes": acc.num_processes, "precision": trainer.precision}
    checkpoints = Path(checkpoint_dir)
    start, metrics = loop.resume(trainer, checkpoints, identity)
    dataset = fdata.CaptionedImages(index, fdata.ImageTransform(recipe.resolution, recipe.center_crop,
                                                                 recipe.random_flip, seed))
    if acc.is_main_process:
        print(f"[finetune] {recipe.method} fine-tuning of {base_id} on {len(index):,} images ({len(index.captions)} "
              f"captions, e.g. {index.captions[0]!r}): {plan.total_steps} steps of {plan.images_per_step} images "
              f"({plan.epochs} epoch(s)) on {acc.num_processes} process(es), {acc.device}, {trainer.precision}, "
              f"lr {trainer.lr:g}", file=sys.stderr)
    bar = tqdm(total=plan.total_steps, initial=start, disable=not acc.is_main_process, file=sys.stderr,
               mininterval=1.0, desc=f"finetune {recipe.method}")
    t0, step = time.perf_counter(), start
    trainer.unet.train()
    for epoch in range(start // plan.steps_per_epoch, plan.epochs):
        first = (step - epoch * plan.steps_per_epoch) * plan.accumulation
        last = min(plan.steps_per_epoch, plan.total_steps - epoch * plan.steps_per_epoch) * plan.accumulation
        batches = fdata.micro_batches(len(index), seed, epoch, recipe.batch_size, acc.num_processes,
                                      acc.process_index, last, first)
        summed = torch.zeros((), device=acc.device, dtype=torch.float64)
        for j, (pixels, captions) in enumerate(fdata.loader(dataset, batches, recipe.num_workers,
                                                            acc.device.type == "cuda"), start=first):
            generator = torch.Generator(acc.device).manual_seed(
                derive_seed(seed, "finetune-noise", epoch, j, acc.process_index))
            summed += trainer.micro_step(pixels, captions, generator).double()
            if not acc.sync_gradients:
                continue
            lr = trainer.lr_scheduler.get_last_lr()[0]
            trainer.lr_scheduler.step()
            if trainer.ema is not None:
                trainer.ema.step(trainer.unet.parameters())
            step += 1
            mean = acc.gather((summed / plan.accumulation).reshape(1)).mean().item()
            summed.zero_()
            if not (mean == mean and abs(mean) != float("inf")):
                raise ValueError(f"fine-tuning diverged at step {step}: loss {mean}; lower finetune.lr or use "
                                 "bf16 rather than fp16")
            metrics.append({"step": step, "epoch": epoch, "loss": mean, "lr": lr, "images": step * plan.images_per_step,
                            "seconds": round(time.perf_counter() - t0, 3)})
            bar.update(1)
            bar.set_postfix(loss=f"{mean:.4f}", lr=f"{lr:.2e}")
            if step % recipe.checkpoint_every == 0 and step < plan.total_steps:
                loop.save_checkpoint(trainer, checkpoints, step, identity, metrics)
            loop._after_step(step)
    bar.close()
    seconds = time.perf_counter() - t0
    record = _run_record(recipe, base_id, base_revision, index_csv, index, plan, trainer, seed, start, step, seconds)
    acc.wait_for_everyone()
    if acc.is_main_process:
        _save_output(trainer, recipe, base_id, base_revision, out_dir, metrics, record)
        if not keep_checkpoints:
            shutil.rmtree(checkpoints, ignore_errors=True)
        print(f"[finetune] {step} steps, last loss {metrics[-1]['loss']:.4f}; {record['images_per_s']:.2f} "
              f"images/s -> {out_dir}", file=sys.stderr)
    acc.wait_for_everyone()
    acc.end_training()
    return record


def _run_record(recipe, base_id, base_revision, index_csv, index, plan: Plan, trainer: Trainer, seed: int,
                start: int, step: int, seconds: float) -> dict:
    import torch

    from ..benchmark.system import device_name

    images = (step - start) * plan.images_per_step
    return {
        "base": {"id": base_id, "revision": base_revision}, "method": recipe.method, "recipe": recipe.as_dict(),
        "resolved": {"lr": trainer.lr, "mixed_precision": trainer.precision, "total_steps": plan.total_steps,
                     "epochs": plan.epochs, "steps_per_epoch": plan.steps_per_epoch,
                     "images_per_step": plan.images_per_step, "processes": trainer.accelerator.num_processes,
                     "lora_alpha": recipe.effective_alpha() if recipe.method == "lora" else None},
        "data": {"index": str(index_csv), "images": len(index), "classes": len(index.captions),
                 "caption_example": index.captions[0]},
        "seed": seed, "steps": step, "resumed_from_step": start or None, "images_this_job": images,
        "seconds_this_job": round(seconds, 2), "images_per_s": images / max(seconds, 1e-9),
        "device": str(trainer.accelerator.device), "device_name": device_name(trainer.accelerator.device),
        "threads": torch.get_num_threads(), "versions": _versions(),
    }


def _save_output(trainer: Trainer, recipe: FinetuneRecipe, base_id: str, base_revision: str | None, out_dir: str,
                 metrics: list[dict], record: dict) -> None:
    """The model folder, with metrics.jsonl and run.json, replacing out_dir atomically."""
    unet = trainer.trained_unet()
    with io.atomic_dir(out_dir) as tmp:
        if recipe.method == "lora":
            from .lora import save_lora

            save_lora(tmp, unet, base_id, base_revision)
        else:
            _save_pipeline(tmp, unet, base_id, base_revision)
        (tmp / METRICS_FILE).write_text("".join(json.dumps(m, sort_keys=True) + "\n" for m in metrics))
        (tmp / RUN_FILE).write_text(json.dumps(record, indent=2, sort_keys=True) + "\n")
        for root, _, files in os.walk(tmp):  # save_pretrained writes some files 0600
            for name in files:
                os.chmod(os.path.join(root, name), 0o666 & ~io.current_umask())


def _save_pipeline(folder: Path, unet, base_id: str, base_revision: str | None) -> None:
    """The base pipeline with the trained UNet (float32), saved with save_pretrained."""
    import torch
    from diffusers import StableDiffusionPipeline

    if unet.dtype != torch.float32:
        unet = unet.to(torch.float32)
    pipe = StableDiffusionPipeline.from_pretrained(base_id, revision=base_revision, unet=unet)
    pipe.save_pretrained(folder)
