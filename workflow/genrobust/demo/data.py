"""Procedural stand-ins for ImageNet and its shift sets, written in the real on-disk layouts.

The offline demo cannot download ImageNet, so each class is a drawn visual concept
(shape x colour x texture, e.g. "red striped circle") that a small CNN learns in a few epochs
at 64 px. The shift sets render the same concepts differently (pencil sketch, recoloured
cartoon, cluttered and bordered ObjectNet-like photos, corrupted copies), so they are
genuinely harder than val, as in reality. The tree is read by genrobust.datasets exactly like
the real data, including ObjectNet's four mapping files with a permuted "2012 v2" order.

Every image comes from its own numpy Generator seeded with (seed, split, class, k), so any
image can be regenerated alone and the same seed gives identical bytes. ImageNet train/val and V2
images have ImageNet's mix of shapes (mostly 4:3 landscape, some portrait and square, longer side
`size`), so that a stage that squashes an image to a square shows in the demo; the other shift
sets are square (ImageNet-C's real images are 224 x 224 crops).
"""

from __future__ import annotations

import colorsys
import hashlib
import json
import math
import os
import re
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Sequence

import numpy as np
from PIL import Image, ImageDraw, ImageFilter, ImageOps

from genrobust import datasets, io

SHAPES = ("circle", "square", "triangle", "star", "cross")
TEXTURES = ("solid", "stripes", "dots")
CORRUPTIONS = ("gaussian_noise", "motion_blur", "contrast")
SEVERITIES = (1, 2, 3, 4, 5)
OBJECTNET_BORDER = (196, 32, 40)  # solid 2-px frame, as ObjectNet images carry one
JPEG_QUALITY = 90
HUE_JITTER = 0.03  # hues of neighbouring classes overlap a little: shape and texture matter too
GREY_SHARE = 0.1  # photos of washed-out objects, so that shape is worth learning
SKETCH_WASH = 0.4  # share of sketches with a wash of the object's colour (the rest are grey)
RENDITION_TRUE_HUE = 0.5  # share of renditions in the object's own colour
# (width, height) ratios of the ImageNet-like sets and how often each is drawn: ImageNet's photos
# are mostly 4:3 (500 x 375), with portraits, squares and 3:2 frames.
ASPECTS = ((4, 3), (3, 4), (1, 1), (3, 2), (2, 3))
ASPECT_SHARES = (0.45, 0.15, 0.15, 0.15, 0.10)


@dataclass(frozen=True)
class Concept:
    shape: str
    texture: str
    hue: float  # in [0, 1)


def concept_for(i: int, n: int) -> Concept:
    """Concept of the i-th of n classes: unique (shape, texture), hues spread around the wheel."""
    if n > len(SHAPES) * len(TEXTURES):
        raise ValueError(f"demo data supports at most {len(SHAPES) * len(TEXTURES)} classes, got {n}")
    return Concept(SHAPES[i % len(SHAPES)], TEXTURES[(i // len(SHAPES)) % len(TEXTURES)], (i / n) % 1.0)


def _rng(seed: int, split: str, key: str, k: int) -> np.random.Generator:
    """The generator of image k of class (or folder) `key` in `split`: independent of everything else."""
    key_int = int(key[1:]) if datasets.WNID_RE.match(key) else zlib.crc32(key.encode())
    return np.random.default_rng([seed, zlib.crc32(split.encode()), key_int, k])


def aspect_size(seed: int, split: str, key: str, k: int, size: int) -> tuple[int, int]:
    """(width, height) of an ImageNet-like image: a drawn aspect, longer side `size`. Drawn from
    its own generator, so that the image's own draws (and a square image's bytes) do not change."""
    aw, ah = ASPECTS[_rng(seed, f"{split}/aspect", key, k).choice(len(ASPECTS), p=ASPECT_SHARES)]
    return (size, round(size * ah / aw)) if aw >= ah else (round(size * aw / ah), size)


def _wh(size: int | tuple[int, int]) -> tuple[int, int]:
    return (size, size) if isinstance(size, int) else size


# --------------------------------------------------------------------------- drawing primitives


def _polygon(shape: str, cx: float, cy: float, r: float, theta: float) -> list[tuple[float, float]]:
    if shape == "circle":
        pts = [(1.0, 2 * math.pi * j / 32) for j in range(32)]
    elif shape == "square":
        pts = [(1.0, math.pi / 4 + math.pi / 2 * j) for j in range(4)]
    elif shape == "triangle":
        pts = [(1.1, math.pi / 2 + 2 * math.pi / 3 * j) for j in range(3)]
    elif shape == "hexagon":
        pts = [(1.0, math.pi / 3 * j) for j in range(6)]
    elif shape == "star":
        pts = [(1.1 if j % 2 == 0 else 0.45, math.pi / 5 * j) for j in range(10)]
    elif shape == "cross":
        a, b = 1.0, 0.36
        xy = [(b, a), (-b, a), (-b, b), (-a, b), (-a, -b), (-b, -b), (-b, -a), (b, -a), (b, -b), (a, -b), (a, b), (b, b)]
        pts = [(math.hypot(x, y), math.atan2(y, x)) for x, y in xy]
    else:
        raise ValueError(shape)
    return [(cx + r * rho * math.cos(phi + theta), cy + r * rho * math.sin(phi + theta)) for rho, phi in pts]


def _mask(size: int | tuple[int, int], poly: list[tuple[float, float]], outline: int = 0) -> np.ndarray:
    """Anti-aliased (2x supersampled) filled polygon, or its outline of `outline` px, in [0, 1];
    `size` is the side of a square or (width, height)."""
    ss = 2
    w, h = _wh(size)
    im = Image.new("L", (w * ss, h * ss), 0)
    pts = [(x * ss, y * ss) for x, y in poly]
    draw = ImageDraw.Draw(im)
    if outline:
        draw.polygon(pts, outline=255, width=outline * ss)
    else:
        draw.polygon(pts, fill=255)
    return np.asarray(im.resize((w, h), Image.BOX), dtype=np.float32) / 255.0


def _texture(size: int | tuple[int, int], kind: str, cx: float, cy: float, r: float, theta: float) -> np.ndarray:
    """Texture in the object's frame (rotates with it): 1 = base colour, lower = shade."""
    w, h = _wh(size)
    y, x = np.mgrid[0:h, 0:w].astype(np.float32)
    u = (x - cx) * math.cos(theta) + (y - cy) * math.sin(theta)
    v = -(x - cx) * math.sin(theta) + (y - cy) * math.cos(theta)
    period = max(r / 2.2, 3.0)
    if kind == "stripes":
        return np.where(np.floor(u / period) % 2 == 0, 1.0, 0.25).astype(np.float32)
    if kind == "dots":
        du = (u % period) - period / 2
        dv = (v % period) - period / 2
        return np.where(du * du + dv * dv < (0.3 * period) ** 2, 0.25, 1.0).astype(np.float32)
    return (0.85 + 0.15 * (v / (2 * r) + 0.5).clip(0, 1)).astype(np.float32)  # solid, soft shading


def _hsv(h: float, s: float, v: float) -> np.ndarray:
    return np.array(colorsys.hsv_to_rgb(h % 1.0, min(max(s, 0), 1), min(max(v, 0), 1)), dtype=np.float32)


def _luma(rgb: np.ndarray) -> float:
    return float(rgb @ np.array([0.299, 0.587, 0.114], dtype=np.float32))


def _gradient(rng: np.random.Generator, size: int | tuple[int, int], sat: tuple[float, float],
              val: tuple[float, float]) -> np.ndarray:
    c0 = _hsv(rng.random(), rng.uniform(*sat), rng.uniform(*val))
    c1 = _hsv(rng.random(), rng.uniform(*sat), rng.uniform(*val))
    a = rng.uniform(0, 2 * math.pi)
    w, h = _wh(size)
    y, x = np.mgrid[0:h, 0:w].astype(np.float32) / max(w, h)
    t = ((x - 0.5) * math.cos(a) + (y - 0.5) * math.sin(a) + 0.75) / 1.5
    return c0 * (1 - t[..., None]) + c1 * t[..., None]


def _pose(rng: np.random.Generator, size: int | tuple[int, int],
          scale: tuple[float, float]) -> tuple[float, float, float, float]:
    """Centre, radius (a share of the shorter side) and rotation of an object inside the frame."""
    w, h = _wh(size)
    r = min(w, h) * rng.uniform(*scale)
    return rng.uniform(0.75 * r, w - 0.75 * r), rng.uniform(0.75 * r, h - 0.75 * r), r, rng.uniform(0, 2 * math.pi)


def _paint(img: np.ndarray, c: Concept, colour: np.ndarray, pose, contrast: float = 0.75, rim: float = 0.0) -> np.ndarray:
    """Paint concept c at pose; rim darkens its contour (the shaded edge of a solid object)."""
    size = (img.shape[1], img.shape[0])
    cx, cy, r, th = pose
    poly = _polygon(c.shape, cx, cy, r, th)
    m = _mask(size, poly)[..., None]
    tex = _texture(size, c.texture, cx, cy, r, th)[..., None]
    obj = colour * (1 - contrast + contrast * tex)
    out = img * (1 - m) + obj * m
    if rim:
        out = out * (1 - rim * _mask(size, poly, outline=1)[..., None])
    return out


def _to_image(arr: np.ndarray) -> Image.Image:
    return Image.fromarray((np.clip(arr, 0, 1) * 255 + 0.5).astype(np.uint8), "RGB")


# --------------------------------------------------------------------------- renderers (one per set)


def render_photo(rng: np.random.Generator, c: Concept, size: int | tuple[int, int], *, scale=(0.2, 0.33),
                 noise=0.035, light=(0.9, 1.1), notes: dict | None = None) -> Image.Image:
    """ImageNet train/val: the concept on a noisy gradient, random position/scale/rotation; `size`
    is a square's side or (width, height). `notes`, when given, receives what was drawn (for
    describe_photo); the draws and pixels are the same either way."""
    img = _gradient(rng, size, sat=(0.05, 0.35), val=(0.35, 0.85))
    sat = rng.uniform(0.6, 0.95) if rng.random() > GREY_SHARE else rng.uniform(0.0, 0.15)
    hue = c.hue + rng.normal(0, HUE_JITTER)
    colour = _hsv(hue, sat, rng.uniform(0.7, 1.0))
    pose = _pose(rng, size, scale)
    img = _paint(img, c, colour, pose, rim=rng.uniform(0.2, 0.6))
    if notes is not None:
        notes.update(hue=hue % 1.0, saturation=sat, pose=pose, size=_wh(size),
                     background=float(np.mean(img[0, 0] + img[-1, -1]) / 2))
    img = img * rng.uniform(*light) + rng.normal(0, noise, img.shape)
    return _to_image(img)


COLOUR_NAMES = ((0.04, "red"), (0.1, "orange"), (0.18, "yellow"), (0.42, "green"), (0.54, "turquoise"),
                (0.7, "blue"), (0.8, "purple"), (0.93, "pink"), (1.01, "red"))
TEXTURE_WORDS = {"solid": "plain", "stripes": "striped", "dots": "dotted"}


def describe_photo(c: Concept, notes: dict) -> str:
    """A caption of a drawn photo from what render_photo noted: the demo's stand-in for a
    captioning model (BLIP-2) run over the real train images."""
    colour = "grey" if notes["saturation"] < 0.3 else next(n for h, n in COLOUR_NAMES if notes["hue"] < h)
    cx, cy, r, _ = notes["pose"]
    w, h = notes["size"]
    row = "top" if cy < h / 3 else "bottom" if cy > 2 * h / 3 else ""
    column = "left" if cx < w / 3 else "right" if cx > 2 * w / 3 else ""
    where = f"at the {' '.join(p for p in (row, column) if p)}" if row or column else "in the centre"
    big = "large" if r > 0.28 * min(w, h) else "small"
    tone = "dark" if notes["background"] < 0.45 else "light"
    return f"a {big} {TEXTURE_WORDS[c.texture]} {colour} {c.shape} {where} of a {tone} background"


def render_v2(rng: np.random.Generator, c: Concept, size: int | tuple[int, int]) -> Image.Image:
    """ImageNet-V2: same distribution drawn again, a little smaller, noisier and softer."""
    im = render_photo(rng, c, size, scale=(0.13, 0.27), noise=0.07, light=(0.65, 1.2))
    return im.filter(ImageFilter.GaussianBlur(rng.uniform(0.3, 0.9)))


def render_sketch(rng: np.random.Generator, c: Concept, size: int) -> Image.Image:
    """ImageNet-Sketch: grey pencil outline, texture edges and hatching on paper; colour is gone
    except for a light wash on some."""
    cx, cy, r, th = _pose(rng, size, (0.2, 0.34))
    poly = _polygon(c.shape, cx, cy, r, th)
    fill = _mask(size, poly)
    tex = _texture(size, c.texture, cx, cy, r, th) * fill if c.texture != "solid" else fill
    gy, gx = np.gradient(tex)
    strokes = np.clip(np.hypot(gx, gy) * 2.0, 0, 1)
    strokes = np.maximum(strokes, _mask(size, poly, outline=1))
    for _ in range(rng.integers(1, 4)):  # stray pencil lines
        im = Image.new("L", (size, size), 0)
        ImageDraw.Draw(im).line([tuple(rng.uniform(0, size, 2)), tuple(rng.uniform(0, size, 2))], fill=90, width=1)
        strokes = np.maximum(strokes, np.asarray(im, dtype=np.float32) / 255.0)
    paper = rng.uniform(0.7, 0.95) + rng.normal(0, 0.02, (size, size))
    ink = rng.uniform(0.1, 0.35)
    # hatched tonal shading, as darker as the real object's colour is dark (the only colour cue left)
    y, x = np.mgrid[0:size, 0:size]
    hatch = (((x + y + rng.integers(0, 4)) % 4) < 2).astype(np.float32)
    shade = 0.5 * (1 - _luma(_hsv(c.hue, 0.8, 0.9))) * rng.uniform(0.6, 1.2)
    paper = paper - fill * hatch * shade
    grey = paper * (1 - strokes) + ink * strokes
    img = np.repeat(grey[..., None], 3, axis=2)
    if rng.random() < SKETCH_WASH:  # some sketches carry a coloured-pencil wash
        wash = _hsv(c.hue + rng.normal(0, HUE_JITTER), rng.uniform(0.45, 0.7), 1.0)
        img = img * (1 - fill[..., None]) + img * wash * fill[..., None]
    return _to_image(img)


def render_rendition(rng: np.random.Generator, c: Concept, size: int) -> Image.Image:
    """ImageNet-R: cartoon rendition: flat background, thick black outline, posterized; half of
    them in an arbitrary palette."""
    bg = _hsv(rng.random(), rng.uniform(0.2, 0.6), rng.uniform(0.8, 1.0))
    img = np.broadcast_to(bg, (size, size, 3)).astype(np.float32)
    hue = c.hue + rng.normal(0, HUE_JITTER) if rng.random() < RENDITION_TRUE_HUE else rng.random()
    colour = _hsv(hue, 1.0, rng.uniform(0.8, 1.0))
    pose = _pose(rng, size, (0.22, 0.36))
    img = _paint(img, c, colour, pose, contrast=0.9)
    line = _mask(size, _polygon(c.shape, *pose), outline=2)[..., None]
    img = img * (1 - line)
    return ImageOps.posterize(_to_image(img), 2)


def render_objectnet(rng: np.random.Generator, c: Concept, size: int) -> Image.Image:
    """ObjectNet: off-centre, small, unusual rotation, dim light, clutter around and over the
    object, and the 2-px solid frame that real ObjectNet images carry."""
    img = _gradient(rng, size, sat=(0.0, 0.4), val=(0.3, 0.8))
    clutter = [Concept(str(rng.choice(SHAPES + ("hexagon",))), "solid", rng.random()) for _ in range(4)]
    for d in clutter[:3]:
        img = _paint(img, d, _hsv(d.hue, rng.uniform(0, 0.5), rng.uniform(0.3, 0.9)), _pose(rng, size, (0.1, 0.2)))
    colour = _hsv(c.hue + rng.normal(0, HUE_JITTER), rng.uniform(0.3, 0.8), rng.uniform(0.5, 1.0))
    img = _paint(img, c, colour, _pose(rng, size, (0.13, 0.24)))
    d = clutter[3]  # an occluder in front
    img = _paint(img, d, _hsv(d.hue, rng.uniform(0, 0.5), rng.uniform(0.3, 0.9)), _pose(rng, size, (0.08, 0.14)))
    cast = rng.uniform(0.6, 1.25, 3).astype(np.float32)  # odd indoor lighting shifts the hues
    img = img * cast * rng.uniform(0.55, 1.0) + rng.normal(0, 0.05, img.shape)
    img = np.clip(img, 0, 1)
    img[:2], img[-2:], img[:, :2], img[:, -2:] = (np.array(OBJECTNET_BORDER, dtype=np.float32) / 255,) * 4
    return _to_image(img)


def corrupt(im: Image.Image, corruption: str, severity: int, rng: np.random.Generator) -> Image.Image:
    """ImageNet-C style corruption: the same kinds, severities tuned for 64-px drawings."""
    x = np.asarray(im, dtype=np.float32) / 255.0
    s = severity - 1
    if corruption == "gaussian_noise":
        x = x + rng.normal(0, [0.08, 0.12, 0.18, 0.26, 0.38][s], x.shape)
    elif corruption == "motion_blur":
        length = [3, 5, 8, 11, 15][s]
        phi = rng.uniform(0, math.pi)
        pad = length
        xp = np.pad(x, ((pad, pad), (pad, pad), (0, 0)), mode="edge")
        h, w = x.shape[:2]
        acc = np.zeros_like(x)
        for t in np.linspace(0, length, length):  # one-sided streak, as a moving camera gives
            dx, dy = int(round(t * math.cos(phi))), int(round(t * math.sin(phi)))
            acc += xp[pad + dy: pad + dy + h, pad + dx: pad + dx + w]
        x = acc / length
    elif corruption == "contrast":
        mean = x.mean(axis=(0, 1), keepdims=True)
        x = (x - mean) * [0.75, 0.6, 0.45, 0.3, 0.15][s] + mean
    else:
        raise ValueError(f"unknown corruption {corruption!r}")
    return _to_image(x)


# --------------------------------------------------------------------------- ObjectNet mappings


def _objectnet_label(descs: list[str]) -> str:
    names = [d.split(",")[0].strip() for d in descs]
    return " / ".join(n[:1].upper() + n[1:] for n in names)


def _folder_name(label: str) -> str:
    return re.sub(r"[^a-z0-9]+", "_", label.lower()).strip("_")


def objectnet_plan(classes: Sequence[str]) -> list[tuple[str, str, list[str], list[str]]]:
    """The demo's ObjectNet classes: (folder, label, ImageNet wnids in the mapping, demo classes drawn).

    Every other demo class is covered (ObjectNet overlaps only part of ImageNet): the first
    alone, the second together with a non-demo ImageNet class (like ObjectNet's 'Chair' ->
    several chairs), the last two as one label mapped to two demo classes (any-of scoring), the
    rest alone. Two more folders have labels with no ImageNet mapping."""
    covered = sorted(classes)[::2]
    all_wnids = datasets.imagenet_wnids()
    groups: list[tuple[list[str], list[str]]] = []
    for i, w in enumerate(covered):
        if len(covered) >= 3 and i == len(covered) - 2:
            groups.append(([w, covered[-1]], [w, covered[-1]]))
            break
        if i == 1:
            extra = next(x for x in all_wnids[all_wnids.index(w) + 1:] + all_wnids if x not in classes)
            groups.append(([w, extra], [w]))
        else:
            groups.append(([w], [w]))
    desc = datasets.imagenet_descriptions()
    plan = []
    for mapped, drawn in groups:
        label = _objectnet_label([desc[w] for w in mapped])
        plan.append((_folder_name(label), label, sorted(mapped), drawn))
    for label in ("Winter glove", "Weight (exercise)"):
        plan.append((_folder_name(label), label, [], []))
    return plan


def _write_objectnet_mappings(mdir: Path, plan) -> None:
    mdir.mkdir(parents=True)
    desc = datasets.imagenet_descriptions()
    wnids = datasets.imagenet_wnids()
    (mdir / "folder_to_objectnet_label.json").write_text(json.dumps({f: lab for f, lab, _, _ in plan}, indent=2) + "\n")
    (mdir / "objectnet_to_imagenet_1k.json").write_text(
        json.dumps({lab: "; ".join(desc[w] for w in mapped) for _, lab, mapped, _ in plan if mapped}, indent=2) + "\n"
    )
    # The "2012 v2" order is a fixed permutation of the PyTorch order, so the inversion is exercised.
    order = np.random.default_rng(2012).permutation(len(wnids))  # line j holds PyTorch class order[j]
    (mdir / "imagenet_to_label_2012_v2").write_text("".join(desc[wnids[i]] + "\n" for i in order))
    line_of = {int(pt): j for j, pt in enumerate(order)}
    (mdir / "pytorch_to_imagenet_2012_id.json").write_text(
        json.dumps({str(pt): line_of[pt] for pt in range(len(wnids))}, indent=2) + "\n"
    )


# --------------------------------------------------------------------------- the tree


def _hash_name(seed: int, *parts) -> str:
    return hashlib.sha1("/".join(map(str, (seed,) + parts)).encode()).hexdigest()


def _save(im: Image.Image, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.suffix.lower() == ".png":
        im.save(path, format="PNG")
    else:
        im.save(path, format="JPEG", quality=JPEG_QUALITY)


TRAIN_CAPTIONS = "imagenet/train_captions.csv"  # a caption of every train image (path,caption)


def _write_captions(path: Path, rows: list[tuple[str, str]]) -> None:
    import pandas as pd

    pd.DataFrame(rows, columns=["path", "caption"]).to_csv(path, index=False)


def write_demo_data(out_root: str | os.PathLike, classes: Sequence[str], seed: int = 0, size: int = 64,
                    n_train: int = 40, n_val: int = 10, n_test: int = 10, n_corrupt: int = 2) -> dict[str, int]:
    """Write the demo's real-data stand-ins under out_root (all at once: built in a temporary
    sibling folder and moved into place, so a killed run leaves no half tree).

    Layout: imagenet/{train,val}/<wnid>/, imagenet/train_captions.csv (path,caption: what each
    train image shows, the stand-in for a captioning model), sketch/<wnid>/, imagenet-r/<wnid>/ (demo classes in the
    real ImageNet-R 200 only), imagenetv2-matched-frequency-format-val/<class index>/,
    objectnet-1.0/{images/<folder>/,mappings/}, imagenet-c/<corruption>/<1-5>/<wnid>/.
    n_test images per class for each shift set, n_corrupt per class, corruption and severity.
    Returns the number of images written per set."""
    classes = sorted(classes)
    known = set(datasets.imagenet_wnids())
    bad = [w for w in classes if w not in known]
    if bad or len(set(classes)) != len(classes) or not classes:
        raise datasets.DatasetError(f"demo classes must be distinct ImageNet-1K wnids, got bad entries {bad or classes}")
    concepts = {w: concept_for(i, len(classes)) for i, w in enumerate(classes)}
    index_of = {w: i for i, w in enumerate(datasets.imagenet_wnids())}
    in_r = set(datasets.imagenet_r_wnids())
    counts: dict[str, int] = {}

    def emit(key: str, path: Path, im: Image.Image) -> None:
        _save(im, path)
        counts[key] = counts.get(key, 0) + 1

    def per_class(key: str, split: str, n: int, render: Callable, path_of: Callable, only=None,
                  varied: bool = False, captions: list | None = None) -> None:
        for ci, w in enumerate(classes):
            if only is not None and w not in only:
                continue
            for k in range(n):
                shape = aspect_size(seed, split, w, k, size) if varied else size
                notes = {} if captions is not None else None
                extra = {"notes": notes} if notes is not None else {}
                emit(key, tmp / path_of(ci, w, k), render(_rng(seed, split, w, k), concepts[w], shape, **extra))
                if notes is not None:  # path relative to the train folder, as a captions file holds it
                    captions.append((f"{w}/{Path(path_of(ci, w, k)).name}", describe_photo(concepts[w], notes)))

    with io.atomic_dir(out_root) as tmp:
        train_captions: list[tuple[str, str]] = []
        per_class("imagenet/train", "train", n_train, render_photo, lambda ci, w, k: f"imagenet/train/{w}/{w}_{k}.JPEG",
                  varied=True, captions=train_captions)
        _write_captions(tmp / TRAIN_CAPTIONS, train_captions)
        per_class("imagenet/val", "val", n_val, render_photo,
                  lambda ci, w, k: f"imagenet/val/{w}/ILSVRC2012_val_{ci * n_val + k + 1:08d}.JPEG", varied=True)
        per_class("sketch", "sketch", n_test, render_sketch, lambda ci, w, k: f"sketch/{w}/sketch_{k}.JPEG")
        per_class("imagenet-r", "imagenet-r", n_test, render_rendition,
                  lambda ci, w, k: f"imagenet-r/{w}/cartoon_{k}.jpg", only=in_r)
        per_class("imagenet-v2", "imagenet-v2", n_test, render_v2,
                  lambda ci, w, k: f"imagenetv2-matched-frequency-format-val/{index_of[w]}/{_hash_name(seed, 'v2', w, k)}.jpeg",
                  varied=True)

        plan = objectnet_plan(classes)
        _write_objectnet_mappings(tmp / "objectnet-1.0" / "mappings", plan)
        for folder, _, _, drawn in plan:
            for k in range(n_test):
                rng = _rng(seed, f"objectnet/{folder}", folder, k)
                c = concepts[drawn[k % len(drawn)]] if drawn else Concept("hexagon", str(rng.choice(TEXTURES)), rng.random())
                emit("objectnet", tmp / f"objectnet-1.0/images/{folder}/{_hash_name(seed, 'objectnet', folder, k)}.png",
                     render_objectnet(rng, c, size))

        for ci, w in enumerate(classes):
            for k in range(n_corrupt):
                base = render_photo(_rng(seed, "imagenet-c", w, k), concepts[w], size)
                name = f"ILSVRC2012_val_{ci * n_corrupt + k + 1:08d}.JPEG"
                for corruption in CORRUPTIONS:
                    for sev in SEVERITIES:
                        rng = _rng(seed, f"imagenet-c/{corruption}/{sev}", w, k)
                        emit("imagenet-c", tmp / f"imagenet-c/{corruption}/{sev}/{w}/{name}", corrupt(base, corruption, sev, rng))
    return counts
