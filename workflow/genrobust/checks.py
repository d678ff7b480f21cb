"""What config values mean, checked at plan time: the checks a job would make on its inputs.

The schema checks types and validation.check_config cross-references and paths; a value of the right
type can still be wrong in meaning (a scheduler's name misspelt, a templates file that is not
there, a mixture the planned generation cannot fill) and then fails only when the job that uses
it runs, hours into the DAG. `check_semantics` makes those checks once, before any job starts,
for everything the config names; each ConfigError names the key and what to change.

Plan time must stay fast (`snakemake -n` re-reads config for every submitted job), so this module
never imports diffusers, timm or torch: their class and model names are shipped as small lists
in genrobust/data/, written from the pinned versions by `python -m genrobust.checks --refresh`
(tests/test_config_checks.py keeps them equal to the installed libraries).
"""

from __future__ import annotations

import functools
import inspect
import math
import sys

from .config import ConfigError, class_list, parse_mixture
from .name_lists import ARCHITECTURES, DIFFUSERS_CLASSES, METRIC_MODELS, shipped_names
from .crosschecks import check_references
from .generator_checks import CALL_ARGS, check_generators, check_models
from .prompt_checks import check_captions, check_prompt_files
from .schema import did_you_mean
from .study import Report, Study, thawed


def check_semantics(study: Study) -> None:
    """Raise ConfigError, naming the key, at the first value that is valid in type but would make
    a job fail. `study` is one validation.parse_study built (its names resolve)."""
    _check_datasets(study)
    check_generators(study)
    check_models(study)
    check_prompt_files(study)
    check_captions(study)  # the templates that use them
    _check_archs(study)
    for name, dataset in study.datasets.items():
        _check_recipe(f"datasets.{name}.recipe", dataset.recipe)
    _check_filtered_sources(study)  # before the mixtures: they count a clip_filtered source by its source
    _check_mixtures(study)
    _check_er_references(study)
    _check_metrics(study)
    check_references(study)


def _check_er_references(study: Study) -> None:
    """Each shift set of a report with effective robustness is fitted a line through its reference's
    standard models: its real-only runs here and the published rows of its csv that have both the
    set's and its ID measure's columns. Fewer than 2 points would fail the fit after every training."""
    import pandas as pd

    from .robustness import describe_reference, reference_points

    id_set = study.evaluation["id_test_set"]
    for name, planned in study.reports_that(er=True).items():
        report, reference, key = planned.settings, planned.reference, planned.reference_key
        runs = len(reference["mixtures"]) * len(report["archs"]) * len(report["seeds"])
        csv, frame = reference["csv"], None
        if csv:
            frame = study.read_file(f"{key}.csv.path", csv["path"], pd.read_csv, "a CSV of published accuracies")
            known = set(frame.columns) if frame is not None else None
            for field, column in [*(("columns." + k, v) for k, v in csv["columns"].items()),
                                  ("type_column", csv.get("type_column"))]:
                if known is not None and column and column not in known:
                    raise ConfigError(f"{key}.csv.{field}: '{column}' is not a column of {csv['path']} "
                                      f"({len(known)} columns){did_you_mean(column, known)}")
        for test_set in report["test_sets"]:
            if test_set == id_set:
                continue
            id_col = f"{id_set}@{test_set}" if study.test_sets[test_set].kind.id_subset else id_set
            if csv and frame is None and {test_set, id_col} <= set(csv["columns"]):
                continue  # a csv plan time cannot read (check_paths off): its rows are unknown
            published = len(reference_points(csv, test_set, id_col, frame)) if frame is not None else 0
            if runs + published >= 2:
                continue
            lacks = [c for c in (test_set, id_col) if not csv or c not in csv["columns"]]
            why = f"its csv maps no column for {' and '.join(lacks)}" if csv and lacks else \
                f"{published} published row(s) with both columns" if csv else "it has no csv"
            raise ConfigError(
                f"reports.{name}.test_sets: effective robustness on '{test_set}' needs a line through >= 2 standard "
                f"models, but {key} ({describe_reference(thawed(reference)) or 'empty'}) gives it {runs + published}: "
                f"{runs} real-only run(s) here and {why}. Give the report a reference that covers it "
                f"(reports.{name}.reference: {{mixtures: [real_100]}}: its own real-data runs, as Table 9's), "
                f"or map the set in {key}.csv.columns")


def _check_filtered_sources(study: Study) -> None:
    """clip_filtered strategies name a generating strategy that makes the splits they filter."""
    from .metrics.config_checks import check_filtered

    check_filtered(study)


def _check_metrics(study: Study) -> None:
    """The metrics section and the metric reports (genrobust/metrics/)."""
    from .metrics.config_checks import check_metrics

    check_metrics(study)


# ----------------------------------------------------------------------------- name lists


def architecture_problem(arch: str) -> str:
    """Why classifiers.create_model cannot build `arch` ('' if it can), from the shipped lists."""
    lists = shipped_names(ARCHITECTURES)
    source, name = arch.split(":", 1) if ":" in arch else (None, arch)
    if source not in (None, "timm", "torchvision"):
        return f"'{source}' is not a model library (prefix timm: or torchvision:, or none)"
    if source in (None, "timm") and name.split(".", 1)[0] in lists["timm"]:  # timm ignores a '.tag'
        return ""
    if source in (None, "torchvision") and name in lists["torchvision"]:
        return ""
    libraries = {None: "timm nor torchvision", "timm": "timm", "torchvision": "torchvision"}[source]
    known = [n for lib in ("timm", "torchvision") if source in (None, lib) for n in lists[lib]]
    return f"'{arch}' is not a classifier in {libraries}{did_you_mean(name, known)}"


def _check_archs(study: Study) -> None:
    named = [(f"reports.{r}.archs", report.settings.get("archs", ())) for r, report in study.reports.items()]
    named.append(("benchmarks.training.arch", study.config.get("benchmarks", {}).get("training", {}).get("arch", ())))
    for key, archs in named:
        for arch in archs:
            problem = architecture_problem(arch)
            if problem:
                raise ConfigError(f"{key}: {problem}")


# ----------------------------------------------------------------------------- training


def _check_recipe(key: str, recipe) -> None:
    """What recipe.Recipe.check and its schedules assume (resizing and warm-up run forwards)."""
    if recipe["min_res"] > recipe["max_res"]:
        raise ConfigError(f"{key}.min_res: {recipe['min_res']} is above max_res {recipe['max_res']}; progressive "
                          "resizing grows from min_res to max_res, so make min_res <= max_res")
    start, end = recipe["start_ramp"], recipe["end_ramp"]
    if (start is None) != (end is None):
        unset, other = ("end_ramp", "start_ramp") if end is None else ("start_ramp", "end_ramp")
        raise ConfigError(f"{key}.{unset}: null while {other} is set, which ignores both; set both "
                          "(the resizing ramp's first and last epochs) or neither (ffcv-imagenet's ramp)")
    if start is not None and start > end:
        raise ConfigError(f"{key}.start_ramp: {start} is after end_ramp {end}; make start_ramp <= end_ramp")
    if recipe["lr_peak_epoch"] > recipe["epochs"]:
        raise ConfigError(f"{key}.lr_peak_epoch: {recipe['lr_peak_epoch']} is after the last epoch "
                          f"({recipe['epochs']}); the warm-up must peak within the run")


def _check_datasets(study: Study) -> None:
    """Class lists parse; a dataset on the demo's drawn data only has classes the demo draws."""
    for name in study.datasets:
        wnids = study.wnids(name)
        if study.real_per_class(name) is None:
            continue
        drawn = set(class_list(study.demo["classes"]))
        missing = [w for w in wnids if w not in drawn]
        if missing:
            raise ConfigError(f"datasets.{name}.classes: {len(missing)} classes ({', '.join(missing[:3])}) are not "
                              f"in demo.classes, the only ones the demo draws; list a subset of "
                              f"{study.demo['classes']}")


# ----------------------------------------------------------------------------- mixtures
#
# Percentages are of the real train set, whose size is known only once it is indexed (no
# globbing at DAG time), except on the demo's drawn data. From config alone, then:
# - a real percentage is at most 100 (the real set is 100%); no source comes twice;
# - an image-conditioned kind makes images_per_real per real image: at most images_per_real x 100%;
# - a fixed total n_<T> is absolute, so its shares are compared exactly with the class-conditioned
#   counts (train_per_class x classes) and with image-conditioned ones capped by sources_per_class;
# - a source with train_shards 0 has no images;
# - on the demo's data every count is exact, and so is each training set's size against batch_size.
# Left to the sample-mixture job (mixtures.mixture_counts): a percentage of an unindexed real set
# against class-conditioned counts, and a fixed total against the unindexed real set itself.


def _generated_at_most(study: Study, dataset: str, source: str, need: int | None) -> tuple[int | None, str, str]:
    """(at most how many train images `source` makes for `dataset`, None if that depends on the
    unindexed real set; how that follows from config; what to change to make `need`)."""
    if study.base_source(source) != source:
        have, how, fix = _generated_at_most(study, dataset, study.base_source(source), need)
        return have, f"{how}, before {source}'s CLIP filter keeps some of them", fix
    gen = study.datasets[dataset].generate[source]
    key = f"datasets.{dataset}.generate.{_written_as(study, source)}"  # a guidance sweep's: its template's
    n_classes = len(study.wnids(dataset))
    if gen["train_shards"] == 0:
        return 0, f"{key}.train_shards is 0", f"set {key}.train_shards above 0"
    kind = study.strategies[source].kind
    if kind.imported:
        return None, "", ""  # counted when imported (the mixture's job names a shortfall)
    if kind.class_conditioned:
        per_class = gen["train_per_class"]
        return (per_class * n_classes, f"{key}.train_per_class {per_class} x {n_classes} classes",
                f"raise {key}.train_per_class to {math.ceil((need or 0) / n_classes)} or lower the percentage")
    per_real = study.strategies[source].settings.get("images_per_real", 1)
    known = [n for n in (study.real_per_class(dataset), gen.get("sources_per_class")) if n is not None]
    if not known:
        return None, "", ""
    sources = min(known)  # real images per class it starts from
    return (per_real * sources * n_classes, f"{per_real} per real image x {sources} per class x {n_classes} classes",
            f"raise strategies.{_written_as(study, source)}.images_per_real or {key}.sources_per_class, or lower "
            "the percentage")


def _written_as(study: Study, strategy: str) -> str:
    """The strategy config names for `strategy`: a guidance_curve's derived strategy (cl80g2) is
    its template's (cl80) counts and settings, which are what a user edits."""
    for report in study.reports.values():
        for derived in (report.settings.get("guidance_strategies") or {}).values():
            if derived == strategy:
                return report.settings["strategy"]
    return strategy


def _check_mixture(study: Study, dataset: str, mix: str, key_of) -> int | None:
    """The size of training set `mix` of `dataset` where config fixes it (else None); a
    ConfigError, at key_of(source), where a term cannot be filled from what is planned."""
    mixture = parse_mixture(mix)
    per_class, n_classes = study.real_per_class(dataset), len(study.wnids(dataset))
    n_real = None if per_class is None else per_class * n_classes
    base = mixture.total if mixture.total is not None else n_real
    size = 0
    for source, percent in mixture.terms:
        key = key_of(source)
        if mixture.sources.count(source) > 1:
            raise ConfigError(f"{key}: '{mix}' names {source} twice; give each source once")
        counted = study.base_source(source)  # a clip_filtered source has at most its source's images
        kind = study.strategies[counted].kind if counted in study.strategies else None  # None: real
        per_real = 1 if source == "real" else study.strategies[counted].settings.get("images_per_real", 1)
        # class-conditioned and imported sets are not counted per real image
        per_real_capped = kind is None or not (kind.class_conditioned or kind.imported)
        if mixture.total is None and per_real_capped and percent > 100 * per_real:
            what = ("the real train set is 100% (all of it)" if source == "real" else
                    f"{source} ({kind.name}) makes {per_real} per real image, so at most {100 * per_real}%")
            raise ConfigError(f"{key}: '{mix}' asks for {percent:g}% {source}, but {what}; lower the percentage")
        need = None if base is None else int(round(base * percent / 100))  # as mixtures.mixture_counts
        if source == "real":
            have, how, fix = n_real, f"demo.train_per_class {per_class} x {n_classes} classes", "lower the total"
        else:
            have, how, fix = _generated_at_most(study, dataset, source, need)
        if need is not None and have is not None and need > have:
            raise ConfigError(f"{key}: '{mix}' needs {need:,} {source} images, but there are at most {have:,} "
                              f"({how}); {fix}")
        size = None if size is None or need is None else size + need
    return size


# The report keys that set the real and the generated terms of the mixtures of a report whose rows
# are a grid it derives (not listed in config): where a term that cannot be filled is reported.
GRID_TERM_KEYS = {
    "mixture_grid": ("real_percents", "generated_percents"),
    "budget_curve": ("total", "generated_shares"),
    "scaling_curve": ("generated_percents", "generated_percents"),
    "guidance_curve": ("generated_percent", "generated_percent"),
}


def _mixture_key(report: Report, label: str | None, source: str) -> str:
    """The config key that sets the `source` term of one of a report's mixtures."""
    key = f"reports.{report.name}"
    if label is None:  # a reference run of the effective-robustness fit
        return f"{report.reference_key}.mixtures"
    if report.kind.name in GRID_TERM_KEYS:
        real_key, generated_key = GRID_TERM_KEYS[report.kind.name]
        return f"{key}.{real_key if source == 'real' else generated_key}"
    return f"{key}.rows.{label}"


def _check_mixtures(study: Study) -> None:
    """Every mixture of every report can be sampled from the planned sources and makes a batch."""
    smallest: dict[str, tuple[int, str, str]] = {}  # dataset -> (size, mixture, key) of its smallest set
    for report in study.reports.values():
        labels = {mix: label for label, mix in report.rows.items()}
        for mix in report.mixtures:
            key_of = functools.partial(_mixture_key, report, labels.get(mix))
            size = _check_mixture(study, report.dataset, mix, key_of)
            if size is not None and size < smallest.get(report.dataset, (math.inf,))[0]:
                smallest[report.dataset] = (size, mix, key_of("real"))
    for dataset, (size, mix, key) in smallest.items():
        batch = study.datasets[dataset].recipe["batch_size"]
        if size < batch:  # training keeps full batches only (drop_last)
            raise ConfigError(f"datasets.{dataset}.recipe.batch_size: {batch} is more than the {size} images of "
                              f"'{mix}' ({key}), which then makes no batch; lower batch_size to {size} at most")


# ----------------------------------------------------------------------------- refresh


def _call_args(pipeline_class) -> str:
    """The CALL_ARGS a pipeline's __call__ takes, comma-joined; '*' when it takes any keyword or
    is resolved from the model folder (DiffusionPipeline, AutoPipelineFor*)."""
    owner = next((c for c in pipeline_class.__mro__ if "__call__" in vars(c) and c is not object), None)
    if owner is None:
        return "*"
    params = inspect.signature(vars(owner)["__call__"]).parameters
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values()):
        return "*"
    return ",".join(a for a in CALL_ARGS if a in params) or "-"


def _config_params(scheduler_class) -> str:
    """The config parameters a scheduler takes (its __init__'s), comma-joined, or '-'."""
    params = inspect.signature(scheduler_class.__init__).parameters.values()
    return ",".join(p.name for p in params if p.name != "self" and p.kind not in (
        inspect.Parameter.VAR_POSITIONAL, inspect.Parameter.VAR_KEYWORD)) or "-"


def diffusers_class_lines() -> list[str]:
    """'pipeline <Name> <call args>', 'scheduler <Name> <config parameters>' and 'placeholder
    <Name>' (a class diffusers exports without the optional package it needs) for the installed
    diffusers."""
    import diffusers
    from diffusers.utils import DummyObject

    lines = []
    for name in sorted(dir(diffusers)):
        obj = getattr(diffusers, name, None)
        if not isinstance(obj, type):
            continue
        if isinstance(obj, DummyObject):
            if name.endswith(("Pipeline", "Scheduler")):
                lines.append(f"placeholder {name}")
        elif issubclass(obj, diffusers.SchedulerMixin) and obj is not diffusers.SchedulerMixin:
            lines.append(f"scheduler {name} {_config_params(obj)}")
        elif issubclass(obj, diffusers.DiffusionPipeline) or name.startswith("AutoPipelineFor"):
            lines.append(f"pipeline {name} {_call_args(obj)}")
    return lines


def architecture_lines() -> list[str]:
    """'timm <name>' for every model timm.create_model builds (deprecated names that still map to one
    included), 'torchvision <name>' for torchvision's classifiers (not its detection, segmentation,
    video or quantized models, which create_model would build but training cannot use)."""
    import timm
    import torchvision.models as tvm
    from timm.models import get_deprecated_models

    timm_names = set(timm.list_models()) | {old for old, new in get_deprecated_models().items() if new}
    return [f"timm {n}" for n in sorted(timm_names)] + [f"torchvision {n}" for n in sorted(tvm.list_models(module=tvm))]


def refresh() -> None:
    """Rewrite the shipped name lists from the installed libraries (after changing their pins)."""
    from importlib.metadata import version

    from . import io

    from .metrics.config_checks import metric_model_lines

    for path, lines, packages in ((DIFFUSERS_CLASSES, diffusers_class_lines(), ("diffusers",)),
                                  (ARCHITECTURES, architecture_lines(), ("timm", "torchvision")),
                                  (METRIC_MODELS, metric_model_lines(), ("timm", "open_clip_torch"))):
        pins = ", ".join(f"{p}=={version(p)}" for p in packages)
        header = f"# Written by `python -m genrobust.checks --refresh` from {pins}; do not edit.\n"
        io.write_text(path, header + "\n".join(lines) + "\n")
        print(f"{path}: {len(lines)} names ({pins})", file=sys.stderr)


if __name__ == "__main__":
    if sys.argv[1:] != ["--refresh"]:
        sys.exit("usage: python -m genrobust.checks --refresh   (rewrites genrobust/data/*.txt)")
    refresh()
