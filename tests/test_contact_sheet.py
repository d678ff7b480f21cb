"""Figure 6 contact sheet (genrobust.contact_sheet): layout, determinism, missing images."""

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from genrobust.contact_sheet import MISSING_CROSS, MISSING_FILL, contact_sheet

WNIDS = ["n00000001", "n00000002", "n00000003"]
NAMES = {w: f"class {i}" for i, w in enumerate(WNIDS)}
PER_SOURCE = 5


def color_of(source: int, c: int, k: int) -> tuple[int, int, int]:
    """A distinct solid colour per image, far apart so that JPEG cannot blur one into another."""
    return (40 + 80 * source, 40 + 80 * c, 10 + 45 * k)


@pytest.fixture
def sources(tmp_path):
    """Two generated manifests (paths relative to their folders) and a real index (absolute paths)."""
    colors = {}
    manifests = {}
    for s, label in enumerate(["Class labels", "Variation"], start=1):
        root = tmp_path / "generated" / label.replace(" ", "_")
        (root / "shard~0").mkdir(parents=True)
        rows = []
        for c, wnid in enumerate(WNIDS):
            for k in range(PER_SOURCE):
                rel = f"shard~0/{label[0]}-{wnid}-{k:05d}.jpg"
                Image.new("RGB", (48, 48), color_of(s, c, k)).save(root / rel, quality=95)
                colors[str(root / rel)] = color_of(s, c, k)
                rows.append({"id": rel, "path": rel, "wnid": wnid, "prompt": f"a photo of a class {c}."})
        pd.DataFrame(rows).to_csv(root / "manifest.csv", index=False)
        manifests[label] = str(root / "manifest.csv")
    real_rows = []
    (tmp_path / "real").mkdir()
    for c, wnid in enumerate(WNIDS):
        for k in range(PER_SOURCE):
            path = tmp_path / "real" / f"{wnid}_{k}.JPEG"
            Image.new("RGB", (60, 40), color_of(0, c, k)).save(path, quality=95)  # not square: cropped
            colors[str(path)] = color_of(0, c, k)
            real_rows.append({"path": str(path), "wnid": wnid, "label": c})
    pd.DataFrame(real_rows).to_csv(tmp_path / "real.csv", index=False)
    return manifests, str(tmp_path / "real.csv"), colors


def tile_center(sheet: np.ndarray, layout: dict, group: str, wnid: str, i: int) -> np.ndarray:
    x0, y0 = layout["origin"][group][wnid]
    t = layout["tile"]
    return sheet[y0 + t // 2 - 8, x0 + i * (t + 2) + t // 2].astype(int)  # off the X's centre line


def test_grid_layout_and_tiles(sources, tmp_path):
    manifests, real, colors = sources
    out = tmp_path / "fig6.png"
    layout = contact_sheet(manifests, out, per_class=2, real_index=real, class_names=NAMES, seed=0, tile=40)
    assert layout["groups"] == ["Real", "Class labels", "Variation"]
    assert layout["classes"] == WNIDS and layout["rows"] == 3 and layout["columns"] == 3 * 2
    assert layout["missing"] == 0 and layout["empty"] == 0
    with Image.open(out) as image:
        assert image.size == (layout["width"], layout["height"])
        sheet = np.asarray(image.convert("RGB"))
    # The grid alone needs columns x rows tiles with thin gaps; labels and headers add to it.
    assert layout["width"] >= 6 * 40 + 3 * 2 + 2 * 10 and layout["height"] >= 3 * 40 + 2 * 2
    n_tiles = 0
    for group in layout["groups"]:
        for wnid in WNIDS:
            picked = layout["cells"][group][wnid]
            assert len(picked) == 2 and len(set(picked)) == 2
            for i, path in enumerate(picked):
                assert np.abs(tile_center(sheet, layout, group, wnid, i) - colors[path]).max() <= 12
                n_tiles += 1
    assert n_tiles == 3 * 3 * 2
    # Generated paths resolve against their manifest's folder.
    assert all(p.startswith(str(tmp_path / "generated" / "Variation")) for p in layout["cells"]["Variation"][WNIDS[0]])


def test_deterministic_for_a_seed(sources, tmp_path):
    manifests, real, _ = sources
    a = contact_sheet(manifests, tmp_path / "a.png", per_class=2, real_index=real, class_names=NAMES, seed=3)
    b = contact_sheet(manifests, tmp_path / "b.png", per_class=2, real_index=real, class_names=NAMES, seed=3)
    assert a["cells"] == b["cells"]
    assert (tmp_path / "a.png").read_bytes() == (tmp_path / "b.png").read_bytes()
    # Shuffling a manifest's rows changes nothing; another seed picks other images.
    label = "Class labels"
    pd.read_csv(manifests[label]).sample(frac=1, random_state=1).to_csv(manifests[label], index=False)
    c = contact_sheet(manifests, tmp_path / "c.png", per_class=2, real_index=real, class_names=NAMES, seed=3)
    assert c["cells"] == a["cells"]
    others = [contact_sheet(manifests, tmp_path / f"s{s}.png", per_class=2, real_index=real,
                            class_names=NAMES, seed=s)["cells"] for s in (4, 5)]
    assert any(cells != a["cells"] for cells in others)


def test_missing_and_unreadable_images_are_counted(sources, tmp_path):
    manifests, real, _ = sources
    frame = pd.read_csv(manifests["Variation"])
    root = tmp_path / "generated" / "Variation"
    (root / frame["path"][0]).unlink()  # missing
    (root / frame["path"][1]).write_bytes(b"not a jpeg")  # unreadable
    frame.loc[len(frame)] = {"id": "ghost", "path": "shard~0/ghost.jpg", "wnid": WNIDS[2], "prompt": ""}
    frame.to_csv(manifests["Variation"], index=False)
    layout = contact_sheet(manifests, tmp_path / "fig.png", per_class=PER_SOURCE + 1, real_index=real,
                           class_names=NAMES, tile=32)
    # Class 0 shows all its 5 variation images (2 bad) and class 2 its 6 (1 ghost).
    assert layout["missing"] == 3
    # Every other cell has only 5 images for 6 slots: one empty tile each.
    assert layout["empty"] == 3 * 3 - 1
    sheet = np.asarray(Image.open(tmp_path / "fig.png").convert("RGB")).astype(int)
    x0, y0 = layout["origin"]["Variation"][WNIDS[0]]
    bad = [i for i, p in enumerate(layout["cells"]["Variation"][WNIDS[0]]) if p and p.endswith(frame["path"][0])][0]
    x, y = x0 + bad * (32 + 2), y0
    assert tuple(sheet[y + 4, x + 16]) == MISSING_FILL  # grey tile ...
    assert tuple(sheet[y + 16, x + 16]) == MISSING_CROSS  # ... with an X through its centre


def test_defaults_pick_classes_and_names(sources, tmp_path):
    manifests, _, _ = sources
    # Without a real index, classes present in every manifest, capped by max_classes; unknown
    # (non-ImageNet) wnids are labelled by the wnid itself.
    layout = contact_sheet(manifests, tmp_path / "fig.png", max_classes=2, per_class=1)
    assert len(layout["classes"]) == 2 and set(layout["classes"]) <= set(WNIDS)
    assert layout["classes"] == sorted(layout["classes"]) and layout["groups"] == list(manifests)
    with pytest.raises(ValueError, match="at least one"):
        contact_sheet({}, tmp_path / "none.png")


def test_clip_class_names_for_imagenet_wnids(tmp_path):
    root = tmp_path / "gen"
    root.mkdir()
    Image.new("RGB", (16, 16), (200, 30, 30)).save(root / "a.jpg")
    pd.DataFrame([{"path": "a.jpg", "wnid": "n01440764"}]).to_csv(root / "manifest.csv", index=False)
    layout = contact_sheet({"cl80": str(root / "manifest.csv")}, tmp_path / "fig.png", per_class=1)
    assert layout["classes"] == ["n01440764"] and layout["missing"] == 0
    assert not list(tmp_path.glob(".fig.png.*"))  # written atomically, no temporary left


def test_command_line(sources, tmp_path, capsys):
    from genrobust.contact_sheet import main

    manifests, real, _ = sources
    classes = tmp_path / "classes.txt"
    classes.write_text("# rows\n" + "\n".join(WNIDS[::-1]) + "\n")
    names = tmp_path / "names.tsv"
    names.write_text("".join(f"{w}\t{n}\n" for w, n in NAMES.items()))
    args = ["--real", real, "--classes", str(classes), "--class-names", str(names), "--per-class", "1",
            "--out", str(tmp_path / "cli.png")] + [f"--manifest={k}={v}" for k, v in manifests.items()]
    assert main(args) == 0
    assert "3 classes x 3 groups" in capsys.readouterr().err
    assert Image.open(tmp_path / "cli.png").size[0] > 3 * 96
    with pytest.raises(ValueError, match="LABEL=PATH"):
        main(["--manifest", "no-label", "--out", str(tmp_path / "x.png")])
