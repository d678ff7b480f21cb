"""The report kinds: what each trains and evaluates, what it embeds, its keys, its rows and its
writer.

Adding a report kind is one `REPORTS.register(ReportKind(...))` here (its rows function too, when
its rows are not its config's `rows`), its writer (the function `writer` names), its caption
(workflow/report/<kind>.rst) and its test. The rules, the planner, the checks and the rehearsal
ask here what a kind needs."""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from typing import Callable

from ..errors import ConfigError
from .registry import Registry

# Report families: built by `genrobust report` from the runs' accuracy and effective robustness
# (rules/report.smk), or by `genrobust metrics-report` from embeddings and predictions (metrics.smk).
TRAINING, METRIC = "training", "metric"
# What a report embeds (metrics/plan.report_sets): FID's Inception features of its sources and test
# sets, CLIP features of its sources, of the val sets a benchmark classifies, or of its rows' sources.
FID_SETS, SOURCE_SETS, BENCHMARK_SETS, ROW_SETS = "fid", "sources", "benchmark", "rows"

# The keys each report kind reads, besides kind and dataset.
TRAINED = ("archs", "seeds", "test_sets", "column_names", "figure")
ER = (*TRAINED, "reference")
CLIP = ("threshold",)


def percent(value: float) -> str:
    """A percentage as mixture names spell it: 100.0 -> '100', 12.5 -> '12.5'."""
    return f"{value:g}"


@dataclass(frozen=True)
class ReportKind:
    name: str
    family: str  # TRAINING or METRIC
    keys: tuple[str, ...]  # the config keys it reads besides kind and dataset
    writer: str  # 'module:function' that writes its table and figure
    rows: Callable[[dict], dict[str, str]] | None = None  # label -> mixture; None: its config's `rows`
    trains: bool = True  # trains the rows' runs (fid_table and clip_diversity train nothing)
    evaluated: bool = True  # its runs are evaluated on its test sets
    er: bool = False  # reports effective robustness: also trains its reference runs
    embeds: str = ""  # FID_SETS, SOURCE_SETS, BENCHMARK_SETS, ROW_SETS or '' (nothing)
    diversity_er: bool = False  # each row's set's CLIP diversity beside its ER (the analysis rules' outputs)
    costs: bool = False  # reads what each row's set cost to generate (the gather rule's summaries)
    classifies: bool = False  # pretrained and trained classifiers predict on generated val sets
    training_curves: bool = False  # reads the runs' training metrics, not evaluations
    on_strategy: bool = False  # its rows are a grid over one strategy (`strategy` must be a strategy)
    guidance_sweep: bool = False  # derives a strategy per guidance value from its `strategy`
    cluster_job: bool = False  # heavy enough to run as a cluster job (the others run on the submit host)
    figure_suffix: str = ""  # the default figure is <name><figure_suffix>.png

    def report_rows(self, report: dict) -> dict[str, str]:
        """label -> mixture of every training set the report compares (grids expanded)."""
        return self.rows(report) if self.rows else dict(report.get("rows") or {})

    def load_writer(self) -> Callable:
        module, _, function = self.writer.partition(":")
        return getattr(importlib.import_module(module), function)


# ----------------------------------------------------------------------------- rows of the grids


def mixture_grid_rows(report: dict) -> dict[str, str]:
    s = report["strategy"]
    return {f"real {percent(r)}% + {s} {percent(g)}%": f"real_{percent(r)}+{s}_{percent(g)}"
            for r in report["real_percents"] for g in report["generated_percents"]}


def budget_curve_rows(report: dict) -> dict[str, str]:
    s, total = report["strategy"], report["total"]
    # total 'real' = the real train set's size: shares are then plain percentages of it, so the end
    # points are the same runs as real_100 and <strategy>_100 (trained once).
    prefix = "" if total == "real" else f"n_{total}+"
    rows = {}
    for share in report["generated_shares"]:
        terms = [(src, 100 * p) for src, p in (("real", 1 - share), (s, share)) if p > 0]
        rows[f"{s} share {share:g}"] = prefix + "+".join(f"{src}_{percent(p)}" for src, p in terms)
    return rows


def scaling_curve_rows(report: dict) -> dict[str, str]:
    """Real alone, then generated alone and added to all the real data."""
    s = report["strategy"]
    rows = {"real only": "real_100"}
    rows.update({f"{s} {percent(g)}%": f"{s}_{percent(g)}" for g in report["generated_percents"]})
    rows.update({f"real + {s} {percent(g)}%": f"real_100+{s}_{percent(g)}" for g in report["generated_percents"]})
    return rows


TRAIN_ON = {"generated": "{s}_{p}", "real+generated": "real_100+{s}_{p}"}  # a guidance_curve's `train_on`


def guidance_train_on(report: dict) -> list[str]:
    """What a guidance_curve trains on: its `train_on`, else each set added to all the real data."""
    return report.get("train_on", ["real+generated"])


def guidance_label(guidance: str, train_on: str) -> str:
    """A guidance_curve row's label (the report's table index)."""
    return f"guidance {guidance}, {train_on}"


def guidance_rows(report: dict) -> dict[str, str]:
    """label -> mixture of a guidance_curve, per guidance value and `train_on` (after
    config.expand_guidance_sweeps has named its strategies)."""
    if "guidance_strategies" not in report:
        raise ConfigError("a guidance_curve report is planned after expand_guidance_sweeps(config) names its "
                          "strategies")
    p = percent(report.get("generated_percent", 100))
    return {guidance_label(g, on): TRAIN_ON[on].format(s=s, p=p)
            for g, s in report["guidance_strategies"].items() for on in guidance_train_on(report)}


def classifier_rows(report: dict) -> dict[str, str]:
    """A benchmark's trained classifiers (its pretrained ones train nothing)."""
    return {label: c["mixture"] for label, c in report["classifiers"].items() if "mixture" in c}


# ----------------------------------------------------------------------------- the kinds

REPORTS: Registry[ReportKind] = Registry("report")
_TABLE = "genrobust.report:"
_METRIC = "genrobust.metrics.reports:"
_STRATEGY = "genrobust.metrics.strategy_reports:"
_BENCHMARK = ("strategy", "classifiers", "archs", "seeds", "figure", *CLIP)
for _kind in (
    ReportKind("robustness_table", TRAINING, ("rows", *ER), _TABLE + "robustness_table_report", er=True,
               figure_suffix="_accuracy"),
    ReportKind("accuracy_table", TRAINING, ("rows", *ER), _TABLE + "accuracy_table_report",
               figure_suffix="_accuracy"),
    ReportKind("mixture_grid", TRAINING, ("strategy", "real_percents", "generated_percents", *ER),
               _TABLE + "mixture_grid_report", mixture_grid_rows, er=True, on_strategy=True),
    ReportKind("budget_curve", TRAINING, ("strategy", "total", "generated_shares", *ER), _TABLE + "budget_curve_report",
               budget_curve_rows, er=True, on_strategy=True),
    ReportKind("scaling_curve", TRAINING, ("strategy", "generated_percents", *ER), _TABLE + "scaling_curve_report",
               scaling_curve_rows, er=True, on_strategy=True),
    ReportKind("corruption_table", TRAINING, ("rows", *ER), _TABLE + "corruption_table_report", er=True),
    ReportKind("loss_curves", TRAINING, ("rows", *TRAINED), _TABLE + "loss_curves_report", training_curves=True),
    ReportKind("fid_table", METRIC, ("sources", "test_sets", "column_names", "figure", "kid", "objectnet_classes"),
               _METRIC + "fid_table", trains=False, evaluated=False, embeds=FID_SETS, cluster_job=True),
    ReportKind("clip_diversity", METRIC, ("sources", "figure", *CLIP), _METRIC + "clip_diversity", trains=False,
               evaluated=False, embeds=SOURCE_SETS),
    ReportKind("generated_benchmark", METRIC, _BENCHMARK, _METRIC + "generated_benchmark", classifier_rows,
               evaluated=False, embeds=BENCHMARK_SETS, classifies=True),
    ReportKind("generated_scatter", METRIC, _BENCHMARK, _METRIC + "generated_scatter", classifier_rows,
               evaluated=False, embeds=BENCHMARK_SETS, classifies=True),
    ReportKind("guidance_curve", METRIC, ("strategy", "guidance", "train_on", "generated_percent",
                                          "guidance_strategies", *ER, *CLIP), _STRATEGY + "guidance_curve",
               guidance_rows, er=True, embeds=ROW_SETS, diversity_er=True, guidance_sweep=True),
    ReportKind("diversity_er", METRIC, ("rows", *ER, *CLIP), _STRATEGY + "diversity_er", er=True, embeds=ROW_SETS,
               diversity_er=True),
    ReportKind("cost_frontier", METRIC, ("rows", *ER, *CLIP), _STRATEGY + "cost_frontier", er=True, embeds=ROW_SETS,
               diversity_er=True, costs=True),
):
    REPORTS.register(_kind)
