"""The paper's tables and figures from hand-made accuracy and robustness tables."""

from __future__ import annotations

import json

import pandas as pd
import pytest

from genrobust.config import report_rows
from genrobust.report import make_report, run_of

NAMES = {"val": "ImageNet", "sketch": "ImageNet-Sketch", "imagenet_r": "ImageNet-R", "imagenet_c": "ImageNet-C"}


def tables(tmp_path, runs: dict[str, dict[str, float]], seeds=(0, 1), archs=("resnet18",), arch_offset=0.0):
    """accuracy.csv and robustness.csv where run (mix, arch i, seed) scores value + seed/100 +
    i * arch_offset on every set; effective robustness is accuracy - 0.5."""
    acc, er = [], []
    for mix, values in runs.items():
        for i, arch in enumerate(archs):
            for seed in seeds:
                for test_set, value in values.items():
                    run = {"dataset": "d", "mix": mix, "arch": arch, "seed": seed, "test_set": test_set}
                    top1 = value + seed / 100 + i * arch_offset
                    acc.append({**run, "top1": top1})
                    if test_set != "val":
                        er.append({**run, "effective_robustness": top1 - 0.5})
    pd.DataFrame(acc).to_csv(tmp_path / "accuracy.csv", index=False)
    pd.DataFrame(er).to_csv(tmp_path / "robustness.csv", index=False)
    return str(tmp_path / "accuracy.csv"), str(tmp_path / "robustness.csv")


def spec(kind, **extra):
    report = {"kind": kind, "dataset": "d", "archs": ["resnet18"], "seeds": [0, 1], "test_sets": ["sketch", "imagenet_r"],
              "test_set_names": NAMES, "id_test_set": "val", **extra}
    report["rows"] = report_rows(report)
    return report


def test_robustness_table_rows_columns_and_average(tmp_path):
    report = spec("robustness_table", rows={"Real": "real_100", "Generated": "cl80_100",
                                            "Real + Generated": "real_100+cl80_100"})
    accuracy, robustness = tables(tmp_path, {"real_100": {"val": 0.7, "sketch": 0.5, "imagenet_r": 0.6},
                                             "cl80_100": {"val": 0.2, "sketch": 0.4, "imagenet_r": 0.7},
                                             "real_100+cl80_100": {"val": 0.7, "sketch": 0.6, "imagenet_r": 0.7}})
    make_report("robustness_table", accuracy, robustness, report, str(tmp_path / "t.csv"), str(tmp_path / "t.png"))
    table = pd.read_csv(tmp_path / "t.csv", index_col=0)
    # The paper's Table 1 has no row for standard training (its ER is 0 by definition).
    assert list(table.index) == ["Generated", "Real + Generated"]
    assert list(table.columns) == ["ImageNet-Sketch", "ImageNet-R", "Average"]
    # ER = acc - 0.5, mean over seeds 0 and 1 adds 0.5 points.
    assert table.loc["Generated"].tolist() == pytest.approx([-9.5, 20.5, 5.5])
    std = pd.read_csv(tmp_path / "t_std.csv", index_col=0)
    assert std.loc["Generated", "ImageNet-Sketch"] == pytest.approx(0.71, abs=0.01)  # std of (0, 1) points
    assert "Real" not in pd.read_csv(tmp_path / "t_per_arch.csv")["Training data"].tolist()
    assert (tmp_path / "t.png").stat().st_size > 5000
    # and which line its ER is measured against, per shift set
    assert sorted(pd.read_csv(tmp_path / "t_er_fit.csv")["test_set"]) == ["imagenet_r", "sketch"]


def test_std_is_the_seed_std_not_the_spread_between_architectures(tmp_path):
    """Three architectures 10 points apart, seeds 1 point apart: the paper's std is the seed
    std (0.71 here for every architecture), not the std over all nine runs (~8.2)."""
    accuracy, robustness = tables(tmp_path, {"real_100": {"val": 0.7, "sketch": 0.5, "imagenet_r": 0.6}},
                                  archs=("resnet18", "resnext50_32x4d", "resnext101_32x8d"), arch_offset=0.1)
    report = spec("accuracy_table", rows={"Real Data": "real_100"},
                  archs=["resnet18", "resnext50_32x4d", "resnext101_32x8d"])
    make_report("accuracy_table", accuracy, robustness, report, str(tmp_path / "a.csv"), str(tmp_path / "a.png"))
    mean = pd.read_csv(tmp_path / "a.csv", index_col=0)
    std = pd.read_csv(tmp_path / "a_std.csv", index_col=0)
    assert mean.loc["Real Data", "ImageNet-Sketch"] == pytest.approx(60.5)  # 50 + 0.5 (seeds) + 10 (archs)
    assert std.loc["Real Data"].tolist() == pytest.approx([0.71] * 4, abs=0.01)
    per_arch = pd.read_csv(tmp_path / "a_per_arch.csv", index_col=[0, 1])
    assert list(per_arch.index) == [("Real Data", a) for a in report["archs"]]
    assert per_arch["ImageNet-Sketch"].tolist() == pytest.approx([50.5, 60.5, 70.5])
    assert per_arch["ImageNet-Sketch std"].tolist() == pytest.approx([0.71] * 3, abs=0.01)
    assert per_arch["seeds"].tolist() == [2, 2, 2]


def test_column_names_relabel_the_test_sets_as_the_paper(tmp_path):
    """Tables 3 and 4 label their columns Im-100, Im-Sketch-100, ... (not 'ImageNet')."""
    accuracy, robustness = tables(tmp_path, {"real_100": {"val": 0.7, "sketch": 0.5, "imagenet_r": 0.6}})
    report = spec("accuracy_table", rows={"Real Data": "real_100"},
                  column_names={"val": "Im-100", "sketch": "Im-Sketch-100", "imagenet_r": "Im-R-100"})
    make_report("accuracy_table", accuracy, robustness, report, str(tmp_path / "a.csv"), str(tmp_path / "a.png"))
    table = pd.read_csv(tmp_path / "a.csv", index_col=0)
    assert list(table.columns) == ["Im-100", "Im-Sketch-100", "Im-R-100", "Average"]
    assert list(pd.read_csv(tmp_path / "a_std.csv", index_col=0).columns) == list(table.columns)


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


def test_scaling_curve_series_and_sizes(tmp_path):
    report = spec("scaling_curve", strategy="cl80", generated_percents=[50, 100, 400])
    assert list(report["rows"].values()) == ["real_100", "cl80_50", "cl80_100", "cl80_400",
                                            "real_100+cl80_50", "real_100+cl80_100", "real_100+cl80_400"]
    runs = {mix: {"val": 0.5, "sketch": 0.1 + 0.05 * i, "imagenet_r": 0.1 + 0.05 * i}
            for i, mix in enumerate(report["rows"].values())}
    accuracy, robustness = tables(tmp_path, runs)
    frame = make_report("scaling_curve", accuracy, robustness, report, str(tmp_path / "s.csv"), str(tmp_path / "s.png"))
    average = frame[(frame.measure == "accuracy") & (frame.test_set == "Average")]
    by = {(r.series, r.generated_percent): r.mean for r in average.itertuples()}
    assert by == pytest.approx({("real only", 0.0): 10.5, ("generated only", 50): 15.5, ("generated only", 100): 20.5,
                                ("generated only", 400): 25.5, ("real + generated", 50): 30.5,
                                ("real + generated", 100): 35.5, ("real + generated", 400): 40.5})
    assert (tmp_path / "s.png").stat().st_size > 0 and pd.read_csv(tmp_path / "s.csv").shape[0] == len(frame)


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
    assert table.loc["Generated Data", "Effective Robustness (%)"] == pytest.approx(-45 + mean_seed)
    assert list(table.columns) == ["Accuracy (%)", "Effective Robustness (%)", "Accuracy (%) std",
                                   "Effective Robustness (%) std"]
    # The paper's Table 9 prints '-' for the ER of standard training.
    written = pd.read_csv(tmp_path / "c.csv", index_col=0, dtype=str)
    assert written.loc["Real Data", "Effective Robustness (%)"] == "-"
    assert float(written.loc["Real Data", "Accuracy (%)"]) == pytest.approx(20 + mean_seed)


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
