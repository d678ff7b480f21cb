# Job sizes: what each job asks a cluster for (included by common.smk; no rules here).
#
# CPUs are each rule's `threads:` and nothing else: the SLURM profile never sets cpus_per_task,
# so the executor asks for --cpus-per-task = threads and the job runs with exactly those threads.
# `set-threads` or `max-threads` in a profile change both at once.
#
# Memory and runtime follow the size of the job's work in config, as genrobust/costs.py estimates
# it (the one place; `genrobust cost` adds the same figures up): twice the work plus start-up, and
# on a retry `attempt` times the time and half again the memory, so a job stopped at its limit is
# not stopped at the same one again (shards and trainings resume). A site overrides any of them
# with `set-resources` in its profile.

from genrobust import costs
from genrobust.config import produced_by_demo
from genrobust.share import plan as share_plan
from genrobust.costs import CPU_JOB_MB, GPU_JOB_MB

SIZES = costs.StudySize(STUDY.config)
_minutes, _megabytes = costs.runtime_minutes, costs.memory_mb


def _sized(cost_of):
    """(runtime, mem_mb) resource functions of a job whose cost is cost_of(wildcards, threads)."""
    return (
        lambda wildcards, threads, attempt: _minutes(cost_of(wildcards, threads).seconds, attempt),
        lambda wildcards, threads, attempt: _megabytes(cost_of(wildcards, threads).mem_mb, attempt),
    )


def demo_runtime(wildcards, attempt):
    return _minutes(0, attempt)


def demo_mem_mb(wildcards, attempt):
    return _megabytes(4000, attempt)


def index_mem_mb(wildcards, attempt):
    return _megabytes(CPU_JOB_MB, attempt)


index_runtime, _ = _sized(lambda w, t: costs.index_cost(SIZES.real_images(w.dataset, w.split)))
index_test_runtime, _ = _sized(lambda w, t: costs.index_cost(SIZES.test_set_images(w.test_set)))
shard_runtime, shard_mem_mb = _sized(lambda w, t: costs.shard_cost(SIZES, w.dataset, w.strategy, w.split))
source_beton_runtime, source_beton_mem_mb = _sized(
    lambda w, t: costs.beton_cost(SIZES, w.dataset, SIZES.source_images(w.dataset, w.source), t, w.source != "real")
)
val_beton_runtime, val_beton_mem_mb = _sized(
    lambda w, t: costs.beton_cost(SIZES, w.dataset, SIZES.real_images(w.dataset, "val"), t, False)
)
training_runtime, training_mem_mb = _sized(lambda w, t: costs.training_cost(SIZES, w.dataset, w.mix, w.arch))
evaluation_runtime, evaluation_mem_mb = _sized(lambda w, t: costs.evaluation_cost(SIZES, w.dataset, t))
finetune_runtime, finetune_mem_mb = _sized(lambda w, t: costs.finetune_cost(SIZES, w.model))
predictions_runtime, _ = _sized(lambda w, t: costs.predictions_cost(SIZES, w.dataset, w.strategy))
share_runtime, _ = _sized(lambda w, t: costs.share_cost(SIZES.generated_images(w.dataset, w.strategy, "train")))


def export_runtime(wildcards, attempt):
    splits = share_plan.export_entry(STUDY.config, wildcards.dataset, wildcards.strategy)["splits"]
    images = sum(SIZES.generated_images(wildcards.dataset, wildcards.strategy, split) for split in splits)
    return _minutes(costs.share_cost(images).seconds, attempt)


def embed_runtime(group):
    return _sized(lambda w, t: costs.embed_cost(SIZES, group))[0]


def metric_report_runtime(name):
    return _sized(lambda w, t: costs.metric_report_cost(SIZES, name))[0]
