"""Plan-time checks of the metrics section, the metric reports and clip_filtered sources
(called by checks.check_semantics; every ConfigError names the key). Model names are checked
against genrobust/data/metric_models.txt (timm's pretrained names, open_clip's models and their
pretrained tags), written from the pinned versions by `python -m genrobust.checks --refresh`:
plan time imports neither timm nor open_clip."""

from __future__ import annotations

from pathlib import Path

from genrobust.config import ConfigError
from genrobust.kinds.reports import FID_SETS, METRIC, SOURCE_SETS
from genrobust.name_lists import METRIC_MODELS, shipped_names
from genrobust.schema import did_you_mean
from genrobust.study import Report, Study, thawed

from .plan import row_sources

SCHEMAS = ("local-dir:", "hf-hub:")


def metric_model_lines() -> list[str]:
    """'timm <name.tag>' for every timm pretrained model, 'open_clip <model> <tag,tag|->' for
    every open_clip model (tags it has pretrained weights for)."""
    import open_clip
    import timm

    tags: dict[str, list[str]] = {name: [] for name in open_clip.list_models()}
    for name, tag in open_clip.list_pretrained():
        tags.setdefault(name, []).append(tag)
    return ([f"timm {n}" for n in sorted(timm.list_pretrained())]
            + [f"open_clip {n} {','.join(sorted(t)) or '-'}" for n, t in sorted(tags.items())])


def _names():
    return shipped_names(METRIC_MODELS)


def _local(study: Study, key: str, path: str, what: str, folder: bool = False) -> None:
    """A local model file or folder must exist (unless the demo builds it, or paths are not checked)."""
    if study.produced_by_demo(path) or not study.check_paths:
        return
    p = Path(path).expanduser()
    if not (p.is_dir() if folder else p.is_file()):
        raise ConfigError(f"{key}: '{path}' is not an existing {'folder' if folder else 'file'}; {what}")


def check_timm(study: Study, key: str, name: str, file: str | None) -> None:
    if name.startswith("local-dir:"):
        _local(study, key, name.split(":", 1)[1], "point it at a folder written by timm's save_for_hf", folder=True)
    elif not name.startswith("hf-hub:"):
        known = _names()["timm"]
        arch = name.split(".", 1)[0]
        if name not in known and not (name == arch and any(k.split(".", 1)[0] == arch for k in known)):
            raise ConfigError(f"{key}: '{name}' is not a timm pretrained model{did_you_mean(name, known)} "
                              "(timm.list_pretrained(); or local-dir:<folder>, hf-hub:<id>)")
    if file:
        _local(study, f"{key.rsplit('.', 1)[0]}.file", file, "give the weights file of this timm model")


def check_clip(study: Study, clip) -> None:
    template = clip.get("filter_template")
    if template is not None and (template.count("{}") != 1 or template.replace("{}", "").count("{")
                                 or template.replace("{}", "").count("}")):
        raise ConfigError(f"metrics.clip.filter_template: {template!r} must hold exactly one '{{}}', the class "
                          "name, and no other brace (the CLIP filter's text: 'a photo of a {}')")
    model, pretrained = clip.get("model", "ViT-B-32"), clip.get("pretrained", "openai")
    if model.startswith("local-dir:"):
        _local(study, "metrics.clip.model", model.split(":", 1)[1],
               "point it at a folder with open_clip_config.json and weights", folder=True)
        return
    if model.startswith("hf-hub:"):
        return
    models = _names()["open_clip"]
    if model not in models:
        raise ConfigError(f"metrics.clip.model: '{model}' is not an open_clip model{did_you_mean(model, models)}")
    tags = [t for t in models[model].split(",") if t != "-"]
    if pretrained and pretrained not in tags and not pretrained.startswith((".", "/", "~")) \
            and not study.produced_by_demo(pretrained):
        raise ConfigError(f"metrics.clip.pretrained: '{pretrained}' is not a pretrained tag of {model} "
                          f"({', '.join(tags) or 'none'}) nor a checkpoint path")
    if pretrained and pretrained.startswith((".", "/", "~")):
        _local(study, "metrics.clip.pretrained", pretrained, "give an open_clip checkpoint file")


def _split_made(study: Study, dataset: str, source: str, split: str) -> bool:
    gen = study.datasets[dataset].generate.get(source)
    return source == "real" or bool(gen and gen[f"{split}_shards"] > 0)


def check_filtered(study: Study) -> None:
    strategies = study.strategies
    for name, strategy in strategies.items():
        if not strategy.kind.derived:
            continue
        source = strategy.settings.get("source")
        if source not in strategies or strategies[source].kind.derived:
            raise ConfigError(f"strategies.{name}.source: '{source}' must be a strategy that generates images "
                              f"(one of {sorted(s for s in strategies if not strategies[s].kind.derived)})")
        for dname, dataset in study.datasets.items():
            gen = dataset.generate.get(name)
            for split in ("train", "val"):
                if gen and gen[f"{split}_shards"] > 0 and not _split_made(study, dname, source, split):
                    raise ConfigError(f"datasets.{dname}.generate.{name}.{split}_shards: {name} filters the {split} "
                                      f"images of {source}, which datasets.{dname}.generate.{source} does not make")


def check_report(study: Study, planned: Report) -> None:
    key, dataset, kind, report = f"reports.{planned.name}", planned.dataset, planned.kind, planned.settings
    if kind.embeds in (FID_SETS, SOURCE_SETS):  # its `sources`' train splits
        for label, source in report["sources"].items():
            if source != "real" and source not in study.strategies:
                raise ConfigError(f"{key}.sources.{label}: '{source}' is neither 'real' nor one of strategies")
            if not _split_made(study, dataset, source, "train"):
                raise ConfigError(f"{key}.sources.{label}: datasets.{dataset}.generate.{source} does not make a "
                                  "train split")
    if kind.diversity_er:
        try:
            row_sources(thawed(report))
        except ValueError as err:
            raise ConfigError(f"{key}.rows: {err} (its CLIP diversity is set beside the row's ER)") from None
    if kind.classifies:
        strategy = report["strategy"]
        if strategy not in study.strategies or not _split_made(study, dataset, strategy, "val"):
            raise ConfigError(f"{key}.strategy: '{strategy}' must be a strategy with a generated val set "
                              f"(datasets.{dataset}.generate.{strategy}.val_shards > 0)")
        trained = [label for label, spec in report["classifiers"].items() if "mixture" in spec]
        if trained and not (report.get("archs") and report.get("seeds")):
            raise ConfigError(f"{key}.archs: the trained rows ({', '.join(trained)}) need archs and seeds")
        for label, spec in report["classifiers"].items():
            if "timm" in spec:
                check_timm(study, f"{key}.classifiers.{label}.timm", spec["timm"], spec.get("file"))


def check_metrics(study: Study) -> None:
    metric_reports = study.reports_that(family=METRIC)
    for report in metric_reports.values():
        check_report(study, report)
    metrics = study.config.get("metrics") or {}
    embeds = {r.kind.embeds for r in metric_reports.values()}
    uses_clip = bool(embeds - {FID_SETS}) or any(s.kind.derived for s in study.strategies.values())
    if uses_clip:
        check_clip(study, metrics.get("clip") or {})
    weights = (metrics.get("inception") or {}).get("weights")
    if weights and FID_SETS in embeds:
        _local(study, "metrics.inception.weights", weights,
               "give clean-fid's inception-2015-12-05.pt, a TorchScript feature extractor, or null to download")
