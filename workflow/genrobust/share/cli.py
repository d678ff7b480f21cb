"""The share stage's subcommands of `genrobust` (registered by cli.build_parser): export-set and
import-set. Each parses its options and calls one library function."""

from __future__ import annotations

import json


def _split_manifests(items: list[str]) -> dict[str, str]:
    pairs = dict(item.split("=", 1) for item in items)
    bad = sorted(set(pairs) - {"train", "val"})
    if bad:
        raise ValueError(f"--manifest: split '{bad[0]}' is not train or val (give SPLIT=MANIFEST)")
    return pairs


def cmd_export_set(args) -> None:
    from ..datasets import load_class_list
    from .export import export_set

    export_set(manifests=_split_manifests(args.manifest), out=args.out, wnids=load_class_list(args.classes),
               fmts=args.formats, shard_mb=args.shard_mb, info=args.info)


def cmd_import_set(args) -> None:
    from ..datasets import load_class_list
    from .external import import_set

    import_set(path=args.path, fmt=args.format, wnids=load_class_list(args.classes), class_map=args.class_map,
               out_manifest=args.out_manifest, out_summary=args.out_summary)


def add_parsers(stage) -> None:
    """Register the subcommands through cli.build_parser's `stage(name, func, help)`."""
    p = stage("export-set", cmd_export_set, "export a generated set: parquet and/or WebDataset shards, card, sha256")
    p.add_argument("--manifest", action="append", required=True, metavar="SPLIT=MANIFEST",
                   help="a split's gathered manifest.csv (repeat for train and val)")
    p.add_argument("--classes", required=True, help="'imagenet1k' or a file of wnids (the label order)")
    p.add_argument("--formats", nargs="+", choices=["parquet", "webdataset"], default=["parquet", "webdataset"])
    p.add_argument("--shard-mb", type=int, default=1000, help="about this many MB per shard")
    p.add_argument("--info", type=json.loads, required=True,
                   help="JSON for the card: dataset, strategy, strategy_config, models, license, seed, summaries")
    p.add_argument("--out", required=True, help="the export folder (replaced whole when done)")

    p = stage("import-set", cmd_import_set, "import an external image set as a source's manifest")
    p.add_argument("--path", required=True, help="an ImageFolder tree, or a folder of parquet or WebDataset shards")
    p.add_argument("--format", choices=["auto", "imagefolder", "parquet", "webdataset"], default="auto")
    p.add_argument("--classes", required=True, help="'imagenet1k' or a file of wnids (the dataset's classes)")
    p.add_argument("--class-map", help="CSV name,wnid for a set whose classes are not named by wnid")
    p.add_argument("--out-manifest", required=True)
    p.add_argument("--out-summary", required=True)
