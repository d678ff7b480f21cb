"""Effective robustness against fits computed by hand."""

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from genrobust.robustness import fit_logit_line, logit, robustness_table, sigmoid

REPO = Path(__file__).resolve().parents[1]
TESTBED = REPO / "config" / "reference" / "imagenet_testbed_standard.csv"  # the testbed's standard models


def test_fit_recovers_a_line_in_logit_space():
    ids = np.array([0.5, 0.6, 0.7, 0.8])
    ood = sigmoid(0.8 * logit(ids) - 1.0)
    fit = fit_logit_line(ids, ood)
    assert fit.slope == pytest.approx(0.8) and fit.intercept == pytest.approx(-1.0)
    # A model 5 points above the line at ID 0.75 has ER +0.05.
    expected = sigmoid(0.8 * np.log(3) - 1.0)
    assert fit.predict(0.75) == pytest.approx(expected)


def test_fit_needs_two_distinct_points():
    with pytest.raises(ValueError, match=">= 2 standard models"):
        fit_logit_line([0.7, 0.7], [0.3, 0.4])


def test_effective_robustness_matches_a_hand_fit_on_published_models():
    """Standard models of imagenet-testbed: fit by the normal equations, written out by hand."""
    frame = pd.read_csv(TESTBED)
    standard = frame[frame["type"] == "STANDARD"].dropna(subset=["val", "imagenet-sketch"])
    x = np.log(standard["val"] / (100 - standard["val"])).to_numpy()
    y = np.log(standard["imagenet-sketch"] / (100 - standard["imagenet-sketch"])).to_numpy()
    n = len(x)
    slope = (n * (x * y).sum() - x.sum() * y.sum()) / (n * (x * x).sum() - x.sum() ** 2)
    intercept = (y.sum() - slope * x.sum()) / n
    # Our table: the standard models as 'real_100' runs, plus one robust model to score.
    rows = []
    for i, (val, sketch) in enumerate(zip(standard["val"], standard["imagenet-sketch"])):
        run = {"dataset": "in1k", "mix": "real_100", "arch": f"m{i}", "seed": 0}
        rows += [{**run, "test_set": "val", "top1": val / 100}, {**run, "test_set": "sketch", "top1": sketch / 100}]
    rows += [{"dataset": "in1k", "mix": "real_100+cl80_100", "arch": "x", "seed": 0, "test_set": "val", "top1": 0.784},
             {"dataset": "in1k", "mix": "real_100+cl80_100", "arch": "x", "seed": 0, "test_set": "sketch", "top1": 0.401}]
    table = robustness_table(pd.DataFrame(rows), "val", ["real_100"])
    robust = table[table["mix"] == "real_100+cl80_100"].iloc[0]
    predicted = 1 / (1 + np.exp(-(slope * np.log(0.784 / 0.216) + intercept)))
    assert robust["slope"] == pytest.approx(slope) and robust["intercept"] == pytest.approx(intercept)
    assert robust["effective_robustness"] == pytest.approx(0.401 - predicted)
    assert robust["n_reference"] == n


def test_subset_id_accuracy_is_used_for_subset_shift_sets():
    rows = []
    for i, (val, val_r, r) in enumerate([(0.6, 0.7, 0.3), (0.7, 0.8, 0.4), (0.8, 0.9, 0.5)]):
        run = {"dataset": "d", "mix": "real_100", "arch": f"a{i}", "seed": 0}
        rows += [{**run, "test_set": "val", "top1": val}, {**run, "test_set": "val@imagenet_r", "top1": val_r},
                 {**run, "test_set": "imagenet_r", "top1": r}]
    table = robustness_table(pd.DataFrame(rows), "val", ["real_100"])
    assert set(table["id_measure"]) == {"val@imagenet_r"}
    assert table["id_top1"].tolist() == [0.7, 0.8, 0.9]


def test_logit_clips_at_imagenet_testbeds_1e6():
    """A model at 0.05% must not be read as 0.1% (the clip used to be 1e-3)."""
    assert logit(0.0005) == pytest.approx(np.log(0.0005 / 0.9995))
    assert logit(0.0) == pytest.approx(np.log(1e-6 / (1 - 1e-6)))
    assert logit(1.0) == pytest.approx(-np.log(1e-6 / (1 - 1e-6)))


def test_shipped_testbed_reference_fits_and_states_its_points(tmp_path):
    """config/config.yaml's IN-1K reference: the testbed's 82 STANDARD models, no runs of ours.
    A generated-only model far below them gets its ER from the published line, and the fit
    table says how many points and which ID range the line stands on."""
    import yaml

    from genrobust.robustness import fits_of, write_robustness_table

    config = yaml.safe_load((REPO / "config/config.yaml").read_text())
    reference = {"id_test_set": "imagenet_val", **config["datasets"]["imagenet1k"]["reference"]}
    reference["csv"] = {**reference["csv"], "path": str(REPO / reference["csv"]["path"])}
    run = {"dataset": "imagenet1k", "mix": "cl80_100", "arch": "resnet18", "seed": 0}
    accuracy = pd.DataFrame([{**run, "test_set": t, "top1": v} for t, v in (
        ("imagenet_val", 0.30), ("sketch", 0.10), ("imagenet_val@imagenet_r", 0.45), ("imagenet_r", 0.20))])
    accuracy.to_csv(tmp_path / "accuracy.csv", index=False)
    table = write_robustness_table(str(tmp_path / "accuracy.csv"), reference, str(tmp_path / "er.csv"))
    fits = fits_of(pd.read_csv(tmp_path / "er.csv")).set_index("test_set")
    standard = pd.read_csv(REPO / "config/reference/imagenet_testbed_standard.csv")
    assert len(standard) == 82 and set(standard["type"]) == {"STANDARD"}
    assert fits.loc["sketch", "n_reference"] == 82 and fits.loc["sketch", "n_reference_runs"] == 0
    assert fits.loc["sketch", "reference_id_min"] == pytest.approx(standard["val"].min() / 100)
    assert fits.loc["imagenet_r", "id_measure"] == "imagenet_val@imagenet_r"
    assert "imagenet-testbed" in fits.loc["sketch", "reference"]
    assert set(table["test_set"]) == {"sketch", "imagenet_r"}


def test_a_report_fits_lines_only_for_its_own_shift_sets():
    """Runs are evaluated on every set any report of their dataset asks for (ImageNet-C for Table 9);
    a report that does not report a set needs no reference points for it."""
    rows = []
    for i, (val, sketch) in enumerate([(0.6, 0.3), (0.7, 0.4), (0.8, 0.5)]):
        run = {"dataset": "d", "mix": "real_100", "arch": f"a{i}", "seed": 0}
        rows += [{**run, "test_set": "val", "top1": val}, {**run, "test_set": "sketch", "top1": sketch}]
    rows.append({"dataset": "d", "mix": "real_100", "arch": "a0", "seed": 0, "test_set": "imagenet_c", "top1": 0.2})
    accuracy = pd.DataFrame(rows)  # ImageNet-C: one reference point only, no line
    table = robustness_table(accuracy, "val", ["real_100"], None, ["sketch"])
    assert set(table["test_set"]) == {"sketch"} and len(table) == 3
    with pytest.raises(ValueError, match=r"^imagenet_c \(ID measure val\): effective robustness needs >= 2"):
        robustness_table(accuracy, "val", ["real_100"])  # every set in the table: the old behaviour
    with pytest.raises(ValueError, match=r"no results on \['objectnet'\]"):
        robustness_table(accuracy, "val", ["real_100"], None, ["sketch", "objectnet"])
