"""One strategy's settings as a typed, frozen value. The defaults of the keys the config schema
declares are the schema's own (workflow/schemas/config.schema.yaml): Snakemake's validate() fills
them into the config, and StrategySpec.from_dict fills the same ones for callers without Snakemake."""

from __future__ import annotations

import dataclasses
import functools
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any, Mapping

import yaml

from ..kinds import STRATEGIES

SCHEMA_PATH = Path(__file__).resolve().parents[2] / "schemas" / "config.schema.yaml"


@functools.cache
def schema_defaults() -> dict[str, Any]:
    """The `default` of every strategy key that the config schema gives one."""
    try:
        schema = yaml.safe_load(SCHEMA_PATH.read_text())
    except OSError as err:
        raise RuntimeError(f"cannot read the config schema {SCHEMA_PATH} (the strategy defaults live there): "
                           f"{err}") from err
    properties = schema["properties"]["strategies"]["additionalProperties"]["properties"]
    return {key: prop["default"] for key, prop in properties.items() if "default" in prop}


_DEFAULT = schema_defaults()


@dataclass(frozen=True)
class StrategySpec:
    """What one generation shard is asked for: a strategy's config entry, with its model resolved
    (model_id, revision) and its dataset's counts (classes, n_shards, seed, per_class, sources_per_class),
    as workflow/rules/common.smk strategy_spec() writes it."""

    kind: str
    model_id: str | None = None  # diffusers kinds: hub id or local folder
    revision: str | None = None  # None: the hub's default branch
    pipeline: str = _DEFAULT["pipeline"]
    scheduler: str | None = _DEFAULT["scheduler"]  # None: keep the pipeline's own
    scheduler_config: Mapping[str, Any] | None = None  # overrides of the scheduler's config
    # a LoRA fused into the model ({id, revision, weight_name, scale}), as common.smk resolves the
    # strategy's `adapter` (a models entry) and `adapter_scale`
    adapter: Mapping[str, Any] | None = None
    # templates, strength and images_per_real: one kind's defaults, so their one home is here. In the
    # schema, validate() would fill them into every strategy of every kind, changing the settings
    # (and so restarting the shards) of strategies that never use them.
    templates: str | tuple[str, ...] = "openai80"  # class_labels, img2img: a named set, a file or templates
    class_names: str = _DEFAULT["class_names"]
    places: str = "default"  # templates with {place}: 'default' (prompts.PLACES) or a file of phrases
    seeds_from: str | None = None  # the strategy whose per-image seeds it reuses (None: its own)
    captions: str | None = None  # class_labels: a wnid,caption file; captions kind: a path,caption file
    steps: int = _DEFAULT["steps"]
    guidance: float = _DEFAULT["guidance"]
    height: int = _DEFAULT["height"]
    width: int = _DEFAULT["width"]
    batch_size: int = _DEFAULT["batch_size"]
    dtype: str = _DEFAULT["dtype"]
    save_size: int = _DEFAULT["save_size"]
    jpeg_quality: int = _DEFAULT["jpeg_quality"]
    safety_checker: bool = _DEFAULT["safety_checker"]
    compile: bool = _DEFAULT["compile"]
    fuse_qkv: bool = False  # fused attention projections (generate/speedups.py)
    cache: Mapping[str, Any] | None = None  # feature caching: {method: deepcache|tomesd, its options}
    strength: float = 1.0  # img2img (the paper's)
    images_per_real: int = 1  # image-conditioned kinds
    weights: str | None = None  # deepaugment
    # deepaugment: short side fed to EDSR (x4 output) and to the CAE, the original's 128 and 512;
    # None runs a net at the image's own scale (EDSR then gets it at 1/4 size).
    edsr_input_size: int | None = 128
    cae_input_size: int | None = 512
    mixing_set: str | None = None  # pixmix
    source: str | None = None  # clip_filtered: the strategy whose images it filters (metrics/filtering.py)
    threshold: float = 0.3  # clip_filtered: the CLIP score kept (>=)
    # external: the imported set, its layout and class map (share/external.py; nothing generated)
    path: str | None = None
    format: str | None = None
    class_map: str | None = None
    classes: str | None = None  # the dataset's class list ("imagenet1k" or a file of wnids)
    n_shards: int | None = None
    seed: int | None = None  # the global seed
    per_class: int | None = None  # class-conditioned kinds: images per class of the split
    sources_per_class: int | None = None  # image-conditioned kinds: only the first N real images per class
    given: Mapping[str, Any] | None = field(default=None, compare=False, repr=False)  # from_dict's input

    @classmethod
    def from_dict(cls, spec: Mapping[str, Any]) -> StrategySpec:
        """The spec of a strategy's JSON; keys it leaves out take their defaults."""
        keys = cls.keys()
        for key in spec:
            if key not in keys:
                hint = " (resolve it to model_id and revision first)" if key == "model" else ""
                raise ValueError(f"unknown strategy key '{key}'{hint}; known keys: {', '.join(sorted(keys))}")
        if "kind" not in spec:
            raise ValueError("strategy spec has no 'kind'")
        values = dict(spec)
        if isinstance(values.get("templates"), list):
            values["templates"] = tuple(values["templates"])
        return cls(**values, given=MappingProxyType(dict(spec)))

    @classmethod
    def keys(cls) -> list[str]:
        return [f.name for f in dataclasses.fields(cls) if f.name != "given"]

    def to_dict(self) -> dict[str, Any]:
        """Every key, defaults included, as JSON types (from_dict(spec.to_dict()) == spec)."""
        out = {key: getattr(self, key) for key in self.keys()}
        if isinstance(out["templates"], tuple):
            out["templates"] = list(out["templates"])
        return out

    def prompt_templates(self) -> str | tuple[str, ...]:
        """The templates prompts are made from: the strategy's, or where it has captions and names
        no templates (a `captions` strategy always has captions), the caption itself."""
        named = "templates" in self.given if self.given is not None else self.templates != "openai80"
        if named or not (self.captions or STRATEGIES[self.kind].captions == "required"):
            return self.templates
        return ("{caption}",)

    def settings(self) -> dict[str, Any]:
        """What the shard's images depend on; progress under other settings is discarded. It is the
        dict as given (not with defaults filled in), so that shards written before this class keep
        their settings, less n_shards (the shard's image ids, hashed into its settings, cover that)
        and compile: a speed switch, which must not throw finished images away (compiled kernels
        may round differently, an accepted difference)."""
        given = self.given if self.given is not None else self.to_dict()
        return {k: v for k, v in given.items() if k not in ("n_shards", "compile")}
