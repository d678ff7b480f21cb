"""What the metric reports need, from config alone (no torch; imported at DAG time).

Image sets are named by (dataset, split, source) (`source` is 'real' or a strategy) or by a
test set. Each is embedded once per extractor, into

    <out>/metrics/features/<extractor>/<dataset>/<split>/<source>.{npy,csv,json}
    <out>/metrics/features/<extractor>/test/<test set>.{npy,csv,json}

by one embedding job per (extractor, dataset), or per extractor for the test sets, and per set of
reports that need its sets (embedding_groups), with the dataset's CLIP class prompts
(<out>/metrics/features/clip/<dataset>/text.npz) in the job, or in one of their own where the
dataset's sets are split. Grouping keeps the job count small (process start-up and model loading
cost more than a small set); splitting by what needs a set keeps a table's target to its own sets
(Table 7 alone does not generate the sets only a cost_frontier report embeds). A
clip_filtered source is never embedded again: its features are its source's rows that the
filter kept. Predictions of a classifier on (real val, generated val of a strategy) go to
<out>/metrics/predictions/<dataset>/val~<strategy>/<classifier>.csv.
"""

from __future__ import annotations

import hashlib
import math
import re

from genrobust.config import RUN_DIR, TrainingRun, parse_mixture
from genrobust.costs import StudySize
from genrobust.kinds import REPORTS, STRATEGIES, TEST_SETS
from genrobust.kinds.reports import BENCHMARK_SETS, FID_SETS, ROW_SETS, SOURCE_SETS

# The sets embedded with CLIP: a report embedding them also reads its dataset's CLIP class texts.
CLIP_SETS = (SOURCE_SETS, BENCHMARK_SETS, ROW_SETS)
TEST = "test"
TEXT_FILE = "text.npz"
PREDICTIONS_DIR = "{out}/metrics/predictions/{dataset}/val~{strategy}"


# ----------------------------------------------------------------------------- sources


def base_source(config: dict, source: str) -> str:
    """The strategy whose images a source is: a clip_filtered source's `source`, else itself."""
    return config["strategies"][source]["source"] if is_filtered(config, source) else source


def is_filtered(config: dict, source: str) -> bool:
    """Whether a source is chosen from another source's images ('real' is not a strategy)."""
    strategy = config["strategies"].get(source)
    return bool(strategy) and STRATEGIES[strategy["kind"]].derived


def source_table(out: str, dataset: str, split: str, source: str) -> str:
    """The real index or the generated manifest of one split of a source."""
    if source == "real":
        return f"{out}/index/{dataset}/{split}.csv"
    return f"{out}/generate/{dataset}/{source}/{split}/manifest.csv"


def test_table(out: str, test_set: str) -> str:
    return f"{out}/index/test/{test_set}.csv"


def group_dir(out: str, extractor: str, dataset: str, split: str | None) -> str:
    return f"{out}/metrics/features/{extractor}/{TEST if dataset == TEST else f'{dataset}/{split}'}"


def features_base(config: dict, extractor: str, dataset: str, split: str | None, source: str) -> str:
    """Where the features of a set are (without suffix); a filtered source's are its source's."""
    return f"{group_dir(config['out'], extractor, dataset, split)}/{base_source(config, source)}"


def text_file(out: str, dataset: str) -> str:
    return f"{out}/metrics/features/clip/{dataset}/{TEXT_FILE}"


# ----------------------------------------------------------------------------- sets per report


def report_sets(config: dict, report: dict) -> list[tuple[str, str, str | None, str]]:
    """(extractor, dataset or 'test', split, source or test set) of every set a report embeds."""
    dataset, embeds = report["dataset"], REPORTS[report["kind"]].embeds
    if embeds == FID_SETS:
        sets = [("inception", dataset, "train", s) for s in report["sources"].values()]
        return sets + [("inception", TEST, None, t) for t in report["test_sets"]]
    if embeds == SOURCE_SETS:
        return [("clip", dataset, "train", s) for s in report["sources"].values()]
    if embeds == BENCHMARK_SETS:
        return [("clip", dataset, "val", "real"), ("clip", dataset, "val", report["strategy"])]
    if embeds == ROW_SETS:
        return [("clip", dataset, "train", s) for s in dict.fromkeys(row_sources(report).values())]
    return []


def row_sources(report: dict) -> dict[str, str]:
    """label -> the generated source of each row of a guidance_curve / diversity_er report (the set
    whose CLIP diversity is set beside the row's effective robustness)."""
    sources = {}
    for label, mix in REPORTS[report["kind"]].report_rows(report).items():
        generated = [s for s in parse_mixture(mix).sources if s != "real"]
        if len(generated) != 1:
            raise ValueError(f"row '{label}' ({mix}) must train on exactly one generated source, "
                             f"not {len(generated)}")
        sources[label] = generated[0]
    return sources


def generated_images_used(config: dict, report: dict) -> dict[str, int]:
    """label -> the generated images a row trains on (its share of the set: cl80_100 of a set made
    at 200% trains on half of it), as costs.StudySize counts a mixture's rows."""
    study, used = StudySize(config), {}
    for label, mix in REPORTS[report["kind"]].report_rows(report).items():
        mixture = parse_mixture(mix)
        base = mixture.total or study.real_images(report["dataset"], "train")
        source = row_sources(report)[label]
        percent = dict(mixture.terms)[source]
        used[label] = min(math.ceil(base * percent / 100), study.source_images(report["dataset"], source))
    return used


def generated_by(config: dict, source: str) -> str:
    """The strategy whose generation made a source's images: a clip_filtered set's is its source's
    (filtering costs no generation; the set cost what generating its source did)."""
    strategy = config["strategies"][source]
    return strategy["source"] if STRATEGIES[strategy["kind"]].derived else source


def filter_sets(config: dict, dataset: str, strategy: str, splits) -> list[tuple[str, str, str, str]]:
    """The CLIP features a clip_filtered source is scored from: its source's, per split it makes."""
    return [("clip", dataset, split, config["strategies"][strategy]["source"]) for split in splits]


def embedding_groups(config: dict, reports: dict, filtered: list[tuple[str, str, str]]) -> dict[str, dict]:
    """rule name -> {extractor, dataset, sets: {features base: (table, kind)}, border_crop, text}
    for every set the given reports and filtered datasets (dataset, strategy, split) need; kind is
    real, generated or test (how the table's paths and classes are read), text whether the job
    also writes the dataset's CLIP class texts.

    One job per (extractor, dataset) and per set of reports (and CLIP filters) that need its sets:
    sets needed alike are embedded together, so that a report's target embeds, and generates, only
    the sets that report needs. Where a dataset's sets fall in several such jobs, its CLIP class
    texts, which each of them needs, are a job of their own."""
    wanted = [(s, name) for name, report in reports.items() for s in report_sets(config, report)]
    wanted += [(s, f"filter_{strategy}") for dataset, strategy, split in filtered
               for s in filter_sets(config, dataset, strategy, [split])]
    needed_by: dict[str, tuple[tuple, list[str]]] = {}  # features base (a filtered set: its source's) -> needers
    for s, needer in wanted:
        needed_by.setdefault(features_base(config, *s), (s, []))[1].append(needer)
    alike: dict[tuple[str, str], dict[tuple[str, ...], list[tuple]]] = {}
    for s, needers in needed_by.values():
        alike.setdefault(s[:2], {}).setdefault(tuple(sorted(set(needers))), []).append(s)
    groups: dict[str, dict] = {}
    for (extractor, dataset), by_needers in alike.items():
        name, several = f"embed_{extractor}_{dataset}", len(by_needers) > 1
        texts = extractor == "clip" and dataset != TEST
        for needers, sets in by_needers.items():
            group_name = f"{name}_for_{_joined(needers)}" if several else name
            groups[group_name] = _embedding_group(config, extractor, dataset, sets, text=texts and not several)
        if texts and several:
            groups[f"{name}_texts"] = _embedding_group(config, extractor, dataset, [], text=True)
    return groups


def _joined(needers: tuple[str, ...], longest: int = 40) -> str:
    """A rule-name part naming what needs a group's sets (shortened, with a hash, when long)."""
    joined = "_".join(needers)
    if len(joined) <= longest:
        return joined
    digest = hashlib.sha1(joined.encode()).hexdigest()[:6]
    return f"{needers[0]}_and_{len(needers) - 1}_more_{digest}"


def _embedding_group(config: dict, extractor: str, dataset: str, sets: list[tuple], text: bool) -> dict:
    group = {"extractor": extractor, "dataset": dataset, "sets": {}, "border_crop": {}, "text": text}
    for _, _, split, name in sets:
        base = features_base(config, extractor, dataset, split, name)
        if dataset == TEST:
            group["sets"][base] = (test_table(config["out"], name), "test")
            border = TEST_SETS[config["test_sets"][name]["kind"]].border_crop_px
            if border:  # cropped as evaluation crops it (ObjectNet's frame)
                group["border_crop"][base] = border
        else:
            source = base_source(config, name)
            group["sets"][base] = (source_table(config["out"], dataset, split, source),
                                   "real" if source == "real" else "generated")
    return group


def group_outputs(config: dict, group: dict) -> list[str]:
    outputs = [f"{base}.{suffix}" for base in group["sets"] for suffix in ("npy", "csv", "json")]
    if group["text"]:
        outputs.append(text_file(config["out"], group["dataset"]))
    return outputs


# ----------------------------------------------------------------------------- classifiers


def classifier_kind(spec: dict) -> str:
    return next(k for k in ("mixture", "timm", "zero_shot") if k in spec)


def slug(name: str) -> str:
    """A file name for a timm model name, hub id or local folder."""
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", name).strip("_.")


def timm_models(config: dict, reports: dict) -> dict[str, dict]:
    """slug -> {timm, file} of every timm classifier of the given reports."""
    models = {}
    for report in reports.values():
        for spec in report.get("classifiers", {}).values():
            if "timm" in spec:
                models[slug(spec["timm"])] = {"timm": spec["timm"], "file": spec.get("file")}
    return models


def classifier_runs(config: dict, report: dict, spec: dict) -> list[TrainingRun]:
    return [TrainingRun(report["dataset"], spec["mixture"], arch, seed)
            for arch in report["archs"] for seed in report["seeds"]]


def classifier_predictions(config: dict, report: dict) -> dict[str, list[str]]:
    """label -> the prediction files of a classifier row (one per run of a trained row; none for
    zero-shot CLIP, which is scored from the CLIP features)."""
    base = PREDICTIONS_DIR.format(out=config["out"], dataset=report["dataset"], strategy=report["strategy"])
    files = {}
    for label, spec in report["classifiers"].items():
        kind = classifier_kind(spec)
        if kind == "timm":
            files[label] = [f"{base}/timm/{slug(spec['timm'])}.csv"]
        elif kind == "mixture":
            files[label] = [f"{base}/run/mix~{run.mix}/arch~{run.arch}/seed~{run.seed}.csv"
                            for run in classifier_runs(config, report, spec)]
        else:
            files[label] = []
    return files


def run_prediction_pattern(out: str) -> str:
    """The predict_run rule's output, with its wildcards (RUN_DIR's and the strategy)."""
    run = RUN_DIR.removeprefix("{dataset}/")  # the dataset is in PREDICTIONS_DIR already
    return f"{PREDICTIONS_DIR.format(out=out, dataset='{dataset}', strategy='{strategy}')}/run/{run}.csv"


# ----------------------------------------------------------------------------- report inputs


def report_inputs(config: dict, name: str) -> dict:
    """Everything metric report `name` reads, named: {sets: {key: features base}, filtered: {source:
    manifest}, text: file, predictions: {label: [files]}, analysis: {accuracy, robustness: CSV}}."""
    report = config["reports"][name]
    out, dataset, kind = config["out"], report["dataset"], REPORTS[report["kind"]]
    inputs: dict = {"sets": {}, "filtered": {}, "text": None, "predictions": {}, "analysis": {}}
    for extractor, group, split, source in report_sets(config, report):
        key = source if group == TEST else f"{split}/{source}"
        inputs["sets"][key] = features_base(config, extractor, group, split, source)
        if group != TEST and is_filtered(config, source):
            inputs["filtered"][source] = source_table(out, group, split, source)
    if kind.embeds in CLIP_SETS:
        inputs["text"] = text_file(out, dataset)
    if kind.diversity_er:  # the analysis rules' outputs (analysis.smk)
        inputs["analysis"] = {table: f"{out}/analysis/{name}/{table}.csv" for table in ("accuracy", "robustness")}
    if kind.costs:  # what each row's set cost to generate (the gather rule's summary)
        inputs["summaries"] = {source: f"{out}/generate/{dataset}/{generated_by(config, source)}/train/summary.json"
                               for source in dict.fromkeys(row_sources(report).values())}
        inputs["used"] = generated_images_used(config, report)
    if kind.classifies:
        inputs["predictions"] = classifier_predictions(config, report)
    return inputs


def input_files(inputs: dict) -> list[str]:
    """The files behind report_inputs, for Snakemake's input directive."""
    files = [f"{base}.{suffix}" for base in inputs["sets"].values() for suffix in ("npy", "csv")]
    files += list(inputs["filtered"].values())
    files += [inputs["text"]] if inputs["text"] else []
    files += [f for paths in inputs["predictions"].values() for f in paths]
    files += list(inputs["analysis"].values())
    files += list(inputs.get("summaries", {}).values())
    return list(dict.fromkeys(files))


def report_labels(report: dict) -> dict:
    """Row labels of a metric report: its sources or classifiers (config order)."""
    return dict(report.get("sources") or report.get("classifiers") or REPORTS[report["kind"]].report_rows(report))
