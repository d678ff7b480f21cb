"""Evaluation: the accuracy of one trained classifier on every test set of its dataset.

Contract
- A test set is an index (DataFrame) with `path`, `wnids` (the image's correct classes joined
  by ';'; ObjectNet images may have several, any of which counts) and, for ImageNet-C,
  `corruption` and `severity`.
- A classifier has an ordered `class_wnids`: logit i is class_wnids[i]. Which images and
  logits count is `genrobust.scoring`'s subset rule (ImageNet-R's 200-class masking,
  ObjectNet's any-of, ImageNet-100 models on the overlapping classes).
- Unreadable images (corrupt, truncated, missing) do not stop the run: they are left out of
  every denominator and listed in the result (`n_unreadable`, `unreadable`), with a warning
  on stderr. A set where no image could be read is an error.

One preprocessing for every test set: optional border crop (ObjectNet: 2 px per side), resize
the shorter side to round(res / crop_ratio) (bilinear, antialiased), center crop res x res,
ImageNet mean/std normalisation. A test set may have its own crop_ratio (config
`evaluation.test_set_crop_ratio`): ImageNet-C's images are already 224-px centre crops of val,
so 1.0 keeps their whole field of view instead of cropping them a second time. The ID class
subsets needed for effective robustness (ImageNet val on the ImageNet-R / ObjectNet classes) are
scored in the same pass as the full set, so val is read once per model.
"""

from __future__ import annotations

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

from genrobust import io
from genrobust.images import open_rgb
from genrobust.datasets import IMAGENET_MEAN, IMAGENET_STD
from genrobust.scoring import TOP_K, masked_hits, predict_logits, select_test_subset, split_wnids, target_matrix

DEFAULT_RES = 224
DEFAULT_CROP_RATIO = 224 / 256
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
        im = open_rgb(path)
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


# ---------------------------------------------------------------- one test set


def _fraction(hits: np.ndarray) -> float | None:
    return float(hits.mean()) if hits.size else None


def _subset_masks(id_subsets: Mapping[str, Sequence[str]] | None, class_wnids: Sequence[str],
                  targets: list[list[int]], device) -> dict[str, tuple[torch.Tensor | None, np.ndarray]]:
    """Per ID subset: its logit mask (None if the model has none of its classes) and which kept
    images belong to it (bool [N]: O(N) bytes)."""
    position = {w: i for i, w in enumerate(class_wnids)}
    subsets = {}
    for name, wnids in (id_subsets or {}).items():
        sub_mask = sorted({position[w] for w in wnids if w in position})
        member = np.zeros(len(targets), dtype=bool)
        if sub_mask:
            allowed = set(sub_mask)
            member = np.fromiter((any(c in allowed for c in t) for t in targets), dtype=bool,
                                 count=len(targets))
        subsets[name] = (torch.tensor(sub_mask, dtype=torch.long, device=device) if sub_mask else None,
                         member)
    return subsets


class _Hits:
    """Per kept image: readable, top-1 and top-5 hit, hit within each ID subset; read errors."""

    def __init__(self, n_rows: int, subset_names):
        self.readable = np.zeros(n_rows, dtype=bool)
        self.top1 = np.zeros(n_rows, dtype=bool)
        self.top5 = np.zeros(n_rows, dtype=bool)
        self.subsets = {name: np.zeros(n_rows, dtype=bool) for name in subset_names}
        self.errors: dict[int, str] = {}


def _score_images(model, loader, targets, mask, subsets, n_classes, device, precision, flip_tta) -> _Hits:
    """Run the model over the loader and record every image's hits."""
    hits = _Hits(len(targets), subsets)
    mask_t = torch.tensor(mask, dtype=torch.long, device=device)
    live = {name: v for name, v in subsets.items() if v[0] is not None and v[1].any()}
    interactive = sys.stderr.isatty()
    progress = tqdm(loader, desc="evaluate", unit="batch", mininterval=0.5 if interactive else 30, file=sys.stderr)
    with torch.inference_mode():
        for images, rows, batch_errors in progress:
            rows_np = rows.numpy()
            hits.errors.update({int(r): e for r, e in zip(rows_np, batch_errors) if e})
            ok = np.array([not e for e in batch_errors], dtype=bool)
            if not ok.any():
                continue
            if not ok.all():
                rows_np = rows_np[ok]
                images = images[torch.from_numpy(ok)]
            images = images.to(device, non_blocking=True).contiguous(memory_format=torch.channels_last)
            logits = predict_logits(model, images, flip_tta=flip_tta, precision=precision, n_classes=n_classes)
            matrix = target_matrix([targets[r] for r in rows_np], n_classes, device)
            # Every score of the batch in one device-to-host copy; a subset's hits on images
            # outside it are computed but never read.
            scores = [masked_hits(logits, matrix, mask_t, 1), masked_hits(logits, matrix, mask_t, TOP_K)]
            scores += [masked_hits(logits, matrix, m, 1) for m, _ in live.values()]
            scores = torch.stack(scores).cpu().numpy()
            hits.readable[rows_np] = True
            hits.top1[rows_np], hits.top5[rows_np] = scores[0], scores[1]
            for (name, (_, member)), sub_hits in zip(live.items(), scores[2:]):
                in_sub = member[rows_np]
                hits.subsets[name][rows_np[in_sub]] = sub_hits[in_sub]
    return hits


def _report_unreadable(kept: pd.DataFrame, errors: dict[int, str]) -> list[str]:
    unreadable = [kept["path"].iat[r] for r in sorted(errors)]
    if unreadable:
        for r in sorted(errors)[:MAX_LISTED_WARNINGS]:
            print(f"WARNING: unreadable image {kept['path'].iat[r]}: {errors[r]}", file=sys.stderr)
        print(f"WARNING: {len(unreadable)} of {len(kept)} test images could not be read; "
              "they are excluded from every accuracy (listed under 'unreadable' in the result)",
              file=sys.stderr)
    if len(unreadable) == len(kept):
        raise RuntimeError(f"none of the {len(kept)} test images could be read; first error: "
                           f"{next(iter(errors.values()))}")
    return unreadable


def _per_class(targets, hits: _Hits, mask, class_wnids) -> dict[str, list[int]]:
    """[correct, total] per class, by each image's first target wnid (in the index's order)."""
    first = np.fromiter((t[0] for t in targets), dtype=np.int64, count=len(targets))
    correct = np.bincount(first[hits.readable & hits.top1], minlength=len(class_wnids))
    total = np.bincount(first[hits.readable], minlength=len(class_wnids))
    return {class_wnids[c]: [int(correct[c]), int(total[c])] for c in mask}


def _corruption_summary(kept: pd.DataFrame, hits: _Hits) -> dict:
    """ImageNet-C: top-1 per corruption (and per severity), and their mean."""
    corruption = kept["corruption"].astype(str).to_numpy()
    per_corruption, per_corruption_severity = {}, {}
    for name in sorted(set(corruption)):
        sel = hits.readable & (corruption == name)
        if not sel.any():
            continue
        per_corruption[name] = _fraction(hits.top1[sel])
        if "severity" in kept.columns:
            severity = kept["severity"].astype(str).to_numpy()
            per_corruption_severity[name] = {
                s: _fraction(hits.top1[sel & (severity == s)])
                for s in sorted(set(severity[sel]), key=lambda s: (len(s), s))
            }
    summary = {"per_corruption": per_corruption, "corruptions_averaged": sorted(per_corruption),
               "mean_corruption_top1": float(np.mean(list(per_corruption.values()))) if per_corruption else None}
    if per_corruption_severity:
        summary["per_corruption_severity"] = per_corruption_severity
    return summary


def _subset_summary(subsets, hits: _Hits) -> dict:
    summary = {"id_subsets": {}, "id_subsets_n": {}, "id_subsets_classes": {}}
    for name, (sub_mask, member) in subsets.items():
        sel = hits.readable & member
        summary["id_subsets"][name] = _fraction(hits.subsets[name][sel])
        summary["id_subsets_n"][name] = int(sel.sum())
        summary["id_subsets_classes"][name] = 0 if sub_mask is None else int(sub_mask.numel())
    return summary


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
    subsets = _subset_masks(id_subsets, class_wnids, targets, device)
    dataset = TestImages(kept["path"].tolist(), res=res, crop_ratio=crop_ratio, border_crop=border_crop)
    loader = DataLoader(dataset, batch_size=batch_size, shuffle=False, num_workers=num_workers,
                        pin_memory=device.type == "cuda", persistent_workers=False)
    model = model.to(device, memory_format=torch.channels_last).eval()
    hits = _score_images(model, loader, targets, mask, subsets, len(class_wnids), device, precision, flip_tta)
    unreadable = _report_unreadable(kept, hits.errors)
    result: dict = {
        "n": int(hits.readable.sum()),
        "n_indexed": int(len(index_df)),
        "n_outside_classes": int(len(index_df) - len(kept)),
        "top1": _fraction(hits.top1[hits.readable]),
        "top5": _fraction(hits.top5[hits.readable]),
        "n_unreadable": len(unreadable),
        "unreadable": unreadable,
        "classes": len(mask),
        "per_class": _per_class(targets, hits, mask, class_wnids),
    }
    if "corruption" in kept.columns:
        result.update(_corruption_summary(kept, hits))
    if subsets:
        result.update(_subset_summary(subsets, hits))
    return result


# ---------------------------------------------------------------- one model, all its test sets


def evaluate_model(model_path, test_sets: Mapping[str, str], *, id_test_set: str,
                   id_subsets: Sequence[str] = (), border_crops: Mapping[str, int] | None = None,
                   options: Mapping, threads: int | None, out) -> dict:
    """Score the trained model at `model_path` on every indexed test set (name -> index CSV) and
    write one JSON {test set: result, meta}. The ID set is also scored on the classes of each
    set named in `id_subsets` (effective robustness needs ID accuracy on R's and ObjectNet's
    classes). `options` is config's `evaluation` section; its `test_set_crop_ratio` overrides
    `crop_ratio` per test set."""
    from genrobust.classifiers import load_classifier

    device = "cuda" if torch.cuda.is_available() else "cpu"
    model, class_wnids = load_classifier(model_path, device)
    indexes = {name: io.read_csv(path) for name, path in test_sets.items()}
    results = {}
    for name, index in indexes.items():
        subsets = None
        if name == id_test_set and id_subsets:
            subsets = {s: sorted({w for v in indexes[s]["wnids"] for w in split_wnids(v)}) for s in id_subsets}
        crop_ratio = (options.get("test_set_crop_ratio") or {}).get(name, options["crop_ratio"])
        result = evaluate_classifier(
            model, class_wnids, index, batch_size=options["batch_size"], num_workers=min(threads or 4, 8),
            device=device, res=options["res"], crop_ratio=crop_ratio,
            border_crop=(border_crops or {}).get(name, 0), flip_tta=options["flip_tta"],
            id_subsets=subsets, precision=options["precision"])
        results[name] = {**result, "res": options["res"], "crop_ratio": crop_ratio}
        print(f"[evaluate] {name}: top-1 {100 * result['top1']:.2f}% on {result['n']} images", file=sys.stderr)
    write_result(out, results, {"model": str(model_path), "indexes": dict(test_sets), "device": device,
                                "threads": torch.get_num_threads()})  # provenance: CPU kernels round by threads
    return results


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
    io.write_json(path, _json_safe({**result_dict, "meta": dict(meta)}))
