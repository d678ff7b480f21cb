"""The FFCV backend: ffcv's Loader, patched to fail loudly, with seeded augmentation ops.

ffcv is optional: nothing here imports it at module level, and every class built on ffcv's
is defined lazily (once per process) by a cached factory.
"""

from __future__ import annotations

import contextlib
import functools
from pathlib import Path

import numpy as np

from genrobust.beton.batches import Batches, resolve_device
from genrobust.beton.draws import DEFAULT_RATIO, DEFAULT_SCALE, ORDERS, SALT_CROP, build_draws


@functools.lru_cache(maxsize=None)
def ffcv_available() -> bool:
    """True when ffcv (and its compiled extension) imports.

    Importing ffcv calls torch.set_num_threads(1) (ffcv.pipeline.compiler does it at import
    time); the thread count is put back here, so always import ffcv through this function first.
    """
    import torch

    threads = torch.get_num_threads()
    try:
        with _plain_dict_for_ffcv_mode_table():
            import ffcv.fields  # noqa: F401
            import ffcv.loader  # noqa: F401
            import ffcv.writer  # noqa: F401
    except Exception:  # ImportError, or a broken libffcv / opencv build
        return False
    finally:
        torch.set_num_threads(threads)
    return True


@contextlib.contextmanager
def _plain_dict_for_ffcv_mode_table():
    """ffcv.fields.rgb_image builds its two-entry table IMAGE_MODES as a numba typed Dict at
    import, which JIT-compiles the typed-dict machinery: ~4 s of CPU in every process that
    imports ffcv (each training, evaluation and beton job). The table is only ever read from
    Python (in generate_code and the writer's encode), so a plain dict serves; numba.typed.Dict
    is itself again once ffcv's modules are imported."""
    try:
        import numba.typed
    except ImportError:  # no numba: ffcv's import fails on its own, with its own message
        yield
        return
    shadowed = vars(numba.typed).get("Dict")
    numba.typed.Dict = dict
    try:
        yield
    finally:
        if shadowed is None:
            del numba.typed.Dict  # served again by numba.typed's lazy __getattr__
        else:
            numba.typed.Dict = shadowed


def require_ffcv() -> None:
    if not ffcv_available():
        raise RuntimeError("ffcv is not installed (or does not import); use the plain loaders "
                           "on the manifest instead")


def _numba_threads(num_workers: int) -> int:
    import numba

    return max(1, min(int(num_workers or 1), numba.config.NUMBA_NUM_THREADS))


@functools.lru_cache(maxsize=None)
def _compiled_draws():
    """numba versions of the draw functions, compiled once per process."""
    from ffcv.pipeline.compiler import Compiler

    return build_draws(Compiler.compile)


# ----------------------------------------------------------------------------------------
# Patched ffcv internals
# ----------------------------------------------------------------------------------------

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
            limit = getattr(self, "batch_limit", None)  # set by _FFCVBatches (mixtures)
            batches = len(self) if limit is None else min(len(self), limit)
            selected_order = order[:batches * self.batch_size]
            self.next_epoch += 1
            if self.code is None or self.recompile:
                self.generate_code()
            return SafeEpochIterator(self, selected_order)

    return SafeLoader


@functools.lru_cache(maxsize=None)
def _seeded_crop_decoder_class():
    """RandomResizedCropRGBImageDecoder with crop boxes drawn from (seed, batch, position)."""
    from ffcv.fields.rgb_image import IMAGE_MODES, RandomResizedCropRGBImageDecoder
    from ffcv.libffcv import imdecode, resize_crop
    from ffcv.pipeline.compiler import Compiler

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
            salt = np.int64(SALT_CROP)
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

    return SeededRandomResizedCropRGBImageDecoder


@functools.lru_cache(maxsize=None)
def _seeded_flip_class():
    """RandomHorizontalFlip with flips drawn from (seed, batch, position)."""
    from dataclasses import replace

    from ffcv.pipeline.allocation_query import AllocationQuery
    from ffcv.pipeline.compiler import Compiler
    from ffcv.pipeline.operation import Operation

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

    return SeededRandomHorizontalFlip


# ----------------------------------------------------------------------------------------
# Loaders
# ----------------------------------------------------------------------------------------

class _FFCVBatches(Batches):
    backend = "ffcv"

    def __init__(self, loader, decoder, device, channels_last, resolution, num_threads):
        super().__init__(device, channels_last, resolution)
        self.loader = loader
        self.decoder = decoder
        self.num_threads = num_threads

    def batches_per_epoch(self):
        return len(self.loader)

    def __iter__(self):
        import torch

        torch_threads = torch.get_num_threads()
        self.decoder.output_size = (self.resolution, self.resolution)
        self.loader.next_epoch = self.epoch
        self.loader.batch_limit = self.max_batches
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


def _label_pipeline(dev):
    from ffcv.fields.basics import IntDecoder
    from ffcv.transforms import Squeeze, ToDevice, ToTensor

    return [IntDecoder(), ToTensor(), Squeeze(), ToDevice(dev, non_blocking=True)]


def create_ffcv_train_loader(beton_path, indices, batch_size, resolution, num_workers, seed,
                             device, distributed=False, order="random", os_cache=True,
                             channels_last=True) -> Batches:
    """ffcv-imagenet's training pipeline (random-resized crop, flip), drop_last=True."""
    require_ffcv()
    from ffcv.transforms import ToDevice, ToTensor, ToTorchImage

    Decoder, Flip = _seeded_crop_decoder_class(), _seeded_flip_class()
    dev = resolve_device(device)
    decoder = Decoder((int(resolution), int(resolution)), seed=seed)
    pipelines = {
        "image": [decoder, Flip(seed=seed), ToTensor(), ToDevice(dev, non_blocking=True),
                  ToTorchImage(channels_last=channels_last)],
        "label": _label_pipeline(dev),
    }
    loader = _ffcv_loader(beton_path, indices, batch_size, num_workers, order, seed,
                          distributed, os_cache, True, pipelines)
    return _FFCVBatches(loader, decoder, dev, channels_last, resolution,
                        _numba_threads(num_workers))


def create_ffcv_val_loader(beton_path, batch_size, resolution, num_workers, device,
                           crop_ratio=224 / 256, channels_last=True, indices=None) -> Batches:
    """Centre crop (side = crop_ratio x shorter side) resized to `resolution`, sequential."""
    require_ffcv()
    from ffcv.fields.rgb_image import CenterCropRGBImageDecoder
    from ffcv.transforms import ToDevice, ToTensor, ToTorchImage

    dev = resolve_device(device)
    decoder = CenterCropRGBImageDecoder((int(resolution), int(resolution)), ratio=crop_ratio)
    pipelines = {
        "image": [decoder, ToTensor(), ToDevice(dev, non_blocking=True),
                  ToTorchImage(channels_last=channels_last)],
        "label": _label_pipeline(dev),
    }
    loader = _ffcv_loader(beton_path, indices, batch_size, num_workers, "sequential", 0,
                          False, True, False, pipelines)
    return _FFCVBatches(loader, decoder, dev, channels_last, resolution,
                        _numba_threads(num_workers))
