"""A dress rehearsal of a study, before its GPU-hours are spent.

Every report's reduce steps (collecting accuracies, the effective-robustness fit, the CLIP filter
gate, every table and figure, the HTML report) run for real, through Snakemake and the workflow's
own rules, on synthetic stand-ins for what the jobs that need a GPU or the real data would write:
each planned run's evaluation (on every test set its dataset is evaluated on, with the ID set's
class-subset accuracies), training metrics, the image tables the metrics read, their features
(Inception 2048-d, CLIP 512-d) and the classifiers' predictions. The stand-ins have the study's
real shape, its classes, runs, test sets and feature dimensions, with a few images per class,
and the formats the real jobs write (the same writers where there are any).

Their values come from a seeded toy model of accuracy, so a rehearsal's numbers mean nothing.
What it shows is that every report of a config builds, with its rows and columns, from outputs
shaped as the real jobs shape them: a config whose Table 1 would fail after thousands of
GPU-hours fails here in a minute. `genrobust rehearse [--configfile ...]`; the test suite
rehearses config/config.yaml and its commented beyond-the-paper reports.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

from . import io
from .config import active_reports, parse_mixture
from .datasets import IMAGENET_C_CORRUPTIONS, imagenet_r_wnids, imagenet_wnids, load_class_list
from .kinds import TEST_SETS
from .seeding import derive_seed
from .study import Study
from .sizes import FEATURE_DIMS

REPO = Path(__file__).resolve().parents[2]
SNAKEFILE = REPO / "Snakefile"
MARKER = ".genrobust-rehearsal"  # a rehearsal folder says so: nothing else is ever emptied
OBJECTNET_CLASSES, OBJECTNET_WNIDS = 113, 125  # ObjectNet's classes shared with ImageNet, and their ids
REDUCE_RULES = ("collect_accuracy", "fit_effective_robustness", "filter_generated")


class RehearsalError(ValueError):
    """A report that would not build: the Snakemake log's end says which and why."""


# ----------------------------------------------------------------------------- config


def study_config(configfiles: list[str], out: str) -> dict:
    """The config Snakemake would build from `configfiles`, with its outputs under `out` and no
    dataset path required."""
    from .validation import load_config

    return load_config(configfiles, {"out": str(out), "check_paths": False})


# ----------------------------------------------------------------------------- the toy accuracy model


def _fraction(rng: np.random.Generator, mean: float, spread: float = 0.01) -> float:
    return float(np.clip(mean + rng.normal(0, spread), 0.001, 0.999))


def _sigmoid(x: float) -> float:
    return float(1 / (1 + np.exp(-x)))


def _logit(p: float) -> float:
    return float(np.log(p / (1 - p)))


def toy_evaluation(config: dict, run, test_sets: list[str]) -> dict:
    """evaluate_model's JSON for `run`, with plausible values: an architecture's ID accuracy, lower
    for generated-only training, and shift-set accuracy on a line in logit space, raised by the
    generated share of the training data (the effect the paper reports)."""
    rng = np.random.default_rng(derive_seed(config["seed"], "rehearsal", run.dir))
    mixture = parse_mixture(run.mix)
    real = sum(p for s, p in mixture.terms if s == "real")
    generated_share = 1 - real / sum(p for _, p in mixture.terms)
    arch_level = 0.6 + 0.2 * (derive_seed(0, "arch", run.arch) % 1000) / 1000
    id_top1 = _fraction(rng, arch_level * (1 - 0.45 * generated_share ** 4))
    id_set = config["evaluation"]["id_test_set"]
    results = {}
    for t in test_sets:
        spec = config["test_sets"][t]
        offset = 1.0 + (derive_seed(0, "test set", t) % 1000) / 1000
        top1 = id_top1 if t == id_set else _fraction(rng, _sigmoid(_logit(id_top1) - offset + generated_share))
        result = {"n": 1000, "n_indexed": 1000, "n_outside_classes": 0, "top1": top1,
                  "top5": min(0.999, top1 + 0.15), "n_unreadable": 0, "unreadable": [], "classes": 1000,
                  "res": config["evaluation"]["res"], "crop_ratio": config["evaluation"]["crop_ratio"]}
        if TEST_SETS[spec["kind"]].corruptions:
            corruptions = spec.get("corruptions") or list(IMAGENET_C_CORRUPTIONS)
            per = {c: _fraction(rng, top1, 0.05) for c in corruptions}
            result.update(per_corruption=per, corruptions_averaged=sorted(per),
                          mean_corruption_top1=float(np.mean(list(per.values()))))
        if t == id_set:
            subsets = [s for s in test_sets if TEST_SETS[config["test_sets"][s]["kind"]].id_subset]
            result.update(id_subsets={s: _fraction(rng, _sigmoid(_logit(id_top1) + 0.4)) for s in subsets},
                          id_subsets_n={s: 1000 for s in subsets}, id_subsets_classes={s: 100 for s in subsets})
        results[t] = result
    return results


def toy_training_metrics(config: dict, run) -> list[dict]:
    """train_classifier's metrics.jsonl lines: a decaying loss per epoch."""
    epochs = config["datasets"][run.dataset]["recipe"]["epochs"]
    rng = np.random.default_rng(derive_seed(config["seed"], "rehearsal loss", run.dir))
    return [{"epoch": e, "train_loss": float(6.9 * np.exp(-3 * e / epochs) + 1 + rng.normal(0, 0.02)),
             "val_top1": float(0.7 * (1 - np.exp(-4 * (e + 1) / epochs))), "lr": 0.0, "resolution": 160}
            for e in range(epochs)]


# ----------------------------------------------------------------------------- image tables


def _objectnet_folders() -> dict[str, list[str]]:
    """113 ObjectNet-like folders over 125 ImageNet ids (12 folders map to two), as the real one."""
    wnids = imagenet_wnids()[::8][:OBJECTNET_WNIDS]
    doubled = OBJECTNET_WNIDS - OBJECTNET_CLASSES
    folders = {f"object_{i:03d}": [wnids[2 * i], wnids[2 * i + 1]] for i in range(doubled)}
    folders.update({f"object_{i:03d}": [wnids[doubled + i]] for i in range(doubled, OBJECTNET_CLASSES)})
    return folders


def _per_class_rows(groups: list[str], n: int) -> tuple[np.ndarray, np.ndarray]:
    """(group, k) of n rows per group, group by group: the order every table lists its classes in."""
    return np.repeat(np.asarray(groups, dtype=object), n), np.tile(np.arange(n), len(groups))


def toy_test_index(config: dict, test_set: str, images: str, per_class: int) -> pd.DataFrame:
    """index_test_set's table (path, wnids[, corruption, severity]) for a test set of its kind."""
    kind = TEST_SETS[config["test_sets"][test_set]["kind"]]
    if kind.own_classes:
        groups = {folder: ";".join(wnids) for folder, wnids in _objectnet_folders().items()}
    else:  # a subset of ImageNet's classes stands in as ImageNet-R's 200
        groups = {w: w for w in (imagenet_r_wnids() if kind.id_subset else imagenet_wnids())}
    folder, k = _per_class_rows(list(groups), per_class)
    frame = pd.DataFrame({"path": f"{images}/{test_set}/" + folder + "/" + k.astype(str) + ".jpg",
                          "wnids": pd.Series(folder).map(groups).to_numpy()})
    if kind.corruptions:
        frame = frame.assign(corruption="gaussian_noise", severity=5)
    return frame


def toy_real_index(config: dict, dataset: str, split: str, images: str, per_class: int) -> pd.DataFrame:
    """index_dataset's table (path, wnid, label) of a real train or val split."""
    wnids = load_class_list(config["datasets"][dataset]["classes"])
    wnid, k = _per_class_rows(wnids, per_class)
    return pd.DataFrame({"path": f"{images}/{dataset}/{split}/" + wnid + "/" + wnid + "_" + k.astype(str) + ".JPEG",
                         "wnid": wnid, "label": np.repeat(np.arange(len(wnids)), per_class)})


def toy_manifest(config: dict, dataset: str, strategy: str, split: str, per_class: int) -> pd.DataFrame:
    """A generated set's manifest, every column a shard writes (paths relative to the manifest)."""
    from .generate.shard import MANIFEST_COLUMNS

    wnid, k = _per_class_rows(load_class_list(config["datasets"][dataset]["classes"]), per_class)
    ids = f"{strategy}-{split}-" + wnid + "-" + pd.Series(k).map("{:05d}".format).to_numpy()
    spec = config["strategies"][strategy]
    frame = pd.DataFrame({"id": ids, "path": "shard~0/" + ids + ".jpg", "wnid": wnid, "k": k,
                          "prompt": "a photo of a " + wnid + ", in the style of a stand-in",
                          "template": "a photo of a {}", "seed": np.arange(len(ids)) * 7919 + 104729,
                          "attempt": 0, "model": config["models"].get(spec.get("model"), {}).get("id", ""),
                          "pipeline": spec.get("pipeline", ""), "scheduler": spec.get("scheduler", ""),
                          "steps": spec.get("steps", 50), "guidance": spec.get("guidance", 7.5), "height": 512,
                          "width": 512})
    return frame.reindex(columns=MANIFEST_COLUMNS)


def full_per_class(config: dict, table: str) -> int:
    """Images per class of an image table at full scale (its path says which set it is)."""
    from .sizes import REAL_PER_CLASS, test_images_per_own_class

    parts = Path(table).relative_to(config["out"]).parts
    if parts[:2] == ("index", "test"):
        return test_images_per_own_class(config["test_sets"][Path(table).stem]["kind"])
    if parts[0] == "index":
        return REAL_PER_CLASS[Path(table).stem]
    dataset, strategy, split = parts[1:4]
    gen, spec = config["datasets"][dataset]["generate"][strategy], config["strategies"][strategy]
    if f"{split}_per_class" in gen:
        return gen[f"{split}_per_class"]
    return REAL_PER_CLASS[split] * spec.get("images_per_real", 1)


# ----------------------------------------------------------------------------- the stand-ins

CLIP_COSINE = 0.31  # a stand-in image's mean CLIP cosine with its class's prompt (about half pass 0.3)
FEATURE_BLOCK = 65536  # rows of stand-in features drawn at a time


def class_text(wnid: str) -> np.ndarray:
    """A class's stand-in CLIP text embedding (unit, 512-d), the same in every dataset."""
    vector = np.random.default_rng(derive_seed(0, "rehearsal text", wnid)).normal(size=FEATURE_DIMS["clip"])
    return vector / np.linalg.norm(vector)



class StandIns:
    """Writes the stand-ins a config's reports read, each once; counts them by kind. Every image
    table has `per_class` images per class, or `scale` times its full-scale count (at least 2)."""

    def __init__(self, config: dict, per_class: int | None = 3, scale: float | None = None):
        self.config, self.per_class, self.scale, self.out = config, per_class, scale, config["out"]
        self.study = Study.of(config)
        self.images = f"{self.out}/rehearsal-images"  # named in tables, never read
        self.counts: dict[str, int] = {}
        self.rng = np.random.default_rng(derive_seed(config["seed"], "rehearsal features"))

    def _count(self, kind: str) -> None:
        self.counts[kind] = self.counts.get(kind, 0) + 1

    def table(self, path: str) -> str:
        """The image table at `path` (a real index, a test-set index or a generated manifest)."""
        if Path(path).is_file():
            return path
        parts = Path(path).relative_to(self.out).parts
        n = self.per_class or max(2, round(self.scale * full_per_class(self.config, path)))
        if parts[:2] == ("index", "test"):
            frame = toy_test_index(self.config, Path(path).stem, self.images, n)
        elif parts[0] == "index":
            frame = toy_real_index(self.config, parts[1], Path(path).stem, self.images, n)
        else:  # generate/<dataset>/<strategy>/<split>/manifest.csv
            frame = toy_manifest(self.config, parts[1], parts[2], parts[3], n)
        io.write_csv(path, frame)
        self._count("image table")
        return path

    def features(self, base: str, table: str, kind: str, extractor: str) -> None:
        """embed's three files: features (float16, unit rows for CLIP), rows, provenance."""
        from .metrics.embeddings import feature_paths, read_image_set

        npy, csv, meta = feature_paths(base)
        if npy.is_file():
            return
        rows = read_image_set(self.table(table), generated=kind == "generated")
        dim, dtype = FEATURE_DIMS[extractor], (self.config.get("metrics") or {}).get("feature_dtype", "float16")
        first = rows["wnids"].str.split(";").str[0].to_numpy()
        texts = {w: class_text(w) for w in np.unique(first)} if extractor == "clip" else {}
        with io.atomic_path(npy, suffix=".npy") as tmp:  # in blocks: memory flat at any scale
            matrix = np.lib.format.open_memmap(tmp, mode="w+", dtype=dtype, shape=(len(rows), dim))
            for start in range(0, len(rows), FEATURE_BLOCK):
                block = self.rng.standard_normal((min(FEATURE_BLOCK, len(rows) - start), dim), dtype=np.float32)
                if texts:  # unit rows at a cosine of ~0.3 with their class's text: the filter's threshold
                    block /= np.linalg.norm(block, axis=1, keepdims=True)
                    cosine = np.clip(self.rng.normal(CLIP_COSINE, 0.05, size=(len(block), 1)), -1, 1)
                    text = np.stack([texts[w] for w in first[start:start + len(block)]])
                    block = cosine * text + np.sqrt(1 - cosine ** 2) * block
                    block /= np.linalg.norm(block, axis=1, keepdims=True)
                matrix[start:start + len(block)] = block
            matrix.flush()
            del matrix
        io.write_csv(csv, rows)
        io.write_json(meta, {"table": table, "extractor": extractor, "images": len(rows), "dim": dim,
                             "dtype": dtype, "rehearsal": True})
        self._count(f"{extractor} features")

    def class_texts(self, path: str, dataset: str) -> None:
        from .metrics.clip_scores import write_text_file

        wnids = load_class_list(self.config["datasets"][dataset]["classes"])
        texts = np.stack([class_text(w) for w in wnids])  # the photo prompt and the zero-shot classifier
        write_text_file(path, list(wnids), texts, texts, {"rehearsal": True})
        self._count("CLIP class texts")

    def embedding_groups(self) -> None:
        from .metrics import plan as metrics_plan

        filtered = list(self.study.filtered_sets)
        for group in metrics_plan.embedding_groups(self.config, self.study.metric_reports(),
                                                   filtered).values():
            for base, (table, kind) in group["sets"].items():
                self.features(base, table, kind, group["extractor"])
            if group["text"]:
                self.class_texts(metrics_plan.text_file(self.out, group["dataset"]), group["dataset"])
        for dataset, strategy, split in filtered:  # the filter gate reads its source's manifest
            source = self.config["strategies"][strategy]["source"]
            self.table(metrics_plan.source_table(self.out, dataset, split, source))

    def predictions(self) -> None:
        """classify-images' CSVs of every classifier row of the Table 5 kinds."""
        from .metrics import plan as metrics_plan
        from .metrics.classify import PREDICTION_COLUMNS
        from .metrics.embeddings import read_image_set

        for planned in self.study.reports_that(classifies=True).values():
            report = self.config["reports"][planned.name]
            sets = {name: read_image_set(self.table(metrics_plan.source_table(self.out, report["dataset"], "val",
                                                                                name)), generated=name != "real")
                    for name in ("real", report["strategy"])}
            for files in metrics_plan.classifier_predictions(self.config, report).values():
                for path in files:
                    frames = [rows.assign(set=name, prediction=rows["wnids"].str.split(";").str[0],
                                          correct=self.rng.random(len(rows)) < 0.7)
                              for name, rows in sets.items()]
                    io.write_csv(path, pd.concat(frames, ignore_index=True)[PREDICTION_COLUMNS])
                    self._count("predictions")

    def generation_summaries(self) -> None:
        """gather's summary.json of every set a cost_frontier report reads: its hours the cost
        model's estimate (costs.shard_cost) for the full-scale set on a GPU."""
        from .costs import StudySize, shard_cost
        from .metrics import plan as metrics_plan

        study = StudySize(self.config)
        for name, planned in self.study.reports_that(costs=True).items():
            report = self.config["reports"][name]
            for path in metrics_plan.report_inputs(self.config, name)["summaries"].values():
                if Path(path).is_file():
                    continue
                strategy = Path(path).parts[-3]
                shards = self.config["datasets"][report["dataset"]]["generate"][strategy]["train_shards"]
                cost = shard_cost(study, report["dataset"], strategy, "train")
                spec = self.config["strategies"][strategy]
                io.write_json(path, {"images": cost.images * shards, "generation_hours": cost.gpu_hours * shards,
                                     "gpu_hours": cost.gpu_hours * shards, "devices": ["cuda"], "rehearsal": True,
                                     "images_per_second": round(1 / (cost.seconds / cost.images), 3),
                                     "settings": {k: spec.get(k) for k in ("scheduler", "steps", "guidance")}})
                self._count("generation summaries")

    def runs(self) -> None:
        """Every planned run's evaluation (for the reports that read evaluations) and training
        metrics (for loss curves)."""
        from .evaluate import write_result

        for planned in self.study.reports.values():
            kind = planned.kind
            for run in planned.runs:
                if kind.training_curves:
                    path = Path(self.out, "train", run.dir, "metrics.jsonl")
                    if not path.is_file():
                        io.write_text(path, "".join(json.dumps(e) + "\n"
                                                    for e in toy_training_metrics(self.config, run)))
                        self._count("training metrics")
                elif kind.evaluated:
                    path = Path(self.out, "eval", run.dir, "evaluation.json")
                    if not path.is_file():
                        tests = list(self.study.evaluated_test_sets[run.dataset])
                        write_result(path, toy_evaluation(self.config, run, tests), {"rehearsal": True})
                        self._count("evaluations")


def write_stand_ins(config: dict, per_class: int | None = 3, scale: float | None = None) -> dict[str, int]:
    """Write every stand-in the config's reports need; their counts by kind."""
    stand_ins = StandIns(config, per_class, scale)
    stand_ins.runs()
    stand_ins.embedding_groups()
    stand_ins.predictions()
    stand_ins.generation_summaries()
    return stand_ins.counts


# ----------------------------------------------------------------------------- the rehearsal


def _prepare(out: Path) -> None:
    """An empty rehearsal folder: a new one, or one an earlier rehearsal made (never other data)."""
    if out.exists() and any(out.iterdir()):
        if not (out / MARKER).is_file():
            raise ValueError(f"{out} holds files and is not a rehearsal folder ({MARKER} missing): give a new "
                             "or empty folder")
        shutil.rmtree(out)
    out.mkdir(parents=True, exist_ok=True)
    (out / MARKER).write_text("made by genrobust rehearse; emptied by the next rehearsal here\n")


def _snakemake(config: dict, configfiles: list[str], out: Path, targets: list[str], *extra: str,
               cores: int = 2) -> None:
    reports = list(active_reports(config))
    rules = [*REDUCE_RULES, *(f"make_{name}" for name in reports)]
    command = [sys.executable, "-m", "snakemake", *targets, "-s", str(SNAKEFILE), "--cores", str(cores),
               "--configfile", *configfiles, "--config", f"out={out}", "check_paths=False",
               "--allowed-rules", *rules, *extra]
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    result = subprocess.run(command, capture_output=True, text=True, env=env)
    if result.returncode != 0:
        output = result.stdout + result.stderr
        failed = re.findall(r"^\s*log: (\S+) \(check log", output, flags=re.M)
        logs = [f"--- {path}:\n{Path(path).read_text()[-2000:]}" for path in dict.fromkeys(failed)
                if Path(path).is_file()]
        raise RehearsalError(f"the rehearsal's Snakemake run failed ({' '.join(extra) or 'reduce steps'}):\n"
                             + "\n".join(logs or [output[-6000:]]))


def report_tables(config: dict, names: list[str] | None = None) -> dict[str, pd.DataFrame]:
    """Each report's main table as written (its first column the row labels); of `names` only, if given."""
    return {name: pd.read_csv(Path(config["out"], f"{name}.csv")) for name in names or active_reports(config)}


def chosen_reports(config: dict, names: list[str] | None) -> list[str]:
    """The reports a rehearsal builds: `names` (checked to be reports of the config), or all."""
    from .schema import did_you_mean

    built = list(active_reports(config))
    for name in names or []:
        if name not in built:
            raise ValueError(f"--reports: '{name}' is not a report of the config ({', '.join(built)})"
                             f"{did_you_mean(name, built)}")
    return [name for name in built if not names or name in names]


def rehearse(configfiles: list[str], out: str | os.PathLike, *, per_class: int = 3, cores: int = 2,
             html: bool = True, reports: list[str] | None = None) -> dict:
    """Rehearse the study `configfiles` describe in the folder `out` (see the module docstring):
    stand-ins, every report's reduce steps through Snakemake (or those of `reports` only), then the
    HTML report. Returns {stand_ins: counts, reports: {name: rows x columns}, seconds}."""
    start = time.time()
    out = Path(out).resolve()
    config = study_config(configfiles, str(out))
    names = chosen_reports(config, reports)
    _prepare(out)
    counts = write_stand_ins(config, per_class)
    print(f"[rehearse] stand-ins: {', '.join(f'{n} {k}' for k, n in counts.items())}", file=sys.stderr)
    targets = [str(out / f"{name}.csv") for name in names]  # the stand-ins are every report's: a few seconds
    _snakemake(config, configfiles, out, targets, cores=cores)
    if html:
        _snakemake(config, configfiles, out, targets, "--report", str(out / "report.html"), cores=cores)
    shapes = {name: f"{len(t)} rows x {len(t.columns) - 1} columns"
              for name, t in report_tables(config, names).items()}
    for name, shape in shapes.items():
        print(f"[rehearse] {name} ({config['reports'][name]['kind']}): {shape}", file=sys.stderr)
    seconds = round(time.time() - start, 1)
    which = f"{len(shapes)} report(s) of the study" if reports else "every report of the study"
    print(f"[rehearse] {which} built from stand-ins in {seconds} s: {out}", file=sys.stderr)
    return {"stand_ins": counts, "reports": shapes, "seconds": seconds}
