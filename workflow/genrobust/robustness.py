"""Effective robustness (Taori et al. 2020, as in imagenet-testbed).

Fit a line to (logit(ID accuracy), logit(OOD accuracy)) over standard models (trained on real
data only); a model's effective robustness on a shift set is its OOD accuracy minus the
accuracy the line predicts from its ID accuracy:

    ER = acc_ood - sigmoid(slope * logit(acc_id) + intercept)

For ImageNet-R and ObjectNet, which cover a subset of classes, the ID accuracy is measured on
ImageNet val restricted to (and with logits masked to) those classes: the accuracy table names it
'<id set>@<shift set>'. Accuracies are fractions in [0, 1]; they are clipped to
[EPS, 1 - EPS] before the logit (imagenet-testbed's 1e-6) so that a toy model at 0% or 100%
does not give infinities.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass

import numpy as np
import pandas as pd

from . import io

EPS = 1e-6
RUN_KEYS = ["dataset", "mix", "arch", "seed"]


def logit(p):
    p = np.clip(np.asarray(p, dtype=float), EPS, 1 - EPS)
    return np.log(p / (1 - p))


def sigmoid(x):
    return 1 / (1 + np.exp(-np.asarray(x, dtype=float)))


@dataclass(frozen=True)
class LinearFit:
    slope: float
    intercept: float
    n_points: int

    def predict(self, id_accuracy):
        return sigmoid(self.slope * logit(id_accuracy) + self.intercept)


def fit_logit_line(id_accuracy, ood_accuracy) -> LinearFit:
    """Least-squares line in logit space; needs at least two distinct ID accuracies."""
    x, y = logit(id_accuracy), logit(ood_accuracy)
    if len(x) < 2 or np.ptp(x) == 0:
        raise ValueError(f"effective robustness needs >= 2 standard models with different ID accuracy; "
                         f"got {len(x)} point(s) (the report's reference: mixtures / csv)")
    slope, intercept = np.polyfit(x, y, 1)
    return LinearFit(float(slope), float(intercept), len(x))


def effective_robustness(fit: LinearFit, id_accuracy, ood_accuracy):
    return np.asarray(ood_accuracy, dtype=float) - fit.predict(id_accuracy)


def id_column(id_test_set: str, test_set: str, available: set[str]) -> str:
    """The ID accuracy a shift set is compared with: the class-subset one when it was measured."""
    subset = f"{id_test_set}@{test_set}"
    return subset if subset in available else id_test_set


def reference_points(reference_csv: dict | None, test_set: str, id_col: str,
                     frame: pd.DataFrame | None = None) -> pd.DataFrame:
    """Extra standard-model points from a CSV such as imagenet-testbed's accuracies (`frame`: the
    CSV, when already read).

    reference_csv: {path, columns: {our name: csv column}, type_column?, types?, percent?}.
    """
    if not reference_csv:
        return pd.DataFrame(columns=["id_top1", "top1"])
    frame = pd.read_csv(reference_csv["path"]) if frame is None else frame
    if reference_csv.get("type_column"):
        frame = frame[frame[reference_csv["type_column"]].isin(reference_csv.get("types", ["STANDARD"]))]
    columns = reference_csv["columns"]
    if test_set not in columns or id_col not in columns:
        return pd.DataFrame(columns=["id_top1", "top1"])
    scale = 100.0 if reference_csv.get("percent", True) else 1.0
    points = pd.DataFrame({"id_top1": frame[columns[id_col]] / scale, "top1": frame[columns[test_set]] / scale})
    return points.dropna()


def robustness_table(accuracy: pd.DataFrame, id_test_set: str, reference_mixtures: list[str],
                     reference_csv: dict | None = None, test_sets: list[str] | None = None) -> pd.DataFrame:
    """ER of every model on each of `test_sets` (the report's shift sets; default: every shift
    set in the table), from the long accuracy table (one row per run x set). A run is evaluated on
    every set any report of its dataset asks for (ImageNet-C for Table 9 too), so a report fits
    lines for its own sets only: its reference need not cover the others."""
    wide = accuracy.pivot_table(index=RUN_KEYS, columns="test_set", values="top1").reset_index()
    available = set(accuracy["test_set"])
    if test_sets is None:
        shift_sets = sorted(t for t in available if t != id_test_set and "@" not in t)
    else:
        shift_sets = [t for t in test_sets if t != id_test_set]
        missing = [t for t in shift_sets if t not in available] + ([id_test_set] if id_test_set not in available
                                                                  else [])
        if missing:
            raise ValueError(f"the accuracy table has no results on {missing} (it has {sorted(available)})")
    rows = []
    for _, runs in wide.groupby("dataset"):
        for test_set in shift_sets:
            id_col = id_column(id_test_set, test_set, available)
            have = runs.dropna(subset=[id_col, test_set])
            standard = have[have["mix"].isin(reference_mixtures)]
            extra = reference_points(reference_csv, test_set, id_col)
            reference_id = np.r_[standard[id_col].to_numpy(), extra["id_top1"].to_numpy()]
            try:
                fit = fit_logit_line(reference_id, np.r_[standard[test_set].to_numpy(), extra["top1"].to_numpy()])
            except ValueError as err:
                raise ValueError(f"{test_set} (ID measure {id_col}): {err}") from None
            about_fit = {"slope": fit.slope, "intercept": fit.intercept, "n_reference": fit.n_points,
                         "n_reference_runs": len(standard), "n_reference_published": len(extra),
                         "reference_id_min": float(reference_id.min()), "reference_id_max": float(reference_id.max())}
            predicted = fit.predict(have[id_col].to_numpy())
            for (_, run), pred in zip(have.iterrows(), predicted):
                rows.append({**{k: run[k] for k in RUN_KEYS}, "test_set": test_set, "id_measure": id_col,
                             "id_top1": run[id_col], "top1": run[test_set], "predicted_top1": float(pred),
                             "effective_robustness": float(run[test_set] - pred), **about_fit})
    return pd.DataFrame(rows)


FIT_COLUMNS = ["slope", "intercept", "n_reference", "n_reference_runs", "n_reference_published",
               "reference_id_min", "reference_id_max"]


def describe_reference(reference: dict) -> str:
    parts = []
    if reference.get("mixtures"):
        parts.append("this study's runs on " + ", ".join(reference["mixtures"]))
    if reference.get("csv"):
        parts.append(reference["csv"].get("source") or reference["csv"]["path"])
    return " + ".join(parts)


def fits_of(table: pd.DataFrame) -> pd.DataFrame:
    """One row per shift set: the line its ER is measured against (points, ID range, reference)."""
    keys = [c for c in ("test_set", "id_measure") if c in table.columns]
    about = [c for c in (*FIT_COLUMNS, "reference") if c in table.columns]
    return table.groupby(keys, sort=False)[about].first().reset_index()


def write_robustness_table(accuracy_csv: str, reference: dict, out: str) -> pd.DataFrame:
    """The fit stage of one report: effective robustness of each of its models on its shift sets
    against its reference ({id_test_set, test_sets, mixtures, csv}); each row names the line it
    was measured against."""
    table = robustness_table(io.read_csv(accuracy_csv), reference["id_test_set"], reference["mixtures"],
                             reference.get("csv"), reference.get("test_sets"))
    table["reference"] = describe_reference(reference)
    io.write_csv(out, table)
    for fit in fits_of(table).itertuples():
        print(f"[robustness] {fit.test_set}: line through {fit.n_reference} standard models "
              f"({fit.n_reference_runs} runs here + {fit.n_reference_published} published), ID "
              f"{100 * fit.reference_id_min:.1f}-{100 * fit.reference_id_max:.1f}%", file=sys.stderr)
    return table

