"""Generation: planned shards of generated images, resumable, atomic, every image seeded.

A generated dataset (dataset, strategy, split) is a list of images: (class c, k) for every class
in sorted-wnid order and k < per_class, flattened class-major, for the class-conditioned kinds
(class labels, class-conditional DiT); one (or images_per_real) per real image of the split, in
index order, for the image-conditioned kinds (img2img, image variation, DeepAugment, PixMix).
Shard i of S owns the contiguous range [i*N//S, (i+1)*N//S), so shard outputs are known from
config alone (no checkpoints). Each kind is a renderer (RENDERERS) behind one shard runner.

Within a shard, batches are fixed slices of that range, and every image has its own generator
seeded from (global seed, strategy, split, wnid, k). A batch is recorded in `progress.jsonl`
only after all its files are on disk (each written to a temporary name, then renamed). A killed
shard, re-run, skips the recorded batches and recomputes the rest with exactly the same batch
composition, so it ends with exactly the files an uninterrupted run writes.
"""

from __future__ import annotations

import hashlib
import json
import os
import queue
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable

import numpy as np
import pandas as pd

from . import io
from .seeding import derive_seed

MANIFEST_COLUMNS = [
    "id", "path", "wnid", "k", "source", "prompt", "template", "class_id", "seed", "attempt",
    "regenerated_because", "model", "revision", "pipeline", "scheduler", "steps", "guidance",
    "strength", "height", "width",
]
MAX_ATTEMPTS = 5  # per image: a NaN / all-black / flagged image is retried with the next seed


class GenerationError(Exception):
    """A problem the user must fix (bad model path, unknown pipeline or scheduler class)."""


@dataclass(frozen=True)
class ImageSpec:
    id: str
    wnid: str
    k: int
    seed: int  # attempt 0; attempt a uses derive_seed(seed, "retry", a)
    source: str = ""  # the real image it is conditioned on (image-conditioned kinds)


def plan_images(strategy: str, split: str, wnids: list[str], per_class: int, global_seed: int,
                positions: Iterable[int] | None = None) -> list[ImageSpec]:
    """The images of one generated dataset, class-major in sorted wnid order (only those at
    `positions` of that order when given, so a shard never builds the whole 1.3M-image plan)."""
    wnids = sorted(wnids)
    specs = []
    for position in range(len(wnids) * per_class) if positions is None else positions:
        wnid, k = wnids[position // per_class], position % per_class
        specs.append(ImageSpec(id=f"{strategy}-{split}-{wnid}-{k:05d}", wnid=wnid, k=k,
                               seed=derive_seed(global_seed, strategy, split, wnid, k)))
    return specs


def plan_from_sources(strategy: str, split: str, real_index: pd.DataFrame, per_real: int,
                      global_seed: int) -> list[ImageSpec]:
    """`per_real` images per real image of the index (path, wnid), in index order."""
    specs = []
    for path, wnid in zip(real_index["path"], real_index["wnid"]):
        stem = Path(path).stem
        for j in range(per_real):
            specs.append(ImageSpec(
                id=f"{strategy}-{split}-{wnid}-{stem}-{j}", wnid=wnid, k=j, source=str(path),
                seed=derive_seed(global_seed, strategy, split, wnid, stem, j)))
    return specs


def shard_range(n_images: int, n_shards: int, shard: int) -> range:
    if not 0 <= shard < n_shards:
        raise ValueError(f"shard {shard} is outside 0..{n_shards - 1}")
    return range(shard * n_images // n_shards, (shard + 1) * n_images // n_shards)


def retry_seed(seed: int, attempt: int) -> int:
    return seed if attempt == 0 else derive_seed(seed, "retry", attempt)


# ----------------------------------------------------------------------------- pipelines

def load_pipeline(model_id: str, revision: str | None, pipeline: str, scheduler: str | None,
                  dtype: str, device: str, safety_checker: bool, compile_unet: bool = False):
    """Load a diffusers pipeline by class name from a hub id or a local folder, ready to run fast."""
    import diffusers
    import torch
    import transformers

    # One tqdm bar per shard; the libraries' own loading and per-step bars would drown it.
    diffusers.utils.logging.disable_progress_bar()
    transformers.utils.logging.disable_progress_bar()
    pipeline_class = getattr(diffusers, pipeline, None)
    if pipeline_class is None or not isinstance(pipeline_class, type):
        raise GenerationError(f"unknown diffusers pipeline class '{pipeline}' (strategies.*.pipeline); "
                              "e.g. StableDiffusionPipeline, StableDiffusionXLPipeline")
    scheduler_class = None
    if scheduler:
        scheduler_class = getattr(diffusers, scheduler, None)
        if scheduler_class is None or not hasattr(scheduler_class, "from_config"):
            raise GenerationError(f"unknown diffusers scheduler '{scheduler}' (strategies.*.scheduler); "
                                  "e.g. PNDMScheduler, DPMSolverMultistepScheduler, DDIMScheduler")
    local = Path(model_id).expanduser()
    if local.exists() or model_id.startswith((".", "/", "~")):
        if not (local / "model_index.json").is_file():
            raise GenerationError(f"model folder '{model_id}' does not exist or has no model_index.json "
                                  "(models.*.id must be a hub id or a diffusers save_pretrained folder)")
    if device == "cpu" and dtype != "float32":
        print(f"[generate] {dtype} on the CPU is slow or unsupported; using float32", file=sys.stderr)
        dtype = "float32"
    kwargs = {"dtype": getattr(torch, dtype)}
    if revision:
        kwargs["revision"] = revision
    if not safety_checker:
        kwargs.update(safety_checker=None, requires_safety_checker=False)
    try:
        pipe = pipeline_class.from_pretrained(model_id, **kwargs)
    except (OSError, ValueError, EnvironmentError) as err:
        raise GenerationError(f"could not load '{model_id}' (revision {revision}) as {pipeline}: {err}") from err
    if scheduler_class is not None:
        pipe.scheduler = scheduler_class.from_config(pipe.scheduler.config)
    pipe.set_progress_bar_config(disable=True)  # one bar per shard instead of one per batch
    pipe = pipe.to(device)
    if device.startswith("cuda"):
        unet = getattr(pipe, "unet", None) or getattr(pipe, "transformer", None)
        if unet is not None:
            unet.to(memory_format=torch.channels_last)
            if compile_unet:
                compiled = torch.compile(unet, mode="max-autotune", fullgraph=True)
                if hasattr(pipe, "unet"):
                    pipe.unet = compiled
                else:
                    pipe.transformer = compiled
    return pipe


def is_defective(image: np.ndarray) -> str:
    """Why a generated float image (H, W, 3 in 0..1) must be regenerated, or '' if it is fine."""
    if not np.isfinite(image).all():
        return "nan"
    if image.max() < 0.02:  # the safety checker's black square, or a collapsed sample
        return "black"
    return ""


# ----------------------------------------------------------------------------- writing


class BackgroundWriter:
    """Encodes and saves images on a thread, then records the batch, so the GPU never waits on JPEG."""

    def __init__(self, progress_path: Path):
        self.progress_path = progress_path
        self.jobs: queue.Queue = queue.Queue(maxsize=4)
        self.error: BaseException | None = None
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def submit(self, images: list, paths: list[Path], rows: list[dict], quality: int, size: int) -> None:
        if self.error:
            raise self.error
        self.jobs.put((images, paths, rows, quality, size))

    def _run(self) -> None:
        from PIL import Image
        while True:
            job = self.jobs.get()
            if job is None:
                return
            try:
                images, paths, rows, quality, size = job
                for image, path in zip(images, paths):
                    pil = Image.fromarray(image)
                    if pil.size != (size, size):
                        pil = pil.resize((size, size), Image.Resampling.BICUBIC)
                    with io.atomic_path(path) as tmp:
                        pil.save(tmp, format="JPEG", quality=quality)
                with open(self.progress_path, "a") as f:
                    f.write(json.dumps({"rows": rows}) + "\n")
                    f.flush()
                    os.fsync(f.fileno())
            except BaseException as err:  # surfaced on the next submit / close
                self.error = err

    def close(self) -> None:
        self.jobs.put(None)
        self.thread.join()
        if self.error:
            raise self.error


def read_progress(progress_path: Path) -> dict[str, dict]:
    """Rows of the batches already complete. A line cut by a kill is dropped from the file (its
    batch is redone), so that the next appended line starts on a line of its own."""
    done: dict[str, dict] = {}
    if progress_path.exists():
        data = progress_path.read_bytes()
        if data and not data.endswith(b"\n"):
            with open(progress_path, "r+b") as f:
                f.truncate(data.rfind(b"\n") + 1)
        for line in progress_path.read_text().splitlines():
            try:
                rows = json.loads(line)["rows"]
            except (json.JSONDecodeError, KeyError):
                continue
            done.update({row["id"]: row for row in rows})
    return done


# ----------------------------------------------------------------------------- shards


def run_shard(*, items: list[ImageSpec], render, prepare, batch_size: int, out_manifest: str, save_size: int,
              jpeg_quality: int, desc: str, settings: dict, max_batches: int | None = None) -> pd.DataFrame | None:
    """Generate `items` in fixed batches with `render(batch) -> (uint8 images, manifest rows)`,
    resuming from the shard's progress log; `prepare()` (model loading) runs only if work is left.
    Writes the images and, once all are on disk, the manifest. `max_batches` stops early (tests).
    Progress made under different `settings` (the strategy changed in config) is discarded."""
    from tqdm import tqdm

    out_manifest = Path(out_manifest)
    shard_dir = out_manifest.parent
    shard_dir.mkdir(parents=True, exist_ok=True)
    progress_path = shard_dir / "progress.jsonl"
    settings_path = shard_dir / "settings.json"
    settings = {**settings, "batch_size": batch_size, "save_size": save_size, "jpeg_quality": jpeg_quality,
                "ids": hashlib.sha256("\n".join(s.id for s in items).encode()).hexdigest()}
    if settings_path.exists() and io.read_json(settings_path) != json.loads(json.dumps(settings)):
        print(f"[generate] {shard_dir}: settings changed since the last run; starting the shard afresh",
              file=sys.stderr)
        progress_path.unlink(missing_ok=True)
        for old in shard_dir.glob("*.jpg"):
            old.unlink()
    io.write_json(settings_path, settings)
    batches = [items[i:i + batch_size] for i in range(0, len(items), batch_size)]
    done = read_progress(progress_path)
    todo = [b for b in batches if not all(s.id in done for s in b)]
    n_done = len(items) - sum(len(b) for b in todo)
    print(f"[generate] {desc}: {len(items)} images, {n_done} already done", file=sys.stderr)
    start = time.time()
    if todo:
        prepare()
        writer = BackgroundWriter(progress_path)
        bar = tqdm(total=len(items), initial=n_done, unit="img", desc=desc, file=sys.stderr, dynamic_ncols=True)
        try:
            for n_batch, batch in enumerate(todo):
                if max_batches is not None and n_batch >= max_batches:
                    break
                images, rows = render(batch)
                for s, row in zip(batch, rows):
                    # Paths are relative to the split folder (where the gathered manifest lives).
                    row.update(id=s.id, path=f"{shard_dir.name}/{s.id}.jpg", wnid=s.wnid, k=s.k, source=s.source)
                writer.submit(images, [shard_dir / f"{s.id}.jpg" for s in batch], rows, jpeg_quality, save_size)
                bar.update(len(batch))
        finally:
            writer.close()
            bar.close()
        if max_batches is not None and len(todo) > max_batches:
            return None
    done = read_progress(progress_path)
    missing = [s.id for s in items if s.id not in done or not (shard_dir / f"{s.id}.jpg").is_file()]
    if missing:
        raise GenerationError(f"shard {shard_dir} is missing {len(missing)} images after generation "
                              f"(first: {missing[0]}); re-run the job to resume")
    manifest = pd.DataFrame([done[s.id] for s in items], columns=MANIFEST_COLUMNS)
    io.write_csv(out_manifest, manifest)
    regenerated = int((manifest["attempt"] > 0).sum())
    elapsed = time.time() - start
    io.write_json(shard_dir / "stats.json", {"images": len(manifest), "regenerated": regenerated,
                                             "generated_now": len(items) - n_done, "seconds": round(elapsed, 2)})
    print(f"[generate] {shard_dir}: {len(manifest)} images, {regenerated} regenerated, {elapsed:.1f} s",
          file=sys.stderr)
    return manifest


def plan_shard(kind: str, strategy: str, split: str, spec: dict, wnids: list[str], n_shards: int, shard: int,
               global_seed: int, real_index: str | None) -> list[ImageSpec]:
    """This shard's images: per class for class-conditioned kinds, per real image otherwise."""
    if kind in CLASS_CONDITIONED:
        n_images = len(wnids) * spec["per_class"]
        return plan_images(strategy, split, wnids, spec["per_class"], global_seed,
                           shard_range(n_images, n_shards, shard))
    if real_index is None:
        raise GenerationError(f"strategy {strategy} ({kind}) needs the real {split} index")
    sources = io.read_csv(real_index)
    if spec.get("sources_per_class"):  # a smaller study: the first N real images of each class
        sources = sources.groupby("wnid", sort=False).head(spec["sources_per_class"])
    per_real = spec.get("images_per_real", 1)
    mine = shard_range(len(sources) * per_real, n_shards, shard)
    # Only this shard's source rows (whole sources: a shard boundary falls between images of one source
    # only when images_per_real > 1, and then plan_from_sources is sliced below).
    first, last = mine.start // per_real, -(-mine.stop // per_real)
    items = plan_from_sources(strategy, split, sources.iloc[first:last], per_real, global_seed)
    return items[mine.start - first * per_real: mine.stop - first * per_real]


def generate_shard(*, strategy: str, split: str, spec: dict, wnids: list[str], n_shards: int, shard: int,
                   global_seed: int, out_manifest: str, real_index: str | None = None, device: str | None = None,
                   max_batches: int | None = None) -> pd.DataFrame | None:
    """One planned shard of any strategy kind (see RENDERERS)."""
    import torch

    kind = spec["kind"]
    if kind not in RENDERERS:
        raise GenerationError(f"strategy {strategy}: unknown kind '{kind}' (one of {sorted(RENDERERS)})")
    device = device or ("cuda" if torch.cuda.is_available() else "cpu")
    items = plan_shard(kind, strategy, split, spec, wnids, n_shards, shard, global_seed, real_index)
    renderer = RENDERERS[kind](spec, sorted(wnids), device)
    settings = {k: v for k, v in spec.items() if k not in ("n_shards", "compile")}  # what the images depend on
    return run_shard(items=items, render=renderer, prepare=renderer.prepare, batch_size=spec.get("batch_size", 16),
                     settings=settings,
                     out_manifest=out_manifest, save_size=spec.get("save_size", 256),
                     jpeg_quality=spec.get("jpeg_quality", 95), max_batches=max_batches,
                     desc=f"{strategy}/{split} shard {shard + 1}/{n_shards} ({device})")


def generate_class_label_shard(*, strategy: str, split: str, spec: dict, wnids: list[str], per_class: int,
                               n_shards: int, shard: int, global_seed: int, out_manifest: str,
                               device: str | None = None, max_batches: int | None = None) -> pd.DataFrame | None:
    """generate_shard for a class-label strategy given its per-class count."""
    spec = {"kind": "class_labels", **spec, "per_class": per_class}
    return generate_shard(strategy=strategy, split=split, spec=spec, wnids=wnids, n_shards=n_shards, shard=shard,
                          global_seed=global_seed, out_manifest=out_manifest, device=device, max_batches=max_batches)


# ----------------------------------------------------------------------------- renderers


def load_source_images(batch: list[ImageSpec], size: tuple[int, int] | None = None) -> list:
    """The real images an image-conditioned batch starts from (RGB, optionally resized)."""
    from PIL import Image

    images = []
    for s in batch:
        try:
            with Image.open(s.source) as im:
                im = im.convert("RGB")
                images.append(im.resize(size, Image.Resampling.BICUBIC) if size else im.copy())
        except OSError as err:
            raise GenerationError(f"cannot read source image {s.source} ({err}); fix or remove it and "
                                  "re-index the dataset") from None
    return images


class DiffusersRenderer:
    """A diffusers pipeline, one generator per image, NaN/black/flagged images regenerated."""

    def __init__(self, spec: dict, wnids: list[str], device: str):
        self.spec, self.wnids, self.device = spec, wnids, device
        self.pipe = None

    def prepare(self) -> None:
        s = self.spec
        self.pipe = load_pipeline(s["model_id"], s.get("revision"), s["pipeline"], s.get("scheduler"),
                                  s.get("dtype", "float16"), self.device, s.get("safety_checker", False),
                                  s.get("compile", False))

    def inputs(self, batch: list[ImageSpec]) -> tuple[dict, list[dict]]:
        """Pipeline keyword arguments for the batch (lists indexed like it) and per-image rows."""
        raise NotImplementedError

    def __call__(self, batch: list[ImageSpec]):
        s = self.spec
        kwargs, rows = self.inputs(batch)
        common = {"num_inference_steps": s.get("steps", 50), "guidance_scale": s.get("guidance", 7.5),
                  "output_type": "np"}

        def call(pending, generators):
            picked = {k: [v[i] for i in pending] if isinstance(v, list) else v for k, v in kwargs.items()}
            return self.pipe(**picked, **common, generator=generators)

        images, attempts, reasons = _generate_with_retries(call, [b.seed for b in batch], self.device)
        scheduler = s.get("scheduler") or type(self.pipe.scheduler).__name__
        for row, b, attempt, reason in zip(rows, batch, attempts, reasons):
            row.update(seed=retry_seed(b.seed, attempt), attempt=attempt, regenerated_because=reason,
                       model=s["model_id"], revision=s.get("revision") or "", pipeline=s["pipeline"],
                       scheduler=scheduler, steps=common["num_inference_steps"], guidance=common["guidance_scale"])
        return images, rows


class ClassLabelRenderer(DiffusersRenderer):
    """Text-to-image from a seeded template of the class name (any diffusers text-to-image pipeline)."""

    def __init__(self, spec, wnids, device):
        from . import prompts

        super().__init__(spec, wnids, device)
        self.templates = prompts.load_templates(spec.get("templates", "openai80"))
        self.names = prompts.load_class_names(wnids, spec.get("class_names", "clip"))

    def prompts_for(self, batch):
        from . import prompts

        chosen = [prompts.choose_template(self.templates, derive_seed(b.seed, "template"))[1] for b in batch]
        texts = [prompts.class_label_prompt(t, self.names[b.wnid]) for t, b in zip(chosen, batch)]
        return chosen, texts

    def inputs(self, batch):
        templates, texts = self.prompts_for(batch)
        size = {"height": self.spec.get("height", 512), "width": self.spec.get("width", 512)}
        rows = [{"prompt": p, "template": t, **size} for p, t in zip(texts, templates)]
        return {"prompt": texts, **size}, rows


class Img2ImgRenderer(ClassLabelRenderer):
    """The real image, noised to `strength`, denoised towards its class prompt."""

    def inputs(self, batch):
        templates, texts = self.prompts_for(batch)
        size = (self.spec.get("width", 512), self.spec.get("height", 512))
        strength = self.spec.get("strength", 1.0)
        rows = [{"prompt": p, "template": t, "strength": strength, "width": size[0], "height": size[1]}
                for p, t in zip(texts, templates)]
        return {"prompt": texts, "image": load_source_images(batch, size), "strength": strength}, rows


class ImageVariationRenderer(DiffusersRenderer):
    """Variations of the real image through its CLIP image embedding (the pipeline's CLIP
    preprocessing resizes to 224 and normalises)."""

    def inputs(self, batch):
        size = {"height": self.spec.get("height", 512), "width": self.spec.get("width", 512)}
        return {"image": load_source_images(batch), **size}, [dict(size) for _ in batch]


class ClassConditionalRenderer(DiffusersRenderer):
    """A class-conditional model trained on ImageNet only (DiTPipeline: ImageNet class ids)."""

    def inputs(self, batch):
        from .datasets import imagenet_wnids

        index = {w: i for i, w in enumerate(imagenet_wnids())}
        ids = [index[b.wnid] for b in batch]
        return {"class_labels": ids}, [{"class_id": i} for i in ids]


class DeepAugmentRenderer:
    """DeepAugment: the real image through EDSR or CAE with seeded weight/activation perturbations."""

    def __init__(self, spec, wnids, device):
        self.spec, self.device, self.nets = spec, device, None

    def prepare(self):
        from .baselines import load_deepaugment_nets

        self.nets = load_deepaugment_nets(self.spec["weights"], self.device)

    def __call__(self, batch):
        from .baselines import deepaugment

        images = deepaugment(load_source_images(batch), [b.seed for b in batch], self.nets, self.device)
        return images, [{"seed": b.seed, "attempt": 0, "model": self.spec["weights"]} for b in batch]


class PixMixRenderer:
    """PixMix: the real image mixed with seeded augmentations of itself and of mixing pictures."""

    def __init__(self, spec, wnids, device):
        self.spec, self.pictures = spec, None

    def prepare(self):
        from .baselines import index_mixing_set

        self.pictures = index_mixing_set(self.spec["mixing_set"])

    def __call__(self, batch):
        from .baselines import pixmix

        # The original's ImageNet settings (imagenet.py): k=4, beta=4, severity 1, no colour ops.
        images = [np.asarray(pixmix(src, self.pictures, b.seed, k=4, beta=4, aug_severity=1, all_ops=False))
                  for src, b in zip(load_source_images(batch), batch)]
        return images, [{"seed": b.seed, "attempt": 0, "model": self.spec["mixing_set"]} for b in batch]


RENDERERS = {
    "class_labels": ClassLabelRenderer,
    "img2img": Img2ImgRenderer,
    "image_variation": ImageVariationRenderer,
    "class_conditional": ClassConditionalRenderer,
    "deepaugment": DeepAugmentRenderer,
    "pixmix": PixMixRenderer,
}
CLASS_CONDITIONED = {"class_labels", "class_conditional"}


def _generate_with_retries(call, seeds: list[int], device: str):
    """Run `call(pending, generators)` for the batch; regenerate NaN/black/flagged images with
    their next seed, recording the attempt and the reason."""
    import torch

    n = len(seeds)
    images: list = [None] * n
    attempts = [0] * n
    reasons = [""] * n
    pending = list(range(n))
    for attempt in range(MAX_ATTEMPTS):
        if not pending:
            break
        generators = [torch.Generator(device).manual_seed(retry_seed(seeds[i], attempt)) for i in pending]
        out = call(pending, generators)
        flagged = getattr(out, "nsfw_content_detected", None) or [False] * len(pending)
        still = []
        for j, i in enumerate(pending):
            reason = "safety" if flagged[j] else is_defective(out.images[j])
            if reason:
                reasons[i] = reasons[i] or reason
                still.append(i)
                continue
            images[i] = (np.clip(out.images[j], 0, 1) * 255).round().astype(np.uint8)
            attempts[i] = attempt
        pending = still
    if pending:
        raise GenerationError(f"{len(pending)} images stayed NaN/black/flagged after {MAX_ATTEMPTS} seeds "
                              f"(seeds {[seeds[i] for i in pending][:3]}); check the model and dtype "
                              "(fp16 VAEs can overflow: try bfloat16)")
    return images, attempts, reasons


def gather_manifests(shard_manifests: Iterable[str], out_manifest: str, out_summary: str | None = None) -> pd.DataFrame:
    """Concatenate shard manifests (already relative to the split folder) into one, and
    summarise the dataset: images per class, regenerations and why, generation time."""
    frames = [io.read_csv(p) for p in shard_manifests]
    manifest = pd.concat(frames, ignore_index=True)
    if manifest["id"].duplicated().any():
        raise GenerationError(f"duplicate image ids across shards: {manifest['id'][manifest['id'].duplicated()].tolist()[:3]}")
    io.write_csv(out_manifest, manifest)
    counts = manifest.groupby("wnid").size()
    regenerated = manifest[manifest["attempt"] > 0]
    seconds = sum(io.read_json(stats)["seconds"] for p in shard_manifests
                  if (stats := Path(p).with_name("stats.json")).exists())
    summary = {"images": len(manifest), "classes": len(counts), "shards": len(frames),
               "per_class": {"min": int(counts.min()), "max": int(counts.max()),
                             "counts": {w: int(n) for w, n in counts.items()}},
               "regenerated": len(regenerated),
               "regenerated_because": regenerated["regenerated_because"].value_counts().to_dict(),
               "generation_seconds": round(seconds, 1),
               "images_per_second": round(len(manifest) / seconds, 3) if seconds else None}
    if out_summary:
        io.write_json(out_summary, summary)
    print(f"[gather] {out_manifest}: {len(manifest)} images, {len(counts)} classes "
          f"({counts.min()}-{counts.max()} per class), {len(regenerated)} regenerated, "
          f"{seconds:.0f} s of generation", file=sys.stderr)
    return manifest
