"""Seeded random streams shared by DeepAugment and PixMix: no global RNG is touched."""

from __future__ import annotations

import numpy as np
import torch

# Stream tags mixed into the seed, so that the same integer seed gives unrelated streams in
# DeepAugment and in PixMix.
TAG_DEEPAUGMENT = 0x44454550  # "DEEP"
TAG_PIXMIX = 0x5049584D  # "PIXM"


def streams(seed: int, tag: int, n: int) -> list[np.random.Generator]:
    """`n` independent numpy Generators from (seed, tag)."""
    seed = int(seed)
    if seed < 0:
        raise ValueError(f"seeds must be non-negative integers, got {seed}")
    return [np.random.default_rng(s) for s in np.random.SeedSequence([seed, tag]).spawn(n)]


def torch_generator(rng: np.random.Generator) -> torch.Generator:
    """A CPU torch.Generator seeded from `rng` (random tensors are drawn on CPU and moved to the
    device, so a seed gives the same draws on every device)."""
    return torch.Generator().manual_seed(int(rng.integers(2**63)))


def rand(shape, gen: torch.Generator, like: torch.Tensor) -> torch.Tensor:
    """torch.rand_like(like) drawn from `gen`, with `shape`."""
    return torch.rand(tuple(shape), generator=gen).to(device=like.device, dtype=like.dtype)
