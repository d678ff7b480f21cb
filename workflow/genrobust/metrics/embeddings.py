"""The one place an image set is embedded: image list -> features file, once per extractor.

An image set is any of the project's tables with a `path` column and its classes: a real index
(`wnid`), a generated manifest (`wnid`, paths relative to the manifest) or a test-set index
(`wnids`, ';'-joined: an ObjectNet image can belong to several ImageNet classes). Its features
are written as three files beside each other, each atomically:

    <base>.npy   features (N, D), float16 by default (halves the disk of a 1.3M-image set;
                 every statistic is computed from them in float64)
    <base>.csv   one row per embedded image, in the order of the features: path, wnids
    <base>.json  provenance: extractor, model, device, versions, counts, time, images/s

Memory stays flat in the set's size: batches stream from a DataLoader into a memory-mapped
.npy. Per-class statistics (FID, diversity, ...) read the rows of one class at a time from that
file, so a table over many classes and test sets embeds each set exactly once. An unreadable
image is left out with a warning (the .json counts it); a set where none can be read is an error.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import json
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from genrobust import io
from genrobust.seeding import derive_seed

FEATURE_DTYPES = ("float16", "float32")
MAX_LISTED_WARNINGS = 10


# ----------------------------------------------------------------------------- image lists


def read_image_set(table: str | Path, generated: bool = False) -> pd.DataFrame:
    """path (usable from the working directory) and wnids (';'-joined) of every image of a table."""
    frame = io.read_csv(table)
    if "path" not in frame.columns or not ({"wnid", "wnids"} & set(frame.columns)):
        raise ValueError(f"{table}: an image set needs a path column and a wnid or wnids column "
                         f"(columns: {list(frame.columns)})")
    paths = io.resolve_manifest_paths(frame, table) if generated else frame["path"].astype(str)
    wnids = frame["wnids"] if "wnids" in frame.columns else frame["wnid"]
    return pd.DataFrame({"path": paths.to_numpy(), "wnids": wnids.astype(str).to_numpy()})


def first_wnid(wnids: pd.Series) -> pd.Series:
    return wnids.str.split(";").str[0]


def cap_per_class(rows: pd.DataFrame, max_per_class: int | None, seed: int, what: str = "") -> pd.DataFrame:
    """At most `max_per_class` rows of each class (by first wnid), a seeded choice per class that
    does not depend on the other classes; the table's order is kept."""
    if not max_per_class:
        return rows
    keep = np.zeros(len(rows), dtype=bool)
    for wnid, positions in rows.groupby(first_wnid(rows["wnids"]), sort=True).indices.items():
        if len(positions) > max_per_class:
            rng = np.random.default_rng(derive_seed(seed, "cap", what, wnid))
            positions = rng.choice(positions, max_per_class, replace=False)
        keep[positions] = True
    return rows.loc[keep].reset_index(drop=True)


class ImageList:
    """Item i: (transformed image, i, error message or ""). An unreadable file gives no image and
    its error instead of raising, so one bad file does not end a long job."""

    def __init__(self, paths, transform, border_crop: int = 0):
        self.paths = [str(p) for p in paths]
        self.transform = transform
        self.border_crop = border_crop

    def __len__(self) -> int:
        return len(self.paths)

    def load(self, path: str):
        from genrobust.images import open_rgb

        image = open_rgb(path)
        b = self.border_crop
        if b:
            w, h = image.size
            image = image.crop((b, b, w - b, h - b))
        return image

    def __getitem__(self, i: int):
        try:
            return self.transform(self.load(self.paths[i])), i, ""
        except Exception as err:  # corrupt, truncated or vanished file: reported, not fatal
            return None, i, f"{type(err).__name__}: {err}"


def batches(paths, transform, batch_size: int, num_workers: int, device, desc: str, border_crop: int = 0):
    """(images on device, row indices, errors) per batch, with a progress bar; failed images are
    dropped from the batch (their errors are returned)."""
    import torch
    from torch.utils.data import DataLoader
    from tqdm import tqdm

    loader = DataLoader(ImageList(paths, transform, border_crop), batch_size=batch_size, shuffle=False,
                        num_workers=num_workers, pin_memory=torch.device(device).type == "cuda",
                        collate_fn=_collate)
    interactive = sys.stderr.isatty()
    for images, rows, errors in tqdm(loader, desc=desc, unit="batch", mininterval=0.5 if interactive else 30,
                                     file=sys.stderr):
        ok = [i for i, e in enumerate(errors) if not e]
        failed = {int(rows[i]): e for i, e in enumerate(errors) if e}
        if ok:
            yield torch.stack([images[i] for i in ok]).to(device, non_blocking=True), rows[ok], failed
        else:
            yield None, rows[:0], failed


def _collate(items):
    images, rows, errors = zip(*items)
    return list(images), np.asarray(rows, dtype=np.int64), list(errors)


# ----------------------------------------------------------------------------- features files


class FeatureFile:
    """The rows of a features .npy, read with explicit file reads instead of a memory map: every
    page a map touches stays resident in the process (Table 2 at ImageNet-1K reached 5.9 GB), a
    read leaves only the arrays its caller keeps. Indexed like the array: a slice, or positions."""

    GAP = 4  # rows between two wanted ones read through rather than with a read of their own

    def __init__(self, path: str | Path):
        self.path = Path(path)
        with open(self.path, "rb") as f:
            version = np.lib.format.read_magic(f)
            shape, fortran, dtype = (np.lib.format.read_array_header_1_0(f) if version == (1, 0)
                                     else np.lib.format.read_array_header_2_0(f))
            self.offset = f.tell()
        if fortran or len(shape) != 2:
            raise ValueError(f"{self.path}: features must be a C-ordered 2-d array, not {shape}")
        self.shape, self.dtype = shape, np.dtype(dtype)
        self.row_bytes = shape[1] * self.dtype.itemsize

    def __len__(self) -> int:
        return self.shape[0]

    def _read(self, fd: int, start: int, stop: int) -> np.ndarray:
        data = os.pread(fd, (stop - start) * self.row_bytes, self.offset + start * self.row_bytes)
        return np.frombuffer(data, dtype=self.dtype).reshape(stop - start, self.shape[1])

    def __getitem__(self, key) -> np.ndarray:
        if isinstance(key, slice):
            start, stop, step = key.indices(len(self))
            if step != 1:
                raise IndexError("features are read in contiguous slices or by positions")
            key = np.arange(start, stop)
        positions = np.asarray(key, dtype=np.int64).reshape(-1)
        if len(positions) and (positions.min() < 0 or positions.max() >= len(self)):
            raise IndexError(f"{self.path}: a position outside its {len(self)} rows")
        order = np.argsort(positions, kind="stable")
        wanted = positions[order]
        breaks = np.flatnonzero(np.diff(wanted) > self.GAP) + 1
        out = np.empty((len(positions), self.shape[1]), dtype=self.dtype)
        with open(self.path, "rb") as f:
            for run in np.split(np.arange(len(wanted)), breaks):
                if len(run):
                    block = self._read(f.fileno(), int(wanted[run[0]]), int(wanted[run[-1]]) + 1)
                    out[order[run]] = block[wanted[run] - wanted[run[0]]]
        return out


@dataclass(frozen=True)
class Features:
    """A features file and its rows; `matrix` reads rows on demand (a class at a time)."""

    base: Path
    rows: pd.DataFrame
    matrix: FeatureFile

    def of(self, positions) -> np.ndarray:
        """float64 features of the given row positions, in ascending order."""
        positions = np.sort(np.asarray(positions, dtype=np.int64))
        return np.asarray(self.matrix[positions], dtype=np.float64)

    def class_rows(self) -> dict[str, np.ndarray]:
        """wnid -> row positions; an image with several wnids (ObjectNet) counts in each."""
        wnids = self.rows["wnids"].astype(str)
        if not wnids.str.contains(";", regex=False).any():  # one class per image: no exploding 1.3M lists
            matrix_rows = self.rows.index.to_numpy(dtype=np.int64)  # a filtered set's rows keep their positions
            return {str(w): matrix_rows[i] for w, i in wnids.groupby(wnids, sort=True).indices.items() if w}
        exploded = wnids.str.split(";").explode()
        exploded = exploded[exploded != ""]
        return {w: np.asarray(idx, dtype=np.int64) for w, idx in exploded.groupby(exploded, sort=True).groups.items()}


def feature_paths(base: str | Path) -> tuple[Path, Path, Path]:
    base = Path(base)
    return base.with_name(base.name + ".npy"), base.with_name(base.name + ".csv"), base.with_name(base.name + ".json")


def load_features(base: str | Path, paths: bool = True) -> Features:
    """A features file and its rows (without their paths, which most statistics never read and
    which are most of the rows' memory, unless `paths`)."""
    npy, csv, _ = feature_paths(base)
    for path in (npy, csv):
        if not path.is_file():
            raise FileNotFoundError(f"features {path} not found (written by `genrobust embed`)")
    rows = io.read_csv(csv) if paths else pd.read_csv(csv, usecols=["wnids"], dtype={"wnids": "category"})
    matrix = FeatureFile(npy)
    if len(rows) != len(matrix):
        raise ValueError(f"{npy} has {len(matrix)} rows but {csv} lists {len(rows)}")
    return Features(Path(base), rows, matrix)


def cache_key(rows: pd.DataFrame, extractor: str, spec: dict) -> str:
    """What makes two embeddings of a set the same: its rows and the extractor's spec."""
    digest = hashlib.sha256()
    digest.update(json.dumps({"extractor": extractor, "spec": spec}, sort_keys=True).encode())
    digest.update(pd.util.hash_pandas_object(rows, index=False).to_numpy().tobytes())
    return digest.hexdigest()


def cached(base: str | Path, key: str) -> bool:
    npy, csv, meta = feature_paths(base)
    if not (npy.is_file() and csv.is_file() and meta.is_file()):
        return False
    try:
        return io.read_json(meta).get("cache_key") == key
    except (ValueError, OSError):
        return False


# Snakemake deletes a job's outputs before it runs, so a group job re-run because one set was
# added (or a batch size changed) would re-embed every set. Each finished set is therefore also
# hard-linked (no copy) into .cache/ beside it, under its cache key; a re-run links it back.
# One entry per set name is kept: `rm -r <folder>/.cache` frees the space of sets no longer used.
def _cache_base(base: str | Path, key: str) -> Path:
    base = Path(str(base))
    return base.parent / ".cache" / f"{base.name}.{key[:20]}"


def _link(source: Path, target: Path) -> None:
    target.unlink(missing_ok=True)
    try:
        os.link(source, target)
    except OSError:  # another file system, or no hard links: a copy
        shutil.copy2(source, target)


def _store_in_cache(base: str | Path, key: str) -> None:
    cache = _cache_base(base, key)
    cache.parent.mkdir(parents=True, exist_ok=True)
    for old in cache.parent.glob(f"{Path(str(base)).name}.*"):
        if not old.name.startswith(cache.name):
            old.unlink()
    for path, suffix in zip(feature_paths(base), (".npy", ".csv", ".json")):
        _link(path, Path(str(cache) + suffix))


def _restore_from_cache(base: str | Path, key: str) -> bool:
    cache = _cache_base(base, key)
    if not cached(cache, key):
        return False
    for path, suffix in zip(feature_paths(base), (".npy", ".csv", ".json")):
        _link(Path(str(cache) + suffix), path)
    return True


def _remove_stale_temporaries(npy: Path) -> None:
    """Temporary features a killed job left beside `npy` (io.atomic_path's .<name>.<random>.npy and
    its compaction's .c): only one job embeds a given set at a time."""
    for stale in [*npy.parent.glob(f".{npy.name}.*.npy"), *npy.parent.glob(f".{npy.name}.*.npy.c")]:
        stale.unlink(missing_ok=True)


def _check_finite(feats: np.ndarray, stored: np.ndarray, paths, positions, desc: str) -> None:
    """NaN/inf features would turn into a scipy error, or NaN statistics, far from their cause."""
    for values, what in ((feats, "the extractor returned"), (stored, "stored as the feature dtype, overflowed to")):
        bad = ~np.isfinite(values).all(axis=1)
        if bad.any():
            names = ", ".join(str(paths[p]) for p in np.asarray(positions)[bad][:3])
            fix = "check the model (its weights, precision)" if values is feats else "set metrics.feature_dtype: float32"
            raise ValueError(f"{desc}: {what} NaN or inf for {int(bad.sum())} images ({names}); {fix}")


def _write_features(extractor, rows: pd.DataFrame, npy: Path, *, batch_size, num_workers, device, precision,
                    dtype, desc, border_crop: int = 0) -> tuple[np.ndarray, dict[int, str]]:
    """Stream the images through the extractor into `npy`; (row positions embedded, errors)."""
    import torch

    from genrobust.scoring import autocast

    done = np.zeros(len(rows), dtype=bool)
    errors: dict[int, str] = {}
    out = None
    with io.atomic_path(npy, suffix=".npy") as tmp, torch.inference_mode():
        for images, positions, failed in batches(rows["path"], extractor.transform, batch_size, num_workers,
                                                 device, desc, border_crop=border_crop):
            errors.update(failed)
            if images is None:
                continue
            with autocast(torch.device(device), precision):
                feats = extractor.embed(images).float().cpu().numpy()
            if out is None:  # the dimension is known from the first batch
                out = np.lib.format.open_memmap(tmp, mode="w+", dtype=dtype, shape=(len(rows), feats.shape[1]))
            with np.errstate(over="ignore"):  # an overflow is reported by _check_finite, with the images
                stored = feats.astype(dtype)
            _check_finite(feats, stored, rows["path"].to_numpy(), positions, desc)
            out[positions] = stored
            done[positions] = True
        if out is None:
            first = next(iter(errors.values()), "no images")
            raise ValueError(f"{desc}: none of the {len(rows)} images could be read; first error: {first}")
        if not done.all():  # compact: the features file holds the embedded rows only
            out.flush()
            kept = np.flatnonzero(done)
            compact = np.lib.format.open_memmap(str(tmp) + ".c", mode="w+", dtype=dtype, shape=(len(kept), out.shape[1]))
            for i in range(0, len(kept), 65536):
                compact[i:i + 65536] = out[kept[i:i + 65536]]
            compact.flush()
            del out, compact
            Path(str(tmp) + ".c").replace(tmp)
        else:
            out.flush()
            del out
    return np.flatnonzero(done), errors


def embed_image_set(table: str | Path, out_base: str | Path, extractor, *, extractor_name: str, spec: dict,
                    generated: bool = False, max_per_class: int | None = None, seed: int = 0,
                    batch_size: int = 64, num_workers: int = 0, device: str = "cpu", precision: str = "fp32",
                    dtype: str = "float16", border_crop: int = 0) -> dict:
    """Embed the images of `table` into <out_base>.npy/.csv/.json; returns the provenance record.
    A set whose cache key (rows and extractor spec) matches an existing output is not re-embedded.
    `extractor` is an Extractor or a zero-argument callable building one (built only on a miss)."""
    if dtype not in FEATURE_DTYPES:
        raise ValueError(f"feature dtype must be one of {FEATURE_DTYPES}, got {dtype!r}")
    rows = cap_per_class(read_image_set(table, generated), max_per_class, seed, str(table))
    what = {k: v for k, v in spec.items() if k != "batch_size"}  # what the features depend on
    key = cache_key(rows, extractor_name, {**what, "max_per_class": max_per_class, "seed": seed, "dtype": dtype,
                                           "border_crop": border_crop})
    npy, csv, meta = feature_paths(out_base)
    if cached(out_base, key) or _restore_from_cache(out_base, key):
        print(f"[embed] {table}: cached {npy}", file=sys.stderr)
        return {**io.read_json(meta), "cached": True}
    extractor = extractor() if callable(extractor) and not hasattr(extractor, "embed") else extractor
    _remove_stale_temporaries(npy)
    start = time.time()
    embedded, errors = _write_features(extractor, rows, npy, batch_size=batch_size, num_workers=num_workers,
                                       device=device, precision=precision, dtype=dtype, border_crop=border_crop,
                                       desc=f"embed {Path(str(out_base)).name} ({extractor_name})")
    seconds = time.time() - start
    for position in sorted(errors)[:MAX_LISTED_WARNINGS]:
        print(f"WARNING: unreadable image {rows['path'].iat[position]}: {errors[position]}", file=sys.stderr)
    io.write_csv(csv, rows.iloc[embedded].reset_index(drop=True))
    record = {"table": str(table), "extractor": extractor_name, **extractor.provenance, "spec": spec,
              "images": int(len(embedded)), "unreadable": len(errors), "max_per_class": max_per_class,
              "dim": int(np.load(npy, mmap_mode="r").shape[1]), "dtype": dtype, "device": str(device),
              "precision": precision, "seconds": round(seconds, 2),
              "images_per_second": round(len(embedded) / seconds, 1) if seconds else None,
              "threads": _threads(), "cache_key": key}
    io.write_json(meta, record)
    _store_in_cache(out_base, key)
    print(f"[embed] {table}: {len(embedded)} images -> {npy} ({record['images_per_second']} images/s)",
          file=sys.stderr)
    return record


def _threads() -> int:
    import torch

    return torch.get_num_threads()
