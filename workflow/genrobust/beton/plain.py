"""The plain PyTorch backend: the manifest's files through a DataLoader, no ffcv needed.

Same geometry as the beton: images are first shrunk so that their longer side is at most
max_resolution, as RGBImageField(max_resolution) does when writing. Same epoch order and
same crop boxes and flips as the FFCV backend (from `draws`); only the resampling differs
(PIL bilinear here, cv2 area in ffcv).
"""

from __future__ import annotations

import numpy as np

from genrobust.beton.batches import Batches
from genrobust.beton.draws import (
    DEFAULT_RATIO, DEFAULT_SCALE, ORDERS, SALT_CROP, batch_key, center_crop_box, epoch_order,
    flip_draw, random_crop_box, sample_seed,
)
from genrobust.beton.writer import read_manifest


class _ManifestDataset:
    """Map-style dataset over manifest rows; items are (row, crop seed, flip) for training
    or a plain row index for validation. Returns (uint8 HxWx3 tensor, label)."""

    def __init__(self, paths, labels, train: bool, resolution: int, crop_ratio: float,
                 max_resolution: int | None, scale=DEFAULT_SCALE, ratio=DEFAULT_RATIO):
        self.paths = paths
        self.labels = labels
        self.train = train
        self.resolution = int(resolution)
        self.crop_ratio = float(crop_ratio)
        self.max_resolution = max_resolution
        self.scale = scale
        self.ratio = ratio

    def __len__(self):
        return len(self.paths)

    def _load(self, row):
        from PIL import Image

        from genrobust.images import open_rgb

        path = self.paths[row]
        try:
            im = open_rgb(path)
        except Exception as e:
            raise RuntimeError(f"cannot read image {path}: {type(e).__name__}: {e}") from e
        if self.max_resolution is not None:  # ffcv.fields.rgb_image.resizer
            ratio = self.max_resolution / max(im.size)
            if ratio < 1:
                size = tuple(int(ratio * s) for s in im.size)
                im = im.resize(size, Image.BOX)
        return im

    def __getitem__(self, item):
        import torch
        from PIL import Image

        if self.train:
            row, crop_seed, flip = item
        else:
            row, crop_seed, flip = item, None, False
        im = self._load(row)
        width, height = im.size
        if self.train:
            i, j, h, w = random_crop_box(height, width, self.scale[0], self.scale[1],
                                         self.ratio[0], self.ratio[1], crop_seed)
        else:
            i, j, h, w = center_crop_box(height, width, self.crop_ratio)
        i, j, h, w = int(i), int(j), int(h), int(w)
        im = im.resize((self.resolution, self.resolution), Image.BILINEAR,
                       box=(j, i, j + w, i + h))
        if flip:
            im = im.transpose(Image.FLIP_LEFT_RIGHT)
        return torch.from_numpy(np.array(im, dtype=np.uint8)), int(self.labels[row])


class _PlainBatches(Batches):
    backend = "plain"

    def __init__(self, dataset, indices, batch_size, num_workers, seed, device, channels_last,
                 resolution, order, distributed, drop_last):
        super().__init__(device, channels_last, resolution)
        self.dataset = dataset
        self.indices = np.asarray(indices, dtype=np.int64)
        self.batch_size = int(batch_size)
        self.num_workers = int(num_workers)
        self.seed = int(seed)
        self.order = "sequential" if order == "sequential" else "random"
        self.distributed = distributed
        self.drop_last = drop_last

    def _epoch_ids(self):
        ids = epoch_order(self.indices, self.seed, self.epoch, self.order, self.distributed)
        if self.drop_last:
            n = len(self) * self.batch_size
            ids = ids[:n]
        return ids

    def batches_per_epoch(self):
        n = len(epoch_order(self.indices, self.seed, 0, self.order, self.distributed))
        return n // self.batch_size if self.drop_last else -(-n // self.batch_size)

    def _batches(self):
        """The dataset items of each batch: rows, with their crop seeds and flips if training
        (the draws FFCV's seeded decoder and flip make for the same batch)."""
        ids = self._epoch_ids()
        base = self.seed & 0xFFFFFFFF
        for start in range(0, len(ids), self.batch_size):
            batch = ids[start:start + self.batch_size]
            if not self.dataset.train:
                yield [int(r) for r in batch]
                continue
            key = batch_key(base, batch)
            yield [(int(r), sample_seed(key, p, SALT_CROP), flip_draw(key, p) < 0.5)
                   for p, r in enumerate(batch)]

    def __iter__(self):
        import torch
        from torch.utils.data import DataLoader

        self.dataset.resolution = self.resolution
        loader = DataLoader(self.dataset, batch_sampler=list(self._batches()),
                            num_workers=self.num_workers,
                            pin_memory=self.device.type == "cuda",
                            persistent_workers=False)
        for images, labels in loader:
            # B x H x W x C -> B x C x H x W: a channels_last view, as FFCV's ToTorchImage gives
            yield self._finish(images.permute(0, 3, 1, 2), torch.as_tensor(labels))


def create_plain_train_loader(manifest_path, indices, batch_size, resolution, num_workers,
                              seed, device, distributed=False, order="random", os_cache=True,
                              channels_last=True, max_resolution=256) -> Batches:
    """torchvision equivalent of create_ffcv_train_loader, reading the manifest's files."""
    del os_cache  # FFCV-only
    if order not in ORDERS:
        raise ValueError(f"order must be one of {ORDERS}, not {order!r}")
    paths, labels = read_manifest(manifest_path)
    if indices is None:
        indices = np.arange(len(paths))
    dataset = _ManifestDataset(paths, labels, True, resolution, 1.0, max_resolution)
    return _PlainBatches(dataset, indices, batch_size, num_workers, seed, device,
                         channels_last, resolution, order, distributed, drop_last=True)


def create_plain_val_loader(manifest_path, batch_size, resolution, num_workers, device,
                            crop_ratio=224 / 256, channels_last=True, indices=None,
                            max_resolution=256) -> Batches:
    """torchvision equivalent of create_ffcv_val_loader."""
    paths, labels = read_manifest(manifest_path)
    if indices is None:
        indices = np.arange(len(paths))
    dataset = _ManifestDataset(paths, labels, False, resolution, crop_ratio, max_resolution)
    return _PlainBatches(dataset, indices, batch_size, num_workers, 0, device, channels_last,
                         resolution, "sequential", False, drop_last=False)
