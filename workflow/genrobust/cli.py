"""genrobust <stage> ...: the one entry point every Snakemake rule calls, with explicit paths.

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


def _json(text: str):
    return json.loads(text)


def _threads(n: int | None) -> None:
    if n:
        import torch

        torch.set_num_threads(max(1, n))


# ----------------------------------------------------------------------------- data


def cmd_demo_data(args) -> None:
    from . import io
    from .baselines import write_fractal_mixing_set
    from .demo.data import write_demo_data

    spec = args.spec
    classes = io.read_lines(spec["classes"])
    counts = write_demo_data(args.out, classes, seed=args.seed, size=spec.get("image_size", 64),
                             n_train=spec.get("train_per_class", 40), n_val=spec.get("val_per_class", 10),
                             n_test=spec.get("test_per_class", 10))
    # PixMix's mixing set (fractals, feature visualisations) cannot be downloaded: draw fractals.
    write_fractal_mixing_set(Path(args.out) / "pixmix-fractals", n=32, size=spec.get("image_size", 64), seed=args.seed)
    io.write_json(Path(args.out) / "demo_data.json", {"classes": classes, "images": counts, "seed": args.seed})
    print(f"[demo-data] {sum(counts.values())} images under {args.out}: {counts}", file=sys.stderr)


def cmd_demo_models(args) -> None:
    from . import io
    from .baselines import write_random_deepaugment_weights
    from .demo.models import build_all

    built = build_all(args.out, seed=args.seed)
    # DeepAugment's EDSR and CAE, random weights in the real state-dict layout.
    built["deepaugment"] = write_random_deepaugment_weights(Path(args.out) / "deepaugment", seed=args.seed)
    io.write_json(Path(args.out) / "models.json", {name: str(path) for name, path in built.items()})
    print(f"[demo-models] built {sorted(built)} under {args.out}", file=sys.stderr)


def cmd_index_dataset(args) -> None:
    from . import datasets, io

    wnids = datasets.load_class_list(args.classes)
    index = datasets.index_image_folder(args.root, wnids)
    index["label"] = index["wnid"].map({w: i for i, w in enumerate(wnids)})
    io.write_csv(args.out, index)
    print(f"[index] {args.root}: {len(index)} images of {index['wnid'].nunique()} classes", file=sys.stderr)


def cmd_index_test_set(args) -> None:
    from . import datasets, io

    options = {}
    if args.severities:
        options["severities"] = args.severities
    if args.corruptions:
        options["corruptions"] = args.corruptions
    index = datasets.index_test_set(args.kind, args.root, **options)
    io.write_csv(args.out, index)
    n_classes = len(set(";".join(index["wnids"]).split(";")))
    print(f"[index] {args.kind} {args.root}: {len(index)} images, {n_classes} classes", file=sys.stderr)


# ----------------------------------------------------------------------------- generate


def cmd_generate_shard(args) -> None:
    from .datasets import load_class_list
    from .generate import generate_shard

    spec = args.spec
    _threads(args.threads)
    manifest = generate_shard(
        strategy=args.strategy, split=args.split, spec=spec, wnids=load_class_list(spec["classes"]),
        n_shards=spec["n_shards"], shard=args.shard, global_seed=spec["seed"], out_manifest=args.out,
        real_index=args.real_index)
    print(f"[generate] {args.strategy}/{args.split} shard {args.shard}: {len(manifest)} images", file=sys.stderr)


def cmd_gather(args) -> None:
    from .generate import gather_manifests

    gather_manifests(args.shards, args.out, args.summary)


def cmd_contact_sheet(args) -> None:
    from .contact_sheet import run

    run(args)


def cmd_benchmark_generation(args) -> None:
    from .benchmark import run

    if run(args):
        raise SystemExit(2)


def cmd_benchmark_training(args) -> None:
    from .benchmark_training import run

    if run(args):
        raise SystemExit(2)


# ----------------------------------------------------------------------------- convert


def cmd_write_beton(args) -> None:
    from . import io
    from .beton import write_beton
    from .datasets import load_class_list
    from .mixtures import build_pool

    generated = dict(item.split("=", 1) for item in (args.generated or []))
    pool = build_pool(args.real, generated, load_class_list(args.classes))
    io.write_csv(args.out_manifest, pool)
    counts = pool["source"].value_counts().to_dict()
    print(f"[beton] {len(pool)} images {counts} -> {args.out_beton}", file=sys.stderr)
    write_beton(pool, args.out_beton, num_workers=args.threads, **args.options)


def cmd_sample_mixture(args) -> None:
    import pandas as pd

    from . import io
    from .mixtures import sample_mixture

    pool = io.read_csv(args.pool)
    indices = sample_mixture(pool, args.mix, args.seed)
    io.write_csv(args.out, pd.DataFrame({"index": indices}))
    counts = pool.iloc[indices]["source"].value_counts().to_dict()
    print(f"[mixture] {args.mix}: {len(indices)} images {counts}", file=sys.stderr)


# ----------------------------------------------------------------------------- train / evaluate


def cmd_train(args) -> None:
    from . import io
    from .datasets import load_class_list
    from .train import train_classifier

    indices = io.read_csv(args.indices)["index"].to_numpy()
    train_classifier(
        train_beton=args.beton, train_manifest=args.manifest, train_indices=indices, val_beton=args.val_beton,
        val_manifest=args.val_manifest, class_wnids=load_class_list(args.classes), arch=args.arch,
        recipe=args.recipe, seed=args.seed, out_model=args.out_model, out_metrics=args.out_metrics,
        checkpoint_path=args.checkpoint, threads=args.threads)


def cmd_evaluate(args) -> None:
    import torch

    from . import io
    from .evaluate import evaluate_classifier, write_result
    from .train import load_classifier

    _threads(args.threads)
    options = args.options
    sets = dict(item.split("=", 1) for item in args.set)
    borders = {name: int(px) for name, px in (item.split("=", 1) for item in args.border_crop or [])}
    device = "cuda" if torch.cuda.is_available() else "cpu"
    model, class_wnids = load_classifier(args.model, device)
    indexes = {name: io.read_csv(path) for name, path in sets.items()}
    results = {}
    for name, index in indexes.items():
        subsets = None
        if name == args.id_test_set:
            # The classes of each subset set, scored on the ID set in the same pass.
            subsets = {s: sorted(set(";".join(indexes[s]["wnids"]).split(";"))) for s in args.id_subset or []}
        result = evaluate_classifier(
            model, class_wnids, index, batch_size=options["batch_size"], num_workers=min(args.threads or 4, 8),
            device=device, res=options["res"], crop_ratio=options["crop_ratio"], border_crop=borders.get(name, 0),
            flip_tta=options["flip_tta"], id_subsets=subsets or None, precision=options["precision"])
        results[name] = result
        print(f"[evaluate] {name}: top-1 {100 * result['top1']:.2f}% on {result['n']} images", file=sys.stderr)
    write_result(args.out, results, {"model": args.model, "indexes": sets})


# ----------------------------------------------------------------------------- reduce


def cmd_collect(args) -> None:
    import pandas as pd

    from . import io
    from .report import run_of

    rows = []
    for path in args.evaluations:
        run = run_of(path)
        for test_set, result in io.read_json(path).items():
            if test_set == "meta":
                continue
            top1 = result.get("mean_corruption_top1") or result["top1"]
            rows.append({**run, "test_set": test_set, "top1": top1, "top5": result.get("top5"), "n": result["n"]})
            for name, value in (result.get("id_subsets") or {}).items():
                rows.append({**run, "test_set": f"{test_set}@{name}", "top1": value, "top5": None,
                             "n": (result.get("id_subsets_n") or {}).get(name)})
    io.write_csv(args.out, pd.DataFrame(rows))
    print(f"[collect] {len(rows)} accuracies -> {args.out}", file=sys.stderr)


def cmd_robustness(args) -> None:
    from . import io
    from .robustness import robustness_table

    spec = args.spec
    table = robustness_table(io.read_csv(args.accuracy), spec["id_test_set"], spec["reference_mixtures"],
                             spec.get("reference_csv"))
    io.write_csv(args.out, table)
    print(f"[robustness] {len(table)} (model, shift set) pairs -> {args.out}", file=sys.stderr)


def cmd_report(args) -> None:
    from .report import make_report

    table = make_report(args.kind, args.accuracy, args.robustness, args.spec, args.out_table, args.out_figure,
                        args.metrics)
    print(f"{Path(args.out_table).stem} ({args.kind}):\n{table.to_string()}", file=sys.stderr)


# ----------------------------------------------------------------------------- parser


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="genrobust", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="stage", required=True, metavar="<stage>")

    def stage(name, func, help):
        p = sub.add_parser(name, help=help)
        p.set_defaults(func=func)
        return p

    p = stage("demo-data", cmd_demo_data, "draw the demo's procedural datasets in the real layouts")
    p.add_argument("--out", required=True)
    p.add_argument("--spec", type=_json, required=True, help="config 'demo' section as JSON")
    p.add_argument("--seed", type=int, default=0)

    p = stage("demo-models", cmd_demo_models, "build tiny random-weight diffusers/CLIP models")
    p.add_argument("--out", required=True)
    p.add_argument("--seed", type=int, default=0)

    p = stage("index-dataset", cmd_index_dataset, "index ImageNet-style train/val folders")
    p.add_argument("--root", required=True)
    p.add_argument("--classes", required=True, help="'imagenet1k' or a file of wnids")
    p.add_argument("--out", required=True)

    p = stage("index-test-set", cmd_index_test_set, "index a test set in its native layout")
    p.add_argument("--kind", required=True)
    p.add_argument("--root", required=True)
    p.add_argument("--severities", type=int, nargs="*")
    p.add_argument("--corruptions", nargs="*")
    p.add_argument("--out", required=True)

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

    from . import benchmark, benchmark_training, contact_sheet  # their parsers only (light imports)

    p = sub.add_parser("contact-sheet", parents=[contact_sheet.build_parser(add_help=False)],
                       help="sample grid per strategy and class (the paper's Figure 6)")
    p.set_defaults(func=cmd_contact_sheet)
    p = sub.add_parser("benchmark-generation", parents=[benchmark.build_parser(add_help=False)],
                       help="images/s of a generation pipeline (full-size SD v1.5, random weights) and where the time goes")
    p.set_defaults(func=cmd_benchmark_generation)
    p = sub.add_parser("benchmark-training", parents=[benchmark_training.build_parser(add_help=False)],
                       help="images/s of the training loaders (FFCV vs plain PyTorch) and of training steps")
    p.set_defaults(func=cmd_benchmark_training)

    p = stage("write-beton", cmd_write_beton, "write the FFCV beton of real (+ generated) images")
    p.add_argument("--real", required=True)
    p.add_argument("--generated", nargs="*", help="strategy=manifest.csv ...")
    p.add_argument("--classes", required=True)
    p.add_argument("--options", type=_json, default={})
    p.add_argument("--threads", type=int, default=8)
    p.add_argument("--out-manifest", required=True)
    p.add_argument("--out-beton", required=True)

    p = stage("sample-mixture", cmd_sample_mixture, "pool row indices of one training mixture")
    p.add_argument("--pool", required=True)
    p.add_argument("--mix", required=True)
    p.add_argument("--seed", type=int, required=True)
    p.add_argument("--out", required=True)

    p = stage("train", cmd_train, "train one classifier with the ffcv-imagenet recipe")
    for name in ("beton", "manifest", "indices", "val-beton", "val-manifest", "classes", "arch",
                 "checkpoint", "out-model", "out-metrics"):
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

    p = stage("collect", cmd_collect, "one accuracy table from evaluation JSONs")
    p.add_argument("--out", required=True)
    p.add_argument("evaluations", nargs="+")

    p = stage("robustness", cmd_robustness, "effective robustness of every model")
    p.add_argument("--accuracy", required=True)
    p.add_argument("--spec", type=_json, required=True)
    p.add_argument("--out", required=True)

    p = stage("report", cmd_report, "one of the paper's tables or figures (CSV + PNG)")
    p.add_argument("--kind", required=True, choices=["robustness_table", "accuracy_table", "mixture_grid",
                                                      "budget_curve", "corruption_table", "loss_curves"])
    p.add_argument("--metrics", nargs="*", help="loss_curves: the runs' metrics.jsonl files")
    p.add_argument("--accuracy", required=True)
    p.add_argument("--robustness", required=True)
    p.add_argument("--spec", type=_json, required=True)
    p.add_argument("--out-table", required=True)
    p.add_argument("--out-figure", required=True)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    from .config import ConfigError
    from .datasets import DatasetError
    from .generate import GenerationError

    try:
        args.func(args)
    except (ConfigError, DatasetError, GenerationError, FileNotFoundError, ValueError) as err:
        # Expected, user-fixable problems: one clear line (the log keeps it), no traceback.
        if os.environ.get("GENROBUST_TRACEBACK"):
            raise
        print(f"genrobust {args.stage}: error: {err}\n(GENROBUST_TRACEBACK=1 shows the traceback)", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
