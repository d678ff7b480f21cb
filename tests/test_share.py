"""Sharing sets (#24): an export read back by the real readers (Hugging Face datasets'
load_dataset, webdataset), imported again byte for byte; bad sets stopped with one line naming the
file or class and nothing written; memory flat in the set's size; plan-time checks naming the key."""

from __future__ import annotations

import json
import subprocess
import sys
import tarfile

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from conftest import REPO
from genrobust.config import ConfigError
from genrobust.generate.plan import GenerationError
from genrobust.share import formats
from genrobust.share.export import export_set
from genrobust.share.external import import_set
from genrobust.validation import check_config
from test_few_step import beyond_config

WNIDS = ["n01440764", "n01443537", "n01484850"]
INFO = {"dataset": "demo10", "strategy": "cl80", "license": "creativeml-openrail-m", "seed": 0,
        "strategy_config": {"kind": "class_labels", "steps": 3}, "models": {"model": {"id": "tiny-sd"}}}


def generated_set(root, per_class=4, size=24, seed=0):
    """A generated set's split folder as gather leaves it: manifest.csv (relative paths, prompts,
    seeds) and JPEGs of seeded noise."""
    rng = np.random.default_rng(seed)
    rows = []
    for w in WNIDS:
        for k in range(per_class):
            rel = f"images/{w}/cl80-{w}-{k:04d}.jpg"
            (root / rel).parent.mkdir(parents=True, exist_ok=True)
            Image.fromarray(rng.integers(0, 256, (size, size, 3), dtype=np.uint8)).save(root / rel, quality=90)
            rows.append({"id": f"cl80-train-{w}-{k:04d}", "path": rel, "wnid": w, "k": k, "prompt": f"a photo of {w}",
                         "seed": int(rng.integers(1 << 31)), "attempt": 0})
    pd.DataFrame(rows).to_csv(root / "manifest.csv", index=False)
    return root / "manifest.csv"


@pytest.fixture
def exported(tmp_path):
    manifest = generated_set(tmp_path / "generate" / "train")
    out = tmp_path / "export"
    # 1 MB shards of 24-px JPEGs: one shard each; shard rotation is checked below
    export_set(manifests={"train": str(manifest)}, out=str(out), wnids=WNIDS, fmts=["parquet", "webdataset"],
               shard_mb=1, info=INFO)
    return manifest, out


def test_an_export_loads_with_datasets_and_webdataset_as_the_manifest_says(exported, tmp_path, monkeypatch):
    import webdataset as wds
    from datasets import load_dataset

    manifest, out = exported
    rows = pd.read_csv(manifest, keep_default_na=False)
    monkeypatch.setenv("HF_DATASETS_CACHE", str(tmp_path / "hf-cache"))
    ds = load_dataset(str(out), split="train")
    assert ds.features["label"].names == WNIDS and len(ds) == len(rows)
    assert ds["id"] == rows["id"].tolist() and ds["prompt"] == rows["prompt"].tolist()
    assert [WNIDS[label] for label in ds["label"]] == rows["wnid"].tolist()
    first = np.asarray(Image.open(manifest.parent / rows["path"][0]).convert("RGB"))
    assert np.array_equal(np.asarray(ds[0]["image"].convert("RGB")), first)  # the same bytes, the same pixels

    samples = list(wds.WebDataset(str(out / "wds" / "train-000000.tar"), shardshuffle=False)
                   .decode("pil").to_tuple("jpg", "cls", "json"))
    assert [s[2]["id"] for s in samples] == rows["id"].tolist()
    assert [WNIDS[s[1]] for s in samples] == rows["wnid"].tolist()

    card = (out / "README.md").read_text()
    front = card.split("---")[1]
    assert "license: creativeml-openrail-m" in front and "path: data/train-*.parquet" in front
    assert "| n01440764 | 4 |" in card and "bansal2023leaving" in card and "steps: 3" in card
    listed = dict(line.split("  ")[::-1] for line in (out / "SHA256SUMS").read_text().splitlines())
    assert set(listed) == {"README.md", "manifest_train.csv", "data/train-00000-of-00001.parquet",
                           "wds/train-000000.tar"}
    assert formats.verify_checksums(out) == 4


def test_shards_rotate_at_their_size_and_the_same_set_exports_the_same_bytes(tmp_path):
    manifest = generated_set(tmp_path / "set", per_class=100, size=96)  # 300 images of ~15 KB: 2 row groups
    for name in ("a", "b"):
        export_set(manifests={"train": str(manifest)}, out=str(tmp_path / name), wnids=WNIDS,
                   fmts=["parquet", "webdataset"], shard_mb=1, info=INFO)
    tars = sorted((tmp_path / "a" / "wds").glob("*.tar"))
    parquets = sorted((tmp_path / "a" / "data").glob("*.parquet"))
    assert len(tars) >= 2 and len(parquets) >= 2
    assert parquets[-1].name == f"train-{len(parquets) - 1:05d}-of-{len(parquets):05d}.parquet"
    assert (tmp_path / "a" / "SHA256SUMS").read_text() == (tmp_path / "b" / "SHA256SUMS").read_text()


@pytest.mark.parametrize("fmt", ["parquet", "webdataset"])
def test_an_imported_export_has_the_same_rows_and_bytes(exported, tmp_path, fmt):
    manifest, out = exported
    target = tmp_path / f"imported_{fmt}" / "train" / "manifest.csv"
    summary = import_set(path=str(out), fmt=fmt, wnids=WNIDS, out_manifest=str(target),
                         out_summary=str(target.with_name("summary.json")))
    original, copy = pd.read_csv(manifest, keep_default_na=False), pd.read_csv(target, keep_default_na=False)
    assert copy["id"].tolist() == original["id"].tolist() and copy["wnid"].tolist() == original["wnid"].tolist()
    assert copy["seed"].astype(str).tolist() == original["seed"].astype(str).tolist()  # provenance kept
    for a, b in zip(original["path"], copy["path"]):
        assert (target.parent / b).read_bytes() == (manifest.parent / a).read_bytes()
    assert summary["checksums_verified"] == 4 and summary["per_class"]["counts"] == dict.fromkeys(WNIDS, 4)


def test_an_image_folder_imports_through_a_class_map_and_counts_an_unreadable_image(tmp_path):
    root = tmp_path / "theirs"
    for i, name in enumerate(["tench", "goldfish", "shark"]):
        (root / name).mkdir(parents=True)
        for k in range(2):
            Image.new("RGB", (8, 8), (i * 80, k * 90, 0)).save(root / name / f"{k}.png")
    (root / "shark" / "broken.jpg").write_bytes(b"not a jpeg")
    mapping = tmp_path / "map.csv"
    mapping.write_text("name,wnid\n" + "".join(f"{n},{w}\n" for n, w in zip(["tench", "goldfish", "shark"], WNIDS)))
    target = tmp_path / "out" / "manifest.csv"
    summary = import_set(path=str(root), fmt=None, wnids=WNIDS, class_map=str(mapping), out_manifest=str(target),
                         out_summary=str(tmp_path / "out" / "summary.json"))
    rows = pd.read_csv(target, keep_default_na=False)
    assert summary["format"] == "imagefolder" and len(rows) == 6
    assert summary["unreadable"] == 1 and summary["unreadable_first"][0].endswith("shark/broken.jpg")
    assert rows["wnid"].tolist() == [WNIDS[1]] * 2 + [WNIDS[2]] * 2 + [WNIDS[0]] * 2  # folders in name order
    with pytest.raises(GenerationError, match="class 'goldfish' of .*goldfish/0.png is not one of the dataset's classes"):
        import_set(path=str(root), fmt=None, wnids=WNIDS, out_manifest=str(tmp_path / "x" / "manifest.csv"),
                   out_summary=str(tmp_path / "x" / "summary.json"))
    assert not (tmp_path / "x" / "manifest.csv").exists()


def _without_checksums(out):
    (out / "SHA256SUMS").unlink()
    return out


@pytest.mark.parametrize("damage, message", [
    (lambda out: (out / "wds" / "train-000000.tar").write_bytes((out / "wds" / "train-000000.tar").read_bytes()[:5000]),
     r"wds/train-000000.tar: sha256 differs from .*SHA256SUMS"),
    (lambda out: _without_checksums(out) and (out / "wds" / "train-000000.tar").write_bytes(
        (out / "wds" / "train-000000.tar").read_bytes()[:5000]), r"cannot read .*train-000000.tar .*truncated"),
    (lambda out: (out / "data" / "train-00000-of-00001.parquet").unlink(),
     r"train-00000-of-00001.parquet: listed in .*SHA256SUMS but missing"),
], ids=["checksum-mismatch", "truncated-tar", "missing-shard"])
def test_a_damaged_copy_stops_the_import_naming_the_file_and_writes_nothing(exported, tmp_path, damage, message):
    _, out = exported
    damage(out)
    target = tmp_path / "imported" / "manifest.csv"
    with pytest.raises(GenerationError, match=message):
        import_set(path=str(out), fmt="webdataset", wnids=WNIDS, out_manifest=str(target),
                   out_summary=str(tmp_path / "imported" / "summary.json"))
    assert not target.exists() and not (tmp_path / "imported" / "images").exists()


def test_a_set_lacking_a_class_is_named(exported, tmp_path):
    _, out = exported
    with pytest.raises(GenerationError, match="no readable images of class n01530575"):
        import_set(path=str(out), fmt="parquet", wnids=WNIDS + ["n01530575"], out_manifest=str(tmp_path / "m.csv"),
                   out_summary=str(tmp_path / "s.json"))
    assert not (tmp_path / "m.csv").exists()


def test_export_memory_is_flat_in_the_sets_size(tmp_path):
    """Peak RSS of an export of 3,000 images against one of 300 (10x, ~50 MB of JPEGs more)."""
    peaks = {}
    for n in (100, 1000):
        manifest = generated_set(tmp_path / f"set{n}", per_class=n, size=128, seed=n)
        code = ("import resource, sys; sys.path.insert(0, 'workflow');"
                "from genrobust.share.export import export_set;"
                f"export_set(manifests={{'train': {str(manifest)!r}}}, out={str(tmp_path / f'out{n}')!r}, "
                f"wnids={WNIDS!r}, fmts=['parquet', 'webdataset'], shard_mb=8, info={INFO!r});"
                "print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)")
        done = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, check=True)
        peaks[n] = int(done.stdout.split()[-1]) / 1024  # MB
    data_mb = sum(p.stat().st_size for p in (tmp_path / "set1000").rglob("*.jpg")) / 1e6
    assert data_mb > 30
    print(f"export peak RSS: {peaks} MB for {data_mb:.0f} MB of images at 1000 per class")
    assert peaks[1000] - peaks[100] < 0.3 * data_mb, (peaks, data_mb)


def share_overlay(edit):
    def apply(config):
        config["check_paths"] = True
        edit(config)
    return beyond_config(apply)


@pytest.mark.parametrize("edit, message", [
    (lambda c: c["strategies"]["cl80copy"].update(path="/no/such/set"),
     "strategies.cl80copy.path: '/no/such/set' is not an existing folder"),
    (lambda c: c["datasets"]["demo10"]["generate"]["cl80copy"].update(val_shards=1),
     "datasets.demo10.generate.cl80copy.val_shards: an external set is imported as a train split only"),
    (lambda c: c["exports"][0].update(strategy="cl8O"), "exports[0].strategy: datasets.demo10.generate.cl8O is not set"),
    (lambda c: c["exports"][0].update(strategy="background", splits=["val"]),
     "exports[0].splits: datasets.demo10.generate.background.val_shards is 0"),
    (lambda c: c["strategies"]["cl80copy"].update(class_map="/no/map.csv"),
     "strategies.cl80copy.class_map: '/no/map.csv' is not an existing file"),
    (lambda c: c["strategies"]["cl80"].update(format="parquet"), "strategies.cl80.format"),
    (lambda c: c["strategies"]["cl80copy"].update(seeds_from="cl80copy"),
     "strategies.cl80copy.seeds_from: 'cl80copy' must be a strategy that makes its images"),
], ids=["missing-set", "val-split", "unknown-export", "export-split", "missing-class-map", "format-elsewhere",
        "copy-of-a-copy"])
def test_plan_time_checks_name_the_key(edit, message):
    with pytest.raises(ConfigError, match=message.replace("[", r"\[").replace("]", r"\]")):
        check_config(share_overlay(edit))


def test_the_overlay_plans_an_import_of_its_own_export():
    config = beyond_config()
    check_config(config)  # the exported folder does not exist yet: its export job makes it
    from genrobust.config import generation_jobs, generation_plan

    assert "demo10/cl80copy/train: imported from results/demo/export/demo10/cl80 (nothing generated)" in \
        generation_plan(config)
    assert not [j for j in generation_jobs(config) if j[1] == "cl80copy"]
    assert json.loads(json.dumps(config["exports"]))[0]["formats"] == ["parquet", "webdataset"]


def test_an_imported_copy_draws_its_mixture_rows_as_the_set_it_copies():
    from genrobust.config import draws_of
    from genrobust.mixtures import sample_mixture

    config = beyond_config()
    check_config(config)
    assert draws_of(config, "cl80copy") == "cl80" and draws_of(config, "cl80") == "cl80"
    assert draws_of(config, "real") == "real"
    original = sample_mixture({"real": 300, "cl80": 300}, "real_100+cl80_50", 0)
    copy = sample_mixture({"real": 300, "cl80copy": 300}, "real_100+cl80copy_50", 0, {"cl80copy": "cl80"})
    own = sample_mixture({"real": 300, "cl80copy": 300}, "real_100+cl80copy_50", 0)
    assert np.array_equal(original["cl80"], copy["cl80copy"]) and not np.array_equal(original["cl80"], own["cl80copy"])
