"""Fine-tuned models in config: where their folders go, and the plan-time checks of their blocks.

A `models:` entry with a `finetune:` block is made by the finetune_model rule (its `base` model
trained on the real train set of its `dataset`), so its id is that rule's output folder,
<out>/finetune/<name>; a strategy whose `model` names it makes the generation depend on that job.
A plain entry (`id: hbXNov/ucla-mint-finetune-sd-im1k`, the paper's checkpoint) is used as it is.

No torch or diffusers here: this runs at plan time, for every `snakemake -n`.
"""

from __future__ import annotations

import importlib.util

from ..config import ConfigError
from ..study import Study

FINETUNE_DIR = "finetune"  # under config `out`
LR_RANGE = (1e-7, 1e-2)  # outside it, a fine-tuning learning rate is a typo, not a recipe


def is_finetuned(model: dict) -> bool:
    return bool(model.get("finetune"))


def finetuned_models(config: dict) -> dict[str, dict]:
    """name -> finetune block of every model config makes by fine-tuning."""
    return {name: spec["finetune"] for name, spec in config["models"].items() if is_finetuned(spec)}


def finetune_output(config: dict, name: str) -> str:
    """The folder the finetune_model rule writes for model `name` (its id)."""
    return f"{config['out']}/{FINETUNE_DIR}/{name}"


def finetune_checkpoints(config: dict, name: str) -> str:
    """Its resumable checkpoints, outside the declared output (removed when the job finishes)."""
    return f"{finetune_output(config, name)}.checkpoints"


def resolve_finetuned_ids(config: dict) -> None:
    """Give every fine-tuned model its output folder as `id` (in place; idempotent), so that every
    reader of models.<name>.id (strategies, checks, generation) sees a fine-tuned model like any
    other local model folder."""
    for name, spec in config["models"].items():
        if not is_finetuned(spec):
            if "id" not in spec:
                raise ConfigError(f"models.{name}: give an id (a hub id or a diffusers folder) or a finetune "
                                  "block (fine-tune a base model here)")
            continue
        out = finetune_output(config, name)
        if spec.get("id") not in (None, out):
            raise ConfigError(f"models.{name}.id: a fine-tuned model's id is its output folder '{out}'; remove "
                              f"id (or remove the finetune block to use '{spec['id']}' as it is)")
        spec["id"] = out


def check_finetune_environment(study: Study) -> None:
    """What a fine-tuning job needs installed: checked for a run (after its data paths), not for a
    plan without data."""
    for name, block in finetuned_models(study.config).items():
        if block.get("optimizer", "adamw8bit") == "adamw8bit" and importlib.util.find_spec("bitsandbytes") is None:
            raise ConfigError(f"models.{name}.finetune.optimizer: adamw8bit needs bitsandbytes, which is not "
                              "installed (it is optional: pip install bitsandbytes on the GPU nodes' environment), "
                              "or set optimizer: adamw")


def check_finetune(study: Study) -> None:
    """Each finetune block names a plain base model and a dataset of config, with values a job
    can train with; ConfigError names the key."""
    models, datasets = study.models, study.datasets
    for name, block in finetuned_models(study.config).items():
        key = f"models.{name}.finetune"
        base = block.get("base")
        if base not in models:
            raise ConfigError(f"{key}.base: '{base}' is not one of models ({sorted(models)})")
        if base == name or models[base].finetuned:
            raise ConfigError(f"{key}.base: '{base}' is itself fine-tuned here; name a plain model "
                              "(a hub id or a folder) as the base")
        if block.get("dataset") not in datasets:
            raise ConfigError(f"{key}.dataset: '{block.get('dataset')}' is not one of datasets ({sorted(datasets)})")
        _check_values(key, block)
        _check_images(study, key, block)


def _check_values(key: str, block) -> None:
    method = block.get("method", "full")
    if method not in ("full", "lora"):
        raise ConfigError(f"{key}.method: '{method}' is not full or lora")
    lr = block.get("lr")
    if lr is not None and not (LR_RANGE[0] <= lr <= LR_RANGE[1]):
        raise ConfigError(f"{key}.lr: {lr:g} is outside {LR_RANGE[0]:g}..{LR_RANGE[1]:g}; the paper's full "
                          "fine-tuning used 1e-6, LoRA typically 1e-4")
    template = block.get("caption_template", "a photo of a {}")
    if template.count("{}") != 1 or template.replace("{}", "").count("{") or template.replace("{}", "").count("}"):
        raise ConfigError(f"{key}.caption_template: {template!r} must hold exactly one {{}} (the class name)")
    alpha, rank = block.get("lora_alpha"), block.get("lora_rank", 4)
    if alpha is not None and alpha <= 0:
        raise ConfigError(f"{key}.lora_alpha: {alpha} must be positive (null: the rank, {rank})")
    if method == "lora" and block.get("use_ema"):
        raise ConfigError(f"{key}.use_ema: EMA is for method full (set it false for lora)")
    total, batch = block.get("total_batch_size"), block.get("batch_size", 16)
    if total is not None and block.get("gradient_accumulation_steps", 1) != 1:
        raise ConfigError(f"{key}.gradient_accumulation_steps: set with total_batch_size, which decides it "
                          "(total / (batch_size x GPUs)); keep one of them")
    if total is not None and total % batch:
        raise ConfigError(f"{key}.total_batch_size: {total} is not a multiple of batch_size {batch}")
    warmup, steps = block.get("lr_warmup_steps", 0), block.get("max_steps")
    if steps is not None and warmup >= steps:
        raise ConfigError(f"{key}.lr_warmup_steps: {warmup} is not below max_steps {steps}; the warm-up must "
                          "end within the run")


def _check_images(study: Study, key: str, block) -> None:
    """Captions need a name per class; where config fixes the real set's size (the demo's drawn
    data) it must fill one optimizer step."""
    from pathlib import Path

    names = block.get("class_names", "clip")
    if names != "clip" and not Path(names).is_file():
        raise ConfigError(f"{key}.class_names: '{names}' is neither 'clip' nor a file of 'wnid<TAB>name' lines")
    per_class = study.real_per_class(block["dataset"])
    if per_class is None:
        return
    images = per_class * len(study.wnids(block["dataset"]))
    step = images_per_step(block)
    if images < step:
        raise ConfigError(f"{key}.batch_size: {step} images per optimizer step (batch_size x "
                          f"gradient_accumulation_steps, or total_batch_size) is more than the {images} real train "
                          f"images of datasets.{block['dataset']}; lower it")


def images_per_step(block: dict) -> int:
    """Images per optimizer step of a finetune block on one GPU."""
    return block.get("total_batch_size") or block.get("batch_size", 16) * block.get("gradient_accumulation_steps", 1)
