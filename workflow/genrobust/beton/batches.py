"""What every loader factory returns, whatever the backend, and the device it resolves."""

from __future__ import annotations

from typing import Iterator

from genrobust.datasets import IMAGENET_MEAN, IMAGENET_STD


def resolve_device(device):
    """torch.device of `device` (None: CUDA when available, else CPU), CUDA with its index."""
    import torch

    if device is None:
        device = "cuda" if torch.cuda.is_available() else "cpu"
    device = torch.device(device)
    if device.type == "cuda" and device.index is None:  # set_device/DDP want an index
        device = torch.device("cuda", torch.cuda.current_device())
    return device


class Batches:
    """What the loader factories return: iterate for one epoch of (images, labels).

    `set_epoch(e)` picks the epoch order (and augmentation draws); `set_resolution(r)` the
    output side for the following iteration. `len()` is the number of batches per epoch, at
    most `max_batches` when set (a mixture stops all its sources at the shortest one).
    """

    backend = "?"

    def __init__(self, device, channels_last: bool, resolution: int):
        import torch

        self.device = resolve_device(device)
        self.channels_last = channels_last
        self.resolution = int(resolution)
        self.epoch = 0
        self.max_batches: int | None = None
        self._mean = torch.tensor(IMAGENET_MEAN, device=self.device).mul(255).view(1, 3, 1, 1)
        self._std = torch.tensor(IMAGENET_STD, device=self.device).mul(255).view(1, 3, 1, 1)

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)

    def set_resolution(self, resolution: int) -> None:
        self.resolution = int(resolution)

    def _finish(self, images, labels):
        """uint8 NCHW (any layout) on any device -> normalised float32 on self.device."""
        import torch

        images = images.to(self.device, non_blocking=True)
        fmt = torch.channels_last if self.channels_last else torch.contiguous_format
        images = images.to(dtype=torch.float32, memory_format=fmt)
        images = images.sub_(self._mean).div_(self._std)
        labels = labels.to(self.device, non_blocking=True).to(torch.int64, copy=True).view(-1)
        return images, labels

    def __iter__(self) -> Iterator:
        raise NotImplementedError

    def batches_per_epoch(self) -> int:
        """Batches of a whole epoch, before max_batches."""
        raise NotImplementedError

    def __len__(self) -> int:
        n = self.batches_per_epoch()
        return n if self.max_batches is None else min(n, self.max_batches)
