"""The analysis metrics (genrobust/metrics/): FID/KID, CLIP scores, the filter gate, the cache,
the reports' tables, and the demo's stand-ins loaded through the production code paths."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml
from snakemake.utils import validate

from conftest import REPO, draw_labelled_images
from genrobust import io
from genrobust.config import ConfigError
from genrobust.metrics import clip_scores, fid
from genrobust.metrics.embeddings import embed_image_set, load_features
from genrobust.metrics.filtering import filter_generated
from genrobust.metrics.report_kinds import make_metrics_report

SCHEMA = str(REPO / "workflow/schemas/config.schema.yaml")
DEMO = yaml.safe_load((REPO / "config/demo.yaml").read_text())
WNIDS = ["n01440764", "n01443537", "n01484850"]


def write_features(base: Path, features: np.ndarray, paths, wnids) -> str:
    """A features file as `genrobust embed` writes it (float16 .npy, rows .csv)."""
    base.parent.mkdir(parents=True, exist_ok=True)
    np.save(f"{base}.npy", np.asarray(features, dtype=np.float16))
    io.write_csv(f"{base}.csv", pd.DataFrame({"path": [str(p) for p in paths], "wnids": list(wnids)}))
    io.write_json(f"{base}.json", {"spec": {"model": "constructed"}})
    return str(base)


def unit_rows(x):
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def test_features_are_read_by_rows_as_the_array_holds_them(tmp_path):
    """Rows come from explicit reads (no memory map stays resident): slices, scattered and
    unsorted positions, runs with small gaps read through, as numpy indexes the array."""
    from genrobust.metrics.embeddings import FeatureFile

    matrix = np.random.default_rng(0).normal(size=(50, 6)).astype(np.float16)
    np.save(tmp_path / "f.npy", matrix)
    features = FeatureFile(tmp_path / "f.npy")
    assert len(features) == 50 and features.shape == (50, 6) and features.dtype == np.float16
    for key in (slice(0, 50), slice(45, 99), [3, 1, 2], [0, 6, 7, 8, 40, 41, 49], np.arange(0, 50, 7), [5, 5]):
        assert np.array_equal(features[key], matrix[key]), key
    assert features[[]].shape == (0, 6)
    with pytest.raises(IndexError):
        features[[50]]


def test_class_rows_of_a_filtered_set_are_positions_in_its_features(tmp_path):
    """A clip_filtered set keeps its source's rows (their index: positions in the source's matrix)."""
    from genrobust.metrics.embeddings import Features

    base = write_features(tmp_path / "f", np.eye(5), [f"{i}.jpg" for i in range(5)],
                          [WNIDS[0], WNIDS[1], WNIDS[0], WNIDS[1], WNIDS[0]])
    whole = load_features(base)
    kept = Features(whole.base, whole.rows.loc[[1, 2, 4]], whole.matrix)
    rows = kept.class_rows()
    assert {w: r.tolist() for w, r in rows.items()} == {WNIDS[0]: [2, 4], WNIDS[1]: [1]}
    assert np.array_equal(kept.of(rows[WNIDS[0]]), np.eye(5)[[2, 4]])


# ----------------------------------------------------------------------------- FID and KID


@pytest.mark.parametrize("n, d", [(40, 8), (12, 64)])  # more images than dimensions, and far fewer
def test_fid_of_a_set_with_itself_is_zero_and_a_shift_adds_its_square(n, d):
    x = np.random.default_rng(0).normal(size=(n, d))
    assert fid.frechet_distance(x, x) == pytest.approx(0, abs=1e-7)
    assert fid.frechet_distance(x, x + 0.5) == pytest.approx(d * 0.25, rel=1e-6)  # |mu1 - mu2|^2
    assert fid.frechet_distance(x, 2 * x) > 0


@pytest.mark.parametrize("n1, n2, d", [(60, 50, 8), (15, 9, 32)])
def test_fid_equals_clean_fids_frechet_distance(n1, n2, d):
    from cleanfid.fid import frechet_distance

    rng = np.random.default_rng(1)
    x1, x2 = rng.normal(size=(n1, d)), rng.normal(1.0, 2.0, size=(n2, d)) @ rng.normal(size=(d, d))
    reference = frechet_distance(x1.mean(0), np.cov(x1, rowvar=False), x2.mean(0), np.cov(x2, rowvar=False))
    assert fid.frechet_distance(x1, x2) == pytest.approx(reference, rel=1e-6)


def test_kid_equals_clean_fids_on_the_whole_sets_and_is_near_zero_for_one_distribution():
    from cleanfid.fid import kernel_distance

    rng = np.random.default_rng(2)
    x, y = rng.normal(size=(30, 16)), rng.normal(0.7, 1.0, size=(30, 16))
    # one subset of every image: the estimate does not depend on the draw
    assert fid.kernel_distance(x, y, seed=0, subsets=1, subset_size=30) == pytest.approx(
        kernel_distance(x, y, num_subsets=1, max_subset_size=30), rel=1e-9)
    same = fid.kernel_distance(x[:15], x[15:], seed=0)
    assert abs(same) < fid.kernel_distance(x, y, seed=0)
    assert fid.kernel_distance(x, y, seed=3) == fid.kernel_distance(x, y, seed=3)  # seeded


def kid_by_the_loop(x1, x2, seed, subsets, subset_size):
    """clean-fid's kernel_distance loop, with the seeded draws: the products of every subset."""
    d, m = x1.shape[1], min(len(x1), len(x2), subset_size)
    rng, total = np.random.default_rng(seed), 0.0
    for _ in range(subsets):
        x = x2[rng.choice(len(x2), m, replace=False)]
        y = x1[rng.choice(len(x1), m, replace=False)]
        a = (x @ x.T / d + 1) ** 3 + (y @ y.T / d + 1) ** 3
        b = (x @ y.T / d + 1) ** 3
        total += (a.sum() - np.diag(a).sum()) / (m - 1) - b.sum() * 2 / m
    return total / subsets / m


@pytest.mark.parametrize("n1, n2, subset_size, subsets", [
    (130, 5, 1000, 100),   # a train class against a V2 class: the shift side whole, its cross sums by column
    (130, 40, 1000, 7),    # few subsets: subset products instead of Gram matrices
    (12, 60, 1000, 100),   # the train side whole (a small generated class), cross sums by row
    (25, 25, 1000, 100),   # both whole
    (90, 70, 30, 100),     # both larger than the subset: no side whole
])
def test_kid_takes_fewer_products_for_the_same_estimate(n1, n2, subset_size, subsets):
    rng = np.random.default_rng(7)
    x1, x2 = rng.normal(size=(n1, 24)), rng.normal(0.3, 1.0, size=(n2, 24))
    expected = kid_by_the_loop(x1, x2, 11, subsets, subset_size)
    assert fid.kernel_distance(x1, x2, 11, subsets, subset_size) == pytest.approx(expected, rel=1e-10, abs=1e-13)
    assert fid.kernel_distance(x1, x2, 11, subsets, subset_size, gram1=x1 @ x1.T) == pytest.approx(
        expected, rel=1e-10, abs=1e-13)


def test_per_class_distances_cover_the_shared_classes_with_their_counts(tmp_path):
    rng = np.random.default_rng(3)
    a = load_features(write_features(tmp_path / "a", rng.normal(size=(9, 4)), range(9), [WNIDS[i % 3] for i in range(9)]))
    # an ObjectNet-like set: one image in two classes, a class the other set lacks, a single-image class
    b_wnids = [f"{WNIDS[0]};{WNIDS[1]}", WNIDS[0], WNIDS[0], WNIDS[1], "n01491361", WNIDS[2]]
    b = load_features(write_features(tmp_path / "b", rng.normal(size=(6, 4)) + 3, range(6), b_wnids))
    table = fid.per_class_distances(a, {"b": b}).set_index("wnid")
    assert list(table.index) == WNIDS  # the classes both have
    assert table["n_a"].tolist() == [3, 3, 3] and table["n_b"].tolist() == [3, 2, 1]
    assert (table.loc[WNIDS[:2], "fid"] > 10).all() and np.isnan(table.loc[WNIDS[2], "fid"])  # < 2 images: NaN


# ----------------------------------------------------------------------------- CLIP scores


def test_diversity_is_zero_for_identical_images_and_one_for_orthogonal_ones():
    same = np.tile([[0.6, 0.8, 0.0]], (5, 1))
    assert clip_scores.class_diversity(same) == pytest.approx(0, abs=1e-12)
    assert clip_scores.class_diversity(np.eye(4)) == pytest.approx(1)
    x = unit_rows(np.random.default_rng(4).normal(size=(7, 5)))
    pairs = [x[i] @ x[j] for i in range(7) for j in range(7) if i != j]  # self-pairs excluded
    assert clip_scores.class_diversity(x) == pytest.approx(1 - np.mean(pairs))


def test_the_filter_keeps_exactly_the_scores_at_or_above_the_threshold():
    kept = clip_scores.passes_filter(np.array([0.3, 0.2999, 0.31, np.nan, -0.5]), 0.3)
    assert kept.tolist() == [True, False, True, False, False]


def test_zero_shot_classifier_from_templates_classifies_a_constructed_case():
    rng = np.random.default_rng(5)
    classes, templates, d = 4, 80, 16
    centres = unit_rows(rng.normal(size=(classes, d)))
    # each (class, template) text embedding strays far from its class's direction; their mean does not
    noisy = centres[:, None, :] + rng.normal(scale=0.6, size=(classes, templates, d))
    embedded = unit_rows(noisy.reshape(-1, d)).reshape(classes, templates, d)
    weights = clip_scores.zero_shot_weights(embedded)
    assert np.allclose(np.linalg.norm(weights, axis=1), 1)
    images = unit_rows(np.repeat(centres, 5, axis=0) + rng.normal(scale=0.2, size=(20, d)))
    predicted = clip_scores.zero_shot_scores(images, weights).argmax(axis=1)
    assert (predicted == np.repeat(np.arange(classes), 5)).all()
    single = clip_scores.zero_shot_scores(images, unit_rows(embedded[:, 0])).argmax(axis=1)  # one template only
    assert (single != np.repeat(np.arange(classes), 5)).any(), "the constructed case must need the averaging"


# ----------------------------------------------------------------------------- the gate


def constructed_clip_set(tmp_path, n_per_class=4):
    """A generated manifest (paths relative to it), its CLIP features and class texts, where image k of
    class c has consistency k / n_per_class with its class's prompt."""
    root = tmp_path / "generate/demo/cl80/train"
    (root / "images").mkdir(parents=True)
    d = 8
    photo = np.eye(d)[:3]
    rows, feats = [], []
    for c, wnid in enumerate(WNIDS):
        for k in range(n_per_class):
            cos = k / n_per_class
            feats.append(cos * photo[c] + np.sqrt(1 - cos**2) * np.eye(d)[3 + k])
            (root / "images" / f"{wnid}_{k}.jpg").write_bytes(b"")
            rows.append({"id": f"{wnid}_{k}", "path": f"images/{wnid}_{k}.jpg", "wnid": wnid, "k": k})
    io.write_csv(root / "manifest.csv", pd.DataFrame(rows))
    paths = io.resolve_manifest_paths(pd.DataFrame(rows), root / "manifest.csv")
    base = write_features(tmp_path / "features/cl80", np.array(feats), paths, [r["wnid"] for r in rows])
    text = tmp_path / "features/text.npz"
    clip_scores.write_text_file(text, WNIDS, photo, photo, {})
    return root / "manifest.csv", base, str(text)


def test_clip_filtered_source_keeps_the_rows_at_or_above_the_threshold_and_counts_them(tmp_path):
    manifest, base, text = constructed_clip_set(tmp_path)
    features = load_features(base)
    scores = clip_scores.consistency(features.matrix, features.rows["wnids"], WNIDS, np.eye(8)[:3])
    threshold = float(scores[2])  # image k=2 of the first class sits exactly on the threshold
    out = tmp_path / "generate/demo/cl80clip/train"
    kept = filter_generated(str(manifest), base, text, threshold, str(out / "manifest.csv"), str(out / "summary.json"),
                            source="cl80clip")
    written = io.read_csv(out / "manifest.csv")
    assert kept == len(written) and sorted(written["k"].unique().tolist()) == [2, 3]  # 0.5, 0.75 pass; 0, 0.25 not
    assert set(written.columns) >= {"id", "path", "wnid", "k", "clip_score"}
    resolved = io.resolve_manifest_paths(written, out / "manifest.csv")
    assert all(Path(p).resolve() == (manifest.parent / "images" / f"{i}.jpg").resolve()
               for p, i in zip(resolved, written["id"]))  # the source's files, nothing copied
    summary = json.loads((out / "summary.json").read_text())
    assert (summary["images"], summary["kept"], summary["dropped"]) == (12, 6, 6)
    assert summary["per_class"] == {w: {"kept": 2, "dropped": 2} for w in WNIDS}
    nudged = filter_generated(str(manifest), base, text, np.nextafter(threshold, 1), str(out / "m2.csv"),
                              str(out / "s2.json"))
    assert nudged == kept - 3  # the images exactly on the threshold drop out just above it
    # a chunk at a time: the same rows, in the same order, as in one piece
    from genrobust.metrics import filtering

    filtering.CHUNK_ROWS, chunk_rows = 5, filtering.CHUNK_ROWS
    try:
        filter_generated(str(manifest), base, text, threshold, str(out / "m3.csv"), str(out / "s3.json"),
                         source="cl80clip")
    finally:
        filtering.CHUNK_ROWS = chunk_rows
    assert (out / "m3.csv").read_bytes() == (out / "manifest.csv").read_bytes()
    assert json.loads((out / "s3.json").read_text()) == summary


# ----------------------------------------------------------------------------- the cache


@pytest.fixture(scope="module")
def stand_ins(tmp_path_factory):
    from genrobust.demo.metric_models import build_metric_models

    return build_metric_models(tmp_path_factory.mktemp("metric_models"), seed=0)


def test_an_image_set_is_embedded_once_and_then_read_from_its_cache(tmp_path, stand_ins):
    from genrobust.metrics.extractors import build

    frame = draw_labelled_images(tmp_path, classes=2, per_class=5)
    table = tmp_path / "index.csv"
    io.write_csv(table, frame.assign(wnid=frame["label"].map(dict(enumerate(WNIDS)))))
    spec = {"weights": stand_ins["inception"]}
    builds = []

    def extractor():
        builds.append(1)
        return build("inception", spec, "cpu")

    (tmp_path / "f").mkdir()
    killed = [tmp_path / "f/.real.npy.k1ll3d.npy", tmp_path / "f/.real.npy.k1ll3d.npy.c"]  # a killed job's
    for stale in killed:
        stale.write_bytes(b"half")
    first = embed_image_set(table, tmp_path / "f/real", extractor, extractor_name="inception", spec=spec)
    assert not any(stale.exists() for stale in killed)
    mtime = (tmp_path / "f/real.npy").stat().st_mtime_ns
    second = embed_image_set(table, tmp_path / "f/real", extractor, extractor_name="inception", spec=spec)
    assert len(builds) == 1 and second["cached"] and (tmp_path / "f/real.npy").stat().st_mtime_ns == mtime
    assert first["images"] == 10 and first["dim"] == 64
    features = load_features(tmp_path / "f/real")
    assert features.matrix.dtype == np.float16 and features.matrix.shape == (10, 64)
    grid = fid.per_class_distances(features, {"self": features})
    assert np.allclose(grid["fid"], 0, atol=1e-6)
    capped = embed_image_set(table, tmp_path / "f/capped", extractor, extractor_name="inception", spec=spec,
                             max_per_class=3, seed=1)
    assert capped["images"] == 6 and len(builds) == 2  # a different set (3 per class): a miss builds it


def _indexed(tmp_path, frame) -> Path:
    table = tmp_path / "index.csv"
    io.write_csv(table, frame.assign(wnid=frame["label"].map(dict(enumerate(WNIDS)))))
    return table


def test_a_set_whose_outputs_snakemake_removed_is_linked_back_not_re_embedded(tmp_path, stand_ins):
    from genrobust.metrics.extractors import build

    table = _indexed(tmp_path, draw_labelled_images(tmp_path, classes=2, per_class=4))
    spec, builds = {"weights": stand_ins["inception"], "batch_size": 4}, []

    def extractor():
        builds.append(1)
        return build("inception", spec, "cpu")

    embed_image_set(table, tmp_path / "f/real", extractor, extractor_name="inception", spec=spec)
    before = np.load(tmp_path / "f/real.npy")
    for suffix in ("npy", "csv", "json"):  # what Snakemake does to a job's outputs before re-running it
        (tmp_path / f"f/real.{suffix}").unlink()
    again = embed_image_set(table, tmp_path / "f/real", extractor, extractor_name="inception",
                            spec={**spec, "batch_size": 2})  # a batch size changes no feature
    assert again["cached"] and len(builds) == 1 and np.array_equal(np.load(tmp_path / "f/real.npy"), before)
    assert len(list((tmp_path / "f/.cache").glob("real.*.npy"))) == 1


def test_the_border_crop_embeds_the_images_without_their_frame(tmp_path, stand_ins):
    from PIL import Image

    from genrobust.metrics.extractors import build

    (tmp_path / "framed").mkdir()
    frame = draw_labelled_images(tmp_path / "framed", classes=2, per_class=3)
    cropped = frame.copy()
    for i, path in enumerate(frame["path"]):
        image = np.asarray(Image.open(path).convert("RGB")).copy()
        inner = tmp_path / "inner" / f"{i}.png"
        inner.parent.mkdir(exist_ok=True)
        Image.fromarray(image[2:-2, 2:-2]).save(inner)
        image[:2], image[-2:], image[:, :2], image[:, -2:] = 255, 255, 255, 255  # a white frame, as ObjectNet's
        Image.fromarray(image).save(path)
        cropped.loc[i, "path"] = str(inner)
    extractor = build("inception", {"weights": stand_ins["inception"]}, "cpu")
    common = dict(extractor_name="inception", spec={"weights": stand_ins["inception"]})
    embed_image_set(_indexed(tmp_path / "framed", frame), tmp_path / "a", extractor, border_crop=2, **common)
    embed_image_set(_indexed(tmp_path / "inner", cropped), tmp_path / "b", extractor, **common)
    embed_image_set(_indexed(tmp_path / "framed", frame), tmp_path / "c", extractor, **common)
    a, b, c = (np.load(tmp_path / f"{n}.npy") for n in "abc")
    assert np.array_equal(a, b) and not np.array_equal(a, c)


def test_nan_features_are_an_error_naming_the_images(tmp_path, stand_ins):
    import dataclasses

    import torch

    from genrobust.metrics.extractors import build

    table = _indexed(tmp_path, draw_labelled_images(tmp_path, classes=2, per_class=2))
    real = build("inception", {"weights": stand_ins["inception"]}, "cpu")
    broken = dataclasses.replace(real, embed=lambda images: real.embed(images) * torch.nan)
    with pytest.raises(ValueError, match=r"NaN or inf for 4 images \(.*\.png"):
        embed_image_set(table, tmp_path / "f", broken, extractor_name="inception", spec={})
    huge = dataclasses.replace(real, embed=lambda images: real.embed(images) * 0 + 1e6)
    with pytest.raises(ValueError, match="feature_dtype: float32"):
        embed_image_set(table, tmp_path / "g", huge, extractor_name="inception", spec={})
    assert not (tmp_path / "f.npy").exists()


def test_demo_stand_ins_load_through_the_production_code_paths(tmp_path, stand_ins):
    from genrobust.metrics.classify import predict, timm_classifier
    from genrobust.metrics.embeddings import read_image_set
    from genrobust.metrics.extractors import build, embed_texts

    clip = build("clip", {"model": f"local-dir:{stand_ins['open_clip']}", "pretrained": None}, "cpu")
    texts = embed_texts(clip, ["a photo of a goldfish", "a photo of a tench"], precision="fp32")
    assert texts.shape == (2, 32) and np.allclose(np.linalg.norm(texts, axis=1), 1, atol=1e-5)
    frame = draw_labelled_images(tmp_path, classes=2, per_class=3)
    io.write_csv(tmp_path / "index.csv", frame.assign(wnid=frame["label"].map(dict(enumerate(WNIDS)))))
    rows = read_image_set(tmp_path / "index.csv")
    for name, file in ((f"local-dir:{stand_ins['folder']}", None), ("test_resnet.r160_in1k", stand_ins["file"])):
        classifier = timm_classifier(name, file, "cpu")
        assert classifier.provenance["data_config"]["input_size"] == "(3, 160, 160)"  # its own preprocessing
        predictions = predict(classifier, rows, batch_size=4, num_workers=0, device="cpu", desc=name)
        assert len(predictions) == 6 and set(predictions["prediction"]) <= set(WNIDS[:2])  # masked to the set's classes


# ----------------------------------------------------------------------------- reports


def test_table5_rows_columns_and_gap_is_generated_minus_real(tmp_path):
    d = 8
    photo = np.eye(d)[:3]
    rng = np.random.default_rng(6)
    inputs = {"sets": {}, "filtered": {}, "predictions": {}, "text": str(tmp_path / "text.npz")}
    clip_scores.write_text_file(inputs["text"], WNIDS, photo, photo, {})
    predictions = []
    for name, shift in (("real", 0.9), ("cl80", 0.2)):
        wnids = [WNIDS[i % 3] for i in range(30)]
        feats = [shift * photo[WNIDS.index(w)] + rng.normal(scale=0.3, size=d) for w in wnids]
        paths = [f"/{name}/{i}.jpg" for i in range(30)]
        inputs["sets"][f"val/{name}"] = write_features(tmp_path / name, np.array(feats), paths, wnids)
        correct = rng.random(30) < (0.8 if name == "real" else 0.4)
        predictions.append(pd.DataFrame({"set": name, "path": paths, "wnids": wnids, "prediction": wnids,
                                         "correct": correct}))
    for seed in (0, 1):
        io.write_csv(tmp_path / f"run{seed}.csv", pd.concat(predictions).sample(frac=1, random_state=seed))
    io.write_csv(tmp_path / "timm.csv", pd.concat(predictions))
    report = {"dataset": "demo", "strategy": "cl80", "threshold": 0.3, "classifiers": {
        "Trained": {"mixture": "real_100"}, "Zero-shot CLIP": {"zero_shot": "clip"}, "timm": {"timm": "resnet18"}}}
    inputs["predictions"] = {"Trained": [str(tmp_path / "run0.csv"), str(tmp_path / "run1.csv")], "Zero-shot CLIP": [],
                             "timm": [str(tmp_path / "timm.csv")]}
    table = make_metrics_report("generated_benchmark", report, inputs, str(tmp_path / "table5.csv"),
                                str(tmp_path / "table5.png"))
    written = pd.read_csv(tmp_path / "table5.csv", index_col=0)
    assert list(written.index) == ["Trained", "Zero-shot CLIP", "timm"]
    assert list(written.columns) == ["Real", "Generated", "Gap", "Filtered Real", "Filtered Generated", "Filtered Gap"]
    assert np.allclose(written["Gap"], written["Generated"] - written["Real"], atol=0.011)
    assert np.allclose(written["Filtered Gap"], written["Filtered Generated"] - written["Filtered Real"], atol=0.011)
    expected = 100 * predictions[0]["correct"].mean()
    assert written.loc["timm", "Real"] == pytest.approx(expected, abs=0.01)
    assert table.loc["Zero-shot CLIP", "Real"] > table.loc["Zero-shot CLIP", "Generated"]  # the shift was built in
    counts = pd.read_csv(tmp_path / "table5_n.csv", index_col=0)
    assert (counts["n Filtered Real"] > counts["n Filtered Generated"]).all()  # the generated set is less consistent
    assert (tmp_path / "table5.png").read_bytes()[:4] == b"\x89PNG"


def test_table2_and_table7_layouts(tmp_path):
    rng = np.random.default_rng(7)
    sets = {}
    for name, shift in (("train/real", 0.0), ("train/cl80", 1.0), ("sketch", 2.0), ("imagenet_r", 0.5)):
        wnids = [WNIDS[i % 3] for i in range(24)]
        sets[name] = write_features(tmp_path / name.replace("/", "_"), rng.normal(shift, 1, size=(24, 8)),
                                    [f"/{name}/{i}" for i in range(24)], wnids)
    report = {"dataset": "demo", "sources": {"Real Data": "real", "Generated Data": "cl80"},
              "test_sets": ["sketch", "imagenet_r"], "column_names": {"sketch": "Im-Sketch"},
              "test_set_names": {"imagenet_r": "ImageNet-R"}}
    inputs = {"sets": sets, "filtered": {}, "text": None, "predictions": {}}
    table2 = make_metrics_report("fid_table", report, inputs, str(tmp_path / "t2.csv"), str(tmp_path / "t2.png"))
    assert list(table2.index) == ["Real Data", "Generated Data"] and list(table2.columns) == ["Im-Sketch", "ImageNet-R"]
    assert table2.loc["Real Data", "Im-Sketch"] > table2.loc["Generated Data", "Im-Sketch"]  # cl80 sits nearer
    per_class = pd.read_csv(tmp_path / "t2_per_class.csv")
    assert len(per_class) == 2 * 2 * 3 and (per_class["n_train"] == 8).all()
    assert set(pd.read_csv(tmp_path / "t2_kid.csv", index_col=0).columns) == {"Im-Sketch", "ImageNet-R"}

    clip_scores.write_text_file(tmp_path / "text.npz", WNIDS, np.eye(8)[:3], np.eye(8)[:3], {})
    report7 = {"dataset": "demo", "sources": {"Real": "real", "Generated": "cl80"}}
    table7 = make_metrics_report("clip_diversity", report7, {**inputs, "text": str(tmp_path / "text.npz")},
                                 str(tmp_path / "t7.csv"), str(tmp_path / "t7.png"))
    assert list(table7.columns) == ["Real", "Generated"]
    assert list(table7.index[:3]) == ["Diversity (CLIP)", "Consistency (CLIP)",
                                      "Share passing the CLIP filter (>= 0.3)"]
    assert table7.loc["Images", "Real"] == 24 and 0 <= table7.loc["Diversity (CLIP)", "Real"] <= 2


@pytest.mark.parametrize("grouping, classes", [(None, {WNIDS[0]: 6, WNIDS[2]: 4}),
                                               ("mapped", {WNIDS[0]: 6, WNIDS[1]: 6, WNIDS[2]: 4})])
def test_table2_groups_objectnet_by_folder_as_the_paper_does(tmp_path, grouping, classes):
    """A folder mapped to two ImageNet classes (Chair: barber, folding, rocking) is one class of
    Table 2, its first (the paper's objectnet_im1k_folder.json); 'mapped' counts it in each."""
    rng = np.random.default_rng(3)
    objectnet = [f"{WNIDS[0]};{WNIDS[1]}"] * 6 + [WNIDS[2]] * 4
    sets = {"train/real": write_features(tmp_path / "real", rng.normal(size=(30, 8)), [f"r{i}" for i in range(30)],
                                         [WNIDS[i % 3] for i in range(30)]),
            "objectnet": write_features(tmp_path / "on", rng.normal(size=(10, 8)), [f"o{i}" for i in range(10)],
                                        objectnet)}
    report = {"dataset": "demo", "sources": {"Real": "real"}, "test_sets": ["objectnet"],
              "test_set_kinds": {"objectnet": "objectnet"}, **({"objectnet_classes": grouping} if grouping else {})}
    make_metrics_report("fid_table", report, {"sets": sets, "filtered": {}, "text": None, "predictions": {}},
                        str(tmp_path / "t2.csv"), str(tmp_path / "t2.png"))
    per_class = pd.read_csv(tmp_path / "t2_per_class.csv")
    assert per_class.set_index("wnid")["n_shift"].to_dict() == classes
    n = pd.read_csv(tmp_path / "t2_n.csv")
    assert n["classes_are"].iat[0].startswith("per ObjectNet folder" if grouping is None else "per every ImageNet")


# ----------------------------------------------------------------------------- config


def planned(edit) -> dict:
    config = copy.deepcopy(DEMO)
    edit(config)
    validate(config, SCHEMA)
    return config


@pytest.mark.parametrize("edit, message", [
    (lambda c: c["reports"]["table5"]["classifiers"].update({"Bad": {"timm": "vit_base_patch32_clip_224.openai_ft_inlk"}}),
     "reports.table5.classifiers.Bad.timm: 'vit_base_patch32_clip_224.openai_ft_inlk' is not a timm pretrained model; "
     "did you mean vit_base_patch32_clip_224.openai_ft_in1k"),
    (lambda c: c["metrics"]["clip"].update(model="ViT-B-23", pretrained="openai"),
     "metrics.clip.model: 'ViT-B-23' is not an open_clip model; did you mean ViT-B-32"),
    (lambda c: c["metrics"]["clip"].update(model="ViT-B-32", pretrained="opneai"), "metrics.clip.pretrained: 'opneai'"),
    (lambda c: c["strategies"]["cl80clip"].update(source="cl80clip"), "strategies.cl80clip.source: 'cl80clip' must be"),
    (lambda c: (c["strategies"]["cl80clip"].update(source="photo"),
                c["datasets"]["demo10"]["generate"]["cl80clip"].update(val_shards=1)),
     "datasets.demo10.generate.cl80clip.val_shards: cl80clip filters the val images of photo"),
    (lambda c: c["reports"]["table7"]["sources"].update({"LDM": "dit"}), "reports.table7.sources.LDM: 'dit' is neither"),
    (lambda c: c["reports"]["table5"].update(strategy="photo"), "reports.table5.strategy: 'photo' must be a strategy "
     "with a generated val set"),
    (lambda c: c["reports"]["table5"].pop("archs"), "reports.table5.archs: the trained rows"),
    (lambda c: c["metrics"]["inception"].update(weights="/no/such/inception.pt"), "metrics.inception.weights: "
     "'/no/such/inception.pt' is not an existing file"),
])
def test_bad_metric_config_fails_at_plan_time_naming_the_key(monkeypatch, edit, message):
    from genrobust.validation import check_config

    monkeypatch.chdir(REPO)
    with pytest.raises(ConfigError) as err:
        check_config(planned(edit))
    assert message in str(err.value)


def test_metric_model_list_matches_the_installed_libraries():
    from genrobust.checks import METRIC_MODELS
    from genrobust.metrics.config_checks import metric_model_lines

    shipped = [line for line in METRIC_MODELS.read_text().splitlines() if not line.startswith("#")]
    assert shipped == metric_model_lines(), "run: python -m genrobust.checks --refresh"


# ----------------------------------------------------------------------------- benchmark


def test_embedding_benchmark_runs_on_cpu_with_tiny_settings(tmp_path):
    from genrobust.benchmark.embedding import build_parser, run

    out = tmp_path / "embedding.json"
    args = build_parser().parse_args(["--device", "cpu", "--threads", "1", "--extractor", "clip", "--batch-size", "2",
                                      "--steps", "1", "--warmup-steps", "0", "--images", "4", "--image-size", "32",
                                      "--workers", "0", "--options", '{"precision": "fp32"}', "--json-out", str(out)])
    assert run(args) == 0
    result = json.loads(out.read_text())
    clip = result["extractors"]["clip"]
    assert result["precision"] == "fp32" and clip["model"][0]["images_per_second"] > 0
    assert clip["pipeline"]["images"] == 4 and clip["pipeline"]["images_per_second"] > 0
    bad = build_parser().parse_args(["--device", "cpu", "--options", '{"batch_sise": 2}'])
    assert run(bad) == 2


def test_table7_averages_consistency_and_the_filter_share_per_class_like_diversity(tmp_path):
    """On a CLIP-filtered set, whose classes keep different numbers of images, a mean over images
    would weigh a class by what the filter kept; every Table 7 measure is per class, then averaged."""
    from genrobust.metrics.reports import class_mean

    features = load_features(write_features(tmp_path / "f", np.eye(4), ["a", "b", "c", "d"],
                                            [WNIDS[0], WNIDS[1], WNIDS[1], WNIDS[1]]))
    assert class_mean(features, [0.9, 0.1, 0.1, 0.1]) == pytest.approx(0.5)  # (0.9 + 0.1) / 2, not 0.3
    assert class_mean(features, [True, False, False, True]) == pytest.approx((1 + 1 / 3) / 2)
    assert class_mean(features, [0.9, np.nan, 0.1, 0.1]) == pytest.approx(0.5)  # an unscored image left out
