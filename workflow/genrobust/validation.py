"""The config checked as a whole, before any job starts: every message names the key or path.

The Snakefile (and `load_config`, for the CLI) checks config in layers: the schema (schema.py:
types, keys, values, in one line), then `check_config` here, in two steps:
- parse: complete the config (fine-tuned models' ids, guidance sweeps' strategies, seeds_from
  chains) and check that every name it uses resolves, then build the Study (study.py) from it;
- check the Study: what values mean (checks.py and the stage checks it calls) and the paths the
  planned jobs read. Every check from here on reads the Study, not the config.
This module sits above every module it calls: config.py is the plan, study.py its frozen form, and
checks of a stage live with the stage.
"""

from __future__ import annotations

from pathlib import Path

from .checks import check_semantics
from .config import (
    ConfigError,
    dataset_wnids,
    expand_guidance_sweeps,
    parse_mixture,
    read_class_file,
    report_rows,
    resolve_seeds_from,
)
from .finetune.plan import check_finetune, check_finetune_environment, resolve_finetuned_ids
from .kinds import REPORTS, STRATEGIES
from .schema import SCHEMA, schema_problem
from .share.plan import check_share
from .study import Study


def check_config(config: dict) -> Study:
    """The Study of `config`, completed and checked; raises ConfigError naming the key (and path)
    at fault. Completes config in place as the plan reads it."""
    study = parse_study(config)
    check_study(study)
    return study


def parse_study(config: dict) -> Study:
    """Complete config, check that the names it uses resolve, and build its Study."""
    _check_output_folders(config)
    resolve_finetuned_ids(config)  # a fine-tuned model's id is its job's output folder
    expand_guidance_sweeps(config)  # a guidance_curve's strategies, one per guidance value
    _check_strategies(config)
    resolve_seeds_from(config)  # a chain c -> b -> a: c's seeds are a's
    if config["evaluation"]["id_test_set"] not in config["test_sets"]:
        raise ConfigError(f"evaluation.id_test_set: '{config['evaluation']['id_test_set']}' is not one of test_sets")
    for key, reference in _references(config):
        _check_reference(reference, key)
    for name, report in config["reports"].items():
        _check_report(config, name, report)
    _check_generation(config)
    return Study.of(config)


def check_study(study: Study) -> None:
    """What the Study's values mean and the paths its jobs read; raises ConfigError naming the key."""
    check_finetune(study)
    check_share(study)  # exports name planned sets; external sets exist
    for name, strategy in study.strategies.items():
        for field in strategy.kind.required_keys:
            if not strategy.settings.get(field):
                raise ConfigError(f"strategies.{name}.{field}: a {strategy.kind.name} strategy needs it")
    if study.demo:
        read_class_file(study.demo["classes"])
    check_semantics(study)  # files that must parse, models that must load, mixtures that must fit
    if not study.check_paths:
        return
    _check_paths(study)
    check_finetune_environment(study)


def load_config(configfiles: list[str], overrides: dict | None = None) -> dict:
    """The config Snakemake builds from `configfiles` (merged in order, as it merges them) and
    `overrides` (its --config), with the schema's defaults filled and checked as the Snakefile
    checks it."""
    import yaml
    from snakemake.utils import update_config, validate

    config: dict = {}
    for path in configfiles:
        update_config(config, yaml.safe_load(Path(path).read_text()) or {})
    update_config(config, overrides or {})
    problem = schema_problem(config)
    if problem:
        raise ConfigError(problem)
    validate(config, str(SCHEMA))
    check_config(config)
    return config


def _check_output_folders(config: dict) -> None:
    demo = config.get("demo") or {}
    for key, value in (("out", config["out"]), *((f"demo.{k}", demo.get(k)) for k in ("data", "models"))):
        if value and ("{" in value or "}" in value):  # the rules' output paths start with it
            raise ConfigError(f"{key}: '{value}' holds a brace, which Snakemake reads as a wildcard in the rules' "
                              "output paths; choose a folder name without { or }")


def _check_strategies(config: dict) -> None:
    models, strategies = config["models"], config["strategies"]
    for name, strategy in strategies.items():
        model = strategy.get("model")
        if STRATEGIES[strategy["kind"]].diffusion and model is None:
            raise ConfigError(f"strategies.{name}.model: a {strategy['kind']} strategy needs a model (one of models)")
        if model is not None and model not in models:
            raise ConfigError(f"strategies.{name}.model: '{model}' is not one of models ({sorted(models)})")
        if name in ("real", "n"):
            raise ConfigError(f"strategies.{name}: '{name}' is reserved in mixture names")
        seeds_from = strategy.get("seeds_from")
        seeds_kind = strategies.get(seeds_from, {}).get("kind")  # None: not a strategy
        if STRATEGIES[strategy["kind"]].imported:  # a copy of a set: it trains with that set's draws
            if seeds_from is not None and (seeds_kind is None or STRATEGIES[seeds_kind].imported):
                raise ConfigError(f"strategies.{name}.seeds_from: '{seeds_from}' must be a strategy that makes "
                                  "its images, whose training draws this imported copy reuses")
        elif seeds_from is not None and seeds_kind != strategy["kind"]:
            raise ConfigError(f"strategies.{name}.seeds_from: '{seeds_from}' must be a strategy of the same kind "
                              f"({strategy['kind']}), whose per-image seeds this one reuses")


def _references(config: dict) -> list[tuple[str, dict]]:
    refs = [(f"datasets.{d}.reference", spec["reference"]) for d, spec in config["datasets"].items()]
    return refs + [(f"reports.{r}.reference", spec["reference"]) for r, spec in config["reports"].items()
                   if spec.get("reference")]


def _check_reference(reference: dict, key: str) -> None:
    for mix in reference.get("mixtures") or []:
        if parse_mixture(mix).sources != ["real"]:
            raise ConfigError(f"{key}.mixtures: '{mix}' is not real data only (standard models)")
    if not reference.get("mixtures") and not reference.get("csv"):
        raise ConfigError(f"{key}: an effective-robustness reference needs mixtures (standard models "
                          "trained here) or a csv of published ones, or both")


def _check_report(config: dict, name: str, report: dict) -> None:
    """The report's dataset, test sets, strategy and every row's sources are defined and generated."""
    datasets, strategies, test_sets = config["datasets"], config["strategies"], config["test_sets"]
    key, dataset = f"reports.{name}", report["dataset"]
    if dataset not in datasets:
        raise ConfigError(f"{key}.dataset: '{dataset}' is not one of datasets ({sorted(datasets)})")
    for t in report.get("test_sets", []):
        if t not in test_sets:
            raise ConfigError(f"{key}.test_sets: '{t}' is not one of test_sets ({sorted(test_sets)})")
    if REPORTS[report["kind"]].on_strategy and report["strategy"] not in strategies:
        raise ConfigError(f"{key}.strategy: '{report['strategy']}' is not one of strategies ({sorted(strategies)})")
    generate = datasets[dataset].get("generate", {})
    for label, mix in report_rows(report).items():
        try:
            sources = parse_mixture(mix).sources
        except ConfigError as err:
            raise ConfigError(f"{key}.rows.{label}: {err}") from None
        for source in sources:
            if source == "real":
                continue
            if source not in strategies:
                raise ConfigError(f"{key}.rows.{label}: source '{source}' of '{mix}' is not 'real' "
                                  f"or one of strategies ({sorted(strategies)})")
            if source not in generate:
                raise ConfigError(f"{key}.rows.{label}: '{mix}' trains on {source}, but "
                                  f"datasets.{dataset}.generate.{source} is not set")


def _check_generation(config: dict) -> None:
    """Each dataset's class list parses; what it generates is a strategy, with counts where needed."""
    strategies = config["strategies"]
    for dname, dataset in config["datasets"].items():
        dataset_wnids(config, dname)  # its class list parses (a ConfigError names datasets.<name>.classes)
        for strategy, gen in dataset.get("generate", {}).items():
            key = f"datasets.{dname}.generate.{strategy}"
            if strategy not in strategies:
                raise ConfigError(f"{key}: '{strategy}' is not one of strategies ({sorted(strategies)})")
            if STRATEGIES[strategies[strategy]["kind"]].class_conditioned:
                for split in ("train", "val"):
                    if gen[f"{split}_shards"] > 0 and f"{split}_per_class" not in gen:
                        raise ConfigError(f"{key}.{split}_per_class: a {strategies[strategy]['kind']} strategy "
                                          f"needs images per class for its {split} split (or {split}_shards: 0)")


def _needed_paths(study: Study) -> list[tuple[str, str]]:
    """(key, path) of every dataset, test set, model folder and file the planned jobs read."""
    datasets, test_sets = study.datasets, study.test_sets
    used = {r.dataset for r in study.runs} | {d for d, s, _ in study.generated_sets
                                              if not study.strategies[s].kind.class_conditioned}
    used |= {model.settings["finetune"]["dataset"] for model in study.models.values() if model.finetuned}
    metric_reports = [r for r in study.reports.values() if not r.kind.evaluated]
    used |= {r.dataset for r in metric_reports}  # their real images are embedded
    needed = [(f"datasets.{d}.{split}", datasets[d].settings[split]) for d in sorted(used) for split in ("train", "val")]
    needed += [(f"strategies.{s}.{field}", study.strategies[s].settings[field])
               for s in sorted({s for _, s, _ in study.generated_sets})
               for field in ("weights", "mixing_set") if study.strategies[s].settings.get(field)]
    needed += [(f"test_sets.{t}.path", test_sets[t].settings["path"])
               for d in sorted(used) for t in study.evaluated_test_sets[d]]
    needed += [(f"test_sets.{t}.path", test_sets[t].settings["path"]) for r in metric_reports  # embedded: Table 2's
               for t in r.settings.get("test_sets", ()) if (f"test_sets.{t}.path", test_sets[t].settings["path"])
               not in needed]
    needed += [(f"{key}.csv.path", ref["csv"]["path"]) for key, ref in _references(study.config) if ref.get("csv")]
    needed += [(f"models.{m}.id", model.settings["id"]) for m, model in study.models.items() if not model.finetuned
               and (model.settings["id"].startswith((".", "/", "~")) or study.produced_by_demo(model.settings["id"]))]
    return needed


def _check_paths(study: Study) -> None:
    for key, path in _needed_paths(study):
        if not study.produced_by_demo(path) and not Path(path).expanduser().exists():
            raise ConfigError(f"{key}: '{path}' does not exist. Point it at your copy (README.md, 'Running "
                              "the study on a cluster', step 1: the layouts), or plan without data: "
                              "snakemake -n --config check_paths=False")
