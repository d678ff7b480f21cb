"""Every image mode Pillow opens becomes the right 8-bit RGB (not a white or black square)."""

from __future__ import annotations

import struct
import zlib

import numpy as np
import pytest
from PIL import Image

from genrobust.images import open_rgb

# A left-to-right ramp from dark to light, so a wrong scale shows as a flat or clipped image.
RAMP = np.tile(np.linspace(0.1, 0.9, 16), (8, 1))


def _png_48bit(path, grey01):
    """A 16-bit-per-channel RGB PNG written by hand (Pillow cannot write one)."""
    h, w = grey01.shape
    values = np.rint(grey01 * 65535).astype(">u2")
    raw = b"".join(b"\0" + np.repeat(row[:, None], 3, axis=1).tobytes() for row in values)
    chunk = lambda kind, data: (struct.pack(">I", len(data)) + kind + data
                                + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF))
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 16, 2, 0, 0, 0))
                     + chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b""))


def _write(mode, path):
    if mode == "48-bit":
        _png_48bit(path, RAMP)
        return
    grey8 = np.rint(RAMP * 255).astype(np.uint8)
    images = {
        "1": lambda: Image.fromarray(grey8 > 127).convert("1"),
        "L": lambda: Image.fromarray(grey8, "L"),
        "I;16": lambda: Image.fromarray(np.rint(RAMP * 65535).astype(np.uint16)),
        "I": lambda: Image.fromarray(np.rint(RAMP * 65535).astype(np.int32), "I"),
        "F": lambda: Image.fromarray(RAMP.astype(np.float32), "F"),
        "P": lambda: Image.fromarray(grey8, "L").convert("P"),
        "LA": lambda: Image.fromarray(np.dstack([grey8, np.full_like(grey8, 255)]), "LA"),
        "RGBA": lambda: Image.fromarray(np.dstack([grey8] * 3 + [np.full_like(grey8, 255)]), "RGBA"),
        "CMYK": lambda: Image.fromarray(np.dstack([grey8] * 3), "RGB").convert("CMYK"),
    }
    images[mode]().save(path)


@pytest.mark.parametrize("mode, suffix", [("1", "png"), ("L", "png"), ("I;16", "png"), ("I", "tif"),
                                          ("F", "tif"), ("P", "png"), ("LA", "png"), ("RGBA", "png"),
                                          ("CMYK", "jpg"), ("48-bit", "png")])
def test_every_mode_reads_as_its_grey_ramp(tmp_path, mode, suffix):
    path = tmp_path / f"image.{suffix}"
    _write(mode, path)
    with Image.open(path) as im:
        opened_mode = im.mode
    rgb = open_rgb(path)
    assert rgb.mode == "RGB" and rgb.size == (16, 8), opened_mode
    grey = np.asarray(rgb, dtype=float).mean(axis=(0, 2))  # per column
    expected = (RAMP[0] > 0.5) * 255.0 if mode == "1" else RAMP[0] * 255
    tolerance = 30 if mode == "CMYK" else 3  # CMYK JPEG: lossy and colour-managed
    assert np.abs(grey - expected).max() <= tolerance, (opened_mode, grey.round())

