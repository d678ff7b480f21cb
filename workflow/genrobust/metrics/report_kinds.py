"""The metric report kinds by name: each kind's writer (a CSV with its companions, and a PNG).
The rules and the CLI ask here; a new metric report kind is its writer, one line here, its
caption (workflow/report/<kind>.rst) and its test."""

from __future__ import annotations

import json
import sys

import pandas as pd

from .plan import BENCHMARK_KINDS, COST_KIND, DIVERSITY_KIND, FID_KIND
from .reports import clip_diversity, fid_table, generated_benchmark, generated_scatter
from .strategy_reports import cost_frontier, diversity_er, guidance_curve

WRITERS = {FID_KIND: fid_table, DIVERSITY_KIND: clip_diversity, BENCHMARK_KINDS[0]: generated_benchmark,
           BENCHMARK_KINDS[1]: generated_scatter, "guidance_curve": guidance_curve, "diversity_er": diversity_er,
           COST_KIND: cost_frontier}


def make_metrics_report(kind: str, report: dict, inputs: dict, out_table: str, out_figure: str) -> pd.DataFrame:
    """One metric report (kinds in config.METRIC_REPORT_KINDS) as CSV (+ companions) and PNG."""
    if kind not in WRITERS:
        raise ValueError(f"unknown metric report kind '{kind}' (one of {', '.join(WRITERS)})")
    table = WRITERS[kind](report, inputs, out_table, out_figure)
    print(f"{kind}:\n{table.to_string()}\ninputs: {json.dumps(inputs)[:400]}", file=sys.stderr)
    return table
