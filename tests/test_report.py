"""The paper's tables and figures from hand-made accuracy and robustness tables."""

from __future__ import annotations

import json

import pandas as pd
import pytest

from genrobust.config import report_rows
from genrobust.report import make_report, run_of

NAMES = {"val": "ImageNet", "sketch": "ImageNet-Sketch", "imagenet_r": "ImageNet-R", "imagenet_c": "ImageNet-C"}


def tables(tmp_path, runs: dict[str, dict[str, float]], seeds=(0, 1)):
    """accuracy.csv and robustness.csv where run (mix, seed) scores value + seed/100 on every set;
    effective robustness is accuracy - 0.5."""
    acc, er = [], []
    for mix, values in runs.items():
        for seed in seeds:
            for test_set, value in values.items():
                run = {"dataset": "d", "mix": mix, "arch": "resnet18", "seed": seed, "test_set": test_set}
                acc.append({**run, "top1": value + seed / 100})
                if test_set != "val":
                    er.append({**run, "effective_robustness": value + seed / 100 - 0.5})
    pd.DataFrame(acc).to_csv(tmp_path / "accuracy.csv", index=False)
    pd.DataFrame(er).to_csv(tmp_path / "robustness.csv", index=False)
    return str(tmp_path / "accuracy.csv"), str(tmp_path / "robustness.csv")


def spec(kind, **extra):
    report = {"kind": kind, "dataset": "d", "archs": ["resnet18"], "seeds": [0, 1], "test_sets": ["sketch", "imagenet_r"],
              "test_set_names": NAMES, "id_test_set": "val", **extra}
    report["rows"] = report_rows(report)
    return report


def test_robustness_table_rows_columns_and_average(tmp_path):
    accuracy, robustness = tables(tmp_path, {"real_100": {"val": 0.7, "sketch": 0.5, "imagenet_r": 0.6},
                                             "cl80_100": {"val": 0.2, "sketch": 0.4, "imagenet_r": 0.7}})
    report = spec("robustness_table", rows={"Real": "real_100", "Generated": "cl80_100"})
    make_report("robustness_table", accuracy, robustness, report, str(tmp_path / "t.csv"), str(tmp_path / "t.png"))
    table = pd.read_csv(tmp_path / "t.csv", index_col=0)
    assert list(table.index) == ["Real", "Generated"]
    assert list(table.columns) == ["ImageNet-Sketch", "ImageNet-R", "Average"]
    # ER = acc - 0.5, mean over seeds 0 and 1 adds 0.5 points.
    assert table.loc["Generated"].tolist() == pytest.approx([-9.5, 20.5, 5.5])
    std = pd.read_csv(tmp_path / "t_std.csv", index_col=0)
    assert std.loc["Real", "ImageNet-Sketch"] == pytest.approx(0.71, abs=0.01)  # std of (0, 1) points
    assert (tmp_path / "t.png").stat().st_size > 5000


def test_mixture_grid_places_every_cell(tmp_path):
    report = spec("mixture_grid", strategy="cl80", real_percents=[25, 100], generated_percents=[50, 200])
    runs = {mix: {"val": 0.5, "sketch": 0.1 * i, "imagenet_r": 0.2} for i, mix in enumerate(report["rows"].values())}
    accuracy, robustness = tables(tmp_path, runs)
    frame = make_report("mixture_grid", accuracy, robustness, report, str(tmp_path / "g.csv"), str(tmp_path / "g.png"))
    cell = frame[(frame.measure == "accuracy") & (frame.test_set == "ImageNet-Sketch")]
    got = {(r.real_percent, r.generated_percent): r.mean for r in cell.itertuples()}
    # rows are real-major: (25,50) (25,200) (100,50) (100,200) -> sketch 0, 10, 20, 30 (+0.5 seed mean)
    assert got == pytest.approx({(25, 50): 0.5, (25, 200): 10.5, (100, 50): 20.5, (100, 200): 30.5})
    assert set(frame.test_set) == {"ImageNet-Sketch", "ImageNet-R", "Average"}
    assert (tmp_path / "g.png").exists()


def test_budget_curve_orders_by_share(tmp_path):
    report = spec("budget_curve", strategy="cl80", total=1000, generated_shares=[0, 0.5, 1])
    assert list(report["rows"].values()) == ["n_1000+real_100", "n_1000+real_50+cl80_50", "n_1000+cl80_100"]
    runs = {mix: {"val": 0.5, "sketch": 0.2 + 0.1 * i, "imagenet_r": 0.2} for i, mix in enumerate(report["rows"].values())}
    accuracy, robustness = tables(tmp_path, runs)
    frame = make_report("budget_curve", accuracy, robustness, report, str(tmp_path / "b.csv"), str(tmp_path / "b.png"))
    average = frame[(frame.measure == "accuracy") & (frame.test_set == "Average")].sort_values("generated_share")
    assert average["mean"].tolist() == pytest.approx([20.5, 25.5, 30.5])


def test_budget_of_the_real_set_size_reuses_the_percent_runs():
    report = spec("budget_curve", strategy="cl80", total="real", generated_shares=[0, 0.25, 1])
    assert list(report["rows"].values()) == ["real_100", "real_75+cl80_25", "cl80_100"]


@pytest.mark.parametrize("seeds", [(0, 1), (0,)])  # one run: std is NaN, the table still has its columns
def test_corruption_table(tmp_path, seeds):
    accuracy, robustness = tables(tmp_path, {"real_100": {"val": 0.7, "imagenet_c": 0.2},
                                             "cl80_100": {"val": 0.3, "imagenet_c": 0.05}}, seeds=seeds)
    report = spec("corruption_table", rows={"Real Data": "real_100", "Generated Data": "cl80_100"},
                  test_sets=["imagenet_c"], seeds=list(seeds))
    table = make_report("corruption_table", accuracy, robustness, report, str(tmp_path / "c.csv"), str(tmp_path / "c.png"))
    assert list(table.index) == ["Real Data", "Generated Data"]
    mean_seed = sum(seeds) / len(seeds)  # each seed adds seed/100
    assert table.loc["Generated Data", "Accuracy (%)"] == pytest.approx(5 + mean_seed)
    assert table.loc["Real Data", "Effective Robustness (%)"] == pytest.approx(-30 + mean_seed)
    assert list(table.columns) == ["Accuracy (%)", "Effective Robustness (%)", "Accuracy (%) std",
                                   "Effective Robustness (%) std"]


def test_loss_curves_average_seeds_per_epoch(tmp_path):
    metrics = []
    for mix, base in (("real_100", 3.0), ("real_100+cl80_100", 4.0)):
        for seed in (0, 1):
            path = tmp_path / "train" / "d" / f"mix~{mix}" / "arch~resnet18" / f"seed~{seed}" / "metrics.jsonl"
            path.parent.mkdir(parents=True)
            path.write_text("".join(json.dumps({"epoch": e, "train_loss": base - e + seed, "val_top1": 0.1}) + "\n"
                                    for e in range(3)))
            metrics.append(str(path))
    assert run_of(metrics[0]) == {"dataset": "d", "mix": "real_100", "arch": "resnet18", "seed": 0}
    report = spec("loss_curves", rows={"Real": "real_100", "Real + Generated": "real_100+cl80_100"})
    curves = make_report("loss_curves", "", "", report, str(tmp_path / "l.csv"), str(tmp_path / "l.png"), metrics)
    real = curves[curves["Training data"] == "Real"]
    assert real["epoch"].tolist() == [1, 2, 3] and real["mean"].tolist() == pytest.approx([3.5, 2.5, 1.5])
