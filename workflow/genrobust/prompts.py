"""Prompt templates and class names for the class-label generation strategies.

A prompt is `template.format(class_name)`. The paper's 80 templates (Table 8) are OpenAI's
CLIP ImageNet zero-shot templates, in the same order as `open_clip.OPENAI_IMAGENET_TEMPLATES`;
the class names are the CLIP ImageNet class names (`open_clip.IMAGENET_CLASSNAMES`), indexed
like timm's sorted ImageNet wnids. Both are written out / looked up here so that generation
never depends on a download.
"""

from __future__ import annotations

import functools
import os
import re
from pathlib import Path
from typing import Iterable, Sequence

import numpy as np

# Paper Table 8, in its order (identical to open_clip.OPENAI_IMAGENET_TEMPLATES).
OPENAI_80: tuple[str, ...] = (
    "a bad photo of a {}.",
    "a photo of many {}.",
    "a sculpture of a {}.",
    "a photo of the hard to see {}.",
    "a low resolution photo of the {}.",
    "a rendering of a {}.",
    "graffiti of a {}.",
    "a bad photo of the {}.",
    "a cropped photo of the {}.",
    "a tattoo of a {}.",
    "the embroidered {}.",
    "a photo of a hard to see {}.",
    "a bright photo of a {}.",
    "a photo of a clean {}.",
    "a photo of a dirty {}.",
    "a dark photo of the {}.",
    "a drawing of a {}.",
    "a photo of my {}.",
    "the plastic {}.",
    "a photo of the cool {}.",
    "a close-up photo of a {}.",
    "a black and white photo of the {}.",
    "a painting of the {}.",
    "a painting of a {}.",
    "a pixelated photo of the {}.",
    "a sculpture of the {}.",
    "a bright photo of the {}.",
    "a cropped photo of a {}.",
    "a plastic {}.",
    "a photo of the dirty {}.",
    "a jpeg corrupted photo of a {}.",
    "a blurry photo of the {}.",
    "a photo of the {}.",
    "a good photo of the {}.",
    "a rendering of the {}.",
    "a {} in a video game.",
    "a photo of one {}.",
    "a doodle of a {}.",
    "a close-up photo of the {}.",
    "a photo of a {}.",
    "the origami {}.",
    "the {} in a video game.",
    "a sketch of a {}.",
    "a doodle of the {}.",
    "a origami {}.",
    "a low resolution photo of a {}.",
    "the toy {}.",
    "a rendition of the {}.",
    "a photo of the clean {}.",
    "a photo of a large {}.",
    "a rendition of a {}.",
    "a photo of a nice {}.",
    "a photo of a weird {}.",
    "a blurry photo of a {}.",
    "a cartoon {}.",
    "art of a {}.",
    "a sketch of the {}.",
    "a embroidered {}.",
    "a pixelated photo of a {}.",
    "itap of the {}.",
    "a jpeg corrupted photo of the {}.",
    "a good photo of a {}.",
    "a plushie {}.",
    "a photo of the nice {}.",
    "a photo of the small {}.",
    "a photo of the weird {}.",
    "the cartoon {}.",
    "art of the {}.",
    "a drawing of the {}.",
    "a photo of the large {}.",
    "a black and white photo of a {}.",
    "the plushie {}.",
    "a dark photo of a {}.",
    "itap of a {}.",
    "graffiti of the {}.",
    "a toy {}.",
    "itap of my {}.",
    "a photo of a cool {}.",
    "a photo of a small {}.",
    "a tattoo of the {}.",
)

NAMED_TEMPLATE_SETS = {"openai80": OPENAI_80}


# ---------------------------------------------------------------- templates


def check_template(template: str) -> str:
    """Return `template` if it holds exactly one '{}' and no other format field."""
    if not isinstance(template, str):
        raise ValueError(f"template must be a string, got {template!r}")
    fields = re.findall(r"\{[^{}]*\}", template)
    if fields != ["{}"]:
        raise ValueError(f"template {template!r} must contain exactly one '{{}}' (found {fields})")
    return template


def load_templates(spec: str | os.PathLike | Sequence[str]) -> list[str]:
    """Templates from a named set ('openai80'), a list of strings, or a text file (one per line)."""
    if isinstance(spec, str) and spec in NAMED_TEMPLATE_SETS:
        templates = list(NAMED_TEMPLATE_SETS[spec])
    elif isinstance(spec, (str, os.PathLike)):
        path = Path(spec)
        if not path.is_file():
            raise ValueError(
                f"template spec {str(spec)!r} is neither a named set {sorted(NAMED_TEMPLATE_SETS)} "
                "nor an existing file"
            )
        templates = [line.rstrip("\r\n") for line in path.read_text().splitlines()]
        templates = [t for t in templates if t.strip() and not t.lstrip().startswith("#")]
    else:
        templates = list(spec)
    if not templates:
        raise ValueError(f"template spec {spec!r} holds no templates")
    return [check_template(t) for t in templates]


def class_label_prompt(template: str, name: str) -> str:
    return check_template(template).format(name)


def choose_template(templates: Sequence[str], seed: int) -> tuple[int, str]:
    """Pick one template for one image, reproducibly from that image's seed."""
    if not templates:
        raise ValueError("no templates to choose from")
    index = int(np.random.default_rng(seed).integers(len(templates)))
    return index, templates[index]


# ---------------------------------------------------------------- class names


@functools.lru_cache(maxsize=1)
def _clip_names_by_wnid() -> dict[str, str]:
    from open_clip import IMAGENET_CLASSNAMES
    from timm.data import ImageNetInfo

    wnids = list(ImageNetInfo().label_names())
    if len(wnids) != len(IMAGENET_CLASSNAMES) or wnids != sorted(wnids):
        raise RuntimeError("timm's ImageNet wnids do not line up with open_clip's 1000 class names")
    return dict(zip(wnids, IMAGENET_CLASSNAMES))


def _select(names: dict[str, str], wnids: Iterable[str], source: str) -> dict[str, str]:
    wnids = list(wnids)
    missing = [w for w in wnids if w not in names]
    if missing:
        raise ValueError(f"no class name in {source} for wnid(s) {', '.join(missing)}")
    return {w: names[w] for w in wnids}


def clip_class_names(wnids: Iterable[str]) -> dict[str, str]:
    """The CLIP ImageNet class names (the ones the paper prompted with) for `wnids`."""
    return _select(_clip_names_by_wnid(), wnids, "the CLIP ImageNet class names")


def read_class_name_file(path: str | os.PathLike) -> dict[str, str]:
    """Read `wnid<TAB>name` or `wnid,name` lines ('#' comments and blank lines skipped)."""
    names: dict[str, str] = {}
    for lineno, line in enumerate(Path(path).read_text().splitlines(), 1):
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        sep = "\t" if "\t" in line else ","
        wnid, _, name = line.partition(sep)
        wnid, name = wnid.strip(), name.strip()
        if not wnid or not name:
            raise ValueError(f"{path}:{lineno}: expected 'wnid<TAB or ,>name', got {line!r}")
        names[wnid] = name
    return names


def load_class_names(wnids: Iterable[str], spec: str | os.PathLike = "clip") -> dict[str, str]:
    """Class names for `wnids`: spec 'clip' (CLIP ImageNet names) or a wnid->name file."""
    if isinstance(spec, str) and spec == "clip":
        return clip_class_names(wnids)
    path = Path(spec)
    if not path.is_file():
        raise ValueError(f"class-name spec {str(spec)!r} is neither 'clip' nor an existing file")
    return _select(read_class_name_file(path), wnids, str(path))
