"""Reading any image Pillow opens as 8-bit RGB, by its mode.

`Image.convert("RGB")` is right for palette, grey, alpha and CMYK images, but not for the
high-bit-depth modes: a 16-bit greyscale PNG ("I;16", or "I" in some Pillow versions) is
clipped at 255 and comes out solid white, and float images ("F") are clipped the same way.
Those are rescaled here from their value range instead.
"""

from __future__ import annotations

import os

import numpy as np
from PIL import Image

_SIXTEEN_BIT = ("I;16", "I;16B", "I;16L", "I;16N")


def to_rgb(im: Image.Image) -> Image.Image:
    """An 8-bit RGB copy of `im` (or `im` itself when it is RGB already)."""
    if im.mode == "RGB":
        return im
    if im.mode in _SIXTEEN_BIT or im.mode in ("I", "F"):
        return Image.fromarray(_to_uint8(np.asarray(im), im.mode)).convert("RGB")
    if im.mode == "P" and "transparency" in im.info:
        im = im.convert("RGBA")  # a palette with a transparent entry converts through RGBA
    return im.convert("RGB")


def _to_uint8(values: np.ndarray, mode: str) -> np.ndarray:
    """Grey values of a high-bit-depth image as 0..255: 16-bit ranges are divided by 257
    (65535 -> 255); 32-bit integers that fit in 8 bits are kept, wider ones are taken as
    16-bit; floats in 0..1 are scaled, others clipped to 0..255."""
    values = values.astype(np.float64)
    if mode == "F":
        peak = float(np.nanmax(values)) if values.size else 0.0
        values = np.nan_to_num(values) * (255.0 if peak <= 1.0 else 1.0)
    elif mode in _SIXTEEN_BIT or (values.size and values.max() > 255):
        values = values / 257.0
    return np.clip(np.rint(values), 0, 255).astype(np.uint8)


def open_rgb(path: str | os.PathLike) -> Image.Image:
    """The image at `path`, fully decoded, as 8-bit RGB."""
    with Image.open(path) as im:
        im.load()
        return im.copy() if im.mode == "RGB" else to_rgb(im)
