"""Generation: planned shards of diffusers images, resumable, atomic, every image seeded.

A generated dataset (dataset, strategy, split) is the list of images (class c, k) for every class
in sorted-wnid order and k < per_class, flattened class-major. Shard i of S owns the contiguous
range [i*N//S, (i+1)*N//S), so shard outputs are known from config alone (no checkpoints).

Within a shard, batches are fixed slices of that range, and every image has its own generator
seeded from (global seed, strategy, split, wnid, k). A batch is recorded in `progress.jsonl`
only after all its files are on disk (each written to a temporary name, then renamed). A killed
shard, re-run, skips the recorded batches and recomputes the rest with exactly the same batch
composition, so it ends with exactly the files an uninterrupted run writes.
"""

from __future__ import annotations

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
    "id", "path", "wnid", "k", "prompt", "template", "seed", "attempt", "regenerated_because",
    "model", "revision", "pipeline", "scheduler", "steps", "guidance", "height", "width",
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


def plan_images(strategy: str, split: str, wnids: list[str], per_class: int, global_seed: int) -> list[ImageSpec]:
    """Every image of one generated dataset, class-major, in sorted wnid order."""
    specs = []
    for wnid in sorted(wnids):
        for k in range(per_class):
            specs.append(ImageSpec(
                id=f"{strategy}-{split}-{wnid}-{k:05d}", wnid=wnid, k=k,
                seed=derive_seed(global_seed, strategy, split, wnid, k)))
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


# ----------------------------------------------------------------------------- class labels


def generate_class_label_shard(*, strategy: str, split: str, spec: dict, wnids: list[str], per_class: int,
                               n_shards: int, shard: int, global_seed: int, out_manifest: str,
                               device: str | None = None, max_batches: int | None = None) -> pd.DataFrame | None:
    """Generate one shard of a class-label strategy; write its images and manifest under the
    manifest's folder. `max_batches` stops early (used by the kill-and-resume test)."""
    import torch

    from . import prompts

    out_manifest = Path(out_manifest)
    shard_dir = out_manifest.parent
    shard_dir.mkdir(parents=True, exist_ok=True)
    progress_path = shard_dir / "progress.jsonl"
    # Paths in manifests are relative to the split folder (the gathered manifest's folder).
    rel_prefix = shard_dir.name

    specs = plan_images(strategy, split, wnids, per_class, global_seed)
    mine = [specs[i] for i in shard_range(len(specs), n_shards, shard)]
    templates = prompts.load_templates(spec["templates"])
    names = prompts.load_class_names(sorted(wnids), spec.get("class_names", "clip"))
    batch_size = spec["batch_size"]
    batches = [mine[i:i + batch_size] for i in range(0, len(mine), batch_size)]
    done = read_progress(progress_path)
    todo = [b for b in batches if not all(s.id in done for s in b)]

    device = device or ("cuda" if torch.cuda.is_available() else "cpu")
    print(f"[generate] {strategy}/{split} shard {shard + 1}/{n_shards}: {len(mine)} images, "
          f"{len(mine) - sum(len(b) for b in todo)} already done, device {device}", file=sys.stderr)
    if todo:
        pipe = load_pipeline(spec["model_id"], spec.get("revision"), spec["pipeline"], spec.get("scheduler"),
                             spec["dtype"], device, spec.get("safety_checker", False), spec.get("compile", False))
        writer = BackgroundWriter(progress_path)
        from tqdm import tqdm
        bar = tqdm(total=len(mine), initial=len(mine) - sum(len(b) for b in todo), unit="img",
                   desc=f"{strategy}/{split} shard {shard}", file=sys.stderr, dynamic_ncols=True)
        try:
            for n_batch, batch in enumerate(todo):
                if max_batches is not None and n_batch >= max_batches:
                    break
                chosen = [prompts.choose_template(templates, derive_seed(s.seed, "template")) for s in batch]
                texts = [prompts.class_label_prompt(t, names[s.wnid]) for (_, t), s in zip(chosen, batch)]
                images, attempts, reasons = _generate_with_retries(pipe, spec, texts, [s.seed for s in batch], device)
                rows = []
                paths = []
                for s, (t_index, template), text, attempt, reason in zip(batch, chosen, texts, attempts, reasons):
                    paths.append(shard_dir / f"{s.id}.jpg")
                    rows.append({
                        "id": s.id, "path": f"{rel_prefix}/{s.id}.jpg", "wnid": s.wnid, "k": s.k,
                        "prompt": text, "template": template, "seed": retry_seed(s.seed, attempt),
                        "attempt": attempt, "regenerated_because": reason, "model": spec["model_id"],
                        "revision": spec.get("revision") or "", "pipeline": spec["pipeline"],
                        "scheduler": spec.get("scheduler") or type(pipe.scheduler).__name__,
                        "steps": spec["steps"], "guidance": spec["guidance"],
                        "height": spec["height"], "width": spec["width"],
                    })
                writer.submit(images, paths, rows, spec["jpeg_quality"], spec["save_size"])
                bar.update(len(batch))
        finally:
            writer.close()
            bar.close()
        if max_batches is not None and len(todo) > max_batches:
            return None
    done = read_progress(progress_path)
    missing = [s.id for s in mine if s.id not in done or not (shard_dir / f"{s.id}.jpg").is_file()]
    if missing:
        raise GenerationError(f"shard {shard_dir} is missing {len(missing)} images after generation "
                              f"(first: {missing[0]}); re-run the job to resume")
    manifest = pd.DataFrame([done[s.id] for s in mine], columns=MANIFEST_COLUMNS)
    io.write_csv(out_manifest, manifest)
    regenerated = int((manifest["attempt"] > 0).sum())
    print(f"[generate] shard {shard_dir}: {len(manifest)} images, {regenerated} regenerated", file=sys.stderr)
    return manifest


def _generate_with_retries(pipe, spec: dict, texts: list[str], seeds: list[int], device: str):
    """Run the batch; regenerate NaN/black/flagged images with their next seed (recorded)."""
    import torch

    n = len(texts)
    images: list = [None] * n
    attempts = [0] * n
    reasons = [""] * n
    pending = list(range(n))
    for attempt in range(MAX_ATTEMPTS):
        if not pending:
            break
        generators = [torch.Generator(device).manual_seed(retry_seed(seeds[i], attempt)) for i in pending]
        out = pipe(prompt=[texts[i] for i in pending], height=spec["height"], width=spec["width"],
                   num_inference_steps=spec["steps"], guidance_scale=spec["guidance"],
                   generator=generators, output_type="np")
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
                              f"(prompts: {[texts[i] for i in pending][:3]}); check the model and dtype "
                              "(fp16 VAEs can overflow: try bfloat16)")
    return images, attempts, reasons


def gather_manifests(shard_manifests: Iterable[str], out_manifest: str) -> pd.DataFrame:
    """Concatenate shard manifests (already relative to the split folder) into one."""
    frames = [io.read_csv(p) for p in shard_manifests]
    manifest = pd.concat(frames, ignore_index=True)
    if manifest["id"].duplicated().any():
        raise GenerationError(f"duplicate image ids across shards: {manifest['id'][manifest['id'].duplicated()].tolist()[:3]}")
    io.write_csv(out_manifest, manifest)
    counts = manifest.groupby("wnid").size()
    print(f"[gather] {out_manifest}: {len(manifest)} images, {len(counts)} classes "
          f"({counts.min()}-{counts.max()} per class), {int((manifest['attempt'] > 0).sum())} regenerated",
          file=sys.stderr)
    return manifest
