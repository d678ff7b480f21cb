"""Tiny random-weight stand-ins for the pretrained models, saved in the real on-disk formats.

The demo and the tests load these with the same `from_pretrained(folder)` calls that load the
real hub checkpoints, so nothing downloads and every code path is the production one. Each
builder seeds torch first (same seed, same weights) and writes its folder atomically.

The text side uses the real 49,408-token CLIP BPE vocabulary (genrobust.tokenizer), so prompts
tokenize exactly as they do for Stable Diffusion v1.5 (1.5 MB per tokenizer folder, in the hub's
vocab.json + merges.txt layout). The tiny networks are shrunk versions of the full-size
architectures in genrobust.architectures, with the same schedulers.
"""

from __future__ import annotations

import contextlib
import os
import shutil
from pathlib import Path
from typing import Iterator, Mapping

import torch

from genrobust import io
from genrobust.architectures import clip_image_processor_config, dit_scheduler_config, sd15_scheduler_config
from genrobust.tokenizer import (
    BOS_TOKEN_ID,
    CLIP_VOCAB_SIZE,
    EOS_TOKEN_ID,
    TOKENIZER_MAX_LENGTH,
    load_tokenizer,
    write_tokenizer_files,
)

# Tiny sizes: 4-channel latents at 16x16 decode to 64x64 RGB images (VAE with 3 blocks, so
# 4x downsampling; the UNet, which dominates CPU time, then runs on 256 positions, not 1024).
TINY_WIDTH = 32
TINY_LATENT_SIZE = 16
TINY_IMAGE_SIZE = 64
TINY_ENCODER_IMAGE_SIZE = 32


# ---------------------------------------------------------------- helpers


@contextlib.contextmanager
def _no_progress_bars() -> Iterator[None]:
    """Silence the 'Writing model shards' / 'Loading pipeline components' bars while building."""
    from diffusers.utils import logging as diffusers_logging
    from transformers.utils import logging as transformers_logging

    was = transformers_logging.is_progress_bar_enabled(), diffusers_logging.is_progress_bar_enabled()
    transformers_logging.disable_progress_bar()
    diffusers_logging.disable_progress_bar()
    try:
        yield
    finally:
        if was[0]:
            transformers_logging.enable_progress_bar()
        if was[1]:
            diffusers_logging.enable_progress_bar()


@contextlib.contextmanager
def _model_dir(out_dir: str | os.PathLike) -> Iterator[Path]:
    """A temporary folder that replaces `out_dir` when the block succeeds (io.atomic_dir), with
    the libraries' progress bars off while building."""
    with io.atomic_dir(out_dir) as tmp, _no_progress_bars():
        yield tmp
        # save_pretrained writes some files 0600 (via temp files); make them readable as the umask allows.
        for root, _, files in os.walk(tmp):
            for name in files:
                os.chmod(os.path.join(root, name), 0o666 & ~io.current_umask())


# What the tiny CLIP text and vision towers share.
_TINY_TOWER = dict(hidden_size=TINY_WIDTH, intermediate_size=64, projection_dim=TINY_WIDTH, num_hidden_layers=2,
                   num_attention_heads=4, hidden_act="quick_gelu", layer_norm_eps=1e-5)


def _tiny_text_config(**overrides) -> dict:
    return {**_TINY_TOWER, "vocab_size": CLIP_VOCAB_SIZE, "max_position_embeddings": TOKENIZER_MAX_LENGTH,
            "pad_token_id": EOS_TOKEN_ID, "bos_token_id": BOS_TOKEN_ID, "eos_token_id": EOS_TOKEN_ID, **overrides}


def _tiny_vision_config(**overrides) -> dict:
    return {**_TINY_TOWER, "image_size": TINY_ENCODER_IMAGE_SIZE, "patch_size": 4, **overrides}


def _tiny_image_processor():
    from transformers import CLIPImageProcessor

    return CLIPImageProcessor(**clip_image_processor_config(TINY_ENCODER_IMAGE_SIZE))  # 32 px, not 224


def _tiny_unet(cross_attention_dim: int):
    from diffusers import UNet2DConditionModel

    return UNet2DConditionModel(
        sample_size=TINY_LATENT_SIZE,
        in_channels=4,
        out_channels=4,
        down_block_types=("DownBlock2D", "CrossAttnDownBlock2D"),
        up_block_types=("CrossAttnUpBlock2D", "UpBlock2D"),
        block_out_channels=(32, 64),
        layers_per_block=1,
        norm_num_groups=8,
        cross_attention_dim=cross_attention_dim,
        attention_head_dim=4,
    )


def _tiny_vae():
    from diffusers import AutoencoderKL

    return AutoencoderKL(
        in_channels=3,
        out_channels=3,
        down_block_types=("DownEncoderBlock2D",) * 3,
        up_block_types=("UpDecoderBlock2D",) * 3,
        block_out_channels=(16, 32, 64),
        layers_per_block=1,
        latent_channels=4,
        norm_num_groups=8,
        sample_size=TINY_IMAGE_SIZE,
        scaling_factor=0.18215,
    )


def _sd15_scheduler():
    from diffusers import PNDMScheduler

    return PNDMScheduler(**sd15_scheduler_config())


# ---------------------------------------------------------------- builders


def build_tiny_sd(out_dir: str | os.PathLike, seed: int = 0) -> Path:
    """Tiny text-to-image SD pipeline folder (64x64 images); also loads as img2img."""
    from diffusers import StableDiffusionPipeline
    from transformers import CLIPTextConfig, CLIPTextModel

    with _model_dir(out_dir) as tmp:
        write_tokenizer_files(tmp / "tokenizer")
        torch.manual_seed(seed)
        unet = _tiny_unet(cross_attention_dim=TINY_WIDTH)
        vae = _tiny_vae()
        text_encoder = CLIPTextModel(CLIPTextConfig(**_tiny_text_config()))
        pipe = StableDiffusionPipeline(
            vae=vae,
            text_encoder=text_encoder,
            tokenizer=load_tokenizer(tmp / "tokenizer"),
            unet=unet,
            scheduler=_sd15_scheduler(),
            safety_checker=None,
            feature_extractor=None,
            image_encoder=None,
            requires_safety_checker=False,
        )
        pipe.save_pretrained(tmp)
        # Keep the hub's vocab.json + merges.txt tokenizer layout (save_pretrained adds a
        # 3.6 MB tokenizer.json and load-time keys to tokenizer_config.json).
        (tmp / "tokenizer" / "tokenizer.json").unlink(missing_ok=True)
        write_tokenizer_files(tmp / "tokenizer")
    return Path(out_dir)


def build_tiny_image_variation(out_dir: str | os.PathLike, seed: int = 0) -> Path:
    """Tiny StableDiffusionImageVariationPipeline folder (CLIP image embedding -> 64x64 image)."""
    from diffusers import StableDiffusionImageVariationPipeline
    from transformers import CLIPVisionConfig, CLIPVisionModelWithProjection

    with _model_dir(out_dir) as tmp:
        torch.manual_seed(seed)
        unet = _tiny_unet(cross_attention_dim=TINY_WIDTH)  # = image projection_dim
        vae = _tiny_vae()
        image_encoder = CLIPVisionModelWithProjection(CLIPVisionConfig(**_tiny_vision_config()))
        pipe = StableDiffusionImageVariationPipeline(
            vae=vae,
            image_encoder=image_encoder,
            unet=unet,
            scheduler=_sd15_scheduler(),
            safety_checker=None,
            feature_extractor=_tiny_image_processor(),
            requires_safety_checker=False,
        )
        pipe.save_pretrained(tmp)
    return Path(out_dir)


def build_tiny_dit(
    out_dir: str | os.PathLike, seed: int = 0, id2label: Mapping[int, str] | None = None
) -> Path:
    """Tiny class-conditional DiTPipeline folder (class ids 0..999 -> 64x64 images).

    Generation goes by class index, so by default no `id2label` is stored. When one is given
    (class index -> comma-separated names, as facebook/DiT-XL-2-256 ships) it is written to
    model_index.json; JSON turns its keys into strings, and diffusers then logs an
    "Expected types for id2label" warning on load unless the loader passes
    `id2label={int(k): v ...}` to `from_pretrained` itself.
    """
    from diffusers import DDIMScheduler, DiTPipeline, DiTTransformer2DModel

    if id2label is not None:
        id2label = {int(k): str(v) for k, v in id2label.items()}
    with _model_dir(out_dir) as tmp:
        torch.manual_seed(seed)
        transformer = DiTTransformer2DModel(
            sample_size=TINY_LATENT_SIZE,
            patch_size=2,
            in_channels=4,
            out_channels=8,  # learned sigma, as in DiT-XL/2
            num_layers=2,
            num_attention_heads=2,
            attention_head_dim=16,
            num_embeds_ada_norm=1000,  # the pipeline uses id 1000 as the null class
            norm_num_groups=32,
        )
        vae = _tiny_vae()
        # DDIM, as both the paper's LDM baseline and facebook/DiT-XL-2-256 use.
        scheduler = DDIMScheduler(**dit_scheduler_config())
        pipe = DiTPipeline(transformer=transformer, vae=vae, scheduler=scheduler, id2label=id2label)
        if id2label is not None:
            pipe.register_to_config(id2label=id2label)  # otherwise model_index.json drops it
        pipe.save_pretrained(tmp)
    return Path(out_dir)


def build_tiny_clip(out_dir: str | os.PathLike, seed: int = 0) -> Path:
    """Tiny CLIPModel + CLIPProcessor folder (32 px images, real CLIP tokenizer)."""
    from transformers import CLIPConfig, CLIPModel, CLIPProcessor

    with _model_dir(out_dir) as tmp:
        write_tokenizer_files(tmp / "tokenizer")
        torch.manual_seed(seed)
        config = CLIPConfig(
            text_config=_tiny_text_config(projection_dim=16),
            vision_config=_tiny_vision_config(projection_dim=16),
            projection_dim=16,
        )
        model = CLIPModel(config)
        processor = CLIPProcessor(
            image_processor=_tiny_image_processor(), tokenizer=load_tokenizer(tmp / "tokenizer")
        )
        model.save_pretrained(tmp)
        processor.save_pretrained(tmp)
        shutil.rmtree(tmp / "tokenizer")
        # Same small vocab.json + merges.txt layout as the hub (drop the 3.6 MB tokenizer.json).
        (tmp / "tokenizer.json").unlink(missing_ok=True)
        write_tokenizer_files(tmp, processor_class="CLIPProcessor")
    return Path(out_dir)


def build_tiny_lora(out_dir: str | os.PathLike, base_dir: str | os.PathLike, seed: int = 0, rank: int = 4) -> Path:
    """A random LoRA on the tiny SD's UNet attention, in the layout of the hub's few-step adapters
    (LCM-LoRA, Hyper-SD: UNet layers only, pytorch_lora_weights.safetensors): the stand-in a
    few-step strategy fuses in. Both factors are random (a trained adapter's are; peft's init
    leaves one zero), so that fusing it changes the images."""
    from diffusers import UNet2DConditionModel

    from genrobust.finetune.lora import add_lora, save_lora

    with _model_dir(out_dir) as tmp:
        torch.manual_seed(seed + 7)
        unet = UNet2DConditionModel.from_pretrained(Path(base_dir) / "unet")
        for weight in add_lora(unet, rank=rank, alpha=rank):
            weight.data.normal_(0, 0.2)
        save_lora(tmp, unet, base_id=str(base_dir), base_revision=None)
        (tmp / "lora_base.json").unlink()  # an adapter by id, not a fine-tuned model of its own
    return Path(out_dir)


def build_all(out_root: str | os.PathLike, seed: int = 0) -> dict[str, Path]:
    """All tiny models under out_root: sd, image_variation, dit, clip, and a few-step LoRA for sd."""
    out_root = Path(out_root)
    sd = build_tiny_sd(out_root / "sd", seed)
    return {
        "sd": sd,
        "few_step_lora": build_tiny_lora(out_root / "few_step_lora", sd, seed),
        "image_variation": build_tiny_image_variation(out_root / "image_variation", seed),
        "dit": build_tiny_dit(out_root / "dit", seed),
        "clip": build_tiny_clip(out_root / "clip", seed),
    }
