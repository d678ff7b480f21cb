"""The offline demo through Snakemake, end to end: config/demo.yaml, then the beyond-the-paper
overlay config/demo_beyond.yaml on the finished demo (make demo, make demo-beyond)."""

from __future__ import annotations

import json
import math
import shutil
import time

import numpy as np
import pandas as pd
import pytest
import yaml
from PIL import Image

from conftest import REPO, figure_warnings, snakemake
from genrobust import io
from test_workflow import job_counts


@pytest.fixture(scope="module")
def finished_demo(tmp_path_factory):
    """A working directory in which the demo has run through Snakemake (once for this module)."""
    workdir = tmp_path_factory.mktemp("demo")
    shutil.copytree(REPO / "config", workdir / "config")
    start = time.time()
    result = snakemake("--profile", str(REPO / "workflow/profiles/demo"), cwd=workdir, timeout=1200)
    elapsed = time.time() - start
    assert result.returncode == 0, (result.stdout + result.stderr)[-5000:]
    print(f"demo through Snakemake: {elapsed:.0f} s")
    return workdir


@pytest.mark.slow
def test_demo_runs_end_to_end(finished_demo):
    workdir = finished_demo
    out = workdir / "results" / "demo"
    demo = yaml.safe_load((workdir / "config/demo.yaml").read_text())
    assert figure_warnings(out) == []

    # Generation: every planned image is in the manifest and on disk, with its seed and prompt.
    classes = io.read_lines(workdir / "config/demo_classes.txt")
    per_class = demo["demo"]["train_per_class"]
    n_real = per_class * len(classes)  # the real train set; every generated train set is as large
    for split, n_per_class in (("train", per_class), ("val", 10)):
        manifest = pd.read_csv(out / f"generate/demo10/cl80/{split}/manifest.csv")
        assert len(manifest) == n_per_class * len(classes) and manifest["id"].is_unique
        assert manifest.groupby("wnid").size().to_dict() == {w: n_per_class for w in classes}
        assert all((out / f"generate/demo10/cl80/{split}" / p).is_file() for p in manifest["path"])
        assert manifest["seed"].is_unique and (manifest["prompt"] != "").all()

    # Every other strategy and baseline, as many as the real images: class-conditioned ones as many per
    # class, image-conditioned ones one per real train image.
    strategies = ("photo", "rendition", "ldm", "img2img", "variation", "deepaugment", "pixmix")
    for strategy in strategies:
        manifest = pd.read_csv(out / f"generate/demo10/{strategy}/train/manifest.csv")
        assert manifest.groupby("wnid").size().to_dict() == {w: per_class for w in classes}, strategy
        assert all((out / f"generate/demo10/{strategy}/train" / p).is_file() for p in manifest["path"])
        summary = json.loads((out / f"generate/demo10/{strategy}/train/summary.json").read_text())
        assert summary["images"] == n_real and summary["per_class"]["min"] == per_class
    photo = pd.read_csv(out / "generate/demo10/photo/train/manifest.csv")
    assert photo["prompt"].str.startswith("a photo of a ").all()
    assert (out / "figure6_demo10.png").read_bytes()[:4] == b"\x89PNG"

    # One beton per source; mixtures are exact row lists of their sources.
    for source in ("real", "cl80") + strategies:
        assert len(pd.read_csv(out / f"beton/demo10/train/{source}.csv")) == n_real, source
        assert (out / f"beton/demo10/train/{source}.beton").is_file()
    half = n_real // 2
    for mix, n in {"real_100": {"real": n_real}, "cl80_100": {"cl80": n_real},
                   "real_100+cl80_100": {"real": n_real, "cl80": n_real}, "real_50+cl80_50": {"real": half, "cl80": half},
                   "real_100+pixmix_100": {"real": n_real, "pixmix": n_real}}.items():
        rows = pd.read_csv(out / f"mix/demo10/mix~{mix}.csv")
        assert rows.groupby("source").size().to_dict() == n and not rows.duplicated().any()

    # Training wrote one metrics line per epoch; evaluation scored val on R's and ObjectNet's classes.
    run = out / "train/demo10/mix~real_100/arch~resnet18/seed~0"
    epochs = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert [e["epoch"] for e in epochs] == list(range(demo["datasets"]["demo10"]["recipe"]["epochs"]))
    record = json.loads((run / "run.json").read_text())  # the resolved recipe beside the metrics
    assert record["recipe"] == demo["datasets"]["demo10"]["recipe"] and record["train_rows"] == n_real
    evaluation = json.loads((out / "eval/demo10/mix~real_100/arch~resnet18/seed~0/evaluation.json").read_text())
    assert set(evaluation) == {"meta", "imagenet_val", "sketch", "imagenet_r", "imagenet_v2", "objectnet", "imagenet_c"}
    assert set(evaluation["imagenet_c"]["per_corruption"]) == {"gaussian_noise", "motion_blur", "contrast"}
    val = evaluation["imagenet_val"]
    assert set(val["id_subsets"]) == {"imagenet_r", "objectnet"} and val["n"] == 100
    assert val["top1"] > 0.2, "the real-data model should learn the drawn classes well above chance (10%)"

    # Table 1 in the paper's layout, and Figure 2.
    table = pd.read_csv(out / "table1.csv", index_col=0)
    assert list(table.index) == ["Generated Data", "Real + Generated Data"]  # the paper's: no real-only row
    assert list(table.columns) == ["ImageNet-Sketch", "ImageNet-R", "ImageNet-V2", "ObjectNet", "Average"]
    assert all(math.isfinite(v) for v in table.to_numpy().ravel())
    assert table.loc["Generated Data", "Average"] == pytest.approx(table.loc["Generated Data"].iloc[:4].mean(),
                                                                   abs=0.02)
    fit = pd.read_csv(out / "table1_er_fit.csv").set_index("test_set")  # the line ER is measured against
    n_reference = len(demo["datasets"]["demo10"]["reference"]["mixtures"])
    assert fit.loc["sketch", "n_reference_runs"] == n_reference and fit.loc["sketch", "n_reference_published"] == 0
    table9 = pd.read_csv(out / "table9.csv", index_col=0)  # ImageNet-C severity 5, mean over corruptions
    assert list(table9.index) == ["Real Data", "Generated Data", "Real Data + Generated Data"]
    assert table9.loc["Real Data", "Accuracy (%)"] == pytest.approx(
        100 * evaluation["imagenet_c"]["mean_corruption_top1"], abs=0.01)
    for name, rows in (("table3", 5), ("table4", 6)):  # accuracy per shift set, the paper's rows
        table = pd.read_csv(out / f"{name}.csv", index_col=0)
        assert len(table) == rows and table.index[0].startswith("Real") and "Average" in table.columns
        assert all(math.isfinite(v) for v in table.to_numpy().ravel())
    assert table.loc["+ Generated data via Real images and Class labels", "Im-Sketch-10"] == pytest.approx(
        100 * json.loads((out / "eval/demo10/mix~real_100+img2img_100/arch~resnet18/seed~0/evaluation.json")
                         .read_text())["sketch"]["top1"], abs=0.01)
    grid = pd.read_csv(out / "figure3.csv")  # 2 x 2 cells x (accuracy, ER) x (4 sets + average)
    assert len(grid) == 2 * 2 * 2 * 5 and set(grid["real_percent"]) == {50, 100}
    budget = pd.read_csv(out / "figure11.csv")
    assert sorted(set(budget["generated_share"])) == [0, 0.5, 1]
    curves = pd.read_csv(out / "figure12.csv")
    epochs = demo["datasets"]["demo10"]["recipe"]["epochs"]
    assert curves.groupby("Training data").size().to_dict() == {"Real": epochs, "Real + Generated": epochs}
    png = (out / "figure2.png").read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 10_000

    # The analysis tables (metrics.smk): per-class FID, classifiers on real vs generated val, CLIP diversity.
    table2 = pd.read_csv(out / "table2.csv", index_col=0)
    assert list(table2.index) == ["Real Data", "Generated Data"]
    assert list(table2.columns) == ["Im-Sketch", "Im-R", "Im-V2", "ObjectNet"] and (table2.to_numpy() > 0).all()
    table5 = pd.read_csv(out / "table5.csv", index_col=0)
    assert list(table5.index) == list(demo["reports"]["table5"]["classifiers"])
    for real, generated, gap in (("Real", "Generated", "Gap"), ("Filtered Real", "Filtered Generated", "Filtered Gap")):
        assert all(g == pytest.approx(b - a, abs=0.02) for a, b, g in zip(table5[real], table5[generated], table5[gap]))
    # the trained model scored per image by the metrics stage agrees with its evaluation (one scorer)
    assert table5.loc["ResNet-18 (Real Data)", "Real"] == pytest.approx(100 * val["top1"], abs=0.01)
    table7 = pd.read_csv(out / "table7.csv", index_col=0)
    assert list(table7.columns) == list(demo["reports"]["table7"]["sources"])
    assert table7.loc["Images", "Real"] == n_real and 0 <= table7.loc["Diversity (CLIP)", "Real"] <= 2
    gate = json.loads((out / "generate/demo10/cl80clip/train/summary.json").read_text())
    assert gate["kept"] + gate["dropped"] == n_real and table7.loc["Images"].iloc[-1] == gate["kept"]
    assert (out / "generated_scatter.png").read_bytes()[:4] == b"\x89PNG"

    # Everything is up to date: a second run has nothing to do.
    again = snakemake("-n", "--profile", str(REPO / "workflow/profiles/demo"), cwd=workdir)
    assert "Nothing to be done" in again.stdout + again.stderr

    # A strategy and a report added to the finished study train only the new mixture.
    added = yaml.safe_load((workdir / "config/demo.yaml").read_text())
    added["strategies"]["cl80b"] = {**added["strategies"]["cl80"], "guidance": 2.0}
    added["datasets"]["demo10"]["generate"]["cl80b"] = {"train_per_class": 40, "train_shards": 1, "val_shards": 0}
    added["reports"]["guidance"] = {**added["reports"]["table3"], "rows": {"Real": "real_100", "+ cl80b": "real_100+cl80b_100"}}
    (workdir / "config/added.yaml").write_text(yaml.safe_dump(added, sort_keys=False))
    plan = snakemake("-n", "--profile", str(REPO / "workflow/profiles/demo"), "--configfile", "config/added.yaml",
                     cwd=workdir)
    assert plan.returncode == 0, plan.stderr[-3000:]
    counts = job_counts(plan.stdout)
    assert counts["train_classifier"] == 1 and counts["generate_shard"] == 1, counts
    assert "mix~real_100+cl80b_100" in plan.stdout and "write_val_beton" not in counts
    # no existing report is rebuilt; the sample sheet of the dataset's strategies gains a column
    assert {k for k in counts if k.startswith("make_")} == {"make_guidance", "make_contact_sheet"}

    # The HTML report of the finished demo: every table rendered, every figure, the description.
    from test_html_report import check_html_report

    check_html_report(workdir, demo, "--profile", str(REPO / "workflow/profiles/demo"))


def merged_config(workdir, *files: str) -> dict:
    """The config Snakemake plans from overlaid configfiles (dicts merged key by key), planned."""
    from snakemake.utils import update_config, validate

    from genrobust.validation import check_config

    config: dict = {}
    for name in files:
        update_config(config, yaml.safe_load((workdir / name).read_text()))
    validate(config, str(REPO / "workflow/schemas/config.schema.yaml"))
    check_config(config)
    return config


@pytest.mark.slow
def test_beyond_the_paper_overlay_runs_only_its_new_jobs(finished_demo, monkeypatch):
    """config/demo_beyond.yaml over the finished demo (make demo-beyond): the guidance curve, the
    diversity-vs-ER scatter, the scaling study and the prompt families, reusing every demo job."""
    workdir = finished_demo
    monkeypatch.chdir(workdir)
    from genrobust.config import training_runs

    demo = merged_config(workdir, "config/demo.yaml")
    beyond = merged_config(workdir, "config/demo.yaml", "config/demo_beyond.yaml")
    new_runs = set(training_runs(beyond)) - set(training_runs(demo))
    assert {r.mix for r in new_runs} == {"real_100+cl80g2_100", "real_100+background_100", "real_100+cl80lcm_100",
                                         "real_100+llmcaptions_100", "cl80_50", "real_100+cl80_100+sepbn",
                                         "cl80copy_100"}
    start = time.time()
    result = snakemake("--profile", str(REPO / "workflow/profiles/demo"), "--configfile", "config/demo.yaml",
                       "config/demo_beyond.yaml", cwd=workdir, timeout=900)
    assert result.returncode == 0, (result.stdout + result.stderr)[-5000:]
    print(f"demo_beyond overlay through Snakemake: {time.time() - start:.0f} s")
    counts = job_counts(result.stdout + result.stderr)
    assert counts["train_classifier"] == counts["evaluate_model"] == len(new_runs), counts  # nothing retrained
    out = workdir / "results" / "demo"

    # The guidance sweep: cl80 at 2 is cl80 with only the guidance changed (the same seeds, the same prompts).
    cl80 = pd.read_csv(out / "generate/demo10/cl80/train/manifest.csv")
    low = pd.read_csv(out / "generate/demo10/cl80g2/train/manifest.csv")
    paired = cl80.merge(low, on=["wnid", "k"], suffixes=("", "_low"))
    assert len(paired) == len(cl80) == len(low)
    assert (paired["seed"] == paired["seed_low"]).all() and (paired["prompt"] == paired["prompt_low"]).all()
    assert set(paired["guidance"]) == {7.5} and set(paired["guidance_low"]) == {2}
    guidance = pd.read_csv(out / "guidance.csv", index_col=0)
    assert list(guidance["Guidance"]) == [2, 7.5] and list(guidance["Strategy"]) == ["cl80g2", "cl80"]
    table1 = pd.read_csv(out / "table1.csv", index_col=0)  # the same run against the same reference line
    assert guidance.loc["guidance 7.5, real+generated", "Effective robustness, average (%)"] == pytest.approx(
        table1.loc["Real + Generated Data", "Average"], abs=0.02)

    # The strategies side by side: each row's diversity is Table 7's measure of the same images.
    scatter = pd.read_csv(out / "diversity_er.csv", index_col=0)
    assert list(scatter.index) == list(beyond["reports"]["diversity_er"]["rows"])
    table7 = pd.read_csv(out / "table7.csv", index_col=0)
    assert scatter.loc["Class labels (80 templates)", "CLIP diversity"] == pytest.approx(
        table7.loc["Diversity (CLIP)", "Generated (Class Labels)"], abs=1e-3)
    correlation = pd.read_csv(out / "diversity_er_correlation.csv", index_col=0)
    assert (correlation["rows"] == len(scatter)).all() and correlation["pearson_r"].between(-1, 1).all()

    # Separate BatchNorm (+sepbn): the same rows as Table 1's run, trained with their own recipe setting.
    runs = out / "train/demo10"
    shared = json.loads((runs / "mix~real_100+cl80_100/arch~resnet18/seed~0/run.json").read_text())
    split = json.loads((runs / "mix~real_100+cl80_100+sepbn/arch~resnet18/seed~0/run.json").read_text())
    assert split["recipe"] == {**shared["recipe"], "generated_bn": "separate"} and "generated_bn" not in shared["recipe"]
    assert (split["train_rows"], split["train_rows_sha1"]) == (shared["train_rows"], shared["train_rows_sha1"])
    separate = pd.read_csv(out / "separate_bn.csv", index_col=0)
    assert list(separate.index) == list(beyond["reports"]["separate_bn"]["rows"])
    assert separate.loc["Real + Generated (shared BN)", "Average"] == pytest.approx(
        table1.loc["Real + Generated Data", "Average"], abs=0.02)

    # The scaling study's points, and the prompt families' prompts and CLIP measures.
    scaling = pd.read_csv(out / "scaling.csv")
    assert set(scaling["generated_percent"]) == {0, 50, 100}
    assert set(scaling["series"]) == {"real only", "generated only", "real + generated"}
    from genrobust.prompts import PLACES

    background = pd.read_csv(out / "generate/demo10/background/train/manifest.csv")
    assert background["prompt"].map(lambda p: any(p.endswith(" " + place) for place in PLACES)).all()
    hypernym = pd.read_csv(out / "generate/demo10/hypernym/train/manifest.csv")
    assert hypernym["prompt"].str.contains(", a kind of ").all()
    families = pd.read_csv(out / "prompt_families.csv", index_col=0)
    assert families.loc["Images", "Hypernym family"] == len(hypernym)

    # Prompts from files: a class's LLM captions, and each real image's own caption (Real-Fake).
    class_captions = pd.read_csv(workdir / "config/demo_captions.csv").groupby("wnid")["caption"].agg(set)
    llm = pd.read_csv(out / "generate/demo10/llmcaptions/train/manifest.csv")
    assert all(prompt in class_captions[wnid] for prompt, wnid in zip(llm["prompt"], llm["wnid"]))
    assert llm["caption_source"].str.startswith("config/demo_captions.csv#").all()
    image_captions = pd.read_csv(out / "data/imagenet/train_captions.csv").set_index("path")["caption"]
    blip = pd.read_csv(out / "generate/demo10/blipcaptions/train/manifest.csv")
    assert len(blip) == 10 * len(class_captions)  # sources_per_class 10
    assert all(prompt.endswith(", " + image_captions[source]) for prompt, source in zip(blip["prompt"],
                                                                                       blip["caption_source"].str.split("#").str[-1]))
    # Few-step generation: cl80's prompts and seeds through the fused adapter at 1 step, its cost measured.
    few = pd.read_csv(out / "generate/demo10/cl80lcm/train/manifest.csv")
    paired = cl80.merge(few, on=["wnid", "k"], suffixes=("", "_few"))
    assert len(paired) == len(cl80) and (paired["prompt"] == paired["prompt_few"]).all()
    assert set(few["scheduler"]) == {"LCMScheduler"} and set(few["steps"]) == {1}
    assert few["adapter"].str.contains("few_step_lora").all() and "adapter" not in cl80.columns
    frontier = pd.read_csv(out / "few_step.csv", index_col=0)
    assert list(frontier.index) == list(beyond["reports"]["few_step"]["rows"])
    summaries = {s: json.loads((out / f"generate/demo10/{s}/train/summary.json").read_text()) for s in ("cl80", "cl80lcm")}
    hours = frontier["Generation hours"]
    assert hours.iloc[2] == pytest.approx(summaries["cl80lcm"]["generation_hours"], rel=1e-3)  # 100%: the whole set
    assert hours.iloc[0] == pytest.approx(summaries["cl80"]["generation_hours"], rel=1e-3)
    assert hours.iloc[2] < hours.iloc[0] / 2  # a sixth of cl80's UNet passes (timings on a shared CPU vary)
    assert list(frontier["Generated on"].unique()) == ["cpu"] and frontier["On the ER front"].iloc[2]
    assert frontier.loc["Few-step LoRA, 1 LCM step", "Sampler"].startswith("LCMScheduler, 1 steps, adapter")
    assert frontier.loc["PNDM, 3 steps", "Effective robustness, average (%)"] == pytest.approx(
        table1.loc["Real + Generated Data", "Average"], abs=0.02)
    # A shared set: cl80 exported (parquet, WebDataset, card, sha256) and imported back as cl80copy,
    # whose run is the cl80 run bit for bit (the same pixels, rows, labels and seed).
    import torch

    from genrobust.share.formats import verify_checksums

    exported = out / "export/demo10/cl80"
    assert verify_checksums(exported) == 4 and "license: creativeml-openrail-m" in (exported / "README.md").read_text()
    copy = pd.read_csv(out / "generate/demo10/cl80copy/train/manifest.csv")
    assert copy["id"].tolist() == cl80["id"].tolist() and (copy["seed"] == cl80["seed"]).all()
    for a, b in zip(cl80["path"], copy["path"]):
        assert np.array_equal(np.asarray(Image.open(out / "generate/demo10/cl80/train" / a)),
                              np.asarray(Image.open(out / "generate/demo10/cl80copy/train" / b)))
    weights = {mix: torch.load(runs / f"mix~{mix}/arch~resnet18/seed~0/model.pt", weights_only=False)["state_dict"]
               for mix in ("cl80_100", "cl80copy_100")}
    assert weights["cl80_100"].keys() == weights["cl80copy_100"].keys()
    assert all(torch.equal(weights["cl80_100"][k], weights["cl80copy_100"][k]) for k in weights["cl80_100"])
    shared_set = pd.read_csv(out / "shared_set.csv", index_col=0)
    assert (shared_set.iloc[0] == shared_set.iloc[1]).all()
    for figure in ("guidance", "diversity_er", "scaling", "prompt_families", "few_step"):
        assert (out / f"{figure}.png").read_bytes()[:4] == b"\x89PNG", figure

    again = snakemake("-n", "--profile", str(REPO / "workflow/profiles/demo"), "--configfile", "config/demo.yaml",
                      "config/demo_beyond.yaml", cwd=workdir)
    assert "Nothing to be done" in again.stdout + again.stderr

    # A set added to a CLIP table re-runs its embedding group (linking the cached features back), but
    # not the CLIP filter of another source, whose betons and runs would follow.
    more = {"reports": {"prompt_families": {"sources": {"LDM": "ldm"}}}}  # not embedded yet
    (workdir / "config/more.yaml").write_text(yaml.safe_dump(more))
    plan = snakemake("-n", "--profile", str(REPO / "workflow/profiles/demo"), "--configfile", "config/demo.yaml",
                     "config/demo_beyond.yaml", "config/more.yaml", cwd=workdir)
    counts = job_counts(plan.stdout)
    embeds = {rule: n for rule, n in counts.items() if rule.startswith("embed_")}
    assert embeds == {"embed_clip_demo10_for_prompt_families": 1} and "filter_generated" not in counts, counts


@pytest.mark.slow
def test_the_demo_builds_what_config_says_it_does(finished_demo):
    """config.DEMO_BUILDS (what a path under the demo's folders may name) is what the demo made."""
    from genrobust.config import DEMO_BUILDS

    demo = yaml.safe_load((finished_demo / "config/demo.yaml").read_text())["demo"]
    for part, built in DEMO_BUILDS.items():
        root = finished_demo / demo[part]
        assert all((root / b).exists() for b in built), [b for b in built if not (root / b).exists()]
        tops = {p.name for p in root.iterdir()}
        assert tops == {b.split("/")[0] for b in built}, tops
