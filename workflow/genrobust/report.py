"""The paper's tables and figures, reduced from the per-dataset analysis tables.

Tables are written in the paper's layout (rows: training data, columns: test sets, then
Average) with values in percent, mean over architectures and seeds; a `_std` companion holds
the standard deviation over those runs.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from . import io

# Figure 2's colours: real (green), generated (blue), real + generated (orange), then others.
COLOURS = ["#4daf4a", "#377eb8", "#ff7f00", "#984ea3", "#e41a1c", "#a65628", "#f781bf", "#999999"]


def _runs_of(frame: pd.DataFrame, report: dict, mix: str) -> pd.DataFrame:
    return frame[(frame["dataset"] == report["dataset"]) & (frame["mix"] == mix)
                 & frame["arch"].isin(report["archs"]) & frame["seed"].isin(report["seeds"])]


def row_table(frame: pd.DataFrame, report: dict, value: str, test_sets: list[str],
              names: dict[str, str]) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(mean, std) tables of `value` x 100: one row per report row, one column per test set + Average."""
    means, stds = {}, {}
    for label, mix in report["rows"].items():
        runs = _runs_of(frame, report, mix)
        if runs.empty:
            raise ValueError(f"no results for row '{label}' ({mix}) of dataset {report['dataset']}")
        # Average over test sets per run first, so the Average column's std is over runs too.
        per_run = runs.pivot_table(index=["arch", "seed"], columns="test_set", values=value)
        missing = [t for t in test_sets if t not in per_run.columns]
        if missing:
            raise ValueError(f"row '{label}' ({mix}) has no results on {missing}")
        per_run = per_run[test_sets] * 100
        per_run["Average"] = per_run.mean(axis=1)
        means[label] = per_run.mean()
        stds[label] = per_run.std(ddof=1) if len(per_run) > 1 else per_run.mean() * np.nan
    columns = {t: names.get(t, t) for t in test_sets}
    mean = pd.DataFrame(means).T.rename(columns=columns)
    std = pd.DataFrame(stds).T.rename(columns=columns)
    mean.index.name = std.index.name = "Training data"
    return mean.round(2), std.round(2)


def write_table(mean: pd.DataFrame, std: pd.DataFrame, out_table: str) -> None:
    with io.atomic_path(out_table) as tmp:
        mean.to_csv(tmp)
    out_std = Path(out_table).with_name(Path(out_table).stem + "_std.csv")
    with io.atomic_path(out_std) as tmp:
        std.to_csv(tmp)


def accuracy_bars(mean: pd.DataFrame, std: pd.DataFrame, out_figure: str, title: str) -> None:
    """Grouped bars: test sets on x, one bar per training data, std over runs as error bars."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    sets = list(mean.columns)
    rows = list(mean.index)
    width = 0.8 / len(rows)
    fig, ax = plt.subplots(figsize=(1.6 * len(sets) + 2, 4))
    x = np.arange(len(sets))
    for i, row in enumerate(rows):
        errors = std.loc[row].to_numpy(dtype=float)
        bars = ax.bar(x + (i - (len(rows) - 1) / 2) * width, mean.loc[row].to_numpy(), width,
                      yerr=None if np.isnan(errors).all() else np.nan_to_num(errors), capsize=2, label=row,
                      color=COLOURS[i % len(COLOURS)])
        ax.bar_label(bars, fmt="%.1f", fontsize=7, padding=2)
    ax.set_xticks(x, sets)
    ax.set_ylabel("Top-1 accuracy (%)")
    ax.set_ylim(0, min(100, float(np.nanmax(mean.to_numpy())) * 1.2 + 5))
    ax.set_title(title)
    ax.legend(frameon=False, fontsize=8)
    ax.spines[["top", "right"]].set_visible(False)
    fig.tight_layout()
    with io.atomic_path(out_figure) as tmp:
        fig.savefig(tmp, dpi=150)
    plt.close(fig)


def make_report(kind: str, accuracy_csv: str, robustness_csv: str, report: dict, out_table: str,
                out_figure: str) -> pd.DataFrame:
    """robustness_table: effective robustness (percent points) per shift set (paper Table 1);
    accuracy_table: accuracy on the ID set and the shift sets (Tables 3 and 4). Both come with
    the accuracy bars of their rows (for Table 1 that is Figure 2)."""
    names = report["test_set_names"]
    accuracy = io.read_csv(accuracy_csv)
    acc_mean, acc_std = row_table(accuracy, report, "top1", [report["id_test_set"], *report["test_sets"]], names)
    if kind == "robustness_table":
        mean, std = row_table(io.read_csv(robustness_csv), report, "effective_robustness", report["test_sets"], names)
    elif kind == "accuracy_table":
        mean, std = acc_mean, acc_std
    else:
        raise ValueError(f"report kind '{kind}' has no table in this version")
    write_table(mean, std, out_table)
    n_runs = len(report["archs"]) * len(report["seeds"])
    accuracy_bars(acc_mean.drop(columns="Average"), acc_std.drop(columns="Average"), out_figure,
                  f"{report['dataset']}: accuracy by training data "
                  + ("(1 run)" if n_runs == 1 else f"(mean of {n_runs} runs, bars: std)"))
    return mean
