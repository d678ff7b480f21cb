"""Plan-time checks that every config value refers to something that exists and does what it
seems to: a key naming a test set names one, a report holds only its kind's keys, a paired
strategy's seeds resolve, a background list is used, a fine-tuning base can be fine-tuned, a
template has one field, an architecture takes its images. Each of these, wrong, was accepted and
either ignored (a silently wrong result) or failed hours in; here it fails before any job,
naming the key. Called by checks.check_semantics.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Callable

from .config import ConfigError, parse_mixture
from .kinds import REPORTS, STRATEGIES, StrategyKind
from .study import Study

# Architectures whose every layer takes any image size the recipes use (the paper's five): the
# others are built once on the meta device at the dataset's sizes, to find one that cannot.
SIZE_FREE_ARCHS = {"resnet18", "resnet50", "resnext50_32x4d", "resnext101_32x8d", "efficientnet_b0", "mobilenet_v2"}


def check_references(study: Study) -> None:
    _check_test_set_keys(study)
    _check_report_keys(study)
    _check_strategy_keys(study)
    _check_places(study)
    _check_finetune_bases(study)
    _check_separate_bn(study)
    _check_image_sizes(study)


# ----------------------------------------------------------------------------- keys naming test sets


def _unknown(keys, known: set[str], key: str, what: str) -> None:
    from .schema import did_you_mean

    for name in keys:
        if name not in known:
            raise ConfigError(f"{key}.{name}: '{name}' is not {what} ({', '.join(sorted(known))}), so the value "
                              f"would be ignored{did_you_mean(name, known)}")


def _check_test_set_keys(study: Study) -> None:
    test_sets = set(study.test_sets)
    _unknown((study.evaluation.get("test_set_crop_ratio") or {}), test_sets, "evaluation.test_set_crop_ratio",
             "one of test_sets")
    id_set = study.evaluation["id_test_set"]
    for name, report in study.reports.items():
        reported = set(report.settings.get("test_sets", ())) | ({id_set} if report.settings.get("archs") else set())
        _unknown((report.settings.get("column_names") or {}), reported, f"reports.{name}.column_names",
                 "a test set of this report")
    references = [(f"datasets.{d}.reference", s.settings["reference"]) for d, s in study.datasets.items()]
    references += [(f"reports.{r}.reference", s.settings["reference"]) for r, s in study.reports.items()
                   if s.settings.get("reference")]
    measures = test_sets | {f"{id_set}@{t}" for t in test_sets}
    for key, reference in references:
        if reference.get("csv"):
            _unknown(reference["csv"]["columns"], measures, f"{key}.csv.columns",
                     "a test set or an '<id set>@<test set>' measure")


# ----------------------------------------------------------------------------- reports


def _check_report_keys(study: Study) -> None:
    """A report holds only its kind's keys. An overlay that reuses a report's name merges into it key
    by key (Snakemake's configfile merge): keys of two kinds in one report are that, or a misplaced key."""
    for name, planned in study.reports.items():
        report = planned.settings
        allowed = {"kind", "dataset", *planned.kind.keys}
        stray = [k for k in report if k not in allowed]
        if stray:
            owners = sorted({kind for kind in REPORTS if set(stray) & set(REPORTS[kind].keys)} - {report["kind"]})
            merged = (f"; they are {', '.join(owners)} keys: a config overlay that reuses the report name '{name}' "
                      f"merges into it key by key, so give the overlay's report a name of its own") if owners else ""
            raise ConfigError(f"reports.{name}: {', '.join(map(repr, stray))} is not a key of a {report['kind']} "
                              f"report (its keys: {', '.join(sorted(allowed))}){merged}")


# ----------------------------------------------------------------------------- strategies


def _check_kind_keys(key: str, entry, kind: str, keys_of: Callable[[StrategyKind], tuple[str, ...]]) -> None:
    """`entry`, of a `kind` strategy, sets no key that only other kinds read (`keys_of` a kind:
    those it reads): the others have schema defaults, and a key set on a kind that does not read
    it would be ignored."""
    readers: dict[str, list[str]] = {}  # key -> the kinds that read it, in registration order
    for name in STRATEGIES:
        for field in keys_of(STRATEGIES[name]):
            readers.setdefault(field, []).append(name)
    for field, kinds in readers.items():
        if field in entry and kind not in kinds:
            raise ConfigError(f"{key}.{field}: a {kind} strategy does not read {field} (only "
                              f"{', '.join(kinds)} do), so it would be ignored; remove it or change the kind")


def _check_strategy_keys(study: Study) -> None:
    """Strategies and their generate entries (images per class for the kinds conditioned on a
    class, a cap on the real images used for the kinds made from them) hold their kind's keys."""
    for name, strategy in study.strategies.items():
        _check_kind_keys(f"strategies.{name}", strategy.settings, strategy.kind.name, lambda kind: kind.keys)
    for dname, dataset in study.datasets.items():
        for name, gen in dataset.generate.items():
            _check_kind_keys(f"datasets.{dname}.generate.{name}", gen, study.strategies[name].kind.name,
                             lambda kind: kind.generate_keys)


def _check_places(study: Study) -> None:
    from . import prompts

    for name, planned in study.strategies.items():
        strategy = planned.settings
        if strategy.get("places", "default") == "default" or not planned.kind.places:
            continue
        templates = strategy.get("templates", "openai80")
        listed = templates if isinstance(templates, tuple) else prompts.NAMED_TEMPLATE_SETS.get(templates)
        if listed is None:
            path = Path(templates)
            listed = prompts.load_templates(str(path)) if path.is_file() else None
        if listed is not None and not any("place" in prompts.template_fields(t) for t in listed):
            raise ConfigError(f"strategies.{name}.places: no template of the strategy uses {{place}}, so the "
                              "backgrounds are unused; add {place} to a template or drop places")


def _check_finetune_bases(study: Study) -> None:
    """A fine-tuned model's base is a text-to-image pipeline with a UNet, a text encoder and a
    tokenizer (finetune/loop.py loads those three)."""
    for model in study.models.values():
        if not model.finetuned:
            continue
        block = model.settings["finetune"]
        key = f"models.{model.name}.finetune.base"
        base = study.models[block["base"]].settings
        users = {s.settings.get("pipeline") for s in study.strategies.values()
                 if s.settings.get("model") == block["base"]}
        if "DiTPipeline" in users:
            raise ConfigError(f"{key}: '{block['base']}' is a class-conditional DiT (its strategies use DiTPipeline); "
                              "fine-tuning needs a text-to-image model with a UNet, a text encoder and a tokenizer")
        index = Path(base.get("id", "")) / "model_index.json"
        if study.produced_by_demo(str(index.parent)) or not index.is_file():
            continue
        parts = {k for k, v in json.loads(index.read_text()).items() if isinstance(v, list)}
        missing = sorted({"unet", "text_encoder", "tokenizer"} - parts)
        if missing:
            raise ConfigError(f"{key}: '{block['base']}' ({base['id']}) has no {', '.join(missing)}; fine-tuning "
                              "needs a text-to-image pipeline with a UNet, a text encoder and a tokenizer")


# ----------------------------------------------------------------------------- architectures


def _report_archs(study: Study):
    """(report, dataset, arch, mixture) of every trained run a report plans."""
    for name, report in study.reports.items():
        for mix in report.rows.values():
            for arch in report.settings.get("archs", ()):
                yield name, report.dataset, arch, mix


def _check_separate_bn(study: Study) -> None:
    """+sepbn gives every BatchNorm2d a twin: an architecture without one trains as the shared run."""
    seen = {}
    for name, dataset, arch, mix in _report_archs(study):
        if not parse_mixture(mix).separate_bn or arch in seen:
            continue
        import torch

        from .classifiers import create_model

        with torch.device("meta"):
            model = create_model(arch, 10, blurpool=False)
        seen[arch] = any(isinstance(m, torch.nn.BatchNorm2d) for m in model.modules())
        if not seen[arch]:
            raise ConfigError(f"reports.{name}.archs: {arch} has no BatchNorm2d, so '{mix}' (+sepbn) would train "
                              "exactly as its shared-statistics run; use an architecture with BatchNorm")


def _check_image_sizes(study: Study) -> None:
    """Each architecture takes its dataset's training and validation sizes (a ViT built for 224 px
    or Inception-v3 fail at 32 px, at the first batch): built on the meta device, no weights."""
    sizes = {}
    for name, dataset, arch, _ in _report_archs(study):
        if arch.split(":")[-1] in SIZE_FREE_ARCHS:
            continue
        recipe = study.datasets[dataset].recipe
        for field in ("min_res", "max_res", "val_res"):
            problem = sizes.setdefault((arch, recipe[field]), _size_problem(arch, recipe[field]))
            if problem:
                raise ConfigError(f"reports.{name}.archs: {arch} cannot take the {recipe[field]}-px images of "
                                  f"datasets.{dataset}.recipe.{field} ({problem}); choose another architecture or "
                                  "larger images")


def _size_problem(arch: str, size: int) -> str:
    import torch

    from .classifiers import create_model

    try:
        with torch.device("meta"):
            model = create_model(arch, 10).eval()
            with torch.no_grad():
                model(torch.empty(2, 3, size, size))
    except Exception as err:  # noqa: BLE001 - any failure here is the one the first batch would hit
        return " ".join(str(err).split())[:200]
    return ""
