"""The full-size architectures of the generators the paper uses, spelled out as configs.

Stable Diffusion v1.5 (UNet, VAE, the CLIP ViT-L/14 text encoder, its PNDM scheduler), the CLIP
ViT-L/14 image encoder and image processor of lambdalabs/sd-image-variations, and DiT-XL/2-256
with its DDIM scheduler. Throughput does not depend on the weights, so genrobust.benchmark
builds these with random weights where the real ones cannot be downloaded; the demo's tiny
stand-ins (genrobust.demo.models) shrink them.
"""

from __future__ import annotations

from .tokenizer import CLIP_VOCAB_SIZE, TOKENIZER_MAX_LENGTH


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


def sd15_vision_config() -> dict:
    """CLIPVisionConfig kwargs of CLIP ViT-L/14 (the image encoder of lambdalabs/sd-image-variations)."""
    return dict(hidden_size=1024, intermediate_size=4096, projection_dim=768, num_hidden_layers=24,
                num_attention_heads=16, image_size=224, patch_size=14, hidden_act="quick_gelu",
                layer_norm_eps=1e-5, attention_dropout=0.0, dropout=0.0, initializer_range=0.02,
                initializer_factor=1.0)


def clip_image_processor_config(size: int = 224) -> dict:
    """CLIPImageProcessor kwargs: CLIP's resize -> centre crop -> OpenAI mean/std, at `size` px."""
    return dict(do_resize=True, size={"shortest_edge": size}, resample=3, do_center_crop=True,
                crop_size={"height": size, "width": size}, do_normalize=True, do_convert_rgb=True)


def dit_xl2_config() -> dict:
    """DiTTransformer2DModel config of facebook/DiT-XL-2-256 (learned sigma, 256 px images)."""
    return dict(sample_size=32, patch_size=2, in_channels=4, out_channels=8, num_layers=28,
                num_attention_heads=16, attention_head_dim=72, num_embeds_ada_norm=1000,
                norm_type="ada_norm_zero", norm_elementwise_affine=False, activation_fn="gelu-approximate")


def dit_scheduler_config() -> dict:
    """DDIMScheduler config of facebook/DiT-XL-2-256 (and of the paper's class-conditional LDM)."""
    return dict(num_train_timesteps=1000, beta_start=0.0001, beta_end=0.02, beta_schedule="linear",
                clip_sample=False)
