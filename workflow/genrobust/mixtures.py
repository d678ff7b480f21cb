"""The training pool of a dataset, and mixtures as index lists into it.

The pool is the real train set followed by every generated strategy the dataset mixes with, in
a fixed order; its FFCV beton is written once. A mixture (config.parse_mixture) selects, per
source, the first n rows of a fixed seeded permutation of that source's rows, where n is a
percentage of the real train set size (the paper's "100% = 130K"), or a share of a fixed total.
So mixtures are deterministic, exact in size, and nested: the 25% subset lies inside the 50%
one, which keeps comparisons across the mixture grid free of extra sampling noise.
"""

from __future__ import annotations

import sys

import numpy as np
import pandas as pd

from . import io
from .config import ConfigError, parse_mixture
from .seeding import derive_seed

POOL_COLUMNS = ["path", "label", "wnid", "source"]


def label_rows(frame: pd.DataFrame, class_wnids: list[str], what: str) -> pd.Series:
    index = {w: i for i, w in enumerate(class_wnids)}
    unknown = sorted(set(frame["wnid"]) - set(index))
    if unknown:
        raise ConfigError(f"{what} has images of classes outside the dataset's class list: {unknown[:5]}")
    return frame["wnid"].map(index).astype(int)


def build_pool(real_index: str, generated: dict[str, str], class_wnids: list[str]) -> pd.DataFrame:
    """Rows of the training beton: real first, then each generated source in sorted order."""
    parts = []
    real = io.read_csv(real_index)
    parts.append(pd.DataFrame({"path": real["path"], "label": label_rows(real, class_wnids, real_index),
                               "wnid": real["wnid"], "source": "real"}))
    for source in sorted(generated):
        manifest = io.read_csv(generated[source])
        parts.append(pd.DataFrame({"path": io.resolve_manifest_paths(manifest, generated[source]),
                                   "label": label_rows(manifest, class_wnids, generated[source]),
                                   "wnid": manifest["wnid"], "source": source}))
    return pd.concat(parts, ignore_index=True)[POOL_COLUMNS]


def mixture_counts(mix: str, pool: pd.DataFrame) -> dict[str, int]:
    """Images per source for mixture `mix`, checked against what the pool holds."""
    mixture = parse_mixture(mix)
    available = pool["source"].value_counts().to_dict()
    n_real = available.get("real", 0)
    counts = {}
    for source, percent in mixture.terms:
        base = mixture.total if mixture.total is not None else n_real
        n = int(round(base * percent / 100))
        have = available.get(source, 0)
        if n > have:
            raise ConfigError(
                f"mixture '{mix}' needs {n} {source} images but the pool has {have}: "
                + ("generate more (datasets.*.generate.<strategy>.train_per_class)" if source != "real"
                   else "the real train set is smaller than the fixed total"))
        counts[source] = n
    return counts


def sample_mixture(pool: pd.DataFrame, mix: str, seed: int) -> np.ndarray:
    """Sorted pool row indices of mixture `mix` (deterministic, exact size, nested across percentages)."""
    chosen = []
    for source, n in mixture_counts(mix, pool).items():
        rows = np.flatnonzero(pool["source"].to_numpy() == source)
        order = np.random.default_rng(derive_seed(seed, "mixture", source)).permutation(len(rows))
        chosen.append(rows[order[:n]])
    return np.sort(np.concatenate(chosen))


def write_pool(real_index: str, generated: dict[str, str], classes: str, out_manifest: str,
               out_beton: str, options: dict, threads: int) -> pd.DataFrame:
    """The convert stage of a training (or val) set: the pool manifest and its beton."""
    from .beton import write_beton
    from .datasets import load_class_list

    pool = build_pool(real_index, generated, load_class_list(classes))
    io.write_csv(out_manifest, pool)
    print(f"[beton] {len(pool)} images {pool['source'].value_counts().to_dict()} -> {out_beton}", file=sys.stderr)
    write_beton(pool, out_beton, num_workers=threads, **options)
    return pool


def write_mixture(pool_manifest: str, mix: str, seed: int, out: str) -> np.ndarray:
    """The pool rows of one training mixture, as a one-column CSV (`index`)."""
    pool = io.read_csv(pool_manifest)
    indices = sample_mixture(pool, mix, seed)
    io.write_csv(out, pd.DataFrame({"index": indices}))
    print(f"[mixture] {mix}: {len(indices)} images {pool.iloc[indices]['source'].value_counts().to_dict()}",
          file=sys.stderr)
    return indices


def read_mixture(path: str) -> np.ndarray:
    """Pool row indices written by write_mixture."""
    return io.read_csv(path)["index"].to_numpy()

