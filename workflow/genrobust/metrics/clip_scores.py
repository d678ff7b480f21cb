"""CLIP scores of image sets, from cached L2-normalised CLIP embeddings (numpy only).

- consistency: cosine of each image with the text 'a photo of a {class}' of its class (CLIP
  ImageNet class names, as generation prompted with); the paper's filter keeps images with
  consistency >= 0.3 (as LAION-400M did with its captions), applied at exactly >=.
- diversity (the paper's appendix E, after its ref. [63]): 1 - the mean pairwise cosine between
  the images of a class, self-pairs excluded, averaged over classes.
- zero-shot classifier: per class, the mean of the normalised text embeddings of the 80 CLIP
  templates, renormalised (CLIP's ImageNet zero-shot recipe); scores = image . classifier.
The text side is embedded by the CLIP embedding job beside the image features (`text_file`).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from genrobust import io

FILTER_THRESHOLD = 0.3
FILTER_TEMPLATE = "a photo of a {}"


# ----------------------------------------------------------------------------- text side


def zero_shot_weights(template_embeddings: np.ndarray) -> np.ndarray:
    """(classes, templates, D) normalised text embeddings -> (classes, D) classifier: the mean over
    templates, renormalised."""
    mean = np.asarray(template_embeddings, dtype=np.float64).mean(axis=1)
    return mean / np.linalg.norm(mean, axis=1, keepdims=True)


def write_text_file(path: str | Path, wnids: list[str], photo: np.ndarray, zero_shot: np.ndarray,
                    meta: dict) -> None:
    with io.atomic_path(path, suffix=".npz") as tmp:
        np.savez(tmp, wnids=np.asarray(wnids), photo=photo.astype(np.float32),
                 zero_shot=zero_shot.astype(np.float32), meta=np.asarray(io_json(meta)))


def io_json(obj) -> str:
    import json

    return json.dumps(obj, sort_keys=True)


def read_text_file(path: str | Path) -> tuple[list[str], np.ndarray, np.ndarray]:
    """(wnids, photo-prompt embeddings (C, D), zero-shot classifier (C, D)) in float64."""
    with np.load(path) as data:
        return [str(w) for w in data["wnids"]], data["photo"].astype(np.float64), data["zero_shot"].astype(np.float64)


# ----------------------------------------------------------------------------- image side


def unit(x) -> np.ndarray:
    """Rows rescaled to length 1 in float64 (stored embeddings are float16-rounded)."""
    x = np.asarray(x, dtype=np.float64)
    return x / np.maximum(np.linalg.norm(x, axis=-1, keepdims=True), 1e-12)


def consistency(features, wnids: pd.Series, text_wnids: list[str], photo: np.ndarray,
                positions: np.ndarray | None = None, chunk: int = 16384) -> np.ndarray:
    """Cosine of each image with its class's prompt; an image with several classes (ObjectNet)
    takes the best of them. Images of classes without a prompt get NaN. `features` may be a
    memory map, read in chunks; `positions` (ascending) are the rows of `wnids` in it (default
    all, in order)."""
    position = {w: i for i, w in enumerate(text_wnids)}
    if positions is not None:
        positions = np.asarray(positions, dtype=np.int64)
        features = _Rows(features, positions)
    photo = unit(photo)
    wnids = pd.Series(wnids.astype(str).to_numpy())
    # The first class of each image (-1: none with a prompt); images with several (ObjectNet) apart.
    several = wnids.str.contains(";", regex=False).to_numpy()
    first = wnids.copy()
    first[several] = wnids[several].str.split(";").str[0]
    first = first.map(position).fillna(-1).astype(np.int64).to_numpy()
    several = np.flatnonzero(several)
    wnids = wnids.to_numpy()
    out = np.full(len(wnids), np.nan)
    for start in range(0, len(wnids), chunk):
        block = unit(features[start:start + chunk])
        classes = first[start:start + len(block)]
        known = classes >= 0
        out[start:start + len(block)][known] = np.einsum("ij,ij->i", block[known], photo[classes[known]])
        for i in several[(several >= start) & (several < start + len(block))]:
            mine = [position[w] for w in wnids[i].split(";") if w in position]
            out[i] = (photo[mine] @ block[i - start]).max() if mine else np.nan
    return out


class _Rows:
    """Chunks of selected rows of a (memory-mapped) matrix."""

    def __init__(self, matrix, positions):
        self.matrix, self.positions = matrix, positions

    def __getitem__(self, window: slice):
        return self.matrix[self.positions[window]]


def passes_filter(scores: np.ndarray, threshold: float = FILTER_THRESHOLD) -> np.ndarray:
    """The filter's keep mask: consistency >= threshold (NaN fails)."""
    scores = np.asarray(scores, dtype=np.float64)
    return np.nan_to_num(scores, nan=-np.inf) >= threshold


def class_diversity(features: np.ndarray) -> float:
    """1 - mean pairwise cosine of a class's normalised embeddings, self-pairs excluded (NaN
    below 2 images). With S = sum of the vectors, the sum over ordered pairs i != j of x_i . x_j
    is |S|^2 - sum |x_i|^2, so no n x n matrix is formed."""
    x = unit(features)
    n = len(x)
    if n < 2:
        return float("nan")
    total = x.sum(axis=0)
    pairs = float(total @ total - (x * x).sum())
    return 1.0 - pairs / (n * (n - 1))


def diversity(features, class_rows: dict[str, np.ndarray]) -> tuple[float, pd.Series]:
    """(mean over classes, per-class series) of class_diversity; `features` is a Features."""
    per_class = pd.Series({w: class_diversity(features.of(rows)) for w, rows in class_rows.items()}, dtype=float)
    return float(per_class.mean(skipna=True)), per_class


def zero_shot_scores(features: np.ndarray, classifier: np.ndarray) -> np.ndarray:
    """(N, C) cosine logits of the zero-shot classifier."""
    return unit(features) @ unit(classifier).T
