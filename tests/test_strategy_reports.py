"""Beyond the paper: the guidance sweep (one strategy at several guidance scales, paired by
seed) and the reports that put a generated set's CLIP measures beside the ER it gives."""

from __future__ import annotations

import copy

import numpy as np
import pandas as pd
import pytest
import yaml
from snakemake.utils import validate

from conftest import REPO
from genrobust import io
from genrobust.config import ConfigError, generation_jobs, report_rows, training_runs
from genrobust.validation import check_config
from genrobust.generate.plan import plan_shard
from genrobust.metrics import clip_scores
from genrobust.metrics.report_kinds import make_metrics_report
from genrobust.robustness import robustness_table
from test_metrics import WNIDS, write_features

SCHEMA = str(REPO / "workflow/schemas/config.schema.yaml")
DEMO = yaml.safe_load((REPO / "config/demo.yaml").read_text())
SWEEP = {"kind": "guidance_curve", "dataset": "demo10", "strategy": "cl80", "guidance": [2, 7.5, 4],
         "train_on": ["generated", "real+generated"], "archs": ["resnet18"], "seeds": [0], "test_sets": ["sketch"]}


def planned(edit=None, sweep=SWEEP) -> dict:
    config = copy.deepcopy(DEMO)
    config["reports"]["sweep"] = copy.deepcopy(sweep)
    if edit:
        edit(config)
    validate(config, SCHEMA)
    check_config(config)
    return config


# ----------------------------------------------------------------------------- the sweep's plan


def test_a_guidance_curve_derives_one_strategy_per_scale_with_the_templates_settings(monkeypatch):
    monkeypatch.chdir(REPO)
    config = planned()
    strategies, generate = config["strategies"], config["datasets"]["demo10"]["generate"]
    assert config["reports"]["sweep"]["guidance_strategies"] == {"2": "cl80g2", "7.5": "cl80", "4": "cl80g4"}
    assert "cl80g7p5" not in strategies  # the template's own scale is the template, generated once
    for name, scale in (("cl80g2", 2), ("cl80g4", 4)):
        assert strategies[name]["guidance"] == scale and strategies[name]["seeds_from"] == "cl80"
        assert {k: v for k, v in strategies[name].items() if k not in ("guidance", "seeds_from")} == \
            {k: v for k, v in strategies["cl80"].items() if k != "guidance"}
        assert generate[name] == {**generate["cl80"], "val_shards": 0}  # train images only
    rows = report_rows(config["reports"]["sweep"])
    assert rows == {"guidance 2, generated": "cl80g2_100", "guidance 2, real+generated": "real_100+cl80g2_100",
                    "guidance 7.5, generated": "cl80_100", "guidance 7.5, real+generated": "real_100+cl80_100",
                    "guidance 4, generated": "cl80g4_100", "guidance 4, real+generated": "real_100+cl80g4_100"}
    mixes = {run.mix for run in training_runs(config)}
    assert set(rows.values()) <= mixes
    jobs = [(s, split) for _, s, split, _, _ in generation_jobs(config) if s.startswith("cl80g")]
    assert sorted(jobs) == [("cl80g2", "train")] * 2 + [("cl80g4", "train")] * 2  # cl80's 2 train shards each
    again = copy.deepcopy(config)
    check_config(again)  # planning twice (each Snakemake process) derives the same
    assert again == config


def test_the_derived_sets_share_the_templates_seeds_and_so_its_prompts(monkeypatch):
    monkeypatch.chdir(REPO)
    config = planned()

    def plan(name):
        spec = {k: v for k, v in config["strategies"][name].items() if k not in ("kind", "model")}
        return plan_shard("class_labels", name, "train", {**spec, "per_class": 3}, WNIDS, 2, 1, 0, None)

    template, low = plan("cl80"), plan("cl80g2")
    assert [s.seed for s in low] == [s.seed for s in template] and len(low) == 5  # shard 1 of 9 images
    assert [s.id.replace("cl80g2-", "cl80-") for s in low] == [s.id for s in template]
    photo = {k: v for k, v in config["strategies"]["photo"].items() if k not in ("kind", "model")}
    own = plan_shard("class_labels", "photo", "train", {**photo, "per_class": 3}, WNIDS, 2, 1, 0, None)
    assert not {s.seed for s in own} & {s.seed for s in template}  # without seeds_from: its own seeds


@pytest.mark.parametrize("edit, sweep, message", [
    (None, {**SWEEP, "strategy": "deepaugment"}, "reports.sweep.strategy: 'deepaugment' must be a diffusion strategy"),
    (lambda c: c["datasets"]["demo10"]["generate"].pop("rendition"), {**SWEEP, "strategy": "rendition"},
     "reports.sweep.strategy: datasets.demo10.generate.rendition is not set"),
    (lambda c: c["strategies"].update(cl80g2={**c["strategies"]["cl80"], "steps": 9}), SWEEP,
     "reports.sweep.guidance: guidance 2 of 'cl80' is strategy 'cl80g2', but strategies.cl80g2 already exists"),
    (lambda c: c["strategies"]["photo"].update(seeds_from="variation"), SWEEP,
     "strategies.photo.seeds_from: 'variation' must be a strategy of the same kind (class_labels)"),
    (None, {**SWEEP, "generated_percent": 200}, "reports.sweep.generated_percent: 'cl80g2_200' needs 600 cl80g2 images"),
    (None, {"kind": "diversity_er", "dataset": "demo10", "rows": {"Both": "real_100+cl80_50+photo_50"},
            "archs": ["resnet18"], "seeds": [0], "test_sets": ["sketch"]},
     "reports.sweep.rows: row 'Both' (real_100+cl80_50+photo_50) must train on exactly one generated source"),
])
def test_bad_sweep_configs_fail_at_plan_time_naming_the_key(monkeypatch, edit, sweep, message):
    monkeypatch.chdir(REPO)
    with pytest.raises(ConfigError) as err:
        planned(edit, sweep)
    assert message in str(err.value)


# ----------------------------------------------------------------------------- the reports


def constructed_study(tmp_path, spreads: dict[str, float], er: dict[str, float]):
    """CLIP features per source whose within-class spread grows with `spreads` (more spread: more
    diversity), and accuracies of one run per mixture real_100+<source>_100 with a shift-set top-1
    `er` above the line through two real-only reference runs."""
    d = 16
    photo = np.eye(d)[:3]
    rng = np.random.default_rng(3)
    inputs = {"sets": {}, "filtered": {}, "predictions": {}, "text": str(tmp_path / "text.npz")}
    clip_scores.write_text_file(inputs["text"], WNIDS, photo, photo, {})
    for source, spread in spreads.items():
        wnids = [WNIDS[i % 3] for i in range(30)]
        feats = np.array([photo[WNIDS.index(w)] + spread * rng.normal(size=d) for w in wnids])
        inputs["sets"][f"train/{source}"] = write_features(tmp_path / source, feats,
                                                           [f"/{source}/{i}.jpg" for i in range(30)], wnids)
    rows = []
    runs = {"real_50": (0.4, 0.2), "real_100": (0.6, 0.3)}  # the line: shift = id / 2 on these two points
    runs.update({f"real_100+{s}_100": (0.6, 0.3 + er[s]) for s in spreads})
    for mix, (id_top1, shift_top1) in runs.items():
        run = {"dataset": "demo", "mix": mix, "arch": "resnet18", "seed": 0}
        rows += [{**run, "test_set": "imagenet_val", "top1": id_top1}, {**run, "test_set": "sketch", "top1": shift_top1}]
    accuracy = pd.DataFrame(rows)
    inputs["analysis"] = {"accuracy": str(tmp_path / "accuracy.csv"), "robustness": str(tmp_path / "robustness.csv")}
    io.write_csv(inputs["analysis"]["accuracy"], accuracy)
    io.write_csv(inputs["analysis"]["robustness"], robustness_table(accuracy, "imagenet_val", ["real_50", "real_100"]))
    return inputs


def report_of(kind: str, rows: dict, **extra) -> dict:
    return {"kind": kind, "dataset": "demo", "rows": rows, "archs": ["resnet18"], "seeds": [0],
            "test_sets": ["sketch"], "id_test_set": "imagenet_val",
            "test_set_names": {"imagenet_val": "ImageNet", "sketch": "ImageNet-Sketch"}, **extra}


def test_guidance_curve_table_has_each_scales_accuracy_er_and_clip_measures(tmp_path):
    inputs = constructed_study(tmp_path, {"cl80g2": 1.0, "cl80": 0.2}, {"cl80g2": 0.05, "cl80": -0.02})
    rows = {"guidance 2, real+generated": "real_100+cl80g2_100", "guidance 7.5, real+generated": "real_100+cl80_100"}
    report = report_of("guidance_curve", rows, strategy="cl80", guidance_strategies={"2": "cl80g2", "7.5": "cl80"})
    table = make_metrics_report("guidance_curve", report, inputs, str(tmp_path / "g.csv"), str(tmp_path / "g.png"))
    written = pd.read_csv(tmp_path / "g.csv", index_col=0)
    assert list(written.index) == list(rows) and list(written["Guidance"]) == [2.0, 7.5]
    assert list(written["Strategy"]) == ["cl80g2", "cl80"] and (written["Images"] == 30).all()
    assert written["ImageNet top-1 (%)"].tolist() == pytest.approx([60, 60])
    assert written["Effective robustness, average (%)"].tolist() == pytest.approx([5, -2], abs=1e-6)
    assert written["ER ImageNet-Sketch (%)"].tolist() == pytest.approx([5, -2], abs=1e-6)
    # the wider set is the more diverse and the less consistent with its class prompt
    assert table.loc[list(rows)[0], "CLIP diversity"] > table.loc[list(rows)[1], "CLIP diversity"]
    assert table.loc[list(rows)[0], "CLIP consistency"] < table.loc[list(rows)[1], "CLIP consistency"]
    assert (tmp_path / "g.png").read_bytes()[:4] == b"\x89PNG"


def test_diversity_er_scatter_correlates_er_with_each_clip_measure(tmp_path):
    spreads = {"a": 0.1, "b": 0.4, "c": 0.8, "d": 1.6}
    er = {"a": -0.03, "b": 0.0, "c": 0.02, "d": 0.06}
    inputs = constructed_study(tmp_path, spreads, er)
    rows = {f"+ {s}": f"real_100+{s}_100" for s in spreads}
    table = make_metrics_report("diversity_er", report_of("diversity_er", rows), inputs, str(tmp_path / "d.csv"),
                                str(tmp_path / "d.png"))
    stats = pd.read_csv(tmp_path / "d_correlation.csv", index_col=0)
    x, y = table["CLIP diversity"].to_numpy(), table["Effective robustness, average (%)"].to_numpy()
    assert y == pytest.approx([100 * er[s] for s in spreads], abs=1e-6)
    assert stats.loc["CLIP diversity", "pearson_r"] == pytest.approx(np.corrcoef(x, y)[0, 1], abs=1e-4)
    assert stats.loc["CLIP diversity", "spearman_rho"] == pytest.approx(1.0)  # built monotone
    assert stats.loc["CLIP consistency", "spearman_rho"] == pytest.approx(-1.0)
    assert (stats["rows"] == 4).all() and (tmp_path / "d.png").read_bytes()[:4] == b"\x89PNG"
