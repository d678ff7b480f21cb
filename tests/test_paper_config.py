"""config/config.yaml against the paper and its code: the settings a review found departing."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
import yaml

from genrobust import classifiers, datasets
from genrobust.generate.spec import schema_defaults

ROOT = Path(__file__).resolve().parents[1]
CONFIG = yaml.safe_load((ROOT / "config" / "config.yaml").read_text())
SCHEMA = yaml.safe_load((ROOT / "workflow" / "schemas" / "config.schema.yaml").read_text())


def test_single_template_strategies_have_no_full_stop():
    """The paper's code prompts f'a photo of a {x}' (no full stop), and so its rendition run."""
    assert CONFIG["strategies"]["photo"]["templates"] == ["a photo of a {}"]
    assert CONFIG["strategies"]["rendition"]["templates"] == ["a rendition of a {}"]


@pytest.mark.parametrize("report", ["table1", "table3", "figure11"])
def test_architectures_are_torchvisions(report):
    """ffcv-imagenet and the paper build torchvision models; the names must resolve there."""
    for arch in CONFIG["reports"][report]["archs"]:
        with torch.device("meta"):
            model = classifiers.create_model(arch, 100)
        assert type(model).__module__.startswith("torchvision."), arch
        assert classifiers.classifier_head(model).out_features == 100


def test_imagenet_c_mean_over_the_15_standard_corruptions_whole_image():
    spec = CONFIG["test_sets"]["imagenet_c"]
    assert spec["corruptions"] == list(datasets.IMAGENET_C_CORRUPTIONS) and spec["severities"] == [5]
    assert CONFIG["evaluation"]["test_set_crop_ratio"] == {"imagenet_c": 1.0}
    assert CONFIG["evaluation"]["crop_ratio"] == 0.875 and CONFIG["evaluation"]["res"] == 256


def test_training_data_at_the_papers_resolution():
    """ffcv-imagenet's train_500_0.50_90 for the real data; SD's 512 px output kept as generated."""
    paper = {"max_resolution": 500, "jpeg_quality": 90, "compress_probability": 0.5}
    beton = SCHEMA["properties"]["datasets"]["additionalProperties"]["properties"]["beton"]
    assert beton["default"] == paper
    assert all(d.get("beton", paper) == paper for d in CONFIG["datasets"].values())
    assert schema_defaults()["save_size"] == 512
    assert all(s.get("save_size", 512) >= 500 for s in CONFIG["strategies"].values())


def test_the_class_label_strategies_sample_as_the_paper_once_defaults_are_filled(monkeypatch):
    """config.yaml states only what differs from the schema's defaults: filled, the paper's SD v1.5
    sampling (PNDM, 50 steps, guidance 7.5, 512 px at fp16, JPEG 95, no safety checker)."""
    from genrobust.validation import load_config

    monkeypatch.chdir(ROOT)
    config = load_config(["config/config.yaml"], {"check_paths": False})
    paper = {"pipeline": "StableDiffusionPipeline", "scheduler": "PNDMScheduler", "steps": 50, "guidance": 7.5,
             "height": 512, "width": 512, "dtype": "float16", "save_size": 512, "jpeg_quality": 95,
             "safety_checker": False, "class_names": "clip"}
    for name in ("cl80", "photo", "cl80ft", "rendition"):
        assert {k: config["strategies"][name][k] for k in paper} == paper, name
    assert (config["strategies"]["ldm"]["steps"], config["strategies"]["ldm"]["guidance"]) == (20, 3.0)
    finetune = config["models"]["sd15_ft"]["finetune"]
    assert (finetune["lr_scheduler"], finetune["optimizer"], finetune["resolution"]) == ("cosine", "adamw8bit", 512)


def test_in100_tables_use_the_papers_headers_and_labels():
    headers = {"imagenet_val": "Im-100", "sketch": "Im-Sketch-100", "imagenet_r": "Im-R-100",
               "imagenet_v2": "Im-V2-100", "objectnet": "Obj-100"}
    for table in ("table3", "table4"):
        assert CONFIG["reports"][table]["column_names"] == headers
    assert "+ Class Conditioned LDM (DiT-XL/2 stand-in)" in CONFIG["reports"]["table3"]["rows"]


# What each analysis table's target plans on the full config (metrics.smk): it trains only its own
# runs, generates only the sets it reads, and embeds each of them once, in one job per extractor and
# set of reports that need them (Table 7's cl80 also feeds the CLIP filter: a job of its own).
METRIC_TARGET_PLANS = {
    # FID: IN-1K real and cl80 train vs the 4 shift sets; nothing trained or evaluated
    "table2": {"train_classifier": 0, "evaluate_model": 0, "embed_inception_imagenet1k": 1, "embed_inception_test": 1,
               "predict_timm": 0, "predict_run": 0, "train_shards": 500, "val_shards": 0},
    # Table 5: ResNeXt-101 on real and real + cl80 (x 3 seeds), 3 timm models, zero-shot from the CLIP features
    "table5": {"train_classifier": 6, "evaluate_model": 0, "embed_clip_imagenet1k": 1, "predict_timm": 3,
               "predict_run": 6, "train_shards": 500, "val_shards": 20},
    # Table 7: CLIP on IN-100 real + the Table 4 sets + the clip_filtered gate (filtered from cl80's features)
    "table7": {"train_classifier": 0, "evaluate_model": 0, "embed_clip_imagenet100_for_table7": 1,
               "embed_clip_imagenet100_for_filter_cl80clip_table7": 1, "embed_clip_imagenet100_texts": 1,
               "filter_generated": 1,
               "predict_timm": 0, "train_shards": 300, "val_shards": 0},
}


@pytest.mark.parametrize("target", sorted(METRIC_TARGET_PLANS))
def test_analysis_table_targets_plan_only_what_they_need(tmp_path, target):
    import re
    import shutil

    from conftest import snakemake

    shutil.copytree(ROOT / "config", tmp_path / "config")
    result = snakemake(f"results/{target}.csv", "-n", "--config", "check_paths=False", cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    stats = result.stdout[result.stdout.rindex("Job stats:"):]
    counts = {m[1]: int(m[2]) for m in re.finditer(r"^(\w+)\s+(\d+)$", stats, re.M)}
    for key, expected in METRIC_TARGET_PLANS[target].items():
        if key.endswith("_shards"):
            split = key.split("_")[0]
            planned = len(set(re.findall(rf"generate/\w+/\w+/{split}/shard~\d+/manifest\.csv", result.stdout)))
            assert planned == expected, (key, planned)
        else:
            assert counts.get(key, 0) == expected, (key, counts)
    assert not {k for k in counts if k.startswith("embed_")} - {k for k in METRIC_TARGET_PLANS[target]}


def test_the_beyond_overlays_guidance_and_diversity_reports_plan_on_the_full_study(monkeypatch):
    import copy

    from snakemake.utils import validate

    from genrobust.config import generation_jobs, training_runs

    from genrobust.validation import check_config

    monkeypatch.chdir(ROOT)
    config = copy.deepcopy(CONFIG)
    config["check_paths"] = False
    beyond = yaml.safe_load((ROOT / "config" / "beyond.yaml").read_text())
    for name in ("guidance", "diversity_er"):
        config["reports"][name] = beyond["reports"][name]
    validate(config, str(ROOT / "workflow" / "schemas" / "config.schema.yaml"))
    check_config(config)
    scales = config["reports"]["guidance"]["guidance_strategies"]
    assert scales == {"1.5": "cl80g1p5", "2": "cl80g2", "4": "cl80g4", "7.5": "cl80"}
    shards = config["datasets"]["imagenet100"]["generate"]["cl80"]["train_shards"]
    for derived in ("cl80g1p5", "cl80g2", "cl80g4"):
        jobs = [j for j in generation_jobs(config) if j[1] == derived]
        assert len(jobs) == shards and {j[2] for j in jobs} == {"train"}  # no val set for a sweep
    mixes = {r.mix for r in training_runs(config) if r.dataset == "imagenet100"}
    assert {"cl80g2_100", "real_100+cl80g2_100", "cl80_100", "real_100+cl80g1p5_100"} <= mixes


def test_the_benchmarks_overlay_is_valid_config():
    from snakemake.utils import validate

    config = {**CONFIG, **yaml.safe_load((ROOT / "config" / "benchmarks.yaml").read_text())}
    validate(config, str(ROOT / "workflow" / "schemas" / "config.schema.yaml"))
    assert set(config["benchmarks"]) == {"generation", "finetune", "training"}
