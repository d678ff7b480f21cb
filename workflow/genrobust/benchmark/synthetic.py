"""Images for the benchmarks to work on. Speed does not depend on what they show, only on their
size (and, for JPEG decoding, on having photo-like noise), so they are drawn, not downloaded."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from .system import BenchmarkError

JPEG_QUALITY = 90  # as the demo's and ImageNet's JPEGs


def _gradient(rng: np.random.Generator, height: int, width: int) -> np.ndarray:
    """A colour ramp (red across, green down, a random blue) with pixel noise, float in [0, 255]."""
    yy, xx = np.mgrid[0:height, 0:width]
    base = np.stack([xx * 255 // max(width - 1, 1), yy * 255 // max(height - 1, 1),
                     np.full_like(xx, rng.integers(0, 256))], axis=-1)
    return base + rng.integers(-30, 30, base.shape)


def source_images(n: int, height: int, width: int, seed: int = 0) -> list:
    """n PIL images to start img2img and image-variation pipelines from."""
    from PIL import Image

    rng = np.random.default_rng(seed)
    return [Image.fromarray(np.clip(_gradient(rng, height, width), 0, 255).astype(np.uint8)) for _ in range(n)]


def draw_labelled_image(rng: np.random.Generator, label: int, num_classes: int, size: int):
    """One size x size image of class `label`: a shape (ellipse, box or triangle, by class) in the
    class's hue, at a random place and scale, on a noisy gradient."""
    import colorsys

    from PIL import Image, ImageDraw

    im = Image.fromarray(np.clip(_gradient(rng, size, size), 0, 255).astype(np.uint8))
    r, g, b = colorsys.hsv_to_rgb(label / num_classes, 0.8, 0.9)
    radius = size * rng.uniform(0.2, 0.35)
    cx, cy = rng.uniform(radius, size - radius, 2)
    box = [cx - radius, cy - radius, cx + radius, cy + radius]
    fill = (int(255 * r), int(255 * g), int(255 * b))
    draw = ImageDraw.Draw(im)
    shape = label % 3
    if shape == 0:
        draw.ellipse(box, fill=fill)
    elif shape == 1:
        draw.rectangle(box, fill=fill)
    else:
        draw.polygon([(cx, cy - radius), (cx - radius, cy + radius), (cx + radius, cy + radius)], fill=fill)
    return im


def draw_images(root, n: int, size: int, num_classes: int = 10, seed: int = 0):
    """Write n labelled JPEGs of size x size px under root (classes in turn); returns the
    manifest (path, label)."""
    import pandas as pd

    if n < 1 or size < 8 or num_classes < 1:
        raise BenchmarkError(f"need at least 1 image of at least 8 px in at least 1 class (got {n} at "
                             f"{size} px in {num_classes} classes)")
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    rows = []
    for i in range(n):
        label = i % num_classes
        path = root / f"{label:03d}_{i:06d}.jpg"
        draw_labelled_image(np.random.default_rng([seed, i]), label, num_classes, size).save(
            path, format="JPEG", quality=JPEG_QUALITY)
        rows.append((str(path), label))
    return pd.DataFrame(rows, columns=["path", "label"])
