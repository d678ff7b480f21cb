"""Offline stand-ins for downloads: procedural datasets in the real on-disk layouts and tiny
random-weight models saved in the real diffusers/transformers formats. Production code never
imports this package; the demo's rules call the two writers below."""

from __future__ import annotations

import sys
from pathlib import Path


def write_demo_datasets(out: str, spec: dict, seed: int) -> dict[str, int]:
    """Every real dataset the demo config points at, under `out` (spec: config's `demo`
    section), plus PixMix's mixing set, which cannot be downloaded either: fractals."""
    from genrobust import io

    from .data import write_demo_data
    from .fractals import write_fractal_mixing_set

    classes = io.read_lines(spec["classes"])
    counts = write_demo_data(out, classes, seed=seed, size=spec["image_size"], n_train=spec["train_per_class"],
                             n_val=spec["val_per_class"], n_test=spec["test_per_class"])
    write_fractal_mixing_set(Path(out) / "pixmix-fractals", n=32, size=spec["image_size"], seed=seed)
    io.write_json(Path(out) / "demo_data.json", {"classes": classes, "images": counts, "seed": seed})
    print(f"[demo-data] {sum(counts.values())} images under {out}: {counts}", file=sys.stderr)
    return counts


def write_demo_models(out: str, seed: int) -> dict[str, Path]:
    """The tiny random-weight models the demo config names, under `out`, and DeepAugment's EDSR
    and CAE with random weights in the real state-dict layout."""
    from genrobust import io

    from .deepaugment_weights import write_random_deepaugment_weights
    from .models import build_all

    built = build_all(out, seed=seed)
    built["deepaugment"] = write_random_deepaugment_weights(Path(out) / "deepaugment", seed=seed)
    io.write_json(Path(out) / "models.json", {name: str(path) for name, path in built.items()})
    print(f"[demo-models] built {sorted(built)} under {out}", file=sys.stderr)
    return built
