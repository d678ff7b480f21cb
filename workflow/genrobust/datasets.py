"""Read the real datasets in their native on-disk layouts (see docs/datasets.md).

Every test set is reduced to one table: `path` and `wnids` (the image's correct classes joined
by ';', usually one; ObjectNet images can have several), plus `corruption`/`severity` for
ImageNet-C. Class subsets (ImageNet-R's 200, ObjectNet's 125, a 100-class model) are then
handled in one place, `scoring.select_test_subset`, instead of one special case per test set.

Indexing uses os.scandir only (no glob, no per-file stat) so ImageNet train (1.28M files)
indexes in seconds, and everything is sorted so the same tree gives the same table.
"""

from __future__ import annotations

import collections
import csv
import functools
import importlib.util
import json
import os
import re
import sys
from pathlib import Path
from typing import Iterable

import numpy as np
import pandas as pd

from genrobust import io
from genrobust.kinds import TEST_SETS

# Every image suffix the library reads (lower case); the one list for indexes and mixing sets.
IMAGE_EXTENSIONS = (".jpeg", ".jpg", ".png", ".bmp", ".webp", ".ppm", ".tif", ".tiff")
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
WNID_RE = re.compile(r"^n\d{8}$")
# ImageNet-C's 15 standard corruptions (Hendrycks & Dietterich 2019), whose mean is the reported
# number; the download also holds 4 extras (speckle_noise, gaussian_blur, spatter, saturate),
# held out in the original paper, which are averaged only when config lists them.
IMAGENET_C_CORRUPTIONS = (
    "gaussian_noise", "shot_noise", "impulse_noise", "defocus_blur", "glass_blur", "motion_blur", "zoom_blur",
    "snow", "frost", "fog", "brightness", "contrast", "elastic_transform", "pixelate", "jpeg_compression",
)
OBJECTNET_MAPPINGS = (
    "folder_to_objectnet_label.json",
    "objectnet_to_imagenet_1k.json",
    "imagenet_to_label_2012_v2",
    "pytorch_to_imagenet_2012_id.json",
)


class DatasetError(Exception):
    """A dataset or class list is missing or not in the expected layout; the message names the
    path (or key) and says what was expected."""


def check_table_classes(frame: pd.DataFrame, known, table: str | os.PathLike, column: str = "wnid") -> None:
    """Every row of an image table names a class of `known` (a wnid names files and folders
    downstream: one holding '../' or a typo must stop here); else a DatasetError naming the file,
    the row's line and its value."""
    known = set(known)
    bad = ~frame[column].astype(str).isin(known)
    if bad.any():
        row = int(np.flatnonzero(bad.to_numpy())[0])
        value = frame[column].astype(str).iat[row]
        raise DatasetError(f"{table}, line {row + 2}: {column} {value!r} is not one of the {len(known)} classes of "
                           f"the dataset ({int(bad.sum())} rows like it); regenerate the table, or fix the row")


# --------------------------------------------------------------------------- class metadata


@functools.cache
def _timm_info_file(name: str) -> str:
    """A file of timm's ImageNet metadata (timm/data/_info/), read without importing timm, which
    would import torch (seconds) in rules that only index folders. Same files as
    timm.data.ImageNetInfo and pkgutil.get_data("timm.data", "_info/...") read."""
    spec = importlib.util.find_spec("timm")
    if spec is None or not spec.submodule_search_locations:
        raise DatasetError("the ImageNet class metadata comes from the timm package, which is not installed")
    return (Path(list(spec.submodule_search_locations)[0]) / "data" / "_info" / name).read_text(encoding="utf-8")


@functools.cache
def _wnids() -> tuple[str, ...]:
    return tuple(_timm_info_file("imagenet_synsets.txt").splitlines())


def imagenet_wnids() -> list[str]:
    """The 1000 ImageNet-1K wnids in class-index order (sorted; the PyTorch/timm order),
    = timm.data.ImageNetInfo().label_names()."""
    return list(_wnids())


@functools.cache
def _wnid_index() -> dict[str, int]:
    return {w: i for i, w in enumerate(_wnids())}


@functools.cache
def _descriptions() -> tuple[tuple[str, str], ...]:
    lemmas = dict(csv.reader(_timm_info_file("imagenet_synset_to_lemma.txt").splitlines(), delimiter="\t"))
    return tuple((w, lemmas[w]) for w in _wnids())


def imagenet_descriptions() -> dict[str, str]:
    """wnid -> WordNet lemmas, e.g. 'kit fox, Vulpes macrotis' (= ImageNetInfo().label_descriptions(as_dict=True));
    these are the strings ObjectNet's mapping files use."""
    return dict(_descriptions())


@functools.cache
def _r_wnids() -> tuple[str, ...]:
    return tuple(sorted(_timm_info_file("imagenet_r_synsets.txt").split()))


def imagenet_r_wnids() -> list[str]:
    """The 200 ImageNet-R classes (sorted wnids; timm's _info/imagenet_r_synsets.txt)."""
    return list(_r_wnids())


def load_class_list(spec: str | os.PathLike) -> list[str]:
    """Classes of a training set: "imagenet1k" (all 1000) or a text file of wnids (one per line,
    '#' comments allowed). Returned sorted, which defines the model's class-index order."""
    if str(spec) == "imagenet1k":
        return imagenet_wnids()
    path = Path(spec)
    if not path.is_file():
        raise DatasetError(f"class list {path}: file not found (expected 'imagenet1k' or a text file of wnids)")
    lines = io.read_lines(path)
    known = _wnid_index()
    bad = [s for s in lines if not WNID_RE.match(s) or s not in known]
    if bad:
        raise DatasetError(
            f"class list {path}: {len(bad)} entries are not ImageNet-1K wnids (expected 'n' + 8 digits, "
            f"one of the 1000 classes): {bad[:10]}"
        )
    dups = sorted(w for w, n in collections.Counter(lines).items() if n > 1)
    if dups:
        raise DatasetError(f"class list {path}: duplicate wnids {dups[:10]}")
    if not lines:
        raise DatasetError(f"class list {path}: no wnids in the file")
    return sorted(lines)


# --------------------------------------------------------------------------- folder scanning


def _require_dir(root: str | os.PathLike, what: str) -> str:
    root = os.fspath(root)
    if not os.path.isdir(root):
        raise DatasetError(f"{what}: directory {root} not found")
    return root


def _subdirs(root: str) -> list[str]:
    """Names of the non-hidden subfolders of root, sorted."""
    with os.scandir(root) as it:
        return sorted(e.name for e in it if not e.name.startswith(".") and e.is_dir())


def _images(folder: str) -> list[str]:
    """Full paths of the image files directly inside folder, sorted (names only, no stat)."""
    with os.scandir(folder) as it:
        names = sorted(e.name for e in it if e.name.lower().endswith(IMAGE_EXTENSIONS) and not e.name.startswith("."))
    return [os.path.join(folder, n) for n in names]


def _wnid_folders(root: str, what: str, allowed: Iterable[str] | None = None, allowed_name: str = "ImageNet-1K") -> list[str]:
    """The wnid folders that exist under root; every subfolder must be a known wnid."""
    allowed = set(allowed) if allowed is not None else set(_wnids())
    names = _subdirs(root)
    bad = [n for n in names if n not in allowed]
    if bad:
        raise DatasetError(
            f"{what} {root}: subfolders {bad[:10]} are not {allowed_name} wnids (expected {root}/<wnid>/<image>)"
        )
    if not names:
        hint = ""
        with os.scandir(root) as it:
            if any(e.name.lower().endswith(IMAGE_EXTENSIONS) for e in it):
                hint = " (found images directly under it: a flat val folder must be re-foldered into <wnid>/ subfolders)"
        raise DatasetError(f"{what} {root}: no <wnid>/ subfolders{hint}")
    return names


def index_image_folder(root: str | os.PathLike, wnids: Iterable[str]) -> pd.DataFrame:
    """Index root/<wnid>/* for exactly the given wnids (ImageNet train/val, Sketch).

    A training set must have every class, so a missing wnid folder is an error."""
    root = _require_dir(root, "image folder")
    paths: list[str] = []
    labels: list[str] = []
    for wnid in sorted(wnids):
        folder = os.path.join(root, wnid)
        if not os.path.isdir(folder):
            raise DatasetError(f"image folder {root}: class folder {folder} not found (expected {root}/<wnid>/<image>)")
        files = _images(folder)
        paths += files
        labels += [wnid] * len(files)
    return pd.DataFrame({"path": paths, "wnid": labels})


def _index_wnid_tree(root: str, what: str, allowed: Iterable[str] | None = None, allowed_name: str = "ImageNet-1K") -> pd.DataFrame:
    paths: list[str] = []
    labels: list[str] = []
    for wnid in _wnid_folders(root, what, allowed, allowed_name):
        files = _images(os.path.join(root, wnid))
        paths += files
        labels += [wnid] * len(files)
    return pd.DataFrame({"path": paths, "wnids": labels})


def _index_v2(root: str) -> pd.DataFrame:
    wnids = _wnids()
    names = _subdirs(root)
    bad = [n for n in names if not n.isdigit() or not 0 <= int(n) < 1000]
    if bad or not names:
        raise DatasetError(
            f"imagenet_v2 {root}: expected subfolders named 0..999 (class index in sorted-wnid order), "
            f"found {bad[:10] if bad else 'none'}"
        )
    paths: list[str] = []
    labels: list[str] = []
    for name in sorted(names, key=int):
        files = _images(os.path.join(root, name))
        paths += files
        labels += [wnids[int(name)]] * len(files)
    return pd.DataFrame({"path": paths, "wnids": labels})


def _index_imagenet_c(root: str, severities: Iterable[int] | None = None,
                      corruptions: Iterable[str] | None = None) -> pd.DataFrame:
    """The images of `corruptions` (default: the 15 standard ones) at `severities` (default: 5)."""
    severities = severities or (5,)
    if corruptions is None:
        present = set(_subdirs(root))
        missing = [c for c in IMAGENET_C_CORRUPTIONS if c not in present]
        if missing:
            raise DatasetError(f"imagenet_c {root}: standard corruption folders {missing} not found (present: "
                               f"{sorted(present)}); list the ones to average in test_sets.<name>.corruptions")
        corruptions = IMAGENET_C_CORRUPTIONS
    frames = []
    for corruption in corruptions:
        for severity in severities:
            folder = os.path.join(root, corruption, str(int(severity)))
            if not os.path.isdir(folder):
                raise DatasetError(
                    f"imagenet_c {root}: {folder} not found (expected {root}/<corruption>/<severity 1-5>/<wnid>/<image>)"
                )
            df = _index_wnid_tree(folder, "imagenet_c")
            df["corruption"] = corruption
            df["severity"] = int(severity)
            frames.append(df)
    return pd.concat(frames, ignore_index=True)


# --------------------------------------------------------------------------- ObjectNet


def _read_json(path: Path):
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError as e:
        raise DatasetError(f"objectnet mapping {path}: not valid JSON ({e})") from e


def objectnet_folder_wnids(mappings_dir: str | os.PathLike) -> dict[str, list[str]]:
    """ObjectNet image folder -> its ImageNet wnids in the mapping's order, for the folders that map
    to ImageNet. The first is the one class the paper compares the folder with (Table 2: its code's
    utils/mappings/objectnet_im1k_folder.json names, for all 113 labels, the first class listed).

    Chain (ObjectNet's own files): folder -> ObjectNet label -> ImageNet descriptions split on
    '; ' -> line index in imagenet_to_label_2012_v2 -> PyTorch class index (by inverting
    pytorch_to_imagenet_2012_id.json, which maps PyTorch index -> line) -> wnid."""
    mdir = Path(mappings_dir)
    for name in OBJECTNET_MAPPINGS:
        if not (mdir / name).is_file():
            raise DatasetError(f"objectnet mappings: {mdir / name} not found (expected the 4 files {OBJECTNET_MAPPINGS})")
    folder_to_label: dict[str, str] = _read_json(mdir / "folder_to_objectnet_label.json")
    label_to_descs: dict[str, str] = _read_json(mdir / "objectnet_to_imagenet_1k.json")
    lines = [s.strip() for s in (mdir / "imagenet_to_label_2012_v2").read_text().splitlines()]
    pt_to_line: dict[str, int] = _read_json(mdir / "pytorch_to_imagenet_2012_id.json")

    wnids = _wnids()
    line_to_pt: dict[int, int] = {}
    for pt, line in pt_to_line.items():
        if not (0 <= int(pt) < 1000 and 0 <= int(line) < len(lines)) or int(line) in line_to_pt:
            raise DatasetError(
                f"objectnet mapping {mdir / 'pytorch_to_imagenet_2012_id.json'}: entry {pt!r}: {line!r} is out of "
                f"range or repeats a line (expected a bijection of 0..999 onto line indices)"
            )
        line_to_pt[int(line)] = int(pt)
    desc_to_lines: dict[str, list[int]] = {}
    for i, desc in enumerate(lines):
        desc_to_lines.setdefault(desc, []).append(i)

    label_to_folders: dict[str, list[str]] = {}
    for folder, label in folder_to_label.items():
        label_to_folders.setdefault(label, []).append(folder)

    out: dict[str, list[str]] = {}
    for label, joined in label_to_descs.items():
        if label not in label_to_folders:
            raise DatasetError(
                f"objectnet mapping {mdir / 'objectnet_to_imagenet_1k.json'}: label {label!r} has no folder in "
                f"{mdir / 'folder_to_objectnet_label.json'}"
            )
        found: dict[str, None] = {}  # in the mapping's order
        for desc in joined.split("; "):
            desc = desc.strip()
            hits = desc_to_lines.get(desc, [])
            if len(hits) != 1:
                raise DatasetError(
                    f"objectnet mapping {mdir / 'imagenet_to_label_2012_v2'}: description {desc!r} (of ObjectNet "
                    f"label {label!r}) is on {len(hits)} lines, expected exactly 1"
                )
            if hits[0] not in line_to_pt:
                raise DatasetError(
                    f"objectnet mapping {mdir / 'pytorch_to_imagenet_2012_id.json'}: no PyTorch index maps to "
                    f"line {hits[0]} ({desc!r})"
                )
            found[wnids[line_to_pt[hits[0]]]] = None
        for folder in label_to_folders[label]:
            out[folder] = list(found)
    return dict(sorted(out.items()))


def _index_objectnet(root: str) -> pd.DataFrame:
    images = os.path.join(root, "images")
    mappings = os.path.join(root, "mappings")
    for d in (images, mappings):
        if not os.path.isdir(d):
            raise DatasetError(f"objectnet {root}: {d} not found (expected objectnet-1.0/images/ and objectnet-1.0/mappings/)")
    paths: list[str] = []
    labels: list[str] = []
    for folder, wnids in objectnet_folder_wnids(mappings).items():
        fdir = os.path.join(images, folder)
        if not os.path.isdir(fdir):
            raise DatasetError(f"objectnet {root}: mapped folder {fdir} not found")
        files = _images(fdir)
        paths += files
        labels += [";".join(wnids)] * len(files)
    return pd.DataFrame({"path": paths, "wnids": labels})


# --------------------------------------------------------------------------- test sets


# Test-set kind (genrobust.kinds.TEST_SETS) -> its indexer(root, **the options its kind declares).
TEST_SET_INDEXERS = {
    "imagenet": lambda root: _index_wnid_tree(root, "imagenet"),  # val, and ImageNet-Sketch (same layout)
    "imagenet_r": lambda root: _index_wnid_tree(root, "imagenet_r", allowed=_r_wnids(),
                                                allowed_name="ImageNet-R (200-class)"),
    "imagenet_v2": _index_v2,
    "objectnet": _index_objectnet,
    "imagenet_c": _index_imagenet_c,  # options: severities=[5], corruptions=None meaning the 15 standard ones
}


def index_test_set(kind: str, root: str | os.PathLike, **options) -> pd.DataFrame:
    """Index a test set of a TEST_SETS kind: columns path, wnids (';'-joined correct classes)
    [, corruption, severity]."""
    if kind not in TEST_SETS:
        raise DatasetError(f"test set kind {kind!r} unknown (expected one of {tuple(TEST_SETS)})")
    root = _require_dir(root, kind)
    extra = set(options) - set(TEST_SETS[kind].options)
    if extra:
        raise DatasetError(f"test set kind {kind!r}: unexpected options {sorted(extra)}")
    return TEST_SET_INDEXERS[kind](root, **options)


def write_dataset_index(root: str | os.PathLike, classes: str | os.PathLike, out: str | os.PathLike,
                        allow_empty_classes: bool = False) -> pd.DataFrame:
    """The index stage of a train/val set: path, wnid and label (position in the class list).
    A class folder without images is an error unless allow_empty_classes (then a warning)."""
    wnids = load_class_list(classes)
    index = index_image_folder(root, wnids)
    index["label"] = index["wnid"].map({w: i for i, w in enumerate(wnids)})
    empty = sorted(set(wnids) - set(index["wnid"]))
    if empty:
        message = (f"{root}: {len(empty)} of the {len(wnids)} class folders hold no image "
                   f"({', '.join(empty[:5])}{' ...' if len(empty) > 5 else ''})")
        if not allow_empty_classes:
            raise DatasetError(f"{message}; fill them, or set datasets.<name>.allow_empty_classes: true "
                               "to train without those classes' images")
        print(f"WARNING: {message}", file=sys.stderr)
    io.write_csv(out, index)
    print(f"[index] {root}: {len(index)} images in {len(wnids) - len(empty)} of {len(wnids)} classes",
          file=sys.stderr)
    return index


def write_test_set_index(kind: str, root: str | os.PathLike, out: str | os.PathLike, complete: bool = False,
                         **options) -> pd.DataFrame:
    """The index stage of a test set (see index_test_set); options left None are not passed. It
    says how many images and classes the copy has against a complete one; with `complete`, a
    copy that lacks classes is an error (test_sets.<name>.complete in config)."""
    index = index_test_set(kind, root, **{k: v for k, v in options.items() if v})
    classes = {w for v in index["wnids"] for w in str(v).split(";") if w}
    expected = TEST_SETS[kind].complete_wnids
    if len(classes) < expected:
        message = f"{kind} {root}: {len(index)} images in {len(classes)} of the {expected} classes a complete copy has"
        if complete:
            raise DatasetError(f"{message}; point test_sets.<name>.path at a complete copy, or set "
                               "test_sets.<name>.complete: false to score on the classes present")
        print(f"WARNING: {message} (scored on those)", file=sys.stderr)
    io.write_csv(out, index)
    print(f"[index] {kind} {root}: {len(index)} images, {len(classes)} of {expected} classes", file=sys.stderr)
    return index
