"""What each job of a study costs: the one place job sizes come from.

Every job's expected work follows the size of what config asks of it (images per generation
shard, rows per beton, images x epochs per training, test images per evaluation) at the rough
per-unit costs below: one A5000/A100-class GPU, or one CPU core for beton writing. The rules ask
a cluster for that work with a margin (workflow/rules/resources.smk: twice the time plus start-up,
more on a retry); `genrobust cost` adds the same figures up before anything runs. Where a
benchmark of the user's own GPU exists (config `benchmarks:`, <out>/benchmarks/<name>.json), its
measured throughput replaces the per-image guess, and each figure says which it is.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from functools import lru_cache
from math import ceil
from pathlib import Path

from .config import class_count, parse_mixture, produced_by_demo, report_test_sets
from .kinds import REPORTS, STRATEGIES, TEST_SETS
from .kinds.reports import FID_SETS
from .sizes import FEATURE_DIMS, REAL_PER_CLASS

MIN_RUNTIME = 10  # minutes a job asks for beyond its work: start-up, imports, model loading
GPU_JOB_MB = 8000  # interpreter, CUDA context and a model in host memory (SD v1.5: ~4 GB of weights)
SD15_HOST_MB = 4300  # SD v1.5's UNet, text encoder and VAE in fp32
CPU_JOB_MB = 2000
# Seconds per generated image: per denoising step at 512 x 512 with guidance (the paper's ~0.3
# images/s at 50 steps on an A5000); the augmentation baselines' per image is their kind's
# cpu_seconds_per_image.
STEP_SECONDS_512 = 0.07
INDEX_SECONDS = 0.002  # listing one file on a shared filesystem
# Exporting or importing one image: read it, decode it once (import) or hash it (export), write
# it again (~130 KB at 512 px); an estimate, one thread.
SHARE_SECONDS = 0.01
BETON_SECONDS = 0.05  # decoding, resizing and encoding one image on one core
EVAL_SECONDS = 0.001  # decoding and scoring one test image (per view)
EMBED_SECONDS = {"inception": 0.002, "clip": 0.001}  # decoding, resizing and one forward pass per image
CLASSIFY_SECONDS = 0.01  # a ViT-L/14 at 336 px (Table 5's largest) per image
# Table 2 on one core, per train image and shift set (benchmark-scale at ImageNet-1K: 309 s for
# 2.58M train images x 4 shift sets; README).
FID_TABLE_SECONDS = 3e-5
FID_TABLE_THREADS = 8
# Training seconds per image (one forward and backward pass at ~176 px, bf16, A100-class).
ARCH_SECONDS = {
    "resnet18": 0.0003,
    "resnet50": 0.0004,
    "resnext50_32x4d": 0.0006,
    "resnext101_32x8d": 0.0015,
    "efficientnet_b0": 0.0005,
    "mobilenet_v2": 0.0003,
}
DEFAULT_ARCH_SECONDS = 0.001
# Fine-tuning SD v1.5 at 512 px (per image, one GPU): the paper's 1 epoch of 1.28M ImageNet images
# took ~1 day on one A5000 (~15 images/s); LoRA's backward pass skips the UNet's weight gradients.
FINETUNE_SECONDS_512 = {"full": 0.07, "lora": 0.05}
# Disk written per image: a generated JPEG at 512 px, quality 95; a beton row at ffcv-imagenet's
# 500 px half-JPEG (its real ImageNet train beton: 337 GB for 1.28M images; generated images are
# all 512 px, so larger); an embedding row is its features in float16.
GENERATED_JPEG_KB_512 = 130
REAL_BETON_KB, GENERATED_BETON_KB = 263, 425


@dataclass(frozen=True)
class JobCost:
    """One job's expected work (no margin): seconds on its GPUs (or threads), memory it needs,
    what it writes and makes, and where the time figure comes from."""

    seconds: float
    mem_mb: float = CPU_JOB_MB
    gpus: int = 0
    disk_mb: float = 0.0
    images: int = 0
    trainings: int = 0
    source: str = "estimate"

    @property
    def gpu_hours(self) -> float:
        return self.seconds * self.gpus / 3600


def runtime_minutes(seconds: float, attempt: int) -> int:
    """What a job asks for: twice its work plus start-up, `attempt` times on a retry."""
    return attempt * (MIN_RUNTIME + ceil(2 * seconds / 60))


def memory_mb(mb: float, attempt: int) -> int:
    """What a job asks for: its need, half again per retry."""
    return ceil(mb * (1 + (attempt - 1) / 2))


# ----------------------------------------------------------------------------- sizes


@dataclass
class StudySize:
    """The counts a config's jobs are sized by (its classes, the demo's drawn data)."""

    config: dict
    _classes: dict = field(default_factory=dict)

    def classes(self, dataset: str) -> int:
        if dataset not in self._classes:
            self._classes[dataset] = class_count(self.config["datasets"][dataset]["classes"])
        return self._classes[dataset]

    def real_images(self, dataset: str, split: str) -> int:
        """Real images of one split of a dataset: the demo's drawn counts, ImageNet's otherwise."""
        per_class = REAL_PER_CLASS[split]
        if produced_by_demo(self.config, self.config["datasets"][dataset][split]):
            per_class = self.config["demo"][f"{split}_per_class"]
        return per_class * self.classes(dataset)

    def generated_images(self, dataset: str, strategy: str, split: str) -> int:
        gen = self.config["datasets"][dataset]["generate"][strategy]
        spec = self.config["strategies"][strategy]
        if STRATEGIES[spec["kind"]].class_conditioned:
            return gen[f"{split}_per_class"] * self.classes(dataset)
        sources = self.real_images(dataset, split)
        if gen.get("sources_per_class"):
            sources = min(sources, gen["sources_per_class"] * self.classes(dataset))
        return sources * spec.get("images_per_real", 1)

    def source_images(self, dataset: str, source: str) -> int:
        return self.real_images(dataset, "train") if source == "real" else self.generated_images(dataset, source,
                                                                                                "train")

    def test_set_images(self, name: str, dataset: str | None = None) -> int:
        """Images of a test set, restricted to the classes of `dataset`'s models when given."""
        spec = self.config["test_sets"][name]
        kind = TEST_SETS[spec["kind"]]
        classes = self.classes(dataset) if dataset else 1000
        per_class = kind.images_per_class
        if produced_by_demo(self.config, spec["path"]):
            per_class = self.config["demo"]["test_per_class"]
            classes = class_count(self.config["demo"]["classes"])
        if kind.corruptions:
            per_class *= len(spec.get("corruptions") or range(15)) * len(spec.get("severities") or range(5))
        return per_class * classes

    def mixture_rows(self, dataset: str, mix: str) -> int:
        mixture = parse_mixture(mix)
        base = mixture.total or self.real_images(dataset, "train")
        return sum(ceil(base * percent / 100) for _, percent in mixture.terms)


# ----------------------------------------------------------------------------- measured throughput


@lru_cache
def _benchmark(path: str) -> object | None:
    try:
        return json.loads(Path(path).read_text())
    except (OSError, ValueError):
        return None


def measured_step_seconds(out: str) -> tuple[float, str] | None:
    """Seconds per denoising step of one 512 x 512 image from the user's generation benchmark
    (the fastest batch it timed), or None."""
    path = f"{out}/benchmarks/generation.json"
    results = _benchmark(path)
    best = None
    for r in results if isinstance(results, list) else []:
        s = r.get("settings") or {}
        if r.get("images_per_s") and s.get("steps") and s.get("height") and s.get("width"):
            step = 1 / r["images_per_s"] / s["steps"] * 512 ** 2 / (s["height"] * s["width"])
            best = step if best is None else min(best, step)
    return (best, f"measured ({path})") if best else None


def measured_arch_seconds(out: str, arch: str) -> tuple[float, str] | None:
    """Seconds per training image of `arch` from the user's training benchmark, or None."""
    path = f"{out}/benchmarks/training.json"
    report = _benchmark(path)
    rates = [r["images_per_s"] for r in (report or {}).get("training", []) if isinstance(report, dict)
             and r.get("arch") == arch and r.get("images_per_s")]
    return (1 / max(rates), f"measured ({path})") if rates else None


# ----------------------------------------------------------------------------- per rule


def shard_cost(study: StudySize, dataset: str, strategy: str, split: str) -> JobCost:
    config = study.config
    spec = config["strategies"][strategy]
    gen = config["datasets"][dataset]["generate"][strategy]
    images = ceil(study.generated_images(dataset, strategy, split) / gen[f"{split}_shards"])
    source = "estimate"
    seconds = STRATEGIES[spec["kind"]].cpu_seconds_per_image
    if seconds is None:  # a diffusion model's: per denoising step
        step, source = measured_step_seconds(config["out"]) or (STEP_SECONDS_512, "estimate")
        steps = spec.get("steps", 50) * spec.get("strength", 1.0)
        # guidance <= 1 (few-step samplers) runs without classifier-free guidance: half the UNet batch
        guided = 1.0 if spec.get("guidance", 7.5) > 1 else 0.5
        seconds = steps * guided * spec.get("height", 512) * spec.get("width", 512) / 512 ** 2 * step
    batch = spec.get("batch_size", 16) * spec.get("height", 512) * spec.get("width", 512) * 3 * 4 * 8 / 1e6
    jpeg_kb = GENERATED_JPEG_KB_512 * (spec.get("save_size") or spec.get("height", 512)) ** 2 / 512 ** 2
    return JobCost(images * seconds, GPU_JOB_MB + batch, gpus=1, disk_mb=images * jpeg_kb / 1000, images=images,
                   source=source)


def beton_cost(study: StudySize, dataset: str, rows: int, threads: int, generated: bool) -> JobCost:
    resolution = study.config["datasets"][dataset]["beton"]["max_resolution"]
    # the manifest in memory, and a chunk of decoded images per writer process
    mem = CPU_JOB_MB + rows / 1000 + threads * 100 * resolution ** 2 * 3 / 1e6
    kb = (GENERATED_BETON_KB if generated else REAL_BETON_KB) * resolution ** 2 / 500 ** 2
    return JobCost(BETON_SECONDS * rows / threads, mem, disk_mb=rows * kb / 1000)


def training_cost(study: StudySize, dataset: str, mix: str, arch: str) -> JobCost:
    recipe = study.config["datasets"][dataset]["recipe"]
    rows = study.mixture_rows(dataset, mix)
    images = recipe["epochs"] * (rows + study.real_images(dataset, "val"))
    per_image, source = measured_arch_seconds(study.config["out"], arch) or (
        ARCH_SECONDS.get(arch, DEFAULT_ARCH_SECONDS), "estimate")
    # batches in flight (loader workers, pinned copies) and the mixture's row lists
    batches = (recipe["num_workers"] + 4) * recipe["batch_size"] * recipe["max_res"] ** 2 * 3 * 4 / 1e6
    return JobCost(images * per_image, GPU_JOB_MB + batches + rows * 64 / 1e6, gpus=1, trainings=1, source=source)


def evaluation_cost(study: StudySize, dataset: str, threads: int) -> JobCost:
    options = study.config["evaluation"]
    views = 2 if options["flip_tta"] else 1
    images = sum(study.test_set_images(t, dataset) for t in report_test_sets(study.config, dataset))
    side = options["res"] / options["crop_ratio"]
    mem = GPU_JOB_MB + min(threads, 8) * 2 * options["batch_size"] * side ** 2 * 3 * 4 / 1e6
    return JobCost(views * images * EVAL_SECONDS, mem, gpus=1)


def finetune_cost(study: StudySize, model: str) -> JobCost:
    """On one GPU (a job on N GPUs asks for N times the time it needs; set-resources lowers it)."""
    from .finetune.plan import finetuned_models, images_per_step

    block = finetuned_models(study.config)[model]
    if block.get("max_steps"):
        images = block["max_steps"] * images_per_step(block)
    else:
        images = block.get("epochs", 1) * study.real_images(block["dataset"], "train")
    side = block.get("resolution", 512)
    per_image = FINETUNE_SECONDS_512[block.get("method", "full")] * (side / 512) ** 2
    # a second copy of the base model's weights in host memory while loading and saving (the
    # demo's tiny SD: a few MB), and the loader workers' decoded batches
    weights = 100 if produced_by_demo(study.config, study.config["models"][block["base"]]["id"]) else SD15_HOST_MB
    batches = (block.get("num_workers", 8) + 2) * 2 * block.get("batch_size", 16) * side ** 2 * 3 * 4 / 1e6
    disk = weights if block.get("method", "full") == "full" else 10
    return JobCost(images * per_image, GPU_JOB_MB + weights + batches, gpus=1, disk_mb=disk)


def embed_cost(study: StudySize, group: dict) -> JobCost:
    """An embedding group's images (upper bound: before a per-class cap), at the extractor's rate."""
    images = 0
    for base in group["sets"]:
        *_, split, name = base.split("/")
        if group["dataset"] == "test":
            images += study.test_set_images(name)
        else:
            d = group["dataset"]
            images += study.real_images(d, split) if name == "real" else study.generated_images(d, name, split)
    extractor = group["extractor"]
    return JobCost(images * EMBED_SECONDS[extractor], GPU_JOB_MB, gpus=1,
                   disk_mb=images * FEATURE_DIMS[extractor] * 2 / 1e6)


def predictions_cost(study: StudySize, dataset: str, strategy: str) -> JobCost:
    images = study.real_images(dataset, "val") + study.generated_images(dataset, strategy, "val")
    return JobCost(images * CLASSIFY_SECONDS, GPU_JOB_MB, gpus=1)


def metric_report_cost(study: StudySize, name: str) -> JobCost:
    """Table 2 works through every class's images against each shift set's (its threads'
    share of the one-core figure); the other metric reports take seconds."""
    spec = study.config["reports"][name]
    if REPORTS[spec["kind"]].embeds != FID_SETS:
        return JobCost(0)
    train = sum(study.source_images(spec["dataset"], s) for s in spec["sources"].values())
    return JobCost(train * len(spec["test_sets"]) * FID_TABLE_SECONDS / FID_TABLE_THREADS)


def index_cost(images: int) -> JobCost:
    return JobCost(INDEX_SECONDS * images)


def share_cost(images: int) -> JobCost:
    """An export or an import of `images` images: it writes them again."""
    return JobCost(SHARE_SECONDS * images, disk_mb=images * GENERATED_JPEG_KB_512 / 1000)
