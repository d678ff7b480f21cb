"""`genrobust export-set`: a generated set as parquet shards (Hugging Face `datasets` loads the
folder offline) and/or WebDataset tars, with its card, manifest and SHA256SUMS.

One pass over each split's manifest, a chunk of rows at a time; a shard holds at most a row
group (256 images) in memory, so memory stays flat for a 1.3M-image set. The image bytes are the
set's own files, not re-encoded: an imported copy decodes to the same pixels. The folder appears
whole or not at all (written beside it, then moved in).
"""

from __future__ import annotations

import io as _io
import json
import shutil
import sys
import tarfile
from collections import Counter
from pathlib import Path

import pandas as pd
from tqdm import tqdm

from .. import io
from ..generate.plan import GenerationError
from . import formats
from .card import write_card

ROWS_PER_GROUP = 256
CHUNK_ROWS = 4096


class _Shards:
    """Files of about `limit` bytes each, written as `part-N` and named once their count is known."""

    def __init__(self, folder: Path, split: str, limit: int):
        self.folder, self.split, self.limit = folder, split, limit
        self.parts: list[Path] = []
        self.size = 0
        folder.mkdir(parents=True, exist_ok=True)

    def _next_part(self) -> Path:
        self.parts.append(self.folder / f".{self.split}-part-{len(self.parts)}")
        self.size = 0
        return self.parts[-1]

    def _rename(self, pattern: str) -> list[Path]:
        named = [self.folder / pattern.format(split=self.split, index=i, count=len(self.parts))
                 for i in range(len(self.parts))]
        for part, name in zip(self.parts, named):
            part.rename(name)
        return named


class ParquetShards(_Shards):
    """Parquet files of rows (image {bytes, path}, label, the manifest's columns as strings)."""

    def __init__(self, folder, split, limit, columns: list[str], wnids: list[str]):
        import pyarrow as pa

        super().__init__(folder, split, limit)
        fields = [pa.field(formats.IMAGE, pa.struct([("bytes", pa.binary()), ("path", pa.string())])),
                  pa.field(formats.LABEL, pa.int64())] + [pa.field(c, pa.string()) for c in columns]
        self.schema = pa.schema(fields, metadata=formats.features_metadata(columns, wnids))
        self.columns, self.rows, self.writer, self.pending = columns, [], None, 0

    def add(self, data: bytes, name: str, label: int, row: dict) -> None:
        self.rows.append({formats.IMAGE: {"bytes": data, "path": name}, formats.LABEL: label,
                          **{c: row[c] for c in self.columns}})
        self.pending += len(data)
        if len(self.rows) >= ROWS_PER_GROUP:
            self._flush()

    def _flush(self) -> None:
        import pyarrow as pa
        import pyarrow.parquet as pq

        if not self.rows:
            return
        if self.writer is None:
            self.writer = pq.ParquetWriter(self._next_part(), self.schema)
        self.writer.write_table(pa.Table.from_pylist(self.rows, schema=self.schema))
        self.rows, self.size, self.pending = [], self.size + self.pending, 0
        if self.size >= self.limit:  # the next row group starts the next file
            self.writer.close()
            self.writer = None

    def close(self) -> list[Path]:
        self._flush()
        if self.writer is not None:
            self.writer.close()
        return self._rename(formats.PARQUET_NAME)


class TarShards(_Shards):
    """WebDataset tars: per image `<key>.<ext>` (its bytes), `<key>.cls` (label), `<key>.json`
    (its manifest row). Members carry no time or owner, so the same set makes the same tars."""

    def __init__(self, folder, split, limit):
        super().__init__(folder, split, limit)
        self.tar = None

    def _member(self, name: str, data: bytes) -> None:
        info = tarfile.TarInfo(name)
        info.size, info.mode, info.mtime = len(data), 0o644, 0
        self.tar.addfile(info, _io.BytesIO(data))

    def add(self, data: bytes, name: str, label: int, row: dict) -> None:
        if self.tar is None:
            self.tar = tarfile.open(self._next_part(), "w", format=tarfile.PAX_FORMAT)
        key = tar_key(row["id"])
        self._member(f"{key}{Path(name).suffix.lower() or '.jpg'}", data)
        self._member(f"{key}.cls", str(label).encode())
        self._member(f"{key}.json", json.dumps(row, sort_keys=True).encode())
        self.size += len(data)
        if self.size >= self.limit:
            self.tar.close()
            self.tar = None

    def close(self) -> list[Path]:
        if self.tar is not None:
            self.tar.close()
        return self._rename(formats.TAR_NAME)


def tar_key(image_id: str) -> str:
    """A WebDataset key: the part of a member's name before its first dot, so none in it."""
    return str(image_id).replace(".", "_").replace("/", "_")


def _rows(manifest: str):
    """(row as strings, the image's path) of a manifest, a chunk at a time."""
    for chunk in pd.read_csv(manifest, dtype=str, keep_default_na=False, chunksize=CHUNK_ROWS):
        paths = io.resolve_manifest_paths(chunk, manifest)
        yield from zip(chunk.to_dict("records"), paths)


def _export_split(manifest: str, split: str, out: Path, wnids: list[str], fmts: list[str],
                  limit: int) -> tuple[Counter, list[Path]]:
    columns = list(pd.read_csv(manifest, nrows=0).columns)
    missing = {"id", "path", "wnid"} - set(columns)
    if missing:
        raise GenerationError(f"{manifest}: not a generated set's manifest (no column {sorted(missing)[0]})")
    label_of = {w: i for i, w in enumerate(wnids)}
    writers = []
    if "parquet" in fmts:
        writers.append(ParquetShards(out / formats.PARQUET_DIR, split, limit, columns, wnids))
    if "webdataset" in fmts:
        writers.append(TarShards(out / formats.TAR_DIR, split, limit))
    counts: Counter = Counter()
    total = io.count_rows(manifest)
    for row, path in tqdm(_rows(manifest), total=total, desc=f"export {split}", unit="img",
                          mininterval=0.5 if sys.stderr.isatty() else 30, file=sys.stderr):
        if row["wnid"] not in label_of:
            raise GenerationError(f"{manifest}: image {row['id']} has class {row['wnid']}, not one of the "
                                  "dataset's classes")
        try:
            data = Path(path).read_bytes()
        except OSError as err:
            raise GenerationError(f"{manifest}: cannot read image {path} ({err.strerror or err})") from None
        for writer in writers:
            writer.add(data, Path(path).name, label_of[row["wnid"]], row)
        counts[row["wnid"]] += 1
    return counts, [f for writer in writers for f in writer.close()]


def export_set(*, manifests: dict[str, str], out: str, wnids: list[str], fmts: list[str], shard_mb: int,
               info: dict) -> dict:
    """Export `manifests` (split -> a generated set's manifest.csv) to the folder `out`.
    `info` (dataset, strategy, strategy_config, models, license, seed) and each manifest's
    summary.json go into the card."""
    per_split = {}
    summaries = {split: io.read_json(path) for split, m in manifests.items()
                 if (path := Path(m).with_name("summary.json")).exists()}  # gather's: hours, devices
    info = {**info, "summaries": summaries}
    with io.atomic_dir(out) as tmp:
        for split, manifest in manifests.items():
            counts, files = _export_split(manifest, split, tmp, wnids, fmts, shard_mb * 1_000_000)
            shutil.copyfile(manifest, tmp / f"manifest_{split}.csv")
            per_split[split] = {"images": sum(counts.values()), "counts": dict(sorted(counts.items())),
                                "files": [str(f.relative_to(tmp)) for f in files]}
            print(f"[export] {split}: {per_split[split]['images']} images in {len(files)} shards", file=sys.stderr)
        write_card(tmp / "README.md", info=info, splits=per_split, fmts=fmts, wnids=wnids)
        sums = formats.write_checksums(tmp)
    print(f"[export] {out}: {len(sums)} files, sha256 in {formats.CHECKSUMS}", file=sys.stderr)
    return per_split
