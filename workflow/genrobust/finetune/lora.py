"""LoRA on the UNet's attention (method: lora), as diffusers' train_text_to_image_lora.py does it.

peft adapters of rank r on to_q, to_k, to_v and to_out.0 of every attention block; the base UNet
stays frozen (in the mixed-precision dtype), the adapter weights train in float32. The output
folder holds the adapter in diffusers' format (pytorch_lora_weights.safetensors, with its
LoraConfig as metadata, so `pipe.load_lora_weights(folder)` loads it at the trained scale) and
LORA_POINTER, naming the base model the adapter belongs to; generation
(generate/pipelines.load_pipeline) loads that base and applies the adapter.
"""

from __future__ import annotations

import json
from pathlib import Path

TARGET_MODULES = ("to_k", "to_q", "to_v", "to_out.0")
LORA_POINTER = "lora_base.json"  # {"base_id", "base_revision", "rank", "alpha"}
LORA_WEIGHTS = "pytorch_lora_weights.safetensors"  # diffusers' default weight name


def add_lora(unet, rank: int, alpha: float) -> list:
    """Freeze `unet`, add the adapter, and return its trainable parameters."""
    from peft import LoraConfig

    unet.requires_grad_(False)
    unet.add_adapter(LoraConfig(r=rank, lora_alpha=alpha, init_lora_weights="gaussian",
                                target_modules=list(TARGET_MODULES)))
    return [p for p in unet.parameters() if p.requires_grad]


def save_lora(folder: str | Path, unet, base_id: str, base_revision: str | None) -> None:
    """The adapter of `unet` in diffusers' format, and the pointer to its base model."""
    from diffusers import StableDiffusionPipeline
    from diffusers.utils import convert_state_dict_to_diffusers
    from peft.utils import get_peft_model_state_dict

    layers = convert_state_dict_to_diffusers(get_peft_model_state_dict(unet))
    layers = {k: v.detach().to("cpu").contiguous() for k, v in layers.items()}
    config = unet.peft_config["default"]
    metadata = config.to_dict()
    # peft keeps target_modules as a set: sorted, the file's metadata is the same in every process.
    metadata["target_modules"] = sorted(metadata["target_modules"])
    StableDiffusionPipeline.save_lora_weights(save_directory=str(folder), unet_lora_layers=layers,
                                              safe_serialization=True, weight_name=LORA_WEIGHTS,
                                              unet_lora_adapter_metadata=metadata)
    pointer = {"base_id": base_id, "base_revision": base_revision, "rank": config.r, "alpha": config.lora_alpha,
               "target_modules": sorted(TARGET_MODULES)}
    (Path(folder) / LORA_POINTER).write_text(json.dumps(pointer, indent=2, sort_keys=True) + "\n")


def lora_base(folder: str | Path) -> dict | None:
    """The pointer of a LoRA folder ({base_id, base_revision, ...}), or None for any other path."""
    pointer = Path(folder).expanduser() / LORA_POINTER
    if not pointer.is_file():
        return None
    return json.loads(pointer.read_text())


def apply_lora(pipe, folder: str | Path, fuse: bool = True):
    """Load the adapter of `folder` onto `pipe` (a pipeline of its base model); fused into the
    weights by default, so generation runs as fast as from the base."""
    pipe.load_lora_weights(str(folder), weight_name=LORA_WEIGHTS)
    if fuse:
        pipe.fuse_lora()
        pipe.unload_lora_weights()  # the fused weights stay; the adapter layers go
    return pipe
