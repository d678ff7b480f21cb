"""The study a checked config describes (genrobust/study.py): built once, read-only, and the same
plan the config's plan functions give."""

import dataclasses
import json
import re
from pathlib import Path

import pytest

from genrobust.config import generation_jobs, report_mixtures, report_runs, training_runs
from genrobust.kinds import REPORTS, STRATEGIES
from genrobust.study import Study, thawed
from genrobust.validation import load_config

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def full():
    config = load_config([str(REPO / "config/config.yaml"), str(REPO / "config/few_step.yaml")],
                         {"check_paths": False})
    return config, Study.of(config)


def test_the_study_is_the_configs_plan(full):
    config, study = full
    assert study.runs == tuple(training_runs(config)) and len(study.runs) > 200
    assert study.generation_jobs == tuple(generation_jobs(config))
    assert list(study.reports) == [n for n in config["reports"]]  # every report of the full study builds
    table1 = study.reports["table1"]
    assert table1.kind is REPORTS["robustness_table"]
    assert table1.runs == tuple(report_runs(config, config["reports"]["table1"]))
    assert study.strategies["cl80clip"].kind is STRATEGIES["clip_filtered"]
    assert [g[1] for g in study.filtered_sets] == ["cl80clip"]
    in1k = study.evaluated_test_sets["imagenet1k"]
    assert in1k[0] == "imagenet_val" and "imagenet_c" in in1k
    assert set(study.metric_reports()) == {"table2", "table5", "generated_scatter", "table7", "few_step"}
    assert study.draws_of("real") == "real" and study.draws_of("cl80") == "cl80"


def test_the_study_cannot_be_changed(full):
    _, study = full
    with pytest.raises(dataclasses.FrozenInstanceError):
        study.runs = ()
    with pytest.raises(TypeError):
        study.reports["table1"].settings["archs"] = ["resnet18"]
    with pytest.raises(TypeError):
        study.strategies["cl80"].settings["guidance"] = 2.0
    reference = thawed(study.reports["table1"].reference)
    assert json.loads(json.dumps(reference)) == reference and reference["mixtures"] == []


def test_an_imported_copy_draws_as_the_set_it_copies(tmp_path):
    config = load_config([str(REPO / "config/demo.yaml"), str(REPO / "config/demo_beyond.yaml")],
                         {"check_paths": False, "out": str(tmp_path)})
    study = Study.of(config)
    assert study.strategies["cl80copy"].kind.imported and study.draws_of("cl80copy") == "cl80"


def test_the_study_holds_every_section_with_its_settings(full):
    config, study = full
    assert (study.out, study.seed, study.check_paths) == (config["out"], config["seed"], False)
    assert thawed(study.evaluation) == config["evaluation"] and thawed(study.config) == config
    in1k = study.datasets["imagenet1k"]
    assert thawed(in1k.recipe) == config["datasets"]["imagenet1k"]["recipe"]
    assert set(in1k.generate) == set(config["datasets"]["imagenet1k"]["generate"])
    assert study.models["sd15_ft"].finetuned and not study.models["sd15"].finetuned
    assert study.models["sd15_ft"].settings["id"] == config["models"]["sd15_ft"]["id"]  # its job's output folder
    assert study.base_source("cl80clip") == "cl80" and study.base_source("cl80") == "cl80"
    for name, report in study.reports.items():  # the mixtures a report trains, as config.py plans them
        assert list(report.mixtures) == list(dict.fromkeys(report_mixtures(config["reports"][name], config)))
    spec = study.report_spec("table1", seed=0)
    assert json.loads(json.dumps(spec)) == spec and spec["seed"] == 0 and spec["id_test_set"] == "imagenet_val"
    assert list(spec["rows"]) == list(study.reports["table1"].rows)


def test_the_checks_and_the_rules_read_the_study_not_the_config():
    """check_config returns the Study it checked; past common.smk's check, no rule file reads config."""
    from genrobust.validation import check_config

    config = load_config([str(REPO / "config/demo.yaml")], {"check_paths": False})
    assert isinstance(check_config(config), Study)
    reads = []
    for path in sorted((REPO / "workflow/rules").glob("*.smk")):
        for number, line in enumerate(path.read_text().splitlines(), 1):
            code = line.split("#", 1)[0]
            if re.search(r"(?<![\w.])config(\[|\.|,|\))", code) and "check_config(config)" not in code:
                reads.append(f"{path.name}:{number}: {line.strip()}")
    # common.smk validates the config and sets check_paths for --lint before the Study is built
    assert [r.split(": ", 1)[1] for r in reads] == [
        "_problem = schema_problem(config)", 'validate(config, schema="../schemas/config.schema.yaml")',
        'config["check_paths"] = False'], reads
