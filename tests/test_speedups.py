"""Speed-ups that change the images a little (fused QKV, DeepCache, tomesd): each runs on the tiny
SD through a real shard, is recorded in the manifest and the shard's settings, leaves the other
strategies' images as they were, resumes to the same bytes, and is checked at plan time."""

from __future__ import annotations

import json

import numpy as np
import pytest

from conftest import REPO
from genrobust import generate
from genrobust.config import ConfigError
from genrobust.demo.models import build_tiny_sd
from genrobust.generate.speedups import cache_settings, speedup_label
from genrobust.validation import check_config
from test_few_step import beyond_config
from test_generate import WNIDS, file_hashes, spec_for

# The tiny SD has attention only one level down: tomesd's default max_downsample 1 would merge nothing.
TOMESD = {"method": "tomesd", "ratio": 0.5, "max_downsample": 2}
DEEPCACHE = {"method": "deepcache", "interval": 2}


@pytest.fixture(scope="module")
def sd(tmp_path_factory) -> str:
    return str(build_tiny_sd(tmp_path_factory.mktemp("models") / "sd", seed=0))


def shard(sd, out, max_batches=None, **speedups):
    """Shard 0 of 2 (4 images, 2 batches of 2) of a 3-class set at 4 steps (DeepCache skips steps)."""
    return generate.generate_class_label_shard(
        strategy="cl80", split="train", spec=spec_for(sd, steps=4, **speedups), wnids=WNIDS, per_class=3,
        n_shards=2, shard=0, global_seed=0, out_manifest=str(out / "shard~0" / "manifest.csv"), device="cpu",
        max_batches=max_batches)


def test_each_speedup_runs_is_recorded_and_leaves_other_strategies_images_as_they_were(sd, tmp_path):
    plain = shard(sd, tmp_path / "plain")
    base = file_hashes(tmp_path / "plain" / "shard~0")
    assert "speedups" not in plain.columns  # a strategy without speed-ups keeps its manifest's columns
    for name, settings, label in [
        ("deepcache", {"cache": DEEPCACHE}, "deepcache(branch=0, interval=2)"),
        ("tomesd", {"cache": TOMESD}, "tomesd(max_downsample=2, ratio=0.5)"),
        ("fused", {"fuse_qkv": True}, "fuse_qkv"),
    ]:
        manifest = shard(sd, tmp_path / name, **settings)
        assert set(manifest["speedups"]) == {label}, name
        assert manifest["seed"].tolist() == plain["seed"].tolist()
        stats = json.loads((tmp_path / name / "shard~0/stats.json").read_text())
        assert {k: stats["settings"][k] for k in settings} == settings, name  # the cost's settings say it
        if name != "fused":  # an approximation: every image differs (fusing may round alike on a CPU)
            images = file_hashes(tmp_path / name / "shard~0")
            assert images.keys() == base.keys() and all(images[k] != base[k] for k in base), name
    again = shard(sd, tmp_path / "plain_again")  # the patches stayed on their own pipelines
    assert file_hashes(tmp_path / "plain_again" / "shard~0") == base
    assert again["seed"].tolist() == plain["seed"].tolist()


@pytest.mark.parametrize("cache", [TOMESD, DEEPCACHE], ids=["tomesd", "deepcache"])
def test_a_killed_cached_shard_resumes_to_the_same_bytes(sd, tmp_path, cache):
    """tomesd draws its token partitions from a generator forked from torch's global state; reseeded
    from each batch's first seed, a batch's images do not depend on what ran before it."""
    shard(sd, tmp_path / "whole", cache=cache)
    assert shard(sd, tmp_path / "killed", cache=cache, max_batches=1) is None
    np.random.seed(1)
    import torch

    torch.manual_seed(123)  # another process's global RNG state
    shard(sd, tmp_path / "killed", cache=cache)
    assert file_hashes(tmp_path / "killed" / "shard~0") == file_hashes(tmp_path / "whole" / "shard~0")
    assert (tmp_path / "killed/shard~0/manifest.csv").read_bytes() == (tmp_path / "whole/shard~0/manifest.csv").read_bytes()


def test_cache_settings_fill_the_methods_defaults_and_name_a_wrong_option():
    assert cache_settings({"method": "deepcache"}) == {"method": "deepcache", "interval": 3, "branch": 0}
    assert cache_settings(None) is None and speedup_label(False, None) == ""
    assert speedup_label(True, {"method": "tomesd"}) == "fuse_qkv; tomesd(max_downsample=1, ratio=0.5)"
    with pytest.raises(generate.GenerationError, match="deepcache has no option ratio"):
        cache_settings({"method": "deepcache", "ratio": 0.5})


def cached(strategy="cl80", **values):
    return lambda c: c["strategies"][strategy].update(values)


@pytest.mark.parametrize("edit, message", [
    (cached(cache={"method": "deepcache", "ratio": 0.5}),
     "strategies.cl80.cache.ratio: deepcache has no such option; its options: interval, branch"),
    (cached(cache={"method": "tomesd", "interval": 2}),
     "strategies.cl80.cache.interval: tomesd has no such option; its options: ratio, max_downsample"),
    (cached(cache={"method": "deepcache"}, compile=True), "strategies.cl80.cache: deepcache replaces the UNet's"),
    (cached("ldm", fuse_qkv=True), "strategies.ldm.fuse_qkv: patches a Stable Diffusion UNet"),
])
def test_bad_speedups_fail_at_plan_time_naming_the_key(monkeypatch, edit, message):
    monkeypatch.chdir(REPO)
    with pytest.raises(ConfigError) as err:
        check_config(beyond_config(edit))
    assert message in str(err.value)


@pytest.mark.parametrize("cache", [{"method": "deepcach"}, {"method": "tomesd", "ratio": 0.9}, {"interval": 2}])
def test_the_schema_rejects_an_unknown_method_or_a_value_out_of_range(monkeypatch, cache):
    monkeypatch.chdir(REPO)
    with pytest.raises(Exception, match="cache"):
        beyond_config(cached(cache=cache))


def test_a_compiled_shards_short_batch_is_padded_to_batch_size_and_its_images_unchanged(sd):
    """With compile on a GPU, every call has the batch_size shape (a new shape recompiles); the
    padding is appended, so the real images' noise and results are those of an unpadded call."""
    from genrobust.generate.plan import ImageSpec
    from genrobust.generate.renderers import ClassLabelRenderer
    from genrobust.generate.spec import StrategySpec

    spec = StrategySpec.from_dict({"kind": "class_labels", "per_class": 3, **spec_for(sd, batch_size=4)})
    batch = [ImageSpec(id=f"i{k}", wnid=WNIDS[k % 3], k=k, seed=1000 + k) for k in range(3)]
    renderer = ClassLabelRenderer(spec, WNIDS, "cpu")
    renderer.prepare()
    plain, plain_rows = renderer(batch)
    pipe, shapes = renderer.pipe, []

    def recording(**kwargs):
        shapes.append(len(kwargs["prompt"]))
        assert len(kwargs["generator"]) == len(kwargs["prompt"])
        return pipe(**kwargs)

    renderer.pipe, renderer.static_batch = recording, True
    renderer.pipe.scheduler = pipe.scheduler
    padded, padded_rows = renderer(batch)
    assert shapes == [4]
    assert len(padded) == 3 and padded_rows == plain_rows
    for a, b in zip(plain, padded):  # CPU kernels may block a batch of 4 unlike one of 3: a rounding at most
        assert np.abs(a.astype(int) - b.astype(int)).max() <= 1
    assert ClassLabelRenderer(StrategySpec.from_dict({**spec.to_dict(), "compile": True}), WNIDS, "cuda").static_batch
    assert not ClassLabelRenderer(spec, WNIDS, "cuda").static_batch
