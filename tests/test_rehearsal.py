"""The full study rehearsed: every report of config/config.yaml, and of its beyond-the-paper
overlays (config/beyond.yaml, config/few_step.yaml), built by the workflow's own reduce rules through Snakemake from
stand-ins of the real shape (genrobust rehearse). The demo cannot show this: its reference, its
class counts and its test sets differ from the full config's exactly where Table 1 failed."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pandas as pd
import pytest
import yaml

from conftest import REPO, figure_warnings
from genrobust.robustness import reference_points

CONFIG = yaml.safe_load((REPO / "config" / "config.yaml").read_text())
NDS = ["ImageNet-Sketch", "ImageNet-R", "ImageNet-V2", "ObjectNet"]
IN100 = ["Im-100", "Im-Sketch-100", "Im-R-100", "Im-V2-100", "Obj-100"]


def rehearse(workdir, out, *configfiles, reports=()):
    """`genrobust rehearse` as a user runs it, from a folder holding the checkout's config/."""
    if not (workdir / "config").exists():
        (workdir / "config").symlink_to(REPO / "config")  # config/config.yaml itself, not a copy
    command = [sys.executable, "-m", "genrobust", "rehearse", "--out", str(out), "--configfile", *configfiles]
    command += ["--reports", *reports] if reports else []
    return subprocess.run(command, cwd=workdir, capture_output=True, text=True, timeout=900)


@pytest.fixture(scope="module")
def study(tmp_path_factory):
    work = tmp_path_factory.mktemp("study")
    result = rehearse(work, work / "rehearsal", "config/config.yaml")
    assert result.returncode == 0, result.stderr[-5000:]
    return work / "rehearsal"


def table(out, name):
    return pd.read_csv(out / f"{name}.csv", index_col=0)


@pytest.mark.slow
def test_every_report_of_the_full_study_builds(study):
    for name in CONFIG["reports"]:
        assert len(table(study, name)) > 0, name
    figures = {"figure2", "table3_accuracy", "table4_accuracy", "figure3", "figure11", "table9", "table6_accuracy",
               "figure12", "table2", "table5", "generated_scatter", "table7"}
    assert {p.stem for p in study.glob("*.png")} == figures
    assert figure_warnings(study) == []  # the full config's long row labels, 1000 classes, 5 archs
    html = (study / "report.html").read_text()
    assert all(name in html for name in CONFIG["reports"])


@pytest.mark.slow
def test_table1_measures_effective_robustness_against_the_testbed_models(study):
    """The defect this rehearsal was built for: IN-1K runs are evaluated on ImageNet-C too (Table
    9), and Table 1 fitted a line for it against the testbed CSV, which has no such column."""
    t1 = table(study, "table1")
    assert list(t1.index) == ["Generated Data", "Real + Generated Data"]  # standard training's ER is 0
    assert list(t1.columns) == NDS + ["Average"]
    fits = pd.read_csv(study / "table1_er_fit.csv").set_index("test_set")
    assert list(fits.index) == ["sketch", "imagenet_r", "imagenet_v2", "objectnet"]
    reference = CONFIG["datasets"]["imagenet1k"]["reference"]["csv"]
    for test_set, fit in fits.iterrows():
        published = reference_points({**reference, "path": str(REPO / reference["path"])}, test_set,
                                     fit["id_measure"])
        assert fit["n_reference_runs"] == 0 and fit["n_reference_published"] == len(published) > 50
    assert fits.loc["imagenet_r", "id_measure"] == "imagenet_val@imagenet_r"
    figure11 = pd.read_csv(study / "figure11.csv")
    assert set(figure11["generated_share"]) == {0, 0.25, 0.5, 0.75, 1}
    assert set(figure11["measure"]) == {"accuracy", "effective_robustness"}


@pytest.mark.slow
def test_table9_and_the_accuracy_tables_have_the_papers_rows_and_columns(study):
    t9 = table(study, "table9")
    assert list(t9.index) == list(CONFIG["reports"]["table9"]["rows"])
    assert t9.loc["Real Data", "Effective Robustness (%)"] == "-"
    fit = pd.read_csv(study / "table9_er_fit.csv").iloc[0]
    assert fit["test_set"] == "imagenet_c" and fit["n_reference_runs"] == 15  # real_100: 5 archs x 3 seeds
    for name, columns in (("table3", IN100), ("table4", IN100), ("table6", ["ImageNet"] + NDS)):
        t = table(study, name)
        assert list(t.index) == list(CONFIG["reports"][name]["rows"]) and list(t.columns) == columns + ["Average"]
    grid = pd.read_csv(study / "figure3.csv")
    assert len(grid.groupby(["real_percent", "generated_percent"])) == 9
    curves = pd.read_csv(study / "figure12.csv")
    assert curves.groupby("Training data").size().to_dict() == {"Real": 40, "Real + Generated": 40}


@pytest.mark.slow
def test_the_metric_tables_at_imagenet_1k_shape(study):
    t2 = table(study, "table2")
    assert list(t2.index) == ["Real Data", "Generated Data"]
    assert list(t2.columns) == ["Im-Sketch", "Im-R", "Im-V2", "ObjectNet"]
    classes = pd.read_csv(study / "table2_n.csv").groupby("test set")["classes"].first().to_dict()
    assert classes == {"Im-Sketch": 1000, "Im-R": 200, "Im-V2": 1000, "ObjectNet": 113}  # its folders, as the paper
    t5 = table(study, "table5")
    assert list(t5.index) == list(CONFIG["reports"]["table5"]["classifiers"])
    assert t5.notna().all().all()  # the stand-ins' CLIP scores pass the filter about half the time
    t7 = table(study, "table7")
    assert list(t7.columns) == list(CONFIG["reports"]["table7"]["sources"])
    filtered = "Generated (Class Labels, CLIP-filtered)"
    assert 0 < t7.loc["Images", filtered] < t7.loc["Images", "Generated (Class Labels)"]
    assert len(table(study, "generated_scatter")) == len(CONFIG["reports"]["generated_scatter"]["classifiers"])


@pytest.mark.slow
def test_the_beyond_the_paper_overlays_build_on_the_full_study(tmp_path):
    reports = yaml.safe_load((REPO / "config" / "beyond.yaml").read_text())["reports"]
    kinds = {r["kind"] for r in reports.values()}
    assert {"scaling_curve", "guidance_curve", "diversity_er", "robustness_table"} <= kinds
    # config/beyond.yaml with the few-step overlay on top: every beyond-the-paper report at once, on
    # the full study (whose own reports test_every_report_of_the_full_study_builds builds)
    few_step = yaml.safe_load((REPO / "config" / "few_step.yaml").read_text())["reports"]
    result = rehearse(tmp_path, tmp_path / "rehearsal", "config/config.yaml", "config/beyond.yaml",
                      "config/few_step.yaml", reports=[*reports, *few_step])
    assert result.returncode == 0, result.stderr[-5000:]
    out = tmp_path / "rehearsal"
    assert not (out / "table1.csv").exists()  # only the reports asked for
    assert f"{len(reports) + len(few_step)} report(s) of the study built" in result.stderr
    frontier = table(out, "few_step")
    assert len(frontier) == 4 and frontier["Generated on"].eq("cuda").all()
    # the cost model's hours, for the images each row trains on: 50 guided steps, 25, 4 unguided,
    # and DeepCache's 50 priced in full (an upper bound until its shards have run)
    assert frontier["Generation hours"].to_numpy() == pytest.approx(
        frontier["Generation hours"].iloc[0] * np.array([1, 25 / 50, 4 * 0.5 / 50, 1]), rel=1e-3)
    assert frontier["On the ER front"].iloc[2]
    guidance = table(out, "guidance")
    assert len(guidance) == len(reports["guidance"]["guidance"]) * len(reports["guidance"]["train_on"])
    assert len(table(out, "diversity_er")) == len(reports["diversity_er"]["rows"])
    assert set(pd.read_csv(out / "scaling.csv")["Training data"]) >= {"real only", "cl80 400%", "real + cl80 400%"}
    assert list(table(out, "separate_bn").index) == ["Shared BN", "Separate BN"]
    assert figure_warnings(out) == []


def test_rehearse_names_a_report_the_config_lacks(tmp_path):
    result = rehearse(tmp_path, tmp_path / "rehearsal", "config/config.yaml", reports=["table1", "tabel7"])
    assert result.returncode == 2 and "--reports: 'tabel7' is not a report of the config" in result.stderr
    assert "did you mean table7" in result.stderr and not (tmp_path / "rehearsal").exists()


def test_rehearse_never_empties_a_folder_it_did_not_make(tmp_path):
    out = tmp_path / "results"
    out.mkdir()
    (out / "precious.csv").write_text("kept\n")
    result = rehearse(tmp_path, out, "config/config.yaml")
    assert result.returncode == 2 and "is not a rehearsal folder" in result.stderr
    assert (out / "precious.csv").read_text() == "kept\n"
