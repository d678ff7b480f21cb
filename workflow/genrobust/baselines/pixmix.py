"""PixMix: one augmented copy of a real image mixed with itself and a mixing picture.

PixMix (Hendrycks et al., "PixMix: Dreamlike Pictures Comprehensively Improve Safety Measures",
code: andyzoujm/pixmix): `pixmix()` and `augment_input()` in `imagenet.py` / `cifar.py`, the
operations and mixings of `pixmix_utils.py`, the mixing-picture preprocessing
(Resize(256) + RandomCrop(224) in `imagenet.py`, Resize(36) + RandomCrop(32) in `cifar.py`).
np.random of the original is replaced by Generators drawn from the image's seed.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Callable, Sequence

import numpy as np
from PIL import Image, ImageEnhance, ImageOps

from ..datasets import IMAGE_EXTENSIONS
from ..images import open_rgb, to_rgb
from ._random import TAG_PIXMIX, streams

# ------------------------------------------------------------- operations (pixmix_utils.py)


def _int_parameter(level: float, maxval: float) -> int:
    return int(level * maxval / 10)


def _float_parameter(level: float, maxval: float) -> float:
    return float(level) * maxval / 10.0


def _sample_level(rng, n):
    return rng.uniform(low=0.1, high=n)


def _autocontrast(img, _, rng):
    return ImageOps.autocontrast(img)


def _equalize(img, _, rng):
    return ImageOps.equalize(img)


def _posterize(img, level, rng):
    return ImageOps.posterize(img, 4 - _int_parameter(_sample_level(rng, level), 4))


def _rotate(img, level, rng):
    degrees = _int_parameter(_sample_level(rng, level), 30)
    if rng.uniform() > 0.5:
        degrees = -degrees
    return img.rotate(degrees, resample=Image.Resampling.BILINEAR)


def _solarize(img, level, rng):
    return ImageOps.solarize(img, 256 - _int_parameter(_sample_level(rng, level), 256))


def _affine(img, coeffs):
    # the original passes (IMAGE_SIZE, IMAGE_SIZE): square images of the training size; we use
    # the image's own size
    return img.transform(img.size, Image.Transform.AFFINE, coeffs, resample=Image.Resampling.BILINEAR)


def _shear_x(img, level, rng):
    level = _float_parameter(_sample_level(rng, level), 0.3)
    if rng.uniform() > 0.5:
        level = -level
    return _affine(img, (1, level, 0, 0, 1, 0))


def _shear_y(img, level, rng):
    level = _float_parameter(_sample_level(rng, level), 0.3)
    if rng.uniform() > 0.5:
        level = -level
    return _affine(img, (1, 0, 0, level, 1, 0))


def _translate_x(img, level, rng):
    level = _int_parameter(_sample_level(rng, level), img.size[0] / 3)  # IMAGE_SIZE / 3
    if rng.random() > 0.5:
        level = -level
    return _affine(img, (1, 0, level, 0, 1, 0))


def _translate_y(img, level, rng):
    level = _int_parameter(_sample_level(rng, level), img.size[1] / 3)
    if rng.random() > 0.5:
        level = -level
    return _affine(img, (1, 0, 0, 0, 1, level))


def _enhance(cls):
    def op(img, level, rng):
        return cls(img).enhance(_float_parameter(_sample_level(rng, level), 1.8) + 0.1)
    op.__name__ = f"_{cls.__name__.lower()}"
    return op


_color, _contrast = _enhance(ImageEnhance.Color), _enhance(ImageEnhance.Contrast)
_brightness, _sharpness = _enhance(ImageEnhance.Brightness), _enhance(ImageEnhance.Sharpness)

# pixmix_utils.augmentations / augmentations_all (color..sharpness overlap with ImageNet-C)
AUGMENTATIONS = [_autocontrast, _equalize, _posterize, _rotate, _solarize, _shear_x, _shear_y,
                 _translate_x, _translate_y]
AUGMENTATIONS_ALL = AUGMENTATIONS + [_color, _contrast, _brightness, _sharpness]


# ---------------------------------------------------------------- mixings (pixmix_utils.py)


def _get_ab(beta, rng):
    """pixmix_utils.get_ab."""
    if rng.random() < 0.5:
        a = np.float32(rng.beta(beta, 1))
        b = np.float32(rng.beta(1, beta))
    else:
        a = 1 + np.float32(rng.beta(1, beta))
        b = -np.float32(rng.beta(1, beta))
    return a, b


def _add(img1, img2, beta, rng):
    """pixmix_utils.add: affine mix in [-1, 1]."""
    a, b = _get_ab(beta, rng)
    img1, img2 = img1 * 2 - 1, img2 * 2 - 1
    out = a * img1 + b * img2
    return (out + 1) / 2


def _multiply(img1, img2, beta, rng):
    """pixmix_utils.multiply: geometric mix in [0, 2]."""
    a, b = _get_ab(beta, rng)
    img1, img2 = img1 * 2, img2 * 2
    out = (img1 ** a) * (np.clip(img2, np.float32(1e-37), None) ** b)
    return out / 2


MIXINGS = [_add, _multiply]


# ------------------------------------------------- the augmentation (imagenet.py, cifar.py)


def _tensorize(img: Image.Image) -> np.ndarray:
    """transforms.ToTensor, kept H,W,C: float32 in [0, 1]."""
    return np.asarray(img, dtype=np.float32) / np.float32(255)


def _prepare_mixing_picture(pic: Image.Image, size: tuple[int, int], rng: np.random.Generator) -> Image.Image:
    """The original's mixing-set transform, Resize(256) + RandomCrop(224) for 224 px ImageNet
    crops (imagenet.py; cifar.py: Resize(36) + RandomCrop(32)): resize the short side to
    round(max(W, H) * 256 / 224), then crop W x H at a random offset."""
    pic = to_rgb(pic)
    w, h = size
    short = max(1, round(max(w, h) * 256 / 224))
    pw, ph = pic.size
    new = (short, max(short, round(ph * short / pw))) if pw <= ph else (max(short, round(pw * short / ph)), short)
    pic = pic.resize(new, Image.Resampling.BILINEAR)
    x0 = int(rng.integers(0, new[0] - w + 1))
    y0 = int(rng.integers(0, new[1] - h + 1))
    return pic.crop((x0, y0, x0 + w, y0 + h))


def _open_picture(p) -> Image.Image:
    if isinstance(p, Image.Image):
        return p
    return open_rgb(p)


def pixmix(image: Image.Image, mixing_pictures: Sequence | Callable[[int], Image.Image], seed: int,
           k: int = 4, beta: float = 3, aug_severity: int = 3, all_ops: bool = True) -> Image.Image:
    """One PixMix copy of `image` (uint8 RGB PIL image of the same size).

    Follows pixmix() of andyzoujm/pixmix imagenet.py / cifar.py: start from the image or an
    augmented copy (coin flip), then for rng.integers(k + 1) rounds mix in either a fresh
    augmented copy of the image or the mixing picture (coin flip), by pixmix_utils.add or
    multiply (coin flip) with Beta(beta)-drawn weights, clipping to [0, 1] after each round.
    One mixing picture per image (as PixMixDataset.__getitem__), preprocessed as the original's
    mixing-set transform at the image's size (see _prepare_mixing_picture).

    `mixing_pictures`: a sequence of PIL images or image paths (one picked with the seed), or a
    callable mapping an integer drawn from the seed to a PIL image. The picture is only loaded
    when a round uses it. `seed` alone fixes the result. Defaults k=4, beta=3, aug_severity=3
    are cifar.py's; imagenet.py's are k=4, beta=4, aug_severity=1 with all_ops off.
    The original returns the normalised float tensor; we round the [0, 1] result to uint8.
    """
    if isinstance(image, np.ndarray):
        image = Image.fromarray(image)
    orig = to_rgb(image)
    rng, rng_pic = streams(seed, TAG_PIXMIX, 2)
    pick = int(rng_pic.integers(2**63))
    aug_list = AUGMENTATIONS_ALL if all_ops else AUGMENTATIONS
    cache: list[np.ndarray] = []

    def mixing_pic() -> np.ndarray:
        if not cache:
            if callable(mixing_pictures):
                pic = mixing_pictures(pick)
            else:
                if len(mixing_pictures) == 0:
                    raise ValueError("pixmix: the mixing set is empty")
                pic = _open_picture(mixing_pictures[pick % len(mixing_pictures)])
            cache.append(_tensorize(_prepare_mixing_picture(pic, orig.size, rng_pic)))
        return cache[0]

    def augment_input(img):  # imagenet.py augment_input
        op = aug_list[int(rng.integers(len(aug_list)))]
        return op(img.copy(), aug_severity, rng)

    mixed = _tensorize(augment_input(orig)) if rng.random() < 0.5 else _tensorize(orig)
    for _ in range(int(rng.integers(k + 1))):
        aug_image_copy = _tensorize(augment_input(orig)) if rng.random() < 0.5 else mixing_pic()
        mixed_op = MIXINGS[int(rng.integers(len(MIXINGS)))]
        mixed = np.clip(mixed_op(mixed, aug_image_copy, beta, rng), 0, 1)
    return Image.fromarray(np.rint(np.asarray(mixed, dtype=np.float32) * 255).astype(np.uint8), "RGB")


def index_mixing_set(folder: str | os.PathLike) -> list[str]:
    """Sorted paths of the images under `folder` (recursively: the original's mixing set is an
    ImageFolder with class sub-folders)."""
    folder = Path(folder)
    if not folder.is_dir():
        raise FileNotFoundError(f"PixMix mixing set folder not found: {folder}")
    paths: list[str] = []
    stack = [str(folder)]
    while stack:
        with os.scandir(stack.pop()) as it:
            for e in it:
                if e.is_dir():
                    stack.append(e.path)
                elif e.is_file() and e.name.lower().endswith(IMAGE_EXTENSIONS) and not e.name.startswith("."):
                    paths.append(e.path)
    if not paths:
        raise ValueError(f"PixMix mixing set {folder} holds no images ({', '.join(IMAGE_EXTENSIONS)})")
    return sorted(paths)
