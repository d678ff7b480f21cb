"""genrobust.demo.data: the procedural stand-ins are read by genrobust.datasets like the real sets."""

from __future__ import annotations

import hashlib
import json
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from genrobust import datasets as ds
from genrobust import io
from genrobust.demo import data

from conftest import subset_for_classes

ROOT = Path(__file__).resolve().parents[1]
CLASSES = sorted(io.read_lines(ROOT / "config" / "demo_classes.txt"))
IN_R = sorted(set(CLASSES) & set(ds.imagenet_r_wnids()))
SMALL = dict(n_train=3, n_val=2, n_test=4, n_corrupt=1)


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    """The demo tree at its default size (also checks it is fast)."""
    root = tmp_path_factory.mktemp("demo") / "data"
    t = time.perf_counter()
    counts = data.write_demo_data(root, CLASSES, seed=0)
    elapsed = time.perf_counter() - t
    return root, counts, elapsed


def tree_digest(root: Path) -> dict[str, str]:
    return {str(p.relative_to(root)): hashlib.sha1(p.read_bytes()).hexdigest() for p in sorted(root.rglob("*")) if p.is_file()}


def test_demo_class_list():
    cmc = set(io.read_lines(ROOT / "config" / "imagenet100_cmc.txt"))
    assert len(CLASSES) == 10 and set(CLASSES) <= cmc
    assert 5 <= len(IN_R) < 10  # ImageNet-R masking is exercised, and so is its absence


def test_demo_counts_and_speed(demo):
    root, counts, elapsed = demo
    assert elapsed < 20
    assert counts["imagenet/train"] == 400 and counts["imagenet/val"] == 100
    assert counts["imagenet-r"] == 10 * len(IN_R)
    assert not [p for p in root.parent.iterdir() if p.name.startswith(".")]  # no temporary left behind


def test_demo_train_val_indexed(demo):
    root, _, _ = demo
    train = ds.index_image_folder(root / "imagenet" / "train", CLASSES)
    assert len(train) == 400 and train.groupby("wnid").size().tolist() == [40] * 10
    val = ds.index_test_set("imagenet", root / "imagenet" / "val")
    assert sorted(set(val["wnids"])) == CLASSES and len(val) == 100
    assert all(Path(p).name.startswith("ILSVRC2012_val_") for p in val["path"])
    assert val["path"].map(lambda p: Path(p).name).is_unique


def test_demo_shift_sets_indexed(demo):
    root, _, _ = demo
    sketch = ds.index_test_set("imagenet", root / "sketch")
    assert len(sketch) == 100 and sorted(set(sketch["wnids"])) == CLASSES
    r = ds.index_test_set("imagenet_r", root / "imagenet-r")
    assert sorted(set(r["wnids"])) == IN_R and len(r) == 10 * len(IN_R)
    v2 = ds.index_test_set("imagenet_v2", root / "imagenetv2-matched-frequency-format-val")
    assert len(v2) == 100
    for path, wnid in zip(v2["path"], v2["wnids"]):
        assert ds.imagenet_wnids()[int(Path(path).parent.name)] == wnid
    c = ds.index_test_set("imagenet_c", root / "imagenet-c", severities=[1, 2, 3, 4, 5], corruptions=list(data.CORRUPTIONS))
    assert len(c) == 3 * 5 * 10 * 2 and set(c["corruption"]) == set(data.CORRUPTIONS)
    assert c.groupby(["corruption", "severity"]).size().eq(20).all()
    corruptions = list(data.CORRUPTIONS)  # config/demo.yaml lists the demo's three
    assert len(ds.index_test_set("imagenet_c", root / "imagenet-c", corruptions=corruptions)) == 3 * 10 * 2  # severity 5


def test_demo_objectnet(demo):
    root, _, _ = demo
    on = root / "objectnet-1.0"
    plan = data.objectnet_plan(CLASSES)
    folder_wnids = ds.objectnet_folder_wnids(on / "mappings")
    assert folder_wnids == {f: w for f, _, w, _ in plan if w}
    labels = json.loads((on / "mappings" / "folder_to_objectnet_label.json").read_text())
    assert len(labels) == len(folder_wnids) + 2  # two folders without an ImageNet class
    # the v2 order really is permuted, so a chain that skips the inversion would fail
    lines = (on / "mappings" / "imagenet_to_label_2012_v2").read_text().splitlines()
    desc = ds.imagenet_descriptions()
    assert sorted(lines) == sorted(desc.values()) and lines != [desc[w] for w in ds.imagenet_wnids()]

    df = ds.index_test_set("objectnet", on)
    assert len(df) == 10 * len(folder_wnids) and all(p.endswith(".png") for p in df["path"])
    pairs = {w for w in df["wnids"] if ";" in w}
    both_demo = [w for w in pairs if set(w.split(";")) <= set(CLASSES)]
    assert len(both_demo) == 1 and len(both_demo[0].split(";")) == 2  # any-of over two demo classes

    # a 10-class demo model is scored on the folders it knows, over the demo classes present
    sub, mask = subset_for_classes(df, CLASSES)
    assert len(sub) == len(df) and set(mask) < set(CLASSES) and len(mask) == 5
    # an ImageNet-1K model also gets the mapped non-demo class in its mask
    _, mask1k = subset_for_classes(df, ds.imagenet_wnids())
    assert len(mask1k) == 6 and set(mask) < set(mask1k)

    im = np.asarray(Image.open(df["path"][0]))
    border = np.concatenate([im[:2].reshape(-1, 3), im[-2:].reshape(-1, 3), im[:, :2].reshape(-1, 3), im[:, -2:].reshape(-1, 3)])
    assert (border == data.OBJECTNET_BORDER).all()


def test_demo_images_and_renderings(demo):
    root, _, _ = demo
    w = IN_R[0]
    val = Image.open(next((root / "imagenet" / "val" / w).iterdir()))
    assert val.format == "JPEG" and val.mode == "RGB" and max(val.size) == 64
    sketches = [np.asarray(Image.open(p), dtype=int) for p in (root / "sketch").rglob("*.JPEG")]
    grey = [np.abs(sk - sk.mean(axis=2, keepdims=True)).max() <= 12 for sk in sketches]  # up to JPEG chroma error
    assert 0.4 < np.mean(grey) < 0.8  # mostly grey pencil, some with a colour wash
    r = np.asarray(Image.open(next((root / "imagenet-r" / w).iterdir())))
    assert r.shape == (64, 64, 3)
    c1 = np.asarray(Image.open(next((root / "imagenet-c" / "contrast" / "1" / w).iterdir())), dtype=float)
    c5 = np.asarray(Image.open(next((root / "imagenet-c" / "contrast" / "5" / w).iterdir())), dtype=float)
    assert c5.std(axis=(0, 1)).mean() < c1.std(axis=(0, 1)).mean() / 3  # severity means something


def test_imagenet_like_images_have_imagenets_varied_aspect_ratios(demo):
    """Train, val and V2 images are mostly 4:3 with portraits and squares (longer side 64), so a
    stage that squashes images to squares shows in the demo; the other sets are square like theirs."""
    root, _, _ = demo
    shapes = [Image.open(p).size for p in (root / "imagenet" / "train").rglob("*.JPEG")]
    assert all(max(s) == 64 for s in shapes)
    counts = {s: shapes.count(s) for s in set(shapes)}
    assert {(64, 48), (48, 64), (64, 64), (64, 43), (43, 64)} == set(counts)
    assert counts[(64, 48)] == max(counts.values())  # landscape 4:3 is the commonest, as in ImageNet
    assert len({Image.open(p).size for p in (root / "imagenet" / "val").rglob("*.JPEG")}) > 2
    assert len({Image.open(p).size for p in (root / "imagenetv2-matched-frequency-format-val").rglob("*.jpeg")}) > 2
    for square in ("sketch", "imagenet-r", "imagenet-c"):
        assert {Image.open(p).size for p in (root / square).rglob("*.*")} == {(64, 64)}, square


def test_same_seed_same_bytes_other_seed_other_images(tmp_path):
    a = data.write_demo_data(tmp_path / "a", CLASSES, seed=3, **SMALL)
    data.write_demo_data(tmp_path / "b", CLASSES, seed=3, **SMALL)
    data.write_demo_data(tmp_path / "c", CLASSES, seed=4, **SMALL)
    da, db, dc = (tree_digest(tmp_path / x) for x in "abc")
    assert da == db and len(da) == sum(a.values()) + 4 + 1  # ObjectNet's 4 mapping files, the train captions
    shared = [k for k in da if k in dc and not k.startswith("objectnet-1.0/mappings")]
    assert shared and all(da[k] != dc[k] for k in shared)  # every image changes with the seed
    assert set(da) != set(dc)  # hashed file names (V2, ObjectNet) depend on the seed too


def test_rewrite_replaces_and_failure_leaves_nothing(tmp_path, monkeypatch):
    out = tmp_path / "data"
    data.write_demo_data(out, CLASSES, seed=0, **SMALL)
    (out / "stale.txt").write_text("old")
    data.write_demo_data(out, CLASSES, seed=0, **SMALL)
    assert not (out / "stale.txt").exists()

    calls = {"n": 0}
    real = data.render_sketch

    def boom(*args, **kw):
        calls["n"] += 1
        if calls["n"] > 5:
            raise RuntimeError("killed")
        return real(*args, **kw)

    monkeypatch.setattr(data, "render_sketch", boom)
    with pytest.raises(RuntimeError):
        data.write_demo_data(tmp_path / "fresh", CLASSES, seed=0, **SMALL)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["data"]  # no half tree, no temporary


def test_bad_demo_classes(tmp_path):
    with pytest.raises(ds.DatasetError, match="n99999999"):
        data.write_demo_data(tmp_path / "x", ["n99999999"], **SMALL)
