"""A fine-tuning recipe (config models.<name>.finetune) as a typed, frozen value. Its defaults are
the schema's ($defs.finetune in workflow/schemas/config.schema.yaml), which are the paper's
Table 6 recipe: 1 epoch at 512 px, lr 1e-6 with a cosine schedule and no warm-up, 8-bit AdamW
(betas 0.9/0.999, weight decay 1e-2, eps 1e-8), max grad norm 1, no EMA, no gradient
checkpointing (diffusers' train_text_to_image.py as the paper's sd_finetune/finetune_sd.py ran it,
and the model card of hbXNov/ucla-mint-finetune-sd-im1k)."""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping

import yaml

SCHEMA_PATH = Path(__file__).resolve().parents[2] / "schemas" / "config.schema.yaml"

# The learning rate when config leaves it null: the paper's for full fine-tuning, diffusers'
# train_text_to_image_lora.py's for LoRA (which trains a few weights from zero).
DEFAULT_LR = {"full": 1e-6, "lora": 1e-4}
# Keys that change how fast a run goes or how often it saves, not what it computes: a checkpoint
# written under other values of these is resumed all the same.
RUNTIME_KEYS = ("checkpoint_every", "num_workers")


@functools.cache
def schema_defaults() -> dict[str, Any]:
    schema = yaml.safe_load(SCHEMA_PATH.read_text())
    properties = schema["$defs"]["finetune"]["properties"]
    return {key: prop["default"] for key, prop in properties.items() if "default" in prop}


_D = schema_defaults()


@dataclass(frozen=True)
class FinetuneRecipe:
    base: str  # the base model's name in config (the job gets its id and revision separately)
    dataset: str
    method: str = _D["method"]
    epochs: int = _D["epochs"]
    max_steps: int | None = _D["max_steps"]
    batch_size: int = _D["batch_size"]
    gradient_accumulation_steps: int = _D["gradient_accumulation_steps"]
    total_batch_size: int | None = _D["total_batch_size"]
    allow_tf32: bool = _D["allow_tf32"]
    lr: float | None = _D["lr"]
    scale_lr: bool = _D["scale_lr"]
    lr_scheduler: str = _D["lr_scheduler"]
    lr_warmup_steps: int = _D["lr_warmup_steps"]
    optimizer: str = _D["optimizer"]
    adam_beta1: float = _D["adam_beta1"]
    adam_beta2: float = _D["adam_beta2"]
    adam_weight_decay: float = _D["adam_weight_decay"]
    adam_epsilon: float = _D["adam_epsilon"]
    max_grad_norm: float = _D["max_grad_norm"]
    resolution: int = _D["resolution"]
    center_crop: bool = _D["center_crop"]
    random_flip: bool = _D["random_flip"]
    mixed_precision: str = _D["mixed_precision"]
    use_ema: bool = _D["use_ema"]
    ema_decay: float = _D["ema_decay"]
    gradient_checkpointing: bool = _D["gradient_checkpointing"]
    caption_template: str = _D["caption_template"]
    class_names: str = _D["class_names"]
    lora_rank: int = _D["lora_rank"]
    lora_alpha: float | None = _D["lora_alpha"]
    checkpoint_every: int = _D["checkpoint_every"]
    num_workers: int = _D["num_workers"]
    seed: int | None = _D["seed"]

    @classmethod
    def from_dict(cls, block: Mapping[str, Any]) -> FinetuneRecipe:
        keys = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(block) - keys)
        if unknown:
            raise ValueError(f"unknown finetune key(s) {unknown}; known: {', '.join(sorted(keys))}")
        recipe = cls(**block)
        if recipe.method not in DEFAULT_LR:
            raise ValueError(f"finetune.method: '{recipe.method}' is not full or lora")
        return recipe

    def as_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def base_lr(self) -> float:
        """The learning rate before scale_lr: config's, else the method's default."""
        return float(self.lr) if self.lr is not None else DEFAULT_LR[self.method]

    def accumulation(self, processes: int) -> int:
        """Micro-batches per optimizer step: total_batch_size's share of each of `processes`, else
        gradient_accumulation_steps."""
        if self.total_batch_size is None:
            return self.gradient_accumulation_steps
        steps, left = divmod(self.total_batch_size, self.batch_size * processes)
        if left or not steps:
            raise ValueError(f"finetune.total_batch_size: {self.total_batch_size} images per step is not a whole "
                             f"number of micro-batches of batch_size {self.batch_size} x {processes} processes; "
                             "change batch_size, total_batch_size or the GPU count")
        return steps

    def effective_lr(self, processes: int) -> float:
        if not self.scale_lr:
            return self.base_lr()
        return self.base_lr() * self.batch_size * self.accumulation(processes) * processes

    def effective_alpha(self) -> float:
        return float(self.lora_alpha) if self.lora_alpha is not None else float(self.lora_rank)

    def identity(self) -> str:
        """What a checkpoint must agree on to be resumed: everything that changes the result."""
        values = {k: v for k, v in self.as_dict().items() if k not in RUNTIME_KEYS}
        return hashlib.sha1(json.dumps(values, sort_keys=True).encode()).hexdigest()
