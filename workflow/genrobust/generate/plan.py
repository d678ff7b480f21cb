"""The plan: which images a generated dataset holds, which of them a shard owns, and their seeds."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Mapping

import pandas as pd

from .. import io
from ..datasets import check_table_classes
from ..kinds import STRATEGIES
from ..seeding import derive_seed
from .spec import StrategySpec


class GenerationError(Exception):
    """A problem the user must fix (bad model path, unknown pipeline or scheduler class)."""


@dataclass(frozen=True)
class ImageSpec:
    id: str
    wnid: str
    k: int
    seed: int  # attempt 0; attempt a uses derive_seed(seed, "retry", a)
    source: str = ""  # the real image it is conditioned on (image-conditioned kinds)


def plan_images(strategy: str, split: str, wnids: list[str], per_class: int, global_seed: int,
                positions: Iterable[int] | None = None, seeds_from: str | None = None) -> list[ImageSpec]:
    """The images of one generated dataset, class-major in sorted wnid order (only those at
    `positions` of that order when given, so a shard never builds the whole 1.3M-image plan),
    seeded as strategy `seeds_from` (default: its own) seeds them."""
    wnids = sorted(wnids)
    seeded_as = seeds_from or strategy
    specs = []
    for position in range(len(wnids) * per_class) if positions is None else positions:
        wnid, k = wnids[position // per_class], position % per_class
        specs.append(ImageSpec(id=f"{strategy}-{split}-{wnid}-{k:05d}", wnid=wnid, k=k,
                               seed=derive_seed(global_seed, seeded_as, split, wnid, k)))
    return specs


def plan_from_sources(strategy: str, split: str, real_index: pd.DataFrame, per_real: int,
                      global_seed: int, seeds_from: str | None = None) -> list[ImageSpec]:
    """`per_real` images per real image of the index (path, wnid), in index order."""
    seeded_as = seeds_from or strategy
    specs = []
    for path, wnid in zip(real_index["path"], real_index["wnid"]):
        stem = Path(path).stem
        for j in range(per_real):
            specs.append(ImageSpec(
                id=f"{strategy}-{split}-{wnid}-{stem}-{j}", wnid=wnid, k=j, source=str(path),
                seed=derive_seed(global_seed, seeded_as, split, wnid, stem, j)))
    return specs


def shard_range(n_images: int, n_shards: int, shard: int) -> range:
    if not 0 <= shard < n_shards:
        raise ValueError(f"shard {shard} is outside 0..{n_shards - 1}")
    return range(shard * n_images // n_shards, (shard + 1) * n_images // n_shards)


def retry_seed(seed: int, attempt: int) -> int:
    return seed if attempt == 0 else derive_seed(seed, "retry", attempt)


def plan_shard(kind: str, strategy: str, split: str, spec: StrategySpec | Mapping[str, Any], wnids: list[str],
               n_shards: int, shard: int, global_seed: int, real_index: str | None) -> list[ImageSpec]:
    """This shard's images: per class for class-conditioned kinds, per real image otherwise."""
    if not isinstance(spec, StrategySpec):
        spec = StrategySpec.from_dict({"kind": kind, **spec})
    if STRATEGIES[kind].class_conditioned:
        if spec.per_class is None:
            raise GenerationError(f"strategy {strategy} ({kind}) needs per_class for the {split} split")
        n_images = len(wnids) * spec.per_class
        return plan_images(strategy, split, wnids, spec.per_class, global_seed,
                           shard_range(n_images, n_shards, shard), spec.seeds_from)
    if real_index is None:
        raise GenerationError(f"strategy {strategy} ({kind}) needs the real {split} index")
    sources = io.read_csv(real_index)
    check_table_classes(sources, wnids, real_index)
    if spec.sources_per_class:  # a smaller study: the first N real images of each class
        sources = sources.groupby("wnid", sort=False).head(spec.sources_per_class)
    per_real = spec.images_per_real
    mine = shard_range(len(sources) * per_real, n_shards, shard)
    # Only this shard's source rows (whole sources: a shard boundary falls between images of one source
    # only when images_per_real > 1, and then plan_from_sources is sliced below).
    first, last = mine.start // per_real, -(-mine.stop // per_real)
    items = plan_from_sources(strategy, split, sources.iloc[first:last], per_real, global_seed, spec.seeds_from)
    return items[mine.start - first * per_real: mine.stop - first * per_real]
