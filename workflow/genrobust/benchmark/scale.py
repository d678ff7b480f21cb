"""Wall time and peak memory of the stages that grow with the data, at ImageNet-1K shape.

Builds ImageNet-1K-shaped inputs cheaply at each scale (a fraction of the full counts): a train
tree of 1000 wnid folders of hard-linked tiny JPEGs, 500 generation shard manifests with every
column a shard writes, features of the real widths (Inception 2048, CLIP 512) for the real and
generated train sets and the shift sets, and one evaluation per planned run. Then it runs each
stage as the workflow's rule runs it, `python -m genrobust <stage>` in a process of its own, on
one thread (the BLAS and OpenMP thread counts set to 1), and records its wall time and peak
resident memory (the process's and its children's, file-backed pages included):

    plan           snakemake -n of config/config.yaml (no data: once, at full shape)
    index          index-dataset of the train tree
    gather         gather of the 500 shard manifests
    sample-mixture real_100+cl80_100 from the index and the manifest
    write-beton    the real train set into a beton (one writer thread)
    collect        the accuracy table of every planned run's evaluation
    filter         the CLIP filter gate over the generated train set
    table2         Table 2: per-class FID and KID of real and generated train against the 4 shift sets
    table7         Table 7's measures of real, generated and filtered train (at ImageNet-1K shape)

and prints, per stage, time and peak RSS at each scale and their growth exponent (the slope of
log time, or log memory, against log scale: 1 is linear). The inputs stay in --work (about 12 GB
at scale 1, most of it Table 2's features) and are reused by the next run.

    python -m genrobust benchmark-scale --scales 0.01 0.1 1 --work /scratch/scale --json-out scale.json
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

from . import system

NAME = "benchmark-scale"
STAGES = ("plan", "index", "gather", "sample-mixture", "write-beton", "collect", "filter", "table2", "table7")
ONE_THREAD = {v: "1" for v in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "NUMEXPR_NUM_THREADS",
                               "VECLIB_MAXIMUM_THREADS", "NUMBA_NUM_THREADS")}
SHARDS = 500  # config/config.yaml's ImageNet-1K cl80 train shards


def build_parser(add_help: bool = True) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog=NAME, description=__doc__.splitlines()[0], add_help=add_help)
    p.add_argument("--scales", type=float, nargs="+", default=[0.01, 0.1, 1.0],
                   help="fractions of the full ImageNet-1K counts (1 = 1.28M real and 1.3M generated images)")
    p.add_argument("--stages", nargs="+", default=list(STAGES), choices=STAGES)
    p.add_argument("--config", default="config/config.yaml", help="the study whose shape is measured")
    p.add_argument("--work", default="results/benchmark-scale", help="where the inputs are built (reused)")
    p.add_argument("--json-out", default=None)
    return p


# ----------------------------------------------------------------------------- the study at one scale


def study(config_path: str, out: Path) -> dict:
    """The full config at `out`, its ImageNet-1K Table 7 measures added (the config's is IN-100)."""
    from ..rehearsal import study_config

    config = study_config([config_path], str(out))
    config["datasets"]["imagenet1k"]["generate"]["cl80clip"] = {"train_shards": 1, "val_shards": 0}
    config["reports"]["table7"] = {"kind": "clip_diversity", "dataset": "imagenet1k",
                                   "sources": {"Real": "real", "Generated": "cl80", "Filtered": "cl80clip"}}
    return config


def _tree(images: Path, wnids: list[str], per_class: int) -> None:
    """1000 wnid folders of `per_class` small JPEGs, each folder's a hard link to its first (file
    systems cap the links to one file: ext4 at 65,000), in index_dataset's layout."""
    from PIL import Image

    for wnid in wnids:
        folder = images / wnid
        folder.mkdir(parents=True, exist_ok=True)
        source = folder / f"{wnid}_0.JPEG"
        if not source.is_file():
            Image.new("RGB", (40, 32), (120, 80, 40)).save(source, quality=90)
        for k in range(1, per_class):
            target = folder / f"{wnid}_{k}.JPEG"
            if not target.exists():
                os.link(source, target)


def _shards(config: dict, out: Path, per_class: int) -> list[str]:
    """The cl80 train set of ImageNet-1K as its 500 shards' manifests (plan order, contiguous)."""
    from .. import io
    from ..rehearsal import toy_manifest

    base = out / "generate/imagenet1k/cl80/train"
    paths = [str(base / f"shard~{i}/manifest.csv") for i in range(SHARDS)]
    if Path(paths[-1]).is_file():
        return paths
    manifest = toy_manifest(config, "imagenet1k", "cl80", "train", per_class)
    bounds = [round(i * len(manifest) / SHARDS) for i in range(SHARDS + 1)]
    for i, path in enumerate(paths):
        shard = manifest.iloc[bounds[i]:bounds[i + 1]].copy()
        shard["path"] = f"shard~{i}/" + shard["id"] + ".jpg"
        io.write_csv(path, shard)
    return paths


# ----------------------------------------------------------------------------- measuring


# Linux keeps a process's peak RSS across exec, so a command started from this (large) process would
# report this process's size: a small interpreter starts it and reports its children's peak.
RUSAGE_WRAPPER = """import json, resource, subprocess, sys
code = subprocess.call(sys.argv[1:], stdout=subprocess.DEVNULL)
usage = resource.getrusage(resource.RUSAGE_CHILDREN)
print(json.dumps({"code": code, "maxrss_kb": usage.ru_maxrss, "cpu": usage.ru_utime + usage.ru_stime}))"""


def measure(command: list[str], log: Path) -> dict:
    """Run `command` on one thread; its wall time, CPU time and peak RSS (MB), or its error."""
    env = {**os.environ, **ONE_THREAD, "HF_HUB_OFFLINE": "1"}
    log.parent.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    with open(log, "w") as stderr:
        done = subprocess.run([sys.executable, "-c", RUSAGE_WRAPPER, *command], stdout=subprocess.PIPE,
                              stderr=stderr, env=env, text=True)
    seconds = time.perf_counter() - start
    usage = json.loads(done.stdout.strip().splitlines()[-1])
    result = {"seconds": round(seconds, 2), "cpu_seconds": round(usage["cpu"], 2),
              "peak_rss_mb": round(usage["maxrss_kb"] / 1024, 1)}
    if usage["code"] != 0:
        result["error"] = log.read_text()[-600:]
    return result


def stage_commands(config: dict, out: Path, scale: float) -> dict[str, list[str]]:
    """Each stage's command line, as its rule calls it (paths under `out`)."""
    from ..metrics import plan as metrics_plan
    from ..rehearsal import SNAKEFILE
    from ..study import Study

    study = Study.of(config)
    cli = [sys.executable, "-m", "genrobust"]
    index, manifest = out / "index/imagenet1k/train.csv", out / "generate/imagenet1k/cl80/train/manifest.csv"
    clip = metrics_plan.features_base(config, "clip", "imagenet1k", "train", "cl80")
    report = {name: ["--kind", config["reports"][name]["kind"],
                     "--spec", json.dumps(study.report_spec(name, seed=study.seed)),
                     "--inputs", json.dumps(metrics_plan.report_inputs(config, name)),
                     "--out-table", str(out / f"{name}.csv"), "--out-figure", str(out / f"{name}.png")]
              for name in ("table2", "table7")}
    return {
        "plan": [sys.executable, "-m", "snakemake", "-s", str(SNAKEFILE), "-n", "--quiet", "rules", "--configfile",
                 config["_path"], "--config", "check_paths=False", f"out={out}/plan", "--cores", "1"],
        "index": [*cli, "index-dataset", "--root", str(out / "rehearsal-images/imagenet1k/train"),
                  "--classes", "imagenet1k", "--out", str(index)],
        "gather": [*cli, "gather", "--out", str(manifest), "--summary", str(manifest.with_name("summary.json")),
                   *_shards(config, out, _per_class(1300, scale))],
        "sample-mixture": [*cli, "sample-mixture", "--table", f"real={index}", "--table", f"cl80={manifest}",
                           "--mix", "real_100+cl80_100", "--seed", "0", "--out", str(out / "mix.csv")],
        "write-beton": [*cli, "write-beton", "--table", str(index), "--source", "real", "--classes", "imagenet1k",
                        "--options", json.dumps(config["datasets"]["imagenet1k"]["beton"]), "--threads", "1",
                        "--out-manifest", str(out / "beton/real.csv"), "--out-beton", str(out / "beton/real.beton")],
        "collect": [*cli, "collect", "--out", str(out / "accuracy.csv"),
                    *(str(out / "eval" / run.dir / "evaluation.json") for run in study.runs)],
        "filter": [*cli, "filter-generated", "--manifest", str(manifest), "--features", clip,
                   "--text", metrics_plan.text_file(str(out), "imagenet1k"), "--threshold", "0.3", "--source", "cl80",
                   "--out-manifest", str(out / "generate/imagenet1k/cl80clip/train/manifest.csv"),
                   "--out-summary", str(out / "generate/imagenet1k/cl80clip/train/summary.json")],
        "table2": [*cli, "metrics-report", *report["table2"]],
        "table7": [*cli, "metrics-report", *report["table7"]],
    }


def _per_class(full: int, scale: float) -> int:
    return max(2, round(full * scale))


def run_scale(args, scale: float) -> dict[str, dict]:
    """Build the inputs of one scale (what is missing), then measure each stage in order."""
    from ..datasets import imagenet_wnids
    from ..rehearsal import StandIns

    out = (Path(args.work) / f"scale~{scale:g}").resolve()
    config = study(args.config, out)
    config["_path"] = str(Path(args.config).resolve())
    _tree(out / "rehearsal-images/imagenet1k/train", imagenet_wnids(), _per_class(1300, scale))
    commands = stage_commands(config, out, scale)
    stand_ins = StandIns(config, per_class=None, scale=scale)
    results = {}
    for stage in args.stages:
        if stage == "plan" and scale != max(args.scales):
            continue  # the plan is the config's, not the data's: once
        if stage == "collect":
            stand_ins.runs()
        if stage in ("filter", "table2", "table7"):
            for dependency in ("index", "gather"):  # the features list the real index's and the manifest's rows
                if dependency not in results and not Path(commands[dependency][-1]).exists():
                    measure(commands[dependency], out / f"logs/{dependency}.log")
            stand_ins.embedding_groups()
        results[stage] = measure(commands[stage], out / f"logs/{stage}.log")
        system.log(NAME, f"scale {scale:g} {stage}: {results[stage]['seconds']} s, "
                         f"{results[stage]['peak_rss_mb']} MB" + (" FAILED" if "error" in results[stage] else ""))
    return results


def growth(points: dict[float, float]) -> float | None:
    """The slope of log value against log scale (least squares); None below two scales."""
    import numpy as np

    if len(points) < 2:
        return None
    x, y = np.log(list(points)), np.log([max(v, 1e-3) for v in points.values()])
    return float(np.polyfit(x, y, 1)[0])


def format_table(results: dict[float, dict[str, dict]]) -> str:
    scales = sorted(results)
    head = "".join(f"{f'{s:g}: s':>11}{'MB':>8}" for s in scales)
    lines = [f"{'stage':<16}{head}{'time exp':>10}{'mem exp':>9}"]
    for stage in STAGES:
        cells = {s: results[s][stage] for s in scales if stage in results[s]}
        if not cells:
            continue
        row = "".join(f"{cells[s]['seconds']:>11.1f}{cells[s]['peak_rss_mb']:>8.0f}" if s in cells else " " * 19
                      for s in scales)
        t, m = growth({s: c["seconds"] for s, c in cells.items()}), growth({s: c["peak_rss_mb"] for s, c in cells.items()})
        failed = " FAILED" if any("error" in c for c in cells.values()) else ""
        lines.append(f"{stage:<16}{row}{'' if t is None else f'{t:.2f}':>10}{'' if m is None else f'{m:.2f}':>9}{failed}")
    return "\n".join(lines)


def run(args: argparse.Namespace) -> int:
    from .. import io

    results = {scale: run_scale(args, scale) for scale in sorted(args.scales)}
    print(f"== {NAME}: wall seconds and peak RSS per stage, one thread, ImageNet-1K shape at each scale")
    print(format_table(results))
    if args.json_out:
        io.write_json(args.json_out, {"scales": {f"{s:g}": r for s, r in results.items()},
                                      "load_average": system.load_average()})
    return 1 if any("error" in r for stages in results.values() for r in stages.values()) else 0
