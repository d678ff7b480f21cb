"""The names of diffusers classes, classifiers and metric models that plan time checks config
against, shipped as small lists in genrobust/data/ (written from the pinned libraries by
`python -m genrobust.checks --refresh`), so that planning never imports diffusers, timm or torch."""

from __future__ import annotations

import functools
from collections import defaultdict
from pathlib import Path

DATA = Path(__file__).resolve().parent / "data"
DIFFUSERS_CLASSES = DATA / "diffusers_classes.txt"
ARCHITECTURES = DATA / "architectures.txt"
METRIC_MODELS = DATA / "metric_models.txt"  # timm pretrained names, open_clip models and tags


@functools.cache
def shipped_names(path: Path) -> dict[str, dict[str, str]]:
    """group -> name -> rest of line, from a shipped list of 'group name [rest]' lines."""
    groups: dict[str, dict[str, str]] = defaultdict(dict)
    for line in path.read_text().splitlines():
        if line.strip() and not line.startswith("#"):
            group, name, *rest = line.split()
            groups[group][name] = " ".join(rest)
    return groups
