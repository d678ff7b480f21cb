"""Feature extractors: clean-fid's Inception for FID/KID, open_clip's CLIP for the CLIP scores.

Each extractor is (a per-image transform run in the DataLoader's workers, a batch function
run on the device, and a provenance record). Specs come from config's `metrics:` section:

- inception: `weights: null` lets clean-fid download its TorchScript Inception
  (inception-2015-12-05.pt, the one clean-fid and StyleGAN use) to /tmp, as on a cluster with
  internet; a path to that file loads it offline through clean-fid's own wrapper; a path to any
  other TorchScript file is a custom feature extractor in clean-fid's convention (float images
  (B, 3, 299, 299) in 0..255 -> features (B, D)), which is how the demo's stand-in runs. All
  three see clean-fid's "clean" preprocessing: PIL bicubic resize to 299 x 299 of the RGB image.
- clip: an open_clip model name and pretrained tag (ViT-B-32 / openai), a pretrained checkpoint
  file for a built-in name, or `local-dir:<folder>` / `hf-hub:<id>` (open_clip_config.json and
  weights); its own validation preprocessing. Image and text embeddings are L2-normalised.
"""

from __future__ import annotations

import os
import warnings
from dataclasses import dataclass, field
from importlib.metadata import version
from pathlib import Path
from typing import Any, Callable

import numpy as np

EXTRACTORS = ("inception", "clip")
CLEANFID_INCEPTION = "inception-2015-12-05.pt"
INCEPTION_SIZE = 299


class ExtractorError(ValueError):
    """A feature extractor cannot be built from its spec (names the key)."""


@dataclass
class Extractor:
    name: str
    transform: Callable  # PIL RGB image -> float tensor (3, H, W)
    embed: Callable  # batch on device -> float tensor (B, D)
    provenance: dict = field(default_factory=dict)
    model: Any = None  # the loaded model (open_clip: also used for text)
    tokenizer: Any = None


def _clean_resize(image) -> "torch.Tensor":
    """clean-fid's 'clean' mode: PIL bicubic to 299 x 299 without quantisation, values 0..255."""
    import torch
    from cleanfid.resize import build_resizer

    resized = build_resizer("clean")(np.asarray(image))  # float32 (299, 299, 3) in 0..255
    return torch.from_numpy(np.ascontiguousarray(resized)).permute(2, 0, 1)


def inception(spec: dict, device) -> Extractor:
    """clean-fid's Inception by download (weights null), by its file, or a custom TorchScript file."""
    import torch

    weights = spec.get("weights")
    provenance = {"extractor": "inception", "clean_fid": version("clean-fid"), "preprocessing": "clean-fid clean"}
    if weights is None or Path(weights).name == CLEANFID_INCEPTION:
        from cleanfid.inception_torchscript import InceptionV3W

        if weights is not None and not Path(weights).is_file():
            raise ExtractorError(f"metrics.inception.weights: '{weights}' is not a file")
        folder = "/tmp" if weights is None else str(Path(weights).parent)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", FutureWarning)
            model = InceptionV3W(folder, download=weights is None).to(device).eval()
        provenance["weights"] = weights or f"clean-fid download ({folder}/{CLEANFID_INCEPTION})"
    else:
        if not Path(weights).is_file():
            raise ExtractorError(f"metrics.inception.weights: '{weights}' is not a file")
        try:
            with warnings.catch_warnings():  # TorchScript is deprecated, but it is clean-fid's format
                warnings.simplefilter("ignore", FutureWarning)
                model = torch.jit.load(weights, map_location=device).eval()
        except RuntimeError as err:
            raise ExtractorError(f"metrics.inception.weights: '{weights}' is not a TorchScript file ({err})") from None
        provenance["weights"] = f"custom feature extractor {weights}"

    def embed(batch):
        return model(batch).float()

    return Extractor("inception", _clean_resize, embed, provenance, model)


def load_open_clip(spec: dict, device):
    """(model in eval mode on device, validation preprocess, tokenizer) of metrics.clip."""
    import open_clip

    name, pretrained = spec.get("model", "ViT-B-32"), spec.get("pretrained")
    try:
        model, _, preprocess = open_clip.create_model_and_transforms(name, pretrained=pretrained, device=device)
        tokenizer = open_clip.get_tokenizer(name)
    except (RuntimeError, FileNotFoundError, ValueError) as err:
        raise ExtractorError(f"metrics.clip: cannot load open_clip model '{name}' (pretrained {pretrained!r}): "
                             f"{err}") from None
    return model.eval(), preprocess, tokenizer


def clip(spec: dict, device) -> Extractor:
    import torch

    model, preprocess, tokenizer = load_open_clip(spec, device)

    def embed(batch):
        return torch.nn.functional.normalize(model.encode_image(batch).float(), dim=-1)

    provenance = {"extractor": "clip", "open_clip": version("open_clip_torch"), "model": spec.get("model"),
                  "pretrained": spec.get("pretrained"), "preprocessing": "open_clip validation transform"}
    return Extractor("clip", preprocess, embed, provenance, model, tokenizer)


def build(name: str, spec: dict, device) -> Extractor:
    if name not in EXTRACTORS:
        raise ExtractorError(f"unknown extractor '{name}' (one of {', '.join(EXTRACTORS)})")
    return {"inception": inception, "clip": clip}[name](spec, device)


def embed_texts(extractor: Extractor, texts: list[str], batch_size: int = 256, precision: str = "fp16") -> np.ndarray:
    """L2-normalised CLIP text embeddings (N, D) float32."""
    import torch

    from genrobust.scoring import autocast

    device = next(extractor.model.parameters()).device
    out = []
    with torch.inference_mode(), autocast(device, precision):
        for i in range(0, len(texts), batch_size):
            tokens = extractor.tokenizer(texts[i:i + batch_size]).to(device)
            out.append(torch.nn.functional.normalize(extractor.model.encode_text(tokens).float(), dim=-1).cpu())
    return torch.cat(out).numpy().astype(np.float32)


def write_class_texts(extractor: Extractor, classes: str, out: str, spec: dict) -> None:
    """The text side of the CLIP scores for a class list ('imagenet1k' or a file of wnids): the
    filter prompt per class ('a photo of a {}' with the CLIP ImageNet class names, as generation
    prompted) and the zero-shot classifier of the 80 CLIP templates, into one .npz."""
    from genrobust.datasets import load_class_list
    from genrobust.prompts import OPENAI_80, load_class_names

    from .clip_scores import FILTER_TEMPLATE, write_text_file, zero_shot_weights

    wnids = load_class_list(classes)
    names = load_class_names(wnids, "clip")
    template = spec.get("filter_template", FILTER_TEMPLATE)
    batch, precision = spec.get("batch_size", 256), spec.get("precision", "fp16")
    photo = embed_texts(extractor, [template.format(names[w]) for w in wnids], batch, precision)
    prompts = [t.format(names[w]) for w in wnids for t in OPENAI_80]
    per_template = embed_texts(extractor, prompts, batch, precision).reshape(len(wnids), len(OPENAI_80), -1)
    write_text_file(out, wnids, photo, zero_shot_weights(per_template),
                    {**extractor.provenance, "filter_template": template, "zero_shot_templates": "openai80"})


def resolve_device(device: str | None) -> str:
    import torch

    if device in (None, "auto"):
        return "cuda" if torch.cuda.is_available() else "cpu"
    return device


def default_workers(threads: int | None) -> int:
    return max(0, min(threads or os.cpu_count() or 1, 8) - 1)
