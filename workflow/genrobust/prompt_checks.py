"""Plan-time checks of what prompts a strategy (templates, places, class names, captions files):
each file exists, parses and names every class it must, and templates and captions go together.
Called by checks.check_semantics; every ConfigError names the key."""

from __future__ import annotations

from . import prompts
from .captions import IMAGE_COLUMNS, check_columns, read_class_captions
from .config import ConfigError
from .schema import did_you_mean
from .study import Study


def check_prompt_files(study: Study) -> None:
    """Class lists, templates and class-name files exist, parse, and name every class they must."""
    for name, planned in study.strategies.items():
        if not planned.kind.prompted:
            continue
        key, strategy = f"strategies.{name}", planned.settings
        templates = strategy.get("templates", "openai80")
        if isinstance(templates, tuple):
            for i, template in enumerate(templates):
                try:
                    prompts.check_template(template)
                except ValueError as err:
                    raise ConfigError(f"{key}.templates[{i}]: {err}") from None
        elif templates not in prompts.NAMED_TEMPLATE_SETS:
            sets = sorted(prompts.NAMED_TEMPLATE_SETS)
            study.read_file(f"{key}.templates", templates, prompts.load_templates,
                       f"give a named set ({', '.join(sets)}), a list, or a file of templates, one per line "
                       f"with one {{}} each{did_you_mean(templates, sets)}")
        places = strategy.get("places", "default")
        if places not in prompts.NAMED_PLACES:
            study.read_file(f"{key}.places", places, prompts.load_places,
                       f"give a named list ({', '.join(prompts.NAMED_PLACES)}) or a file of background phrases "
                       "('in a kitchen'), one per line")
        spec = strategy.get("class_names", "clip")
        if spec == "clip":
            continue  # every ImageNet-1K wnid has one, and class lists hold only those
        names = study.read_file(f"{key}.class_names", spec, prompts.read_class_name_file,
                                "give 'clip' or a file of 'wnid<TAB>name' lines")
        users = [d for d, dataset in study.datasets.items() if name in dataset.generate]
        for dname in users if names is not None else []:
            missing = [w for w in study.wnids(dname) if w not in names]
            if missing:
                raise ConfigError(f"{key}.class_names: '{spec}' has no name for {len(missing)} classes of "
                                  f"datasets.{dname} ({', '.join(missing[:3])}...); add 'wnid<TAB>name' lines")


def _templates_of(study: Study, key: str, planned) -> list[str] | None:
    """The templates a prompted strategy uses (None: a file plan time cannot read yet)."""
    templates = planned.settings.get("templates")
    if templates is None:
        captioned = planned.settings.get("captions") or planned.kind.captions == "required"
        return ["{caption}"] if captioned else ["{}"]
    if isinstance(templates, tuple) or templates in prompts.NAMED_TEMPLATE_SETS:
        return prompts.load_templates(templates)
    return study.read_file(f"{key}.templates", templates, prompts.load_templates, "give a file of templates")


def check_captions(study: Study) -> None:
    """Captions files exist with their columns; a per-class one has
    a caption for every class of each dataset that generates from it; templates and captions go
    together. A ConfigError names the key."""
    for name, planned in study.strategies.items():
        key, kind, path = f"strategies.{name}", planned.kind.name, planned.settings.get("captions")
        captions = planned.kind.captions  # '', 'optional' or 'required'
        if not planned.kind.prompted:
            continue
        if path and not captions:
            raise ConfigError(f"{key}.captions: a {kind} strategy takes no captions; use kind class_labels (a "
                              "wnid,caption file) or kind captions (a path,caption file of the real images)")
        if captions == "required" and not path:
            raise ConfigError(f"{key}.captions: a captions strategy needs a file of the real train images' captions "
                              "(columns path,caption; path relative to the train folder)")
        templates = _templates_of(study, key, planned) or []
        using = [t for t in templates if "caption" in prompts.template_fields(t)]
        if using and not path:
            raise ConfigError(f"{key}.templates: {using[0]!r} uses {{caption}}, but the strategy has no captions "
                              "file; set captions: <wnid,caption file> or drop {caption}")
        lacking = [t for t in templates if t not in using]
        if captions == "required" and lacking:
            raise ConfigError(f"{key}.templates: {lacking[0]!r} has no {{caption}}; every template of a captions "
                              "strategy renders its real image's caption")
        if path and not using:
            raise ConfigError(f"{key}.templates: no template uses {{caption}}, so the captions file {path} is unused;"
                              " add {caption} to the templates (or leave templates out: the prompt is the caption)")
        if captions == "required":  # a caption per real image
            study.read_file(f"{key}.captions", path, lambda p: check_columns(p, IMAGE_COLUMNS),
                            "give a CSV file with columns path,caption, one row per real train image")
            continue
        for dname in [d for d, dataset in study.datasets.items() if path and name in dataset.generate]:
            study.read_file(f"{key}.captions", path, lambda p: read_class_captions(p, study.wnids(dname)),
                            "give a CSV file with columns wnid,caption, at least one row per class")
