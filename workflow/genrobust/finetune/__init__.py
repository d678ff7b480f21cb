"""Fine-tuning Stable Diffusion on the real training set (the paper's Section 5, Table 6).

plan: fine-tuned models in config (their output folders, the plan-time checks; no torch);
recipe: the typed recipe (defaults: the paper's); data: the index, captions, seeded order and
views; loop: accelerate set-up, loss, checkpoints; run: `finetune_model`, the whole run;
lora: peft LoRA on the UNet's attention, saved in diffusers' format.
"""

from __future__ import annotations

from .plan import check_finetune, finetune_checkpoints, finetune_output, finetuned_models, resolve_finetuned_ids
from .recipe import FinetuneRecipe


def finetune_model(*args, **kwargs):
    """See finetune.run.finetune_model (imported on call: it imports torch and diffusers)."""
    from .run import finetune_model as run

    return run(*args, **kwargs)


__all__ = ["FinetuneRecipe", "check_finetune", "finetune_checkpoints", "finetune_model", "finetune_output",
           "finetuned_models", "resolve_finetuned_ids"]
