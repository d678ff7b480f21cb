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
from .embeddings import load_features


def filter_generated(manifest: str, features_base: str, text_file: str, threshold: float, out_manifest: str,
                     out_summary: str, source: str = "") -> pd.DataFrame:
    """Write the kept rows of `manifest` and the counts per class (see the module docstring)."""
    table = io.read_csv(manifest)
    resolved = io.resolve_manifest_paths(table, manifest)
    features = load_features(features_base)
    text_wnids, photo, _ = read_text_file(text_file)
    scores = pd.Series(consistency(features.matrix, features.rows["wnids"], text_wnids, photo),
                       index=features.rows["path"].astype(str))
    if scores.index.duplicated().any():
        raise ValueError(f"{features_base}: an image is listed twice")
    score = resolved.map(scores).to_numpy(dtype=np.float64)  # NaN: not embedded (unreadable)
    keep = passes_filter(score, threshold)
    base = Path(out_manifest).parent.resolve()
    kept = table.loc[keep].copy()
    kept["path"] = [os.path.relpath(Path(p).resolve(), base) for p in resolved[keep]]
    kept["clip_score"] = np.round(score[keep], 6)
    io.write_csv(out_manifest, kept)
    per_class = pd.DataFrame({"wnid": table["wnid"], "kept": keep, "unscored": np.isnan(score)}).groupby("wnid")
    summary = {
        "source": source, "source_manifest": str(manifest), "threshold": threshold,
        "rule": "kept when CLIP cosine with 'a photo of a {class}' >= threshold",
        "images": int(len(table)), "kept": int(keep.sum()), "dropped": int((~keep).sum()),
        "unscored": int(np.isnan(score).sum()), "kept_share": float(keep.mean()) if len(table) else None,
        "per_class": {w: {"kept": int(g["kept"].sum()), "dropped": int((~g["kept"]).sum())} for w, g in per_class},
        "clip": io.read_json(str(features_base) + ".json").get("spec"),
    }
    io.write_json(out_summary, summary)
    print(f"[filter] {source}: kept {summary['kept']} of {summary['images']} images at CLIP >= {threshold}",
          file=sys.stderr)
    if summary["kept"] == 0:
        print(f"WARNING: the filter kept no image of {manifest}; a mixture taking from it cannot be sampled",
              file=sys.stderr)
    return kept
