"""Accuracy of one classifier on one indexed test set (ImageNet val, V2, Sketch, R, ObjectNet, C).

Contract
- A test set is a DataFrame with `path`, `wnids` (the image's correct classes joined by ';';
  ObjectNet images may have several, any of which counts) and, for ImageNet-C, `corruption`
  and `severity`.
- A classifier has an ordered `class_wnids`: logit i is class_wnids[i].
- Subset rule: keep the images whose wnids intersect class_wnids; predict over the logit mask
  = (union of the index's wnids) & class_wnids, in logit order. This one rule gives ImageNet-R's
  200-class masking, ObjectNet's 125-class any-of scoring, and ImageNet-100 models scored on
  the overlapping classes only.
- Unreadable images (corrupt, truncated, missing) do not stop the run: they are left out of
  every denominator and listed in the result (`n_unreadable`, `unreadable`), with a warning
  on stderr. A set where no image could be read is an error.

One preprocessing for every test set: optional border crop (ObjectNet: 2 px per side), resize
the shorter side to round(res / crop_ratio) (bilinear, antialiased), center crop res x res,
ImageNet mean/std normalisation. The ID class subsets needed for effective robustness
(ImageNet val on the ImageNet-R / ObjectNet classes) are scored in the same pass as the full
set, so val is read once per model.
"""

from __future__ import annotations

import contextlib
import math
import os
import sys
from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd
import torch
from PIL import Image
from torch.utils.data import DataLoader, Dataset
from torchvision import transforms
from tqdm import tqdm

from genrobust.io import write_json

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
DEFAULT_RES = 224
DEFAULT_CROP_RATIO = 224 / 256
TOP_K = 5
PRECISIONS = {"fp32": None, "bf16": torch.bfloat16, "fp16": torch.float16}
MAX_LISTED_WARNINGS = 20


# ---------------------------------------------------------------- images


def eval_transform(res: int = DEFAULT_RES, crop_ratio: float = DEFAULT_CROP_RATIO) -> transforms.Compose:
    """Resize the shorter side to round(res / crop_ratio), center crop res, normalise."""
    if not 0 < crop_ratio <= 1:
        raise ValueError(f"crop_ratio must be in (0, 1], got {crop_ratio}")
    return transforms.Compose(
        [
            transforms.Resize(
                round(res / crop_ratio), interpolation=transforms.InterpolationMode.BILINEAR, antialias=True
            ),
            transforms.CenterCrop(res),
            transforms.ToTensor(),
            transforms.Normalize(IMAGENET_MEAN, IMAGENET_STD),
        ]
    )


class TestImages(Dataset):
    """Evaluation images; item i is (image tensor, i, error message or "").

    An image that cannot be read gives a zero tensor and a non-empty error message instead of
    raising, so that one bad file does not end a 50K-image run; the caller excludes it.
    """

    __test__ = False  # not a pytest test class despite the name

    def __init__(
        self,
        paths: Sequence[str | os.PathLike],
        res: int = DEFAULT_RES,
        crop_ratio: float = DEFAULT_CROP_RATIO,
        border_crop: int = 0,
    ):
        if border_crop < 0:
            raise ValueError(f"border_crop must be >= 0, got {border_crop}")
        self.paths = [str(p) for p in paths]
        self.res = res
        self.border_crop = border_crop
        self.transform = eval_transform(res, crop_ratio)

    def __len__(self) -> int:
        return len(self.paths)

    def load_image(self, path: str) -> Image.Image:
        """The RGB image with the border crop applied, before resizing."""
        with Image.open(path) as im:
            im = im.convert("RGB")  # forces the full decode inside the `with`
        b = self.border_crop
        if b:
            w, h = im.size
            if w <= 2 * b or h <= 2 * b:
                raise ValueError(f"image {w}x{h} is too small for a {b}-px border crop")
            im = im.crop((b, b, w - b, h - b))
        return im

    def __getitem__(self, i: int):
        path = self.paths[i]
        try:
            return self.transform(self.load_image(path)), i, ""
        except Exception as err:  # corrupt, truncated or vanished file: reported, not fatal
            return torch.zeros(3, self.res, self.res), i, f"{type(err).__name__}: {err}"


# ---------------------------------------------------------------- scoring


def _target_matrix(targets: Sequence[Sequence[int]], n_classes: int, device) -> torch.Tensor:
    """Dense bool [N, C] with True at each image's correct classes."""
    rows = [r for r, t in enumerate(targets) for _ in t]
    cols = [c for t in targets for c in t]
    matrix = torch.zeros(len(targets), n_classes, dtype=torch.bool)
    if cols:
        if min(cols) < 0 or max(cols) >= n_classes:
            raise IndexError(f"target class out of range for {n_classes} logits")
        matrix[rows, cols] = True
    return matrix.to(device, non_blocking=True)


def _masked_hits(logits: torch.Tensor, target_matrix: torch.Tensor, mask: torch.Tensor, k: int) -> torch.Tensor:
    """Hit if any of the k best logits among the columns `mask` is a target class."""
    k = min(k, mask.numel())
    top_columns = logits.index_select(1, mask).topk(k, dim=1).indices
    top_classes = mask[top_columns]
    return target_matrix.gather(1, top_classes).any(dim=1)


def score_logits(
    logits: torch.Tensor, targets: Sequence[set[int]], mask: Sequence[int], k: int = 1
) -> torch.Tensor:
    """Bool [N]: is the argmax (top-k when k > 1) over the masked logits in the image's target set?

    Logits outside `mask` are ignored (as if -inf); any target counts (ObjectNet's any-of).
    With fewer than k masked classes, all of them are the top-k.
    """
    if logits.ndim != 2 or logits.shape[0] != len(targets):
        raise ValueError(f"logits {tuple(logits.shape)} do not match {len(targets)} targets")
    if not len(mask):
        raise ValueError("empty logit mask")
    mask_t = torch.as_tensor(list(mask), dtype=torch.long, device=logits.device)
    matrix = _target_matrix([sorted(t) for t in targets], logits.shape[1], logits.device)
    return _masked_hits(logits.float(), matrix, mask_t, k)


def split_wnids(value) -> list[str]:
    """'n1;n2' -> ['n1', 'n2'] (order kept, blanks dropped)."""
    return [w.strip() for w in str(value).split(";") if w.strip()]


def select_test_subset(
    index_df: pd.DataFrame, class_wnids: Sequence[str]
) -> tuple[pd.DataFrame, list[list[int]], list[int]]:
    """Apply the subset rule.

    Returns (kept rows, per-row targets as logit indices in wnid-list order, logit mask).
    """
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


# ---------------------------------------------------------------- evaluation


def _autocast(device: torch.device, precision: str):
    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {sorted(PRECISIONS)}, got {precision!r}")
    dtype = PRECISIONS[precision]
    # Reduced precision only where it pays (CUDA); elsewhere the model runs in fp32.
    if dtype is None or device.type != "cuda":
        return contextlib.nullcontext()
    return torch.autocast(device_type="cuda", dtype=dtype)


def _check_logits(logits, n_classes: int) -> None:
    if not isinstance(logits, torch.Tensor) or logits.ndim != 2 or logits.shape[1] != n_classes:
        shape = tuple(logits.shape) if isinstance(logits, torch.Tensor) else type(logits).__name__
        raise ValueError(f"model output {shape} does not match its {n_classes} class_wnids")


def _fraction(hits: np.ndarray) -> float | None:
    return float(hits.mean()) if hits.size else None


def evaluate_classifier(
    model: torch.nn.Module,
    class_wnids: Sequence[str],
    index_df: pd.DataFrame,
    batch_size: int = 256,
    num_workers: int = 4,
    device: str | torch.device = "cuda",
    res: int = DEFAULT_RES,
    crop_ratio: float = DEFAULT_CROP_RATIO,
    border_crop: int = 0,
    flip_tta: bool = False,
    id_subsets: Mapping[str, Sequence[str]] | None = None,
    precision: str = "fp32",
) -> dict:
    """Top-1/top-5 accuracy (fractions in 0-1) of `model` on the test set `index_df`.

    See the module docstring for the subset rule. `id_subsets` maps a name to a wnid list; each
    is scored on the images whose wnids meet (subset & class_wnids), over exactly those logits,
    in the same pass. flip_tta averages the logits of the image and its mirror image.
    """
    device = torch.device(device)
    kept, targets, mask = select_test_subset(index_df, class_wnids)
    if kept.empty:
        raise ValueError(
            f"no test image has a class of this model ({len(index_df)} images, "
            f"{len(class_wnids)} model classes): wrong index or class list?"
        )
    n_rows, n_classes = len(kept), len(class_wnids)
    position = {w: i for i, w in enumerate(class_wnids)}

    # Per-subset logit masks and image memberships (bool [N] each: O(N) bytes).
    subsets: dict[str, tuple[torch.Tensor | None, np.ndarray]] = {}
    for name, wnids in (id_subsets or {}).items():
        sub_mask = sorted({position[w] for w in wnids if w in position})
        member = np.zeros(n_rows, dtype=bool)
        if sub_mask:
            allowed = set(sub_mask)
            member = np.fromiter((any(c in allowed for c in t) for t in targets), dtype=bool, count=n_rows)
        subsets[name] = (
            torch.tensor(sub_mask, dtype=torch.long, device=device) if sub_mask else None,
            member,
        )

    mask_t = torch.tensor(mask, dtype=torch.long, device=device)
    readable = np.zeros(n_rows, dtype=bool)
    top1 = np.zeros(n_rows, dtype=bool)
    top5 = np.zeros(n_rows, dtype=bool)
    subset_hits = {name: np.zeros(n_rows, dtype=bool) for name in subsets}
    errors: dict[int, str] = {}
    live_subsets = {name: v for name, v in subsets.items() if v[0] is not None and v[1].any()}

    dataset = TestImages(kept["path"].tolist(), res=res, crop_ratio=crop_ratio, border_crop=border_crop)
    on_cuda = device.type == "cuda"
    loader = DataLoader(
        dataset,
        batch_size=batch_size,
        shuffle=False,
        num_workers=num_workers,
        pin_memory=on_cuda,
        persistent_workers=False,
    )
    model = model.to(device, memory_format=torch.channels_last).eval()
    interactive = sys.stderr.isatty()
    progress = tqdm(loader, desc="evaluate", unit="batch", mininterval=0.5 if interactive else 30, file=sys.stderr)
    with torch.inference_mode():
        for images, rows, batch_errors in progress:
            rows_np = rows.numpy()
            for r, e in zip(rows_np, batch_errors):
                if e:
                    errors[int(r)] = e
            ok = np.array([not e for e in batch_errors], dtype=bool)
            if not ok.any():
                continue
            if not ok.all():
                rows_np = rows_np[ok]
                images = images[torch.from_numpy(ok)]
            images = images.to(device, non_blocking=True).contiguous(memory_format=torch.channels_last)
            with _autocast(device, precision):
                logits = model(images)
                _check_logits(logits, n_classes)
                if flip_tta:
                    logits = (logits.float() + model(images.flip(3)).float()) / 2
            logits = logits.float()
            matrix = _target_matrix([targets[r] for r in rows_np], n_classes, device)
            # Every score of the batch in one device-to-host copy; a subset's hits on images
            # outside it are computed but never read.
            hits = [_masked_hits(logits, matrix, mask_t, 1), _masked_hits(logits, matrix, mask_t, TOP_K)]
            hits += [_masked_hits(logits, matrix, m, 1) for m, _ in live_subsets.values()]
            hits = torch.stack(hits).cpu().numpy()
            readable[rows_np] = True
            top1[rows_np], top5[rows_np] = hits[0], hits[1]
            for (name, (_, member)), sub_hits in zip(live_subsets.items(), hits[2:]):
                in_sub = member[rows_np]
                subset_hits[name][rows_np[in_sub]] = sub_hits[in_sub]

    unreadable = [kept["path"].iat[r] for r in sorted(errors)]
    if unreadable:
        for r in sorted(errors)[:MAX_LISTED_WARNINGS]:
            print(f"WARNING: unreadable image {kept['path'].iat[r]}: {errors[r]}", file=sys.stderr)
        print(
            f"WARNING: {len(unreadable)} of {n_rows} test images could not be read; "
            "they are excluded from every accuracy (listed under 'unreadable' in the result)",
            file=sys.stderr,
        )
    if not readable.any():
        raise RuntimeError(f"none of the {n_rows} test images could be read; first error: {next(iter(errors.values()))}")

    result: dict = {
        "n": int(readable.sum()),
        "n_indexed": int(len(index_df)),
        "n_outside_classes": int(len(index_df) - n_rows),
        "top1": _fraction(top1[readable]),
        "top5": _fraction(top5[readable]),
        "n_unreadable": len(unreadable),
        "unreadable": unreadable,
        "classes": len(mask),
    }

    # Per class, by each image's first target wnid (in the index's order).
    first = np.fromiter((t[0] for t in targets), dtype=np.int64, count=n_rows)
    correct = np.bincount(first[readable & top1], minlength=n_classes)
    total = np.bincount(first[readable], minlength=n_classes)
    result["per_class"] = {class_wnids[c]: [int(correct[c]), int(total[c])] for c in mask}

    if "corruption" in kept.columns:
        corruption = kept["corruption"].astype(str).to_numpy()
        per_corruption, per_corruption_severity = {}, {}
        for name in sorted(set(corruption)):
            sel = readable & (corruption == name)
            if not sel.any():
                continue
            per_corruption[name] = _fraction(top1[sel])
            if "severity" in kept.columns:
                severity = kept["severity"].astype(str).to_numpy()
                per_corruption_severity[name] = {
                    s: _fraction(top1[sel & (severity == s)])
                    for s in sorted(set(severity[sel]), key=lambda s: (len(s), s))
                }
        result["per_corruption"] = per_corruption
        result["mean_corruption_top1"] = (
            float(np.mean(list(per_corruption.values()))) if per_corruption else None
        )
        if per_corruption_severity:
            result["per_corruption_severity"] = per_corruption_severity

    if subsets:
        result["id_subsets"] = {}
        result["id_subsets_n"] = {}
        result["id_subsets_classes"] = {}
        for name, (sub_mask, member) in subsets.items():
            sel = readable & member
            result["id_subsets"][name] = _fraction(subset_hits[name][sel])
            result["id_subsets_n"][name] = int(sel.sum())
            result["id_subsets_classes"][name] = 0 if sub_mask is None else int(sub_mask.numel())
    return result


def _json_safe(obj):
    if isinstance(obj, Mapping):
        return {str(k): _json_safe(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_json_safe(v) for v in obj]
    if isinstance(obj, (np.generic, torch.Tensor)):
        obj = obj.item()
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    if isinstance(obj, os.PathLike):
        return os.fspath(obj)
    return obj


def write_result(path: str | os.PathLike, result_dict: Mapping, meta: Mapping) -> None:
    """Atomically write {**result_dict, "meta": meta} as JSON (non-finite floats become null)."""
    if "meta" in result_dict:
        raise KeyError("result_dict already has a 'meta' key")
    write_json(path, _json_safe({**result_dict, "meta": dict(meta)}))
