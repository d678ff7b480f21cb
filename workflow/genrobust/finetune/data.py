"""The fine-tuning data: the real train set through its index (no copy), with class-name captions.

Images are prepared as the paper's script does (diffusers' train_text_to_image.py): the short side
resized to `resolution` (bilinear), a random (or centre) square crop, an optional horizontal flip,
values scaled to [-1, 1]. The order of an epoch and every crop and flip are drawn from seeds of
(seed, epoch, row), never from worker or process state, so a resumed run sees exactly the batches
an uninterrupted one would, and the same images on any number of loader workers.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from .. import io
from ..images import open_rgb
from ..prompts import class_label_prompt, load_class_names
from ..seeding import derive_seed


@dataclass(frozen=True)
class CaptionedIndex:
    """Image paths, the caption index of each image, and the captions (one per class)."""

    paths: tuple[str, ...]
    caption_ids: np.ndarray  # int64, one per image
    captions: tuple[str, ...]
    wnids: tuple[str, ...]

    def __len__(self) -> int:
        return len(self.paths)


def read_captioned_index(index_csv: str | Path, template: str, class_names: str = "clip") -> CaptionedIndex:
    """The rows of a dataset index (path, wnid, ...), captioned template.format(class name)."""
    index = io.read_csv(index_csv)
    missing = {"path", "wnid"} - set(index.columns)
    if missing:
        raise ValueError(f"{index_csv}: not a dataset index (no column {sorted(missing)}); the index_dataset "
                         "rule writes path, wnid, label")
    if index.empty:
        raise ValueError(f"{index_csv}: the index holds no image")
    wnids = tuple(pd.unique(index["wnid"].astype(str)))
    names = load_class_names(wnids, class_names)
    captions = tuple(class_label_prompt(template, names[w]) for w in wnids)
    caption_ids = index["wnid"].astype(str).map({w: i for i, w in enumerate(wnids)}).to_numpy(np.int64)
    # A real index stores paths as found (relative to the working directory), like mixtures.write_source reads them.
    return CaptionedIndex(tuple(index["path"].astype(str)), caption_ids, captions, wnids)


# ----------------------------------------------------------------------------- order


def epoch_order(n: int, seed: int, epoch: int) -> np.ndarray:
    """The seeded permutation of the n images for one epoch (the same on every process)."""
    return np.random.default_rng(derive_seed(seed, "finetune-order", epoch)).permutation(n)


def micro_batches(n: int, seed: int, epoch: int, batch_size: int, processes: int, rank: int,
                  count: int, start: int = 0) -> list[list[tuple[int, int]]]:
    """This process's share of micro-batches start..count-1 of an epoch, each a list of
    (epoch, row): micro-batch j is images j*G..(j+1)*G-1 of the epoch's order (G = batch_size x
    processes), of which process `rank` takes its batch_size. The incomplete last one is dropped."""
    order = epoch_order(n, seed, epoch)
    total = batch_size * processes
    out = []
    for j in range(start, count):
        rows = order[j * total + rank * batch_size: j * total + (rank + 1) * batch_size]
        out.append([(epoch, int(r)) for r in rows])
    return out


# ----------------------------------------------------------------------------- images


class ImageTransform:
    """Resize the short side, crop a square (random or centre), maybe flip, scale to [-1, 1]."""

    def __init__(self, resolution: int, center_crop: bool, random_flip: bool, seed: int):
        self.resolution, self.center_crop, self.random_flip, self.seed = resolution, center_crop, random_flip, seed

    def __call__(self, image, epoch: int, row: int):
        import torch
        from PIL import Image

        rng = np.random.default_rng(derive_seed(self.seed, "finetune-view", epoch, row))
        r = self.resolution
        w, h = image.size
        scale = r / min(w, h)
        size = (max(r, round(w * scale)), max(r, round(h * scale)))
        image = image.resize(size, Image.Resampling.BILINEAR)  # torchvision's Resize on a PIL image
        w, h = image.size
        if self.center_crop:
            left, top = int(round((w - r) / 2.0)), int(round((h - r) / 2.0))
        else:
            left, top = int(rng.integers(0, w - r + 1)), int(rng.integers(0, h - r + 1))
        pixels = np.asarray(image.crop((left, top, left + r, top + r)), dtype=np.float32)
        if self.random_flip and rng.random() < 0.5:
            pixels = pixels[:, ::-1]
        tensor = torch.from_numpy(np.ascontiguousarray(pixels)).permute(2, 0, 1)
        return tensor / 127.5 - 1.0  # ToTensor then Normalize([0.5], [0.5])


class CaptionedImages:
    """A map-style dataset keyed by (epoch, row): (pixels in [-1, 1], caption id)."""

    def __init__(self, index: CaptionedIndex, transform: ImageTransform):
        self.index, self.transform = index, transform

    def __len__(self) -> int:
        return len(self.index)

    def __getitem__(self, key: tuple[int, int]):
        epoch, row = key
        try:
            image = open_rgb(self.index.paths[row])
        except OSError as err:
            raise ValueError(f"cannot read training image {self.index.paths[row]}: {err}") from err
        return self.transform(image, epoch, row), int(self.index.caption_ids[row])


def loader(dataset: CaptionedImages, batches: list[list[tuple[int, int]]], workers: int, pin: bool):
    """A DataLoader over exactly these batches, in this order."""
    import torch

    return torch.utils.data.DataLoader(dataset, batch_sampler=batches, num_workers=workers, pin_memory=pin,
                                       persistent_workers=False)
