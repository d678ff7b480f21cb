"""Generation at a fraction of the cost: a few-step LoRA fused in, a reconfigured scheduler, what
each shard and set cost recorded, the settings checked at plan time, and the cost_frontier report."""

from __future__ import annotations

import copy
import json

import numpy as np
import pandas as pd
import pytest
import yaml
from snakemake.utils import update_config, validate

from conftest import REPO
from genrobust import generate, io
from genrobust.config import ConfigError
from genrobust.demo.models import build_tiny_lora, build_tiny_sd
from genrobust.finetune.lora import LORA_WEIGHTS
from genrobust.generate.pipelines import load_pipeline
from genrobust.metrics.report_kinds import make_metrics_report
from genrobust.metrics.strategy_reports import pareto_front
from genrobust.validation import check_config
from test_generate import WNIDS, file_hashes, spec_for
from test_strategy_reports import constructed_study, report_of

SCHEMA = str(REPO / "workflow/schemas/config.schema.yaml")
FEW_STEP = {"scheduler": "LCMScheduler", "scheduler_config": {"timestep_spacing": "trailing"}, "steps": 1,
            "guidance": 1.0}


@pytest.fixture(scope="module")
def models(tmp_path_factory) -> tuple[str, str]:
    root = tmp_path_factory.mktemp("models")
    sd = build_tiny_sd(root / "sd", seed=0)
    return str(sd), str(build_tiny_lora(root / "few_step_lora", sd, seed=0))


def few_step_shard(models, out, shard=0, adapter=True, **kwargs):
    sd, lora = models
    spec = spec_for(sd, **FEW_STEP)
    if adapter:
        spec["adapter"] = {"id": lora, "revision": None, "weight_name": LORA_WEIGHTS, "scale": 1.0}
    return generate.generate_class_label_shard(
        strategy="cl80", split="train", spec=spec, wnids=WNIDS, per_class=3, n_shards=2, shard=shard, global_seed=0,
        out_manifest=str(out / f"shard~{shard}" / "manifest.csv"), device="cpu", **kwargs)


# ----------------------------------------------------------------------------- generation


def test_a_few_step_shard_fuses_its_adapter_and_records_how_it_was_made(models, tmp_path):
    manifest = few_step_shard(models, tmp_path / "fused")
    plain = few_step_shard(models, tmp_path / "plain", adapter=False)
    assert set(manifest["adapter"]) == {f"{models[1]}/{LORA_WEIGHTS} x 1"}
    assert "adapter" not in plain.columns  # a strategy without one keeps its manifest's columns
    assert set(manifest["scheduler"]) == {"LCMScheduler"} and set(manifest["steps"]) == {1}
    assert manifest["seed"].tolist() == plain["seed"].tolist()
    fused, base = file_hashes(tmp_path / "fused/shard~0"), file_hashes(tmp_path / "plain/shard~0")
    assert fused.keys() == base.keys() and all(fused[k] != base[k] for k in fused)  # the adapter changes each image
    stats = json.loads((tmp_path / "fused/shard~0/stats.json").read_text())
    assert stats["settings"]["adapter"]["id"] == models[1] and stats["settings"]["steps"] == 1
    assert stats["seconds_per_image"] == pytest.approx(stats["seconds"] / len(manifest), abs=0.005)  # seconds: 2 decimals
    assert stats["device"] == "cpu"


def test_a_killed_few_step_shard_resumes_to_the_same_bytes(models, tmp_path):
    whole = few_step_shard(models, tmp_path / "whole")
    assert few_step_shard(models, tmp_path / "killed", max_batches=1) is None
    resumed = few_step_shard(models, tmp_path / "killed")
    assert file_hashes(tmp_path / "killed/shard~0") == file_hashes(tmp_path / "whole/shard~0")
    assert (tmp_path / "killed/shard~0/manifest.csv").read_bytes() == (tmp_path / "whole/shard~0/manifest.csv").read_bytes()
    assert resumed["id"].tolist() == whole["id"].tolist()


def test_scheduler_overrides_reach_the_scheduler(models):
    pipe = load_pipeline(models[0], None, "StableDiffusionPipeline", "EulerAncestralDiscreteScheduler", "float32",
                         "cpu", False, scheduler_config={"timestep_spacing": "trailing"})
    assert type(pipe.scheduler).__name__ == "EulerAncestralDiscreteScheduler"
    pipe.scheduler.set_timesteps(4)
    assert pipe.scheduler.timesteps.tolist() == [999, 749, 499, 249]  # trailing: from the last training step


def test_an_adapter_that_cannot_be_loaded_says_which(models, tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(generate.GenerationError, match="could not load the adapter '.*empty'"):
        load_pipeline(models[0], None, "StableDiffusionPipeline", None, "float32", "cpu", False,
                      adapter={"id": str(tmp_path / "empty"), "weight_name": LORA_WEIGHTS})


def test_gather_sums_a_sets_cost_with_its_devices_and_settings(models, tmp_path):
    paths = []
    for shard in (0, 1):
        few_step_shard(models, tmp_path, shard=shard)
        paths.append(str(tmp_path / f"shard~{shard}" / "manifest.csv"))
    summary = generate.gather_manifests(paths, str(tmp_path / "manifest.csv"))
    seconds = sum(json.loads((tmp_path / f"shard~{s}/stats.json").read_text())["seconds"] for s in (0, 1))
    assert summary["images"] == 9 and summary["devices"] == ["cpu"]
    assert summary["generation_hours"] == pytest.approx(seconds / 3600, abs=1e-6)
    assert summary["gpu_hours"] is None  # CPU hours are not GPU-hours
    assert summary["settings"]["scheduler"] == "LCMScheduler" and summary["settings"]["adapter"]["scale"] == 1.0


# ----------------------------------------------------------------------------- plan time


def beyond_config(edit=None) -> dict:
    config = yaml.safe_load((REPO / "config/demo.yaml").read_text())
    update_config(config, yaml.safe_load((REPO / "config/demo_beyond.yaml").read_text()))
    if edit:
        edit(config)
    validate(config, SCHEMA)
    return config


def few(**values):
    return lambda c: c["strategies"]["cl80lcm"].update(values)


@pytest.mark.parametrize("edit, message", [
    (few(adapter="few_step_lorra"), "strategies.cl80lcm.adapter: 'few_step_lorra' is not one of models"
                                    "; did you mean few_step_lora?"),
    (few(scheduler_config={"timestep_spacin": "trailing"}),
     "strategies.cl80lcm.scheduler_config.timestep_spacin: LCMScheduler has no such config parameter"
     "; did you mean timestep_spacing?"),
    (few(scheduler=None), "strategies.cl80lcm.scheduler_config: name the scheduler whose config it overrides"),
    (few(guidance=7.5), "strategies.cl80lcm.guidance: 7.5 is more than models.few_step_lora.max_guidance 2"),
    (few(adapter="sd15"), "strategies.cl80lcm.adapter: models.sd15 is also the strategy's model"),
    (lambda c: c["strategies"]["cl80"].update(adapter_scale=0.5), "strategies.cl80.adapter_scale: the strategy has "
                                                                  "no adapter to scale"),
    (lambda c: c["strategies"]["pixmix"].update(adapter="few_step_lora"), "strategies.pixmix.adapter"),
])
def test_bad_few_step_settings_fail_at_plan_time_naming_the_key(monkeypatch, edit, message):
    monkeypatch.chdir(REPO)
    with pytest.raises(ConfigError) as err:
        check_config(beyond_config(edit))
    assert message in str(err.value)


def test_an_adapter_folder_without_its_weights_fails_at_plan_time(monkeypatch, tmp_path):
    monkeypatch.chdir(REPO)
    (tmp_path / "lora").mkdir()
    (tmp_path / "lora" / "adapter.bin").write_bytes(b"")

    def point(config):
        config["models"]["few_step_lora"]["id"] = str(tmp_path / "lora")

    with pytest.raises(ConfigError, match=r"models.few_step_lora.id: adapter folder '.*lora' has no "
                                          "pytorch_lora_weights.safetensors; set models.few_step_lora.weight_name"):
        check_config(beyond_config(point))
    (tmp_path / "lora" / LORA_WEIGHTS).write_bytes(b"")  # the weights there: the same config plans
    check_config(beyond_config(point))


def test_the_shards_spec_resolves_the_adapter_and_the_cost_model_halves_unguided_steps(monkeypatch):
    from genrobust.costs import StudySize, shard_cost

    monkeypatch.chdir(REPO)
    config = beyond_config()
    check_config(config)
    study = StudySize(config)
    guided = shard_cost(study, "demo10", "cl80", "train")
    unguided = shard_cost(study, "demo10", "cl80lcm", "train")  # 1 step without guidance vs cl80's 3 with it
    per_image = guided.seconds / guided.images, unguided.seconds / unguided.images
    assert per_image[1] == pytest.approx(per_image[0] / 6)


# ----------------------------------------------------------------------------- the report


def test_the_pareto_front_keeps_what_nothing_beats_in_cost_and_gain():
    cost = pd.Series([1.0, 2.0, 3.0, 4.0, np.nan, 1.0])
    gain = pd.Series([1.0, 3.0, 2.0, 4.0, 9.0, 1.0])
    assert pareto_front(cost, gain).tolist() == [True, True, False, True, False, True]  # ties both stay


def test_cost_frontier_prices_each_row_by_the_images_it_trains_on(tmp_path):
    spreads, er = {"slow": 0.3, "fast": 0.3, "worse": 0.3}, {"slow": 0.04, "fast": 0.03, "worse": 0.01}
    inputs = constructed_study(tmp_path, spreads, er)
    hours = {"slow": 10.0, "fast": 1.0, "worse": 2.0}
    inputs["summaries"] = {}
    for source in spreads:
        path = tmp_path / f"{source}_summary.json"
        io.write_json(path, {"images": 200, "generation_hours": hours[source], "devices": ["cuda"],
                             "images_per_second": 200 / hours[source] / 3600,
                             "settings": {"scheduler": "LCMScheduler", "steps": 4}})
        inputs["summaries"][source] = str(path)
    rows = {f"+ {s}": f"real_100+{s}_100" for s in spreads}
    inputs["used"] = {label: 100 for label in rows}  # half of each set
    table = make_metrics_report("cost_frontier", report_of("cost_frontier", rows), inputs, str(tmp_path / "c.csv"),
                                str(tmp_path / "c.png"))
    written = pd.read_csv(tmp_path / "c.csv", index_col=0)
    assert written["Generation hours"].tolist() == pytest.approx([5.0, 0.5, 1.0])
    assert written["On the ER front"].tolist() == [True, True, False]  # 'worse' costs more than 'fast' for less
    assert written["Effective robustness, average (%)"].tolist() == pytest.approx([4, 3, 1], abs=1e-6)
    assert set(written["Sampler"]) == {"LCMScheduler, 4 steps"} and set(written["Generated on"]) == {"cuda"}
    assert list(table.index) == list(rows) and (tmp_path / "c.png").read_bytes()[:4] == b"\x89PNG"


def test_the_full_study_overlay_plans_the_few_step_sets_paired_with_cl80(monkeypatch):
    from genrobust.config import generation_jobs, training_runs
    from genrobust.metrics.plan import generated_images_used

    monkeypatch.chdir(REPO)
    config = yaml.safe_load((REPO / "config/config.yaml").read_text())
    update_config(config, yaml.safe_load((REPO / "config/few_step.yaml").read_text()))
    config["check_paths"] = False
    validate(config, SCHEMA)
    check_config(copy.deepcopy(config))
    for strategy, shards in (("cl80dpm25", 50), ("cl80lcm4", 10)):
        assert config["strategies"][strategy]["seeds_from"] == "cl80"
        assert len([j for j in generation_jobs(config) if j[1] == strategy]) == shards
    assert {"real_100+cl80lcm4_100", "real_100+cl80dpm25_100"} <= {r.mix for r in training_runs(config)}
    # cl80 is made at 200% (Figure 3): its row trains on, and is priced by, half of it
    used = generated_images_used(config, config["reports"]["few_step"])
    assert set(used.values()) == {130_000}


def test_the_few_step_target_generates_and_embeds_only_its_own_sets(tmp_path):
    """results/few_step.csv: cl80 and the three faster sets, embedded apart from Table 7's other sets."""
    import re
    import shutil

    from conftest import snakemake

    shutil.copytree(REPO / "config", tmp_path / "config")
    result = snakemake("results/few_step.csv", "-n", "--configfile", "config/config.yaml", "config/few_step.yaml",
                       "--config", "check_paths=False", cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    shards = set(re.findall(r"generate/imagenet100/(\w+)/train/shard~\d+/manifest\.csv", result.stdout))
    assert shards == {"cl80", "cl80dpm25", "cl80lcm4", "cl80deepcache"}
    embeds = set(re.findall(r"^rule (embed_\w+):", result.stdout, re.M))
    assert embeds == {"embed_clip_imagenet100_for_few_step", "embed_clip_imagenet100_texts",
                      "embed_clip_imagenet100_for_few_step_filter_cl80clip_table7"}
