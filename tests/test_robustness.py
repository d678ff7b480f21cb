"""Effective robustness against fits computed by hand."""

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from genrobust.robustness import fit_logit_line, logit, robustness_table, sigmoid

TESTBED = Path(__file__).resolve().parents[2] / "shared" / "data" / "testbed_shift_accuracies.csv"


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


@pytest.mark.skipif(not TESTBED.exists(), reason="shared testbed data not present")
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
