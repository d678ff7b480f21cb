"""A training mixture read from several betons at once: one loader per source, batches joined.

Each source (the real set, a generated set) has its own beton, so a mixture writes no image
twice and a new source never touches the others. Every batch of B images holds b_s images of
source s, with b_s proportional to the source's rows in the mixture (largest-remainder rounding,
at least 1 each), drawn by that source's own loader: its own seeded epoch order and crop/flip
draws, the same on the FFCV and plain backends, so a resumed run sees the same batches. An
epoch ends with the source that runs out first (at most b_s - 1 + the rounding's share of a
batch of any other source is left out, in a different random subset each epoch).
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from genrobust.beton.batches import Batches


def split_batch(batch_size: int, rows: Mapping[str, int]) -> dict[str, int]:
    """Images per batch for each source, proportional to its rows, adding up to batch_size."""
    total = sum(rows.values())
    if total == 0:
        raise ValueError("the mixture has no rows")
    exact = {s: batch_size * n / total for s, n in rows.items()}
    share = {s: int(np.floor(v)) for s, v in exact.items()}
    by_remainder = sorted(exact, key=lambda s: (-(exact[s] - share[s]), list(rows).index(s)))
    for s in by_remainder[:batch_size - sum(share.values())]:
        share[s] += 1
    empty = [s for s, n in share.items() if n == 0 and rows[s] > 0]
    if empty:
        raise ValueError(f"a batch of {batch_size} gives source(s) {empty} no image at their share "
                         f"of the mixture ({dict(rows)} rows): raise recipe.batch_size")
    return share


class MixtureBatches(Batches):
    """Batches of several sources' loaders, side by side: the images and labels of one batch of
    each, concatenated in source order."""

    backend = "mixture"

    def __init__(self, parts: Mapping[str, Batches], shares: Mapping[str, int]):
        first = next(iter(parts.values()))
        self.shares = {name: int(shares[name]) for name in parts}  # images of each source per batch
        super().__init__(first.device, first.channels_last, first.resolution)
        self.parts = dict(parts)
        self.backend = first.backend
        self.max_batches = min(p.batches_per_epoch() for p in self.parts.values())
        for part in self.parts.values():
            part.max_batches = self.max_batches

    def batches_per_epoch(self) -> int:
        return self.max_batches

    def row_ranges(self) -> dict[str, tuple[int, int]]:
        """Each source's rows [start, stop) in every batch (sources are concatenated in order)."""
        ranges, start = {}, 0
        for name, share in self.shares.items():
            ranges[name] = (start, start + share)
            start += share
        return ranges

    def set_epoch(self, epoch: int) -> None:
        super().set_epoch(epoch)
        for part in self.parts.values():
            part.set_epoch(epoch)

    def set_resolution(self, resolution: int) -> None:
        super().set_resolution(resolution)
        for part in self.parts.values():
            part.set_resolution(resolution)

    def __iter__(self):
        import torch

        iterators = [iter(part) for part in self.parts.values()]
        for _ in range(len(self)):
            batches = [next(it) for it in iterators]
            yield torch.cat([b[0] for b in batches]), torch.cat([b[1] for b in batches])
        for it in iterators:  # run each part to its end, so that its loader finishes the epoch
            for _ in it:
                raise RuntimeError("a mixture source yielded more batches than the mixture's epoch")


def create_mixture_loader(sources: Mapping[str, tuple], batch_size: int, resolution: int, num_workers: int,
                          seed: int, device, distributed: bool = False, os_cache: bool = True,
                          channels_last: bool = True, backend: str = "auto",
                          draws: Mapping[str, str] | None = None) -> Batches:
    """Training batches of a mixture. `sources`: name -> (beton, manifest, row indices); each
    source's loader is seeded from (seed, name) (31 bits, as ffcv's ops take), so adding a source leaves the others' draws
    alone; `draws` keys a source by another name (an imported copy of a set draws as the set). A
    single source is its plain training loader."""
    from genrobust.beton.loaders import create_train_loader
    from genrobust.seeding import derive_seed

    shares = split_batch(batch_size, {name: len(rows) for name, (_, _, rows) in sources.items()})
    parts = {
        name: create_train_loader(beton, manifest, rows, shares[name], resolution, num_workers,
                                  derive_seed(seed, "loader", (draws or {}).get(name, name)) & 0x7FFFFFFF, device, distributed=distributed,
                                  order="random", os_cache=os_cache, channels_last=channels_last,
                                  backend=backend)
        for name, (beton, manifest, rows) in sources.items()
    }
    return next(iter(parts.values())) if len(parts) == 1 else MixtureBatches(parts, shares)
