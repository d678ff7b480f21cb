"""Where exports go and what the share stage checks at plan time: each `exports` entry names a
set the plan makes; each `external` strategy names a set that exists (or that an export of this
config writes), a class_map that reads, and imports one train split."""

from __future__ import annotations

from pathlib import Path

from ..config import ConfigError
from ..study import Study
from .formats import read_class_map


def export_dir(out: str, dataset: str, strategy: str) -> str:
    return f"{out}/export/{dataset}/{strategy}"


def exports(config: dict) -> list[dict]:
    """The `exports` entries, as the export rule reads them (schema defaults filled)."""
    return list(config.get("exports") or [])


def export_entry(config: dict, dataset: str, strategy: str) -> dict:
    """The `exports` entry of one set (the export rule's wildcards)."""
    for entry in exports(config):
        if (entry["dataset"], entry["strategy"]) == (dataset, strategy):
            return entry
    raise ConfigError(f"exports: no entry exports {dataset}/{strategy}")


def export_of(config: dict, path: str) -> dict | None:
    """The `exports` entry whose folder is `path` (an external set this config itself exports)."""
    for entry in exports(config):
        if Path(export_dir(config["out"], entry["dataset"], entry["strategy"])) == Path(path):
            return entry
    return None


def _check_exports(study: Study) -> None:
    entries = exports(study.config)
    for i, entry in enumerate(entries):
        key, dataset, strategy = f"exports[{i}]", entry["dataset"], entry["strategy"]
        if dataset not in study.datasets:
            raise ConfigError(f"{key}.dataset: '{dataset}' is not one of datasets ({sorted(study.datasets)})")
        gen = study.datasets[dataset].generate.get(strategy)
        if gen is None:
            raise ConfigError(f"{key}.strategy: datasets.{dataset}.generate.{strategy} is not set, so there is no "
                              "such set to export")
        for split in entry["splits"]:
            if gen[f"{split}_shards"] == 0:
                raise ConfigError(f"{key}.splits: datasets.{dataset}.generate.{strategy}.{split}_shards is 0, so "
                                  f"there is no {split} split to export")
        if [e["dataset"] + "/" + e["strategy"] for e in entries].count(f"{dataset}/{strategy}") > 1:
            raise ConfigError(f"{key}: {dataset}/{strategy} is exported twice; give its splits in one entry")


def _check_external(study: Study, name: str, strategy) -> None:
    key = f"strategies.{name}"
    path = strategy.get("path")
    if not path:
        raise ConfigError(f"{key}.path: an external strategy needs the folder of the set to import")
    for dname, dataset in study.datasets.items():
        gen = dataset.generate.get(name)
        if gen and gen["val_shards"] > 0:
            raise ConfigError(f"datasets.{dname}.generate.{name}.val_shards: an external set is imported as a "
                              "train split only; set it to 0")
        if gen and gen["train_shards"] > 1:
            raise ConfigError(f"datasets.{dname}.generate.{name}.train_shards: an import is one job; set it to 1")
    if strategy.get("class_map"):
        study.read_file(f"{key}.class_map", strategy["class_map"], read_class_map, "a CSV with columns name,wnid")
    made_here = export_of(study.config, path) is not None or study.produced_by_demo(path)
    if made_here or not study.check_paths:
        return
    if not Path(path).expanduser().is_dir():
        raise ConfigError(f"{key}.path: '{path}' is not an existing folder (an ImageFolder tree, or a folder of "
                          "parquet or WebDataset shards)")


def check_share(study: Study) -> None:
    """Raise ConfigError naming the key of an export or an external strategy that cannot run."""
    _check_exports(study)
    for name, strategy in study.strategies.items():
        if strategy.kind.imported:
            _check_external(study, name, strategy.settings)
