"""Bad config fails before any job starts, with a message naming the key or path."""

from __future__ import annotations

import copy
from pathlib import Path

import pytest
import yaml

from conftest import REPO, snakemake
from genrobust.config import ConfigError, generation_jobs, training_runs
from genrobust.validation import check_config

DEMO = yaml.safe_load((REPO / "config/demo.yaml").read_text())
FULL = yaml.safe_load((REPO / "config/config.yaml").read_text())


def dry_run(workdir: Path, config: dict, *extra: str):
    path = workdir / "config" / "case.yaml"
    path.write_text(yaml.safe_dump(config))
    return snakemake("-n", "--configfile", str(path), *extra, cwd=workdir)


def edited(base: dict, edit) -> dict:
    config = copy.deepcopy(base)
    edit(config)
    return config


@pytest.mark.parametrize("edit, message", [
    (lambda c: c.update(epochs_typo=3), "epochs_typo: 'epochs_typo' is not a key of the config"),
    (lambda c: c["datasets"]["demo10"]["recipe"].update(epochs="forty"), "datasets.demo10.recipe.epochs: 'forty' is not of type integer"),
    (lambda c: c["datasets"]["demo10"]["recipe"].update(precision="fp8"), "'fp8' is not one of"),
    (lambda c: c["strategies"]["cl80"].update(model="sd99"), "strategies.cl80.model: 'sd99' is not one of models"),
    (lambda c: c["reports"]["table1"]["rows"].update(Bad="real_100+sdxl_100"),
     "reports.table1.rows.Bad: source 'sdxl' of 'real_100+sdxl_100' is not 'real' or one of strategies"),
    (lambda c: c["datasets"]["demo10"]["generate"].pop("ldm") and c["reports"]["table1"]["rows"].update(
        Bad="real_100+ldm_100"), "'real_100+ldm_100' trains on ldm, but datasets.demo10.generate.ldm is not set"),
    (lambda c: c["strategies"]["pixmix"].pop("mixing_set"), "strategies.pixmix.mixing_set: a pixmix strategy needs it"),
    (lambda c: c["test_sets"]["sketch"].update(path="/nonexistent/sketch"),
     "test_sets.sketch.path: '/nonexistent/sketch' does not exist"),
])
def test_bad_demo_config_fails_before_any_job_naming_the_key(workdir, edit, message):
    result = dry_run(workdir, edited(DEMO, edit))
    assert result.returncode != 0
    assert message in result.stdout + result.stderr
    assert "Job stats" not in result.stdout  # nothing was planned, let alone run


def test_full_config_names_the_missing_dataset_path(workdir):
    result = dry_run(workdir, FULL)
    assert result.returncode != 0
    assert "datasets.imagenet100.train: '/datasets/imagenet/train' does not exist" in result.stdout + result.stderr
    assert "check_paths=False" in result.stdout + result.stderr


def test_check_config_cross_references():
    config = copy.deepcopy(FULL)
    config["check_paths"] = False
    check_config(config)
    config["datasets"]["imagenet1k"]["generate"].pop("cl80")
    with pytest.raises(ConfigError, match="datasets.imagenet1k.generate.cl80 is not set"):
        check_config(config)
    bad = copy.deepcopy(FULL)
    bad["check_paths"] = False
    bad["datasets"]["imagenet100"]["reference"]["mixtures"] = ["real_100+cl80_100"]
    with pytest.raises(ConfigError, match="datasets.imagenet100.reference.mixtures: 'real_100.cl80_100' is not real"):
        check_config(bad)
    bad["datasets"]["imagenet100"]["reference"] = {"mixtures": [], "csv": None}
    with pytest.raises(ConfigError, match="datasets.imagenet100.reference: an effective-robustness reference needs"):
        check_config(bad)


def test_class_list_errors_name_the_file(tmp_path):
    bad_list = tmp_path / "classes.txt"
    bad_list.write_text("n01440764\ntench\n")
    config = copy.deepcopy(FULL)
    config["check_paths"] = False
    config["datasets"]["imagenet100"]["classes"] = str(bad_list)
    with pytest.raises(ConfigError, match=f"class list {bad_list}: 1 entries are not ImageNet-1K wnids"):
        check_config(config)


def test_full_plan_matches_the_paper_grid():
    runs = training_runs(FULL)
    table1 = [r for r in runs if r.dataset == "imagenet1k" and r.mix in ("real_100", "cl80_100", "real_100+cl80_100")]
    assert len(table1) == 3 * 5 * 3  # real / generated / real+generated x 5 archs x 3 seeds
    in100 = {r.mix for r in runs if r.dataset == "imagenet100"}
    grid = {f"real_{r}+cl80_{g}" for r in (25, 50, 100) for g in (50, 100, 200)}  # Figure 3
    strategies = {f"real_100+{s}_100" for s in ("deepaugment", "pixmix", "ldm", "cl80", "photo", "rendition",
                                                "variation", "img2img")}  # Tables 3 and 4
    assert in100 == grid | strategies | {"real_100"}
    # Figure 11's budget is the real set's size: its shares are percentages of it, and shares 0
    # and 1 are Table 1's real_100 and cl80_100 runs (ResNeXt-50), not two more trainings.
    in1k = {r.mix for r in runs if r.dataset == "imagenet1k"}
    assert in1k == {"real_100", "cl80_100", "real_100+cl80_100",
                    "real_75+cl80_25", "real_50+cl80_50", "real_25+cl80_75",
                    "cl80ft_100", "real_100+cl80ft_100"}  # Table 6: from the fine-tuned SD v1.5
    assert not any(r.mix.startswith("n_") for r in runs)
    shards = [j for j in generation_jobs(FULL) if j[:3] == ("imagenet1k", "cl80", "train")]
    gen = FULL["datasets"]["imagenet1k"]["generate"]["cl80"]
    assert len(shards) == gen["train_shards"] and gen["train_per_class"] * 1000 == 1_300_000
