"""The workflow through Snakemake: full-scale dry-runs, lint, report targets (the demo end to end:
test_demo_e2e.py)."""

from __future__ import annotations

import re
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from conftest import REPO, snakemake

FULL = yaml.safe_load((REPO / "config/config.yaml").read_text())


def job_counts(output: str) -> dict[str, int]:
    stats = output[output.rindex("Job stats:"):]
    return {m[1]: int(m[2]) for m in re.finditer(r"^(\w+)\s+(\d+)$", stats, re.M)}


def expected_full_counts() -> dict[str, int]:
    """The paper's grid (docs/paper.md), counted by hand."""
    shards = sum(g[f"{split}_shards"] for d in FULL["datasets"].values()
                 for s, g in d.get("generate", {}).items() for split in ("train", "val")
                 if FULL["strategies"][s]["kind"] != "clip_filtered")  # filtered from cl80's images: no shards
    table1 = 3 * 5 * 3       # real / generated / real + generated x 5 archs x 3 seeds (Table 9, Figure 12 reuse them)
    figure11 = 3 * 1 * 3     # 5 generated shares (0 and 1 are Table 1's) x ResNeXt-50 x 3 seeds
    # IN-100, 3 archs x 3 seeds: real, real + each of 8 strategies and baselines (Tables 3, 4),
    # and the 3 x 3 mixture grid (Figure 3) whose real_100+cl80_100 is already counted.
    in100 = (1 + 8 + 9 - 1) * 3 * 3
    table6 = 2 * 1 * 3       # Finetune-Generated, Real + Finetune-Generated x ResNeXt-50 x 3 seeds (3 rows are Table 1's)
    runs = table1 + figure11 + in100 + table6
    return {"generate_shard": shards, "train_classifier": runs, "evaluate_model": runs, "finetune_model": 1}


@pytest.mark.parametrize("profile", [[], ["--profile", str(REPO / "workflow/profiles/slurm")]])
def test_full_study_dry_run_plans_the_paper_grid(workdir, profile):
    start = time.time()
    result = snakemake("-n", "--config", "check_paths=False", *profile, cwd=workdir)
    elapsed = time.time() - start
    assert result.returncode == 0, result.stderr[-3000:]
    counts = job_counts(result.stdout)
    expected = expected_full_counts()
    assert {k: counts[k] for k in expected} == expected
    assert "genrobust: what this plan costs" in result.stderr and "python -m genrobust cost" in result.stderr
    assert expected["generate_shard"] == 1412 and expected["train_classifier"] == 213
    plan = result.stderr
    assert "imagenet1k/cl80/train: 1,300,000 images (1300 per class) in 500 shards" in plan
    assert "imagenet1k/cl80/val: 50,000 images (50 per class) in 20 shards" in plan
    for strategy in ("photo", "rendition", "ldm"):  # IN-100: 130K + 5K per strategy
        assert f"imagenet100/{strategy}/train: 130,000 images (1300 per class)" in plan
        assert f"imagenet100/{strategy}/val: 5,000 images (50 per class)" in plan
    for strategy in ("variation", "img2img", "deepaugment", "pixmix"):  # one per real image
        assert f"imagenet100/{strategy}/train: 1 per real train image" in plan
    for table in ("Table 2", "Table 5", "Table 6", "Table 7"):  # every paper output is built now
        assert f"genrobust: report {table} (" not in plan
    print(f"full dry-run {'with profile ' if profile else ''}in {elapsed:.1f} s: {counts['total']} jobs")


def test_rule_files_are_formatted():
    """snakefmt --check with pyproject.toml's line length (make lint; `snakefmt Snakefile workflow/rules` fixes)."""
    snakefmt = Path(sys.executable).parent / "snakefmt"
    result = subprocess.run([str(snakefmt), "--check", "Snakefile", "workflow/rules"], cwd=REPO,
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, (result.stdout + result.stderr)[-3000:]


def test_lint_is_clean_on_every_config_as_shipped(workdir):
    """config.yaml lints as shipped, on a machine without its datasets (linting reads the rules)."""
    shipped = sorted(p.name for p in (REPO / "config").glob("*.yaml"))
    overlays = ["beyond.yaml", "benchmarks.yaml", "few_step.yaml"]  # of config.yaml: linted at once
    assert shipped == sorted(["config.yaml", "demo.yaml", "demo_beyond.yaml", *overlays])  # a new one is linted here too
    for args in ([], ["--configfile", "config/demo.yaml"], ["--configfile", "config/demo.yaml", "config/demo_beyond.yaml"],
                 ["--configfile", "config/config.yaml", *(f"config/{o}" for o in overlays)]):
        result = snakemake("--lint", *args, cwd=workdir)
        assert result.returncode == 0, (result.stdout + result.stderr)[-3000:]
        assert "Lints for" not in result.stdout + result.stderr, (result.stdout + result.stderr)[-3000:]


def test_benchmark_rules_are_planned_only_when_config_asks(workdir):
    (workdir / "training_only.yaml").write_text("benchmarks:\n  training: {steps: 2}\n")
    common = ("-n", "--quiet", "rules", "--configfile", "config/config.yaml")
    plain = snakemake(*common, "--config", "check_paths=False", cwd=workdir)
    asked = snakemake(*common, "training_only.yaml", "--config", "check_paths=False", cwd=workdir)
    shipped = snakemake(*common, "config/benchmarks.yaml", "--config", "check_paths=False", cwd=workdir)
    assert plain.returncode == 0 and asked.returncode == 0 and shipped.returncode == 0, shipped.stderr[-3000:]
    assert "benchmark_training" not in plain.stdout and "benchmark_generation" not in plain.stdout
    assert "benchmark_training" in asked.stdout and "benchmark_generation" not in asked.stdout
    assert all(f"benchmark_{b}" in shipped.stdout for b in ("generation", "training", "finetune"))


# What one report's target plans on the full config: (trainings, evaluations, generated strategies).
TARGET_PLANS = {
    "table1": (45, 45, {"cl80"}),        # 3 rows x 5 archs x 3 seeds; ER against the published testbed models
    "table3": (45, 45, {"cl80", "ldm", "deepaugment", "pixmix"}),  # 5 rows x 3 x 3, accuracy only
    "table4": (54, 54, {"photo", "rendition", "cl80", "variation", "img2img"}),  # 6 rows x 3 x 3
    "table9": (45, 45, {"cl80"}),        # Table 1's runs; its ER reference is their real_100 runs
    "figure3": (90, 90, {"cl80"}),       # 9 grid cells x 3 x 3, + real_100 (the IN-100 reference)
    "figure11": (15, 15, {"cl80"}),      # 5 shares x ResNeXt-50 x 3 seeds
    "figure12": (2, 0, {"cl80"}),        # loss curves: two trainings, no evaluation
    "table6": (15, 15, {"cl80", "cl80ft"}),  # 5 rows x ResNeXt-50 x 3 seeds; cl80ft from the fine-tuned SD
}


@pytest.mark.parametrize("target", sorted(TARGET_PLANS))
def test_a_report_target_plans_only_what_it_needs(workdir, target):
    result = snakemake(f"results/{target}.csv", "-n", "--config", "check_paths=False", cwd=workdir)
    assert result.returncode == 0, result.stderr[-3000:]
    counts = job_counts(result.stdout)
    trainings, evaluations, strategies = TARGET_PLANS[target]
    assert (counts["train_classifier"], counts.get("evaluate_model", 0)) == (trainings, evaluations)
    planned = set(re.findall(r"generate/\w+/(\w+)/train/shard~\d+/manifest\.csv", result.stdout))
    assert planned == strategies
    assert "/val/shard~" not in result.stdout  # generated val sets feed no report of these


@pytest.mark.parametrize("gpus", [1, 2])
def test_training_on_more_gpus_launches_torchrun(workdir, gpus):
    target = "results/train/imagenet100/mix~real_100/arch~resnet18/seed~0/model.pt"
    result = snakemake(target, "-n", "-p", "--config", "check_paths=False", "--set-resources",
                       f"train_classifier:gpu={gpus}", cwd=workdir)
    assert result.returncode == 0, result.stderr[-3000:]
    train = [line for line in result.stdout.splitlines() if " train --source " in line]
    assert len(train) == 1
    torchrun = "-m torch.distributed.run --standalone --nproc-per-node 2 -m genrobust train "
    assert (torchrun in train[0]) == (gpus == 2) and " -m genrobust train " in train[0]


def test_every_rule_states_its_threads():
    """Snakemake sets OMP/OpenBLAS/MKL threads to a job's `threads` (1 when unset): each rule says
    it, so that no head-node reduce step multiplies its BLAS threads by the node's cores."""
    for path in sorted((REPO / "workflow/rules").glob("*.smk")):
        parts = re.split(r"^(\s*rule(?: \w+)?:)\s*$", path.read_text(), flags=re.M)
        for head, body in zip(parts[1::2], parts[2::2]):
            if not head.startswith(" "):  # a top-level rule ends at the next top-level statement
                body = re.split(r"^\S", body, flags=re.M)[0]
            assert re.search(r"^\s+threads: ", body, flags=re.M), f"{path.name}: {head.strip()} {body[:80]!r}"


def job_resources(output: str) -> list[tuple[str, dict[str, str]]]:
    """(rule, resources) of every job a dry run lists."""
    jobs = []
    for block in re.split(r"^(?:local)?rule ", output, flags=re.M)[1:]:
        found = re.search(r"^\s+resources: (.*)$", block, flags=re.M)
        resources = dict(item.split("=", 1) for item in found[1].split(", ")) if found else {}
        jobs.append((block.split(":", 1)[0], resources))
    return jobs


@pytest.mark.parametrize("site", [None, "small-site", "renamed"])
def test_every_gpu_job_goes_to_the_gpu_partition(workdir, site):
    """Derived from the `gpu` resource in one place (GPU_JOB): a GPU rule never lands on a CPU
    partition, whatever a profile lists, and a site renames the partition in one line."""
    profiles = ["--profile", str(REPO / "workflow/profiles/slurm")]
    partition = "gpu"
    if site == "small-site":
        profiles += ["--profile", str(REPO / "workflow/profiles/small-site")]
    elif site == "renamed":
        (workdir / "site").mkdir()
        (workdir / "site/config.yaml").write_text("default-resources:\n  gpu_partition: gpu-h100\n")
        profiles += ["--profile", str(workdir / "site")]
        partition = "gpu-h100"
    result = snakemake("-n", *profiles, "--quiet", "host", "--config", "check_paths=False", cwd=workdir, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    jobs = job_resources(result.stdout)
    gpu_rules = {rule for rule, r in jobs if r.get("gpu", "0") != "0"}
    assert {"generate_shard", "train_classifier", "evaluate_model", "finetune_model", "predict_timm", "predict_run",
            "embed_inception_test", "embed_clip_imagenet1k"} <= gpu_rules
    for rule, resources in jobs:
        on_gpu = resources.get("gpu", "0") != "0"
        assert (resources.get("slurm_partition") == partition) == on_gpu, (rule, resources)
