"""Fine-tuning Stable Diffusion (Table 6) on tiny random-weight models: the loss falls, the saved
folder loads and differs from the base, a killed run resumes to the same weights, LoRA loads onto
the base, bad finetune blocks fail at plan time, and the DAG links generation to the job."""

from __future__ import annotations

import copy
import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
import yaml
from PIL import Image

from conftest import REPO, snakemake
from genrobust.config import ConfigError
from genrobust.validation import check_config
from genrobust.demo import models
from genrobust.finetune import FinetuneRecipe
from genrobust.finetune import data as fdata
from genrobust.finetune.loop import Plan, Trainer
from genrobust.finetune.lora import LORA_POINTER
from genrobust.finetune.plan import finetune_output
from genrobust.finetune.run import finetune_model
from genrobust.prompts import clip_class_names

DEMO = yaml.safe_load((REPO / "config/demo.yaml").read_text())
WNIDS = [w for w in (REPO / "config/demo_classes.txt").read_text().split() if w.startswith("n0")][:3]
# A fast recipe: the tiny model at its 64 px, plain AdamW on the CPU, a learning rate that moves
# random weights in a few steps.
FAST = {"base": "sd15", "dataset": "demo10", "resolution": 64, "batch_size": 4, "lr": 1e-3, "optimizer": "adamw",
        "mixed_precision": "fp32", "num_workers": 0, "checkpoint_every": 2}


@pytest.fixture(scope="module")
def tiny_sd(tmp_path_factory):
    return models.build_tiny_sd(tmp_path_factory.mktemp("models") / "sd", seed=0)


@pytest.fixture(scope="module")
def index_csv(tmp_path_factory):
    """A dataset index (path, wnid, label) of 8 drawn images per class, of assorted sizes."""
    root = tmp_path_factory.mktemp("real")
    rng = np.random.default_rng(0)
    rows = []
    for label, wnid in enumerate(WNIDS):
        (root / wnid).mkdir()
        for k in range(8):
            h, w = 64 + 8 * (k % 3), 64 + 16 * (k % 2)
            pixels = (rng.random((h, w, 3)) * 80 + 60 * label).clip(0, 255).astype(np.uint8)
            path = root / wnid / f"{wnid}_{k}.JPEG"
            Image.fromarray(pixels).save(path)
            rows.append((str(path), wnid, label))
    index = root / "train.csv"
    pd.DataFrame(rows, columns=["path", "wnid", "label"]).to_csv(index, index=False)
    return index


@pytest.fixture(autouse=True)
def one_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)  # the same kernels as the CLI subprocess below (--threads 1)
    yield
    torch.set_num_threads(before)


def unet_state(folder: Path) -> dict:
    from diffusers import UNet2DConditionModel

    return UNet2DConditionModel.from_pretrained(folder, subfolder="unet").state_dict()


def read_metrics(folder: Path) -> list[dict]:
    return [json.loads(line) for line in (folder / "metrics.jsonl").read_text().splitlines()]


# ----------------------------------------------------------------------------- data


def test_micro_batches_split_each_global_batch_and_resume_at_an_offset():
    whole = fdata.micro_batches(50, seed=3, epoch=1, batch_size=4, processes=2, rank=0, count=6)
    other = fdata.micro_batches(50, seed=3, epoch=1, batch_size=4, processes=2, rank=1, count=6)
    order = fdata.epoch_order(50, 3, 1)
    for j in range(6):  # micro-batch j = images 8j..8j+7 of the epoch's order, split between ranks
        assert [r for _, r in whole[j]] + [r for _, r in other[j]] == order[8 * j:8 * j + 8].tolist()
    assert fdata.micro_batches(50, 3, 1, 4, 2, 0, count=6, start=4) == whole[4:]
    assert fdata.epoch_order(50, 3, 2).tolist() != order.tolist()


def test_captions_name_each_images_class(index_csv):
    index = fdata.read_captioned_index(index_csv, "a photo of a {}")
    assert len(index) == 24 and len(index.captions) == 3
    assert index.captions[0] == "a photo of a " + clip_class_names([WNIDS[0]])[WNIDS[0]]
    assert index.caption_ids.tolist() == [c for c in range(3) for _ in range(8)]


# ----------------------------------------------------------------------------- training


def test_loss_goes_down_on_a_fixed_batch(tiny_sd):
    recipe = FinetuneRecipe(**{**FAST, "max_steps": 30, "lr_scheduler": "constant", "batch_size": 4})
    trainer = Trainer.create(recipe, str(tiny_sd), None, ["a photo of a tench", "a photo of a goldfish"],
                             Plan.of(recipe, 120, 1), "cpu")
    pixels = torch.rand(4, 3, 64, 64, generator=torch.Generator().manual_seed(0)) * 2 - 1
    captions = torch.tensor([0, 1, 0, 1])
    losses = []
    for _ in range(30):  # the same images, noise and timesteps every step
        losses.append(float(trainer.micro_step(pixels, captions, torch.Generator().manual_seed(1))))
    assert np.mean(losses[-5:]) < 0.7 * np.mean(losses[:5]), losses


def test_full_finetune_writes_a_pipeline_whose_unet_differs_from_the_base(tiny_sd, index_csv, tmp_path):
    from diffusers import StableDiffusionPipeline

    out = tmp_path / "ft"
    record = finetune_model(str(tiny_sd), None, {**FAST, "max_steps": 4}, str(index_csv), str(out),
                            str(tmp_path / "ft.checkpoints"), seed=0)
    pipe = StableDiffusionPipeline.from_pretrained(out)
    base = StableDiffusionPipeline.from_pretrained(tiny_sd)
    changed = [k for k, v in base.unet.state_dict().items() if not torch.equal(v, pipe.unet.state_dict()[k])]
    assert len(changed) > 0.9 * len(base.unet.state_dict())
    for frozen in ("vae", "text_encoder"):  # only the UNet trains
        ours, theirs = getattr(pipe, frozen).state_dict(), getattr(base, frozen).state_dict()
        assert all(torch.equal(v, ours[k]) for k, v in theirs.items())
    metrics = read_metrics(out)
    assert [m["step"] for m in metrics] == [1, 2, 3, 4] and all(np.isfinite(m["loss"]) for m in metrics)
    assert metrics[0]["lr"] == pytest.approx(1e-3) and metrics[-1]["lr"] < metrics[0]["lr"]  # cosine
    run = json.loads((out / "run.json").read_text())
    assert run["steps"] == 4 and run["data"]["images"] == 24 and run["resolved"]["images_per_step"] == 4
    assert run["versions"]["diffusers"] and run["device"] == "cpu" and record["images_per_s"] > 0
    assert not (tmp_path / "ft.checkpoints").exists()  # removed once the model is written


def test_a_killed_run_resumes_from_its_last_checkpoint_to_the_same_weights(tiny_sd, index_csv, tmp_path):
    recipe = {**FAST, "max_steps": 30, "checkpoint_every": 3}
    reference = tmp_path / "uninterrupted"
    finetune_model(str(tiny_sd), None, recipe, str(index_csv), str(reference), str(tmp_path / "ref.ck"), seed=0)

    out, checkpoints = tmp_path / "killed", tmp_path / "killed.checkpoints"
    command = [sys.executable, "-m", "genrobust", "finetune", "--base", str(tiny_sd), "--recipe", json.dumps(recipe),
               "--index", str(index_csv), "--seed", "0", "--checkpoints", str(checkpoints), "--threads", "1",
               "--device", "cpu", "--out", str(out)]
    env = dict(os.environ, PYTHONPATH=str(REPO / "workflow"))
    job = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 120
    while not list(checkpoints.glob("step-*/state.json")) and job.poll() is None and time.time() < deadline:
        time.sleep(0.02)
    job.send_signal(signal.SIGKILL)  # preempted, mid-run
    job.wait()
    assert not out.exists(), "the run finished before it could be killed"
    done = sorted(int(p.parent.name.split("-")[1]) for p in checkpoints.glob("step-*/state.json"))
    assert done and done[-1] % 3 == 0 and done[-1] < 30

    rerun = subprocess.run(command, env=env, capture_output=True, text=True, timeout=300)
    assert rerun.returncode == 0, rerun.stderr[-3000:]
    assert f"(step {done[-1]})" in rerun.stderr
    run = json.loads((out / "run.json").read_text())
    assert run["resumed_from_step"] == done[-1] and run["steps"] == 30
    ours, theirs = unet_state(out), unet_state(reference)
    assert all(torch.equal(v, ours[k]) for k, v in theirs.items())  # bit-identical on the CPU
    assert [m["loss"] for m in read_metrics(out)] == [m["loss"] for m in read_metrics(reference)]


def test_a_checkpoint_of_another_recipe_is_refused(tiny_sd, index_csv, tmp_path):
    checkpoints = tmp_path / "ck"
    finetune_model(str(tiny_sd), None, {**FAST, "max_steps": 2}, str(index_csv), str(tmp_path / "a"),
                   str(checkpoints), seed=0, keep_checkpoints=True)
    assert not list(checkpoints.glob("step-*"))  # no checkpoint at the last step: the model is written
    finetune_model(str(tiny_sd), None, {**FAST, "max_steps": 4, "checkpoint_every": 2}, str(index_csv),
                   str(tmp_path / "b"), str(checkpoints), seed=0, keep_checkpoints=True)
    with pytest.raises(ValueError, match="different fine-tuning run"):
        finetune_model(str(tiny_sd), None, {**FAST, "max_steps": 4, "lr": 5e-4}, str(index_csv),
                       str(tmp_path / "c"), str(checkpoints), seed=0)


def test_lora_weights_load_onto_the_base_pipeline_and_change_its_output(tiny_sd, index_csv, tmp_path):
    from diffusers import StableDiffusionPipeline

    from genrobust.generate.pipelines import load_pipeline

    out = tmp_path / "lora"
    finetune_model(str(tiny_sd), None, {**FAST, "method": "lora", "lr": 1e-2, "lora_rank": 4, "lora_alpha": 8,
                                        "max_steps": 3}, str(index_csv), str(out), str(tmp_path / "ck"), seed=0)
    pointer = json.loads((out / LORA_POINTER).read_text())
    assert pointer["base_id"] == str(tiny_sd) and (pointer["rank"], pointer["alpha"]) == (4, 8)
    assert not (out / "unet").exists()  # the adapter only, not a copy of the base

    def sample(pipe):
        return pipe("a photo of a tench", num_inference_steps=2, height=64, width=64, output_type="np",
                    generator=torch.Generator().manual_seed(0)).images[0]

    pipe = StableDiffusionPipeline.from_pretrained(tiny_sd, safety_checker=None)
    pipe.set_progress_bar_config(disable=True)
    before = sample(pipe)
    pipe.load_lora_weights(out)
    after = sample(pipe)
    assert np.abs(after - before).max() > 1e-3
    # generation loads the LoRA folder as a model id: the base with the adapter fused in
    fused = load_pipeline(str(out), None, "StableDiffusionPipeline", None, "float32", "cpu", False)
    assert np.allclose(sample(fused), after, atol=1e-3)


# ----------------------------------------------------------------------------- config and DAG


def demo_config(edit) -> dict:
    config = copy.deepcopy(DEMO)
    edit(config)
    return config


def block(**values):
    return lambda c: c["models"]["sd15_ft"]["finetune"].update(values)


@pytest.mark.parametrize("edit, message", [
    (block(base="sd99"), "models.sd15_ft.finetune.base: 'sd99' is not one of models"),
    (block(base="sd15_ft"), "models.sd15_ft.finetune.base: 'sd15_ft' is itself fine-tuned"),
    (block(dataset="imagenet7"), "models.sd15_ft.finetune.dataset: 'imagenet7' is not one of datasets"),
    (block(method="dreambooth"), "models.sd15_ft.finetune.method: 'dreambooth' is not full or lora"),
    (block(lr=3.0), "models.sd15_ft.finetune.lr: 3 is outside"),
    (block(caption_template="a photo"), "models.sd15_ft.finetune.caption_template: 'a photo' must hold"),
    (block(batch_size=300, gradient_accumulation_steps=2), "models.sd15_ft.finetune.batch_size: 600 images per "
                                                           "optimizer step"),
    (block(method="lora", use_ema=True), "models.sd15_ft.finetune.use_ema: EMA is for method full"),
    (block(max_steps=5, lr_warmup_steps=5), "models.sd15_ft.finetune.lr_warmup_steps: 5 is not below max_steps"),
    (block(class_names="missing.tsv"), "models.sd15_ft.finetune.class_names: 'missing.tsv' is neither"),
    (lambda c: c["models"]["sd15_ft"].update(id="somewhere/else"), "models.sd15_ft.id: a fine-tuned model's id is"),
    (lambda c: c["models"].update(bare={"revision": None}), "models.bare: give an id"),
    (block(total_batch_size=8, gradient_accumulation_steps=2),
     "models.sd15_ft.finetune.gradient_accumulation_steps: set with total_batch_size"),
    (block(total_batch_size=12, batch_size=8), "models.sd15_ft.finetune.total_batch_size: 12 is not a multiple"),
    (block(total_batch_size=400, batch_size=100), "models.sd15_ft.finetune.batch_size: 400 images per optimizer step"),
])
def test_bad_finetune_blocks_fail_at_plan_time_naming_the_key(monkeypatch, edit, message):
    monkeypatch.chdir(REPO)
    with pytest.raises(ConfigError) as err:
        check_config(demo_config(edit))
    assert str(err.value).startswith(message.split(":")[0]) and message in str(err.value)


def test_8bit_adam_without_bitsandbytes_fails_the_plan_of_a_run(monkeypatch):
    import importlib.util

    monkeypatch.chdir(REPO)
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "bitsandbytes" else real(name, *a))
    with pytest.raises(ConfigError, match="models.sd15_ft.finetune.optimizer: adamw8bit needs bitsandbytes"):
        check_config(demo_config(block(optimizer="adamw8bit")))


def test_a_fine_tuned_models_id_is_its_output_folder(monkeypatch):
    monkeypatch.chdir(REPO)
    config = demo_config(lambda c: None)
    check_config(config)
    assert config["models"]["sd15_ft"]["id"] == finetune_output(config, "sd15_ft") == "results/demo/finetune/sd15_ft"


def test_dry_run_links_the_strategy_to_the_finetune_job(workdir):
    target = "results/demo/generate/demo10/cl80ft/train/manifest.csv"
    result = snakemake(target, "-n", "-p", "--configfile", "config/demo.yaml", cwd=workdir)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "rule finetune_model:" in result.stdout and "finetune --base results/demo/models/sd" in result.stdout
    shard = result.stdout[result.stdout.index("rule generate_shard:"):]
    assert "results/demo/finetune/sd15_ft" in shard.split("output:")[0]  # an input of the shard
    # the paper's published checkpoint instead: no fine-tuning job at all
    config = yaml.safe_load((workdir / "config/demo.yaml").read_text())
    config["models"]["sd15_ft"] = {"id": "hbXNov/ucla-mint-finetune-sd-im1k", "revision": None}
    (workdir / "config/published.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
    result = snakemake(target, "-n", "--configfile", "config/published.yaml", cwd=workdir)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "finetune_model" not in result.stdout and "generate_shard" in result.stdout


def test_full_config_table6_runs_one_finetuning_job_with_the_papers_recipe(workdir):
    """(The target's trainings and generated sets are counted with the other reports' in
    test_workflow.TARGET_PLANS.)"""
    result = snakemake("results/table6.csv", "-n", "-p", "--config", "check_paths=False", cwd=workdir)
    assert result.returncode == 0, result.stderr[-3000:]
    stats = result.stdout[result.stdout.rindex("Job stats:"):]
    counts = {m[1]: int(m[2]) for m in re.finditer(r"^(\w+)\s+(\d+)$", stats, re.M)}
    assert counts["finetune_model"] == 1
    command = next(line for line in result.stdout.splitlines() if " finetune --base " in line)
    recipe = json.loads(command.split("--recipe ")[1].split(" --index")[0].strip("'"))
    assert command.split("--base ")[1].startswith("stable-diffusion-v1-5/stable-diffusion-v1-5")
    paper = {"epochs": 1, "lr": 1e-6, "lr_scheduler": "cosine", "lr_warmup_steps": 0, "optimizer": "adamw8bit",
             "use_ema": False, "gradient_checkpointing": False, "resolution": 512, "max_grad_norm": 1.0,
             "adam_weight_decay": 1e-2, "adam_beta1": 0.9, "adam_beta2": 0.999, "adam_epsilon": 1e-8,
             "method": "full", "dataset": "imagenet1k"}
    assert {k: recipe[k] for k in paper} == paper
    # The run's own record (params.txt of hbXNov/ucla-mint-finetune-sd-im1k), not the script's defaults.
    record = {"center_crop": True, "random_flip": True, "batch_size": 1, "total_batch_size": 4,
              "gradient_accumulation_steps": 1, "mixed_precision": "bf16", "allow_tf32": False}
    assert {k: recipe[k] for k in record} == record
    config = (REPO / "config/config.yaml").read_text()
    assert "params.txt in hbXNov/ucla-mint-finetune-sd-im1k" in config  # the source, cited beside it
    assert "--index results/index/imagenet1k/train.csv" in command


def test_a_total_batch_is_the_same_on_any_gpu_count_that_divides_it():
    from genrobust.finetune.recipe import FinetuneRecipe

    recipe = FinetuneRecipe(base="sd15", dataset="d", batch_size=1, total_batch_size=4)
    assert [recipe.accumulation(gpus) for gpus in (1, 2, 4)] == [4, 2, 1]
    with pytest.raises(ValueError, match="finetune.total_batch_size: 4 images per step is not a whole number"):
        recipe.accumulation(8)
    assert FinetuneRecipe(base="sd15", dataset="d", gradient_accumulation_steps=3).accumulation(2) == 3


# ----------------------------------------------------------------------------- benchmark


def test_benchmark_finetune_on_a_tiny_model(tiny_sd, tmp_path):
    from genrobust.benchmark.finetune import build_parser, run

    out = tmp_path / "bench.json"
    args = build_parser().parse_args(["--tiny", str(tiny_sd), "--device", "cpu", "--size", "64", "--batch-size", "2",
                                      "--steps", "2", "--warmup-steps", "1", "--optimizer", "adamw",
                                      "--json-out", str(out)])
    assert run(args) == 0
    results = {r["method"]: r for r in json.loads(out.read_text())}
    assert set(results) == {"full", "lora"} and all(r["images_per_s"] > 0 for r in results.values())
    assert 0 < results["lora"]["trained_parameters"] < results["full"]["trained_parameters"] / 10
    assert results["full"]["imagenet_epoch_hours"] == pytest.approx(1_281_167 / results["full"]["images_per_s"] / 3600)
