"""StrategySpec: the typed strategy settings; its defaults are the config schema's, read from the file."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
import yaml

from genrobust.generate import StrategySpec, generate_shard
from genrobust.generate.spec import schema_defaults

SCHEMA = Path(__file__).resolve().parents[1] / "workflow" / "schemas" / "config.schema.yaml"


def strategy_properties() -> dict:
    schema = yaml.safe_load(SCHEMA.read_text())
    return schema["properties"]["strategies"]["additionalProperties"]["properties"]


def test_defaults_are_the_schema_defaults():
    declared = {key: prop["default"] for key, prop in strategy_properties().items() if "default" in prop}
    assert declared["steps"] == 50 and declared["scheduler"] == "PNDMScheduler"  # the schema as read here
    assert schema_defaults() == declared
    spec = StrategySpec.from_dict({"kind": "class_labels", "model_id": "m", "per_class": 3})
    for key, default in declared.items():
        assert getattr(spec, key) == default, key
    assert spec.steps == declared["steps"] and spec.guidance == declared["guidance"]
    # Keys the schema gives no default: optional, or the kind's own default (not in the schema because a
    # schema default is filled into every strategy's config, of every kind).
    assert (spec.templates, spec.strength, spec.images_per_real) == ("openai80", 1.0, 1)
    assert spec.revision is None and spec.weights is None and spec.sources_per_class is None


def test_every_schema_key_of_a_strategy_is_a_field():
    # 'model' names a config model; strategy_spec() in common.smk resolves it into model_id and revision,
    # and 'adapter' (a models entry) with 'adapter_scale' into one adapter field {id, revision, weight_name, scale}.
    fields = {f.name for f in dataclasses.fields(StrategySpec)}
    assert set(strategy_properties()) - {"model", "adapter_scale"} <= fields


@pytest.mark.parametrize("key", ["stpes", "model", "prompt"])
def test_unknown_key_fails_naming_it(key):
    with pytest.raises(ValueError, match=f"unknown strategy key '{key}'"):
        StrategySpec.from_dict({"kind": "class_labels", key: 1})


def test_missing_kind_fails():
    with pytest.raises(ValueError, match="no 'kind'"):
        StrategySpec.from_dict({"steps": 3})


def test_a_spec_given_with_every_key_round_trips():
    given = {"kind": "img2img", "model_id": "sd", "revision": "main", "pipeline": "StableDiffusionImg2ImgPipeline",
             "scheduler": "DDIMScheduler", "templates": ["a photo of a {}.", "a {} drawing."], "class_names": "wordnet", "places": "/p.txt",
             "captions": "/c.csv",
             "steps": 20, "guidance": 5.0, "height": 256, "width": 384, "batch_size": 4, "dtype": "bfloat16",
             "save_size": 128, "jpeg_quality": 90, "safety_checker": True, "compile": True, "strength": 0.5,
             "images_per_real": 2, "weights": "/w", "edsr_input_size": 64, "cae_input_size": None,
             "mixing_set": "/m", "classes": "imagenet1k", "n_shards": 7,
             "seed": 3, "per_class": 10, "sources_per_class": 5, "source": "cl80", "threshold": 0.2,
             "seeds_from": "cl80", "scheduler_config": {"timestep_spacing": "trailing"},
             "adapter": {"id": "org/lora", "revision": "abc", "weight_name": "w.safetensors", "scale": 0.8},
             "fuse_qkv": True, "cache": {"method": "deepcache", "interval": 2},
             "path": "/set", "format": "parquet", "class_map": "/map.csv"}
    assert set(given) == set(StrategySpec.keys())
    spec = StrategySpec.from_dict(given)
    assert spec.to_dict() == given
    assert StrategySpec.from_dict(spec.to_dict()) == spec
    assert spec.templates == ("a photo of a {}.", "a {} drawing.") and spec.steps == 20 and spec.compile is True
    with pytest.raises(dataclasses.FrozenInstanceError):
        spec.steps = 1


def test_settings_are_the_given_dict_without_n_shards_and_compile():
    given = {"kind": "class_labels", "model_id": "m", "steps": 2, "n_shards": 4, "compile": True}
    spec = StrategySpec.from_dict(given)
    # Defaults are not added: shards written from the same dict keep their settings (and are not restarted).
    assert spec.settings() == {"kind": "class_labels", "model_id": "m", "steps": 2}
    assert StrategySpec.from_dict({**given, "n_shards": 9, "compile": False}).settings() == spec.settings()


def test_generate_shard_rejects_an_unknown_key_before_any_work(tmp_path):
    with pytest.raises(ValueError, match="unknown strategy key 'stpes'"):
        generate_shard(strategy="s", split="train", spec={"kind": "pixmix", "stpes": 2}, wnids=["n01440764"],
                       n_shards=1, shard=0, global_seed=0, out_manifest=str(tmp_path / "shard~0" / "manifest.csv"))
    assert not (tmp_path / "shard~0").exists()
