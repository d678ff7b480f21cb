"""The metric reports' entry point: each kind's writer (a CSV with its companions, and a PNG) is the
function its registration names (genrobust.kinds.reports). `genrobust metrics-report`, which the
rules run, calls here."""

from __future__ import annotations

import json
import sys

import pandas as pd

from genrobust.kinds import REPORTS
from genrobust.kinds.reports import METRIC


def make_metrics_report(kind: str, report: dict, inputs: dict, out_table: str, out_figure: str) -> pd.DataFrame:
    """One metric report as CSV (+ companions) and PNG; `genrobust report` builds the other kinds."""
    report_kind = REPORTS[kind]
    if report_kind.family != METRIC:
        raise ValueError(f"'{kind}' is not a metric report kind (one of {', '.join(REPORTS.names(family=METRIC))}); "
                         "`genrobust report` builds it")
    table = report_kind.load_writer()(report, inputs, out_table, out_figure)
    print(f"{kind}:\n{table.to_string()}\ninputs: {json.dumps(inputs)[:400]}", file=sys.stderr)
    return table
