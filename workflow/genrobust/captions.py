"""Captions from a user's file, as generation prompts: the prompts of SynCLR (Tian et al. 2024),
Real-Fake (Yuan et al. 2024) and the LLM-prompt family of "Fake it till you make it".

Two forms, both CSV files with a header line:

- per class (`wnid,caption`): many captions per class, e.g. scene descriptions an LLM wrote; a
  class_labels strategy draws one per image from its seed (`captions:` of a class_labels strategy);
- per real image (`path,caption`): a caption of every real train image from a captioning model
  (BLIP-2) or an LLM; a `captions` strategy renders text-to-image from each. `path` is the image's
  path relative to the train folder (`<wnid>/<file>`; a longer path is matched on those last two
  parts), or a bare file name where no other row has that file name.

A per-image file for ImageNet-1K holds 1.28M rows: a shard reads it once, in chunks of the two
columns it needs, and keeps only the rows of its own images.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Iterable, Sequence

import numpy as np
import pandas as pd

CLASS_COLUMNS = ("wnid", "caption")
IMAGE_COLUMNS = ("path", "caption")
CHUNK_ROWS = 200_000  # rows of a per-image file read at once (of 1.28M for ImageNet-1K)


def _reader(path: str | os.PathLike, columns: Sequence[str], chunksize: int | None = None):
    """pandas' reader of the file's `columns` as strings (an empty cell is ''), after checking them."""
    check_columns(path, columns)
    try:
        return pd.read_csv(path, usecols=list(columns), dtype=str, keep_default_na=False, chunksize=chunksize)
    except UnicodeDecodeError:
        raise ValueError(_not_utf8(path)) from None


def _not_utf8(path: str | os.PathLike) -> str:
    """Where a captions file stops being UTF-8 (pandas says only that a byte failed)."""
    with open(path, "rb") as f:
        for number, line in enumerate(f, 1):
            try:
                line.decode("utf-8")
            except UnicodeDecodeError as err:
                return (f"captions file {path}, line {number}: byte {line[err.start:err.start + 1]!r} is not UTF-8 "
                        f"({err.reason}); save the file as UTF-8")
    return f"captions file {path} is not UTF-8; save it as UTF-8"


def check_columns(path: str | os.PathLike, columns: Sequence[str]) -> None:
    """The file exists and its header names `columns`; a ValueError naming the file otherwise."""
    if not Path(path).is_file():
        raise ValueError(f"captions file {path} does not exist")
    try:
        header = list(pd.read_csv(path, nrows=0).columns)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as err:
        raise ValueError(f"captions file {path} is not a CSV file with a header line ({err})") from None
    missing = [c for c in columns if c not in header]
    if missing:
        raise ValueError(f"captions file {path} has no column {', '.join(missing)} (it has "
                         f"{', '.join(header) or 'none'}); give a header line '{','.join(columns)}'")


def digest(value) -> str:
    """sha256 of a JSON value: what a shard's images depend on, in its settings."""
    return hashlib.sha256(json.dumps(value, sort_keys=True, ensure_ascii=False).encode()).hexdigest()


# ----------------------------------------------------------------------------- per class


def read_class_captions(path: str | os.PathLike, wnids: Iterable[str]) -> dict[str, list[str]]:
    """wnid -> its captions in file order, for every class of `wnids`; a ValueError naming the
    file when a caption is empty or a class has none."""
    from .datasets import imagenet_wnids

    frame = _reader(path, CLASS_COLUMNS)
    frame = frame.assign(wnid=frame["wnid"].str.strip(), caption=frame["caption"].str.strip())
    empty = frame.index[frame["caption"] == ""]
    if len(empty):
        raise ValueError(f"captions file {path}: line {empty[0] + 2} has an empty caption")
    unknown = frame.index[~frame["wnid"].isin(set(imagenet_wnids()))]
    if len(unknown):
        raise ValueError(f"captions file {path}: line {unknown[0] + 2} names {frame['wnid'].iat[unknown[0]]!r}, "
                         f"which is not an ImageNet wnid ({len(unknown)} such rows)")
    repeated = frame.index[frame.duplicated(["wnid", "caption"])]
    if len(repeated):  # a repeated caption would be drawn twice as often as its class's others
        first = frame.index[(frame["wnid"] == frame["wnid"].iat[repeated[0]])
                            & (frame["caption"] == frame["caption"].iat[repeated[0]])][0]
        raise ValueError(f"captions file {path}: line {repeated[0] + 2} repeats line {first + 2}; keep one of them")
    wnids = sorted(set(wnids))
    by_class = {w: list(c) for w, c in frame.groupby("wnid", sort=False)["caption"]}
    missing = [w for w in wnids if w not in by_class]
    if missing:
        raise ValueError(f"captions file {path} has no caption for {len(missing)} of the {len(wnids)} classes "
                         f"({', '.join(missing[:5])}{'...' if len(missing) > 5 else ''}); add 'wnid,caption' rows")
    return {w: by_class[w] for w in wnids}


def choose_caption(captions: Sequence[str], seed: int) -> int:
    """Index of one image's caption among its class's, reproducibly from the image's seed."""
    return int(np.random.default_rng(seed).integers(len(captions)))


# ----------------------------------------------------------------------------- per real image


def image_key(path: str) -> str:
    """A real train image's path relative to the train folder (<wnid>/<file>): its last two parts."""
    parts = [p for p in str(path).replace("\\", "/").split("/") if p not in ("", ".")]
    return "/".join(parts[-2:])


def read_image_captions(path: str | os.PathLike, sources: Iterable[str]) -> dict[str, tuple[str, str]]:
    """source -> (its caption, the row's path that matched), for every real image of `sources` (full
    paths, as in the real index). Reads only rows whose file name is one of the sources'. A
    ValueError names the file, how many images have no caption and the first of them."""
    sources = list(dict.fromkeys(sources))
    names = {Path(s).name for s in sources}
    kept = []
    try:
        for chunk in _reader(path, IMAGE_COLUMNS, chunksize=CHUNK_ROWS):
            name = chunk["path"].str.replace("\\", "/", regex=False).str.rsplit("/", n=1).str[-1].str.strip()
            kept.append(chunk.assign(name=name)[name.isin(names)])
    except UnicodeDecodeError:
        raise ValueError(_not_utf8(path)) from None
    rows = pd.concat(kept, ignore_index=True) if kept else pd.DataFrame(columns=[*IMAGE_COLUMNS, "name"])
    rows["key"] = [image_key(p.strip()) for p in rows["path"]]
    rows["caption"] = rows["caption"].str.strip()
    name_count = rows["name"].value_counts()  # a bare name is a match only where no other row has it
    by_key: dict[str, str] = {}
    for key, caption in zip(rows["key"], rows["caption"]):
        if by_key.setdefault(key, caption) != caption:
            raise ValueError(f"captions file {path} gives {key} two different captions; keep one row per image")
    found, missing = {}, []
    for source in sources:
        key, name = image_key(source), Path(source).name
        if key in by_key:
            found[source] = (by_key[key], key)
        elif name in by_key and name_count[name] == 1:
            found[source] = (by_key[name], name)
        else:
            missing.append(key)
    empty = [k for k, (caption, _) in found.items() if not caption]
    if missing or empty:
        what = f"no caption for {len(missing)}" if missing else f"an empty caption for {len(empty)}"
        first = missing or [image_key(k) for k in empty]
        raise ValueError(f"captions file {path} has {what} of the {len(sources)} real images it must describe "
                         f"(first: {', '.join(first[:3])}); add 'path,caption' rows, path relative to the train "
                         "folder (<wnid>/<file>), or a bare file name that no other row has")
    return found
