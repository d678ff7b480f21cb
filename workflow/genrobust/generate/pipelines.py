"""Diffusers pipelines: loading one by class name (with a few-step adapter fused in, a scheduler
reconfigured), and running a batch with defective images retried."""

from __future__ import annotations

import re
import sys
from pathlib import Path
from typing import Mapping

import numpy as np

from .plan import GenerationError, retry_seed
from .speedups import fuse_qkv_projections

MAX_ATTEMPTS = 5  # per image: a NaN / all-black / flagged image is retried with the next seed


def load_pipeline(model_id: str, revision: str | None, pipeline: str, scheduler: str | None,
                  dtype: str, device: str, safety_checker: bool, compile_unet: bool = False, *,
                  adapter: Mapping | None = None, scheduler_config: Mapping | None = None, fuse_qkv: bool = False):
    """Load a diffusers pipeline by class name from a hub id or a local folder, ready to run fast.
    A LoRA folder (models.<name>.finetune with method lora) loads its base model with the adapter
    fused in; so does `adapter` ({id, revision, weight_name, scale}: a few-step LoRA such as
    LCM-LoRA or Hyper-SD, by hub id or folder). `scheduler_config` overrides the scheduler's
    config (e.g. timestep_spacing: trailing, as few-step samplers need). `fuse_qkv` fuses the
    attention projections once every LoRA is fused in (a LoRA targets the unfused to_q/to_k/to_v)."""
    import diffusers
    import torch
    import transformers

    from ..finetune.lora import apply_lora, lora_base

    lora = lora_base(model_id)
    if lora is not None:
        pipe = load_pipeline(lora["base_id"], lora.get("base_revision"), pipeline, scheduler, dtype, device,
                             safety_checker, adapter=adapter, scheduler_config=scheduler_config)
        return _to_device(apply_lora(pipe, model_id), device, compile_unet, fuse_qkv)

    # One tqdm bar per shard; the libraries' own loading and per-step bars would drown it.
    diffusers.utils.logging.disable_progress_bar()
    transformers.utils.logging.disable_progress_bar()
    pipeline_class = getattr(diffusers, pipeline, None)
    if pipeline_class is None or not isinstance(pipeline_class, type):
        raise GenerationError(f"unknown diffusers pipeline class '{pipeline}' (strategies.*.pipeline); "
                              "e.g. StableDiffusionPipeline, StableDiffusionXLPipeline")
    scheduler_class = None
    if scheduler:
        scheduler_class = getattr(diffusers, scheduler, None)
        if scheduler_class is None or not hasattr(scheduler_class, "from_config"):
            raise GenerationError(f"unknown diffusers scheduler '{scheduler}' (strategies.*.scheduler); "
                                  "e.g. PNDMScheduler, DPMSolverMultistepScheduler, DDIMScheduler")
    local = Path(model_id).expanduser()
    if local.exists() or model_id.startswith((".", "/", "~")):
        if not (local / "model_index.json").is_file():
            raise GenerationError(f"model folder '{model_id}' does not exist or has no model_index.json "
                                  "(models.*.id must be a hub id or a diffusers save_pretrained folder)")
    if device == "cpu" and dtype != "float32":
        print(f"[generate] {dtype} on the CPU is slow or unsupported; using float32", file=sys.stderr)
        dtype = "float32"
    kwargs = {"dtype": getattr(torch, dtype)}
    if revision:
        kwargs["revision"] = revision
    if not safety_checker:
        kwargs.update(safety_checker=None, requires_safety_checker=False)
    try:
        pipe = pipeline_class.from_pretrained(model_id, **kwargs)
    except (OSError, ValueError, EnvironmentError) as err:
        raise GenerationError(f"could not load '{model_id}' (revision {revision}) as {pipeline}: {err}") from err
    if scheduler_class is not None or scheduler_config:
        pipe.scheduler = (scheduler_class or type(pipe.scheduler)).from_config(pipe.scheduler.config,
                                                                            **dict(scheduler_config or {}))
    if adapter:
        fuse_adapter(pipe, adapter)
    pipe.set_progress_bar_config(disable=True)  # one bar per shard instead of one per batch
    return _to_device(pipe, device, compile_unet, fuse_qkv)


def fuse_adapter(pipe, adapter: Mapping) -> None:
    """Fuse a LoRA adapter ({id, revision, weight_name, scale}) into the pipeline's weights, so
    that each step costs what the base model's does, then drop the adapter layers."""
    kwargs = {key: adapter[key] for key in ("weight_name", "revision") if adapter.get(key)}
    try:
        pipe.load_lora_weights(adapter["id"], **kwargs)
    except (OSError, ValueError, KeyError, EnvironmentError) as err:
        raise GenerationError(f"could not load the adapter '{adapter['id']}' ({kwargs or 'default weight name'}) "
                              f"onto {type(pipe).__name__}: {err}") from err
    pipe.fuse_lora(lora_scale=float(adapter.get("scale", 1.0)))
    pipe.unload_lora_weights()


def resolved_revision(pipe, revision: str | None) -> str:
    """The revision a pipeline was loaded at: config's, else the hub snapshot's commit (the hub
    cache holds each at .../snapshots/<commit>/, which the components' _name_or_path names), else ''
    (a local folder)."""
    if revision:
        return str(revision)
    for component in pipe.components.values():
        name = str(getattr(getattr(component, "config", None), "_name_or_path", "") or "")
        found = re.search(r"snapshots[/\\]([0-9a-f]{40})(?:[/\\]|$)", name)
        if found:
            return found[1]
    return ""


def _to_device(pipe, device: str, compile_unet: bool, fuse_qkv: bool = False):
    """The pipeline on `device`, its QKV projections maybe fused; on a GPU its UNet (or
    transformer) channels_last, maybe compiled (after fusing, so that the fused graph compiles)."""
    import torch

    if fuse_qkv:
        fuse_qkv_projections(pipe)
    pipe = pipe.to(device)
    if device.startswith("cuda"):
        unet = getattr(pipe, "unet", None) or getattr(pipe, "transformer", None)
        if unet is not None:
            unet.to(memory_format=torch.channels_last)
            if compile_unet:
                compiled = torch.compile(unet, mode="max-autotune", fullgraph=True)
                if hasattr(pipe, "unet"):
                    pipe.unet = compiled
                else:
                    pipe.transformer = compiled
    return pipe


def is_defective(image: np.ndarray) -> str:
    """Why a generated float image (H, W, 3 in 0..1) must be regenerated, or '' if it is fine."""
    if not np.isfinite(image).all():
        return "nan"
    if image.max() < 0.02:  # the safety checker's black square, or a collapsed sample
        return "black"
    return ""


def _generate_with_retries(call, seeds: list[int], device: str):
    """Run `call(pending, generators)` for the batch; regenerate NaN/black/flagged images with
    their next seed, recording the attempt and the reason."""
    import torch

    n = len(seeds)
    images: list = [None] * n
    attempts = [0] * n
    reasons = [""] * n
    pending = list(range(n))
    for attempt in range(MAX_ATTEMPTS):
        if not pending:
            break
        generators = [torch.Generator(device).manual_seed(retry_seed(seeds[i], attempt)) for i in pending]
        out = call(pending, generators)
        flagged = getattr(out, "nsfw_content_detected", None) or [False] * len(pending)
        still = []
        for j, i in enumerate(pending):
            reason = "safety" if flagged[j] else is_defective(out.images[j])
            if reason:
                reasons[i] = reasons[i] or reason
                still.append(i)
                continue
            images[i] = (np.clip(out.images[j], 0, 1) * 255).round().astype(np.uint8)
            attempts[i] = attempt
        pending = still
    if pending:
        raise GenerationError(f"{len(pending)} images stayed NaN/black/flagged after {MAX_ATTEMPTS} seeds "
                              f"(seeds {[seeds[i] for i in pending][:3]}); check the model and dtype "
                              "(fp16 VAEs can overflow: try bfloat16)")
    return images, attempts, reasons
