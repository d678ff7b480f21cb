"""The paper's tables and figures, reduced from the per-dataset analysis tables.

Tables are written in the paper's layout (rows: training data, columns: test sets, then
Average) with values in percent, mean over architectures and seeds. The `_std` companion holds
the seed std the paper quotes: the std over seeds of each architecture, averaged over
architectures (not the spread between architectures); `_per_arch` has one row per (training
data, architecture): mean and std over seeds. A report's `column_names` relabels its test sets
(Tables 3, 4: Im-100, Im-Sketch-100, ...). Effective robustness is not shown for standard
training (a real-only mixture: 0 by definition): Table 1 leaves the row out, Table 9 prints '-'.
"""

from __future__ import annotations

import dataclasses
import json
import re
import textwrap
from pathlib import Path

import numpy as np
import pandas as pd

from . import io, plots
from .config import TrainingRun
from .kinds import REPORTS
from .kinds.reports import TRAINING
from .robustness import fits_of


def run_of(path: str) -> dict:
    """dataset, mix, arch and seed of a per-run results file, from its path."""
    return dataclasses.asdict(TrainingRun.of_path(path))


def collect_accuracy(evaluations: list[str], out: str) -> pd.DataFrame:
    """The collect stage: one row per (run, test set) of top-1/top-5 from evaluation JSONs, and
    one per ID subset (test set 'val@imagenet_r' ...: ID accuracy on a shift set's classes).
    ImageNet-C's top-1 is its mean over corruptions, which `corruptions` names (';'-joined)."""
    rows = []
    for path in evaluations:
        run = run_of(path)
        for test_set, result in io.read_json(path).items():
            if test_set == "meta":
                continue
            top1 = result.get("mean_corruption_top1") or result["top1"]
            rows.append({**run, "test_set": test_set, "top1": top1, "top5": result.get("top5"), "n": result["n"],
                         "corruptions": ";".join(result.get("corruptions_averaged") or [])})
            for name, value in (result.get("id_subsets") or {}).items():
                rows.append({**run, "test_set": f"{test_set}@{name}", "top1": value, "top5": None,
                             "n": (result.get("id_subsets_n") or {}).get(name)})
    frame = pd.DataFrame(rows)
    io.write_csv(out, frame)
    return frame


def corruptions_averaged(accuracy: pd.DataFrame, report: dict) -> str:
    """'15 corruptions (brightness, ...)' of the report's ImageNet-C results, for the figure."""
    if "corruptions" not in accuracy.columns:
        return ""
    lists = accuracy.loc[accuracy["test_set"].isin(report["test_sets"]), "corruptions"].dropna().unique()
    names = sorted({c for joined in lists for c in str(joined).split(";") if c})
    return f"{len(names)} corruptions ({', '.join(names)})" if names else ""


def _runs_of(frame: pd.DataFrame, report: dict, mix: str) -> pd.DataFrame:
    return frame[(frame["dataset"] == report["dataset"]) & (frame["mix"] == mix)
                 & frame["arch"].isin(report["archs"]) & frame["seed"].isin(report["seeds"])]


def is_standard_training(mix: str) -> bool:
    """A real-only mixture (real_100, real_25, n_1300000+real_100): standard training, whose
    effective robustness is 0 by definition."""
    return all(term.startswith("real_") for term in mix.split("+") if not term.startswith("n_"))


@dataclasses.dataclass(frozen=True)
class RowTable:
    """A report's rows x test sets (+ Average), in percent: mean over runs, seed std (per
    architecture over seeds, averaged over architectures), and per-architecture mean and std."""

    mean: pd.DataFrame
    std: pd.DataFrame
    per_arch: pd.DataFrame


def _seed_stats(per_run: pd.DataFrame) -> tuple[pd.Series, pd.DataFrame, pd.DataFrame]:
    """Seed std averaged over architectures, and per-architecture (mean, std) over seeds, of a
    (arch, seed) x column table; NaN std where an architecture has one seed."""
    by_arch = per_run.groupby(level="arch", sort=False)
    arch_std = by_arch.std(ddof=1)
    return arch_std.mean(skipna=False), by_arch.mean(), arch_std


def row_table(frame: pd.DataFrame, report: dict, value: str, test_sets: list[str],
              names: dict[str, str]) -> RowTable:
    """`value` x 100: one row per report row, one column per test set + Average (see RowTable)."""
    means, stds, per_arch = {}, {}, []
    for label, mix in report["rows"].items():
        runs = _runs_of(frame, report, mix)
        if runs.empty:
            raise ValueError(f"no results for row '{label}' ({mix}) of dataset {report['dataset']}")
        # Average over test sets per run first, so the Average column's std is over seeds too.
        per_run = runs.pivot_table(index=["arch", "seed"], columns="test_set", values=value)
        missing = [t for t in test_sets if t not in per_run.columns]
        if missing:
            raise ValueError(f"row '{label}' ({mix}) has no results on {missing}")
        per_run = per_run[test_sets] * 100
        per_run["Average"] = per_run.mean(axis=1)
        means[label] = per_run.mean()
        stds[label], arch_mean, arch_std = _seed_stats(per_run)
        arch = arch_mean.join(arch_std.add_suffix(" std")).assign(seeds=per_run.groupby(level="arch").size())
        arch = arch.reindex([a for a in report["archs"] if a in arch.index])  # the report's order
        per_arch.append(arch.reset_index().assign(**{"Training data": label}))
    columns = {t: names.get(t, t) for t in test_sets}
    mean = pd.DataFrame(means).T.rename(columns=columns)
    std = pd.DataFrame(stds).T.rename(columns=columns)
    mean.index.name = std.index.name = "Training data"
    per_arch = pd.concat(per_arch, ignore_index=True).set_index(["Training data", "arch"])
    per_arch = per_arch.rename(columns={**columns, **{f"{t} std": f"{n} std" for t, n in columns.items()}})
    return RowTable(mean.round(2), std.round(2), per_arch.round(2))


def companion(out_table: str, suffix: str) -> Path:
    return Path(out_table).with_name(f"{Path(out_table).stem}_{suffix}.csv")


def write_table(table: RowTable, out_table: str) -> None:
    """The table, its `_std` (seed std) and `_per_arch` companions."""
    for path, frame in ((Path(out_table), table.mean), (companion(out_table, "std"), table.std),
                        (companion(out_table, "per_arch"), table.per_arch)):
        with io.atomic_path(path) as tmp:
            frame.to_csv(tmp)


def _drop_standard_rows(table: RowTable, report: dict) -> RowTable:
    """Table 1 without its real-only rows (the paper's Table 1 has no 'Real Data' row)."""
    standard = [label for label, mix in report["rows"].items() if is_standard_training(mix)]
    return RowTable(table.mean.drop(index=standard), table.std.drop(index=standard),
                    table.per_arch.drop(index=standard, level="Training data"))


def accuracy_bars(mean: pd.DataFrame, std: pd.DataFrame, out_figure: str, title: str) -> None:
    """Figure 2's grouped bars: test sets on x, one bar per training data in Figure 2's colours (real
    green, generated blue, real + generated orange), std over runs as error bars."""
    fig, ax = plots.pyplot().subplots(figsize=plots.bar_figure_size(len(mean.columns), len(mean.index)))
    plots.grouped_bars(ax, mean, std)
    ax.set_ylabel("Top-1 accuracy (%)")
    ax.set_ylim(0, min(100, float(np.nanmax(mean.to_numpy())) * 1.2 + 5))
    ax.set_title(title)
    plots.save(fig, out_figure)


def _long(mean: pd.DataFrame, std: pd.DataFrame, measure: str) -> pd.DataFrame:
    """One row per (training data, test set): mean and std."""
    frame = mean.stack().rename("mean").to_frame().join(std.stack().rename("std"))
    frame.index.names = ["Training data", "test_set"]
    return frame.reset_index().assign(measure=measure)


def column_names(report: dict) -> dict[str, str]:
    """Test set -> column label: the report's own `column_names` over the test sets' names."""
    return {**report["test_set_names"], **(report.get("column_names") or {})}


def both_measures(accuracy: pd.DataFrame, robustness: pd.DataFrame, report: dict) -> pd.DataFrame:
    """Accuracy and effective robustness (percent) per row and shift set, plus their Average."""
    names = column_names(report)
    acc = row_table(accuracy, report, "top1", report["test_sets"], names)
    er = row_table(robustness, report, "effective_robustness", report["test_sets"], names)
    return pd.concat([_long(acc.mean, acc.std, "accuracy"), _long(er.mean, er.std, "effective_robustness")],
                     ignore_index=True)


def mixture_grid(frame: pd.DataFrame, report: dict, out_table: str, out_figure: str) -> pd.DataFrame:
    """Figures 3 and 7-10: accuracy and ER over the real % x generated % grid, per shift set and averaged."""
    cells = [(r, g) for r in report["real_percents"] for g in report["generated_percents"]]
    where = dict(zip(report["rows"], cells))  # report_rows lists the grid real-major
    frame = frame.assign(real_percent=frame["Training data"].map(lambda x: where[x][0]),
                         generated_percent=frame["Training data"].map(lambda x: where[x][1]))
    io.write_csv(out_table, frame)
    sets = list(dict.fromkeys(frame["test_set"]))
    sets = ["Average"] + [t for t in sets if t != "Average"]
    plt = plots.pyplot()
    fig, axes = plt.subplots(2, len(sets), figsize=(3.1 * len(sets), 5.4), squeeze=False)
    for row, measure in enumerate(("accuracy", "effective_robustness")):
        for col, test_set in enumerate(sets):
            grid = frame[(frame["measure"] == measure) & (frame["test_set"] == test_set)].pivot_table(
                index="real_percent", columns="generated_percent", values="mean")
            ax = axes[row][col]
            _heatmap(ax, grid.to_numpy(), diverging=measure == "effective_robustness")
            ax.set_xticks(range(grid.shape[1]), [f"{g:g}%" for g in grid.columns])
            ax.set_yticks(range(grid.shape[0]), [f"{r:g}%" for r in grid.index])
            ax.set_title(f"{test_set}\n{'accuracy' if measure == 'accuracy' else 'effective robustness'} (%)",
                         fontsize=9)
            if col == 0:
                ax.set_ylabel("real data")
            if row == 1:
                ax.set_xlabel(f"generated ({report['strategy']})")
    fig.suptitle(f"{report['dataset']}: real x generated mixtures (mean over runs; each panel its own "
                 "colour scale, effective robustness red below the standard-model line, blue above)", fontsize=9)
    plots.save(fig, out_figure)
    return frame


def _heatmap(ax, values: np.ndarray, diverging: bool) -> None:
    """One grid panel with its colour bar and each cell's value, in black or white by the cell's
    brightness. Accuracy: viridis; effective robustness: red-blue centred on 0."""
    from matplotlib.colors import Normalize

    if diverging:
        bound = max(float(np.nanmax(np.abs(values))), 1e-9)
        norm, cmap = Normalize(-bound, bound), "RdBu"
    else:
        low, high = float(np.nanmin(values)), float(np.nanmax(values))
        norm, cmap = Normalize(low, max(high, low + 1e-9)), "viridis"
    image = ax.imshow(values, cmap=cmap, norm=norm, origin="lower", aspect="auto")
    ax.get_figure().colorbar(image, ax=ax, fraction=0.08, pad=0.03).ax.tick_params(labelsize=7)
    for (i, j), v in np.ndenumerate(values):
        red, green, blue, _ = image.cmap(norm(v))
        ink = "k" if 0.299 * red + 0.587 * green + 0.114 * blue > 0.5 else "w"
        ax.text(j, i, "-" if np.isnan(v) else f"{v:.1f}", ha="center", va="center", fontsize=8, color=ink)


def budget_curve(frame: pd.DataFrame, report: dict, out_table: str, out_figure: str) -> pd.DataFrame:
    """Figure 11: average shift-set accuracy and ER against the generated share of a fixed budget."""
    shares = dict(zip(report["rows"], report["generated_shares"]))
    frame = frame.assign(generated_share=frame["Training data"].map(shares))
    io.write_csv(out_table, frame)
    plt = plots.pyplot()
    fig, axes = plt.subplots(1, 2, figsize=(9, 3.6))
    for ax, measure, label in zip(axes, ("accuracy", "effective_robustness"),
                                  ("average shift-set accuracy (%)", "average effective robustness (%)")):
        line = frame[(frame["measure"] == measure) & (frame["test_set"] == "Average")].sort_values("generated_share")
        ax.errorbar(line["generated_share"], line["mean"], yerr=line["std"].fillna(0), marker="o", capsize=3)
        ax.set_xlabel(f"generated ({report['strategy']}) share of the budget")
        ax.set_ylabel(label)
        ax.spines[["top", "right"]].set_visible(False)
    budget = "the size of the real train set" if report["total"] == "real" else f"{report['total']:,} images"
    fig.suptitle(f"{report['dataset']}: a fixed training budget ({budget}), real and generated shared", fontsize=10)
    plots.save(fig, out_figure)
    return frame


def scaling_curve(frame: pd.DataFrame, report: dict, out_table: str, out_figure: str) -> pd.DataFrame:
    """The scaling study the paper left as future work: average shift-set accuracy and ER against
    the generated set's size (% of the real set, log axis), generated alone and added to all the
    real data, with real alone as a line."""
    s = report["strategy"]
    size = {f"{s} {g:g}%": g for g in report["generated_percents"]}
    size.update({f"real + {s} {g:g}%": g for g in report["generated_percents"]})
    series = {label: ("real only" if label == "real only" else "real + generated" if label.startswith("real + ")
                      else "generated only") for label in report["rows"]}
    frame = frame.assign(series=frame["Training data"].map(series),
                         generated_percent=frame["Training data"].map(lambda x: size.get(x, 0.0)))
    io.write_csv(out_table, frame)
    plt = plots.pyplot()
    fig, axes = plt.subplots(1, 2, figsize=(9, 3.6))
    for ax, measure, label in zip(axes, ("accuracy", "effective_robustness"),
                                  ("average shift-set accuracy (%)", "average effective robustness (%)")):
        average = frame[(frame["measure"] == measure) & (frame["test_set"] == "Average")]
        for name, marker in (("generated only", "s"), ("real + generated", "o")):
            line = average[average["series"] == name].sort_values("generated_percent")
            ax.errorbar(line["generated_percent"], line["mean"], yerr=line["std"].fillna(0), marker=marker,
                        capsize=3, label=name)
        real = average[average["series"] == "real only"]["mean"]
        if len(real):
            ax.axhline(float(real.iloc[0]), color="grey", linestyle="--", label="real only")
        ax.set_xscale("log")
        ax.set_xticks(report["generated_percents"], [f"{g:g}%" for g in report["generated_percents"]])
        ax.minorticks_off()
        ax.set_xlabel(f"generated ({s}) images, % of the real train set")
        ax.set_ylabel(label)
        ax.spines[["top", "right"]].set_visible(False)
    axes[0].legend(frameon=False, fontsize=8)
    fig.suptitle(f"{report['dataset']}: scaling the generated data", fontsize=10)
    plots.save(fig, out_figure)
    return frame


def corruption_table(frame: pd.DataFrame, report: dict, out_table: str, out_figure: str,
                     averaged: str = "") -> pd.DataFrame:
    """Table 9: accuracy and effective robustness on ImageNet-C (mean over the corruptions named
    in `averaged`); the effective robustness of standard training is '-', as in the paper."""
    test_set = column_names(report).get(report["test_sets"][0], report["test_sets"][0])
    picked = frame[frame["test_set"] == test_set]
    table = picked.pivot(index="Training data", columns="measure", values=["mean", "std"])  # keeps NaN stds
    table.columns = [f"{'Accuracy' if m == 'accuracy' else 'Effective Robustness'} (%)"
                     + (" std" if stat == "std" else "") for stat, m in table.columns]
    table = table.reindex(list(report["rows"]))[sorted(table.columns, key=lambda c: ("std" in c, c))].round(2)
    standard = [label for label, mix in report["rows"].items() if is_standard_training(mix)]
    er_columns = ["Effective Robustness (%)", "Effective Robustness (%) std"]
    table.loc[standard, er_columns] = np.nan
    written = table.astype(object)
    written.loc[standard, er_columns] = "-"
    with io.atomic_path(out_table) as tmp:
        written.to_csv(tmp)
    plt = plots.pyplot()
    fig, axes = plt.subplots(1, 2, figsize=(max(9.0, 2.4 * len(table)), 3.8))
    for ax, column in zip(axes, ["Accuracy (%)", "Effective Robustness (%)"]):
        bars = ax.bar(range(len(table)), table[column].fillna(0), yerr=table[f"{column} std"].fillna(0), capsize=3,
                      color=[plots.colour(i) for i in range(len(table))])
        ax.bar_label(bars, labels=["-" if np.isnan(v) else f"{v:.1f}" for v in table[column]], fontsize=7, padding=2)
        plots.category_ticks(ax, range(len(table)), table.index)
        ax.set_ylabel(column)
        ax.set_title(test_set, fontsize=9)
        ax.spines[["top", "right"]].set_visible(False)
    axes[1].axhline(0, color="#999999", lw=0.8)
    if averaged:
        fig.suptitle(textwrap.fill(f"mean over {averaged}", 140), fontsize=7)
    plots.save(fig, out_figure)
    return table


def loss_curves(metrics: list[str], report: dict, out_table: str, out_figure: str) -> pd.DataFrame:
    """Figure 12: training loss per epoch, mean over the rows' runs."""
    label_of = {mix: label for label, mix in report["rows"].items()}
    rows = []
    for path in metrics:
        run = run_of(path)
        if run["mix"] in label_of and run["arch"] in report["archs"] and run["seed"] in report["seeds"]:
            for line in Path(path).read_text().splitlines():
                epoch = json.loads(line)
                rows.append({"Training data": label_of[run["mix"]], **run, "epoch": epoch["epoch"] + 1,
                             "train_loss": epoch["train_loss"], "val_top1": epoch["val_top1"]})
    frame = pd.DataFrame(rows)
    if frame.empty:
        raise ValueError(f"no training metrics for the rows of {report['dataset']} loss curves")
    curves = frame.groupby(["Training data", "epoch"], sort=False)["train_loss"].agg(["mean", "std"]).reset_index()
    io.write_csv(out_table, curves)
    plt = plots.pyplot()
    fig, ax = plt.subplots(figsize=(6, 3.6))
    for i, (label, curve) in enumerate(curves.groupby("Training data", sort=False)):
        ax.plot(curve["epoch"], curve["mean"], label=label, color=plots.colour(i))
        ax.fill_between(curve["epoch"], curve["mean"] - curve["std"].fillna(0),
                        curve["mean"] + curve["std"].fillna(0), alpha=0.2, color=plots.colour(i))
    ax.xaxis.get_major_locator().set_params(integer=True)  # epochs are whole
    ax.set_xlabel("epoch")
    ax.set_ylabel("training loss")
    ax.legend(frameon=False)
    ax.spines[["top", "right"]].set_visible(False)
    ax.set_title(f"{report['dataset']}: {', '.join(report['archs'])}", fontsize=10)
    plots.save(fig, out_figure)
    return curves


# A reStructuredText cell that starts as a list item ("+ PixMix", "- x", "1. x") would render as a
# bullet in report.html: its copy for the report escapes that mark, the CSV keeps the label as it is.
RST_LIST_MARK = re.compile(r"^([-+*]|\d+[.)]|#\.)(\s)")


def write_display_copy(out_table: str, out_display: str | None = None) -> Path:
    """The table as report.html shows it (the captions' csv-table): <table>_display.csv by default."""
    frame = pd.read_csv(out_table, dtype=str, keep_default_na=False)
    shown = frame.map(lambda cell: RST_LIST_MARK.sub(r"\\\1\2", cell))
    shown.columns = [RST_LIST_MARK.sub(r"\\\1\2", c) for c in frame.columns]
    path = Path(out_display) if out_display else companion(out_table, "display")
    io.write_csv(path, shown)
    return path


def _accuracy_and_fit(accuracy_csv: str, robustness_csv: str, out_table: str) -> pd.DataFrame:
    """The runs' accuracies; beside the table, the line its effective robustness is measured against."""
    accuracy = io.read_csv(accuracy_csv)
    if robustness_csv:
        io.write_csv(companion(out_table, "er_fit"), fits_of(io.read_csv(robustness_csv)))
    return accuracy


def _id_and_shift_accuracy(accuracy: pd.DataFrame, report: dict) -> RowTable:
    return row_table(accuracy, report, "top1", [report["id_test_set"], *report["test_sets"]], column_names(report))


def _write_with_bars(table: RowTable, acc: RowTable, report: dict, out_table: str, out_figure: str) -> pd.DataFrame:
    """The table and its companions, and Figure 2's accuracy bars of the same runs."""
    write_table(table, out_table)
    n_archs, n_seeds = len(report["archs"]), len(report["seeds"])
    runs = f"{n_archs} architecture{'s' * (n_archs > 1)} x {n_seeds} seed{'s' * (n_seeds > 1)}"
    accuracy_bars(acc.mean.drop(columns="Average"), acc.std.drop(columns="Average"), out_figure,
                  f"{report['dataset']}: accuracy by training data (mean of {runs}"
                  + (")" if n_seeds == 1 else ", bars: seed std)"))
    return table.mean


# The writers of the training-family report kinds (genrobust.kinds.REPORTS names each one's), one
# signature: (accuracy_csv, robustness_csv, report, out_table, out_figure, metrics) -> the table.


def robustness_table_report(accuracy_csv: str, robustness_csv: str, report: dict, out_table: str, out_figure: str,
                            metrics: list[str] | None = None) -> pd.DataFrame:
    """Effective robustness per shift set (Table 1) with accuracy bars (Figure 2)."""
    acc = _id_and_shift_accuracy(_accuracy_and_fit(accuracy_csv, robustness_csv, out_table), report)
    er = row_table(io.read_csv(robustness_csv), report, "effective_robustness", report["test_sets"],
                   column_names(report))
    return _write_with_bars(_drop_standard_rows(er, report), acc, report, out_table, out_figure)


def accuracy_table_report(accuracy_csv: str, robustness_csv: str, report: dict, out_table: str, out_figure: str,
                          metrics: list[str] | None = None) -> pd.DataFrame:
    """Accuracy on the ID set and the shift sets (Tables 3, 4)."""
    acc = _id_and_shift_accuracy(_accuracy_and_fit(accuracy_csv, robustness_csv, out_table), report)
    return _write_with_bars(acc, acc, report, out_table, out_figure)


def _measures(accuracy_csv: str, robustness_csv: str, report: dict, out_table: str) -> pd.DataFrame:
    accuracy = _accuracy_and_fit(accuracy_csv, robustness_csv, out_table)
    return both_measures(accuracy, io.read_csv(robustness_csv), report)


def mixture_grid_report(accuracy_csv: str, robustness_csv: str, report: dict, out_table: str, out_figure: str,
                        metrics: list[str] | None = None) -> pd.DataFrame:
    """Figures 3 and 7-10."""
    return mixture_grid(_measures(accuracy_csv, robustness_csv, report, out_table), report, out_table, out_figure)


def budget_curve_report(accuracy_csv: str, robustness_csv: str, report: dict, out_table: str, out_figure: str,
                        metrics: list[str] | None = None) -> pd.DataFrame:
    """Figure 11."""
    return budget_curve(_measures(accuracy_csv, robustness_csv, report, out_table), report, out_table, out_figure)


def scaling_curve_report(accuracy_csv: str, robustness_csv: str, report: dict, out_table: str, out_figure: str,
                         metrics: list[str] | None = None) -> pd.DataFrame:
    """Beyond the paper: generated data scaled up."""
    return scaling_curve(_measures(accuracy_csv, robustness_csv, report, out_table), report, out_table, out_figure)


def corruption_table_report(accuracy_csv: str, robustness_csv: str, report: dict, out_table: str, out_figure: str,
                            metrics: list[str] | None = None) -> pd.DataFrame:
    """Table 9 (ImageNet-C)."""
    accuracy = _accuracy_and_fit(accuracy_csv, robustness_csv, out_table)
    frame = both_measures(accuracy, io.read_csv(robustness_csv), report)
    return corruption_table(frame, report, out_table, out_figure, corruptions_averaged(accuracy, report))


def loss_curves_report(accuracy_csv: str, robustness_csv: str, report: dict, out_table: str, out_figure: str,
                       metrics: list[str] | None = None) -> pd.DataFrame:
    """Figure 12, from the runs' training metrics (no accuracy tables)."""
    return loss_curves(metrics or [], report, out_table, out_figure)


def make_report(kind: str, accuracy_csv: str, robustness_csv: str, report: dict, out_table: str,
                out_figure: str, metrics: list[str] | None = None) -> pd.DataFrame:
    """One of the paper's tables or figures (a training-family report kind), as CSV + PNG, by the
    writer its kind names."""
    if REPORTS[kind].family != TRAINING:
        trained = ", ".join(REPORTS.names(family=TRAINING))
        raise ValueError(f"'{kind}' is not a report of trained runs (one of {trained}); "
                         "`genrobust metrics-report` builds it")
    return REPORTS[kind].load_writer()(accuracy_csv, robustness_csv, report, out_table, out_figure, metrics)
