"""Atomic file writing and manifest I/O shared by every stage.

Invariant (docs/design.md): no output is ever half-written. Everything is written to a temporary
name in the destination folder and moved into place with os.replace, which is atomic on POSIX.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Iterator

import pandas as pd


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike, suffix: str = "") -> Iterator[Path]:
    """Yield a temporary path next to `path`; move it onto `path` only if the block succeeds."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=suffix or path.suffix, dir=path.parent)
    os.close(fd)
    tmp = Path(tmp)
    try:
        yield tmp
        tmp.chmod(0o666 & ~current_umask())  # mkstemp makes it 0600; results are for sharing
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()


@contextlib.contextmanager
def atomic_dir(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary sibling folder; it replaces the folder `path` (if any) only when the
    block succeeds, so readers see the old tree or the new one, never a half-written one."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.", dir=path.parent))
    old = tmp.with_name(tmp.name + ".old")
    try:
        yield tmp
        tmp.chmod(0o777 & ~current_umask())  # mkdtemp makes it 0700; a results tree is for sharing
        if path.exists():
            os.replace(path, old)
        os.replace(tmp, path)
    finally:
        for leftover in (tmp, old):
            if leftover.exists():
                shutil.rmtree(leftover, ignore_errors=True)


def current_umask() -> int:
    """The process umask (reading it means setting it, so it is set straight back)."""
    mask = os.umask(0)
    os.umask(mask)
    return mask


def write_text(path: str | os.PathLike, text: str) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(text)


def write_json(path: str | os.PathLike, obj) -> None:
    write_text(path, json.dumps(obj, indent=2, sort_keys=True) + "\n")


def read_json(path: str | os.PathLike):
    return json.loads(Path(path).read_text())


def write_csv(path: str | os.PathLike, frame: pd.DataFrame) -> None:
    with atomic_path(path) as tmp:
        frame.to_csv(tmp, index=False)


def read_csv(path: str | os.PathLike) -> pd.DataFrame:
    # keep_default_na=False: a class named "NA" or an empty prompt must stay a string.
    return pd.read_csv(path, keep_default_na=False)


def count_rows(path: str | os.PathLike, chunk_rows: int = 262144) -> int:
    """Data rows of a CSV, a chunk of its first column at a time (memory flat in its length; a
    quoted field may hold a line break, so lines are not rows)."""
    return sum(len(chunk) for chunk in pd.read_csv(path, usecols=[0], dtype=str, keep_default_na=False,
                                                   chunksize=chunk_rows))


def read_lines(path: str | os.PathLike) -> list[str]:
    """Non-empty, non-comment lines of a text file (class lists, template lists)."""
    lines = Path(path).read_text().splitlines()
    return [s.strip() for s in lines if s.strip() and not s.lstrip().startswith("#")]


def resolve_manifest_paths(manifest: pd.DataFrame, manifest_path: str | os.PathLike) -> pd.Series:
    """Image paths of a manifest, usable from the working directory. Generated manifests store
    paths relative to their own folder (so results can move); real indexes store them as found."""
    base = Path(manifest_path).parent
    return manifest["path"].astype(str).map(lambda p: p if Path(p).is_absolute() else str(base / p))
