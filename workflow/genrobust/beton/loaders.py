"""The backend-neutral loader factories: FFCV on the beton when ffcv imports, else plain."""

from __future__ import annotations

import os

from genrobust.beton.batches import Batches
from genrobust.beton.ffcv_backend import (
    create_ffcv_train_loader, create_ffcv_val_loader, ffcv_available,
)
from genrobust.beton.plain import create_plain_train_loader, create_plain_val_loader


def choose_backend(beton_path, manifest_path, backend: str = "auto") -> str:
    """'ffcv' when ffcv imports and a beton path is given, else 'plain' (needs the manifest).
    The environment variable GENROBUST_LOADER=ffcv|plain overrides 'auto'."""
    if backend == "auto":
        backend = os.environ.get("GENROBUST_LOADER", "auto")
    if backend == "auto":
        backend = "ffcv" if (beton_path is not None and ffcv_available()) else "plain"
    if backend == "ffcv":
        if beton_path is None:
            raise ValueError("backend 'ffcv' needs a beton path")
        if not ffcv_available():
            raise RuntimeError("backend 'ffcv' requested but ffcv does not import")
    elif backend == "plain":
        if manifest_path is None:
            raise ValueError("the plain loader needs a manifest path (ffcv is unavailable "
                             "or was not asked for)")
    else:
        raise ValueError(f"backend must be 'auto', 'ffcv' or 'plain', not {backend!r}")
    return backend


def create_train_loader(beton_path, manifest_path, indices, batch_size, resolution,
                        num_workers, seed, device, distributed=False, order="random",
                        os_cache=True, channels_last=True, backend="auto") -> Batches:
    """Training batches from the beton (FFCV) or, without ffcv, from the manifest.

    `indices` are rows of the manifest (= beton indices); None means all rows.
    """
    if choose_backend(beton_path, manifest_path, backend) == "ffcv":
        return create_ffcv_train_loader(beton_path, indices, batch_size, resolution,
                                        num_workers, seed, device, distributed, order,
                                        os_cache, channels_last)
    return create_plain_train_loader(manifest_path, indices, batch_size, resolution,
                                     num_workers, seed, device, distributed, order, os_cache,
                                     channels_last)


def create_val_loader(beton_path, manifest_path, batch_size, resolution, num_workers, device,
                      crop_ratio=224 / 256, channels_last=True, backend="auto") -> Batches:
    """Validation batches (centre crop, sequential, every image) from the beton or manifest."""
    if choose_backend(beton_path, manifest_path, backend) == "ffcv":
        return create_ffcv_val_loader(beton_path, batch_size, resolution, num_workers, device,
                                      crop_ratio, channels_last)
    return create_plain_val_loader(manifest_path, batch_size, resolution, num_workers, device,
                                   crop_ratio, channels_last)
