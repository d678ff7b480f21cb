"""python -m genrobust.demo <data|models|metric-models>: the demo's stand-ins for downloads, built by the demo
config's rules (workflow/rules/data.smk). Kept out of the `genrobust` CLI, which runs the study
itself and never imports this package."""

from __future__ import annotations

import argparse
import json
import sys

from genrobust.cli import run_reporting_errors

from . import write_demo_datasets, write_demo_models


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m genrobust.demo", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="what", required=True)
    data = sub.add_parser("data", help="draw the demo's procedural datasets in the real layouts")
    data.add_argument("--spec", type=json.loads, required=True, help="config 'demo' section as JSON")
    models = sub.add_parser("models", help="build tiny random-weight diffusers/CLIP/DeepAugment models")
    metric = sub.add_parser("metric-models", help="build tiny random-weight Inception-like, CLIP and timm models")
    for p in (data, models, metric):
        p.add_argument("--out", required=True)
        p.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    if args.what == "metric-models":
        from .metric_models import build_metric_models

        return run_reporting_errors("genrobust.demo metric-models", lambda: build_metric_models(args.out, args.seed))
    if args.what == "data":
        return run_reporting_errors("genrobust.demo data", lambda: write_demo_datasets(args.out, args.spec, args.seed))
    return run_reporting_errors("genrobust.demo models", lambda: write_demo_models(args.out, args.seed))


if __name__ == "__main__":
    sys.exit(main())
