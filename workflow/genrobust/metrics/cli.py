"""The metrics stage's subcommands of `genrobust` (registered by cli.build_parser): embed,
classify-images, filter-generated and metrics-report. Each parses its options and calls one
library function; heavy imports happen inside the functions."""

from __future__ import annotations

import json
import sys

SET_ROLES = ("real", "generated", "test")  # how an image set's table is read (the --set KIND)


def _threads(n: int | None) -> None:
    if n:
        import torch

        torch.set_num_threads(max(1, n))


def _sets(items) -> list[tuple[str, str, str]]:
    for kind, _, _ in items:
        if kind not in SET_ROLES:
            raise ValueError(f"--set: kind '{kind}' is not one of {', '.join(SET_ROLES)}")
    return [tuple(item) for item in items]


def cmd_embed(args) -> None:
    from .embeddings import embed_image_set
    from .extractors import build, default_workers, resolve_device

    if not args.set and not args.text_out:
        raise SystemExit("embed: nothing to do; give --set (an image set) or --text-out (CLIP class texts)")
    _threads(args.threads)
    device = resolve_device(args.device)
    spec = args.spec.get(args.extractor) or {}
    workers = default_workers(args.threads) if args.workers is None else args.workers
    built = {}

    def extractor():  # built on the first set that is not cached
        if "x" not in built:
            built["x"] = build(args.extractor, spec, device)
        return built["x"]

    crops = {base: int(px) for base, _, px in (item.rpartition("=") for item in args.border_crop or [])}
    for kind, table, base in _sets(args.set):
        embed_image_set(table, base, extractor, extractor_name=args.extractor, spec=spec, border_crop=crops.get(base, 0),
                        generated=kind == "generated", max_per_class=spec.get("max_per_class"), seed=args.seed,
                        batch_size=spec.get("batch_size", 64), num_workers=workers, device=device,
                        precision=spec.get("precision", "fp32"), dtype=args.spec.get("feature_dtype", "float16"))
    if args.text_out:
        from .extractors import write_class_texts

        write_class_texts(extractor(), args.classes, args.text_out, spec)


def cmd_classify_images(args) -> None:
    from .classify import classify_image_sets, run_classifier, timm_classifier
    from .embeddings import read_image_set
    from .extractors import default_workers, resolve_device

    _threads(args.threads)
    device = resolve_device(args.device)
    if bool(args.timm) == bool(args.model):
        raise ValueError("classify-images: give --timm NAME or --model model.pt")
    classifier = (timm_classifier(args.timm, args.file, device) if args.timm
                  else run_classifier(args.model, args.evaluation or {}, device))
    sets = {}
    for item in args.set:
        name, kind, table = item
        if kind not in SET_ROLES:
            raise ValueError(f"--set {name}: kind '{kind}' is not one of {', '.join(SET_ROLES)}")
        sets[name] = read_image_set(table, generated=kind == "generated")
    workers = default_workers(args.threads) if args.workers is None else args.workers
    classify_image_sets(classifier, sets, args.out, batch_size=args.batch_size, num_workers=workers, device=device)


def cmd_filter_generated(args) -> None:
    from .filtering import filter_generated

    filter_generated(args.manifest, args.features, args.text, args.threshold, args.out_manifest, args.out_summary,
                     source=args.source)


def cmd_metrics_report(args) -> None:
    from ..report import write_display_copy
    from .report_kinds import make_metrics_report

    make_metrics_report(args.kind, args.spec, args.inputs, args.out_table, args.out_figure)
    write_display_copy(args.out_table, args.out_display)


def add_parsers(stage) -> None:
    """Register the subcommands through cli.build_parser's `stage(name, func, help)`."""
    p = stage("embed", cmd_embed, "embed image sets with one feature extractor (Inception or CLIP)")
    p.add_argument("--extractor", required=True, choices=["inception", "clip"])
    p.add_argument("--spec", type=json.loads, required=True, help="config 'metrics' section as JSON")
    p.add_argument("--set", nargs=3, action="append", default=[], metavar=("KIND", "TABLE", "OUT_BASE"),
                   help="KIND real|generated|test, its index or manifest, and <OUT_BASE>.npy/.csv/.json")
    p.add_argument("--border-crop", action="append", metavar="OUT_BASE=PX",
                   help="crop PX pixels from each side of that set's images first (ObjectNet: 2, as evaluation)")
    p.add_argument("--text-out", help="CLIP: also embed the class prompts of --classes into this .npz")
    p.add_argument("--classes", default="imagenet1k", help="'imagenet1k' or a file of wnids (for --text-out)")
    p.add_argument("--seed", type=int, default=0, help="seeds the per-class cap (metrics.inception.max_per_class)")
    _device_options(p)

    p = stage("classify-images", cmd_classify_images, "per-image top-1 of one classifier on image sets")
    p.add_argument("--timm", help="a timm pretrained model name (or local-dir:/hf-hub: id)")
    p.add_argument("--file", help="--timm: weights from this file instead of the hub")
    p.add_argument("--model", help="a model.pt trained by this study")
    p.add_argument("--evaluation", type=json.loads, help="--model: config 'evaluation' section as JSON")
    p.add_argument("--set", nargs=3, action="append", required=True, metavar=("NAME", "KIND", "TABLE"))
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--out", required=True, help="predictions CSV (a .json of provenance is written beside it)")
    _device_options(p)

    p = stage("filter-generated", cmd_filter_generated, "a generated set's images passing the CLIP filter")
    for name in ("manifest", "features", "text", "out-manifest", "out-summary"):
        p.add_argument(f"--{name}", required=True)
    p.add_argument("--threshold", type=float, required=True)
    p.add_argument("--source", default="")

    p = stage("metrics-report", cmd_metrics_report, "Table 2, 5 or 7, the real-vs-generated scatter, the guidance "
              "curve or the diversity-vs-ER scatter")
    p.add_argument("--kind", required=True)
    p.add_argument("--spec", type=json.loads, required=True)
    p.add_argument("--inputs", type=json.loads, required=True,
                   help="features, texts, predictions and analysis tables as JSON")
    p.add_argument("--out-table", required=True)
    p.add_argument("--out-figure", required=True)
    p.add_argument("--out-display", help="the table as report.html shows it (default <table>_display.csv)")


def _device_options(p) -> None:
    p.add_argument("--device", default="auto", help="cuda, cpu or auto")
    p.add_argument("--threads", type=int)
    p.add_argument("--workers", type=int, help="DataLoader workers (default: threads - 1, at most 7)")


if __name__ == "__main__":
    sys.exit("run as: python -m genrobust embed|classify-images|filter-generated|metrics-report ...")
