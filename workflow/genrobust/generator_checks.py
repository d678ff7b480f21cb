"""Plan-time checks of what generates the images: diffusers pipeline and scheduler classes, the
model folders and hub ids, the few-step settings (a LoRA adapter, scheduler overrides, the
guidance a distilled model takes) and the speed-ups (fused QKV, feature caching). Like
checks.py, never imports diffusers: the class names and their parameters come from the shipped
list (name_lists.DIFFUSERS_CLASSES)."""

from __future__ import annotations

import re
from pathlib import Path

from .config import ConfigError
from .kinds import STRATEGIES
from .name_lists import DIFFUSERS_CLASSES, shipped_names
from .schema import did_you_mean
from .study import Model, Study

# The pipeline call arguments every kind's renderer passes (generate/renderers.py), besides its kind's call_args.
COMMON_CALL_ARGS = {"num_inference_steps", "guidance_scale", "output_type", "generator"}
CALL_ARGS = sorted(COMMON_CALL_ARGS.union(*(STRATEGIES[kind].call_args for kind in STRATEGIES)))
# A Hugging Face hub id, as huggingface_hub.utils.validate_repo_id accepts it: [namespace/]name.
_HUB_PART = r"\w(?:[\w.-]{0,94}\w)?"
HUB_ID = re.compile(rf"(?:{_HUB_PART}/)?{_HUB_PART}")
ADAPTER_WEIGHTS = "pytorch_lora_weights.safetensors"  # diffusers' default weight name
# Each feature-cache method's options and their defaults (the methods' own; generate/speedups.py
# applies them): DeepCache recomputes the whole UNet every `interval` steps and only the blocks
# above skip branch `branch` in between; tomesd merges `ratio` of the tokens in the attention
# layers at most `max_downsample` times downsampled.
CACHE_OPTIONS = {"deepcache": {"interval": 3, "branch": 0}, "tomesd": {"ratio": 0.5, "max_downsample": 1}}


def check_generators(study: Study) -> None:
    """Pipeline and scheduler classes exist, the pipeline takes what the strategy's kind passes,
    and the few-step settings mean what they say."""
    for name, planned in study.strategies.items():
        kind, strategy = planned.kind.name, planned.settings
        if not planned.kind.diffusion:
            continue  # deepaugment, pixmix: no diffusers pipeline
        key = f"strategies.{name}"
        pipeline = strategy.get("pipeline", "StableDiffusionPipeline")
        _check_diffusers_class(f"{key}.pipeline", pipeline, "pipeline")
        if strategy.get("scheduler"):  # null keeps the pipeline's own
            _check_diffusers_class(f"{key}.scheduler", strategy["scheduler"], "scheduler")
        accepted = shipped_names(DIFFUSERS_CLASSES)["pipeline"][pipeline]
        if accepted != "*":  # '*': resolved from the model folder, or takes any keyword
            missing = sorted((set(planned.kind.call_args) | COMMON_CALL_ARGS) - set(accepted.split(",")))
            if missing:
                raise ConfigError(f"{key}.pipeline: {pipeline} does not take {', '.join(missing)}, which a "
                                  f"{kind} strategy passes; choose a pipeline made for {kind}")
        _check_scheduler_config(key, strategy)
        _check_adapter(study.models, key, strategy)
        _check_guidance(study.models, key, strategy)
        _check_speedups(key, strategy)
    scheduler = study.config.get("benchmarks", {}).get("generation", {}).get("scheduler")
    if scheduler:
        _check_diffusers_class("benchmarks.generation.scheduler", scheduler, "scheduler")


def _check_diffusers_class(key: str, name: str, group: str) -> None:
    lists = shipped_names(DIFFUSERS_CLASSES)
    if name in lists[group]:
        return
    if name in lists["placeholder"]:
        raise ConfigError(f"{key}: '{name}' needs an optional package that envs/requirements.txt does not "
                          f"install (diffusers only has a placeholder for it); choose another {group}")
    raise ConfigError(f"{key}: '{name}' is not a diffusers {group}{did_you_mean(name, lists[group])}")


def _check_scheduler_config(key: str, strategy) -> None:
    """Overrides name parameters of the named scheduler: diffusers' from_config ignores an unknown
    one with a warning in a job's log, so a misspelt `timestep_spacing` would sample silently
    with the default spacing."""
    overrides = strategy.get("scheduler_config")
    if not overrides:
        return
    scheduler = strategy.get("scheduler")
    if not scheduler:
        raise ConfigError(f"{key}.scheduler_config: name the scheduler whose config it overrides "
                          f"({key}.scheduler is null, which keeps whatever the model folder holds)")
    params = shipped_names(DIFFUSERS_CLASSES)["scheduler"][scheduler].split(",")
    for param in overrides:
        if param not in params:
            raise ConfigError(f"{key}.scheduler_config.{param}: {scheduler} has no such config parameter"
                              f"{did_you_mean(param, params)}")


def _check_adapter(models: dict[str, Model], key: str, strategy) -> None:
    adapter = strategy.get("adapter")
    if adapter is None:
        if "adapter_scale" in strategy:
            raise ConfigError(f"{key}.adapter_scale: the strategy has no adapter to scale")
        return
    if adapter not in models:
        raise ConfigError(f"{key}.adapter: '{adapter}' is not one of models{did_you_mean(adapter, list(models))}")
    if models[adapter].finetuned:
        raise ConfigError(f"{key}.adapter: models.{adapter} is fine-tuned here, a model of its own; name it as "
                          f"{key}.model (a LoRA fine-tuned here generates with its base fused in)")
    if adapter == strategy.get("model"):
        raise ConfigError(f"{key}.adapter: models.{adapter} is also the strategy's model; the adapter is the "
                          "LoRA fused into that model (e.g. LCM-LoRA into SD v1.5)")


def _check_guidance(models: dict[str, Model], key: str, strategy) -> None:
    """A few-step model distilled with its guidance folded in takes at most its max_guidance: more
    over-saturates every image, with no error anywhere."""
    guidance = strategy.get("guidance", 7.5)
    for role in ("model", "adapter"):
        name = strategy.get(role)
        limit = models[name].settings.get("max_guidance") if name in models else None
        if limit is not None and guidance > limit:
            raise ConfigError(f"{key}.guidance: {guidance:g} is more than models.{name}.max_guidance {limit:g}, "
                              f"the most its {role} takes (a few-step model distilled with guidance folded in; "
                              "<= 1 turns classifier-free guidance off)")


def _check_speedups(key: str, strategy) -> None:
    """Cache options belong to their method, and the UNet patches are not mixed with what they
    cannot work with: the schema alone would let tomesd's ratio pass as a DeepCache option."""
    cache = strategy.get("cache")
    if STRATEGIES[strategy["kind"]].denoiser == "transformer":  # the patches are the UNet's
        for setting in ("cache", "fuse_qkv"):
            if strategy.get(setting):
                raise ConfigError(f"{key}.{setting}: patches a Stable Diffusion UNet; a class_conditional model "
                                  "(DiT) has a transformer instead; remove it")
    if not cache:
        return
    options = CACHE_OPTIONS[cache["method"]]
    for option in cache:
        if option != "method" and option not in options:
            raise ConfigError(f"{key}.cache.{option}: {cache['method']} has no such option; its options: "
                              f"{', '.join(options)}{did_you_mean(option, list(options))}")
    if strategy.get("compile"):
        raise ConfigError(f"{key}.cache: {cache['method']} replaces the UNet's forward functions, which "
                          f"{key}.compile would compile past; set one of them only")


def check_models(study: Study) -> None:
    """Each model id is a diffusers folder (an adapter's: a folder with its weights file) or a hub
    id; pipelines.load_pipeline treats an existing path as a folder, so a path typo would
    otherwise be sent to the hub, after hours upstream."""
    if not study.check_paths:
        return
    adapters = {s.settings["adapter"] for s in study.strategies.values() if s.settings.get("adapter")}
    for name, model in study.models.items():
        if model.finetuned:
            continue  # the finetune_model rule builds its folder (finetune.plan checks the block)
        spec = model.settings
        key, model_id = f"models.{name}.id", spec["id"]
        if study.produced_by_demo(model_id):
            continue  # a demo rule builds the folder
        local = Path(model_id).expanduser()
        if local.exists():
            weights = spec.get("weight_name", ADAPTER_WEIGHTS)
            if name in adapters and not (local / weights).is_file():
                raise ConfigError(f"{key}: adapter folder '{model_id}' has no {weights}; set models.{name}."
                                  "weight_name to its weights file, or point it at a hub id")
            if name not in adapters and not (local / "model_index.json").is_file():
                raise ConfigError(f"{key}: '{model_id}' has no model_index.json; point it at a diffusers "
                                  "save_pretrained folder, or at a hub id (namespace/name)")
        elif (model_id.startswith((".", "/", "~")) or not HUB_ID.fullmatch(model_id) or ".." in model_id
              or "--" in model_id or model_id.endswith(".git")):
            raise ConfigError(f"{key}: '{model_id}' is neither an existing folder (relative to the working "
                              "directory) nor a hub id (namespace/name); fix the path or the id")
