# Input functions and job sizes of the metrics rules (metrics.smk); no rules here (the Snakemake catalog's convention).

import re

from genrobust.metrics import plan as metrics_plan

METRIC_REPORTS = STUDY.metric_reports()
FILTERED = list(STUDY.filtered_sets)
EMBED_GROUPS = metrics_plan.embedding_groups(STUDY.config, METRIC_REPORTS, FILTERED)
TIMM_MODELS = metrics_plan.timm_models(STUDY.config, METRIC_REPORTS)
METRICS = thawed(STUDY.config.get("metrics") or {})
METRICS_SPEC = json.dumps(METRICS, sort_keys=True)


# Table 2 compares each class's train images with each shift set's (FID, and KID's 100 subsets
# per cell): minutes of BLAS at ImageNet-1K (README: the head node at scale), so it runs as a
# cluster job (its kind is cluster_job); the other reports are seconds, on the head node.
def metric_report_threads(name):
    return costs.FID_TABLE_THREADS if STUDY.reports[name].kind.cluster_job else 1


def metric_model_inputs(*paths):
    """The demo rule that builds a metric stand-in when the demo builds `path`."""
    if DEMO and any(p and produced_by_demo(STUDY.config, p) for p in paths):
        return [f"{DEMO['models']}/metrics/metric_models.json"]
    return []


def embed_spec(extractor):
    """Only what an embedding job reads, so editing another part of `metrics:` re-runs nothing."""
    return json.dumps({k: METRICS[k] for k in (extractor, "feature_dtype") if k in METRICS}, sort_keys=True)


def group_set_args(group):
    sets = [f"--set {kind} {quote(table)} {quote(base)}" for base, (table, kind) in group["sets"].items()]
    return " ".join(sets + [f"--border-crop {quote(f'{base}={px}')}" for base, px in group["border_crop"].items()])


def group_text_args(group):
    if not group["text"]:
        return ""
    text = metrics_plan.text_file(OUT, group["dataset"])
    return f"--text-out {quote(text)} --classes {quote(STUDY.datasets[group['dataset']].settings['classes'])}"


def extractor_models(extractor):
    spec = METRICS.get(extractor) or {}
    return [spec.get("weights")] if extractor == "inception" else [spec.get("model", "").removeprefix("local-dir:")]


def predictions_sets(wildcards):
    return {
        "real": metrics_plan.source_table(OUT, wildcards.dataset, "val", "real"),
        "generated": metrics_plan.source_table(OUT, wildcards.dataset, "val", wildcards.strategy),
    }


def predictions_set_args(wildcards, input):
    return f"--set real real {quote(input.real)} --set {wildcards.strategy} generated {quote(input.generated)}"


def timm_model_args(wildcards):
    spec = TIMM_MODELS[wildcards.model]
    return f"--timm {quote(spec['timm'])}" + (f" --file {quote(spec['file'])}" if spec.get("file") else "")


def timm_model_inputs(wildcards):
    spec = TIMM_MODELS[wildcards.model]
    return metric_model_inputs(spec["timm"].removeprefix("local-dir:"), spec.get("file"))


def filtered_source(wildcards):
    """The source's manifest, CLIP features and class texts. The features and texts are ancient():
    a report adding a set re-runs its embedding group, which links the unchanged features back
    from the cache; that must not re-filter (and so re-write betons and re-train). They change only
    with the source's manifest (an input) or the CLIP settings (params.clip), which re-run the filter."""
    spec = STUDY.strategies[wildcards.strategy].settings
    features = metrics_plan.features_base(STUDY.config, "clip", wildcards.dataset, wildcards.split, spec["source"])
    return {
        "manifest": metrics_plan.source_table(OUT, wildcards.dataset, wildcards.split, spec["source"]),
        "features": ancient(features + ".npy"),
        "rows": ancient(features + ".csv"),
        "text": ancient(metrics_plan.text_file(OUT, wildcards.dataset)),
    }
