"""The shard runner: fixed batches, a background JPEG writer, a progress log to resume from, the
shard's manifest once every image is on disk; and the gather of shard manifests into one."""

from __future__ import annotations

import errno
import hashlib
import json
import os
import queue
import sys
import threading
import time
from pathlib import Path
from typing import Any, Iterable, Mapping

import numpy as np
import pandas as pd

from .. import io
from .plan import GenerationError, ImageSpec, plan_shard
from .renderers import RENDERERS
from .spec import StrategySpec

MANIFEST_COLUMNS = [
    "id", "path", "wnid", "k", "source", "prompt", "template", "class_id", "seed", "attempt",
    "regenerated_because", "model", "revision", "pipeline", "scheduler", "steps", "guidance",
    "strength", "height", "width", "preprocessing", "caption_source",
]
# Columns only some strategies' images have (a manifest has them only then, so that the others'
# manifests stay as they were): the few-step adapter fused into the model, the speed-ups that
# change the images (fused QKV, feature caching).
OPTIONAL_MANIFEST_COLUMNS = ["adapter", "speedups"]
# What a shard's cost depends on, recorded beside its seconds in stats.json.
COST_KEYS = ("kind", "model_id", "pipeline", "scheduler", "adapter", "steps", "guidance", "height", "width",
             "batch_size", "dtype", "compile", "fuse_qkv", "cache")


def fit_longer_side(image, size: int):
    """`image` with its longer side shrunk to `size`, aspect kept (as FFCV's max_resolution does):
    a copy of a 500x375 real image stays 4:3 like its real twin. Smaller images are kept as they are."""
    from PIL import Image

    w, h = image.size
    if max(w, h) <= size:
        return image
    scale = size / max(w, h)
    return image.resize((max(1, round(w * scale)), max(1, round(h * scale))), Image.Resampling.BICUBIC)


class BackgroundWriter:
    """Encodes and saves images on a thread, then records the batch, so the GPU never waits on JPEG."""

    def __init__(self, progress_path: Path):
        self.progress_path = progress_path
        self.jobs: queue.Queue = queue.Queue(maxsize=4)
        self.error: BaseException | None = None
        self.written = 0  # bytes of images this writer put on disk
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def submit(self, images: list, paths: list[Path], rows: list[dict], quality: int, size: int,
               seconds: float) -> None:
        if self.error:
            raise self.error
        self.jobs.put((images, paths, rows, quality, size, seconds))

    def _run(self) -> None:
        while True:
            job = self.jobs.get()
            if job is None:
                return
            try:
                self._write_batch(*job)
            except OSError as err:
                self.error = _disk_error(err, self.progress_path.parent, self.written) if \
                    err.errno == errno.ENOSPC else err
            except BaseException as err:  # surfaced on the next submit / close
                self.error = err

    def _write_batch(self, images, paths, rows, quality, size, seconds) -> None:
        """Each image under a temporary name, then renamed; then one progress line that records
        every file's size (a finished shard is checked against it) and the batch's render time."""
        from PIL import Image

        sizes = {}
        for image, path, row in zip(images, paths, rows):
            pil = fit_longer_side(Image.fromarray(image), size)
            with io.atomic_path(path) as tmp:
                pil.save(tmp, format="JPEG", quality=quality)
                sizes[row["id"]] = tmp.stat().st_size
            self.written += sizes[row["id"]]
        with open(self.progress_path, "a") as f:
            f.write(json.dumps({"rows": rows, "bytes": sizes, "seconds": round(seconds, 4)}) + "\n")
            f.flush()
            os.fsync(f.fileno())

    def close(self) -> None:
        self.jobs.put(None)
        self.thread.join()
        if self.error:
            raise self.error


def _disk_error(err: OSError, folder: Path, written: int) -> GenerationError:
    return GenerationError(f"disk full while writing {folder} ({written / 1e6:.1f} MB of images written by "
                           f"this run; every finished batch is kept): free space and re-run the job to resume")


def _progress_records(progress_path: Path) -> list[dict]:
    """The batches recorded as complete. A line cut by a kill is dropped from the file (its batch
    is redone), so that the next appended line starts on a line of its own."""
    if not progress_path.exists():
        return []
    data = progress_path.read_bytes()
    if data and not data.endswith(b"\n"):
        with open(progress_path, "r+b") as f:
            f.truncate(data.rfind(b"\n") + 1)
    records = []
    for line in progress_path.read_text().splitlines():
        try:
            record = json.loads(line)
            record["rows"]
        except (json.JSONDecodeError, KeyError, TypeError):
            continue
        records.append(record)
    return records


def read_progress(progress_path: Path) -> dict[str, dict]:
    """Rows of the images already complete: recorded, and on disk with the size recorded for
    them (a truncated or vanished file makes its batch be redone)."""
    done: dict[str, dict] = {}
    for record in _progress_records(progress_path):
        sizes = record.get("bytes", {})
        for row in record["rows"]:
            path = progress_path.parent / f"{row['id']}.jpg"
            on_disk = path.stat().st_size if path.is_file() else None
            if on_disk is not None and sizes.get(row["id"], on_disk) == on_disk:
                done[row["id"]] = row
    return done


def generation_seconds(progress_path: Path) -> float:
    """Render time of every recorded batch, over every run that added to the shard."""
    return sum(float(r.get("seconds", 0.0)) for r in _progress_records(progress_path))


def _reconcile_settings(shard_dir: Path, settings: dict, ids: list[str], runtime: dict) -> None:
    """Make the shard's finished images agree with `settings`. Made under other image settings,
    they are all discarded. Made under the same ones for another image list (the strategy's size
    or shard count changed), the images still planned here are kept: an image is a function of its
    id's seed and the settings, so a grown set reuses every image of the smaller one it contains.
    `runtime` (threads, device) is recorded, every one the shard ran under: resumed under another,
    its images are kept but CPU kernels round differently, so a NOTICE says the shard will not be
    byte-identical to an uninterrupted run (as training's resume does)."""
    settings_path = shard_dir / "settings.json"
    current = {**json.loads(json.dumps(settings)), "ids": hashlib.sha256("\n".join(ids).encode()).hexdigest()}
    previous = io.read_json(settings_path) if settings_path.exists() else current
    runtimes = previous.get(RUNTIME_KEY, [])
    if _settings(previous) != _settings(current):
        same_images = _image_settings(previous) == _image_settings(current)
        kept = _keep_progress_of(shard_dir, set(ids) if same_images else set())
        why = "its image list changed" if same_images else "settings changed since the last run"
        print(f"[generate] {shard_dir}: {why}; keeping {kept} finished images", file=sys.stderr)
        runtimes = runtimes if kept else []
    if runtimes and runtime != runtimes[-1] and read_progress(shard_dir / "progress.jsonl"):
        changes = ", ".join(f"{k} {runtimes[-1].get(k)} -> {v}" for k, v in runtime.items() if runtimes[-1].get(k) != v)
        print(f"NOTICE: resuming {shard_dir} with {changes}: kernels round differently, so its images will not be "
              "byte-identical to an uninterrupted run's (settings.json records every runtime)", file=sys.stderr)
    if runtime not in runtimes:
        runtimes = [*runtimes, runtime]
    io.write_json(settings_path, {**current, RUNTIME_KEY: runtimes})


# Settings that choose which images a shard holds, not what an image looks like.
IMAGE_LIST_KEYS = ("ids", "per_class", "sources_per_class")
RUNTIME_KEY = "runtimes"  # how the shard ran (threads, device): recorded, never a reason to redo images


def _settings(settings: dict) -> dict:
    return {k: v for k, v in settings.items() if k != RUNTIME_KEY}


def _image_settings(settings: dict) -> dict:
    return {k: v for k, v in _settings(settings).items() if k not in IMAGE_LIST_KEYS}


def _keep_progress_of(shard_dir: Path, ids: set[str]) -> int:
    """Rewrite the progress log with the records of `ids` only and delete every other image."""
    progress_path = shard_dir / "progress.jsonl"
    kept_records = []
    for record in _progress_records(progress_path):
        rows = [row for row in record["rows"] if row["id"] in ids]
        if rows:
            share = len(rows) / len(record["rows"])  # the render time of the images kept
            sizes = record.get("bytes", {})  # absent in records older than the size check
            kept_records.append({"rows": rows, "bytes": {r["id"]: sizes[r["id"]] for r in rows if r["id"] in sizes},
                                 "seconds": round(float(record.get("seconds", 0.0)) * share, 4)})
    kept = {row["id"] for record in kept_records for row in record["rows"]}
    with io.atomic_path(progress_path) as tmp:
        tmp.write_text("".join(json.dumps(record) + "\n" for record in kept_records))
    for image in shard_dir.glob("*.jpg"):
        if image.stem not in kept:
            image.unlink()
    return len(kept)


def run_shard(*, items: list[ImageSpec], render, prepare, batch_size: int, out_manifest: str, save_size: int,
              jpeg_quality: int, desc: str, settings: dict, max_batches: int | None = None,
              device: str = "cpu", cost_settings: dict | None = None) -> pd.DataFrame | None:
    """Generate `items` in fixed batches with `render(batch) -> (uint8 images, manifest rows)`,
    resuming from the shard's progress log; `prepare()` (model loading) runs only if work is left.
    Writes the images and, once all are on disk, the manifest. `max_batches` stops early (tests).
    Progress made under different `settings` (the strategy changed in config) is discarded;
    `cost_settings` (what the speed depends on) are recorded in stats.json beside the seconds."""
    from tqdm import tqdm

    out_manifest = Path(out_manifest)
    shard_dir = out_manifest.parent
    shard_dir.mkdir(parents=True, exist_ok=True)
    progress_path = shard_dir / "progress.jsonl"
    _reconcile_settings(shard_dir, {**settings, "batch_size": batch_size, "save_size": save_size,
                                    "jpeg_quality": jpeg_quality}, [s.id for s in items],
                        {"threads": torch_threads(), "device": str(device)})
    done = read_progress(progress_path)
    # The images left, in plan order, in batches: after a kill these are whole batches of the
    # uninterrupted run (progress is recorded per batch), so a resumed shard renders the same batches.
    missing = [s for s in items if s.id not in done]
    todo = [missing[i:i + batch_size] for i in range(0, len(missing), batch_size)]
    n_done = len(items) - len(missing)
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
                t_batch = time.time()
                images, rows = render(batch)
                for s, row in zip(batch, rows):
                    # Paths are relative to the split folder (where the gathered manifest lives).
                    row.update(id=s.id, path=f"{shard_dir.name}/{s.id}.jpg", wnid=s.wnid, k=s.k, source=s.source)
                writer.submit(images, [shard_dir / f"{s.id}.jpg" for s in batch], rows, jpeg_quality, save_size,
                              time.time() - t_batch)
                bar.update(len(batch))
        finally:
            writer.close()
            bar.close()
        if max_batches is not None and len(todo) > max_batches:
            return None
    return _write_manifest(items, shard_dir, out_manifest, n_done, start, device, cost_settings or {})


def _write_manifest(items: list[ImageSpec], shard_dir: Path, out_manifest: Path, n_done: int,
                    start: float, device: str, cost_settings: dict) -> pd.DataFrame:
    """The shard's manifest and stats, once every image of the plan is recorded and on disk."""
    done = read_progress(shard_dir / "progress.jsonl")
    missing = [s.id for s in items if s.id not in done]
    if missing:
        raise GenerationError(f"shard {shard_dir} is missing {len(missing)} images after generation, or they "
                              f"differ from what was recorded (first: {missing[0]}); re-run the job to redo them")
    rows = [done[s.id] for s in items]
    optional = [c for c in OPTIONAL_MANIFEST_COLUMNS if any(c in row for row in rows)]
    manifest = pd.DataFrame(rows, columns=MANIFEST_COLUMNS + optional)
    io.write_csv(out_manifest, manifest)
    regenerated = int((manifest["attempt"] > 0).sum())
    elapsed = time.time() - start
    # Speed over every run that made the shard's images: a resumed shard is not "instant".
    seconds = generation_seconds(shard_dir / "progress.jsonl")
    io.write_json(shard_dir / "stats.json", {"images": len(manifest), "regenerated": regenerated,
                                             "generated_now": len(items) - n_done, "seconds": round(seconds, 2),
                                             "seconds_per_image": round(seconds / max(len(manifest), 1), 4),
                                             "wall_seconds_this_run": round(elapsed, 2),
                                             "threads": torch_threads(), "device": device,
                                             "settings": cost_settings})
    print(f"[generate] {shard_dir}: {len(manifest)} images, {regenerated} regenerated, {elapsed:.1f} s",
          file=sys.stderr)
    return manifest


def torch_threads() -> int | None:
    """The CPU threads the job ran with (provenance: CPU kernels round differently with other counts)."""
    import torch

    return torch.get_num_threads()


def generate_shard(*, strategy: str, split: str, spec: StrategySpec | Mapping[str, Any], wnids: list[str],
                   n_shards: int, shard: int, global_seed: int, out_manifest: str, real_index: str | None = None,
                   device: str | None = None, max_batches: int | None = None) -> pd.DataFrame | None:
    """One planned shard of any strategy kind (see RENDERERS). `spec` is a StrategySpec or the
    strategy's JSON as the CLI receives it."""
    import torch

    if not isinstance(spec, StrategySpec):
        spec = StrategySpec.from_dict(spec)
    if spec.kind not in RENDERERS:
        raise GenerationError(f"strategy {strategy}: unknown kind '{spec.kind}' (one of {sorted(RENDERERS)})")
    device = device or ("cuda" if torch.cuda.is_available() else "cpu")
    items = plan_shard(spec.kind, strategy, split, spec, wnids, n_shards, shard, global_seed, real_index)
    renderer = RENDERERS[spec.kind](spec, sorted(wnids), device)
    if hasattr(renderer, "plan"):  # inputs read for this shard's images alone (per-image captions)
        renderer.plan(items)
    # A renderer adds what its images depend on beyond the strategy's keys (resolved defaults,
    # preprocessing), so that a shard begun under an older renderer starts afresh.
    settings = {**spec.settings(), **renderer.settings()}
    cost = {key: value for key, value in spec.to_dict().items() if key in COST_KEYS}
    return run_shard(items=items, render=renderer, prepare=renderer.prepare, batch_size=spec.batch_size,
                     settings=settings, out_manifest=out_manifest, save_size=spec.save_size,
                     jpeg_quality=spec.jpeg_quality, max_batches=max_batches, device=device, cost_settings=cost,
                     desc=f"{strategy}/{split} shard {shard + 1}/{n_shards} ({device})")


def generate_class_label_shard(*, strategy: str, split: str, spec: Mapping[str, Any], wnids: list[str],
                               per_class: int, n_shards: int, shard: int, global_seed: int, out_manifest: str,
                               device: str | None = None, max_batches: int | None = None) -> pd.DataFrame | None:
    """generate_shard for a class-label strategy given its per-class count."""
    spec = {"kind": "class_labels", **spec, "per_class": per_class}
    return generate_shard(strategy=strategy, split=split, spec=spec, wnids=wnids, n_shards=n_shards, shard=shard,
                          global_seed=global_seed, out_manifest=out_manifest, device=device, max_batches=max_batches)


def _columns_of(manifests: list[str]) -> list[str]:
    """The union of the manifests' header columns, in order of first appearance (a shard made
    by an older version may lack a newer column: its rows get it empty, as a concatenation would)."""
    import csv

    columns: dict[str, None] = {}
    for path in manifests:
        with open(path, newline="") as f:
            columns.update(dict.fromkeys(next(csv.reader(f), [])))
    return list(columns)


def _duplicate_ids(manifests: list[str], hashes: np.ndarray) -> list[str]:
    """The ids behind repeated hashes (read again only when there are some)."""
    repeated = set(pd.Series(hashes)[pd.Series(hashes).duplicated()])
    found = []
    for path in manifests:
        ids = pd.read_csv(path, usecols=["id"], keep_default_na=False)["id"].astype(str)
        found += [i for i, h in zip(ids, pd.util.hash_array(ids.to_numpy(dtype=object))) if h in repeated]
    return sorted({i for i in found if found.count(i) > 1})[:3]


def gather_manifests(shard_manifests: Iterable[str], out_manifest: str, out_summary: str | None = None) -> dict:
    """Concatenate shard manifests (already relative to the split folder) into one, a shard at a
    time (an ImageNet-1K set is 1.3M rows: memory holds one shard and 8 bytes an image), and
    summarise the dataset: images per class, regenerations and why, generation time."""
    shard_manifests = list(shard_manifests)
    columns = _columns_of(shard_manifests)
    hashes, counts, because = [], pd.Series(dtype="int64"), pd.Series(dtype="int64")
    with io.atomic_path(out_manifest) as tmp, open(tmp, "w", newline="") as out:
        for i, path in enumerate(shard_manifests):
            frame = io.read_csv(path).reindex(columns=columns, fill_value="")
            frame.to_csv(out, index=False, header=i == 0)
            hashes.append(pd.util.hash_array(frame["id"].astype(str).to_numpy(dtype=object)))
            counts = counts.add(frame.groupby("wnid").size(), fill_value=0)
            regenerated = frame.loc[pd.to_numeric(frame["attempt"]) > 0, "regenerated_because"]
            because = because.add(regenerated.value_counts(), fill_value=0)
        hashes = np.concatenate(hashes) if hashes else np.zeros(0, dtype=np.uint64)
        if pd.Series(hashes).duplicated().any():
            raise GenerationError(f"duplicate image ids across shards: {_duplicate_ids(shard_manifests, hashes)}")
    counts, because = counts.astype(int).sort_index(), because.astype(int).sort_values(ascending=False, kind="stable")
    stats = [io.read_json(path) for p in shard_manifests if (path := Path(p).with_name("stats.json")).exists()]
    seconds = sum(s["seconds"] for s in stats)
    devices = sorted({str(s.get("device", "")) for s in stats} - {""})
    images, regenerated = int(counts.sum()), int(because.sum())
    summary = {"images": images, "classes": len(counts), "shards": len(shard_manifests),
               "per_class": {"min": int(counts.min()), "max": int(counts.max()),
                             "counts": {w: int(n) for w, n in counts.items()}},
               "regenerated": regenerated, "regenerated_because": {k: int(v) for k, v in because.items()},
               "generation_seconds": round(seconds, 1),
               "images_per_second": round(images / seconds, 3) if seconds else None,
               # the cost of the set as made: hours of generation on its devices (GPU-hours when
               # every shard ran on a GPU), and the settings the speed depends on
               "devices": devices, "generation_hours": round(seconds / 3600, 6),
               "gpu_hours": round(seconds / 3600, 6) if devices and all(d.startswith("cuda") for d in devices)
               else None, "settings": next((s["settings"] for s in stats if s.get("settings")), {})}
    if out_summary:
        io.write_json(out_summary, summary)
    print(f"[gather] {out_manifest}: {images} images, {len(counts)} classes "
          f"({counts.min()}-{counts.max()} per class), {regenerated} regenerated, "
          f"{seconds:.0f} s of generation", file=sys.stderr)
    return summary
