"""Training sources and mixtures: one beton per source, a mixture as rows of each source.

A source is the real train set ('real') or one generated strategy; each is written once into
its own FFCV beton (`write_source`), so adding a strategy to a study writes one more beton and
touches nothing already trained. A mixture (config.parse_mixture) selects, per source, the first
n rows of a fixed seeded permutation of that source's rows, where n is a percentage of the real
train set size (the paper's "100% = 130K"), or a share of a fixed total. So mixtures are
deterministic, exact in size, and nested: the 25% subset lies inside the 50% one, which keeps
comparisons across the mixture grid free of extra sampling noise. Training reads the sources of
a mixture side by side (beton.create_mixture_loader), each batch in the mixture's proportions.
"""

from __future__ import annotations

import sys

import numpy as np
import pandas as pd

from . import io
from .config import ConfigError, parse_mixture
from .seeding import derive_seed

SOURCE_COLUMNS = ["path", "label", "wnid", "source"]
MIXTURE_COLUMNS = ["source", "index"]


def label_rows(frame: pd.DataFrame, class_wnids: list[str], what: str) -> pd.Series:
    from .datasets import check_table_classes

    check_table_classes(frame, class_wnids, what)
    return frame["wnid"].map({w: i for i, w in enumerate(class_wnids)}).astype(int)


def source_rows(table: str, source: str, class_wnids: list[str]) -> pd.DataFrame:
    """The rows of one source's beton: a real index (paths as indexed) or a generated manifest
    (paths relative to its folder), labelled by position in the class list."""
    frame = io.read_csv(table)
    paths = frame["path"] if source == "real" else io.resolve_manifest_paths(frame, table)
    return pd.DataFrame({"path": paths, "label": label_rows(frame, class_wnids, table),
                         "wnid": frame["wnid"], "source": source})[SOURCE_COLUMNS]


def write_source(table: str, source: str, classes: str, out_manifest: str, out_beton: str, options: dict,
                 threads: int) -> pd.DataFrame:
    """The convert stage of one source (or of the val set): its manifest and its beton."""
    from .beton import write_beton
    from .datasets import load_class_list

    rows = source_rows(table, source, load_class_list(classes))
    io.write_csv(out_manifest, rows)
    print(f"[beton] {source}: {len(rows)} images -> {out_beton}", file=sys.stderr)
    write_beton(rows, out_beton, num_workers=threads, **options)
    return rows


def mixture_counts(mix: str, available: dict[str, int]) -> dict[str, int]:
    """Images per source for mixture `mix`, checked against the rows each source has
    (`available`: source -> rows; 'real' must be there, it is the unit of the percentages)."""
    mixture = parse_mixture(mix)
    n_real = available["real"]
    counts = {}
    for source, percent in mixture.terms:
        base = mixture.total if mixture.total is not None else n_real
        n = int(round(base * percent / 100))
        have = available.get(source, 0)
        if n > have:
            raise ConfigError(
                f"mixture '{mix}' needs {n} {source} images but the source has {have}: "
                + ("generate more (datasets.*.generate.<strategy>.train_per_class)" if source != "real"
                   else "the real train set is smaller than the fixed total"))
        counts[source] = n
    return counts


def sample_mixture(available: dict[str, int], mix: str, seed: int,
                   draws: dict[str, str] | None = None) -> dict[str, np.ndarray]:
    """Sorted row indices per source of mixture `mix` (deterministic, exact size, nested across
    percentages: each source's rows come from one fixed seeded permutation of that source, keyed
    by its name or by the name `draws` gives it)."""
    chosen = {}
    for source, n in mixture_counts(mix, available).items():
        key = (draws or {}).get(source, source)
        order = np.random.default_rng(derive_seed(seed, "mixture", key)).permutation(available[source])
        chosen[source] = np.sort(order[:n])
    return chosen


def write_mixture(tables: dict[str, str], mix: str, seed: int, out: str,
                  draws: dict[str, str] | None = None) -> dict[str, np.ndarray]:
    """The rows of one training mixture as a CSV (source, index), from the row counts of the
    real index and of each generated source's manifest (`tables`: source -> CSV)."""
    available = {source: io.count_rows(table) for source, table in tables.items()}
    chosen = sample_mixture(available, mix, seed, draws)
    frame = pd.concat([pd.DataFrame({"source": s, "index": rows}) for s, rows in chosen.items()],
                      ignore_index=True)
    io.write_csv(out, frame[MIXTURE_COLUMNS])
    print(f"[mixture] {mix}: {len(frame)} images {({s: len(r) for s, r in chosen.items()})}", file=sys.stderr)
    return chosen


def read_mixture(path: str) -> dict[str, np.ndarray]:
    """Row indices per source, as write_mixture wrote them (sources in the file's order)."""
    frame = io.read_csv(path)
    return {str(s): rows["index"].to_numpy(dtype=np.int64) for s, rows in frame.groupby("source", sort=False)}
