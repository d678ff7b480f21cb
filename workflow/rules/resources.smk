# Job sizes: what each job asks a cluster for (included by common.smk; no rules here).
#
# CPUs are each rule's `threads:` and nothing else: the SLURM profile never sets cpus_per_task,
# so the executor asks for --cpus-per-task = threads and the job runs with exactly those threads.
# `set-threads` or `max-threads` in a profile change both at once.
#
# Memory and runtime follow the size of the job's work in config: images per generation shard,
# rows per beton, images x epochs per training, test images per evaluation, at the rough
# per-image costs below (one A5000/A100-class GPU, or one CPU core for beton writing), doubled,
# plus MIN_RUNTIME. A retry gets `attempt` times the time and half again the memory per attempt,
# so a job stopped at its limit is not stopped at the same one again (shards and trainings
# resume). A site overrides any of them with `set-resources` in its profile.

from functools import lru_cache
from math import ceil

from genrobust.config import class_count, produced_by_demo

MIN_RUNTIME = 10  # minutes: start-up, imports, model loading
GPU_JOB_MB = 8000  # interpreter, CUDA context and a model in host memory (SD v1.5: ~4 GB of weights)
SD15_HOST_MB = 4300  # SD v1.5's UNet, text encoder and VAE in fp32
CPU_JOB_MB = 2000
REAL_PER_CLASS = {"train": 1300, "val": 50}  # ImageNet's (the paper's "100% = 130K" for IN-100)
# Full-size test images per ImageNet-1K class of each test-set kind (ImageNet-R: 30K, ObjectNet:
# ~18.5K in its 113 classes; ImageNet-C: per corruption and severity), scaled by a dataset's classes.
TEST_PER_CLASS = {"imagenet": 51, "imagenet_v2": 10, "imagenet_r": 30, "objectnet": 19, "imagenet_c": 50}
# Seconds per generated image: per denoising step at 512 x 512 with guidance (the paper's ~0.3
# images/s at 50 steps on an A5000), or per image for the augmentation baselines.
STEP_SECONDS_512 = 0.07
BASELINE_SECONDS = {"deepaugment": 0.5, "pixmix": 0.05}
INDEX_SECONDS = 0.002  # listing one file on a shared filesystem
BETON_SECONDS = 0.05  # decoding, resizing and encoding one image on one core
EVAL_SECONDS = 0.001  # decoding and scoring one test image (per view)
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


def _minutes(seconds, attempt):
    return attempt * (MIN_RUNTIME + ceil(2 * seconds / 60))


def _megabytes(mb, attempt):
    return ceil(mb * (1 + (attempt - 1) / 2))


@lru_cache
def _classes(dataset):
    return class_count(config["datasets"][dataset]["classes"])


def real_images(dataset, split):
    """Real images of one split of a dataset: the demo's drawn counts, ImageNet's otherwise."""
    per_class = REAL_PER_CLASS[split]
    if produced_by_demo(config, config["datasets"][dataset][split]):
        per_class = DEMO[f"{split}_per_class"]
    return per_class * _classes(dataset)


def generated_images(dataset, strategy, split):
    gen = config["datasets"][dataset]["generate"][strategy]
    spec = config["strategies"][strategy]
    if spec["kind"] in CLASS_CONDITIONED_KINDS:
        return gen[f"{split}_per_class"] * _classes(dataset)
    sources = real_images(dataset, split)
    if gen.get("sources_per_class"):
        sources = min(sources, gen["sources_per_class"] * _classes(dataset))
    return sources * spec.get("images_per_real", 1)


def source_images(dataset, source):
    return real_images(dataset, "train") if source == "real" else generated_images(dataset, source, "train")


def test_set_images(name, dataset=None):
    """Images of a test set, restricted to the classes of `dataset`'s models when given."""
    spec = config["test_sets"][name]
    classes = _classes(dataset) if dataset else 1000
    per_class = TEST_PER_CLASS.get(spec["kind"], 50)
    if produced_by_demo(config, spec["path"]):
        per_class = DEMO["test_per_class"]
        classes = class_count(DEMO["classes"])
    if spec["kind"] == "imagenet_c":
        per_class *= len(spec.get("corruptions") or range(15)) * len(spec.get("severities") or range(5))
    return per_class * classes


def mixture_rows(dataset, mix):
    mixture = parse_mixture(mix)
    base = mixture.total or real_images(dataset, "train")
    return sum(ceil(base * percent / 100) for _, percent in mixture.terms)


# ------------------------------------------------------------------ per rule (wildcards, attempt)


def demo_runtime(wildcards, attempt):
    return _minutes(0, attempt)


def demo_mem_mb(wildcards, attempt):
    return _megabytes(4000, attempt)


def index_runtime(wildcards, attempt):
    return _minutes(INDEX_SECONDS * real_images(wildcards.dataset, wildcards.split), attempt)


def index_test_runtime(wildcards, attempt):
    return _minutes(INDEX_SECONDS * test_set_images(wildcards.test_set), attempt)


def index_mem_mb(wildcards, attempt):
    return _megabytes(CPU_JOB_MB, attempt)


def shard_runtime(wildcards, attempt):
    spec = config["strategies"][wildcards.strategy]
    gen = config["datasets"][wildcards.dataset]["generate"][wildcards.strategy]
    images = ceil(
        generated_images(wildcards.dataset, wildcards.strategy, wildcards.split) / gen[f"{wildcards.split}_shards"]
    )
    if spec["kind"] in BASELINE_SECONDS:
        seconds = BASELINE_SECONDS[spec["kind"]]
    else:
        steps = spec.get("steps", 50) * spec.get("strength", 1.0)
        seconds = steps * spec.get("height", 512) * spec.get("width", 512) / 512**2 * STEP_SECONDS_512
    return _minutes(images * seconds, attempt)


def shard_mem_mb(wildcards, attempt):
    spec = config["strategies"][wildcards.strategy]
    batch = spec.get("batch_size", 16) * spec.get("height", 512) * spec.get("width", 512) * 3 * 4 * 8 / 1e6
    return _megabytes(GPU_JOB_MB + batch, attempt)


def _beton_mem_mb(images, threads, max_resolution, attempt):
    # the manifest in memory, and a chunk of decoded images per writer process
    return _megabytes(CPU_JOB_MB + images / 1000 + threads * 100 * max_resolution**2 * 3 / 1e6, attempt)


def source_beton_runtime(wildcards, threads, attempt):
    return _minutes(BETON_SECONDS * source_images(wildcards.dataset, wildcards.source) / threads, attempt)


def source_beton_mem_mb(wildcards, threads, attempt):
    resolution = config["datasets"][wildcards.dataset]["beton"]["max_resolution"]
    return _beton_mem_mb(source_images(wildcards.dataset, wildcards.source), threads, resolution, attempt)


def val_beton_runtime(wildcards, threads, attempt):
    return _minutes(BETON_SECONDS * real_images(wildcards.dataset, "val") / threads, attempt)


def val_beton_mem_mb(wildcards, threads, attempt):
    resolution = config["datasets"][wildcards.dataset]["beton"]["max_resolution"]
    return _beton_mem_mb(real_images(wildcards.dataset, "val"), threads, resolution, attempt)


def training_runtime(wildcards, attempt):
    recipe = config["datasets"][wildcards.dataset]["recipe"]
    images = recipe["epochs"] * (mixture_rows(wildcards.dataset, wildcards.mix) + real_images(wildcards.dataset, "val"))
    return _minutes(images * ARCH_SECONDS.get(wildcards.arch, DEFAULT_ARCH_SECONDS), attempt)


def training_mem_mb(wildcards, attempt):
    recipe = config["datasets"][wildcards.dataset]["recipe"]
    # batches in flight (loader workers, pinned copies) and the mixture's row lists
    batches = (recipe["num_workers"] + 4) * recipe["batch_size"] * recipe["max_res"] ** 2 * 3 * 4 / 1e6
    return _megabytes(GPU_JOB_MB + batches + mixture_rows(wildcards.dataset, wildcards.mix) * 64 / 1e6, attempt)


def evaluation_runtime(wildcards, attempt):
    views = 2 if config["evaluation"]["flip_tta"] else 1
    images = sum(test_set_images(t, wildcards.dataset) for t in report_test_sets(config, wildcards.dataset))
    return _minutes(views * images * EVAL_SECONDS, attempt)


def evaluation_mem_mb(wildcards, threads, attempt):
    options = config["evaluation"]
    side = options["res"] / options["crop_ratio"]
    return _megabytes(GPU_JOB_MB + min(threads, 8) * 2 * options["batch_size"] * side**2 * 3 * 4 / 1e6, attempt)


# Fine-tuning SD v1.5 at 512 px (per image, one GPU): the paper's 1 epoch of 1.28M ImageNet images
# took ~1 day on one A5000 (~15 images/s); LoRA's backward pass skips the UNet's weight gradients.
FINETUNE_SECONDS_512 = {"full": 0.07, "lora": 0.05}


def _finetune_images(block):
    dataset = block["dataset"]
    if block.get("max_steps"):
        return block["max_steps"] * block.get("batch_size", 16) * block.get("gradient_accumulation_steps", 1)
    return block.get("epochs", 1) * real_images(dataset, "train")


def finetune_runtime(wildcards, attempt):
    """On one GPU (a job on N GPUs asks for N times the time it needs; set-resources lowers it)."""
    block = finetuned_models(config)[wildcards.model]
    per_image = FINETUNE_SECONDS_512[block.get("method", "full")] * (block.get("resolution", 512) / 512) ** 2
    return _minutes(_finetune_images(block) * per_image, attempt)


def finetune_mem_mb(wildcards, attempt):
    block = finetuned_models(config)[wildcards.model]
    # a second copy of the base model's weights in host memory while loading and saving (the
    # demo's tiny SD: a few MB), and the loader workers' decoded batches
    weights = 100 if produced_by_demo(config, config["models"][block["base"]]["id"]) else SD15_HOST_MB
    side = block.get("resolution", 512)
    batches = (block.get("num_workers", 8) + 2) * 2 * block.get("batch_size", 16) * side**2 * 3 * 4 / 1e6
    return _megabytes(GPU_JOB_MB + weights + batches, attempt)
