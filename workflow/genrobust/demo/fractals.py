"""Procedural fractal mixing pictures for PixMix in the offline demo (the PixMix fractal /
feature-visualisation set cannot be downloaded offline): random iterated-function-system
fractals (as in FractalDB) and Julia sets."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
from PIL import Image

from genrobust.io import atomic_dir


def _palette(rng: np.random.Generator, t: np.ndarray) -> np.ndarray:
    """Cosine colour palette (Inigo Quilez) of t in [0, 1]: H,W -> H,W,3 in [0, 1]."""
    a, b = rng.uniform(0.3, 0.7, 3), rng.uniform(0.2, 0.5, 3)
    c, d = rng.uniform(0.5, 2.0, 3), rng.uniform(0, 1, 3)
    return np.clip(a + b * np.cos(2 * np.pi * (c * t[..., None] + d)), 0, 1)


def _ifs_fractal(rng: np.random.Generator, size: int) -> np.ndarray:
    """Chaos-game rendering of 2-4 random contractive affine maps, coloured by log density."""
    n_maps = int(rng.integers(2, 5))
    for _ in range(100):  # reject systems whose maps shrink area so much the fractal is dust
        mats = rng.uniform(-1, 1, (n_maps, 2, 2))
        norms = np.maximum(np.linalg.norm(mats, 2, axis=(1, 2)), 1e-6)
        mats *= (rng.uniform(0.4, 0.9, n_maps) / norms)[:, None, None]
        dets = np.abs(np.linalg.det(mats))
        if 0.5 <= dets.sum() <= 1.2:
            break
    shifts = rng.uniform(-1, 1, (n_maps, 2))
    probs = (dets + 1e-3) / (dets + 1e-3).sum()
    pts = rng.uniform(-1, 1, (8192, 2))
    cloud = []
    for it in range(40):
        idx = rng.choice(n_maps, size=len(pts), p=probs)
        pts = np.einsum("nij,nj->ni", mats[idx], pts) + shifts[idx]
        if it >= 10:
            cloud.append(pts)
    cloud = np.concatenate(cloud)
    lo, hi = cloud.min(0), cloud.max(0)
    scale = (size - 3) / max(float((hi - lo).max()), 1e-6)
    xy = ((cloud - lo) * scale + 1).astype(np.int64)
    xy += ((size - 3 - (hi - lo) * scale) / 2).astype(np.int64)
    xy = np.clip(xy, 0, size - 1)
    density = np.bincount(xy[:, 1] * size + xy[:, 0], minlength=size * size).reshape(size, size)
    t = np.log1p(density) / max(np.log1p(density.max()), 1e-6)
    rgb = _palette(rng, t) * (t > 0)[..., None]
    background = rng.uniform(0, 0.25, 3)
    return np.where((t > 0)[..., None], rgb, background)


def _julia_fractal(rng: np.random.Generator, size: int) -> np.ndarray:
    """Smooth escape-time colouring of a Julia set z -> z^2 + c with c near the Mandelbrot border."""
    c = complex(0.7885 * np.exp(1j * rng.uniform(0, 2 * np.pi)))
    zoom, angle = rng.uniform(0.8, 1.6), rng.uniform(0, 2 * np.pi)
    lin = np.linspace(-1.5, 1.5, size) / zoom
    z = (lin[None, :] + 1j * lin[:, None]) * np.exp(1j * angle)
    count = np.zeros(z.shape)
    alive = np.ones(z.shape, bool)
    for _ in range(64):
        z[alive] = z[alive] ** 2 + c
        alive &= np.abs(z) <= 4
        count[alive] += 1
    with np.errstate(divide="ignore", invalid="ignore"):
        smooth = count + 1 - np.log2(np.maximum(np.log(np.abs(z) + 1e-12), 1e-12))
    smooth = np.nan_to_num(np.where(alive, 0.0, smooth), nan=0.0, posinf=0.0, neginf=0.0)
    t = (smooth - smooth.min()) / max(float(np.ptp(smooth)), 1e-6)
    return _palette(rng, t)


def write_fractal_mixing_set(out_dir: str | os.PathLike, n: int = 32, size: int = 64, seed: int = 0) -> Path:
    """`n` procedural fractal pictures (size x size PNGs, fractal_0000.png ...) in `out_dir`, for
    the offline demo: even indices random IFS fractals, odd ones Julia sets; deterministic from
    `seed`. Written into a temporary folder that atomically replaces `out_dir` (if any)."""
    out_dir = Path(out_dir)
    with atomic_dir(out_dir) as tmp:
        children = np.random.SeedSequence([int(seed), 0x46524143]).spawn(n)  # tag "FRAC"
        for i, rng in enumerate(np.random.default_rng(s) for s in children):
            rgb = _ifs_fractal(rng, size) if i % 2 == 0 else _julia_fractal(rng, size)
            Image.fromarray(np.rint(rgb * 255).astype(np.uint8), "RGB").save(tmp / f"fractal_{i:04d}.png")
    return out_dir
