"""Tables 2, 5 and 7 and the real-vs-generated accuracy scatter, from cached features and
per-image predictions (no model is loaded here, so a report job starts in a second or two).

- fid_table (Table 2): mean per-class FID of each row's train set (real, generated) against each
  shift set, over the classes both have; `_kid.csv` (mean per-class KID), `_n.csv` (classes and
  median images per class on both sides), `_per_class.csv` (every class of every cell).
- generated_benchmark (Table 5): top-1 of each classifier on the real val set and on the
  generated val set, and on both after the CLIP filter; gap = generated - real (percentage
  points); `_n.csv` (images before and after the filter), `_per_run.csv` (trained rows: each run).
- generated_scatter: the same accuracies for any list of classifiers, drawn as real vs generated
  with the linear fit in logit space (imagenet-testbed's axes), original and filtered.
- clip_diversity (Table 7, automatic row): per train set, CLIP diversity, CLIP consistency and
  the share passing the filter, in the paper's layout (measures x sets); `_per_class.csv`.
"""

from __future__ import annotations

import sys

import numpy as np
import pandas as pd

from genrobust import io
from genrobust import plots
from genrobust.kinds import TEST_SETS
from genrobust.report import companion

from . import clip_scores
from .clip_scores import FILTER_THRESHOLD
from .embeddings import Features, feature_paths, load_features
from .plan import classifier_kind


# ----------------------------------------------------------------------------- inputs


def load_set(base: str, filtered_manifest: str | None = None, paths: bool = False) -> Features:
    """A set's features (its rows' paths too, if `paths`); for a clip_filtered source, its
    source's rows that the filter kept."""
    features = load_features(base, paths=paths)
    if filtered_manifest is None:
        return features
    listed = pd.read_csv(filtered_manifest, usecols=["path"], dtype=str, keep_default_na=False)
    kept = _canonical_keys(io.resolve_manifest_paths(listed, filtered_manifest))
    rows = pd.read_csv(feature_paths(base)[1], usecols=["path"], dtype=str, keep_default_na=False, chunksize=131072)
    mask = np.concatenate([np.isin(_canonical_keys(chunk["path"]), kept) for chunk in rows])
    return Features(features.base, features.rows.loc[mask], features.matrix)  # index = rows of the matrix


def _canonical(path: str) -> str:
    import os

    return os.path.normpath(os.path.abspath(path))


def _canonical_keys(paths: pd.Series) -> np.ndarray:
    """64-bit hashes of the paths' canonical forms: a 1.3M-image set is compared in 10 MB."""
    return pd.util.hash_array(paths.map(_canonical).to_numpy(dtype=object))


def _set(inputs: dict, key: str, paths: bool = False) -> Features:
    name = key.split("/", 1)[-1]
    return load_set(inputs["sets"][key], inputs["filtered"].get(name), paths)


def _columns(report: dict) -> dict[str, str]:
    names = {**report.get("test_set_names", {}), **(report.get("column_names") or {})}
    return {t: names.get(t, t) for t in report.get("test_sets", [])}


def _write(frame: pd.DataFrame, path, index: bool = True) -> None:
    with io.atomic_path(path) as tmp:
        frame.to_csv(tmp, index=index)


def _bars(table: pd.DataFrame, out_figure: str, ylabel: str, title: str, fmt: str = "%.1f") -> None:
    """Grouped bars: columns on x, one bar per row."""
    fig, ax = plots.pyplot().subplots(figsize=plots.bar_figure_size(len(table.columns), len(table.index)))
    plots.grouped_bars(ax, table, fmt=fmt)
    ax.set_ylabel(ylabel)
    ax.set_title(title, fontsize=10)
    plots.save(fig, out_figure)


# ----------------------------------------------------------------------------- Table 2


# How Table 2 groups ObjectNet's images into classes (a fid_table's `objectnet_classes`).
OBJECTNET_GROUPING = {"folders": "ObjectNet folder: its first mapped ImageNet class (the paper's)",
                      "mapped": "every ImageNet class an image maps to"}


def _grouped(features: Features, own_classes: bool, grouping: str) -> Features:
    """A test set of its own class folders (ObjectNet) with each image in its folder's one class (the
    first its mapping lists, as the paper's code lays ObjectNet out: 113 classes), unless grouped by
    every mapped class (125)."""
    if not own_classes or grouping == "mapped":
        return features
    first = features.rows["wnids"].astype(str).str.split(";").str[0]
    return Features(features.base, features.rows.assign(wnids=first), features.matrix)


def fid_table(report: dict, inputs: dict, out_table: str, out_figure: str) -> pd.DataFrame:
    columns = _columns(report)
    grouping = report.get("objectnet_classes", "folders")
    kinds = report.get("test_set_kinds", {})
    own_classes = {t for t in report["test_sets"] if t in kinds and TEST_SETS[kinds[t]].own_classes}
    shift = {t: _grouped(_set(inputs, t), t in own_classes, grouping) for t in report["test_sets"]}
    cells, fid, kid, counts = [], {}, {}, {}
    for label, source in report["sources"].items():
        distances = _distances(_set(inputs, f"train/{source}"), shift, report)
        cells.append(distances.assign(**{"Training data": label}))
        by_set = distances.groupby("set", sort=False)
        fid[label] = by_set["fid"].mean().rename(columns)
        kid[label] = by_set["kid"].mean().rename(columns)
        counts[label] = by_set.agg(classes=("fid", "count"), median_n_train=("n_a", "median"),
                                   median_n_shift=("n_b", "median")).rename(index=columns)
    table = pd.DataFrame(fid).T[list(columns.values())].round(2)
    table.index.name = "Training data"
    _write(table, out_table)
    kid_table = pd.DataFrame(kid).T[list(columns.values())].round(5)
    kid_table.index.name = "Training data"
    _write(kid_table, companion(out_table, "kid"))
    n = pd.concat(counts, names=["Training data", "test set"]).reset_index()
    own_columns = {columns[t] for t in own_classes}
    n["classes_are"] = ["per " + OBJECTNET_GROUPING[grouping] if t in own_columns else "ImageNet classes"
                        for t in n["test set"]]
    _write(n, companion(out_table, "n"), index=False)
    per_class = pd.concat(cells, ignore_index=True).assign(set=lambda f: f["set"].map(columns))
    _write(per_class[["Training data", "set", "wnid", "n_a", "n_b", "fid", "kid"]].rename(
        columns={"set": "test set", "n_a": "n_train", "n_b": "n_shift"}), companion(out_table, "per_class"),
        index=False)
    _bars(table, out_figure, "mean per-class FID (lower: closer)",
          f"{report['dataset']}: FID to each shift set, averaged over classes")
    return table


def _distances(train: Features, shift: dict[str, Features], report: dict) -> pd.DataFrame:
    from .fid import per_class_distances

    distances = per_class_distances(train, shift, seed=report.get("seed", 0), kid=report.get("kid", True))
    if distances["fid"].notna().sum() == 0:
        raise ValueError(f"no class has 2 or more images in both the train set and a shift set of "
                         f"{report['dataset']}: FID cannot be computed")
    return distances


# ----------------------------------------------------------------------------- Table 7


def clip_measures(inputs: dict, source: str) -> tuple[Features, np.ndarray, float, pd.Series]:
    """A train set's CLIP measures: its features, each image's consistency (cosine with 'a photo
    of a {class}'), the mean of per-class diversity, and the diversity per class."""
    text_wnids, photo, _ = clip_scores.read_text_file(inputs["text"])
    features = _set(inputs, f"train/{source}")
    scores = clip_scores.consistency(features.matrix, features.rows["wnids"], text_wnids, photo,
                                     positions=features.rows.index.to_numpy())
    mean_diversity, by_class = clip_scores.diversity(features, features.class_rows())
    return features, scores, mean_diversity, by_class


def class_mean(features: Features, values) -> float:
    """A per-image value's mean over classes of its per-class means (an image in its first class;
    NaN images left out): diversity is a class's measure, so consistency and the share passing the
    filter are averaged the same way (equal to the image mean on a balanced set, not on a filtered one)."""
    first = features.rows["wnids"].astype(str).str.split(";").str[0].to_numpy()
    return float(pd.Series(np.asarray(values, dtype=np.float64), index=first).groupby(level=0).mean().mean())


def clip_diversity(report: dict, inputs: dict, out_table: str, out_figure: str) -> pd.DataFrame:
    threshold = report.get("threshold", FILTER_THRESHOLD)
    table, per_class = {}, []
    for label, source in report["sources"].items():
        features, scores, mean_diversity, by_class = clip_measures(inputs, source)
        passed = clip_scores.passes_filter(scores, threshold)
        table[label] = {"Diversity (CLIP)": mean_diversity, "Consistency (CLIP)": class_mean(features, scores),
                        f"Share passing the CLIP filter (>= {threshold:g})": class_mean(features, passed),
                        "Images": len(scores), "Classes": len(by_class)}
        first = features.rows["wnids"].str.split(";").str[0].to_numpy()
        frame = pd.DataFrame({"wnid": first, "consistency": scores, "passed": passed}).groupby("wnid").agg(
            n=("consistency", "size"), consistency=("consistency", "mean"), share_passing=("passed", "mean"))
        per_class.append(frame.join(by_class.rename("diversity")).reset_index().assign(**{"Training data": label}))
    result = pd.DataFrame(table)
    result.index.name = "Measure"
    _write(result.round(4), out_table)
    _write(pd.concat(per_class, ignore_index=True)[["Training data", "wnid", "n", "diversity", "consistency",
                                                   "share_passing"]].round(4),
           companion(out_table, "per_class"), index=False)
    measures = result.loc[["Diversity (CLIP)", "Consistency (CLIP)", result.index[2]]].astype(float)
    _bars(measures.T.rename(columns={result.index[2]: "Share passing"}).T, out_figure, "score",
          f"{report['dataset']}: CLIP diversity and consistency of each training set", fmt="%.2f")
    return result


# ----------------------------------------------------------------------------- Tables 5 and the scatter


def _accuracy(frame: pd.DataFrame) -> float:
    return float(frame["correct"].mean()) * 100 if len(frame) else float("nan")


def _zero_shot_predictions(inputs: dict, key: str, name: str) -> pd.DataFrame:
    """Zero-shot CLIP from the cached embeddings, through the scorer (subset rule, logit mask)."""
    import torch

    from genrobust.scoring import score_logits, select_test_subset, split_wnids

    text_wnids, _, classifier = clip_scores.read_text_file(inputs["text"])
    features = _set(inputs, key, paths=True)
    rows = features.rows.sort_index()
    known = set(text_wnids)
    keep = np.array([any(w in known for w in split_wnids(v)) for v in rows["wnids"]], dtype=bool)
    kept, targets, mask = select_test_subset(rows.reset_index(drop=True), text_wnids)  # the same rows, in order
    logits = torch.from_numpy(clip_scores.zero_shot_scores(features.of(rows.index.to_numpy()[keep]), classifier))
    correct = score_logits(logits, [set(t) for t in targets], mask).numpy()
    return pd.DataFrame({"set": name, "path": kept["path"], "wnids": kept["wnids"], "correct": correct})


def _filter_masks(inputs: dict, report: dict) -> dict[str, pd.Series]:
    """set name -> path -> passes the CLIP filter."""
    text_wnids, photo, _ = clip_scores.read_text_file(inputs["text"])
    threshold = report.get("threshold", FILTER_THRESHOLD)
    masks = {}
    for name in ("real", report["strategy"]):
        features = _set(inputs, f"val/{name}", paths=True)
        scores = clip_scores.consistency(features.matrix, features.rows["wnids"], text_wnids, photo,
                                         positions=features.rows.index.to_numpy())
        paths = features.rows["path"].map(_canonical).to_numpy()  # as the predictions' paths are looked up
        masks[name] = pd.Series(clip_scores.passes_filter(scores, threshold), index=paths)
    return masks


def classifier_accuracies(report: dict, inputs: dict) -> pd.DataFrame:
    """One row per classifier and prediction file (run): top-1 (%) on real and generated val,
    original and after the filter, and the image counts."""
    strategy = report["strategy"]
    masks = _filter_masks(inputs, report)
    records = []
    for label, spec in report["classifiers"].items():
        if classifier_kind(spec) == "zero_shot":
            frames = {"zero-shot": pd.concat([_zero_shot_predictions(inputs, f"val/{n}", n)
                                              for n in ("real", strategy)])}
        else:
            frames = {path: io.read_csv(path) for path in inputs["predictions"][label]}
        for source, predictions in frames.items():
            record = {"Classifier": label, "predictions": source}
            for name, column in (("real", "Real"), (strategy, "Generated")):
                rows = predictions[predictions["set"].astype(str) == name]
                passed = rows["path"].map(_canonical).map(masks[name]).fillna(False).astype(bool)
                record[column], record[f"Filtered {column}"] = _accuracy(rows), _accuracy(rows[passed])
                record[f"n {column}"], record[f"n Filtered {column}"] = len(rows), int(passed.sum())
            records.append(record)
    frame = pd.DataFrame(records)
    frame["Gap"] = frame["Generated"] - frame["Real"]
    frame["Filtered Gap"] = frame["Filtered Generated"] - frame["Filtered Real"]
    return frame


TABLE5_COLUMNS = ["Real", "Generated", "Gap", "Filtered Real", "Filtered Generated", "Filtered Gap"]


def generated_benchmark(report: dict, inputs: dict, out_table: str, out_figure: str) -> pd.DataFrame:
    per_run = classifier_accuracies(report, inputs)
    table = per_run.groupby("Classifier", sort=False)[TABLE5_COLUMNS].mean().round(2)
    table = table.reindex(list(report["classifiers"]))
    _write(table, out_table)
    counts = per_run.groupby("Classifier", sort=False)[[c for c in per_run.columns if c.startswith("n ")]].first()
    _write(counts.reindex(list(report["classifiers"])), companion(out_table, "n"))
    _write(per_run.round(2), companion(out_table, "per_run"), index=False)
    _bars(table[["Real", "Generated", "Filtered Real", "Filtered Generated"]].T.rename_axis(None), out_figure,
          "top-1 accuracy (%)", f"{report['dataset']}: real val vs generated ({report['strategy']}) val")
    return table


def generated_scatter(report: dict, inputs: dict, out_table: str, out_figure: str) -> pd.DataFrame:
    from genrobust.robustness import fit_logit_line

    per_run = classifier_accuracies(report, inputs)
    table = per_run.groupby("Classifier", sort=False)[TABLE5_COLUMNS].mean().reindex(list(report["classifiers"]))
    fits = {}
    fig, axes = plots.pyplot().subplots(1, 2, figsize=(11, 4.6))
    for ax, prefix in zip(axes, ("", "Filtered ")):
        x, y = table[f"{prefix}Real"].to_numpy() / 100, table[f"{prefix}Generated"].to_numpy() / 100
        ok = np.isfinite(x) & np.isfinite(y)
        shown = plots.labelled_points(ax, x[ok], y[ok], table.index[ok], logit=True)
        ax.plot(plots.LOGIT_GRID, plots.LOGIT_GRID, color="#999999", ls="--", lw=1, label="y = x")
        name = prefix.strip() or "Original"
        try:
            fit = fit_logit_line(x[ok], y[ok])
            fits[name] = {"slope": fit.slope, "intercept": fit.intercept, "n": fit.n_points}
            ax.plot(plots.LOGIT_GRID, np.clip(fit.predict(plots.LOGIT_GRID), *plots.LOGIT_LIMITS), color="#333333",
                    label="linear fit (logit)")
            slope = f": fit slope {fit.slope:.2f}"
        except ValueError as err:  # fewer than two distinct real accuracies
            print(f"WARNING: no fit for the {name.lower()} scatter: {err}", file=sys.stderr)
            slope = ": too few points for a fit"
        ax.set_xlabel(f"{prefix}real val top-1".capitalize())
        ax.set_ylabel(f"{prefix}generated ({report['strategy']}) val top-1".capitalize())
        title = ("Original sets" if not prefix else "CLIP-filtered sets") + slope
        ax.set_title(title + ("" if shown else "\n(0% or 100% drawn at the axis edge)"), fontsize=10)
    axes[1].legend(frameon=False, fontsize=7, loc="upper left", bbox_to_anchor=(1.02, 1.0))
    fig.suptitle(f"{report['dataset']}: {len(table)} classifiers on real vs generated val", fontsize=10)
    plots.save(fig, out_figure)
    table = table.round(2)
    _write(table, out_table)
    io.write_json(companion(out_table, "fit").with_suffix(".json"), fits)
    return table
