"""Per-image top-1 of a classifier on image sets (Table 5 and the real-vs-generated scatter).

Classifiers, each with its own preprocessing, all scored by the one scorer (scoring.py: the
subset rule, logit masks, flip TTA where the study's evaluation uses it):

- timm pretrained models by name (`vit_large_patch14_clip_336.openai_ft_in12k_in1k`), with the
  preprocessing of their pretrained config (timm.data.resolve_model_data_config +
  create_transform). Weights from the hub (`pretrained=True`), or from a local file through
  the same call (`pretrained_cfg_overlay=dict(file=...)`), or a `local-dir:<folder>` /
  `hf-hub:<id>` written by timm's save_for_hf / push_to_hub. Their 1000 logits are in timm's
  ImageNet order (sorted wnids); a set's images are scored over the classes the set has.
- the study's own trained runs (classifiers.load_classifier), with config's evaluation
  preprocessing (evaluate.eval_transform: resize, centre crop, flip TTA, precision).
Zero-shot CLIP needs no pass over the images: it is scored from the cached CLIP embeddings
(reports.py).
"""

from __future__ import annotations

import sys
import time
from dataclasses import dataclass, field
from typing import Any, Callable

import numpy as np
import pandas as pd

from genrobust import io

PREDICTION_COLUMNS = ["set", "path", "wnids", "prediction", "correct"]


@dataclass
class Classifier:
    model: Any
    transform: Callable
    class_wnids: list[str]
    flip_tta: bool = False
    precision: str = "fp32"
    provenance: dict = field(default_factory=dict)


def timm_classifier(name: str, file: str | None, device) -> Classifier:
    """A timm ImageNet-1K classifier with its own preprocessing (see the module docstring)."""
    import timm
    from timm.data import create_transform, resolve_model_data_config

    from genrobust.datasets import imagenet_wnids

    kwargs = {"pretrained_cfg_overlay": {"file": str(file)}} if file else {}
    try:
        model = timm.create_model(name, pretrained=True, **kwargs)
    except (RuntimeError, ValueError, OSError) as err:
        raise ValueError(f"timm model '{name}'{f' (weights {file})' if file else ''} cannot be loaded: {err}") from None
    if model.num_classes != 1000:
        raise ValueError(f"timm model '{name}' has {model.num_classes} outputs; Table 5 scores ImageNet-1K "
                         "classifiers (1000 outputs in timm's ImageNet order)")
    data_config = resolve_model_data_config(model)
    return Classifier(model.to(device).eval(), create_transform(**data_config, is_training=False), imagenet_wnids(),
                      provenance={"timm": name, "file": file, "data_config": {k: str(v) for k, v in data_config.items()},
                                  "timm_version": timm.__version__})


def run_classifier(model_path: str, evaluation: dict, device) -> Classifier:
    """A model trained by this study, with config's evaluation preprocessing."""
    from genrobust.classifiers import load_classifier
    from genrobust.evaluate import eval_transform

    model, class_wnids = load_classifier(model_path, device)
    return Classifier(model, eval_transform(evaluation["res"], evaluation["crop_ratio"]), class_wnids,
                      flip_tta=evaluation["flip_tta"], precision=evaluation["precision"],
                      provenance={"model": str(model_path)})


def predict(classifier: Classifier, rows: pd.DataFrame, *, batch_size: int, num_workers: int, device,
            desc: str) -> pd.DataFrame:
    """One row per image of `rows` (path, wnids) that has a class of the classifier: its
    prediction (over the logits of the classes these images have) and whether it is correct."""
    import torch

    from genrobust.scoring import masked_hits, predict_logits, select_test_subset, target_matrix

    from .embeddings import batches

    kept, targets, mask = select_test_subset(rows, classifier.class_wnids)
    if kept.empty:
        raise ValueError(f"{desc}: no image has a class of the classifier ({len(rows)} images)")
    mask_t = torch.tensor(mask, dtype=torch.long, device=device)
    n_classes = len(classifier.class_wnids)
    prediction = np.full(len(kept), "", dtype=object)
    correct = np.zeros(len(kept), dtype=bool)
    readable = np.zeros(len(kept), dtype=bool)
    model = classifier.model
    with torch.inference_mode():
        for images, positions, failed in batches(kept["path"], classifier.transform, batch_size, num_workers,
                                                 device, desc):
            for position, error in failed.items():
                print(f"WARNING: unreadable image {kept['path'].iat[position]}: {error}", file=sys.stderr)
            if images is None:
                continue
            logits = predict_logits(model, images, flip_tta=classifier.flip_tta, precision=classifier.precision,
                                    n_classes=n_classes)
            matrix = target_matrix([targets[p] for p in positions], n_classes, device)
            correct[positions] = masked_hits(logits, matrix, mask_t, 1).cpu().numpy()
            best = mask_t[logits.index_select(1, mask_t).argmax(dim=1)].cpu().numpy()
            prediction[positions] = [classifier.class_wnids[c] for c in best]
            readable[positions] = True
    return pd.DataFrame({"path": kept["path"], "wnids": kept["wnids"], "prediction": prediction,
                         "correct": correct})[readable].reset_index(drop=True)


def classify_image_sets(classifier: Classifier, sets: dict[str, pd.DataFrame], out: str, *, batch_size: int,
                        num_workers: int, device) -> pd.DataFrame:
    """The classify stage: predictions of one classifier on named image sets -> one CSV
    (set, path, wnids, prediction, correct) and a provenance JSON beside it."""
    frames, counts = [], {}
    start = time.time()
    for name, rows in sets.items():
        frame = predict(classifier, rows, batch_size=batch_size, num_workers=num_workers, device=device,
                        desc=f"classify {name}")
        frames.append(frame.assign(set=name)[PREDICTION_COLUMNS])
        counts[name] = {"images": len(rows), "scored": len(frame), "top1": float(frame["correct"].mean())}
        print(f"[classify] {name}: top-1 {100 * counts[name]['top1']:.2f}% on {len(frame)} images", file=sys.stderr)
    seconds = time.time() - start
    table = pd.concat(frames, ignore_index=True)
    io.write_csv(out, table)
    scored = sum(c["scored"] for c in counts.values())
    io.write_json(str(out).removesuffix(".csv") + ".json",
                  {**classifier.provenance, "sets": counts, "device": str(device), "seconds": round(seconds, 2),
                   "images_per_second": round(scored / seconds, 1) if seconds else None,
                   "threads": _threads()})
    return table


def _threads() -> int:
    import torch

    return torch.get_num_threads()
