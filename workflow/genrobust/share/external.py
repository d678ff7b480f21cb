"""The `external` strategy kind (`genrobust import-set`): anyone's image set as a source.

`path` is an ImageFolder tree (`<class>/<image>`), a folder of parquet shards (a genrobust export,
or a Hugging Face dataset's parquet files) or of WebDataset tars. The import checks the set's
SHA256SUMS when it has one, maps its classes to the dataset's wnids (by name, or through
`class_map`), decodes every image once, and writes a manifest where a generated set's would be:
then betons, mixtures, CLIP measures, FID and every report take it like any other source.

Images in parquet or tar shards are written out as files, byte for byte (an exported set comes
back with the same pixels); an ImageFolder's are used where they are. An image that does not
decode is left out, counted and named in summary.json; a class the dataset does not have, a class
left without images, a truncated shard or a checksum mismatch stops the import with one line
naming it, and nothing is written.
"""

from __future__ import annotations

import csv
import io as _io
import json
import os
import sys
import tarfile
from collections import Counter
from pathlib import Path
from typing import Iterator, NamedTuple

from PIL import Image
from tqdm import tqdm

from .. import io
from ..datasets import IMAGE_EXTENSIONS
from ..generate.plan import GenerationError
from ..generate.shard import MANIFEST_COLUMNS, OPTIONAL_MANIFEST_COLUMNS
from . import formats

FORMATS = ("imagefolder", "parquet", "webdataset")
# The imported manifest: a generated set's columns (filled from an exported set's rows, empty for
# others) and where each image came from (file, and row or member).
COLUMNS = MANIFEST_COLUMNS + OPTIONAL_MANIFEST_COLUMNS + ["origin"]
NAMED_UNREADABLE = 20  # summary.json names the first ones


class Item(NamedTuple):
    """One image of an external set: its id, its class as the set names it, its bytes (shards)
    or file (ImageFolder), its metadata, and where it came from."""
    id: str
    name: str
    data: bytes | None
    file: str | None
    meta: dict
    origin: str


def detect_format(path: str | os.PathLike, fmt: str | None = None) -> str:
    """`fmt`, or from the folder: parquet shards, else tars, else an ImageFolder."""
    root = Path(path)
    if not root.is_dir():
        raise GenerationError(f"external set {path}: no such folder")
    if fmt and fmt != "auto":
        return fmt
    if _shard_files(root, "parquet"):
        return "parquet"
    if _shard_files(root, "webdataset"):
        return "webdataset"
    return "imagefolder"


def _shard_files(root: Path, fmt: str, split: str = "train") -> list[Path]:
    """The split's shards (data/train-*.parquet, wds/train-*.tar), else every such file in the folder."""
    ext, sub = (".parquet", formats.PARQUET_DIR) if fmt == "parquet" else (".tar", formats.TAR_DIR)
    named = sorted(root.glob(f"{sub}/{split}-*{ext}")) or sorted(root.glob(f"{split}-*{ext}"))
    return named or sorted(p for p in root.rglob(f"*{ext}") if not p.name.startswith("."))


def _imagefolder_items(root: Path) -> Iterator[Item]:
    with os.scandir(root) as entries:
        folders = sorted(e.name for e in entries if e.is_dir() and not e.name.startswith("."))
    for folder in folders:
        with os.scandir(root / folder) as entries:
            names = sorted(e.name for e in entries
                           if e.name.lower().endswith(IMAGE_EXTENSIONS) and not e.name.startswith("."))
        for name in names:
            path = root / folder / name
            yield Item(f"{folder}/{Path(name).stem}", folder, None, str(path.absolute()), {}, str(path))


def _parquet_items(files: list[Path]) -> Iterator[Item]:
    import pyarrow as pa
    import pyarrow.parquet as pq

    for file in files:
        try:
            table = pq.ParquetFile(file)
            names = formats.class_names_of(table.schema_arrow.metadata)
            row_index = 0
            for batch in table.iter_batches(batch_size=256):
                for row in batch.to_pylist():
                    yield _parquet_item(row, names, f"{file}#{row_index}")
                    row_index += 1
        except (pa.ArrowException, OSError) as err:
            raise GenerationError(f"external set: cannot read {file} ({err}): a truncated or corrupt "
                                  "parquet file") from None


def _parquet_item(row: dict, names: list[str] | None, origin: str) -> Item:
    image = row.pop(formats.IMAGE, None)
    data = image.get("bytes") if isinstance(image, dict) else image
    label = row.pop(formats.LABEL, None)
    name = row.get("wnid") or (names[label] if names and label is not None and 0 <= label < len(names)
                               else str(label))
    meta = {k: "" if v is None else str(v) for k, v in row.items()}
    return Item(meta.get("id") or origin.rsplit("/", 1)[-1], str(name), data, None, meta, origin)


def _tar_items(files: list[Path]) -> Iterator[Item]:
    """Samples of WebDataset tars: members sharing a key (the name before its first dot) in a row."""
    for file in files:
        sample, key = {}, None
        try:
            with tarfile.open(file, "r|") as tar:
                for member in tar:
                    if not member.isfile():
                        continue
                    base, _, ext = member.name.rpartition("/")[2].partition(".")
                    if key is not None and base != key:
                        yield _tar_item(key, sample, file)
                        sample = {}
                    key = base
                    sample[ext.lower()] = tar.extractfile(member).read()
            if key is not None:
                yield _tar_item(key, sample, file)
        except (tarfile.TarError, EOFError, OSError) as err:
            raise GenerationError(f"external set: cannot read {file} ({err}): a truncated or corrupt tar "
                                  "(fetch it again)") from None


def _tar_item(key: str, sample: dict, file: Path) -> Item:
    meta = json.loads(sample["json"]) if "json" in sample else {}
    meta = {k: "" if v is None else str(v) for k, v in meta.items()}
    ext = next((e for e in sample if f".{e}" in IMAGE_EXTENSIONS), None)
    name = meta.get("wnid") or sample.get("cls", b"").decode().strip()
    return Item(meta.get("id") or key, name, sample[ext] if ext else None, None, meta, f"{file}#{key}.{ext or '?'}")


def external_items(root: str | os.PathLike, fmt: str) -> Iterator[Item]:
    root = Path(root)
    if fmt == "imagefolder":
        return _imagefolder_items(root)
    files = _shard_files(root, fmt)
    if not files:
        raise GenerationError(f"external set {root}: no {fmt} files in it")
    return _parquet_items(files) if fmt == "parquet" else _tar_items(files)


def _decodes(item: Item) -> bool:
    try:
        with Image.open(_io.BytesIO(item.data) if item.data is not None else item.file) as im:
            im.load()
        return True
    except Exception:  # PIL raises many types for a bad file; each is this image's problem alone
        return False


def _wnid_of(item: Item, class_map: dict | None, known: set[str], root) -> str:
    wnid = class_map.get(item.name, item.name) if class_map else item.name
    if wnid not in known:
        hint = "; map it with the strategy's class_map (name,wnid)" if not class_map else " (nor in class_map)"
        raise GenerationError(f"external set {root}: class '{item.name}' of {item.origin} is not one of the "
                              f"dataset's classes{hint}")
    return wnid


def _image_file(item: Item, wnid: str, taken: set[str]) -> str:
    """Where a shard's image is written (relative to the manifest): images/<wnid>/<id>.<ext>."""
    ext = Image.open(_io.BytesIO(item.data)).format or "JPEG"
    ext = {"JPEG": ".jpg", "PNG": ".png", "WEBP": ".webp"}.get(ext, f".{ext.lower()}")
    stem = "".join(c if c.isalnum() or c in "-_" else "_" for c in item.id) or "image"
    name, n = f"images/{wnid}/{stem}{ext}", 1
    while name in taken:  # two ids that sanitise alike
        name, n = f"images/{wnid}/{stem}-{n}{ext}", n + 1
    taken.add(name)
    return name


def import_set(*, path: str, fmt: str | None, wnids: list[str], out_manifest: str, out_summary: str,
               class_map: str | None = None) -> dict:
    """Import the external set at `path` as the manifest `out_manifest` (see the module's doc)."""
    fmt = detect_format(path, fmt)
    checked = formats.verify_checksums(path)
    try:
        mapping, known = formats.read_class_map(class_map) if class_map else None, set(wnids)
    except (OSError, ValueError) as err:
        raise GenerationError(f"class_map: {err}") from None
    out_manifest = Path(out_manifest)
    counts, unreadable, taken = Counter(), [], set()
    with io.atomic_dir(out_manifest.parent / "images") as images, io.atomic_path(out_manifest) as tmp, \
            open(tmp, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=COLUMNS, extrasaction="ignore")
        writer.writeheader()
        for item in tqdm(external_items(path, fmt), desc=f"import {Path(path).name}", unit="img",
                         mininterval=0.5 if sys.stderr.isatty() else 30, file=sys.stderr):
            wnid = _wnid_of(item, mapping, known, path)
            if (item.data is None and item.file is None) or not _decodes(item):
                unreadable.append(item.origin)
                continue
            if item.data is not None:
                rel = _image_file(item, wnid, taken)
                target = images / rel.removeprefix("images/")
                target.parent.mkdir(parents=True, exist_ok=True)
                target.write_bytes(item.data)
            else:
                rel = item.file
            writer.writerow({**{c: "" for c in COLUMNS}, **item.meta, "id": item.id, "path": rel, "wnid": wnid,
                             "origin": item.origin})
            counts[wnid] += 1
        empty = [w for w in wnids if not counts[w]]
        if empty:
            raise GenerationError(f"external set {path}: no readable images of class {empty[0]}"
                                  f"{f' (and {len(empty) - 1} more)' if len(empty) > 1 else ''}; every class of "
                                  "the dataset needs some")
    summary = {"images": sum(counts.values()), "classes": len(counts), "source": str(path), "format": fmt,
               "checksums_verified": checked,
               "per_class": {"min": min(counts.values()), "max": max(counts.values()),
                             "counts": dict(sorted(counts.items()))},
               "unreadable": len(unreadable), "unreadable_first": unreadable[:NAMED_UNREADABLE],
               "generation_hours": None, "gpu_hours": None, "devices": [], "settings": {"kind": "external"}}
    io.write_json(out_summary, summary)
    note = f", {len(unreadable)} unreadable left out (first: {unreadable[0]})" if unreadable else ""
    print(f"[import] {path} ({fmt}, {checked} files checksummed): {summary['images']} images, "
          f"{len(counts)} classes{note}", file=sys.stderr)
    return summary
