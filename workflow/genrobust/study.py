"""The study a checked config describes, built once and frozen: its strategies, reports and test
sets with their registered kinds, its training runs, generated sets and generation shards.

The rules build it once, after validation.check_config has checked and completed the config
(`STUDY = Study.of(config)` in rules/common.smk), and ask it what the plan is and what each name's
kind is, instead of re-deriving both from the raw config in every input function. Its values are
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
    draws_of,
    generated_datasets,
    generation_jobs,
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


@dataclass(frozen=True)
class TestSet:
    name: str
    kind: TestSetKind
    settings: Mapping[str, Any]  # its config entry (path, name, complete, options)


@dataclass(frozen=True)
class Study:
    strategies: Mapping[str, Strategy]
    reports: Mapping[str, Report]  # those this version builds (config.active_reports), in config order
    test_sets: Mapping[str, TestSet]
    runs: tuple[TrainingRun, ...]  # every run of every report, each once
    generated_sets: tuple[tuple[str, str, str], ...]  # (dataset, strategy, split) of every set it makes
    generation_jobs: tuple[tuple[str, str, str, int, int], ...]  # (dataset, strategy, split, shard, n_shards)
    evaluated_test_sets: Mapping[str, tuple[str, ...]]  # dataset -> the test sets its models are evaluated on

    @classmethod
    def of(cls, config: dict) -> Study:
        """The study of a config that validation.check_config has checked and completed."""
        strategies = {name: Strategy(name, STRATEGIES[spec["kind"]], _frozen(spec), draws_of(config, name))
                      for name, spec in config["strategies"].items()}
        reports = {name: Report(name, REPORTS[spec["kind"]], spec["dataset"], _frozen(spec), _frozen(report_rows(spec)),
                                tuple(report_runs(config, spec)), _frozen(report_reference(spec, config)))
                   for name, spec in active_reports(config).items()}
        test_sets = {name: TestSet(name, TEST_SETS[spec["kind"]], _frozen(spec))
                     for name, spec in config["test_sets"].items()}
        evaluated = {dataset: tuple(report_test_sets(config, dataset)) for dataset in config["datasets"]}
        return cls(MappingProxyType(strategies), MappingProxyType(reports), MappingProxyType(test_sets),
                   tuple(training_runs(config)), tuple(generated_datasets(config)), tuple(generation_jobs(config)),
                   MappingProxyType(evaluated))

    def draws_of(self, source: str) -> str:
        """The name a training source's draws are keyed by ('real' and a strategy: its own)."""
        return self.strategies[source].draws if source in self.strategies else source

    @property
    def filtered_sets(self) -> tuple[tuple[str, str, str], ...]:
        """(dataset, strategy, split) of the sets chosen from another set's images (clip_filtered)."""
        return tuple(g for g in self.generated_sets if self.strategies[g[1]].kind.derived)

    def metric_reports(self, config: dict) -> dict[str, dict]:
        """name -> config entry of the built reports of the metric family (metrics/plan.py reads these)."""
        return {name: config["reports"][name] for name in self.reports_that(family=METRIC)}

    def reports_that(self, **traits) -> dict[str, Report]:
        """The built reports whose kind has `traits` (reports_that(family=METRIC)), in config order."""
        return {n: r for n, r in self.reports.items() if all(getattr(r.kind, a) == v for a, v in traits.items())}
