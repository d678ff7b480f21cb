"""Config values of the right type but wrong in meaning fail at plan time (genrobust.checks),
naming the key and what to change, instead of in the job that uses them, hours in."""

from __future__ import annotations

import copy
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from snakemake.utils import validate

from conftest import REPO, check_semantics, snakemake
from genrobust import checks, generator_checks
from genrobust.config import ConfigError

SCHEMA = str(REPO / "workflow/schemas/config.schema.yaml")
DEMO = yaml.safe_load((REPO / "config/demo.yaml").read_text())
FULL = yaml.safe_load((REPO / "config/config.yaml").read_text())
DEMO_WNIDS = [w for w in (REPO / "config/demo_classes.txt").read_text().splitlines() if w.startswith("n0")]


@pytest.fixture(autouse=True)
def in_repo(monkeypatch):
    monkeypatch.chdir(REPO)  # config paths are relative to the working directory, as under Snakemake


def planned(base: dict, edit=None) -> dict:
    """A copy of `base`, edited, then validated (schema defaults filled in) as the Snakefile does:
    every edit below is valid in type, so only check_semantics can catch it."""
    config = copy.deepcopy(base)
    if edit:
        edit(config)
    validate(config, SCHEMA)
    return config


def write(path: Path, text: str) -> str:
    path.write_text(text)
    return str(path)


def strategy(name, **values):
    return lambda c: c["strategies"][name].update(values)


def recipe(**values):
    return lambda c: c["datasets"]["demo10"]["recipe"].update(values)


def row(report, mix, label="Bad"):
    return lambda c: c["reports"][report]["rows"].update({label: mix})


# (edit of demo.yaml, what its one-line message says: the key first, then what to change)
DEMO_CASES = {
    "scheduler typo": (
        strategy("cl80", scheduler="PNDMSchedular"),
        "strategies.cl80.scheduler: 'PNDMSchedular' is not a diffusers scheduler; did you mean PNDMScheduler?"),
    "pipeline typo": (
        strategy("img2img", pipeline="StableDiffusionImg2ImgPipline"),
        "strategies.img2img.pipeline: 'StableDiffusionImg2ImgPipline' is not a diffusers pipeline; "
        "did you mean StableDiffusionImg2ImgPipeline?"),
    "pipeline of another kind": (
        strategy("cl80", pipeline="DiTPipeline"),
        "strategies.cl80.pipeline: DiTPipeline does not take height, prompt, width"),
    "scheduler needing an uninstalled package": (
        strategy("variation", scheduler="DPMSolverSDEScheduler"),
        "strategies.variation.scheduler: 'DPMSolverSDEScheduler' needs an optional package"),
    "benchmark scheduler typo": (
        lambda c: c.update(benchmarks={"generation": {"scheduler": "DDIMSchedular"}}),
        "benchmarks.generation.scheduler: 'DDIMSchedular' is not a diffusers scheduler; did you mean DDIMScheduler?"),
    "model path typo": (
        lambda c: c["models"]["sd15"].update(id="results/demo/model/sd"),
        "models.sd15.id: 'results/demo/model/sd' is neither an existing folder"),
    "model folder without a pipeline": (
        lambda c: c["models"]["dit"].update(id="config"),
        "models.dit.id: 'config' has no model_index.json"),
    "templates file missing": (
        strategy("cl80", templates="config/templates.txt"),
        "strategies.cl80.templates: 'config/templates.txt' is not an existing file; give a named set"),
    "places file missing": (
        strategy("cl80", templates="background", places="config/places.txt"),
        "strategies.cl80.places: 'config/places.txt' is not an existing file; give a named list (default, places365) "
        "or a file"),
    "scaling beyond the generated set": (
        lambda c: c["reports"].update(scaling={**c["reports"]["figure11"], "kind": "scaling_curve",
                                               "generated_percents": [50, 100, 200]}),
        "reports.scaling.generated_percents"),
    "templates set typo": (
        strategy("img2img", templates="openai81"),
        "strategies.img2img.templates: 'openai81' is not an existing file; give a named set (background, definition, "
        "fakeit_background, fakeit_definition, fakeit_hypernym, hypernym, openai80), a list, "
        "or a file of templates, one per line with one {} each; did you mean openai80?"),
    "template with two fields": (
        strategy("photo", templates=["a photo of a {} and a {}."]),
        "strategies.photo.templates[0]: template 'a photo of a {} and a {}.' must contain exactly one '{}'"),
    "class names file missing": (
        strategy("cl80", class_names="config/names.tsv"),
        "strategies.cl80.class_names: 'config/names.tsv' is not an existing file; give 'clip'"),
    "class list missing": (
        lambda c: c["datasets"]["demo10"].update(classes="config/demo_class.txt"),
        "datasets.demo10.classes: class list config/demo_class.txt: file not found"),
    "architecture typo": (
        lambda c: c["reports"]["table3"].update(archs=["resnet18", "resnext50_32x4"]),
        "reports.table3.archs: 'resnext50_32x4' is not a classifier in timm nor torchvision; "
        "did you mean resnext50_32x4d?"),
    "min_res above max_res": (recipe(min_res=64), "datasets.demo10.recipe.min_res: 64 is above max_res 40"),
    "ramp backwards": (recipe(start_ramp=3, end_ramp=1), "datasets.demo10.recipe.start_ramp: 3 is after end_ramp 1"),
    "half a ramp": (recipe(end_ramp=None), "datasets.demo10.recipe.end_ramp: null while start_ramp is set"),
    "warm-up past the run": (
        recipe(lr_peak_epoch=6), "datasets.demo10.recipe.lr_peak_epoch: 6 is after the last epoch"),
    "batch above the training set": (
        recipe(batch_size=512),
        "datasets.demo10.recipe.batch_size: 512 is more than the 150 images of 'real_50' "
        "(datasets.demo10.reference.mixtures)"),
    "more generated than planned": (
        row("table1", "real_100+cl80_200"),
        "reports.table1.rows.Bad: 'real_100+cl80_200' needs 600 cl80 images, but there are at most 300 "
        "(datasets.demo10.generate.cl80.train_per_class 30 x 10 classes); "
        "raise datasets.demo10.generate.cl80.train_per_class to 60"),
    "real over 100 percent": (
        row("table3", "real_120"),
        "reports.table3.rows.Bad: 'real_120' asks for 120% real, but the real train set is 100% (all of it)"),
    "grid real over 100 percent": (
        lambda c: c["reports"]["figure3"].update(real_percents=[50, 150]),
        "reports.figure3.real_percents: 'real_150+cl80_50' asks for 150% real"),
    "reference over 100 percent": (
        lambda c: c["datasets"]["demo10"]["reference"].update(mixtures=["real_200"]),
        "datasets.demo10.reference.mixtures: 'real_200' asks for 200% real"),
    "image-conditioned over images_per_real": (
        row("table4", "real_100+variation_150"),
        "reports.table4.rows.Bad: 'real_100+variation_150' asks for 150% variation, but variation (image_variation) "
        "makes 1 per real image, so at most 100%"),
    "fixed total above the real set": (
        row("table1", "n_1000+real_50+cl80_50"),
        "reports.table1.rows.Bad: 'n_1000+real_50+cl80_50' needs 500 real images, but there are at most 300"),
    "source not generated for train": (
        lambda c: c["datasets"]["demo10"]["generate"]["photo"].update(train_shards=0),
        "needs 300 photo images, but there are at most 0 (datasets.demo10.generate.photo.train_shards is 0)"),
    "source twice": (
        row("table1", "real_50+real_50"), "reports.table1.rows.Bad: 'real_50+real_50' names real twice"),
}


@pytest.mark.parametrize("case", list(DEMO_CASES))
def test_demo_edit_is_rejected_naming_the_key(case):
    edit, message = DEMO_CASES[case]
    with pytest.raises(ConfigError) as err:
        check_semantics(planned(DEMO, edit))
    assert message in str(err.value)
    assert "\n" not in str(err.value)


def test_files_are_read_and_must_name_every_class(tmp_path):
    bad_template = write(tmp_path / "templates.txt", "a photo of a {}.\na photo without a field\n")
    with pytest.raises(ConfigError, match=r"^strategies\.cl80\.templates: .*templates\.txt, line 2: template 'a photo "
                                          r"without a field' must"):
        check_semantics(planned(DEMO, strategy("cl80", templates=bad_template)))
    names = write(tmp_path / "names.tsv", "".join(f"{w}\tthing {i}\n" for i, w in enumerate(DEMO_WNIDS[1:])))
    with pytest.raises(ConfigError, match=rf"^strategies\.img2img\.class_names: '{names}' has no name for 1 classes "
                                          rf"of datasets\.demo10 \({DEMO_WNIDS[0]}"):
        check_semantics(planned(DEMO, strategy("img2img", class_names=names)))
    write(tmp_path / "names.tsv", "".join(f"{w}\tthing {i}\n" for i, w in enumerate(DEMO_WNIDS)))
    templates = write(tmp_path / "templates.txt", "# mine\na photo of a {}.\n")
    check_semantics(planned(DEMO, strategy("cl80", class_names=names, templates=templates)))


def test_demo_dataset_has_only_classes_the_demo_draws(tmp_path):
    classes = write(tmp_path / "classes.txt", "\n".join(DEMO_WNIDS + ["n01440764"]))
    with pytest.raises(ConfigError, match=r"^datasets\.demo10\.classes: 1 classes \(n01440764\) are not in demo"):
        check_semantics(planned(DEMO, lambda c: c["datasets"]["demo10"].update(classes=classes)))


@pytest.mark.parametrize("edit, message", [
    # Fixed totals are absolute: checkable against train_per_class x classes without the real set's size.
    (lambda c: c["reports"]["figure11"].update(total=2_000_000),
     "reports.figure11.generated_shares: 'n_2000000+real_75+cl80_25' needs 500,000 cl80 images, but there are at "
     "most 130,000 (datasets.imagenet1k.generate.cl80.train_per_class 1300 x 100 classes)"),
    (lambda c: c["reports"]["figure3"].update(generated_percents=[50, 100, 200], real_percents=[25, 50, 101]),
     "reports.figure3.real_percents: 'real_101+cl80_50' asks for 101% real"),
    (lambda c: c["strategies"]["pixmix"].update(images_per_real=2) or c["reports"]["table3"]["rows"].update(
        Bad="real_100+pixmix_300"), "'real_100+pixmix_300' asks for 300% pixmix, but pixmix (pixmix) makes 2 per real "
                                    "image, so at most 200%"),
    (lambda c: c["reports"]["table1"].update(archs=["efficientnet_b0", "mobilenetv2100"]),
     "reports.table1.archs: 'mobilenetv2100' is not a classifier in timm nor torchvision; "
     "did you mean mobilenetv2_100?"),
])
def test_full_config_edit_is_rejected_naming_the_key(edit, message):
    def edit_imagenet1k(c):
        c["datasets"]["imagenet1k"]["classes"] = "config/imagenet100_cmc.txt"  # 100 classes: round numbers
        edit(c)

    with pytest.raises(ConfigError) as err:
        check_semantics(planned(FULL, edit_imagenet1k))
    assert message in str(err.value)


@pytest.mark.parametrize("check_paths", [True, False])
def test_unedited_configs_pass(check_paths):
    for base in (DEMO, FULL):
        check_semantics(planned(base, lambda c: c.update(check_paths=check_paths)))


def test_check_paths_false_skips_what_only_the_data_machine_has():
    def elsewhere(c):
        c["check_paths"] = False
        c["models"]["sd15"]["id"] = "/models/sd15/local/copy"
        c["strategies"]["cl80"]["templates"] = "/prompts/templates.txt"

    check_semantics(planned(FULL, elsewhere))
    with pytest.raises(ConfigError, match=r"^models\.sd15\.id: '/models/sd15/local/copy' is neither"):
        check_semantics(planned(FULL, lambda c: elsewhere(c) or c.update(check_paths=True)))


def test_hub_ids_are_told_from_paths():
    hub_ids = ("stable-diffusion-v1-5/stable-diffusion-v1-5", "facebook/DiT-XL-2-256",
               "lambdalabs/sd-image-variations-diffusers", "gpt2")
    assert all(generator_checks.HUB_ID.fullmatch(i) for i in hub_ids)
    assert not any(generator_checks.HUB_ID.fullmatch(i) for i in ("results/demo/model/sd", "models/", "a b/c", "-x/y"))


def test_architectures_resolve_as_create_model_resolves_them():
    assert checks.architecture_problem("resnet18") == ""
    assert checks.architecture_problem("torchvision:resnext50_32x4d") == ""
    assert checks.architecture_problem("mobilenetv2_100.ra_in1k") == ""  # timm ignores a pretrained tag
    assert "not a classifier in torchvision" in checks.architecture_problem("torchvision:mobilenetv2_100")
    assert "not a classifier" in checks.architecture_problem("fasterrcnn_resnet50_fpn")  # a detector
    assert "not a model library" in checks.architecture_problem("keras:resnet18")


def test_shipped_name_lists_match_the_installed_libraries():
    """The lists plan time reads instead of importing diffusers, timm and torchvision; when this
    fails after a pin change, run `python -m genrobust.checks --refresh` and commit the lists."""
    for path, lines in ((checks.DIFFUSERS_CLASSES, checks.diffusers_class_lines()),
                        (checks.ARCHITECTURES, checks.architecture_lines())):
        shipped = [s for s in path.read_text().splitlines() if not s.startswith("#")]
        assert shipped == lines, f"{path} is stale: run python -m genrobust.checks --refresh"


def test_plan_time_imports_no_deep_learning_library():
    heavy = ("torch", "torchvision", "diffusers", "timm", "transformers")
    code = f"import sys, genrobust.checks; print(sorted(m for m in {heavy} if m in sys.modules))"
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(REPO / "workflow"), os.environ.get("PYTHONPATH", "")]))
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, check=True)
    assert result.stdout.strip() == "[]"


def test_dry_run_stops_at_a_semantic_mistake_naming_the_key(workdir):
    config = copy.deepcopy(DEMO)
    config["strategies"]["cl80"]["scheduler"] = "PNDMSchedular"
    path = workdir / "config" / "case.yaml"
    path.write_text(yaml.safe_dump(config))
    result = snakemake("-n", "--configfile", str(path), cwd=workdir)
    assert result.returncode != 0
    lines = [s for s in (result.stdout + result.stderr).splitlines() if "strategies.cl80.scheduler" in s]
    assert lines and "'PNDMSchedular' is not a diffusers scheduler; did you mean PNDMScheduler?" in lines[0]
    assert "Job stats" not in result.stdout  # nothing was planned, let alone run


def test_scaling_report_plans_generated_alone_and_added_to_the_real_data():
    from genrobust.config import report_mixtures

    def scaling(c):
        c["reports"]["scaling"] = {k: v for k, v in c["reports"]["figure11"].items() if k not in ("total", "generated_shares")}
        c["reports"]["scaling"].update(kind="scaling_curve", generated_percents=[50, 100])
    config = planned(DEMO, scaling)
    check_semantics(config)
    assert report_mixtures(config["reports"]["scaling"], config) == [
        "real_100", "cl80_50", "cl80_100", "real_100+cl80_50", "real_100+cl80_100", "real_50"]


def test_every_report_kind_with_a_grid_of_rows_names_the_keys_of_its_terms():
    """A report whose rows are a grid it derives (over one strategy, or its guidance sweep) has no
    rows.<label> key: a term that cannot be filled is reported at the key that sets it."""
    from genrobust.kinds import REPORTS

    grids = {*REPORTS.names(on_strategy=True), *REPORTS.names(guidance_sweep=True)}
    assert set(checks.GRID_TERM_KEYS) == grids
    assert all(key in REPORTS[kind].keys for kind in grids for key in checks.GRID_TERM_KEYS[kind])


def drop_reference_column(name):
    return lambda c: c["datasets"]["imagenet1k"]["reference"]["csv"]["columns"].pop(name)


@pytest.mark.parametrize("edit, message", [
    # Table 9 without its own reference: the testbed CSV has no ImageNet-C, and no real runs are planned.
    (lambda c: c["reports"]["table9"].pop("reference"),
     "reports.table9.test_sets: effective robustness on 'imagenet_c' needs a line through >= 2 standard models, but "
     "datasets.imagenet1k.reference (imagenet-testbed (Taori et al. 2020), models of type STANDARD) gives it 0: "
     "0 real-only run(s) here and its csv maps no column for imagenet_c"),
    # ObjectNet's ER compares with val on ObjectNet's classes: the CSV must give that column too.
    (drop_reference_column("imagenet_val@objectnet"),
     "reports.table1.test_sets: effective robustness on 'objectnet' needs a line through >= 2 standard models"),
    (lambda c: c["datasets"]["imagenet1k"]["reference"]["csv"]["columns"].update(sketch="imagenet-sketsh"),
     "datasets.imagenet1k.reference.csv.columns.sketch: 'imagenet-sketsh' is not a column of "
     "config/reference/imagenet_testbed_standard.csv (9 columns); did you mean imagenet-sketch?"),
    # One real run is one point: no line.
    (lambda c: c["reports"]["figure3"].update(archs=["resnet18"], seeds=[0]),
     "reports.figure3.test_sets: effective robustness on 'sketch' needs a line through >= 2 standard models, but "
     "datasets.imagenet100.reference (this study's runs on real_100) gives it 1: 1 real-only run(s) here and it has "
     "no csv"),
])
def test_an_effective_robustness_reference_must_cover_every_set_a_report_fits(edit, message):
    """A report fits a line per shift set it reports, through its reference's standard models: a set
    the reference cannot give two points would fail the fit after every training (Table 1 once did)."""
    with pytest.raises(ConfigError) as err:
        check_semantics(planned(FULL, edit))
    assert message in str(err.value) and "\n" not in str(err.value)


def report(name, **values):
    return lambda c: c["reports"][name].update(values)


def new_report(name, spec):
    return lambda c: c["reports"].update({name: spec})


SEPARATE_BN = {"kind": "robustness_table", "dataset": "demo10", "rows": {"Separate": "real_100+cl80_100+sepbn"},
               "archs": ["convnext_atto"], "seeds": [0], "test_sets": ["sketch"]}

# Accepted before, and then either ignored (a silently wrong result) or failed hours in: each fails
# at plan time now, naming the key (issue: no silent wrong result from a config).
SILENT_OR_LATE = {
    "crop ratio of an unknown test set": (
        lambda c: c["evaluation"].update(test_set_crop_ratio={"imagenetc": 1.0}),
        "evaluation.test_set_crop_ratio.imagenetc: 'imagenetc' is not one of test_sets"),
    "column name of an unknown test set": (
        report("table3", column_names={"sketchh": "Im-Sketch-100"}),
        "reports.table3.column_names.sketchh: 'sketchh' is not a test set of this report"),
    "an overlay's report merged into the base's": (
        report("table1", kind="fid_table", sources={"Real": "real"}),
        "reports.table1: 'rows', 'archs', 'seeds' is not a key of a fid_table report"),
    "seeds_from in a loop": (
        lambda c: c["strategies"]["cl80"].update(seeds_from="photo") or c["strategies"]["photo"].update(
            seeds_from="cl80"),
        "strategies.cl80.seeds_from: cl80 -> photo -> cl80 is a loop"),
    "+sepbn on an architecture without BatchNorm": (
        new_report("sepbn", SEPARATE_BN), "reports.sepbn.archs: convnext_atto has no BatchNorm2d"),
    "fine-tuning a class-conditional model": (
        lambda c: c["models"]["sd15_ft"]["finetune"].update(base="dit"),
        "models.sd15_ft.finetune.base: 'dit' is a class-conditional DiT"),
    "a demo model path with a typo": (
        lambda c: c["models"]["sd15"].update(id="results/demo/models/sd_typo"),
        "models.sd15.id: 'results/demo/models/sd_typo' is neither an existing folder"),
    "a demo metric model with a typo": (
        lambda c: c["metrics"]["clip"].update(model="local-dir:results/demo/models/metrics/open_clipp"),
        "metrics.clip.model: 'results/demo/models/metrics/open_clipp'"),
    "the CLIP filter's text with two fields": (
        lambda c: c["metrics"]["clip"].update(filter_template="a photo of a {} and a {}"),
        "metrics.clip.filter_template: 'a photo of a {} and a {}' must hold exactly one '{}'"),
    "an architecture too small for its images": (
        report("table3", archs=["resnet18", "vit_tiny_patch16_224"]),
        "reports.table3.archs: vit_tiny_patch16_224 cannot take the 32-px images of datasets.demo10.recipe.min_res"),
    "a mixture that is not one (+sepbn without real)": (
        row("table1", "cl80_100+sepbn"), "reports.table1.rows.Bad: mixture 'cl80_100+sepbn': +sepbn splits"),
    "a key the strategy's kind does not read": (
        strategy("cl80", strength=0.5),
        "strategies.cl80.strength: a class_labels strategy does not read strength (only img2img do)"),
    "images per class for images made from real ones": (
        lambda c: c["datasets"]["demo10"]["generate"]["variation"].update(train_per_class=100),
        "datasets.demo10.generate.variation.train_per_class: a image_variation strategy does not read"),
    "fixed-total shares over 100": (
        row("table3", "n_300+real_100+pixmix_100"),
        "reports.table3.rows.Bad: mixture 'n_300+real_100+pixmix_100': shares of a fixed total must add up to 100"),
}


@pytest.mark.parametrize("case", list(SILENT_OR_LATE))
def test_a_value_that_would_be_ignored_or_fail_late_is_rejected_naming_the_key(case):
    from genrobust.validation import check_config

    edit, message = SILENT_OR_LATE[case]
    with pytest.raises(ConfigError) as err:
        check_config(planned(DEMO, edit))
    assert message in str(err.value), str(err.value)
    assert "\n" not in str(err.value)


def test_places_without_a_place_field_and_templates_files_with_a_stray_brace(tmp_path):
    places = write(tmp_path / "places.txt", "on a beach\nin a kitchen\n")
    with pytest.raises(ConfigError, match=r"^strategies\.cl80\.places: no template of the strategy uses \{place\}"):
        check_semantics(planned(DEMO, strategy("cl80", places=places)))
    check_semantics(planned(DEMO, strategy("cl80", places=places, templates=["a photo of a {}, {place}"])))
    templates = write(tmp_path / "templates.txt", "a photo of a {}\na lone { brace by a {}\n")
    with pytest.raises(ConfigError, match=r"strategies\.cl80\.templates: .*templates\.txt, line 2: template 'a lone "
                                          r"\{ brace by a \{\}' cannot be filled"):
        check_semantics(planned(DEMO, strategy("cl80", templates=templates)))


def test_a_chain_of_seeds_from_pairs_every_set_with_the_first():
    config = planned(DEMO, lambda c: c["strategies"]["cl80"].update(seeds_from="photo") or c["strategies"][
        "photo"].update(seeds_from="rendition"))
    check_semantics(config)
    assert config["strategies"]["cl80"]["seeds_from"] == "rendition" == config["strategies"]["photo"]["seeds_from"]


def test_a_test_set_only_table_2_embeds_must_exist(tmp_path):
    from genrobust.validation import check_config

    def extra_test_set(c):
        c["test_sets"]["sketch2"] = {"kind": "imagenet", "path": str(tmp_path / "no-sketch"), "name": "Sketch 2"}
        c["reports"]["table2"].update(test_sets=["sketch2"], column_names={"sketch2": "Sketch 2"})

    with pytest.raises(ConfigError, match=r"^test_sets\.sketch2\.path: '.*no-sketch' does not exist"):
        check_config(planned(DEMO, extra_test_set))


def test_a_guidance_sweeps_advice_names_the_key_the_user_wrote():
    from genrobust.validation import check_config

    sweep = {"kind": "guidance_curve", "dataset": "demo10", "strategy": "cl80", "guidance": [2, 7.5],
             "generated_percent": 200, "archs": ["resnet18"], "seeds": [0], "test_sets": ["sketch"]}
    with pytest.raises(ConfigError) as err:
        check_config(planned(DEMO, new_report("sweep", sweep)))
    assert "datasets.demo10.generate.cl80.train_per_class" in str(err.value), str(err.value)
    assert "cl80g2." not in str(err.value)


@pytest.mark.parametrize("content, message", [
    (b"wnid,caption\nn01558993,a robin\nn01558993,caf\xe9 au lait\n", r"line 3: byte b'\\xe9' is not UTF-8"),
    (b"wnid,caption\nn01558993,a robin\nn01558993,a robin\n", r"line 3 repeats line 2"),
    (b"wnid,caption\nn01558993,a robin\nn0155899x,a typo\n", r"line 3 names 'n0155899x', which is not an ImageNet"),
])
def test_a_captions_file_is_read_with_its_lines_named(tmp_path, content, message):
    from genrobust.captions import read_class_captions

    (tmp_path / "captions.csv").write_bytes(content)
    with pytest.raises(ValueError, match=message):
        read_class_captions(tmp_path / "captions.csv", ["n01558993"])


def test_an_output_folder_with_a_brace_is_refused():
    from genrobust.validation import check_config

    with pytest.raises(ConfigError, match=r"^out: 'results/\{x\}' holds a brace"):
        check_config(planned(DEMO, lambda c: c.update(out="results/{x}")))


def test_the_plan_names_every_hub_model_without_a_revision():
    from genrobust.config import unpinned_hub_models

    notes = unpinned_hub_models(planned(FULL))
    assert [n.split(":")[0] for n in notes] == ["models.sd15", "models.dit", "models.sd15_ft_paper"]
    assert unpinned_hub_models(planned(DEMO)) == []  # local folders and a fine-tuned model: nothing to pin


@pytest.mark.parametrize("overlay, message", [
    ("reprots: {}\n", "config error: reprots: 'reprots' is not a key of the config; did you mean reports?"),
    ("reports:\n  table3:\n    rowz: {A: real_100}\n",
     "config error: reports.table3.rowz: 'rowz' is not a key of reports.table3; did you mean rows?"),
    ("strategies:\n  cl80:\n    stpes: 3\n", "config error: strategies.cl80.stpes: 'stpes' is not a key of "
                                           "strategies.cl80; did you mean steps?"),
])
def test_an_unknown_key_is_one_line_with_a_suggestion_not_the_schema(workdir, overlay, message):
    (workdir / "config/typo.yaml").write_text(overlay)
    result = snakemake("-n", "--configfile", "config/demo.yaml", "config/typo.yaml", cwd=workdir)
    output = result.stdout + result.stderr
    assert result.returncode != 0 and message in output, output[-2000:]
    assert len(output.splitlines()) < 40  # not the ~2,000 lines of the schema
