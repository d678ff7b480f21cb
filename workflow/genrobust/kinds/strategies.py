"""The strategy kinds: how each makes a training source, and which config keys it reads.

A new kind is one `STRATEGIES.register(StrategyKind(...))` here, its implementation (a renderer in
generate/renderers.py, a baseline in baselines/, ...) and its test; everything that plans,
checks, prices or builds a source asks here what the kind is."""

from __future__ import annotations

from dataclasses import dataclass

from .registry import Registry

# How a kind makes its images: images per class, images per real image, chosen from another
# source's images (nothing generated), or taken in from outside (nothing generated).
PER_CLASS, PER_REAL, DERIVED, IMPORTED = "per_class", "per_real", "derived", "imported"

# Strategy keys of the diffusion kinds (beside `model`): the checkpoint's adapter and scheduler.
_DIFFUSION_KEYS = ("model", "adapter", "adapter_scale", "scheduler_config", "seeds_from")


@dataclass(frozen=True)
class StrategyKind:
    name: str
    makes: str  # PER_CLASS, PER_REAL, DERIVED or IMPORTED
    keys: tuple[str, ...]  # the strategy keys only this kind (and others listing them) reads
    diffusion: bool = False  # a diffusion model (models.<strategy.model>) makes its images, at a guidance scale
    prompted: bool = False  # prompts from templates and class names (and captions)
    captions: str = ""  # '' (none), 'optional' (a captions file may fill {caption}) or 'required'
    places: bool = False  # templates may hold {place}
    denoiser: str = "unet"  # the diffusion model's denoiser: 'unet' or 'transformer' (DiT)
    benchmark_pipeline: str | None = None  # the diffusers pipeline benchmark-generation builds for it
    cpu_seconds_per_image: float | None = None  # a CPU baseline's cost per image, for `genrobust cost`
    call_args: tuple[str, ...] = ()  # the pipeline call arguments its renderer passes (generate/renderers.py)
    required_keys: tuple[str, ...] = ()  # keys it cannot run without that the schema leaves unset

    @property
    def class_conditioned(self) -> bool:
        """Planned per class (train_per_class, val_per_class); the other generated kinds per real image."""
        return self.makes == PER_CLASS

    @property
    def from_real_images(self) -> bool:
        return self.makes == PER_REAL

    @property
    def derived(self) -> bool:
        return self.makes == DERIVED

    @property
    def imported(self) -> bool:
        return self.makes == IMPORTED

    @property
    def generated(self) -> bool:
        """Whether its images come from generation shards (not filtered or imported)."""
        return self.makes in (PER_CLASS, PER_REAL)

    @property
    def generate_keys(self) -> tuple[str, ...]:
        """The keys of a dataset's generate entry for this kind beyond the shard counts."""
        return {PER_CLASS: ("train_per_class", "val_per_class"), PER_REAL: ("sources_per_class",)}.get(self.makes, ())


STRATEGIES: Registry[StrategyKind] = Registry("strategy")
for _kind in (
    StrategyKind("class_labels", PER_CLASS, (*_DIFFUSION_KEYS, "templates", "places", "captions"), diffusion=True,
                 prompted=True, captions="optional", places=True, benchmark_pipeline="StableDiffusionPipeline",
                 call_args=("prompt", "height", "width")),
    StrategyKind("image_variation", PER_REAL, (*_DIFFUSION_KEYS, "images_per_real"), diffusion=True,
                 benchmark_pipeline="StableDiffusionImageVariationPipeline", call_args=("image", "height", "width")),
    StrategyKind("img2img", PER_REAL, (*_DIFFUSION_KEYS, "templates", "places", "strength", "images_per_real"),
                 diffusion=True, prompted=True, places=True, benchmark_pipeline="StableDiffusionImg2ImgPipeline",
                 call_args=("prompt", "image", "strength")),
    StrategyKind("class_conditional", PER_CLASS, _DIFFUSION_KEYS, diffusion=True, denoiser="transformer",
                 benchmark_pipeline="DiTPipeline", call_args=("class_labels",)),
    StrategyKind("deepaugment", PER_REAL, ("images_per_real", "weights", "edsr_input_size", "cae_input_size",
                                           "seeds_from"), cpu_seconds_per_image=0.5, required_keys=("weights",)),
    StrategyKind("pixmix", PER_REAL, ("images_per_real", "mixing_set", "seeds_from"), cpu_seconds_per_image=0.05,
                 required_keys=("mixing_set",)),
    StrategyKind("clip_filtered", DERIVED, ("source", "threshold")),
    StrategyKind("captions", PER_REAL, (*_DIFFUSION_KEYS, "templates", "captions", "images_per_real"), diffusion=True,
                 prompted=True, captions="required", call_args=("prompt", "height", "width")),
    StrategyKind("external", IMPORTED, ("seeds_from", "path", "format", "class_map")),
):
    STRATEGIES.register(_kind)
