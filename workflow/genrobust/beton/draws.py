"""The epoch order and the augmentation draws, the single source both backends read.

Draws are plain Python functions with only int64-safe arithmetic: FFCV's decoder compiles them
with numba, the plain loader calls them as they are, and both give the same numbers. Every
product is < 2**63 (32-bit value x 31-bit constant), so int64 numpy scalars, numba int64 and
Python ints agree.
"""

from __future__ import annotations

import math

import numpy as np

DEFAULT_SCALE = (0.08, 1.0)
DEFAULT_RATIO = (3 / 4, 4 / 3)
ORDERS = ("random", "quasi_random", "sequential")

SALT_CROP = 0x1234567
SALT_FLIP = 0x7654321


def build_draws(jit):
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
        return sample_seed(key, pos, SALT_FLIP) / 4294967296.0

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


# The uncompiled draws, as the plain loader calls them.
batch_key, sample_seed, uniforms, flip_draw, random_crop_box = build_draws(lambda f: f)


def center_crop_box(height, width, ratio):
    """FFCV's CenterCropRGBImageDecoder box: a square of int(ratio * shorter side)."""
    s = min(height, width)
    c = int(ratio * s)
    return (height - c) // 2, (width - c) // 2, c, c


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
