# Input functions of the share rules (share.smk); no rules here (the Snakemake catalog's convention).

from genrobust.share import plan as share_plan

EXTERNAL = sorted({s for _, s, _ in STUDY.generated_sets if STUDY.strategies[s].kind.imported})


def external_inputs(wildcards):
    """What an import reads: an export of this config (its job), the demo's build, the set's
    SHA256SUMS (an edited copy re-imports) and its class_map."""
    strategy = STUDY.strategies[wildcards.strategy].settings
    path, inputs = strategy["path"], {}
    if share_plan.export_of(STUDY.config, path) is not None:
        inputs["exported"] = path
    elif demo_inputs(path):
        inputs["demo"] = demo_inputs(path)
    elif Path(path, "SHA256SUMS").exists():
        inputs["checksums"] = str(Path(path, "SHA256SUMS"))
    if strategy.get("class_map"):
        inputs["class_map"] = strategy["class_map"]
    return inputs


def external_options(wildcards, input):
    strategy = STUDY.strategies[wildcards.strategy].settings
    options = f"--path {quote(strategy['path'])} --format {quote(strategy.get('format') or 'auto')}"
    return options + (f" --class-map {quote(input.class_map)}" if "class_map" in input.keys() else "")


def export_manifests(wildcards):
    entry = share_plan.export_entry(STUDY.config, wildcards.dataset, wildcards.strategy)
    return {
        split: f"{OUT}/generate/{wildcards.dataset}/{wildcards.strategy}/{split}/manifest.csv"
        for split in entry["splits"]
    }


def export_options(wildcards, input):
    entry = share_plan.export_entry(STUDY.config, wildcards.dataset, wildcards.strategy)
    manifests = " ".join(f"--manifest {quote(f'{split}={input[split]}')}" for split in entry["splits"])
    formats = " ".join(quote(f) for f in entry["formats"])
    return f"{manifests} --formats {formats} --shard-mb {int(entry['shard_mb'])}"


def export_info(wildcards):
    """The card's facts: the strategy and its models as config gives them, the licence, the seed."""
    entry = share_plan.export_entry(STUDY.config, wildcards.dataset, wildcards.strategy)
    strategy = STUDY.strategies[wildcards.strategy].settings
    models = {k: thawed(STUDY.models[strategy[k]].settings) for k in ("model", "adapter") if strategy.get(k)}
    info = {
        "dataset": wildcards.dataset,
        "strategy": wildcards.strategy,
        "strategy_config": thawed(strategy),
        "models": models,
        "license": entry["license"],
        "seed": STUDY.seed,
    }
    return json.dumps(info, sort_keys=True)
