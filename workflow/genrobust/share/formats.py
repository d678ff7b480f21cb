"""What an exported set's files are, for the writer (export.py) and the reader (external.py):
shard names, the columns, the Hugging Face features metadata, SHA256SUMS."""

from __future__ import annotations

import csv
import hashlib
import json
import os
from pathlib import Path

from ..generate.plan import GenerationError

CHECKSUMS = "SHA256SUMS"  # `sha256sum -c SHA256SUMS` checks a copy
PARQUET_DIR, TAR_DIR = "data", "wds"
# Hugging Face's own shard naming (data/train-00000-of-00004.parquet): load_dataset(folder) finds
# the splits from it, and the card's `configs` names them too.
PARQUET_NAME = "{split}-{index:05d}-of-{count:05d}.parquet"
TAR_NAME = "{split}-{index:06d}.tar"  # webdataset's brace patterns: train-{000000..000003}.tar
IMAGE, LABEL = "image", "label"  # the columns every parquet row has, beside the manifest's
FEATURES_KEY = b"huggingface"  # the parquet schema metadata datasets reads its features from


def hf_features(columns: list[str], wnids: list[str]) -> dict:
    """The `datasets` features of an exported parquet shard: an Image, a ClassLabel named by
    wnid, and every manifest column as a string."""
    features = {IMAGE: {"_type": "Image"}, LABEL: {"_type": "ClassLabel", "names": list(wnids)}}
    features.update({c: {"dtype": "string", "_type": "Value"} for c in columns})
    return features


def features_metadata(columns: list[str], wnids: list[str]) -> dict[bytes, bytes]:
    return {FEATURES_KEY: json.dumps({"info": {"features": hf_features(columns, wnids)}}).encode()}


def class_names_of(metadata: dict[bytes, bytes] | None) -> list[str] | None:
    """The ClassLabel names a parquet file's Hugging Face metadata gives its label column."""
    try:
        features = json.loads((metadata or {})[FEATURES_KEY])["info"]["features"]
        return list(features[LABEL]["names"])
    except (KeyError, TypeError, ValueError):
        return None


def sha256_of(path: str | os.PathLike, chunk: int = 1 << 20) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            digest.update(block)
    return digest.hexdigest()


def write_checksums(folder: Path) -> dict[str, str]:
    """SHA256SUMS of every file under `folder` (sha256sum's format, sorted paths)."""
    sums = {str(p.relative_to(folder)): sha256_of(p) for p in sorted(folder.rglob("*"))
            if p.is_file() and p.name != CHECKSUMS}
    (folder / CHECKSUMS).write_text("".join(f"{h}  {name}\n" for name, h in sums.items()))
    return sums


def verify_checksums(folder: str | os.PathLike) -> int:
    """Check every file SHA256SUMS lists (none: 0 checked); a missing or changed one is an error
    naming it."""
    folder = Path(folder)
    listing = folder / CHECKSUMS
    if not listing.exists():
        return 0
    checked = 0
    for n, line in enumerate(listing.read_text().splitlines(), 1):
        if not line.strip():
            continue
        want, _, name = line.partition("  ")
        path = folder / name.strip()
        if not name.strip() or len(want) != 64:
            raise GenerationError(f"{listing}:{n}: not a sha256sum line ({line[:80]!r})")
        if not path.is_file():
            raise GenerationError(f"{path}: listed in {listing} but missing (an incomplete copy of the set?)")
        if sha256_of(path) != want:
            raise GenerationError(f"{path}: sha256 differs from {listing} (a truncated or altered copy: "
                                  "fetch that file again)")
        checked += 1
    return checked


def read_class_map(path: str | os.PathLike) -> dict[str, str]:
    """A class_map CSV's name -> wnid (header `name,wnid`); a ValueError when it is not one."""
    with open(path, newline="") as f:
        rows = list(csv.DictReader(f))
    if not rows or not {"name", "wnid"} <= set(rows[0]):
        raise ValueError(f"'{path}' is not a CSV with columns name,wnid")
    return {str(r["name"]).strip(): str(r["wnid"]).strip() for r in rows}
