"""What a target costs, before it is submitted: `genrobust cost [targets...]`.

Snakemake plans the target (a dry run with the user's config files and profiles: exactly the
jobs it would run, none that are done), and each planned job is costed by genrobust.costs, the
model the rules size their requests from. Per rule and in total: jobs, GPU-hours and CPU-hours
of expected work, the GPU-hours the jobs ask SLURM for (their runtime: the work doubled, plus
start-up), peak memory of one job, disk written, images generated and trainings, and where each
time figure comes from (a per-image estimate, or the user's own GPU benchmark).
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from dataclasses import dataclass
from types import SimpleNamespace

from . import costs
from .share.plan import export_entry
from .study import Study
from .validation import load_config


@dataclass(frozen=True)
class PlannedJob:
    rule: str
    wildcards: dict[str, str]
    threads: int
    resources: dict[str, str]


def planned_jobs(dry_run: str) -> list[PlannedJob]:
    """Every job a Snakemake dry run lists, with its wildcards, threads and resources."""
    jobs = []
    for block in re.split(r"^(?:local)?rule ", dry_run, flags=re.M)[1:]:
        fields = {key: value for key, value in re.findall(r"^\s+(wildcards|threads|resources): (.*)$", block, re.M)}
        pairs = lambda text: dict(item.split("=", 1) for item in text.split(", ") if "=" in item)  # noqa: E731
        jobs.append(PlannedJob(block.split(":", 1)[0].strip(), pairs(fields.get("wildcards", "")),
                               int(fields.get("threads", 1)), pairs(fields.get("resources", ""))))
    return [j for j in jobs if j.rule != "all"]


def job_cost(study: costs.StudySize, job: PlannedJob, groups: dict) -> costs.JobCost:
    """The cost model's figure for one planned job (seconds of work, not the request)."""
    w, rule = SimpleNamespace(**job.wildcards), job.rule
    if rule == "generate_shard":
        return costs.shard_cost(study, w.dataset, w.strategy, w.split)
    if rule == "write_source_beton":
        return costs.beton_cost(study, w.dataset, study.source_images(w.dataset, w.source), job.threads,
                                w.source != "real")
    if rule == "write_val_beton":
        return costs.beton_cost(study, w.dataset, study.real_images(w.dataset, "val"), job.threads, False)
    if rule == "train_classifier":
        return costs.training_cost(study, w.dataset, w.mix, w.arch)
    if rule == "evaluate_model":
        return costs.evaluation_cost(study, w.dataset, job.threads)
    if rule == "finetune_model":
        return costs.finetune_cost(study, w.model)
    if rule == "index_dataset":
        return costs.index_cost(study.real_images(w.dataset, w.split))
    if rule == "index_test_set":
        return costs.index_cost(study.test_set_images(w.test_set))
    if rule == "import_set":
        return costs.share_cost(study.generated_images(w.dataset, w.strategy, "train"))
    if rule == "export_set":
        splits = export_entry(study.config, w.dataset, w.strategy)["splits"]
        return costs.share_cost(sum(study.generated_images(w.dataset, w.strategy, split) for split in splits))
    if rule in groups:
        return costs.embed_cost(study, groups[rule])
    if rule in ("predict_timm", "predict_run"):
        return costs.predictions_cost(study, w.dataset, w.strategy)
    if rule.startswith("make_") and rule[5:] in study.config["reports"]:
        return costs.metric_report_cost(study, rule[5:])
    return costs.JobCost(0)  # local reduce steps and the demo's builders: seconds


COLUMNS = ("jobs", "gpu_hours", "requested_gpu_hours", "cpu_hours", "peak_mem_gb", "disk_gb", "images",
           "trainings")


def summarise(config: dict, jobs: list[PlannedJob]) -> dict:
    """{rules: {rule: {column: value}}, total: {...}, sources: {rule: figure source}}."""
    from .metrics import plan as metrics_plan

    study, planned = costs.StudySize(config), Study.of(config)
    groups = metrics_plan.embedding_groups(config, planned.metric_reports(), list(planned.filtered_sets))
    rules: dict[str, dict] = {}
    sources: dict[str, str] = {}
    for job in jobs:
        cost = job_cost(study, job, groups)
        gpus = int(job.resources.get("gpu", 0) or 0)
        row = rules.setdefault(job.rule, dict.fromkeys(COLUMNS, 0))
        row["jobs"] += 1
        row["gpu_hours"] += cost.seconds * gpus / 3600
        row["requested_gpu_hours"] += int(job.resources.get("runtime", 0) or 0) * gpus / 60
        row["cpu_hours"] += cost.seconds * job.threads / 3600
        row["peak_mem_gb"] = max(row["peak_mem_gb"], int(job.resources.get("mem_mb", 0) or 0) / 1000)
        row["disk_gb"] += cost.disk_mb / 1000
        row["images"] += cost.images
        row["trainings"] += cost.trainings
        if cost.seconds:
            sources[job.rule] = cost.source
    total = {c: sum(r[c] for r in rules.values()) for c in COLUMNS}
    total["peak_mem_gb"] = max((r["peak_mem_gb"] for r in rules.values()), default=0)
    return {"rules": rules, "total": total, "sources": sources}


def format_summary(summary: dict, what: str) -> str:
    head = (f"{'rule':<28}{'jobs':>7}{'GPU-h':>10}{'asked GPU-h':>13}{'CPU-h':>10}{'peak GB':>9}{'disk GB':>10}"
            f"{'images':>12}{'trainings':>11}")

    def line(name, r):
        return (f"{name:<28}{r['jobs']:>7}{r['gpu_hours']:>10.1f}{r['requested_gpu_hours']:>13.1f}"
                f"{r['cpu_hours']:>10.1f}{r['peak_mem_gb']:>9.1f}{r['disk_gb']:>10.1f}{r['images']:>12,}"
                f"{r['trainings']:>11}")

    rows = sorted(summary["rules"].items(), key=lambda kv: -kv[1]["requested_gpu_hours"] - kv[1]["cpu_hours"] / 1e3)
    lines = [f"== genrobust cost of {what}", head, *(line(n, r) for n, r in rows), "-" * len(head),
             line("total", summary["total"]), "",
             "GPU-h and CPU-h: expected work (genrobust/costs.py); asked GPU-h: the jobs' runtime requests "
             "(twice the work plus start-up). Peak GB: the largest job's memory request."]
    measured = {r: s for r, s in summary["sources"].items() if s != "estimate"}
    lines.append("Time figures: per-image estimates" + (
        "; measured on your GPU for " + ", ".join(f"{r} ({s})" for r, s in measured.items()) if measured else
        " (benchmark your GPU for measured ones: config `benchmarks:`, README)") + ".")
    return "\n".join(lines)


def dry_run(targets: list[str], configfiles: list[str], config_args: list[str], profiles: list[str]) -> str:
    from .rehearsal import SNAKEFILE

    command = [sys.executable, "-m", "snakemake", *targets, "-s", str(SNAKEFILE), "-n", "--quiet", "host",
               "--cores", "4096"]
    for profile in profiles:
        command += ["--profile", profile]
    if configfiles:
        command += ["--configfile", *configfiles]
    if config_args:
        command += ["--config", *config_args]
    done = subprocess.run(command, capture_output=True, text=True, env={**os.environ, "HF_HUB_OFFLINE": "1"})
    if done.returncode != 0:
        raise ValueError(f"snakemake could not plan {' '.join(targets) or 'the study'}:\n{done.stderr[-3000:]}")
    return done.stdout


def config_overrides(config_args: list[str]) -> dict:
    """--config key=value pairs, their values read as YAML (as Snakemake reads them)."""
    import yaml

    return {key: yaml.safe_load(value) for key, _, value in (a.partition("=") for a in config_args)}


def cost(targets: list[str], configfiles: list[str] | None = None, config_args: list[str] | None = None,
         profiles: list[str] | None = None) -> dict:
    """Plan `targets` (default: everything the config builds) and cost every job they need."""
    configfiles = configfiles or ["config/config.yaml"]
    config_args = [*(config_args or []), "check_paths=False"]  # costing needs no data
    jobs = planned_jobs(dry_run(targets, configfiles, config_args, profiles or []))
    config = load_config(configfiles, config_overrides(config_args))
    summary = summarise(config, jobs)
    print(format_summary(summary, " ".join(targets) or "the whole study"))
    return summary
