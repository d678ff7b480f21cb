"""The pipelines the generation benchmark times: full-size architectures with random weights, built
directly on the device in the target dtype (no download, no float32 copy on the CPU first), or a
tiny demo pipeline folder loaded the way generate.py loads a model."""

from __future__ import annotations

import contextlib
import inspect
import os
import tempfile
from pathlib import Path
from typing import Iterator

from .. import architectures
from ..kinds import STRATEGIES
from .system import BenchmarkError

# Diffusers pipeline class -> the strategy kind it serves, for the kinds the benchmark builds a pipeline for.
KIND_OF_PIPELINE = {STRATEGIES[k].benchmark_pipeline: k for k in STRATEGIES if STRATEGIES[k].benchmark_pipeline}


def _stable_diffusion(kind: str) -> bool:
    """A benchmarked kind whose pipeline is Stable Diffusion's (a UNet; the others a DiT transformer)."""
    return kind in KIND_OF_PIPELINE.values() and STRATEGIES[kind].denoiser == "unet"


def _torch_dtype(dtype):
    import torch

    if isinstance(dtype, torch.dtype):
        return dtype
    value = getattr(torch, str(dtype), None)
    if not isinstance(value, torch.dtype) or not value.is_floating_point:
        raise BenchmarkError(f"unknown floating dtype '{dtype}' (float16, bfloat16 or float32)")
    return value


@contextlib.contextmanager
def _build_on(device, dtype) -> Iterator[None]:
    """Create parameters directly on `device` in `dtype` (no float32 copy on the CPU first)."""
    import torch

    old = torch.get_default_dtype()
    torch.set_default_dtype(_torch_dtype(dtype))
    try:
        with torch.device(device):
            yield
    finally:
        torch.set_default_dtype(old)


def _check_device(device) -> None:
    import torch

    if str(device).startswith("cuda") and not torch.cuda.is_available():
        raise BenchmarkError("--device cuda, but torch sees no CUDA device")


def _tokenizer(tokenizer_dir: str | os.PathLike | None):
    """The real-vocabulary CLIP tokenizer: from a folder (a tokenizer folder, or a pipeline folder
    holding tokenizer/), else rebuilt from open_clip's merges (genrobust.tokenizer)."""
    from transformers import CLIPTokenizer

    from ..tokenizer import build_tokenizer

    if tokenizer_dir is not None:
        folder = Path(tokenizer_dir)
        if (folder / "tokenizer").is_dir():
            folder = folder / "tokenizer"
        if not (folder / "vocab.json").is_file():
            raise BenchmarkError(f"tokenizer folder '{tokenizer_dir}' has no vocab.json (nor tokenizer/vocab.json)")
        return CLIPTokenizer.from_pretrained(folder)
    with tempfile.TemporaryDirectory(prefix="genrobust-tokenizer-") as tmp:
        return CLIPTokenizer.from_pretrained(build_tokenizer(Path(tmp) / "tokenizer"))


def _scheduler(name: str, base_config: dict, base_class: str):
    import diffusers

    scheduler_class = getattr(diffusers, name or base_class, None)
    if scheduler_class is None or not hasattr(scheduler_class, "from_config"):
        raise BenchmarkError(f"unknown diffusers scheduler '{name}' (e.g. PNDMScheduler, DDIMScheduler, "
                             "DPMSolverMultistepScheduler)")
    config = dict(getattr(diffusers, base_class)(**base_config).config)
    if "clip_sample" in inspect.signature(scheduler_class.__init__).parameters:
        config.setdefault("clip_sample", False)  # as in SD v1.5's shipped scheduler_config.json
    # The same swap generate.load_pipeline makes: the shipped scheduler config, another class.
    return scheduler_class.from_config(config)


def build_sd15_components(device="cpu", dtype="float32", *, kind: str = "class_labels") -> dict:
    """The random-weight networks of SD v1.5 (UNet, VAE and, by kind, the text or image encoder),
    created directly on `device` in `dtype`. device="meta" builds them without any memory."""
    import torch
    from diffusers import AutoencoderKL, UNet2DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModel, CLIPVisionConfig, CLIPVisionModelWithProjection

    if not _stable_diffusion(kind):
        sd = [k for k in KIND_OF_PIPELINE.values() if _stable_diffusion(k)]
        dit = [k for k in KIND_OF_PIPELINE.values() if not _stable_diffusion(k)]
        raise BenchmarkError(f"kind '{kind}' is not a Stable Diffusion strategy ({', '.join(sd)}); "
                             f"{', '.join(dit)} uses build_dit_random")
    device = torch.device(device)
    with _build_on(device, dtype):
        parts = {"unet": UNet2DConditionModel(**architectures.sd15_unet_config()),
                 "vae": AutoencoderKL(**architectures.sd15_vae_config())}
        if not STRATEGIES[kind].prompted:  # conditioned on the image alone, through CLIP's image encoder
            parts["image_encoder"] = CLIPVisionModelWithProjection(
                CLIPVisionConfig(**architectures.sd15_vision_config()))
        else:
            parts["text_encoder"] = CLIPTextModel(CLIPTextConfig(**architectures.sd15_text_config()))
    for module in parts.values():
        module.eval().requires_grad_(False)
    return parts


def build_sd15_random(device="cuda", dtype="float16", scheduler: str = "PNDMScheduler", *,
                      kind: str = "class_labels", tokenizer_dir: str | os.PathLike | None = None, seed: int = 0):
    """A Stable Diffusion v1.5 pipeline (full-size architecture, random weights, no hub access).

    kind 'class_labels' gives a StableDiffusionPipeline, 'img2img' the img2img pipeline on the same
    components, 'image_variation' a StableDiffusionImageVariationPipeline with a CLIP ViT-L/14 image
    encoder (the lambdalabs model's architecture). safety_checker is None.
    """
    import diffusers
    import torch
    from transformers import CLIPImageProcessor

    _check_device(device)
    torch.manual_seed(seed)
    parts = build_sd15_components(device, dtype, kind=kind)
    parts["scheduler"] = _scheduler(scheduler, architectures.sd15_scheduler_config(), "PNDMScheduler")
    pipeline_class = getattr(diffusers, STRATEGIES[kind].benchmark_pipeline)
    if not STRATEGIES[kind].prompted:
        feature_extractor = CLIPImageProcessor(**architectures.clip_image_processor_config())
        pipe = pipeline_class(**parts, safety_checker=None, feature_extractor=feature_extractor,
                              requires_safety_checker=False)
    else:
        pipe = pipeline_class(**parts, tokenizer=_tokenizer(tokenizer_dir), safety_checker=None,
                              feature_extractor=None, image_encoder=None, requires_safety_checker=False)
    pipe.set_progress_bar_config(disable=True)
    return pipe


def build_dit_random(device="cuda", dtype="float16", scheduler: str = "DDIMScheduler", *, seed: int = 0):
    """A DiTPipeline with the DiT-XL/2-256 architecture (random weights) and the SD VAE."""
    import torch
    from diffusers import AutoencoderKL, DiTPipeline, DiTTransformer2DModel

    _check_device(device)
    torch.manual_seed(seed)
    with _build_on(torch.device(device), dtype):
        transformer = DiTTransformer2DModel(**architectures.dit_xl2_config())
        vae = AutoencoderKL(**architectures.sd15_vae_config())
    for module in (transformer, vae):
        module.eval().requires_grad_(False)
    pipe = DiTPipeline(transformer=transformer, vae=vae,
                       scheduler=_scheduler(scheduler, architectures.dit_scheduler_config(), "DDIMScheduler"))
    pipe.set_progress_bar_config(disable=True)
    return pipe


def count_parameters(module) -> int:
    return sum(p.numel() for p in module.parameters())


def pipeline_kind(pipe) -> str:
    """The strategy kind a pipeline serves (class_labels, img2img, image_variation, class_conditional)."""
    for cls in type(pipe).__mro__:
        if cls.__name__ in KIND_OF_PIPELINE:
            return KIND_OF_PIPELINE[cls.__name__]
    raise BenchmarkError(f"cannot benchmark a {type(pipe).__name__} (one of {sorted(KIND_OF_PIPELINE)})")


def load_tiny(model_dir: str | os.PathLike, strategy_kind: str, device: str = "cpu"):
    """A demo pipeline folder loaded the way generate.py loads a model (float32 on the CPU)."""
    from ..generate import load_pipeline

    if strategy_kind not in KIND_OF_PIPELINE.values():
        raise BenchmarkError(f"unknown strategy kind '{strategy_kind}' (one of {sorted(KIND_OF_PIPELINE.values())})")
    if not (Path(model_dir) / "model_index.json").is_file():
        raise BenchmarkError(f"'{model_dir}' is not a diffusers pipeline folder (no model_index.json)")
    # safety_checker=True passes no safety-checker kwargs (the DiT pipeline takes none).
    return load_pipeline(str(model_dir), None, STRATEGIES[strategy_kind].benchmark_pipeline, None, "float32", device,
                         safety_checker=STRATEGIES[strategy_kind].denoiser == "transformer")
