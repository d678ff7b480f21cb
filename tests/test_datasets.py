"""genrobust.datasets: class metadata, the native layouts of every test set, class subsets."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

from genrobust import datasets as ds
from genrobust.datasets import DatasetError
from genrobust.kinds import TEST_SETS

from conftest import subset_for_classes

WNIDS = ds.imagenet_wnids()
KIT_FOX = "n02119789"


def touch(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"x")
    return path


# --------------------------------------------------------------------------- class metadata


def test_class_metadata():
    assert len(WNIDS) == 1000 and WNIDS == sorted(WNIDS) and WNIDS[0] == "n01440764"
    desc = ds.imagenet_descriptions()
    assert desc[KIT_FOX] == "kit fox, Vulpes macrotis" and len(desc) == 1000
    r = ds.imagenet_r_wnids()
    assert len(r) == 200 and set(r) <= set(WNIDS) and "n02085620" in r  # Chihuahua


def test_class_metadata_matches_timm():
    """datasets reads timm's metadata files without importing timm (and torch); same answers."""
    import pkgutil

    from timm.data import ImageNetInfo

    info = ImageNetInfo()
    assert WNIDS == info.label_names()
    assert ds.imagenet_descriptions() == info.label_descriptions(as_dict=True)
    raw = pkgutil.get_data("timm.data", "_info/imagenet_r_synsets.txt").decode().split()
    assert ds.imagenet_r_wnids() == sorted(raw)


def test_load_class_list(tmp_path):
    assert ds.load_class_list("imagenet1k") == WNIDS
    f = tmp_path / "classes.txt"
    f.write_text("# two classes\nn02085620\n\nn01558993  \n")
    assert ds.load_class_list(f) == ["n01558993", "n02085620"]


@pytest.mark.parametrize("entry", ["n0208562", "dog", "n99999999"])
def test_load_class_list_rejects_bad_entries(tmp_path, entry):
    f = tmp_path / "classes.txt"
    f.write_text(f"n02085620\n{entry}\n")
    with pytest.raises(DatasetError, match=entry) as e:
        ds.load_class_list(f)
    assert str(f) in str(e.value)


def test_load_class_list_missing_and_duplicate(tmp_path):
    with pytest.raises(DatasetError, match="nope.txt"):
        ds.load_class_list(tmp_path / "nope.txt")
    f = tmp_path / "dup.txt"
    f.write_text("n02085620\nn02085620\n")
    with pytest.raises(DatasetError, match="duplicate"):
        ds.load_class_list(f)


# --------------------------------------------------------------------------- folder layouts


def test_index_image_folder(tmp_path):
    a, b = WNIDS[5], WNIDS[3]
    for name in ["b.JPEG", "a.jpg", "c.PNG", "notes.txt", ".hidden.jpg"]:
        touch(tmp_path / a / name)
    touch(tmp_path / b / f"{b}_1.JPEG")
    touch(tmp_path / WNIDS[7] / "x.JPEG")  # not requested: ignored
    df = ds.index_image_folder(tmp_path, [a, b])
    assert list(df.columns) == ["path", "wnid"]
    assert df["wnid"].tolist() == [b, a, a, a]
    assert [Path(p).name for p in df["path"]] == [f"{b}_1.JPEG", "a.jpg", "b.JPEG", "c.PNG"]
    with pytest.raises(DatasetError, match=str(tmp_path / WNIDS[9])):
        ds.index_image_folder(tmp_path, [a, WNIDS[9]])


def test_index_imagenet_kind(tmp_path):
    touch(tmp_path / "val" / WNIDS[2] / "ILSVRC2012_val_00000001.JPEG")
    touch(tmp_path / "val" / WNIDS[1] / "ILSVRC2012_val_00000002.JPEG")
    df = ds.index_test_set("imagenet", tmp_path / "val")
    assert list(df.columns) == ["path", "wnids"] and df["wnids"].tolist() == [WNIDS[1], WNIDS[2]]
    touch(tmp_path / "val" / "n99999999" / "x.JPEG")
    with pytest.raises(DatasetError, match="n99999999") as e:
        ds.index_test_set("imagenet", tmp_path / "val")
    assert str(tmp_path / "val") in str(e.value)


def test_every_test_set_kind_has_an_indexer():
    assert set(ds.TEST_SET_INDEXERS) == set(TEST_SETS)


def test_missing_root_and_empty_and_flat(tmp_path):
    for kind in TEST_SETS:
        with pytest.raises(DatasetError, match=str(tmp_path / "absent")):
            ds.index_test_set(kind, tmp_path / "absent")
    (tmp_path / "empty").mkdir()
    with pytest.raises(DatasetError, match="no <wnid>/ subfolders"):
        ds.index_test_set("imagenet", tmp_path / "empty")
    touch(tmp_path / "flat" / "ILSVRC2012_val_00000001.JPEG")
    with pytest.raises(DatasetError, match="flat val"):
        ds.index_test_set("imagenet", tmp_path / "flat")
    with pytest.raises(DatasetError, match="unknown"):
        ds.index_test_set("imagenet_a", tmp_path / "flat")


def test_imagenet_r_only_its_200(tmp_path):
    r = ds.imagenet_r_wnids()
    touch(tmp_path / r[0] / "art_0.jpg")
    touch(tmp_path / r[-1] / "cartoon_0.jpg")
    assert ds.index_test_set("imagenet_r", tmp_path)["wnids"].tolist() == [r[0], r[-1]]
    not_r = next(w for w in WNIDS if w not in r)
    touch(tmp_path / not_r / "x.jpg")
    with pytest.raises(DatasetError, match=not_r):
        ds.index_test_set("imagenet_r", tmp_path)


def test_imagenet_v2_folder_numbers(tmp_path):
    for i in [999, 0, 151, 10, 2]:
        touch(tmp_path / str(i) / "abc.jpeg")
    df = ds.index_test_set("imagenet_v2", tmp_path)
    # numeric order (not string order: "10" < "151" < "2"), and index i -> i-th sorted wnid
    assert df["wnids"].tolist() == [WNIDS[0], WNIDS[2], WNIDS[10], WNIDS[151], WNIDS[999]]
    assert WNIDS[151] == "n02085620"  # Chihuahua, class 151 in every ImageNet class list
    touch(tmp_path / "1000" / "abc.jpeg")
    with pytest.raises(DatasetError, match="1000"):
        ds.index_test_set("imagenet_v2", tmp_path)


def test_imagenet_c(tmp_path):
    for corruption in ["contrast", "gaussian_noise"]:
        for sev in [1, 5]:
            touch(tmp_path / corruption / str(sev) / WNIDS[4] / "a.JPEG")
            touch(tmp_path / corruption / str(sev) / WNIDS[8] / "b.JPEG")
    # Without a list, the 15 standard corruptions are required, and named when missing.
    with pytest.raises(DatasetError, match="shot_noise"):
        ds.index_test_set("imagenet_c", tmp_path)
    df = ds.index_test_set("imagenet_c", tmp_path, corruptions=["contrast", "gaussian_noise"])
    assert list(df.columns) == ["path", "wnids", "corruption", "severity"]
    assert len(df) == 4 and set(df["severity"]) == {5} and set(df["corruption"]) == {"contrast", "gaussian_noise"}
    df = ds.index_test_set("imagenet_c", tmp_path, severities=[1, 5], corruptions=["contrast"])
    assert df["severity"].tolist() == [1, 1, 5, 5] and df["wnids"].tolist() == [WNIDS[4], WNIDS[8]] * 2
    with pytest.raises(DatasetError, match=str(tmp_path / "contrast" / "3")):
        ds.index_test_set("imagenet_c", tmp_path, severities=[3], corruptions=["contrast"])
    with pytest.raises(DatasetError, match="options"):
        ds.index_test_set("imagenet", tmp_path, severities=[3])


def test_imagenet_c_averages_the_15_standard_corruptions_not_the_extras(tmp_path):
    extras = ["speckle_noise", "gaussian_blur", "spatter", "saturate"]
    for corruption in [*ds.IMAGENET_C_CORRUPTIONS, *extras]:
        touch(tmp_path / corruption / "5" / WNIDS[4] / "a.JPEG")
    assert len(ds.IMAGENET_C_CORRUPTIONS) == 15 and not set(extras) & set(ds.IMAGENET_C_CORRUPTIONS)
    df = ds.index_test_set("imagenet_c", tmp_path)
    assert sorted(df["corruption"]) == sorted(ds.IMAGENET_C_CORRUPTIONS)
    everything = ds.index_test_set("imagenet_c", tmp_path, corruptions=[*ds.IMAGENET_C_CORRUPTIONS, *extras])
    assert everything["corruption"].nunique() == 19


# --------------------------------------------------------------------------- ObjectNet


def write_objectnet(root: Path, shift: int = 1) -> dict:
    """A hand-made ObjectNet: the v2 order is the PyTorch order rotated by `shift`, so line j
    holds PyTorch class j - shift, and pytorch_to_imagenet_2012_id maps pt -> pt + shift.
    Reading line indices as PyTorch indices, or using the map forwards instead of inverted,
    lands on a different class (kit fox 278 -> 277 or 279)."""
    desc = ds.imagenet_descriptions()
    m = root / "mappings"
    m.mkdir(parents=True)
    lines = [desc[WNIDS[(j - shift) % 1000]] for j in range(1000)]
    (m / "imagenet_to_label_2012_v2").write_text("\n".join(lines) + "\n")
    (m / "pytorch_to_imagenet_2012_id.json").write_text(json.dumps({str(p): (p + shift) % 1000 for p in range(1000)}))
    folders = {"kit_fox": "Kit fox", "dogs": "Dog", "winter_glove": "Winter glove"}
    (m / "folder_to_objectnet_label.json").write_text(json.dumps(folders))
    to_in = {"Kit fox": desc[KIT_FOX], "Dog": desc["n02085620"] + "; " + desc["n02106550"]}  # Chihuahua; Rottweiler
    (m / "objectnet_to_imagenet_1k.json").write_text(json.dumps(to_in))
    for folder in folders:
        touch(root / "images" / folder / "0a1b.png")
        touch(root / "images" / folder / "ffee.png")
    return folders


def test_objectnet_chain_inverts_the_v2_order(tmp_path):
    write_objectnet(tmp_path)
    got = ds.objectnet_folder_wnids(tmp_path / "mappings")
    assert got == {"dogs": ["n02085620", "n02106550"], "kit_fox": [KIT_FOX]}
    k = WNIDS.index(KIT_FOX)
    assert WNIDS[k - 1] != KIT_FOX and WNIDS[k + 1] != KIT_FOX  # the two wrong readings differ


def test_objectnet_index_any_of(tmp_path):
    write_objectnet(tmp_path)
    df = ds.index_test_set("objectnet", tmp_path)
    assert df["wnids"].tolist() == ["n02085620;n02106550"] * 2 + [KIT_FOX] * 2
    assert not df["path"].str.contains("winter_glove").any()  # no ImageNet class: not indexed


@pytest.mark.parametrize("name", ds.OBJECTNET_MAPPINGS)
def test_objectnet_missing_mapping_file(tmp_path, name):
    write_objectnet(tmp_path)
    (tmp_path / "mappings" / name).unlink()
    with pytest.raises(DatasetError, match=str(tmp_path / "mappings" / name)):
        ds.index_test_set("objectnet", tmp_path)


def test_objectnet_unknown_description(tmp_path):
    write_objectnet(tmp_path)
    (tmp_path / "mappings" / "objectnet_to_imagenet_1k.json").write_text(json.dumps({"Kit fox": "kit fox"}))
    with pytest.raises(DatasetError, match="'kit fox'"):
        ds.objectnet_folder_wnids(tmp_path / "mappings")


# --------------------------------------------------------------------------- class subsets


def test_subset_for_classes():
    index = pd.DataFrame({
        "path": ["a", "b", "c", "d"],
        "wnids": ["n02085620;n02106550", "n02119789", "n01558993", "n02106550"],
    })
    # a 10-class model that knows Chihuahua and robin but not Rottweiler or kit fox
    df, mask = subset_for_classes(index, ["n01558993", "n02085620", "n03594734"])
    assert df["path"].tolist() == ["a", "c"] and df["wnids"].tolist() == ["n02085620", "n01558993"]
    assert mask == ["n01558993", "n02085620"]  # jean is a model class but absent from the test set
    # an ImageNet-1K model: every image, mask = the test set's classes (ImageNet-R's 200, ObjectNet's 125)
    df, mask = subset_for_classes(index, WNIDS)
    assert len(df) == 4 and mask == ["n01558993", "n02085620", "n02106550", "n02119789"]
    assert df["wnids"][0] == "n02085620;n02106550"
    df, mask = subset_for_classes(index, ["n03594734"])
    assert df.empty and mask == []


def test_empty_class_folders_and_incomplete_test_sets_are_reported(tmp_path, capsys):
    from PIL import Image

    classes = WNIDS[:3]
    (tmp_path / "classes.txt").write_text("\n".join(classes) + "\n")
    for i, wnid in enumerate(classes):
        (tmp_path / "train" / wnid).mkdir(parents=True)
        if i < 2:  # the third class folder is empty
            Image.new("RGB", (8, 8)).save(tmp_path / "train" / wnid / f"{wnid}_0.JPEG")
    with pytest.raises(DatasetError, match=r"1 of the 3 class folders hold no image \(n01484850\).*allow_empty_classes"):
        ds.write_dataset_index(tmp_path / "train", tmp_path / "classes.txt", tmp_path / "train.csv")
    assert not (tmp_path / "train.csv").exists()
    index = ds.write_dataset_index(tmp_path / "train", tmp_path / "classes.txt", tmp_path / "train.csv",
                                   allow_empty_classes=True)
    assert len(index) == 2 and "WARNING" in capsys.readouterr().err
    # a test set of 2 of ImageNet's 1000 classes: a warning, or an error when config wants it complete
    ds.write_test_set_index("imagenet", tmp_path / "train", tmp_path / "t.csv")
    assert "2 images in 2 of the 1000 classes" in capsys.readouterr().err
    with pytest.raises(DatasetError, match="2 of the 1000 classes.*test_sets.<name>.complete: false"):
        ds.write_test_set_index("imagenet", tmp_path / "train", tmp_path / "t2.csv", complete=True)
