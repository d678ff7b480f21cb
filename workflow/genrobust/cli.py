"""genrobust <stage> ...: the one entry point every rule of the study calls, with explicit paths.

Heavy libraries (torch, diffusers, ffcv) are imported inside each stage, so a reduce step
starts in a fraction of a second. Expected failures (bad config, missing data, bad model path)
end with a one-line message naming what to fix and exit code 2, not a traceback.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

from .kinds import REPORTS
from .kinds.reports import TRAINING


def _json(text: str):
    return json.loads(text)


def _pairs(items: list[str] | None) -> dict[str, str]:
    """['name=path', ...] -> {name: path}."""
    return dict(item.split("=", 1) for item in items or [])


def _threads(n: int | None) -> None:
    if n:
        import torch

        torch.set_num_threads(max(1, n))


# ----------------------------------------------------------------------------- data


def cmd_index_dataset(args) -> None:
    from .datasets import write_dataset_index

    write_dataset_index(args.root, args.classes, args.out, allow_empty_classes=args.allow_empty_classes)


def cmd_index_test_set(args) -> None:
    from .datasets import write_test_set_index

    write_test_set_index(args.kind, args.root, args.out, complete=args.complete, severities=args.severities,
                         corruptions=args.corruptions)


# ----------------------------------------------------------------------------- generate


def cmd_generate_shard(args) -> None:
    from .datasets import load_class_list
    from .generate import generate_shard

    _threads(args.threads)
    spec = args.spec
    generate_shard(strategy=args.strategy, split=args.split, spec=spec, wnids=load_class_list(spec["classes"]),
                   n_shards=spec["n_shards"], shard=args.shard, global_seed=spec["seed"], out_manifest=args.out,
                   real_index=args.real_index)


def cmd_finetune(args) -> None:
    from .finetune import finetune_model

    finetune_model(args.base, args.revision, args.recipe, args.index, args.out, args.checkpoints, args.seed,
                   threads=args.threads, device=args.device, keep_checkpoints=args.keep_checkpoints)


def cmd_benchmark_scale(args) -> None:
    from .benchmark.scale import run

    if run(args):
        raise SystemExit(2)


def cmd_benchmark_finetune(args) -> None:
    from .benchmark.finetune import run

    if run(args):
        raise SystemExit(2)


def cmd_gather(args) -> None:
    from .generate import gather_manifests

    gather_manifests(args.shards, args.out, args.summary)


def cmd_contact_sheet(args) -> None:
    from .contact_sheet import run

    run(args)


def cmd_benchmark_generation(args) -> None:
    from .benchmark.generation import run

    if run(args):
        raise SystemExit(2)


def cmd_benchmark_shard(args) -> None:
    from .benchmark.shard import run

    if run(args):
        raise SystemExit(2)


def cmd_benchmark_embedding(args) -> None:
    from .benchmark.embedding import run

    if run(args):
        raise SystemExit(2)


def cmd_benchmark_training(args) -> None:
    from .benchmark.training import run

    if run(args):
        raise SystemExit(2)


# ----------------------------------------------------------------------------- convert


def cmd_write_beton(args) -> None:
    from .mixtures import write_source

    write_source(args.table, args.source, args.classes, args.out_manifest, args.out_beton, args.options,
                 args.threads)


def cmd_sample_mixture(args) -> None:
    from .mixtures import write_mixture

    write_mixture(_pairs(args.table), args.mix, args.seed, args.out, draws=_pairs(args.draws))


# ----------------------------------------------------------------------------- train / evaluate


def cmd_train(args) -> None:
    from .datasets import load_class_list
    from .mixtures import read_mixture
    from .train import TrainingSource, train_classifier

    files = {name: (beton, manifest) for name, beton, manifest in args.source}
    draws = _pairs(args.draws)
    rows = read_mixture(args.mixture)
    missing = sorted(set(rows) - set(files))
    if missing:
        raise ValueError(f"mixture {args.mixture} uses sources {missing} that no --source names")
    train_classifier(
        sources={name: TrainingSource(*files[name], indices, draws.get(name)) for name, indices in rows.items()},
        val_beton=args.val_beton, val_manifest=args.val_manifest, class_wnids=load_class_list(args.classes),
        arch=args.arch, recipe=args.recipe, seed=args.seed, out_model=args.out_model,
        out_metrics=args.out_metrics, out_run=args.out_run, checkpoint_path=args.checkpoint, threads=args.threads)


def cmd_evaluate(args) -> None:
    from .evaluate import evaluate_model

    _threads(args.threads)
    borders = {name: int(px) for name, px in _pairs(args.border_crop).items()}
    evaluate_model(args.model, _pairs(args.set), id_test_set=args.id_test_set,
                   id_subsets=args.id_subset or [], border_crops=borders, options=args.options,
                   threads=args.threads, out=args.out)


# ----------------------------------------------------------------------------- reduce


def cmd_collect(args) -> None:
    from .report import collect_accuracy

    frame = collect_accuracy(args.evaluations, args.out)
    print(f"[collect] {len(frame)} accuracies -> {args.out}", file=sys.stderr)


def cmd_robustness(args) -> None:
    from .robustness import write_robustness_table

    write_robustness_table(args.accuracy, args.reference, args.out)


def cmd_provenance(args) -> None:
    from .provenance import write_provenance

    record = write_provenance(args.out, config_sha256=args.config_sha256, out=args.results,
                              configfiles=args.configfiles, checkout=Path(args.checkout), reports=args.reports)
    print("\n".join(f"{key}: {value}" for key, value in record.items()), file=sys.stderr)


def cmd_report(args) -> None:
    from .report import make_report, write_display_copy

    table = make_report(args.kind, args.accuracy, args.robustness, args.spec, args.out_table, args.out_figure,
                        args.metrics)
    write_display_copy(args.out_table, args.out_display)
    print(f"{Path(args.out_table).stem} ({args.kind}):\n{table.to_string()}", file=sys.stderr)


# ----------------------------------------------------------------------------- planning


def cmd_cost(args) -> None:
    from . import io
    from .cost_report import cost

    summary = cost(args.targets, args.configfile, args.config, args.profile)
    if args.json_out:
        io.write_json(args.json_out, summary)


def cmd_rehearse(args) -> None:
    from .rehearsal import rehearse

    rehearse(args.configfile, args.out, per_class=args.per_class, cores=args.cores, html=not args.no_html,
             reports=args.reports)


# ----------------------------------------------------------------------------- parser


def _add_data_stages(stage) -> None:
    p = stage("index-dataset", cmd_index_dataset, "index ImageNet-style train/val folders")
    p.add_argument("--root", required=True)
    p.add_argument("--classes", required=True, help="'imagenet1k' or a file of wnids")
    p.add_argument("--allow-empty-classes", action="store_true", help="warn about empty class folders, not fail")
    p.add_argument("--out", required=True)

    p = stage("index-test-set", cmd_index_test_set, "index a test set in its native layout")
    p.add_argument("--kind", required=True)
    p.add_argument("--root", required=True)
    p.add_argument("--severities", type=int, nargs="*")
    p.add_argument("--corruptions", nargs="*")
    p.add_argument("--complete", action="store_true", help="a copy that lacks classes is an error")
    p.add_argument("--out", required=True)


def _add_generate_stages(stage) -> None:
    p = stage("generate-shard", cmd_generate_shard, "generate one planned shard of a strategy")
    p.add_argument("--spec", type=_json, required=True, help="strategy + model + counts as JSON")
    p.add_argument("--strategy", required=True)
    p.add_argument("--split", required=True, choices=["train", "val"])
    p.add_argument("--shard", type=int, required=True)
    p.add_argument("--real-index", help="the real images of image-conditioned strategies (path, wnid)")
    p.add_argument("--threads", type=int)
    p.add_argument("--out", required=True, help="the shard's manifest.csv")

    p = stage("gather", cmd_gather, "concatenate shard manifests, summarise the dataset")
    p.add_argument("--out", required=True)
    p.add_argument("--summary", help="JSON: counts per class, regenerations, generation time")
    p.add_argument("shards", nargs="+")


def _add_finetune_stage(stage) -> None:
    p = stage("finetune", cmd_finetune, "fine-tune Stable Diffusion on a real train set, class names as captions")
    p.add_argument("--base", required=True, help="the base model: a hub id or a diffusers folder")
    p.add_argument("--revision", help="the base model's revision (hub)")
    p.add_argument("--recipe", type=_json, required=True, help="config models.<name>.finetune as JSON")
    p.add_argument("--index", required=True, help="the real train set's index (path, wnid, label)")
    p.add_argument("--seed", type=int, required=True, help="the global seed (unless the recipe sets one)")
    p.add_argument("--checkpoints", required=True, help="folder of resumable checkpoints (removed at the end)")
    p.add_argument("--keep-checkpoints", action="store_true")
    p.add_argument("--device", choices=["cpu", "cuda"], help="default: cuda when available")
    p.add_argument("--threads", type=int)
    p.add_argument("--out", required=True, help="the fine-tuned model's folder (pipeline, or LoRA + base pointer)")


def _add_convert_stages(stage) -> None:
    p = stage("write-beton", cmd_write_beton, "write the FFCV beton of one training source (or of the val set)")
    p.add_argument("--table", required=True, help="the real index, or a generated manifest")
    p.add_argument("--source", required=True, help="'real' or the strategy")
    p.add_argument("--classes", required=True)
    p.add_argument("--options", type=_json, default={})
    p.add_argument("--threads", type=int, default=8)
    p.add_argument("--out-manifest", required=True)
    p.add_argument("--out-beton", required=True)

    p = stage("sample-mixture", cmd_sample_mixture, "the rows of each source in one training mixture")
    p.add_argument("--table", action="append", required=True,
                   help="source=CSV: the real index (real=...) and each generated source's manifest")
    p.add_argument("--mix", required=True)
    p.add_argument("--seed", type=int, required=True)
    p.add_argument("--draws", action="append", metavar="SOURCE=NAME",
                   help="key a source's seeded draws by another name (an imported copy draws as its set)")
    p.add_argument("--out", required=True)


def _add_train_evaluate_stages(stage) -> None:
    p = stage("train", cmd_train, "train one classifier with the ffcv-imagenet recipe")
    p.add_argument("--source", nargs=3, action="append", required=True, metavar=("NAME", "BETON", "MANIFEST"),
                   help="one per source of the mixture")
    p.add_argument("--draws", action="append", metavar="SOURCE=NAME",
                   help="key a source's seeded draws by another name (an imported copy draws as its set)")
    for name in ("mixture", "val-beton", "val-manifest", "classes", "arch", "checkpoint", "out-model",
                 "out-metrics", "out-run"):
        p.add_argument(f"--{name}", required=True)
    p.add_argument("--seed", type=int, required=True)
    p.add_argument("--recipe", type=_json, required=True)
    p.add_argument("--threads", type=int)

    p = stage("evaluate", cmd_evaluate, "accuracy of one model on its test sets")
    p.add_argument("--model", required=True)
    p.add_argument("--set", action="append", required=True, help="name=index.csv, one per test set")
    p.add_argument("--border-crop", action="append", help="name=pixels cropped per side (ObjectNet: 2)")
    p.add_argument("--id-test-set", required=True, help="the in-distribution set (ImageNet val)")
    p.add_argument("--id-subset", action="append", help="also score the ID set on this set's classes")
    p.add_argument("--options", type=_json, required=True, help="config 'evaluation' section as JSON")
    p.add_argument("--threads", type=int)
    p.add_argument("--out", required=True, help="one JSON: {test set: result}")


def _add_reduce_stages(stage) -> None:
    p = stage("collect", cmd_collect, "one accuracy table from evaluation JSONs")
    p.add_argument("--out", required=True)
    p.add_argument("evaluations", nargs="+")

    p = stage("robustness", cmd_robustness, "effective robustness of a report's models")
    p.add_argument("--accuracy", required=True)
    p.add_argument("--reference", type=_json, required=True, help="{id_test_set, mixtures, csv} as JSON")
    p.add_argument("--out", required=True)

    p = stage("report", cmd_report, "one of the paper's tables or figures (CSV + PNG)")
    p.add_argument("--kind", required=True, choices=REPORTS.names(family=TRAINING))
    p.add_argument("--metrics", nargs="*", help="loss_curves: the runs' metrics.jsonl files")
    p.add_argument("--accuracy", help="the report's accuracy table (every kind but loss_curves)")
    p.add_argument("--robustness", help="its effective-robustness table (kinds that report ER)")
    p.add_argument("--spec", type=_json, required=True)
    p.add_argument("--out-table", required=True)
    p.add_argument("--out-figure", required=True)
    p.add_argument("--out-display", help="the table as report.html shows it (default <table>_display.csv)")


    p = stage("provenance", cmd_provenance, "the run's provenance for report.html: commit, config hash, when, "
                                            "on what")
    p.add_argument("--config-sha256", required=True, help="the planned config's hash (genrobust.provenance)")
    p.add_argument("--results", required=True, help="the config's out folder")
    p.add_argument("--configfiles", nargs="*", default=[])
    p.add_argument("--checkout", required=True, help="the workflow's checkout (its git commit is recorded)")
    p.add_argument("--reports", nargs="*", default=[])
    p.add_argument("--out", required=True)


def _add_planning_stages(stage) -> None:
    p = stage("cost", cmd_cost, "what a target costs before it runs: jobs, GPU- and CPU-hours, memory, disk, images, "
                                "trainings per rule")
    p.add_argument("targets", nargs="*", help="output files (results/table3.csv); default: the whole study")
    p.add_argument("--configfile", nargs="+", help="the study's config files (default: config/config.yaml)")
    p.add_argument("--config", nargs="+", help="key=value overrides, as Snakemake's --config")
    p.add_argument("--profile", action="append", help="Snakemake profiles (threads and resources as the run has them)")
    p.add_argument("--json-out", help="the figures as JSON")
    p = stage("rehearse", cmd_rehearse, "build every report of a config from synthetic stand-ins for its GPU jobs, "
                                        "before spending them")
    p.add_argument("--configfile", nargs="+", default=["config/config.yaml"],
                   help="the study's config files, merged in order as Snakemake merges them")
    p.add_argument("--out", default="results/rehearsal", help="an empty folder, or an earlier rehearsal's")
    p.add_argument("--per-class", type=int, default=3, help="images per class of every stand-in table")
    p.add_argument("--cores", type=int, default=2)
    p.add_argument("--no-html", action="store_true", help="skip the HTML report")
    p.add_argument("--reports", nargs="+", metavar="NAME", help="rehearse only these reports (table1 figure11 ...): "
                   "their stand-ins and reduce steps alone")


def _add_modules_with_own_parsers(sub) -> None:
    """Subcommands whose options their module defines (light imports: the parsers only)."""
    from . import contact_sheet
    from .benchmark import embedding as benchmark_embedding
    from .benchmark import generation as benchmark_generation
    from .benchmark import training as benchmark_training
    from .benchmark import finetune as benchmark_finetune
    from .benchmark import scale as benchmark_scale
    from .benchmark import shard as benchmark_shard

    for name, module, func, help in (
        ("contact-sheet", contact_sheet, cmd_contact_sheet, "sample grid per strategy and class (the paper's Figure 6)"),
        ("benchmark-generation", benchmark_generation, cmd_benchmark_generation,
         "images/s of a generation pipeline (full-size SD v1.5, random weights) and where the time goes"),
        ("benchmark-shard", benchmark_shard, cmd_benchmark_shard,
         "a generation shard's own time beside its pipeline calls (tiny demo model, the real shard code)"),
        ("benchmark-training", benchmark_training, cmd_benchmark_training,
         "images/s of the training loaders (FFCV vs plain PyTorch) and of training steps"),
        ("benchmark-embedding", benchmark_embedding, cmd_benchmark_embedding,
         "images/s of the metric extractors (Inception, CLIP ViT-B/32; full size, random weights)"),
        ("benchmark-finetune", benchmark_finetune, cmd_benchmark_finetune,
         "images/s of Stable Diffusion fine-tuning (full-size SD v1.5 UNet, random weights; full and LoRA)"),
        ("benchmark-scale", benchmark_scale, cmd_benchmark_scale,
         "wall time and peak memory of the stages that grow with the data, at ImageNet-1K shape"),
    ):
        p = sub.add_parser(name, parents=[module.build_parser(add_help=False)], help=help)
        p.set_defaults(func=func)


def _add_metrics_stages(stage) -> None:
    """embed, classify-images, filter-generated, metrics-report (genrobust/metrics/cli.py)."""
    from .metrics.cli import add_parsers

    add_parsers(stage)


def _add_share_stages(stage) -> None:
    """export-set, import-set (genrobust/share/cli.py)."""
    from .share.cli import add_parsers

    add_parsers(stage)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="genrobust", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="stage", required=True, metavar="<stage>")

    def stage(name, func, help):
        p = sub.add_parser(name, help=help)
        p.set_defaults(func=func)
        return p

    for add in (_add_data_stages, _add_finetune_stage, _add_generate_stages, _add_convert_stages,
                _add_train_evaluate_stages, _add_reduce_stages, _add_planning_stages):
        add(stage)
    _add_metrics_stages(stage)
    _add_share_stages(stage)
    _add_modules_with_own_parsers(sub)
    return parser


def run_reporting_errors(name: str, call) -> int:
    """Run `call()`; an expected, user-fixable problem ends with one clear line naming what to fix
    (the job's log keeps it) and exit code 2, not a traceback (GENROBUST_TRACEBACK=1 shows it)."""
    from .config import ConfigError
    from .datasets import DatasetError
    from .generate import GenerationError

    try:
        call()
    except (ConfigError, DatasetError, GenerationError, OSError, ValueError) as err:  # an OSError names its path
        if os.environ.get("GENROBUST_TRACEBACK"):
            raise
        print(f"{name}: error: {err}\n(GENROBUST_TRACEBACK=1 shows the traceback)", file=sys.stderr)
        return 2
    return 0


# The thread counts numpy's BLAS, OpenMP and numexpr read when they load (Snakemake sets them to a
# job's threads; a stage run by hand with --threads gets the same, not one thread per core).
THREAD_VARIABLES = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "VECLIB_MAXIMUM_THREADS",
                    "NUMEXPR_NUM_THREADS")


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if getattr(args, "threads", None):  # before any stage imports numpy
        os.environ.update({name: str(max(1, args.threads)) for name in THREAD_VARIABLES})
    return run_reporting_errors(f"genrobust {args.stage}", lambda: args.func(args))


if __name__ == "__main__":
    sys.exit(main())
