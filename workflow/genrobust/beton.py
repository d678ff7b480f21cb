"""FFCV .beton datasets and the training/validation loaders, with a plain PyTorch fallback.

One beton holds every image of a manifest (columns `path`, `label`) in manifest order, so a
training mixture (real + generated) is just a list of row indices into it.

Loaders yield `(images, labels)`: images float32 NCHW (channels_last memory format by
default), normalised with the ImageNet mean/std, labels int64, both on the requested device.
Both backends (FFCV and the plain torchvision one) share the same epoch order and the same
augmentation draws:

* epoch order: `np.random.default_rng(seed + epoch).permutation(indices)` (exactly what FFCV's
  `OrderOption.RANDOM` does; with `distributed=True` a `DistributedSampler(seed=seed)` at that
  epoch), truncated to whole batches;
* augmentation (random-resized-crop box and horizontal flip) of the sample at position `p` of
  a batch is a hash of (seed, the sample ids of the whole batch, p). It does not use numba's
  thread-local RNG (which FFCV's stock decoder uses, and which makes crops depend on how the
  worker threads were scheduled), so a run resumed at epoch `e` sees bit-identical batches.

Normalisation runs in torch on the target device: FFCV's `NormalizeImage` needs cupy on CUDA
(not in the stack) and is no faster than one fused torch op there.
"""

from __future__ import annotations

import ctypes
import functools
import math
import multiprocessing
import os
from pathlib import Path
from typing import Iterator

import numpy as np
import pandas as pd

from genrobust.io import atomic_path, read_csv

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
DEFAULT_SCALE = (0.08, 1.0)
DEFAULT_RATIO = (3 / 4, 4 / 3)
ORDERS = ("random", "quasi_random", "sequential")


@functools.lru_cache(maxsize=None)
def ffcv_available() -> bool:
    """True when ffcv (and its compiled extension) imports.

    Importing ffcv calls torch.set_num_threads(1) (ffcv.pipeline.compiler does it at import
    time); the thread count is put back here, so always import ffcv through this function first.
    """
    import torch

    threads = torch.get_num_threads()
    try:
        import ffcv.fields  # noqa: F401
        import ffcv.loader  # noqa: F401
        import ffcv.writer  # noqa: F401
    except Exception:  # ImportError, or a broken libffcv / opencv build
        return False
    finally:
        torch.set_num_threads(threads)
    return True


def _require_ffcv() -> None:
    if not ffcv_available():
        raise RuntimeError("ffcv is not installed (or does not import); use the plain loaders "
                           "on the manifest instead")


# ----------------------------------------------------------------------------------------
# Deterministic augmentation draws. Plain Python functions with only int64-safe arithmetic:
# FFCV's decoder compiles them with numba, the plain loader calls them as they are, and both
# give the same numbers. Every product is < 2**63 (32-bit value x 31-bit constant), so int64
# numpy scalars, numba int64 and Python ints agree.
# ----------------------------------------------------------------------------------------

_SALT_CROP = 0x1234567
_SALT_FLIP = 0x7654321


def _build_draws(jit):
    """The draw functions, each passed through `jit` (identity, or numba's njit via ffcv's
    Compiler); callees are closure variables so that the numba versions call numba code."""

    def batch_key(base_seed, ids):
        """32-bit hash of the seed and of a batch's sample ids (in order)."""
        h = base_seed & 0xFFFFFFFF
        for k in range(len(ids)):
            v = np.int64(ids[k]) & 0xFFFFFFFF
            h = (h ^ v) & 0xFFFFFFFF
            h = ((h ^ (h >> 16)) * 0x7FEB352D) & 0xFFFFFFFF
            h = ((h ^ (h >> 15)) * 0x2C1B3C6D) & 0xFFFFFFFF
            h = (h ^ (h >> 16)) & 0xFFFFFFFF
        return h

    def sample_seed(key, pos, salt):
        """32-bit seed of batch position `pos` for one augmentation (`salt`)."""
        x = (key ^ ((np.int64(pos) * 0x9E3779B1 + salt) & 0xFFFFFFFF)) & 0xFFFFFFFF
        x = ((x ^ (x >> 16)) * 0x7FEB352D) & 0xFFFFFFFF
        x = ((x ^ (x >> 15)) * 0x2C1B3C6D) & 0xFFFFFFFF
        return (x ^ (x >> 16)) & 0xFFFFFFFF

    sample_seed = jit(sample_seed)

    def uniforms(seed, n):
        """n floats in [0, 1) from a 32-bit seed (counter-mode hash)."""
        out = np.empty(n, dtype=np.float64)
        for k in range(n):
            x = (seed + (k + 1) * 0x9E3779B9) & 0xFFFFFFFF
            x = ((x ^ (x >> 16)) * 0x7FEB352D) & 0xFFFFFFFF
            x = ((x ^ (x >> 15)) * 0x2C1B3C6D) & 0xFFFFFFFF
            x = (x ^ (x >> 16)) & 0xFFFFFFFF
            out[k] = x / 4294967296.0
        return out

    uniforms = jit(uniforms)

    def flip_draw(key, pos):
        return sample_seed(key, pos, _SALT_FLIP) / 4294967296.0

    def random_crop_box(height, width, scale0, scale1, ratio0, ratio1, seed):
        """torchvision/FFCV RandomResizedCrop box (top, left, h, w), drawn from `seed`."""
        height = np.int64(height)
        width = np.int64(width)
        area = height * width
        log0 = math.log(ratio0)
        log1 = math.log(ratio1)
        u = uniforms(seed, 40)
        for t in range(10):
            target_area = area * (scale0 + (scale1 - scale0) * u[4 * t])
            aspect = math.exp(log0 + (log1 - log0) * u[4 * t + 1])
            w = np.int64(round(math.sqrt(target_area * aspect)))
            h = np.int64(round(math.sqrt(target_area / aspect)))
            if 0 < w <= width and 0 < h <= height:
                i = np.int64(u[4 * t + 2] * (height - h + 1))
                j = np.int64(u[4 * t + 3] * (width - w + 1))
                return i, j, h, w
        in_ratio = width / height
        if in_ratio < ratio0:
            w = width
            h = np.int64(round(w / ratio0))
        elif in_ratio > ratio1:
            h = height
            w = np.int64(round(h * ratio1))
        else:
            w = width
            h = height
        return (height - h) // 2, (width - w) // 2, h, w

    # (each callee above was rebound to its jitted version before its callers were compiled)
    return jit(batch_key), sample_seed, uniforms, jit(flip_draw), jit(random_crop_box)


_batch_key, _sample_seed, _uniforms, _flip_draw, _random_crop_box = _build_draws(lambda f: f)


def _center_crop_box(height, width, ratio):
    """FFCV's CenterCropRGBImageDecoder box: a square of int(ratio * shorter side)."""
    s = min(height, width)
    c = int(ratio * s)
    return (height - c) // 2, (width - c) // 2, c, c


# ----------------------------------------------------------------------------------------
# Epoch order, shared by both backends
# ----------------------------------------------------------------------------------------

def _dist_info() -> tuple[int, int]:
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


def epoch_order(indices: np.ndarray, seed: int, epoch: int, order: str = "random",
                distributed: bool = False) -> np.ndarray:
    """Sample ids of one epoch, as FFCV's RANDOM / SEQUENTIAL orders produce them (with
    distributed=True: this process's share, padded to equal length by DistributedSampler).
    'quasi_random' (FFCV-only, needs os_cache=False) is treated as 'random' here."""
    indices = np.asarray(indices)
    shuffle = order != "sequential"
    if not distributed:
        return np.random.default_rng(seed + epoch).permutation(indices) if shuffle else indices
    from torch.utils.data import DistributedSampler

    rank, world = _dist_info()
    sampler = DistributedSampler(indices, num_replicas=world, rank=rank, shuffle=shuffle,
                                 seed=seed, drop_last=False)
    sampler.set_epoch(epoch)
    return indices[np.array(list(sampler), dtype=np.int64)]


# ----------------------------------------------------------------------------------------
# Writing
# ----------------------------------------------------------------------------------------

def _read_rgb(path: str) -> np.ndarray:
    from PIL import Image

    with Image.open(path) as im:
        return np.asarray(im.convert("RGB"))


class _ManifestImages:
    """Indexable (image, label) source for ffcv's DatasetWriter, run in its worker processes.

    An unreadable image must not raise inside a writer process (ffcv's writer would then wait
    forever for the sample count to be reached): it is flagged in shared memory and replaced by
    a 1-pixel placeholder; write_beton raises afterwards, naming the files.
    """

    def __init__(self, paths: list[str], labels: np.ndarray):
        self.paths = paths
        self.labels = labels
        self.failed = multiprocessing.RawArray(ctypes.c_uint8, max(len(paths), 1))

    def __len__(self):
        return len(self.paths)

    def __getitem__(self, i):
        # 'proportion' mode picks JPEG vs raw with np.random: seed it per row so the choice
        # does not depend on which worker got the row.
        np.random.seed((i * 2654435761 + 12345) % (2**32))
        try:
            image = _read_rgb(self.paths[i])
            if image.ndim != 3 or image.shape[0] == 0 or image.shape[1] == 0:
                raise ValueError(f"bad image shape {image.shape}")
        except Exception:
            self.failed[i] = 1
            image = np.zeros((1, 1, 3), dtype=np.uint8)
        return image, int(self.labels[i])


def _manifest_columns(manifest: pd.DataFrame) -> tuple[list[str], np.ndarray]:
    missing = {"path", "label"} - set(manifest.columns)
    if missing:
        raise ValueError(f"manifest lacks column(s) {sorted(missing)}")
    paths = [str(p) for p in manifest["path"]]
    try:
        labels = manifest["label"].astype(np.int64).to_numpy()
    except (TypeError, ValueError) as e:
        raise ValueError(f"manifest labels must be integers: {e}") from e
    if len(labels) and labels.min() < 0:
        raise ValueError("manifest labels must be >= 0")
    return paths, labels


def write_beton(manifest: pd.DataFrame, out_path, max_resolution: int = 256,
                jpeg_quality: int = 90, compress_probability: float = 0.5,
                num_workers: int = 2) -> None:
    """Write the manifest's images (row i -> beton index i) into an FFCV beton, atomically."""
    _require_ffcv()
    from ffcv.fields import IntField, RGBImageField
    from ffcv.writer import DatasetWriter

    paths, labels = _manifest_columns(manifest)
    if not paths:
        raise ValueError("manifest is empty")
    absent = [p for p in paths if not os.path.isfile(p)]
    if absent:
        more = f" (and {len(absent) - 5} more)" if len(absent) > 5 else ""
        raise FileNotFoundError(f"{len(absent)} image(s) of the manifest do not exist: "
                                f"{', '.join(absent[:5])}{more}")
    source = _ManifestImages(paths, labels)
    fields = {
        "image": RGBImageField(write_mode="proportion", max_resolution=max_resolution,
                               compress_probability=compress_probability,
                               jpeg_quality=jpeg_quality),
        "label": IntField(),
    }
    with atomic_path(out_path, suffix=".beton") as tmp:
        writer = DatasetWriter(str(tmp), fields, num_workers=max(1, int(num_workers)))
        writer.from_indexed_dataset(source, chunksize=64)
        bad = np.flatnonzero(np.frombuffer(source.failed, dtype=np.uint8)[: len(paths)])
        if len(bad):
            details = []
            for i in bad[:5]:
                try:
                    _read_rgb(paths[i])
                    reason = "unreadable in a writer process"
                except Exception as e:  # noqa: BLE001 - reported to the user
                    reason = f"{type(e).__name__}: {e}"
                details.append(f"{paths[i]} ({reason})")
            more = f"; and {len(bad) - 5} more" if len(bad) > 5 else ""
            raise ValueError(f"{len(bad)} corrupt or unreadable image(s) in the manifest: "
                             + "; ".join(details) + more)


def beton_labels(beton_path) -> np.ndarray:
    """Labels of every row of a beton (read from its metadata, no decoding)."""
    _require_ffcv()
    from ffcv.reader import Reader

    reader = Reader(str(beton_path))
    names = list(reader.handlers.keys())
    return np.asarray(reader.metadata[f"f{names.index('label')}"]).astype(np.int64).copy()


# ----------------------------------------------------------------------------------------
# Loading: common wrapper
# ----------------------------------------------------------------------------------------

def _device(device):
    import torch

    if device is None:
        device = "cuda" if torch.cuda.is_available() else "cpu"
    device = torch.device(device)
    if device.type == "cuda" and device.index is None:  # set_device/DDP want an index
        device = torch.device("cuda", torch.cuda.current_device())
    return device


class _Batches:
    """What the loader factories return: iterate for one epoch of (images, labels).

    `set_epoch(e)` picks the epoch order (and augmentation draws); `set_resolution(r)` the
    output side for the following iteration. `len()` is the number of batches per epoch.
    """

    backend = "?"

    def __init__(self, device, channels_last: bool, resolution: int):
        import torch

        self.device = _device(device)
        self.channels_last = channels_last
        self.resolution = int(resolution)
        self.epoch = 0
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

    def __len__(self) -> int:
        raise NotImplementedError


# ----------------------------------------------------------------------------------------
# FFCV backend
# ----------------------------------------------------------------------------------------

def _numba_threads(num_workers: int) -> int:
    import numba

    return max(1, min(int(num_workers or 1), numba.config.NUMBA_NUM_THREADS))


@functools.lru_cache(maxsize=None)
def _compiled_draws():
    """numba versions of the draw functions, compiled once per process."""
    from ffcv.pipeline.compiler import Compiler

    return _build_draws(Compiler.compile)


@functools.lru_cache(maxsize=None)
def _safe_loader_class():
    """ffcv's Loader, except that an exception in its pipeline thread is re-raised in the
    consumer (stock ffcv 1.0.2 prints it and leaves the consumer waiting forever)."""
    import queue

    from ffcv.loader import Loader
    from ffcv.loader.epoch_iterator import EpochIterator

    class SafeEpochIterator(EpochIterator):
        error = None

        def run(self):
            try:
                super().run()
            except BaseException as e:  # noqa: BLE001 - handed to the consumer
                self.error = e
                while not self.terminate_event.is_set():
                    try:
                        self.output_queue.put(None, timeout=0.5)
                        break
                    except queue.Full:
                        pass

        def __next__(self):
            result = self.output_queue.get()
            if result is None:
                self.close()
                if self.error is not None:
                    raise RuntimeError(f"ffcv loader failed: {type(self.error).__name__}: "
                                       f"{self.error}") from self.error
                raise StopIteration()
            slot, result = result
            if hasattr(self, "current_stream"):  # CUDA: wait for the copy to be done
                self.current_stream.wait_stream(self.cuda_streams[slot])
            return result

    class SafeLoader(Loader):
        def __iter__(self):  # as Loader.__iter__, with SafeEpochIterator
            from ffcv.pipeline.compiler import Compiler

            Compiler.set_num_threads(self.num_workers)
            order = self.next_traversal_order()
            selected_order = order[:len(self) * self.batch_size]
            self.next_epoch += 1
            if self.code is None or self.recompile:
                self.generate_code()
            return SafeEpochIterator(self, selected_order)

    return SafeLoader


@functools.lru_cache(maxsize=None)
def _ffcv_ops():
    """FFCV operations with seeded augmentation (defined lazily: ffcv is optional)."""
    from dataclasses import replace

    from ffcv.fields.rgb_image import IMAGE_MODES, RandomResizedCropRGBImageDecoder
    from ffcv.libffcv import imdecode, resize_crop
    from ffcv.pipeline.allocation_query import AllocationQuery
    from ffcv.pipeline.compiler import Compiler
    from ffcv.pipeline.operation import Operation

    class SeededRandomResizedCropRGBImageDecoder(RandomResizedCropRGBImageDecoder):
        """RandomResizedCropRGBImageDecoder whose crop boxes come from (seed, batch, position)
        instead of numba's per-thread RNG. `output_size` may be changed between epochs."""

        def __init__(self, output_size, seed: int, scale=DEFAULT_SCALE, ratio=DEFAULT_RATIO):
            super().__init__(output_size, scale=scale, ratio=ratio)
            self.seed = int(seed)

        def generate_code(self):
            jpg = IMAGE_MODES["jpg"]
            mem_read = self.memory_read
            my_range = Compiler.get_iterator()
            imdecode_c = Compiler.compile(imdecode)
            resize_crop_c = Compiler.compile(resize_crop)
            batch_key_c, sample_seed_c, _, _, crop_c = _compiled_draws()
            base = np.int64(self.seed & 0xFFFFFFFF)
            salt = np.int64(_SALT_CROP)
            s0, s1 = float(self.scale[0]), float(self.scale[1])
            r0, r1 = float(self.ratio[0]), float(self.ratio[1])

            def decode(batch_indices, my_storage, metadata, storage_state):
                destination, temp_storage = my_storage
                key = batch_key_c(base, batch_indices)
                for dst_ix in my_range(len(batch_indices)):
                    source_ix = batch_indices[dst_ix]
                    field = metadata[source_ix]
                    image_data = mem_read(field["data_ptr"], storage_state)
                    height = np.uint32(field["height"])
                    width = np.uint32(field["width"])
                    if field["mode"] == jpg:
                        temp_buffer = temp_storage[dst_ix]
                        imdecode_c(image_data, temp_buffer, height, width, height, width,
                                   0, 0, 1, 1, False, False)
                        selected_size = 3 * height * width
                        temp_buffer = temp_buffer.reshape(-1)[:selected_size]
                        temp_buffer = temp_buffer.reshape(height, width, 3)
                    else:
                        temp_buffer = image_data.reshape(height, width, 3)
                    sseed = sample_seed_c(key, dst_ix, salt)
                    i, j, h, w = crop_c(np.int64(height), np.int64(width), s0, s1, r0, r1, sseed)
                    resize_crop_c(temp_buffer, i, i + h, j, j + w, destination[dst_ix])
                return destination[:len(batch_indices)]

            decode.is_parallel = True
            return decode

    class SeededRandomHorizontalFlip(Operation):
        """RandomHorizontalFlip drawing from (seed, batch, position)."""

        def __init__(self, seed: int, flip_prob: float = 0.5):
            super().__init__()
            self.seed = int(seed)
            self.flip_prob = float(flip_prob)

        def generate_code(self):
            my_range = Compiler.get_iterator()
            batch_key_c, _, _, flip_draw_c, _ = _compiled_draws()
            base = np.int64(self.seed & 0xFFFFFFFF)
            p = self.flip_prob

            def flip(images, dst, indices):
                key = batch_key_c(base, indices)
                for i in my_range(images.shape[0]):
                    if flip_draw_c(key, i) < p:
                        dst[i] = images[i, :, ::-1]
                    else:
                        dst[i] = images[i]
                return dst

            flip.is_parallel = True
            flip.with_indices = True
            return flip

        def declare_state_and_memory(self, previous_state):
            return (replace(previous_state, jit_mode=True),
                    AllocationQuery(previous_state.shape, previous_state.dtype))

    return SeededRandomResizedCropRGBImageDecoder, SeededRandomHorizontalFlip


class _FFCVBatches(_Batches):
    backend = "ffcv"

    def __init__(self, loader, decoder, device, channels_last, resolution, num_threads):
        super().__init__(device, channels_last, resolution)
        self.loader = loader
        self.decoder = decoder
        self.num_threads = num_threads

    def __len__(self):
        return len(self.loader)

    def __iter__(self):
        import torch

        torch_threads = torch.get_num_threads()
        self.decoder.output_size = (self.resolution, self.resolution)
        self.loader.next_epoch = self.epoch
        try:
            # ffcv's Loader sets torch's thread count to its own worker count: undo that.
            iterator = iter(self.loader)
            torch.set_num_threads(torch_threads)
            for images, labels in iterator:
                yield self._finish(images, labels)
        finally:
            torch.set_num_threads(torch_threads)


def _ffcv_loader(beton_path, indices, batch_size, num_workers, order, seed, distributed,
                 os_cache, drop_last, pipelines):
    import torch
    from ffcv.loader import OrderOption

    Loader = _safe_loader_class()

    orders = {"random": OrderOption.RANDOM, "quasi_random": OrderOption.QUASI_RANDOM,
              "sequential": OrderOption.SEQUENTIAL}
    if order not in orders:
        raise ValueError(f"order must be one of {ORDERS}, not {order!r}")
    if not Path(beton_path).is_file():
        raise FileNotFoundError(f"beton not found: {beton_path}")
    torch_threads = torch.get_num_threads()
    try:
        return Loader(str(beton_path), batch_size=int(batch_size),
                      num_workers=_numba_threads(num_workers), order=orders[order],
                      os_cache=bool(os_cache), distributed=bool(distributed), seed=int(seed),
                      indices=None if indices is None else np.asarray(indices, dtype=np.int64),
                      drop_last=drop_last, pipelines=pipelines)
    finally:
        torch.set_num_threads(torch_threads)


def create_ffcv_train_loader(beton_path, indices, batch_size, resolution, num_workers, seed,
                             device, distributed=False, order="random", os_cache=True,
                             channels_last=True) -> _Batches:
    """ffcv-imagenet's training pipeline (random-resized crop, flip), drop_last=True."""
    _require_ffcv()
    from ffcv.fields.basics import IntDecoder
    from ffcv.transforms import Squeeze, ToDevice, ToTensor, ToTorchImage

    Decoder, Flip = _ffcv_ops()
    dev = _device(device)
    decoder = Decoder((int(resolution), int(resolution)), seed=seed)
    pipelines = {
        "image": [decoder, Flip(seed=seed), ToTensor(), ToDevice(dev, non_blocking=True),
                  ToTorchImage(channels_last=channels_last)],
        "label": [IntDecoder(), ToTensor(), Squeeze(), ToDevice(dev, non_blocking=True)],
    }
    loader = _ffcv_loader(beton_path, indices, batch_size, num_workers, order, seed,
                          distributed, os_cache, True, pipelines)
    return _FFCVBatches(loader, decoder, dev, channels_last, resolution,
                        _numba_threads(num_workers))


def create_ffcv_val_loader(beton_path, batch_size, resolution, num_workers, device,
                           crop_ratio=224 / 256, channels_last=True, indices=None) -> _Batches:
    """Centre crop (side = crop_ratio x shorter side) resized to `resolution`, sequential."""
    _require_ffcv()
    from ffcv.fields.basics import IntDecoder
    from ffcv.fields.rgb_image import CenterCropRGBImageDecoder
    from ffcv.transforms import Squeeze, ToDevice, ToTensor, ToTorchImage

    dev = _device(device)
    decoder = CenterCropRGBImageDecoder((int(resolution), int(resolution)), ratio=crop_ratio)
    pipelines = {
        "image": [decoder, ToTensor(), ToDevice(dev, non_blocking=True),
                  ToTorchImage(channels_last=channels_last)],
        "label": [IntDecoder(), ToTensor(), Squeeze(), ToDevice(dev, non_blocking=True)],
    }
    loader = _ffcv_loader(beton_path, indices, batch_size, num_workers, "sequential", 0,
                          False, True, False, pipelines)
    return _FFCVBatches(loader, decoder, dev, channels_last, resolution,
                        _numba_threads(num_workers))


# ----------------------------------------------------------------------------------------
# Plain PyTorch backend (same geometry as the beton: images first shrunk so that their longer
# side is at most max_resolution, as RGBImageField(max_resolution) does when writing)
# ----------------------------------------------------------------------------------------

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

        path = self.paths[row]
        try:
            with Image.open(path) as im:
                im = im.convert("RGB")
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
            i, j, h, w = _random_crop_box(height, width, self.scale[0], self.scale[1],
                                          self.ratio[0], self.ratio[1], crop_seed)
        else:
            i, j, h, w = _center_crop_box(height, width, self.crop_ratio)
        i, j, h, w = int(i), int(j), int(h), int(w)
        im = im.resize((self.resolution, self.resolution), Image.BILINEAR,
                       box=(j, i, j + w, i + h))
        if flip:
            im = im.transpose(Image.FLIP_LEFT_RIGHT)
        return torch.from_numpy(np.array(im, dtype=np.uint8)), int(self.labels[row])


class _PlainBatches(_Batches):
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

    def __len__(self):
        n = len(epoch_order(self.indices, self.seed, 0, self.order, self.distributed))
        return n // self.batch_size if self.drop_last else -(-n // self.batch_size)

    def _batches(self):
        ids = self._epoch_ids()
        base = self.seed & 0xFFFFFFFF
        for start in range(0, len(ids), self.batch_size):
            batch = ids[start:start + self.batch_size]
            if not self.dataset.train:
                yield [int(r) for r in batch]
                continue
            key = _batch_key(base, batch)
            yield [(int(r), _sample_seed(key, p, _SALT_CROP), _flip_draw(key, p) < 0.5)
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


def _read_manifest(manifest_path):
    return _manifest_columns(read_csv(manifest_path))


def create_plain_train_loader(manifest_path, indices, batch_size, resolution, num_workers,
                              seed, device, distributed=False, order="random", os_cache=True,
                              channels_last=True, max_resolution=256) -> _Batches:
    """torchvision equivalent of create_ffcv_train_loader, reading the manifest's files."""
    del os_cache  # FFCV-only
    if order not in ORDERS:
        raise ValueError(f"order must be one of {ORDERS}, not {order!r}")
    paths, labels = _read_manifest(manifest_path)
    if indices is None:
        indices = np.arange(len(paths))
    dataset = _ManifestDataset(paths, labels, True, resolution, 1.0, max_resolution)
    return _PlainBatches(dataset, indices, batch_size, num_workers, seed, device,
                         channels_last, resolution, order, distributed, drop_last=True)


def create_plain_val_loader(manifest_path, batch_size, resolution, num_workers, device,
                            crop_ratio=224 / 256, channels_last=True, indices=None,
                            max_resolution=256) -> _Batches:
    """torchvision equivalent of create_ffcv_val_loader."""
    paths, labels = _read_manifest(manifest_path)
    if indices is None:
        indices = np.arange(len(paths))
    dataset = _ManifestDataset(paths, labels, False, resolution, crop_ratio, max_resolution)
    return _PlainBatches(dataset, indices, batch_size, num_workers, 0, device, channels_last,
                         resolution, "sequential", False, drop_last=False)


# ----------------------------------------------------------------------------------------
# Backend choice
# ----------------------------------------------------------------------------------------

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
                        os_cache=True, channels_last=True, backend="auto") -> _Batches:
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
                      crop_ratio=224 / 256, channels_last=True, backend="auto") -> _Batches:
    """Validation batches (centre crop, sequential, every image) from the beton or manifest."""
    if choose_backend(beton_path, manifest_path, backend) == "ffcv":
        return create_ffcv_val_loader(beton_path, batch_size, resolution, num_workers, device,
                                      crop_ratio, channels_last)
    return create_plain_val_loader(manifest_path, batch_size, resolution, num_workers, device,
                                   crop_ratio, channels_last)


def num_rows(beton_path=None, manifest_path=None) -> int:
    """Number of rows of a beton (preferred) or manifest."""
    if beton_path is not None and ffcv_available() and Path(beton_path).is_file():
        from ffcv.reader import Reader

        return int(Reader(str(beton_path)).num_samples)
    return len(read_csv(manifest_path))


__all__ = [
    "IMAGENET_MEAN", "IMAGENET_STD", "ffcv_available", "write_beton", "beton_labels",
    "epoch_order", "choose_backend", "create_train_loader", "create_val_loader",
    "create_ffcv_train_loader", "create_ffcv_val_loader", "create_plain_train_loader",
    "create_plain_val_loader", "num_rows",
]

