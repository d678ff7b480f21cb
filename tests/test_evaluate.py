"""Unit tests of genrobust.evaluate and genrobust.scoring: masking, any-of scoring, subsets, unreadable images."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import torch
from PIL import Image

from genrobust.datasets import IMAGENET_MEAN, IMAGENET_STD
from genrobust.evaluate import TestImages, evaluate_classifier, write_result
from genrobust.scoring import score_logits, select_test_subset

WNIDS = [f"n{i:08d}" for i in range(10)]
SMALL = dict(res=32, crop_ratio=0.875, batch_size=3, num_workers=0, device="cpu")


def colour_of(k: int) -> tuple[int, int, int]:
    """The solid colour that ColourModel classifies as class k."""
    return (20 * k + 10, 128, 64)


class ColourModel(torch.nn.Module):
    """Logit c = -(u - c)^2 + bias_c, u = the mean red value on the class scale of colour_of."""

    def __init__(self, n_classes: int, bias: dict[int, float] | None = None, left_half: bool = False):
        super().__init__()
        b = torch.zeros(n_classes)
        for c, v in (bias or {}).items():
            b[c] = v
        self.register_buffer("bias", b)
        self.left_half = left_half

    def forward(self, x):
        if self.left_half:
            x = x[..., : x.shape[-1] // 2]
        red = x[:, 0].mean((1, 2)) * IMAGENET_STD[0] + IMAGENET_MEAN[0]
        u = red * 255 / 20 - 0.5
        classes = torch.arange(self.bias.numel(), device=x.device, dtype=x.dtype)
        return -((u[:, None] - classes) ** 2) + self.bias


def write_image(path, colour, size=(40, 30)):
    Image.new("RGB", size, colour).save(path)
    return str(path)


def make_index(tmp_path, rows, ext="png", **columns) -> pd.DataFrame:
    """rows: (wnids string, colour class) pairs; extra columns as lists."""
    paths = [write_image(tmp_path / f"img{i}.{ext}", colour_of(k)) for i, (_, k) in enumerate(rows)]
    return pd.DataFrame({"path": paths, "wnids": [w for w, _ in rows], **columns})


# ---------------------------------------------------------------- score_logits


def test_objectnet_any_of():
    logits = torch.full((3, 10), -1.0)
    logits[0, 5] = 2.0  # argmax 5, in {3, 5}: hit
    logits[1, 4] = 2.0  # argmax 4: miss
    logits[2, 5] = 2.0
    logits[2, 7] = 9.0  # global max outside the mask: ignored
    mask = [3, 4, 5]
    hits = score_logits(logits, [{3, 5}] * 3, mask)
    assert hits.tolist() == [True, False, True]
    # without the mask, image 2's argmax (7) would have missed
    assert score_logits(logits, [{3, 5}] * 3, list(range(10))).tolist() == [True, False, False]


def test_imagenet_r_style_masking():
    logits = torch.tensor([[9.0, 1.0, 0.0, 5.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0]])
    targets = [{3}]
    assert logits.argmax(1).item() == 0  # unmasked: a class the set does not cover
    assert not score_logits(logits, targets, list(range(10))).item()
    assert score_logits(logits, targets, [1, 3, 5, 7]).item()


def test_top5_with_small_masks():
    logits = torch.arange(10.0).flip(0)[None].repeat(2, 1)  # class 0 best ... class 9 worst
    mask3 = [7, 8, 9]
    # fewer than 5 masked classes: all of them are the top-5
    assert score_logits(logits, [{9}, {2}], mask3, k=5).tolist() == [True, False]
    mask6 = [0, 1, 2, 3, 4, 5]
    # class 5 ranks 6th within the mask: a top-5 miss, class 4 ranks 5th: a hit
    assert score_logits(logits, [{5}, {4}], mask6, k=5).tolist() == [False, True]
    assert score_logits(logits, [{5}, {4}], mask6, k=1).tolist() == [False, False]


def test_select_test_subset_partial_overlap():
    df = pd.DataFrame(
        {"path": list("abcde"), "wnids": [WNIDS[2], WNIDS[5], f"{WNIDS[6]};{WNIDS[3]}", WNIDS[3], " ;"]}
    )
    kept, targets, mask = select_test_subset(df, WNIDS[:4])
    assert kept["path"].tolist() == ["a", "c", "d"]
    assert targets == [[2], [3], [3]]
    assert mask == [2, 3]


# ---------------------------------------------------------------- evaluate_classifier


def test_masking_at_model_level(tmp_path):
    model = ColourModel(10, bias={9: 100.0})  # class 9 is always the global argmax
    df = make_index(tmp_path, [(WNIDS[k], k) for k in range(4) for _ in range(2)])
    res = evaluate_classifier(model, WNIDS, df, **SMALL)
    assert res["n"] == 8 and res["classes"] == 4
    assert res["top1"] == 1.0 and res["top5"] == 1.0  # mask of 4 < 5
    assert res["per_class"] == {WNIDS[k]: [2, 2] for k in range(4)}
    assert res["n_unreadable"] == 0 and res["unreadable"] == []
    assert "per_corruption" not in res and "id_subsets" not in res


def test_partial_class_overlap(tmp_path):
    model = ColourModel(4)
    rows = [
        (WNIDS[2], 2),  # hit
        (WNIDS[3], 3),  # hit
        (WNIDS[5], 5),  # no class of the model: dropped
        (f"{WNIDS[6]};{WNIDS[3]}", 3),  # any-of, only WNIDS[3] is a model class: hit
        (WNIDS[2], 3),  # miss
    ]
    res = evaluate_classifier(model, WNIDS[:4], make_index(tmp_path, rows), **SMALL)
    assert res["n"] == 4 and res["n_outside_classes"] == 1 and res["n_indexed"] == 5
    assert res["classes"] == 2
    assert res["top1"] == pytest.approx(0.75)
    assert res["per_class"] == {WNIDS[2]: [1, 2], WNIDS[3]: [2, 2]}


def test_no_overlap_is_an_error(tmp_path):
    df = make_index(tmp_path, [(WNIDS[7], 7)])
    with pytest.raises(ValueError, match="no test image"):
        evaluate_classifier(ColourModel(4), WNIDS[:4], df, **SMALL)


def test_per_corruption(tmp_path):
    rows = [(WNIDS[1], 1), (WNIDS[2], 2), (WNIDS[1], 1), (WNIDS[2], 0)]
    df = make_index(tmp_path, rows, corruption=["fog", "fog", "snow", "snow"], severity=[5, 5, 5, 3])
    res = evaluate_classifier(ColourModel(10), WNIDS, df, **SMALL)
    assert res["per_corruption"] == {"fog": 1.0, "snow": 0.5}
    assert res["mean_corruption_top1"] == pytest.approx(0.75)
    assert res["per_corruption_severity"]["snow"] == {"3": 0.0, "5": 1.0}
    assert res["top1"] == pytest.approx(0.75)


def test_id_subsets_match_separate_runs(tmp_path):
    model = ColourModel(6)
    class_wnids = WNIDS[:6]
    rows = [(WNIDS[k], k) for k in range(6)] + [
        (WNIDS[2], 4),  # miss over 6 classes; a hit over "r"'s classes {0, 1, 2}, a miss over "o"'s
        (WNIDS[0], 1),  # miss everywhere
        (WNIDS[4], 5),  # miss over 6 classes; a hit over subset "o"'s classes {2, 4}
    ]
    df = make_index(tmp_path, rows)
    subsets = {"r": WNIDS[:3], "o": [WNIDS[2], WNIDS[4], "n99999999"]}
    res = evaluate_classifier(model, class_wnids, df, id_subsets=subsets, **SMALL)
    assert res["top1"] == pytest.approx(6 / 9)
    for name, wnids in subsets.items():
        filtered = df[df["wnids"].isin(wnids)]
        alone = evaluate_classifier(model, class_wnids, filtered, **SMALL)
        assert res["id_subsets"][name] == pytest.approx(alone["top1"])
        assert res["id_subsets_n"][name] == alone["n"]
        assert res["id_subsets_classes"][name] == alone["classes"]
    assert res["id_subsets"]["r"] == pytest.approx(4 / 5)
    assert res["id_subsets"]["o"] == pytest.approx(3 / 4)


def test_unreadable_images_are_excluded(tmp_path, capsys):
    df = make_index(tmp_path, [(WNIDS[k], k) for k in range(4)])
    garbage = tmp_path / "garbage.JPEG"
    garbage.write_bytes(b"this is not an image" * 10)
    good = tmp_path / "good.jpg"
    Image.new("RGB", (64, 64), colour_of(1)).save(good, quality=95)
    truncated = tmp_path / "truncated.jpg"
    truncated.write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    bad = pd.DataFrame({"path": [str(garbage), str(truncated)], "wnids": [WNIDS[1], WNIDS[1]]})
    df = pd.concat([df.iloc[:2], bad, df.iloc[2:]], ignore_index=True)
    res = evaluate_classifier(ColourModel(4), WNIDS[:4], df, **{**SMALL, "num_workers": 2})
    assert res["n_unreadable"] == 2
    assert res["unreadable"] == [str(garbage), str(truncated)]
    assert res["n"] == 4 and res["top1"] == 1.0
    assert res["per_class"][WNIDS[1]] == [1, 1]
    err = capsys.readouterr().err
    assert "WARNING" in err and "garbage.JPEG" in err


def test_all_unreadable_is_an_error(tmp_path):
    bad = tmp_path / "bad.png"
    bad.write_bytes(b"\x89PNG broken")
    df = pd.DataFrame({"path": [str(bad)], "wnids": [WNIDS[0]]})
    with pytest.raises(RuntimeError, match="could be read"):
        evaluate_classifier(ColourModel(4), WNIDS[:4], df, **SMALL)


def test_flip_tta(tmp_path):
    im = Image.new("RGB", (40, 40), colour_of(1))
    im.paste(Image.new("RGB", (20, 40), colour_of(3)), (20, 0))
    im.save(tmp_path / "half.png")
    df = pd.DataFrame({"path": [str(tmp_path / "half.png")] * 3, "wnids": [WNIDS[1], WNIDS[3], WNIDS[2]]})
    model = ColourModel(5, left_half=True)
    plain = evaluate_classifier(model, WNIDS[:5], df, **SMALL)
    tta = evaluate_classifier(model, WNIDS[:5], df, flip_tta=True, **SMALL)
    # the left half says 1, the mirrored left half says 3; averaged logits peak at 2
    assert plain["per_class"][WNIDS[1]] == [1, 1] and plain["per_class"][WNIDS[2]] == [0, 1]
    assert tta["per_class"][WNIDS[2]] == [1, 1] and tta["per_class"][WNIDS[1]] == [0, 1]


def test_precision_and_output_checks(tmp_path):
    df = make_index(tmp_path, [(WNIDS[0], 0)])
    # reduced precision is a CUDA-only switch; on the CPU it runs in fp32
    assert evaluate_classifier(ColourModel(4), WNIDS[:4], df, precision="bf16", **SMALL)["top1"] == 1.0
    with pytest.raises(ValueError, match="precision"):
        evaluate_classifier(ColourModel(4), WNIDS[:4], df, precision="int8", **SMALL)
    with pytest.raises(ValueError, match="does not match"):
        evaluate_classifier(ColourModel(5), WNIDS[:4], df, **SMALL)


# ---------------------------------------------------------------- preprocessing


def test_border_crop_removes_exactly_two_pixels(tmp_path):
    im = Image.new("RGB", (20, 24), (255, 0, 0))
    im.paste(Image.new("RGB", (16, 20), (0, 255, 0)), (2, 2))
    path = write_image(tmp_path / "border.png", (0, 0, 0))
    im.save(path)

    cropped = TestImages([path], border_crop=2).load_image(path)
    assert cropped.size == (16, 20)
    assert np.all(np.asarray(cropped) == (0, 255, 0))
    one = np.asarray(TestImages([path], border_crop=1).load_image(path))
    assert one.shape == (22, 18, 3) and np.all(one[0] == (255, 0, 0)) and np.all(one[1:-1, 1:-1] == (0, 255, 0))

    x, i, err = TestImages([path], res=16, crop_ratio=1.0, border_crop=2)[0]
    assert (i, err) == (0, "")
    rgb = x * torch.tensor(IMAGENET_STD)[:, None, None] + torch.tensor(IMAGENET_MEAN)[:, None, None]
    assert torch.allclose(rgb, torch.tensor([0.0, 1.0, 0.0])[:, None, None].expand(3, 16, 16), atol=1e-5)
    x0, _, _ = TestImages([path], res=16, crop_ratio=1.0)[0]
    assert not torch.allclose(x0, x)  # without the crop the red border leaks in


def test_default_preprocessing_shape_and_geometry(tmp_path):
    # 512x256: shorter side -> 256 (no-op), centre crop 224 keeps columns 144..367
    im = Image.new("RGB", (512, 256), (255, 0, 0))
    im.paste(Image.new("RGB", (144, 256), (0, 0, 255)), (0, 0))
    path = tmp_path / "wide.png"
    im.save(path)
    x, _, _ = TestImages([path])[0]
    assert x.shape == (3, 224, 224)
    rgb = x * torch.tensor(IMAGENET_STD)[:, None, None] + torch.tensor(IMAGENET_MEAN)[:, None, None]
    assert torch.allclose(rgb[0], torch.ones(224, 224), atol=1e-5)  # no blue column survived


def test_write_result(tmp_path):
    out = tmp_path / "sub" / "result.json"
    write_result(out, {"top1": 0.5, "n": np.int64(4), "mean_corruption_top1": float("nan")}, {"model": "m.pt"})
    data = json.loads(out.read_text())
    assert data == {"top1": 0.5, "n": 4, "mean_corruption_top1": None, "meta": {"model": "m.pt"}}
    assert list(out.parent.iterdir()) == [out]  # no temporary file left behind
    with pytest.raises(KeyError):
        write_result(out, {"meta": 1}, {})


def _framed(tmp_path, size: int = 224, frame: int = 12) -> str:
    """An ImageNet-C-like image: a 224-px square, green, with a red frame `frame` px wide."""
    im = Image.new("RGB", (size, size), (255, 0, 0))
    im.paste(Image.new("RGB", (size - 2 * frame, size - 2 * frame), (0, 255, 0)), (frame, frame))
    path = tmp_path / "framed.png"
    im.save(path)
    return str(path)


def test_imagenet_c_field_of_view_is_kept_at_crop_ratio_1(tmp_path):
    """ImageNet-C's images are already 224-px centre crops of val: at the configured res 256 and
    crop_ratio 0.875 they would be resized to 293 and cropped again, losing ~6% per side (here the
    red frame); at crop_ratio 1.0 the whole image is seen."""
    path = _framed(tmp_path)

    def red_at_edges(crop_ratio):
        x, _, _ = TestImages([path], res=256, crop_ratio=crop_ratio)[0]
        rgb = x * torch.tensor(IMAGENET_STD)[:, None, None] + torch.tensor(IMAGENET_MEAN)[:, None, None]
        return bool((rgb[0, :, :4] > 0.9).all() and (rgb[1, :, :4] < 0.1).all())

    assert red_at_edges(1.0) and not red_at_edges(0.875)


def test_evaluate_model_applies_each_test_sets_crop_ratio(tmp_path, monkeypatch):
    import genrobust.classifiers
    from genrobust import evaluate

    used = {}

    def spy(model, class_wnids, index, **kwargs):
        used[index["path"][0]] = kwargs["crop_ratio"]
        return {"top1": 1.0, "n": len(index)}

    monkeypatch.setattr(genrobust.classifiers, "load_classifier", lambda path, device: (ColourModel(10), WNIDS))
    monkeypatch.setattr(evaluate, "evaluate_classifier", spy)
    for name in ("val", "corrupt"):
        pd.DataFrame({"path": [name], "wnids": [WNIDS[0]]}).to_csv(tmp_path / f"{name}.csv", index=False)
    options = {"res": 256, "crop_ratio": 0.875, "test_set_crop_ratio": {"corrupt": 1.0}, "batch_size": 4,
               "flip_tta": False, "precision": "fp32"}
    results = evaluate.evaluate_model("m.pt", {n: str(tmp_path / f"{n}.csv") for n in ("val", "corrupt")},
                                      id_test_set="val", options=options, threads=1, out=tmp_path / "e.json")
    assert used == {"val": 0.875, "corrupt": 1.0}
    assert results["corrupt"]["crop_ratio"] == 1.0 and results["val"]["crop_ratio"] == 0.875


def test_corruption_mean_names_the_corruptions_averaged(tmp_path):
    rows = [(WNIDS[1], 1)] * 4
    index = make_index(tmp_path, rows, corruption=["fog", "fog", "snow", "snow"], severity=[5] * 4)
    result = evaluate_classifier(ColourModel(10), WNIDS, index, **SMALL)
    assert result["corruptions_averaged"] == ["fog", "snow"]
    assert result["mean_corruption_top1"] == pytest.approx(np.mean(list(result["per_corruption"].values())))
