"""The plan the DAG is built from: mixtures, training runs, reports and what they need.

`training_runs` and friends turn a checked config (validation.check_config) into the job grid;
they are plain functions so that tests check the plan without Snakemake. Nothing here imports a
check: every checking module reads the plan from here.
"""

from __future__ import annotations

import copy
import functools
import re
from dataclasses import dataclass
from pathlib import Path

from .errors import ConfigError
from .kinds import REPORTS, STRATEGIES
from .kinds.reports import percent as _percent

IMAGENET1K = "imagenet1k"


# ----------------------------------------------------------------------------- mixtures


# A mixture's last term: its run gives the generated images their own BatchNorm statistics
# (recipe.generated_bn 'separate' for this run only), so that one report compares both ways.
SEPARATE_BN = "sepbn"


@dataclass(frozen=True)
class Mixture:
    """A training set: percentages of each source; `total` fixes the size (fixed-budget runs);
    `separate_bn`: trained with separate BatchNorm statistics for its generated rows (+sepbn)."""

    name: str
    terms: tuple[tuple[str, float], ...]  # (source, percent); source is "real" or a strategy
    total: int | None = None
    separate_bn: bool = False

    @property
    def sources(self) -> list[str]:
        return [s for s, _ in self.terms]


def parse_mixture(name: str) -> Mixture:
    """'real_100+cl80_100' -> 100% real + 100% cl80; 'n_1300000+real_75+cl80_25' -> 1.3M images, 75/25;
    'real_100+cl80_100+sepbn' -> the first, trained with separate BatchNorm statistics for cl80's rows.

    Percentages are of the real train set size (the paper's "100% = 130K"); with a leading
    n_<total> they are shares of that total instead.
    """
    total = None
    terms = []
    parts = name.split("+")
    separate_bn = parts[-1] == SEPARATE_BN
    for part in parts[:-1] if separate_bn else parts:
        source, _, amount = part.rpartition("_")
        if not source or not re.fullmatch(r"[0-9]+(\.[0-9]+)?", amount):
            raise ConfigError(f"mixture '{name}': term '{part}' is not source_percent (e.g. real_100, cl80_50)")
        if source == "n":
            if terms or total is not None:
                raise ConfigError(f"mixture '{name}': n_<total> must come first")
            total = int(amount)
            continue
        terms.append((source, float(amount)))
    if not terms:
        raise ConfigError(f"mixture '{name}' has no source terms")
    if total is not None and abs(sum(p for _, p in terms) - 100) > 1e-6:
        raise ConfigError(f"mixture '{name}': shares of a fixed total must add up to 100")
    sources = {source for source, _ in terms}
    if separate_bn and ("real" not in sources or len(sources) < 2):
        raise ConfigError(f"mixture '{name}': +{SEPARATE_BN} splits BatchNorm statistics between real and generated "
                          "images; the mixture needs both")
    return Mixture(name, tuple(terms), total, separate_bn)


# ----------------------------------------------------------------------------- classes


def class_count(spec: str) -> int:
    """Number of classes, cheaply (DAG time must not import timm)."""
    if spec == IMAGENET1K:
        return 1000
    return len(read_class_file(spec))


def read_class_file(path: str) -> list[str]:
    from .datasets import DatasetError, load_class_list

    try:
        return load_class_list(path)
    except DatasetError as err:
        raise ConfigError(f"datasets.*.classes: {err}") from None


# ----------------------------------------------------------------------------- the plan

# Where a run's outputs live under each stage folder (train/, eval/, checkpoints/): docs/design.md's
# key~value grid, the one spelling of it. Its fields are the Snakemake wildcards of the rules.
RUN_DIR = "{dataset}/mix~{mix}/arch~{arch}/seed~{seed}"


@dataclass(frozen=True)
class TrainingRun:
    dataset: str
    mix: str
    arch: str
    seed: int

    @property
    def dir(self) -> str:
        return RUN_DIR.format(dataset=self.dataset, mix=self.mix, arch=self.arch, seed=self.seed)

    @classmethod
    def of_path(cls, path: str | Path) -> TrainingRun:
        """The run a per-run file belongs to, from its path <stage>/RUN_DIR/<file>."""
        parts = Path(path).parts
        values = {"dataset": parts[-5]}
        for part in parts[-4:-1]:
            key, sep, value = part.partition("~")
            if not sep or key not in ("mix", "arch", "seed"):
                raise ValueError(f"{path} is not under a run folder {RUN_DIR}")
            values[key] = value
        return cls(values["dataset"], values["mix"], values["arch"], int(values["seed"]))


def report_rows(report: dict) -> dict[str, str]:
    """label -> mixture of every training set a report compares (grids are expanded by its kind)."""
    return REPORTS[report["kind"]].report_rows(report)


def report_reference(report: dict, config: dict) -> dict:
    """The effective-robustness reference of a report: its own `reference`, else its dataset's:
    {mixtures: real-only runs of the report's archs and seeds, csv: published points or null}."""
    reference = report.get("reference") or config["datasets"][report["dataset"]]["reference"]
    return {"mixtures": list(reference.get("mixtures") or []), "csv": reference.get("csv")}


def report_mixtures(report: dict, config: dict) -> list[str]:
    """Mixtures a report trains: its rows, plus its reference runs when it reports ER."""
    mixes = list(report_rows(report).values())
    if REPORTS[report["kind"]].er:  # effective robustness needs its reference line's runs
        mixes += [m for m in report_reference(report, config)["mixtures"] if m not in mixes]
    return mixes


def report_runs(config: dict, report: dict) -> list[TrainingRun]:
    """Every training run one report needs, and no other."""
    return [TrainingRun(report["dataset"], mix, arch, seed) for mix in report_mixtures(report, config)
            for arch in report.get("archs", []) for seed in report.get("seeds", [])]  # none: checks.py names the key


def missing_strategies(report: dict, config: dict) -> list[str]:
    """Strategies a report trains on whose kind this version cannot generate yet."""
    missing = set()
    for mix in report_mixtures(report, config):
        for source in parse_mixture(mix).sources:
            if source != "real" and config["strategies"].get(source, {}).get("kind") not in STRATEGIES:
                missing.add(source)
    return sorted(missing)


def active_reports(config: dict) -> dict[str, dict]:
    """Reports whose every training set can be built by this version."""
    return {name: r for name, r in config["reports"].items() if not missing_strategies(r, config)}


def skipped_reports(config: dict) -> list[str]:
    """One notice per report this version cannot build in full."""
    notes = []
    for name, report in config["reports"].items():
        missing = missing_strategies(report, config)
        if missing:
            kinds = sorted({config["strategies"].get(m, {}).get("kind", "?") for m in missing})
            notes.append(f"{name}: skipped; it trains on {', '.join(missing)} (kind {', '.join(kinds)}), "
                         "which this version cannot generate yet")
    return notes


def training_runs(config: dict) -> list[TrainingRun]:
    """Every run of every report this version builds, each once."""
    runs: dict[TrainingRun, None] = {}
    for report in active_reports(config).values():
        runs.update(dict.fromkeys(report_runs(config, report)))
    return list(runs)


def report_test_sets(config: dict, dataset: str) -> list[str]:
    """Test sets the models of `dataset` are evaluated on: the ID set first, then the reports'."""
    names = [config["evaluation"]["id_test_set"]]
    for report in active_reports(config).values():
        if report["dataset"] == dataset and REPORTS[report["kind"]].evaluated:
            names += [t for t in report.get("test_sets", []) if t not in names]
    return names


def generated_datasets(config: dict) -> list[tuple[str, str, str]]:
    """(dataset, strategy, split) of every generated dataset in config that this version can build."""
    out = []
    for dataset, spec in config["datasets"].items():
        for strategy, gen in spec.get("generate", {}).items():
            if config["strategies"][strategy]["kind"] in STRATEGIES:
                out += [(dataset, strategy, split) for split in ("train", "val") if gen[f"{split}_shards"] > 0]
    return out


def unpinned_hub_models(config: dict) -> list[str]:
    """One notice per hub model that config names without a revision: the hub's default branch,
    which can change, changes every image made from it (the manifests record the commit used)."""
    notes = []
    for name, spec in config["models"].items():
        model_id = spec.get("id") or ""
        local = model_id.startswith((".", "/", "~")) or Path(model_id).expanduser().exists()
        if spec.get("finetune") or not model_id or local or produced_by_demo(config, model_id) or spec.get("revision"):
            continue
        notes.append(f"models.{name}: hub id '{model_id}' has no revision, so its images follow whatever the hub "
                     "serves when a shard runs; pin it (revision: a commit of the model repository)")
    return notes


def generation_plan(config: dict) -> list[str]:
    """One line per generated dataset: how many images in how many shards."""
    lines = []
    for dataset, strategy, split in generated_datasets(config):
        gen = config["datasets"][dataset]["generate"][strategy]
        shards = gen[f"{split}_shards"]
        kind = STRATEGIES[config["strategies"][strategy]["kind"]]
        if kind.derived:
            spec = config["strategies"][strategy]
            lines.append(f"{dataset}/{strategy}/{split}: the images of {spec['source']}/{split} whose CLIP score "
                         f"is >= {spec.get('threshold', 0.3):g} (nothing generated)")
            continue
        if kind.imported:
            lines.append(f"{dataset}/{strategy}/{split}: imported from {config['strategies'][strategy].get('path')} "
                         "(nothing generated)")
            continue
        if kind.class_conditioned:
            n = gen[f"{split}_per_class"] * class_count(config["datasets"][dataset]["classes"])
            what = f"{n:,} images ({gen[f'{split}_per_class']} per class)"
        else:
            per_real = config["strategies"][strategy].get("images_per_real", 1)
            cap = f", first {gen['sources_per_class']} per class" if gen.get("sources_per_class") else ""
            what = f"{per_real} per real {split} image{cap}"
        lines.append(f"{dataset}/{strategy}/{split}: {what} in {shards} shards")
    return lines


def draws_of(config: dict, source: str) -> str:
    """The name a training source's seeded draws (mixture rows, loader order, crops) are keyed by:
    its own, or for an imported copy of a set (external, `seeds_from: <set>`) that set's, so that
    the copy trains exactly as the set."""
    strategy = config["strategies"].get(source, {})
    imported = strategy.get("kind") in STRATEGIES and STRATEGIES[strategy["kind"]].imported
    return strategy.get("seeds_from") or source if imported else source


def resolve_seeds_from(config: dict) -> None:
    """A strategy's seeds_from names where its per-image seeds come from; a chain (c -> b -> a) is
    followed to its end, so c's images pair with b's and a's; a loop is an error."""
    strategies = config["strategies"]
    for name in strategies:
        if STRATEGIES[strategies[name]["kind"]].imported:
            continue  # an imported copy draws its trainings as the set it names, not as that set's source
        chain = [name]
        while strategies.get(chain[-1], {}).get("seeds_from"):
            chain.append(strategies[chain[-1]]["seeds_from"])
            if chain[-1] in chain[:-1]:
                raise ConfigError(f"strategies.{name}.seeds_from: {' -> '.join(chain)} is a loop; one of them must "
                                  "draw seeds of its own (no seeds_from)")
        if len(chain) > 2:
            strategies[name]["seeds_from"] = chain[-1]


def generation_jobs(config: dict) -> list[tuple[str, str, str, int, int]]:
    """(dataset, strategy, split, shard, n_shards) for every shard the plan needs."""
    jobs = []
    for dataset, strategy, split in generated_datasets(config):
        if not STRATEGIES[config["strategies"][strategy]["kind"]].generated:
            continue  # filtered from another strategy's images, or imported: no generation shard
        n_shards = config["datasets"][dataset]["generate"][strategy][f"{split}_shards"]
        jobs += [(dataset, strategy, split, i, n_shards) for i in range(n_shards)]
    return jobs


# ----------------------------------------------------------------------------- guidance sweeps

# A guidance_curve trains on one strategy at several guidance scales (Fan et al. CVPR 2024 and
# Fake-it found ~2 better for training data than the paper's 7.5). Each scale is a strategy of
# its own, derived from the template: the template's settings, its image counts, and its seeds
# and prompts (seeds_from), so the sets differ in guidance only.
def guidance_strategy_name(template: str, guidance: float) -> str:
    """cl80 at guidance 2 -> 'cl80g2'; at 7.5 -> 'cl80g7p5' (strategy names are [a-z][a-z0-9]*)."""
    return f"{template}g{_percent(guidance).replace('.', 'p')}"


def _derive_guidance_strategy(config: dict, key: str, dataset: str, template: str, guidance: float) -> str:
    """Add the template's strategy at `guidance` (and its generate entry) to config; its name."""
    strategies, generate = config["strategies"], config["datasets"][dataset]["generate"]
    spec = strategies[template]
    if float(guidance) == float(spec["guidance"]):
        return template  # the template itself: generated once
    name = guidance_strategy_name(template, guidance)
    derived = {**copy.deepcopy(spec), "guidance": guidance, "seeds_from": spec.get("seeds_from") or template}
    counts = {**generate[template], "val_shards": 0}  # the template's train images; no val set is trained on
    for entries, value, where in ((strategies, derived, "strategies"), (generate, counts,
                                                                        f"datasets.{dataset}.generate")):
        if entries.setdefault(name, copy.deepcopy(value)) != value:
            raise ConfigError(f"{key}.guidance: guidance {guidance:g} of '{template}' is strategy '{name}', but "
                              f"{where}.{name} already exists with other settings; rename that one")
    return name


def expand_guidance_sweeps(config: dict) -> None:
    """Add every guidance_curve's derived strategies to config (idempotent), and record them in
    the report as guidance_strategies: {guidance: strategy}."""
    for rname, report in config["reports"].items():
        if not REPORTS[report["kind"]].guidance_sweep:
            continue
        key, template, dataset = f"reports.{rname}", report["strategy"], report["dataset"]
        if dataset not in config["datasets"]:
            continue  # check_config names the key
        spec = config["strategies"].get(template)
        if spec is None or not STRATEGIES[spec["kind"]].diffusion:
            raise ConfigError(f"{key}.strategy: '{template}' must be a diffusion strategy (a kind of "
                              f"{sorted(STRATEGIES.names(diffusion=True))}), whose guidance scale the report varies")
        if template not in config["datasets"][dataset].get("generate", {}):
            raise ConfigError(f"{key}.strategy: datasets.{dataset}.generate.{template} is not set; every guidance "
                              f"value generates as many images as it says")
        report["guidance_strategies"] = {
            _percent(g): _derive_guidance_strategy(config, key, dataset, template, g) for g in report["guidance"]}


# ----------------------------------------------------------------------------- files config names


# What the demo's rules build under demo.data and demo.models (genrobust/demo/; test_demo_e2e.py
# keeps this list equal to what they make): a path under those folders is the demo's only if it
# is one of these or inside one, so a typo there is caught like any other missing path.
DEMO_BUILDS = {
    "data": ("demo_data.json", "imagenet/train", "imagenet/val", "imagenet/train_captions.csv", "sketch", "imagenet-r",
             "imagenetv2-matched-frequency-format-val", "objectnet-1.0", "imagenet-c", "pixmix-fractals"),
    "models": ("models.json", "sd", "few_step_lora", "image_variation", "dit", "clip", "deepaugment", "metrics/metric_models.json",
               "metrics/inception_like.pt", "metrics/open_clip", "metrics/timm/test_vit", "metrics/timm/test_resnet.pth"),
}


def produced_by_demo(config: dict, path: str) -> bool:
    """Whether a demo rule builds `path` (its data or models folder, or something in DEMO_BUILDS)."""
    demo = config.get("demo")
    if not demo:
        return False
    p = Path(path)
    for part in ("data", "models"):
        root = Path(demo[part])
        if p == root:
            return True
        if root in p.parents:
            rel = p.relative_to(root)
            return any(rel == Path(b) or Path(b) in rel.parents for b in DEMO_BUILDS[part])
    return False


def read_config_file(config: dict, key: str, path: str, read, expected: str):
    """read(path), or None where plan time cannot read it: the demo builds it, or it is absent and
    check_paths is off. A missing or unreadable file is a ConfigError naming `key`."""
    if produced_by_demo(config, path):
        return None
    if not Path(path).expanduser().is_file():
        if not config.get("check_paths", True):
            return None
        raise ConfigError(f"{key}: '{path}' is not an existing file; {expected}")
    try:
        return read(str(Path(path).expanduser()))
    except (ValueError, OSError) as err:
        raise ConfigError(f"{key}: {err}") from None


@functools.cache
def class_list(spec: str) -> tuple[str, ...]:
    from .datasets import load_class_list

    return tuple(load_class_list(spec))


def dataset_wnids(config: dict, name: str) -> tuple[str, ...]:
    """The class list of datasets.<name>, a ConfigError naming the key when it cannot be read."""
    from .datasets import DatasetError

    try:
        return class_list(config["datasets"][name]["classes"])
    except DatasetError as err:
        raise ConfigError(f"datasets.{name}.classes: {err}") from None


def real_per_class(config: dict, dataset: str) -> int | None:
    """Real train images per class where config fixes it (the demo draws demo.train_per_class of
    each class into <demo.data>/imagenet/train); None for a folder known only once indexed."""
    demo = config.get("demo")
    train = config["datasets"][dataset]["train"]
    if demo and Path(train) == Path(demo["data"]) / "imagenet" / "train":
        return demo.get("train_per_class")
    return None
