"""FFCV .beton datasets and the training/validation loaders, with a plain PyTorch fallback.

One beton holds every image of a manifest (columns `path`, `label`) in manifest order: one per
training source (the real set, each generated set) and one for the val set. A training mixture
is rows of each of its sources, read side by side (`mixture`).

Two backends: `ffcv` reads the beton (ffcv's Loader with seeded crop/flip ops), `plain` reads
the manifest's image files through a torch DataLoader when ffcv is absent or not asked for
(`choose_backend`; GENROBUST_LOADER=ffcv|plain overrides the automatic choice).

Loaders yield `(images, labels)`: images float32 NCHW (channels_last memory format by
default), normalised with the ImageNet mean/std, labels int64, both on the requested device.
Both backends share the same epoch order and the same augmentation draws (`draws`):

* epoch order: `np.random.default_rng(seed + epoch).permutation(indices)` (exactly what FFCV's
  `OrderOption.RANDOM` does; with `distributed=True` a `DistributedSampler(seed=seed)` at that
  epoch), truncated to whole batches;
* augmentation (random-resized-crop box and horizontal flip) of the sample at position `p` of
  a batch is a hash of (seed, the sample ids of the whole batch, p). It does not use numba's
  thread-local RNG (which FFCV's stock decoder uses, and which makes crops depend on how the
  worker threads were scheduled), so a run resumed at epoch `e` sees bit-identical batches.

Normalisation runs in torch on the target device: FFCV's `NormalizeImage` needs cupy on CUDA
(not in the stack) and is no faster than one fused torch op there.

Modules: `writer` (manifest -> beton, row counts, labels), `draws` (epoch order, crop/flip
draws), `batches` (the common iterable, device resolution), `ffcv_backend`, `plain`,
`loaders` (backend choice and the backend-neutral factories), `mixture` (several sources'
loaders side by side).
"""

from genrobust.beton.batches import resolve_device
from genrobust.beton.draws import DEFAULT_RATIO, DEFAULT_SCALE, ORDERS, epoch_order
from genrobust.beton.ffcv_backend import (
    create_ffcv_train_loader, create_ffcv_val_loader, ffcv_available,
)
from genrobust.beton.loaders import choose_backend, create_train_loader, create_val_loader
from genrobust.beton.mixture import create_mixture_loader, split_batch
from genrobust.beton.plain import create_plain_train_loader, create_plain_val_loader
from genrobust.beton.writer import (
    beton_labels, manifest_columns, num_rows, read_manifest, write_beton,
)

__all__ = [
    "write_beton", "beton_labels", "num_rows", "read_manifest", "manifest_columns",
    "ffcv_available", "choose_backend", "create_train_loader", "create_val_loader",
    "create_mixture_loader", "split_batch",
    "create_ffcv_train_loader", "create_ffcv_val_loader", "create_plain_train_loader",
    "create_plain_val_loader", "epoch_order", "resolve_device", "ORDERS", "DEFAULT_SCALE",
    "DEFAULT_RATIO",
]
