"""What a target costs before it runs (genrobust cost): the planned jobs' figures, added up."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from genrobust import costs
from genrobust.cost_report import planned_jobs


def run_cost(workdir, *args):
    return subprocess.run([sys.executable, "-m", "genrobust", "cost", *args], cwd=workdir, capture_output=True,
                          text=True, timeout=300)


def plain_dry_run(workdir, *targets):
    from conftest import snakemake

    done = snakemake(*targets, "-n", "--quiet", "host", "--cores", "4096", "--config", "check_paths=False",
                     cwd=workdir, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    return planned_jobs(done.stdout)


def test_a_tables_cost_is_the_sum_of_its_planned_jobs(workdir):
    out = workdir / "cost.json"
    result = run_cost(workdir, "results/table3.csv", "--json-out", str(out))
    assert result.returncode == 0, result.stderr[-3000:]
    summary = json.loads(out.read_text())
    jobs = plain_dry_run(workdir, "results/table3.csv")
    total = summary["total"]
    # The requests, straight from the dry run's resources: runtime (minutes) x GPUs.
    asked = sum(int(j.resources.get("runtime", 0)) * int(j.resources.get("gpu", 0)) / 60 for j in jobs)
    assert total["requested_gpu_hours"] == pytest.approx(asked) and total["jobs"] == len(jobs)
    # Table 3: 5 rows x 3 architectures x 3 seeds; IN-100's cl80 (260K, for Figure 3's 200% too),
    # ldm (130K) and one DeepAugment and one PixMix image per real train image (130K each).
    assert total["trainings"] == 45 and summary["rules"]["train_classifier"]["jobs"] == 45
    assert total["images"] == 260_000 + 3 * 130_000
    for column in ("jobs", "gpu_hours", "cpu_hours", "disk_gb", "images", "trainings"):
        assert total[column] == pytest.approx(sum(r[column] for r in summary["rules"].values()))
    # Each job asks for twice its expected work plus start-up: asked >= 2 x expected.
    assert 2 * total["gpu_hours"] <= total["requested_gpu_hours"] <= 2 * total["gpu_hours"] + len(jobs) / 6
    assert "train_classifier" in result.stdout and "total" in result.stdout


def test_a_benchmark_of_the_users_gpu_replaces_the_estimate(workdir):
    """Generation at twice the estimated speed halves the shards' expected GPU-hours, and says so."""
    result = run_cost(workdir, "results/table2.csv", "--json-out", str(workdir / "estimate.json"))
    assert result.returncode == 0, result.stderr[-3000:]
    estimate = json.loads((workdir / "estimate.json").read_text())["rules"]["generate_shard"]
    benchmark = [{"settings": {"steps": 50, "height": 512, "width": 512},
                  "images_per_s": 2 / (50 * costs.STEP_SECONDS_512)}]
    (workdir / "results/benchmarks").mkdir(parents=True)
    (workdir / "results/benchmarks/generation.json").write_text(json.dumps(benchmark))
    result = run_cost(workdir, "results/table2.csv", "--json-out", str(workdir / "measured.json"))
    assert result.returncode == 0, result.stderr[-3000:]
    measured = json.loads((workdir / "measured.json").read_text())
    assert measured["rules"]["generate_shard"]["gpu_hours"] == pytest.approx(estimate["gpu_hours"] / 2, rel=1e-3)
    assert measured["sources"]["generate_shard"].startswith("measured (results/benchmarks/generation.json")
    assert "measured on your GPU for generate_shard" in result.stdout


def test_the_cost_model_is_what_the_rules_ask_for(workdir, monkeypatch):
    """resources.smk asks for genrobust.costs' figures with its margin: a shard's runtime request."""
    from genrobust.validation import load_config

    jobs = [j for j in plain_dry_run(workdir, "results/table2.csv") if j.rule == "generate_shard"]
    monkeypatch.chdir(workdir)
    config = load_config(["config/config.yaml"], {"check_paths": False})
    study = costs.StudySize(config)
    for job in jobs[:3]:
        w = job.wildcards
        cost = costs.shard_cost(study, w["dataset"], w["strategy"], w["split"])
        assert int(job.resources["runtime"]) == costs.runtime_minutes(cost.seconds, 1)
        assert int(job.resources["mem_mb"]) == costs.memory_mb(cost.mem_mb, 1)
