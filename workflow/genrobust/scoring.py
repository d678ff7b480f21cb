"""The one scorer: logits (flip TTA, autocast) and top-k hits over a logit mask.

Training validation and evaluation both score through here, so a model's validation accuracy
during training and its evaluation accuracy on the same images are computed the same way.

Subset rule (test sets that cover other classes than the model): keep the images whose wnids
intersect the model's class_wnids; predict over the logit mask = (union of the kept images'
wnids) & class_wnids, in logit order; an image is a hit if the prediction is any of its wnids.
This one rule gives ImageNet-R's 200-class masking, ObjectNet's 125-class any-of scoring, and
ImageNet-100 models scored on the overlapping classes only.
"""

from __future__ import annotations

import contextlib
from collections.abc import Sequence

import numpy as np
import pandas as pd
import torch

PRECISIONS = {"fp32": None, "bf16": torch.bfloat16, "fp16": torch.float16}
TOP_K = 5


def autocast(device: torch.device, precision: str):
    """bf16/fp16 autocast where it pays (CUDA); elsewhere the model runs in fp32."""
    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {sorted(PRECISIONS)}, got {precision!r}")
    dtype = PRECISIONS[precision]
    if dtype is None or torch.device(device).type != "cuda":
        return contextlib.nullcontext()
    return torch.autocast(device_type="cuda", dtype=dtype)


def predict_logits(model: torch.nn.Module, images: torch.Tensor, *, flip_tta: bool, precision: str,
                   n_classes: int | None = None) -> torch.Tensor:
    """fp32 logits [N, C] of `images`; with flip_tta, the mean of the image's and its mirror's.
    With n_classes, a model whose output does not have that many logits is an error."""
    with autocast(images.device, precision):
        logits = model(images)
        if n_classes is not None:
            _check_logits(logits, n_classes)
        logits = logits.float()
        if flip_tta:
            logits = (logits + model(images.flip(3)).float()) / 2
    return logits


def _check_logits(logits, n_classes: int) -> None:
    if not isinstance(logits, torch.Tensor) or logits.ndim != 2 or logits.shape[1] != n_classes:
        shape = tuple(logits.shape) if isinstance(logits, torch.Tensor) else type(logits).__name__
        raise ValueError(f"model output {shape} does not match its {n_classes} class_wnids")


def target_matrix(targets: Sequence[Sequence[int]], n_classes: int, device) -> torch.Tensor:
    """Dense bool [N, C] with True at each image's correct classes."""
    rows = [r for r, t in enumerate(targets) for _ in t]
    cols = [c for t in targets for c in t]
    matrix = torch.zeros(len(targets), n_classes, dtype=torch.bool)
    if cols:
        if min(cols) < 0 or max(cols) >= n_classes:
            raise IndexError(f"target class out of range for {n_classes} logits")
        matrix[rows, cols] = True
    return matrix.to(device, non_blocking=True)


def masked_hits(logits: torch.Tensor, targets: torch.Tensor, mask: torch.Tensor, k: int) -> torch.Tensor:
    """Bool [N]: is any of the k best logits among the columns `mask` a target (bool [N, C])?
    With fewer than k masked classes, all of them are the top-k."""
    k = min(k, mask.numel())
    top_columns = logits.index_select(1, mask).topk(k, dim=1).indices
    top_classes = mask[top_columns]
    return targets.gather(1, top_classes).any(dim=1)


def score_logits(logits: torch.Tensor, targets: Sequence[set[int]], mask: Sequence[int], k: int = 1) -> torch.Tensor:
    """Bool [N]: is the argmax (top-k when k > 1) over the masked logits in the image's target set?
    Logits outside `mask` are ignored (as if -inf); any target counts (ObjectNet's any-of)."""
    if logits.ndim != 2 or logits.shape[0] != len(targets):
        raise ValueError(f"logits {tuple(logits.shape)} do not match {len(targets)} targets")
    if not len(mask):
        raise ValueError("empty logit mask")
    mask_t = torch.as_tensor(list(mask), dtype=torch.long, device=logits.device)
    matrix = target_matrix([sorted(t) for t in targets], logits.shape[1], logits.device)
    return masked_hits(logits.float(), matrix, mask_t, k)


def split_wnids(value) -> list[str]:
    """'n1;n2' -> ['n1', 'n2'] (order kept, blanks dropped)."""
    return [w.strip() for w in str(value).split(";") if w.strip()]


def select_test_subset(index_df: pd.DataFrame, class_wnids: Sequence[str]
                       ) -> tuple[pd.DataFrame, list[list[int]], list[int]]:
    """Apply the subset rule: (kept rows, per-row targets as logit indices in the row's wnid
    order, the logit mask as sorted logit indices)."""
    for col in ("path", "wnids"):
        if col not in index_df.columns:
            raise KeyError(f"test index has no {col!r} column (columns: {list(index_df.columns)})")
    position = {w: i for i, w in enumerate(class_wnids)}
    if len(position) != len(class_wnids):
        raise ValueError("class_wnids has duplicates")
    targets_all = [[position[w] for w in split_wnids(v) if w in position] for v in index_df["wnids"]]
    keep = np.array([bool(t) for t in targets_all], dtype=bool)
    kept = index_df.loc[keep].reset_index(drop=True)
    targets = [t for t in targets_all if t]
    mask = sorted({c for t in targets for c in t})
    return kept, targets, mask


@torch.no_grad()
def topk_accuracy(model: torch.nn.Module, loader, device, precision: str = "fp32",
                  flip_tta: bool = True) -> tuple[float, float]:
    """(top-1, top-5) accuracy as fractions over a loader of (images, labels) batches, every
    logit a candidate (training validation: the model's own classes)."""
    model.eval()
    correct1 = torch.zeros((), dtype=torch.float64, device=device)
    correct5 = torch.zeros((), dtype=torch.float64, device=device)
    count = 0
    mask = None
    for images, labels in loader:
        logits = predict_logits(model, images, flip_tta=flip_tta, precision=precision)
        if mask is None:
            mask = torch.arange(logits.shape[1], device=logits.device)
        targets = torch.nn.functional.one_hot(labels.long(), logits.shape[1]).bool()
        correct1 += masked_hits(logits, targets, mask, 1).sum()
        correct5 += masked_hits(logits, targets, mask, TOP_K).sum()
        count += labels.shape[0]
    if count == 0:
        raise ValueError("the validation set is empty")
    return correct1.item() / count, correct5.item() / count
