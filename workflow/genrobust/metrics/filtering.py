"""The CLIP filter as a training-data gate (beyond the paper; He et al., ICLR 2023).

A strategy of kind `clip_filtered` (`source: <strategy>`, `threshold: 0.3`) is the source
strategy's images whose CLIP consistency with 'a photo of a {class}' is >= threshold: the same
files, nothing regenerated. Its manifest lists the kept rows of the source's manifest (every
column, paths re-expressed relative to the filtered manifest's folder, plus `clip_score`), so
the convert stage writes its beton and mixtures take from it like from any other source; its
summary counts kept and dropped images per class.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import numpy as np
import pandas as pd

from genrobust import io

from .clip_scores import consistency, passes_filter, read_text_file
from .embeddings import FeatureFile, feature_paths

CHUNK_ROWS = 131072  # rows scored and filtered at a time: memory flat in the set's size


def _path_keys(paths: pd.Series) -> np.ndarray:
    """64-bit hashes of image paths: how scores are looked up (8 bytes an image, not a string)."""
    return pd.util.hash_array(paths.astype(str).to_numpy(dtype=object))


def _scores(features_base: str, text_file: str) -> pd.Series:
    """Each embedded image's CLIP consistency with its class's prompt, keyed by its path's hash."""
    npy, csv, _ = feature_paths(features_base)
    matrix = FeatureFile(npy)
    text_wnids, photo, _ = read_text_file(text_file)
    keys, scores, start = [], [], 0
    for rows in pd.read_csv(csv, usecols=["path", "wnids"], dtype=str, keep_default_na=False, chunksize=CHUNK_ROWS):
        scores.append(consistency(matrix, rows["wnids"], text_wnids, photo,
                                  positions=np.arange(start, start + len(rows))))
        keys.append(_path_keys(rows["path"]))
        start += len(rows)
    if start != len(matrix):
        raise ValueError(f"{npy} has {len(matrix)} rows but {csv} lists {start}")
    scores = pd.Series(np.concatenate(scores) if scores else [], index=np.concatenate(keys) if keys else [],
                       dtype=np.float64)
    if scores.index.duplicated().any():
        raise ValueError(f"{features_base}: an image is listed twice")
    return scores


def _relative_to(folder: Path, paths: pd.Series, manifest: str) -> list[str]:
    """The manifest's image paths re-expressed relative to `folder` (no file-system lookups)."""
    source = os.path.relpath(os.path.abspath(Path(manifest).parent), os.path.abspath(folder))
    return [os.path.relpath(p, folder) if os.path.isabs(p) else os.path.normpath(os.path.join(source, p))
            for p in paths]


def filter_generated(manifest: str, features_base: str, text_file: str, threshold: float, out_manifest: str,
                     out_summary: str, source: str = "") -> int:
    """Write the kept rows of `manifest` and the counts per class (see the module docstring);
    returns how many were kept. The manifest is read and written a chunk of rows at a time."""
    scores = _scores(features_base, text_file)
    folder = Path(out_manifest).parent
    per_class = pd.DataFrame(columns=["kept", "dropped", "unscored"], dtype="int64")
    with io.atomic_path(out_manifest) as tmp, open(tmp, "w", newline="") as out:
        chunks = pd.read_csv(manifest, keep_default_na=False, chunksize=CHUNK_ROWS)
        for i, table in enumerate(chunks):
            keys = _path_keys(io.resolve_manifest_paths(table, manifest))  # as embed listed them
            score = scores.reindex(keys).to_numpy(dtype=np.float64)  # NaN: not embedded (unreadable)
            keep = passes_filter(score, threshold)
            kept = table.loc[keep].copy()
            kept["path"] = _relative_to(folder, kept["path"], manifest)
            kept["clip_score"] = np.round(score[keep], 6)
            kept.to_csv(out, index=False, header=i == 0)
            counts = pd.DataFrame({"kept": keep, "dropped": ~keep, "unscored": np.isnan(score)},
                                  index=table["wnid"].to_numpy()).groupby(level=0).sum()
            per_class = per_class.add(counts, fill_value=0)
        if out.tell() == 0:  # a manifest without rows: its header, and the score column
            out.write(",".join([*pd.read_csv(manifest, nrows=0).columns, "clip_score"]) + "\n")
    per_class = per_class.astype(int).sort_index()
    n_kept, images = int(per_class["kept"].sum()), int(per_class[["kept", "dropped"]].to_numpy().sum())
    summary = {
        "source": source, "source_manifest": str(manifest), "threshold": threshold,
        "rule": "kept when CLIP cosine with 'a photo of a {class}' >= threshold",
        "images": images, "kept": n_kept, "dropped": images - n_kept,
        "unscored": int(per_class["unscored"].sum()), "kept_share": n_kept / images if images else None,
        "per_class": {w: {"kept": int(c["kept"]), "dropped": int(c["dropped"])} for w, c in per_class.iterrows()},
        "clip": io.read_json(str(features_base) + ".json").get("spec"),
    }
    io.write_json(out_summary, summary)
    print(f"[filter] {source}: kept {summary['kept']} of {summary['images']} images at CLIP >= {threshold}",
          file=sys.stderr)
    if summary["kept"] == 0:
        print(f"WARNING: the filter kept no image of {manifest}; a mixture taking from it cannot be sampled",
              file=sys.stderr)
    return n_kept
