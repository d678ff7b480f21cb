# Config access, input functions and target lists; no rules here (the Snakemake catalog's convention).
# Nothing here globs a dataset folder: the DAG comes from config alone.

import json
import os
import re
import sys
from pathlib import Path
from shlex import quote

sys.path.insert(0, str(Path(workflow.basedir) / "workflow"))
from genrobust.config import (
    RUN_DIR,
    ConfigError,
    TrainingRun,
    generation_plan,
    parse_mixture,
    report_rows,
    skipped_reports,
    unpinned_hub_models,
)
from genrobust.finetune.plan import finetune_checkpoints, finetune_output
from genrobust.kinds.reports import METRIC
from genrobust.provenance import config_hash
from genrobust.schema import schema_problem
from genrobust.study import thawed
from genrobust.validation import check_config

# The schema's verdict in one line naming the key (jsonschema's own message dumps the schema);
# then validate() fills the schema's defaults, and check_config checks what a schema cannot.
_problem = schema_problem(config)
if _problem:
    raise WorkflowError(f"config error: {_problem}")
validate(config, schema="../schemas/config.schema.yaml")
if "--lint" in sys.argv:  # linting reads the rules, not the data: a config whose data is elsewhere lints
    config["check_paths"] = False
# The plan, built once and checked: runs, reports, generated sets, every name's kind and settings
# (genrobust/study.py). The rules read it, not config.
try:
    STUDY = check_config(config)
except ConfigError as err:
    raise WorkflowError(f"config error: {err}") from None

OUT = STUDY.out
DEMO = thawed(STUDY.demo)  # plain data: the demo rules hand it to their commands as JSON
ENV = "../../envs/genrobust.yaml"
# The CLI runs on the venv's interpreter, or on the conda env's python under --sdm conda; the
# library is importable from the checkout in both (and in SLURM jobs) through PYTHONPATH.
# Every value a shell command gets is quoted (a checkout, an output folder or a config path may
# hold spaces, quotes or `$(...)`): paths are data, never code.
PYTHON = 'PYTHONPATH={}{}"${{PYTHONPATH:-}}" {}'.format(
    quote(str(Path(workflow.basedir) / "workflow")),
    os.pathsep,
    (
        "python"
        if "conda" in str(getattr(workflow.deployment_settings, "deployment_method", ""))
        else quote(sys.executable)
    ),
)
GENROBUST = f"{PYTHON} -m genrobust"
DEMO_CLI = f"{PYTHON} -m genrobust.demo"  # the demo's stand-ins for downloads


def profile_default_resource(name, default):
    """A value the profile's `default-resources` gives `name` (read as the rules are built)."""
    settings = getattr(workflow, "resource_settings", None)
    for arg in getattr(getattr(settings, "default_resources", None), "args", None) or []:
        key, sep, value = str(arg).partition("=")
        if sep and key.strip() == name:
            return value.strip().strip("'\"")
    return default


# What a job that needs a GPU asks for (one GPU, on the GPU partition). The one place a GPU job is
# routed, so that no rule asks for a GPU on a partition without one (a per-rule list in each
# profile fell out of step). The partition's name: `default-resources: {gpu_partition: <name>}`
# in a site profile (default `gpu`); `set-resources` still overrides a rule's.
GPU_PARTITION = profile_default_resource("gpu_partition", "gpu")
GPU_JOB = {"gpu": 1, "slurm_partition": GPU_PARTITION}


def train_launcher(wildcards, resources):
    """The CLI, or torchrun with one process per GPU when the job asks for more than one
    (set-resources: train_classifier: gpu: N); train.py then runs DistributedDataParallel."""
    gpus = int(getattr(resources, "gpu", 1) or 1)
    if gpus <= 1:
        return GENROBUST
    return f"{PYTHON} -m torch.distributed.run --standalone --nproc-per-node {gpus} -m genrobust"


if workflow.is_main_process:
    for line in generation_plan(STUDY.config):
        print(f"genrobust: generate {line}", file=sys.stderr)
    for note in skipped_reports(STUDY.config):
        print(f"genrobust: report {note}", file=sys.stderr)
    for note in unpinned_hub_models(STUDY.config):
        print(f"genrobust: NOTICE {note}", file=sys.stderr)
    # The executor (and so workflow.dryrun) is not set while the Snakefile is read, and Snakemake has
    # no end-of-dry-run hook: the command line says it, and the pointer comes first.
    if any(arg in ("--dry-run", "--dryrun") or re.fullmatch(r"-[A-Za-z]*n[A-Za-z]*", arg) for arg in sys.argv):
        print(
            "genrobust: what this plan costs (jobs, GPU- and CPU-hours, memory, disk, images, trainings): "
            "python -m genrobust cost [targets] [--configfile ...] [--profile ...]",
            file=sys.stderr,
        )


wildcard_constraints:
    dataset=r"[a-z][a-z0-9]*",
    strategy=r"[a-z][a-z0-9]*",
    split=r"train|val",
    shard=r"\d+",
    mix=r"(n_\d+\+)?[a-z][a-z0-9]*_\d+(\.\d+)?(\+[a-z][a-z0-9]*_\d+(\.\d+)?)*(\+sepbn)?",
    arch=r"((timm|torchvision):)?[A-Za-z0-9_.]+",
    seed=r"\d+",
    test_set=r"[a-z][a-z0-9_]*",
    source=r"[a-z][a-z0-9]*",
    report=r"[a-z][a-z0-9_]*",
    model=r"[a-z][a-z0-9_]*",


# ----------------------------------------------------------------------------- data


def demo_inputs(path):
    """The demo rule's output when the demo builds `path`; nothing for a user's real data."""
    if DEMO:
        for root, built in ((DEMO["data"], "demo_data.json"), (DEMO["models"], "models.json")):
            if Path(root) in (Path(path), *Path(path).parents):
                return [f"{root}/{built}"]
    return []


def parent_folder(wildcards, output):
    return str(Path(output[0]).parent)


def dataset_root(wildcards):
    return STUDY.datasets[wildcards.dataset].settings[wildcards.split]


def test_set_kind(wildcards):
    return STUDY.test_sets[wildcards.test_set].kind.name


def test_set_root(wildcards):
    return STUDY.test_sets[wildcards.test_set].settings["path"]


def dataset_source_inputs(wildcards):
    return demo_inputs(STUDY.datasets[wildcards.dataset].settings[wildcards.split])


def test_set_source_inputs(wildcards):
    return demo_inputs(STUDY.test_sets[wildcards.test_set].settings["path"])


def test_set_options(wildcards):
    spec = STUDY.test_sets[wildcards.test_set].settings
    options = []
    if spec.get("severities"):
        options.append("--severities " + " ".join(quote(str(s)) for s in spec["severities"]))
    if spec.get("corruptions"):
        options.append("--corruptions " + " ".join(quote(c) for c in spec["corruptions"]))
    if spec["complete"]:
        options.append("--complete")
    return " ".join(options)


def dataset_index_options(wildcards):
    return "--allow-empty-classes" if STUDY.datasets[wildcards.dataset].settings["allow_empty_classes"] else ""


# ----------------------------------------------------------------------------- finetune


def finetune_block(wildcards):
    model = STUDY.models.get(wildcards.model)
    if model is None or not model.finetuned:
        raise WorkflowError(f"models.{wildcards.model} has no finetune block: nothing fine-tunes it here")
    return model.settings["finetune"]


def finetune_inputs(wildcards):
    """The real train index of the block's dataset, and what the demo builds of its base."""
    block = finetune_block(wildcards)
    inputs = {"index": f"{OUT}/index/{block['dataset']}/train.csv"}
    for i, built in enumerate(demo_inputs(STUDY.models[block["base"]].settings["id"])):
        inputs[f"demo{i}"] = built
    return inputs


def finetune_base_args(wildcards):
    base = STUDY.models[finetune_block(wildcards)["base"]].settings
    revision = f" --revision {quote(str(base['revision']))}" if base.get("revision") else ""
    return f"--base {quote(base['id'])}{revision}"


def finetune_recipe(wildcards):
    return json.dumps(thawed(finetune_block(wildcards)), sort_keys=True)


def finetune_checkpoint_dir(wildcards):
    return finetune_checkpoints(STUDY.config, wildcards.model)


def finetune_launcher(wildcards, resources):
    """The CLI, or torchrun with one process per GPU (set-resources: finetune_model: gpu: N);
    accelerate picks the processes up from torchrun's environment."""
    gpus = int(getattr(resources, "gpu", 1) or 1)
    if gpus <= 1:
        return GENROBUST
    return f"{PYTHON} -m torch.distributed.run --standalone --nproc-per-node {gpus} -m genrobust"


def finetuned_model_input(strategy):
    """A strategy generating from a model fine-tuned here waits for its finetune_model job."""
    name = strategy.get("model")
    if name and STUDY.models[name].finetuned:
        return {"finetuned": finetune_output(STUDY.config, name)}
    return {}


# ----------------------------------------------------------------------------- generate


def strategy_spec(wildcards):
    """Everything one generation shard needs, as JSON for the CLI."""
    spec = thawed(STUDY.strategies[wildcards.strategy].settings)
    if "model" in spec:
        model = STUDY.models[spec.pop("model")].settings
        spec.update(model_id=model["id"], revision=model.get("revision"))
    if "adapter" in spec:
        model = STUDY.models[spec["adapter"]].settings
        spec["adapter"] = {
            "id": model["id"],
            "revision": model.get("revision"),
            "weight_name": model.get("weight_name"),
            "scale": spec.pop("adapter_scale", 1.0),
        }
    dataset = STUDY.datasets[wildcards.dataset]
    gen = dataset.generate[wildcards.strategy]
    spec.update(
        classes=dataset.settings["classes"],
        n_shards=gen[f"{wildcards.split}_shards"],
        seed=STUDY.seed,
    )
    if f"{wildcards.split}_per_class" in gen:
        spec["per_class"] = gen[f"{wildcards.split}_per_class"]
    if "sources_per_class" in gen:
        spec["sources_per_class"] = gen["sources_per_class"]
    return json.dumps(spec, sort_keys=True)


def generation_inputs(wildcards):
    """The real index an image-conditioned strategy starts from, and what the demo builds."""
    strategy = STUDY.strategies[wildcards.strategy].settings
    inputs = {}
    if not STUDY.strategies[wildcards.strategy].kind.class_conditioned:
        inputs["real_index"] = f"{OUT}/index/{wildcards.dataset}/{wildcards.split}.csv"
    paths = [strategy.get("weights"), strategy.get("mixing_set"), strategy.get("captions")]
    if strategy.get("captions") and not demo_inputs(strategy["captions"]):
        inputs["captions"] = strategy["captions"]  # a user's file: an edit re-runs the shards
    for key in ("model", "adapter"):
        if key in strategy:
            paths.append(STUDY.models[strategy[key]].settings.get("id"))
    for i, path in enumerate(p for p in paths if p):
        for built in demo_inputs(path):
            inputs[f"demo{i}"] = built
    inputs.update(finetuned_model_input(strategy))
    return inputs


def real_index_arg(wildcards, input):
    return f"--real-index {quote(input.real_index)}" if "real_index" in input.keys() else ""


def contact_sheet_manifests(wildcards):
    return {
        strategy: f"{OUT}/generate/{dataset}/{strategy}/train/manifest.csv"
        for dataset, strategy, split in STUDY.generated_sets
        if dataset == wildcards.dataset and split == "train"
    }


def contact_sheet_args(wildcards, input):
    return " ".join(f"--manifest {quote(f'{s}={input[s]}')}" for s in contact_sheet_manifests(wildcards))


def shard_manifests(wildcards):
    n = STUDY.datasets[wildcards.dataset].generate[wildcards.strategy][f"{wildcards.split}_shards"]
    base = f"{OUT}/generate/{wildcards.dataset}/{wildcards.strategy}/{wildcards.split}"
    return [f"{base}/shard~{i}/manifest.csv" for i in range(n)]


# ----------------------------------------------------------------------------- convert / train


def source_table(wildcards):
    """What a training source's beton is written from: the real index or a generated manifest."""
    if wildcards.source == "real":
        return f"{OUT}/index/{wildcards.dataset}/train.csv"
    return f"{OUT}/generate/{wildcards.dataset}/{wildcards.source}/train/manifest.csv"


def mixture_sources(wildcards):
    return parse_mixture(wildcards.mix).sources


def mixture_tables(wildcards):
    """The row counts a mixture is sampled from: the real index (100% = its size) and the
    manifest of each generated source of the mixture."""
    tables = {"real": f"{OUT}/index/{wildcards.dataset}/train.csv"}
    for s in mixture_sources(wildcards):
        if s != "real":
            tables[s] = f"{OUT}/generate/{wildcards.dataset}/{s}/train/manifest.csv"
    return tables


def mixture_table_args(wildcards, input):
    """The tables, and a source's --draws where it has one (none for the others: an unchanged
    command, so an upgrade re-samples no mixture and so re-trains nothing)."""
    tables = [f"--table {quote(f'{s}={input[s]}')}" for s in mixture_tables(wildcards)]
    return " ".join(tables + mixture_draw_args(wildcards))


def training_inputs(wildcards):
    """The mixture's rows, the beton and manifest of each of its sources, and the val set."""
    base = f"{OUT}/beton/{wildcards.dataset}"
    inputs = {
        "mixture": f"{OUT}/mix/{wildcards.dataset}/mix~{wildcards.mix}.csv",
        "val_beton": f"{base}/val.beton",
        "val_manifest": f"{base}/val.csv",
    }
    for s in mixture_sources(wildcards):
        inputs[f"{s}_beton"] = f"{base}/train/{s}.beton"
        inputs[f"{s}_manifest"] = f"{base}/train/{s}.csv"
    return inputs


def training_source_args(wildcards, input):
    sources = " ".join(
        f"--source {s} {quote(input[f'{s}_beton'])} {quote(input[f'{s}_manifest'])}" for s in mixture_sources(wildcards)
    )
    return " ".join([sources, *mixture_draw_args(wildcards)])


def mixture_draw_args(wildcards):
    """--draws for a source keyed by another name (an imported copy of a set draws as the set);
    none for the others, so their commands stay as they were."""
    keyed = {s: STUDY.draws_of(s) for s in mixture_sources(wildcards)}
    return [f"--draws {quote(f'{s}={d}')}" for s, d in keyed.items() if d != s]


def recipe_json(wildcards):
    """The dataset's recipe; a mixture ending in +sepbn trains with separate BatchNorm statistics."""
    recipe = thawed(STUDY.datasets[wildcards.dataset].recipe)
    if parse_mixture(wildcards.mix).separate_bn:
        recipe["generated_bn"] = "separate"
    return json.dumps(recipe, sort_keys=True)


def beton_options(wildcards):
    return json.dumps(thawed(STUDY.datasets[wildcards.dataset].settings["beton"]), sort_keys=True)


def checkpoint_path(wildcards):
    run = TrainingRun(wildcards.dataset, wildcards.mix, wildcards.arch, int(wildcards.seed))
    return f"{OUT}/checkpoints/{run.dir}/last.pt"


def dataset_classes(wildcards):
    return STUDY.datasets[wildcards.dataset].settings["classes"]


# ----------------------------------------------------------------------------- evaluate


def test_set_indices(wildcards):
    return {t: f"{OUT}/index/test/{t}.csv" for t in STUDY.evaluated_test_sets[wildcards.dataset]}


def evaluation_set_args(wildcards, input):
    args = []
    for t in STUDY.evaluated_test_sets[wildcards.dataset]:
        kind = STUDY.test_sets[t].kind
        args.append(f"--set {quote(f'{t}={input[t]}')}")
        if kind.border_crop_px:
            args.append(f"--border-crop {t}={kind.border_crop_px}")
        if kind.id_subset:
            args.append(f"--id-subset {t}")
    return " ".join(args) + f" --id-test-set {quote(STUDY.evaluation['id_test_set'])}"


# ----------------------------------------------------------------------------- analysis / report


def report_evaluations(wildcards):
    """The evaluations of exactly the runs one report needs (its rows and reference runs)."""
    return [f"{OUT}/eval/{run.dir}/evaluation.json" for run in STUDY.reports[wildcards.report].runs]


def reference_json(wildcards):
    """The report's effective-robustness reference and the shift sets it fits, for the fit."""
    planned = STUDY.reports[wildcards.report]
    return json.dumps(
        {"id_test_set": STUDY.evaluation["id_test_set"], "test_sets": thawed(planned.settings["test_sets"])}
        | thawed(planned.reference),
        sort_keys=True,
    )


def report_spec(name, **extra):
    """What a report's writer reads (Study.report_spec), as JSON."""
    return json.dumps(STUDY.report_spec(name, **extra))  # keeps the rows in config's order


def report_inputs(name):
    """A loss-curve figure reads training metrics only; a table its runs' accuracies, and the
    effective-robustness fit when it reports ER."""
    kind = STUDY.reports[name].kind
    if kind.training_curves:
        return {}
    inputs = {"accuracy": f"{OUT}/analysis/{name}/accuracy.csv"}
    if kind.er:
        inputs["robustness"] = f"{OUT}/analysis/{name}/robustness.csv"
    return inputs


def report_input_args(wildcards, input):
    return " ".join(f"--{key} {quote(input[key])}" for key in ("accuracy", "robustness") if key in input.keys())


def report_figure(name):
    spec = STUDY.reports[name].settings
    return f"{OUT}/{spec.get('figure', name + STUDY.reports[name].kind.figure_suffix)}.png"


def report_display(name):
    """The table as report.html shows it (the report's caption reads it): a target too, so that a run
    made before it existed gets it."""
    return f"{OUT}/{name}_display.csv"


def report_outputs(name):
    return [f"{OUT}/{name}.csv", report_figure(name), report_display(name)]


def _exhibit(stem):
    match = re.fullmatch(r"(table|figure)(\d+)", stem)
    return f"{match[1].title()} {match[2]}" if match else None


def report_category(name):
    """report.html's section of a report: the paper's exhibits it is ("Table 1, Figure 2"), or its name."""
    exhibits = [_exhibit(name) or name]
    figure = _exhibit(Path(report_figure(name)).stem)
    return ", ".join(exhibits + [figure] * (figure is not None and figure not in exhibits))


PROVENANCE = f"{OUT}/provenance.csv"


def report_metrics(name):
    """loss_curves: the training metrics of the report's runs."""
    planned = STUDY.reports[name]
    if not planned.kind.training_curves:
        return []
    return [f"{OUT}/train/{run.dir}/metrics.jsonl" for run in planned.runs]


def report_metrics_arg(wildcards, input):
    return "--metrics " + " ".join(map(quote, input.metrics)) if input.metrics else ""


def final_outputs():
    targets = [
        f"{OUT}/generate/{dataset}/{strategy}/{split}/manifest.csv" for dataset, strategy, split in STUDY.generated_sets
    ]
    targets += sorted(
        {f"{OUT}/figure6_{dataset}.png" for dataset, _, split in STUDY.generated_sets if split == "train"}
    )
    for name in STUDY.reports:
        targets += [t for t in report_outputs(name) if t not in targets]
    targets += [f"{OUT}/benchmarks/{name}.json" for name in STUDY.config.get("benchmarks", {})]  # optional
    targets += [f"{OUT}/export/{e['dataset']}/{e['strategy']}" for e in STUDY.config.get("exports") or ()]
    return targets + [PROVENANCE] * bool(STUDY.reports)


include: "resources.smk"
