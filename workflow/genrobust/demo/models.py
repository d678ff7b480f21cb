"""Tiny random-weight stand-ins for the pretrained models, saved in the real on-disk formats.

The demo and the tests load these with the same `from_pretrained(folder)` calls that load the
real hub checkpoints, so nothing downloads and every code path is the production one. Each
builder seeds torch first (same seed, same weights) and writes its folder atomically.

The text side uses the real 49,408-token CLIP BPE vocabulary, rebuilt from the merges file that
open_clip bundles, so prompts tokenize exactly as they do for Stable Diffusion v1.5 (1.5 MB per
tokenizer folder, in the hub's vocab.json + merges.txt layout).

`sd15_unet_config`, `sd15_vae_config`, `sd15_text_config` and `sd15_scheduler_config` spell out
the full-size Stable Diffusion v1.5 architecture, for throughput measurements with random
weights where the real ones cannot be downloaded.
"""

from __future__ import annotations

import contextlib
import functools
import gzip
import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Iterator, Mapping

import torch

TOKENIZER_MAX_LENGTH = 77
BOS_TOKEN, EOS_TOKEN = "<|startoftext|>", "<|endoftext|>"
CLIP_VOCAB_SIZE = 49408
BOS_TOKEN_ID, EOS_TOKEN_ID = CLIP_VOCAB_SIZE - 2, CLIP_VOCAB_SIZE - 1

# Tiny sizes: 4-channel latents at 16x16 decode to 64x64 RGB images (VAE with 3 blocks, so
# 4x downsampling; the UNet, which dominates CPU time, then runs on 256 positions, not 1024).
TINY_WIDTH = 32
TINY_LATENT_SIZE = 16
TINY_IMAGE_SIZE = 64
TINY_ENCODER_IMAGE_SIZE = 32


# ---------------------------------------------------------------- full-size SD v1.5 configs


def sd15_unet_config() -> dict:
    """UNet2DConditionModel config of Stable Diffusion v1.5 (~859.5M parameters)."""
    return dict(
        sample_size=64,
        in_channels=4,
        out_channels=4,
        center_input_sample=False,
        flip_sin_to_cos=True,
        freq_shift=0,
        down_block_types=("CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "DownBlock2D"),
        up_block_types=("UpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D"),
        block_out_channels=(320, 640, 1280, 1280),
        layers_per_block=2,
        downsample_padding=1,
        mid_block_scale_factor=1,
        act_fn="silu",
        norm_num_groups=32,
        norm_eps=1e-5,
        cross_attention_dim=768,
        attention_head_dim=8,
    )


def sd15_vae_config() -> dict:
    """AutoencoderKL config of Stable Diffusion v1.5 (~83.7M parameters, 8x downsampling)."""
    return dict(
        in_channels=3,
        out_channels=3,
        down_block_types=("DownEncoderBlock2D",) * 4,
        up_block_types=("UpDecoderBlock2D",) * 4,
        block_out_channels=(128, 256, 512, 512),
        layers_per_block=2,
        act_fn="silu",
        latent_channels=4,
        norm_num_groups=32,
        sample_size=512,
        scaling_factor=0.18215,
    )


def sd15_text_config() -> dict:
    """CLIPTextConfig kwargs of SD v1.5's text encoder, CLIP ViT-L/14 (~123.1M parameters)."""
    return dict(
        vocab_size=CLIP_VOCAB_SIZE,
        hidden_size=768,
        intermediate_size=3072,
        projection_dim=768,
        num_hidden_layers=12,
        num_attention_heads=12,
        max_position_embeddings=TOKENIZER_MAX_LENGTH,
        hidden_act="quick_gelu",
        layer_norm_eps=1e-5,
        attention_dropout=0.0,
        dropout=0.0,
        initializer_range=0.02,
        initializer_factor=1.0,
        pad_token_id=1,
        bos_token_id=0,
        eos_token_id=2,  # as in the hub config: selects the legacy argmax pooling, same result
    )


def sd15_scheduler_config() -> dict:
    """PNDMScheduler config shipped with Stable Diffusion v1.5."""
    return dict(
        num_train_timesteps=1000,
        beta_start=0.00085,
        beta_end=0.012,
        beta_schedule="scaled_linear",
        skip_prk_steps=True,
        set_alpha_to_one=False,
        steps_offset=1,
        trained_betas=None,
    )


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
def _atomic_dir(out_dir: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary sibling folder; it replaces `out_dir` only if the block succeeds."""
    out = Path(out_dir)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.", dir=out.parent))
    old = tmp.with_name(tmp.name + ".old")
    try:
        with _no_progress_bars():
            yield tmp
        # save_pretrained writes some files 0600 (via temp files); make the folder shareable.
        for root, dirs, files in os.walk(tmp):
            os.chmod(root, 0o755)
            for name in files:
                os.chmod(os.path.join(root, name), 0o644)
        if out.exists():
            os.replace(out, old)
        os.replace(tmp, out)
    finally:
        for leftover in (tmp, old):
            if leftover.exists():
                shutil.rmtree(leftover)


@functools.lru_cache(maxsize=1)
def _clip_bpe() -> tuple[dict[str, int], tuple[str, ...]]:
    """The CLIP BPE vocabulary and merges, rebuilt from open_clip's bundled merges file."""
    import open_clip
    from open_clip.tokenizer import bytes_to_unicode

    path = Path(open_clip.__file__).parent / "bpe_simple_vocab_16e6.txt.gz"
    lines = gzip.open(path).read().decode("utf-8").split("\n")
    merges = tuple(lines[1 : 49152 - 256 - 2 + 1])  # the merges CLIP kept (open_clip's slice)
    byte_chars = list(bytes_to_unicode().values())
    tokens = byte_chars + [c + "</w>" for c in byte_chars]
    tokens += ["".join(m.split()) for m in merges]
    tokens += [BOS_TOKEN, EOS_TOKEN]
    assert len(tokens) == CLIP_VOCAB_SIZE
    return {t: i for i, t in enumerate(tokens)}, merges


def _write_tokenizer_files(folder: Path, **extra_config) -> None:
    """vocab.json, merges.txt and the configs, laid out like the SD v1.5 hub tokenizer folder."""
    vocab, merges = _clip_bpe()
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "vocab.json").write_text(json.dumps(vocab, ensure_ascii=False), encoding="utf-8")
    (folder / "merges.txt").write_text("#version: 0.2\n" + "\n".join(merges) + "\n", encoding="utf-8")
    special = dict(bos_token=BOS_TOKEN, eos_token=EOS_TOKEN, unk_token=EOS_TOKEN, pad_token=EOS_TOKEN)
    (folder / "special_tokens_map.json").write_text(json.dumps(special, indent=2) + "\n")
    config = dict(
        special,
        tokenizer_class="CLIPTokenizer",
        model_max_length=TOKENIZER_MAX_LENGTH,
        do_lower_case=True,
        errors="replace",
        add_prefix_space=False,
        **extra_config,
    )
    (folder / "tokenizer_config.json").write_text(json.dumps(config, indent=2) + "\n")


def _load_tokenizer(folder: Path):
    from transformers import CLIPTokenizer

    return CLIPTokenizer.from_pretrained(folder)


def _tiny_text_config(**overrides) -> dict:
    config = dict(
        vocab_size=CLIP_VOCAB_SIZE,
        hidden_size=TINY_WIDTH,
        intermediate_size=64,
        projection_dim=TINY_WIDTH,
        num_hidden_layers=2,
        num_attention_heads=4,
        max_position_embeddings=TOKENIZER_MAX_LENGTH,
        hidden_act="quick_gelu",
        layer_norm_eps=1e-5,
        pad_token_id=EOS_TOKEN_ID,
        bos_token_id=BOS_TOKEN_ID,
        eos_token_id=EOS_TOKEN_ID,
    )
    return {**config, **overrides}


def _tiny_vision_config(**overrides) -> dict:
    config = dict(
        hidden_size=TINY_WIDTH,
        intermediate_size=64,
        projection_dim=TINY_WIDTH,
        num_hidden_layers=2,
        num_attention_heads=4,
        image_size=TINY_ENCODER_IMAGE_SIZE,
        patch_size=4,
        hidden_act="quick_gelu",
        layer_norm_eps=1e-5,
    )
    return {**config, **overrides}


def _tiny_image_processor():
    from transformers import CLIPImageProcessor

    # CLIP's resize -> centre crop -> OpenAI mean/std, at 32 px instead of 224.
    size = TINY_ENCODER_IMAGE_SIZE
    return CLIPImageProcessor(
        do_resize=True,
        size={"shortest_edge": size},
        resample=3,
        do_center_crop=True,
        crop_size={"height": size, "width": size},
        do_normalize=True,
        do_convert_rgb=True,
    )


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


def build_tokenizer(out_dir: str | os.PathLike) -> Path:
    """CLIP BPE tokenizer folder (real CLIP vocabulary), loadable by CLIPTokenizer.from_pretrained."""
    with _atomic_dir(out_dir) as tmp:
        _write_tokenizer_files(tmp)
        _load_tokenizer(tmp)  # fail here, not at generation time
    return Path(out_dir)


def build_tiny_sd(out_dir: str | os.PathLike, seed: int = 0) -> Path:
    """Tiny text-to-image SD pipeline folder (64x64 images); also loads as img2img."""
    from diffusers import StableDiffusionPipeline
    from transformers import CLIPTextConfig, CLIPTextModel

    with _atomic_dir(out_dir) as tmp:
        _write_tokenizer_files(tmp / "tokenizer")
        torch.manual_seed(seed)
        unet = _tiny_unet(cross_attention_dim=TINY_WIDTH)
        vae = _tiny_vae()
        text_encoder = CLIPTextModel(CLIPTextConfig(**_tiny_text_config()))
        pipe = StableDiffusionPipeline(
            vae=vae,
            text_encoder=text_encoder,
            tokenizer=_load_tokenizer(tmp / "tokenizer"),
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
        _write_tokenizer_files(tmp / "tokenizer")
    return Path(out_dir)


def build_tiny_image_variation(out_dir: str | os.PathLike, seed: int = 0) -> Path:
    """Tiny StableDiffusionImageVariationPipeline folder (CLIP image embedding -> 64x64 image)."""
    from diffusers import StableDiffusionImageVariationPipeline
    from transformers import CLIPVisionConfig, CLIPVisionModelWithProjection

    with _atomic_dir(out_dir) as tmp:
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
    with _atomic_dir(out_dir) as tmp:
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
        scheduler = DDIMScheduler(
            num_train_timesteps=1000,
            beta_start=0.0001,
            beta_end=0.02,
            beta_schedule="linear",
            clip_sample=False,
        )
        pipe = DiTPipeline(transformer=transformer, vae=vae, scheduler=scheduler, id2label=id2label)
        if id2label is not None:
            pipe.register_to_config(id2label=id2label)  # otherwise model_index.json drops it
        pipe.save_pretrained(tmp)
    return Path(out_dir)


def build_tiny_clip(out_dir: str | os.PathLike, seed: int = 0) -> Path:
    """Tiny CLIPModel + CLIPProcessor folder (32 px images, real CLIP tokenizer)."""
    from transformers import CLIPConfig, CLIPModel, CLIPProcessor

    with _atomic_dir(out_dir) as tmp:
        _write_tokenizer_files(tmp / "tokenizer")
        torch.manual_seed(seed)
        config = CLIPConfig(
            text_config=_tiny_text_config(projection_dim=16),
            vision_config=_tiny_vision_config(projection_dim=16),
            projection_dim=16,
        )
        model = CLIPModel(config)
        processor = CLIPProcessor(
            image_processor=_tiny_image_processor(), tokenizer=_load_tokenizer(tmp / "tokenizer")
        )
        model.save_pretrained(tmp)
        processor.save_pretrained(tmp)
        shutil.rmtree(tmp / "tokenizer")
        # Same small vocab.json + merges.txt layout as the hub (drop the 3.6 MB tokenizer.json).
        (tmp / "tokenizer.json").unlink(missing_ok=True)
        _write_tokenizer_files(tmp, processor_class="CLIPProcessor")
    return Path(out_dir)


def build_all(out_root: str | os.PathLike, seed: int = 0) -> dict[str, Path]:
    """All tiny models under out_root: sd, image_variation, dit, clip."""
    out_root = Path(out_root)
    return {
        "sd": build_tiny_sd(out_root / "sd", seed),
        "image_variation": build_tiny_image_variation(out_root / "image_variation", seed),
        "dit": build_tiny_dit(out_root / "dit", seed),
        "clip": build_tiny_clip(out_root / "clip", seed),
    }
