"""What a generated set is beside what training on it gives, one report row per training set:
its CLIP diversity and consistency (Table 7's measures, of the row's generated source) and the
accuracy and effective robustness of the runs trained on it (Table 1's, from the report's own
analysis tables). Beyond the paper (issue 15):

- guidance_curve: one strategy at several guidance scales (config.expand_guidance_sweeps derives
  a strategy per scale, sharing the template's seeds and prompts): accuracy, ER and CLIP measures
  against guidance, the study of Fan et al. (CVPR 2024) and Sariyildiz et al. (CVPR 2023), who
  found a low scale (~2) better for training data than 7.5.
- diversity_er: any strategies side by side on what may explain their gains: average ER against
  CLIP diversity and against consistency, one labelled point per row, and the correlations.
- cost_frontier: the same prompts and seeds through different generators, samplers and step
  counts (few-step adapters such as LCM-LoRA; `seeds_from`): what each set cost to generate, as
  its shards measured it, against the ER and accuracy it gives, with the Pareto front marked.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from genrobust import io
from genrobust import plots
from genrobust.kinds.reports import guidance_label, guidance_train_on
from genrobust.report import column_names, companion, row_table

from .plan import row_sources
from .reports import class_mean, clip_measures

AVERAGE_ER = "Effective robustness, average (%)"
SHIFT_TOP1 = "Shift-set average top-1 (%)"
DIVERSITY, CONSISTENCY = "CLIP diversity", "CLIP consistency"


def row_measures(report: dict, inputs: dict) -> pd.DataFrame:
    """One row per report row (mean over its archs and seeds; `std` columns: seed std): ID and
    shift-set average top-1, average ER and ER per shift set (percent), the generated source's
    CLIP diversity and consistency, and its images."""
    names = column_names(report)
    accuracy = io.read_csv(inputs["analysis"]["accuracy"])
    robustness = io.read_csv(inputs["analysis"]["robustness"])
    id_set = report["id_test_set"]
    top1_id = row_table(accuracy, report, "top1", [id_set], names)
    top1 = row_table(accuracy, report, "top1", report["test_sets"], names)
    er = row_table(robustness, report, "effective_robustness", report["test_sets"], names)
    table = pd.DataFrame({
        f"{names.get(id_set, id_set)} top-1 (%)": top1_id.mean.iloc[:, 0],
        SHIFT_TOP1: top1.mean["Average"], f"{SHIFT_TOP1} std": top1.std["Average"],
        AVERAGE_ER: er.mean["Average"], f"{AVERAGE_ER} std": er.std["Average"],
    })
    table = table.join(er.mean.drop(columns="Average").add_prefix("ER ").add_suffix(" (%)"))
    sources = row_sources(report)
    measured = {}
    for source in dict.fromkeys(sources.values()):
        features, scores, mean_diversity, _ = clip_measures(inputs, source)
        measured[source] = {DIVERSITY: mean_diversity, CONSISTENCY: class_mean(features, scores), "Images": len(scores)}
    clip = pd.DataFrame([measured[sources[label]] for label in table.index], index=table.index)
    table = table.join(clip).assign(Strategy=[sources[label] for label in table.index])
    table.index.name = "Training data"
    return table


def _write(frame: pd.DataFrame, path) -> None:
    with io.atomic_path(path) as tmp:
        frame.to_csv(tmp)


# ----------------------------------------------------------------------------- guidance


def guidance_curve(report: dict, inputs: dict, out_table: str, out_figure: str) -> pd.DataFrame:
    """Accuracy, ER and the generated sets' CLIP measures against the guidance scale, one line
    per `train_on` (the generated set alone, or added to all the real data)."""
    table = row_measures(report, inputs)
    of_label = {guidance_label(g, on): (float(g), on) for g in report["guidance_strategies"]
                for on in guidance_train_on(report)}
    table.insert(0, "Guidance", [of_label[label][0] for label in table.index])
    table.insert(1, "Trained on", [of_label[label][1] for label in table.index])
    _write(table.round(4), out_table)
    id_column = next(c for c in table.columns if c.endswith(" top-1 (%)") and c != SHIFT_TOP1)
    plt = plots.pyplot()
    fig, axes = plt.subplots(1, 3, figsize=(13, 3.8))
    for i, (on, line) in enumerate(table.groupby("Trained on", sort=False)):
        line = line.sort_values("Guidance")
        colour = plots.colour(i + 1)
        axes[0].plot(line["Guidance"], line[id_column], color=colour, ls="--", marker="o", label=f"{on}: ID")
        axes[0].errorbar(line["Guidance"], line[SHIFT_TOP1], yerr=line[f"{SHIFT_TOP1} std"].fillna(0),
                         color=colour, marker="s", capsize=3, label=f"{on}: shift sets")
        axes[1].errorbar(line["Guidance"], line[AVERAGE_ER], yerr=line[f"{AVERAGE_ER} std"].fillna(0), color=colour,
                         marker="o", capsize=3, label=on)
    per_set = table.drop_duplicates("Strategy").sort_values("Guidance")
    axes[2].plot(per_set["Guidance"], per_set[DIVERSITY], marker="o", color=plots.colour(3), label="diversity")
    axes[2].plot(per_set["Guidance"], per_set[CONSISTENCY], marker="s", color=plots.colour(4), label="consistency")
    axes[1].axhline(0, color="grey", lw=1, ls=":")
    for ax, ylabel in zip(axes, ("top-1 accuracy (%)", "average effective robustness (%)", "CLIP measure")):
        ax.set_xticks(sorted(per_set["Guidance"]))
        ax.set_xlabel(f"guidance scale ({report['strategy']})")
        ax.set_ylabel(ylabel)
        ax.legend(frameon=False, fontsize=7)
        ax.spines[["top", "right"]].set_visible(False)
    fig.suptitle(f"{report['dataset']}: training on {report['strategy']} generated at each guidance scale "
                 f"({report.get('generated_percent', 100):g}% of the real set's size)", fontsize=10)
    plots.save(fig, out_figure)
    return table


# ----------------------------------------------------------------------------- diversity vs ER


def correlations(table: pd.DataFrame) -> pd.DataFrame:
    """Pearson r and Spearman rho of average ER with each CLIP measure over the rows (NaN under 3)."""
    rows = []
    for measure in (DIVERSITY, CONSISTENCY):
        x, y = table[measure].astype(float), table[AVERAGE_ER].astype(float)
        enough = len(table) >= 3 and x.nunique() > 1 and y.nunique() > 1
        rows.append({"measure": measure, "pearson_r": x.corr(y) if enough else np.nan,
                     "spearman_rho": x.corr(y, method="spearman") if enough else np.nan, "rows": len(table)})
    return pd.DataFrame(rows).set_index("measure")


def diversity_er(report: dict, inputs: dict, out_table: str, out_figure: str) -> pd.DataFrame:
    """Average ER against CLIP diversity and consistency of each row's generated set (labelled
    points, seed std as error bars), with the correlations in `_correlation.csv` and the titles."""
    table = row_measures(report, inputs)
    _write(table.round(4), out_table)
    stats = correlations(table)
    _write(stats.round(4), companion(out_table, "correlation"))
    plt = plots.pyplot()
    fig, axes = plt.subplots(1, 2, figsize=(11, 4))
    for ax, measure in zip(axes, (DIVERSITY, CONSISTENCY)):
        plots.labelled_points(ax, table[measure], table[AVERAGE_ER], table.index,
                              yerr=table[f"{AVERAGE_ER} std"].fillna(0))
        ax.axhline(0, color="grey", lw=1, ls=":")
        r = stats.loc[measure, "pearson_r"]
        ax.set_title(f"{measure}: Pearson r = {r:.2f} over {len(table)} sets" if np.isfinite(r)
                     else f"{measure} ({len(table)} sets: too few for a correlation)", fontsize=9)
        ax.set_xlabel(f"{measure} of the generated set")
        ax.set_ylabel("average effective robustness (%)")
        ax.spines[["top", "right"]].set_visible(False)
    axes[1].legend(frameon=False, fontsize=7, loc="upper left", bbox_to_anchor=(1.02, 1.0))
    fig.suptitle(f"{report['dataset']}: what the generated data is vs the robustness it gives", fontsize=10)
    plots.save(fig, out_figure)
    return table


# ----------------------------------------------------------------------------- cost frontier

HOURS = "Generation hours"


def pareto_front(cost: pd.Series, value: pd.Series) -> pd.Series:
    """Whether each row is on the front: no other row costs as little or less and gives as much
    or more, one of them strictly. Rows without a cost are not on it."""
    cost, value = cost.astype(float), value.astype(float)
    known = cost.notna() & value.notna()
    on = []
    for i in cost.index:
        better = known & (cost <= cost[i]) & (value >= value[i]) & ((cost < cost[i]) | (value > value[i]))
        on.append(bool(known[i]) and not better.drop(i).any())
    return pd.Series(on, index=cost.index)


def _sampler(settings: dict) -> str:
    """How a set was sampled, as its shards recorded it: scheduler, steps and any adapter."""
    adapter = settings.get("adapter") or {}
    label = f"{settings.get('scheduler') or 'own scheduler'}, {settings.get('steps', '?')} steps"
    if adapter:
        label += f", adapter {Path(str(adapter['id'])).name} x {float(adapter.get('scale', 1)):g}"
    return label


def cost_frontier(report: dict, inputs: dict, out_table: str, out_figure: str) -> pd.DataFrame:
    """Per row: the hours that made the generated images it trains on (its share of all its set's
    shards' seconds, on the devices they ran on), images/s, sampler, ID and shift top-1, average
    ER and the CLIP measures; the front of ER against hours; a figure of ER and shift-set accuracy
    against hours, log x."""
    table = row_measures(report, inputs)
    summaries = {source: io.read_json(path) for source, path in inputs["summaries"].items()}
    of = [summaries[source] for source in table["Strategy"]]
    used = pd.Series(inputs["used"]).reindex(table.index).astype(float)
    per_image = [s.get("generation_hours", np.nan) / s["images"] if s.get("images") else np.nan for s in of]
    table.insert(0, HOURS, used * per_image)  # the share of the set's hours that made the row's images
    table.insert(1, "Generated images used", used.astype(int))
    table.insert(2, "Generated on", [", ".join(s.get("devices") or ["?"]) for s in of])
    table.insert(3, "Images/s", [s.get("images_per_second") for s in of])
    table.insert(4, "Sampler", [_sampler(s.get("settings") or {}) for s in of])
    table[HOURS] = table[HOURS].astype(float).where(table[HOURS].astype(float) > 0)
    table["On the ER front"] = pareto_front(table[HOURS], table[AVERAGE_ER])
    _write(table.round(6), out_table)
    devices = sorted(set(", ".join(table["Generated on"]).split(", ")))
    plt = plots.pyplot()
    fig, axes = plt.subplots(1, 2, figsize=(11, 4))
    shown = table[table[HOURS].notna()]
    for ax, measure in zip(axes, (AVERAGE_ER, SHIFT_TOP1)):
        plots.labelled_points(ax, shown[HOURS], shown[measure], shown.index,
                              yerr=shown[f"{measure} std"].fillna(0))
        front = shown[pareto_front(shown[HOURS], shown[measure])].sort_values(HOURS)
        ax.step(front[HOURS], front[measure], where="post", color="grey", lw=1, ls="--", zorder=1,
                label="Pareto front")
        ax.set_xscale("log")
        ax.set_xlabel(f"hours to generate the images trained on ({', '.join(devices)}, log)")
        ax.set_ylabel({AVERAGE_ER: "average effective robustness (%)", SHIFT_TOP1: "shift-set average top-1 (%)"}[measure])
        ax.spines[["top", "right"]].set_visible(False)
    axes[0].axhline(0, color="grey", lw=1, ls=":")
    missing = len(table) - len(shown)
    axes[1].legend(frameon=False, fontsize=7, loc="upper left", bbox_to_anchor=(1.02, 1.0))
    fig.suptitle(f"{report['dataset']}: what each set cost to generate vs what training on it gives"
                 + (f" ({missing} set(s) without a measured cost not drawn)" if missing else ""), fontsize=10)
    plots.save(fig, out_figure)
    return table
