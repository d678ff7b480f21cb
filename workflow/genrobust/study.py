"""The study a config describes, built once and frozen: its datasets, models, strategies, reports
and test sets (each with its registered kind), its training runs, generated sets and generation
shards, and the settings every stage shares (out, seed, evaluation, demo).

validation.check_config builds it once the config is complete and its names resolve, runs every
plan-time check on it, and returns it (`STUDY = check_config(config)` in rules/common.smk). The
rules, the checks, the cost report and the rehearsal ask it what the plan is, what each name's kind
is and what its settings are, instead of re-deriving them from the raw config. Its values are
read-only: a plan question has one answer for the whole DAG.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any, Mapping

from .config import (
    TrainingRun,
    active_reports,
    dataset_wnids,
    draws_of,
    generated_datasets,
    generation_jobs,
    produced_by_demo,
    read_config_file,
    real_per_class,
    report_reference,
    report_rows,
    report_runs,
    report_test_sets,
    training_runs,
)
from .kinds import REPORTS, STRATEGIES, TEST_SETS, ReportKind, StrategyKind, TestSetKind
from .kinds.reports import METRIC


def thawed(value: Any) -> Any:
    """A frozen value as plain JSON-able data again (mapping proxies dicts, tuples lists)."""
    if isinstance(value, Mapping):
        return {k: thawed(v) for k, v in value.items()}
    if isinstance(value, tuple):
        return [thawed(v) for v in value]
    return value


def _frozen(value: Any) -> Any:
    """A read-only deep copy: mappings become mapping proxies, lists tuples."""
    if isinstance(value, Mapping):
        return MappingProxyType({k: _frozen(v) for k, v in value.items()})
    if isinstance(value, (list, tuple)):
        return tuple(_frozen(v) for v in value)
    return copy.deepcopy(value)


@dataclass(frozen=True)
class Dataset:
    name: str
    settings: Mapping[str, Any]  # its config entry: train, val, classes, recipe, beton, generate, reference

    @property
    def generate(self) -> Mapping[str, Mapping[str, Any]]:
        """strategy -> its image counts and shards for this dataset (empty: generates nothing)."""
        return self.settings.get("generate") or MappingProxyType({})

    @property
    def recipe(self) -> Mapping[str, Any]:
        return self.settings["recipe"]


@dataclass(frozen=True)
class Model:
    name: str
    settings: Mapping[str, Any]  # its config entry: id, revision, weight_name, finetune, max_guidance

    @property
    def finetuned(self) -> bool:
        """Fine-tuned here: its id is the finetune_model job's output folder."""
        return bool(self.settings.get("finetune"))


@dataclass(frozen=True)
class Strategy:
    name: str
    kind: StrategyKind
    settings: Mapping[str, Any]  # its config entry, schema defaults filled
    draws: str  # the name its training draws are keyed by (config.draws_of)


@dataclass(frozen=True)
class Report:
    name: str
    kind: ReportKind
    dataset: str
    settings: Mapping[str, Any]  # its config entry
    rows: Mapping[str, str]  # label -> mixture, grids expanded
    runs: tuple[TrainingRun, ...]  # every run it needs (its rows', and its reference's when it reports ER)
    reference: Mapping[str, Any]  # {mixtures, csv}: the effective-robustness reference it is fitted against

    @property
    def mixtures(self) -> tuple[str, ...]:
        """The mixtures it trains: its rows', and its reference's when it reports ER (config.report_mixtures)."""
        mixes = tuple(dict.fromkeys(self.rows.values()))
        return mixes + tuple(m for m in self.reference["mixtures"] if m not in mixes) if self.kind.er else mixes

    @property
    def reference_key(self) -> str:
        """The config key its effective-robustness reference is set at (its own, or its dataset's)."""
        return f"reports.{self.name}.reference" if self.settings.get("reference") else \
            f"datasets.{self.dataset}.reference"


@dataclass(frozen=True)
class TestSet:
    name: str
    kind: TestSetKind
    settings: Mapping[str, Any]  # its config entry (path, name, complete, options)


@dataclass(frozen=True)
class Study:
    config: Mapping[str, Any]  # the whole completed config, read-only: what config.py's plan functions read
    out: str
    seed: int
    check_paths: bool
    demo: Mapping[str, Any] | None
    evaluation: Mapping[str, Any]
    datasets: Mapping[str, Dataset]
    models: Mapping[str, Model]
    strategies: Mapping[str, Strategy]
    reports: Mapping[str, Report]  # those this version builds (config.active_reports), in config order
    test_sets: Mapping[str, TestSet]
    runs: tuple[TrainingRun, ...]  # every run of every report, each once
    generated_sets: tuple[tuple[str, str, str], ...]  # (dataset, strategy, split) of every set it makes
    generation_jobs: tuple[tuple[str, str, str, int, int], ...]  # (dataset, strategy, split, shard, n_shards)
    evaluated_test_sets: Mapping[str, tuple[str, ...]]  # dataset -> the test sets its models are evaluated on

    @classmethod
    def of(cls, config: dict) -> Study:
        """The study of a config whose schema defaults are filled and whose names resolve
        (validation.check_config builds it so, between completing config and checking it)."""
        strategies = {name: Strategy(name, STRATEGIES[spec["kind"]], _frozen(spec), draws_of(config, name))
                      for name, spec in config["strategies"].items()}
        reports = {name: Report(name, REPORTS[spec["kind"]], spec["dataset"], _frozen(spec), _frozen(report_rows(spec)),
                                tuple(report_runs(config, spec)), _frozen(report_reference(spec, config)))
                   for name, spec in active_reports(config).items()}
        test_sets = {name: TestSet(name, TEST_SETS[spec["kind"]], _frozen(spec))
                     for name, spec in config["test_sets"].items()}
        evaluated = {dataset: tuple(report_test_sets(config, dataset)) for dataset in config["datasets"]}
        return cls(
            config=_frozen(config), out=config["out"], seed=config["seed"], check_paths=config.get("check_paths", True),
            demo=_frozen(config["demo"]) if config.get("demo") else None, evaluation=_frozen(config["evaluation"]),
            datasets=MappingProxyType({n: Dataset(n, _frozen(spec)) for n, spec in config["datasets"].items()}),
            models=MappingProxyType({n: Model(n, _frozen(spec)) for n, spec in config["models"].items()}),
            strategies=MappingProxyType(strategies), reports=MappingProxyType(reports),
            test_sets=MappingProxyType(test_sets), runs=tuple(training_runs(config)),
            generated_sets=tuple(generated_datasets(config)), generation_jobs=tuple(generation_jobs(config)),
            evaluated_test_sets=MappingProxyType(evaluated))

    def draws_of(self, source: str) -> str:
        """The name a training source's draws are keyed by ('real' and a strategy: its own)."""
        return self.strategies[source].draws if source in self.strategies else source

    @property
    def filtered_sets(self) -> tuple[tuple[str, str, str], ...]:
        """(dataset, strategy, split) of the sets chosen from another set's images (clip_filtered)."""
        return tuple(g for g in self.generated_sets if self.strategies[g[1]].kind.derived)

    def metric_reports(self) -> dict[str, dict]:
        """name -> config entry (plain data) of the built reports of the metric family (metrics/plan.py reads these)."""
        return {name: thawed(report.settings) for name, report in self.reports_that(family=METRIC).items()}

    def reports_that(self, **traits) -> dict[str, Report]:
        """The built reports whose kind has `traits` (reports_that(family=METRIC)), in config order."""
        return {n: r for n, r in self.reports.items() if all(getattr(r.kind, a) == v for a, v in traits.items())}

    def report_spec(self, name: str, **extra) -> dict:
        """What a report's writer reads, as plain data: its config with its rows expanded (in config
        order), the test sets' display names and kinds, the ID set, and `extra` (the metric reports' seed)."""
        report = self.reports[name]
        spec = dict(thawed(report.settings), rows=thawed(report.rows), **extra)
        spec["test_set_names"] = {t: s.settings.get("name", t) for t, s in self.test_sets.items()}
        spec["test_set_kinds"] = {t: s.kind.name for t, s in self.test_sets.items()}
        spec["id_test_set"] = self.evaluation["id_test_set"]
        return spec

    def base_source(self, source: str) -> str:
        """The strategy whose images a source is: a clip_filtered source's `source`, else itself."""
        strategy = self.strategies.get(source)
        return strategy.settings["source"] if strategy and strategy.kind.derived else source

    # What plan time can know of files config names (the demo builds some; check_paths off: none read).

    def produced_by_demo(self, path: str) -> bool:
        """Whether a demo rule builds `path`."""
        return produced_by_demo(self.config, path)

    def read_file(self, key: str, path: str, read, expected: str):
        """read(path), None where plan time cannot read it (config.read_config_file); a ConfigError names `key`."""
        return read_config_file(self.config, key, path, read, expected)

    def wnids(self, dataset: str) -> tuple[str, ...]:
        """The class list of datasets.<dataset>; a ConfigError naming the key where it cannot be read."""
        return dataset_wnids(self.config, dataset)

    def real_per_class(self, dataset: str) -> int | None:
        """Real train images per class where config fixes it (the demo's drawn data), else None."""
        return real_per_class(self.config, dataset)
