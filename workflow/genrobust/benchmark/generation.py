"""Generation throughput, and where the time goes (text encoding, UNet loop, VAE decode, ...).

The paper's datasets are millions of Stable Diffusion v1.5 images, so images/s on the target GPU
decides the compute budget. The real weights cannot be downloaded everywhere, but throughput does
not depend on the weights: genrobust.benchmark.pipelines builds the full-size architectures
(genrobust.architectures) with random weights, directly on the device in the target dtype.
`benchmark_generation` then times whole pipeline calls, the way generate.py makes them
(per-image generators, output_type="np", uint8 conversion), and one extra instrumented batch in
which every component call is timed (synchronised around the call): text/image encoding, UNet
denoising loop, scheduler steps, VAE decode, postprocess, other.

Command line: `python -m genrobust benchmark-generation --device cuda --dtype float16
--batch-size 16 32`; `--tiny MODEL_DIR` times a tiny demo pipeline folder instead. The optional
rule benchmark_generation (config `benchmarks: generation:`) runs it on a cluster GPU.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import time
from collections import defaultdict
from typing import Iterator

import numpy as np

from . import system
from ..generate.speedups import apply_cache, cache_settings, fuse_qkv_projections, speedup_label
from ..kinds import STRATEGIES
from .pipelines import KIND_OF_PIPELINE, build_dit_random, build_sd15_random, count_parameters, load_tiny, pipeline_kind
from .report import format_result, format_summary
from .runner import run_measurement
from .system import BenchmarkError

NAME = "benchmark-generation"

# Breakdown components, in pipeline order: (key, printed label).
COMPONENTS = [
    ("text_encoding", "text encoding (CLIP text encoder)"),
    ("image_preprocess", "image preprocessing"),
    ("image_encoding", "image encoding (CLIP image encoder)"),
    ("vae_encode", "VAE encode"),
    ("unet_denoising", "UNet denoising loop"),
    ("scheduler_step", "scheduler steps"),
    ("vae_decode", "VAE decode"),
    ("postprocess", "image postprocess (to numpy, uint8)"),
]

PROMPT_NAMES = ["tench", "goldfish", "great white shark", "tiger shark", "hammerhead shark", "electric ray",
                "stingray", "rooster", "hen", "ostrich", "brambling", "goldfinch", "house finch", "junco",
                "indigo bunting", "American robin"]


# ----------------------------------------------------------------------------- instrumentation


class _ComponentTimer:
    """Wraps component methods on instances (so compiled modules keep working) and sums their
    wall time, synchronising the GPU before and after each call."""

    def __init__(self, device):
        self.device = device
        self.seconds: dict[str, float] = defaultdict(float)
        self.calls: dict[str, int] = defaultdict(int)
        self._undo: list = []

    def wrap(self, obj, attr: str, key: str) -> None:
        if obj is None or not hasattr(obj, attr):
            return
        original = getattr(obj, attr)
        had = attr in vars(obj)
        previous = vars(obj).get(attr)

        def timed(*args, **kwargs):
            system.sync(self.device)
            start = time.perf_counter()
            out = original(*args, **kwargs)
            system.sync(self.device)
            self.seconds[key] += time.perf_counter() - start
            self.calls[key] += 1
            return out

        object.__setattr__(obj, attr, timed)
        self._undo.append((obj, attr, had, previous))

    def restore(self) -> None:
        for obj, attr, had, previous in reversed(self._undo):
            if had:
                object.__setattr__(obj, attr, previous)
            else:
                object.__delattr__(obj, attr)
        self._undo.clear()


@contextlib.contextmanager
def _instrumented(pipe, device) -> Iterator[_ComponentTimer]:
    timer = _ComponentTimer(device)
    components = pipe.components
    try:
        timer.wrap(components.get("text_encoder"), "forward", "text_encoding")
        timer.wrap(components.get("image_encoder"), "forward", "image_encoding")
        timer.wrap(components.get("feature_extractor"), "preprocess", "image_preprocess")
        timer.wrap(getattr(pipe, "image_processor", None), "preprocess", "image_preprocess")
        timer.wrap(components.get("vae"), "encode", "vae_encode")
        timer.wrap(components.get("unet") or components.get("transformer"), "forward", "unet_denoising")
        timer.wrap(components.get("scheduler"), "step", "scheduler_step")
        timer.wrap(components.get("vae"), "decode", "vae_decode")
        timer.wrap(getattr(pipe, "image_processor", None), "postprocess", "postprocess")
        yield timer
    finally:
        timer.restore()


# ----------------------------------------------------------------------------- one pipeline call


def _call_kwargs(kind: str, batch_size: int, steps: int, guidance: float, height: int, width: int,
                 strength: float) -> dict:
    from .synthetic import source_images

    kwargs: dict = dict(num_inference_steps=steps, guidance_scale=guidance, output_type="np")
    strategy = STRATEGIES[kind]
    if strategy.denoiser == "transformer":  # DiT: class ids; its image size is the model's
        return {**kwargs, "class_labels": [(37 * i) % 1000 for i in range(batch_size)]}
    if strategy.prompted:
        kwargs["prompt"] = [f"a photo of a {PROMPT_NAMES[i % len(PROMPT_NAMES)]}." for i in range(batch_size)]
    if strategy.from_real_images:
        kwargs["image"] = source_images(batch_size, height, width)
    if _noises_sources(kind):  # img2img: the output keeps the source images' size
        kwargs["strength"] = strength
    else:
        kwargs.update(height=height, width=width)
    return kwargs


def _noises_sources(kind: str) -> bool:
    """Whether the kind starts from its source images noised to a `strength` (img2img)."""
    return "strength" in STRATEGIES[kind].keys


def _to_uint8(images) -> tuple[list, int]:
    """What generate._generate_with_retries does with each image; also counts defective ones."""
    from ..generate import is_defective

    out, defective = [], 0
    with np.errstate(invalid="ignore"):
        for image in images:
            defective += bool(is_defective(image))
            out.append((np.clip(np.nan_to_num(image), 0, 1) * 255).round().astype(np.uint8))
    return out, defective


def _jpeg_ms_per_image(images: list, save_size: int, quality: int) -> float:
    """CPU cost of the writer thread per image (resize to save_size, JPEG encode), in ms."""
    import io as _io

    from PIL import Image

    start = time.perf_counter()
    for image in images:
        pil = Image.fromarray(image)
        if pil.size != (save_size, save_size):
            pil = pil.resize((save_size, save_size), Image.Resampling.BICUBIC)
        pil.save(_io.BytesIO(), format="JPEG", quality=quality)
    return 1000 * (time.perf_counter() - start) / max(len(images), 1)


def _use_sdpa(module) -> list[str]:
    """Make every attention processor AttnProcessor2_0 (fused SDPA); returns the processor names."""
    import torch

    if module is None or not hasattr(module, "attn_processors"):
        return []
    from diffusers.models.attention_processor import AttnProcessor, AttnProcessor2_0

    processors = module.attn_processors
    if hasattr(torch.nn.functional, "scaled_dot_product_attention") and any(
            type(p) is AttnProcessor for p in processors.values()):
        module.set_attn_processor(AttnProcessor2_0())
        processors = module.attn_processors
    return sorted({type(p).__name__ for p in processors.values()})


# ----------------------------------------------------------------------------- timing


def _prepare(pipe, kind: str, compile_unet: bool, channels_last: bool, compile_mode: str) -> dict:
    """SDPA attention, channels_last, torch.compile as generate.py sets them; returns the settings
    that describe the pipeline."""
    import torch

    denoiser_name = STRATEGIES[kind].denoiser  # the pipeline's attribute: unet or transformer
    denoiser = getattr(pipe, denoiser_name)
    is_compiled = hasattr(denoiser, "_orig_mod")
    processors = {"unet": _use_sdpa(getattr(denoiser, "_orig_mod", denoiser)), "vae": _use_sdpa(pipe.vae)}
    if channels_last:
        if denoiser_name != "transformer":  # a transformer has no convolutions to reorder
            denoiser.to(memory_format=torch.channels_last)
        pipe.vae.to(memory_format=torch.channels_last)
    if compile_unet and not is_compiled:
        setattr(pipe, denoiser_name, torch.compile(denoiser, mode=compile_mode, fullgraph=True))
    pipe.set_progress_bar_config(disable=True)
    device = pipe._execution_device
    return {
        "kind": kind, "pipeline": type(pipe).__name__, "device": str(device),
        "device_name": system.device_name(device), **system.versions("diffusers", "transformers"),
        "dtype": str(getattr(pipe, denoiser_name).dtype).replace("torch.", ""),
        "compile_unet": bool(compile_unet or is_compiled), "compile_mode": compile_mode if compile_unet else None,
        "channels_last": channels_last, "scheduler": type(pipe.scheduler).__name__,
        "attention_processors": processors,
        "parameters": {name: count_parameters(module) for name, module in pipe.components.items()
                       if isinstance(module, torch.nn.Module)},
        "cudnn_benchmark": torch.backends.cudnn.benchmark, "torch_threads": torch.get_num_threads(),
        "cpu_count": os.cpu_count(), "load_average_1min": system.load_average(),
    }


def _breakdown(timer: _ComponentTimer, profiled_s: float, profile_batches: int) -> dict:
    """Seconds per batch and share of the instrumented batches, per component, then the rest."""
    breakdown = {}
    for key, label in COMPONENTS:
        if key in timer.seconds:
            s = timer.seconds[key] / profile_batches
            breakdown[key] = {"label": label, "s_per_batch": s, "percent": 100 * s * profile_batches / profiled_s,
                              "calls_per_batch": timer.calls.get(key, 0) / profile_batches}
    other = (profiled_s - sum(timer.seconds.values())) / profile_batches
    breakdown["other"] = {"label": "other (latents, guidance arithmetic, Python)", "s_per_batch": other,
                          "percent": 100 * other * profile_batches / profiled_s, "calls_per_batch": None}
    return breakdown


def _profile(pipe, device, run_batch, first_index: int, profile_batches: int) -> tuple[float, dict]:
    """Seconds per instrumented batch, and the breakdown of where they went."""
    profiled_s = 0.0
    with _instrumented(pipe, device) as timer:
        for b in range(profile_batches):
            system.sync(device)
            start = time.perf_counter()
            _, _, convert_s = run_batch(first_index + b)
            system.sync(device)
            profiled_s += time.perf_counter() - start
            timer.seconds["postprocess"] += convert_s  # generate.py's uint8 conversion after the call
    return profiled_s, _breakdown(timer, profiled_s, profile_batches)


def _apply_speedups(pipe, fuse_qkv: bool, cache: dict | None):
    """The speed-ups on `pipe`, once (a sweep over batch sizes reuses it); returns the cache's reseed."""
    label = speedup_label(fuse_qkv, cache)
    applied = getattr(pipe, "_genrobust_speedups", None)
    if applied is not None:
        if applied[0] != label:
            raise BenchmarkError(f"this pipeline already runs with speed-ups '{applied[0]}'; build a fresh one "
                                 f"to time '{label}'")
        return applied[1]
    if fuse_qkv:
        fuse_qkv_projections(pipe)
    reseed = apply_cache(pipe, cache)
    pipe._genrobust_speedups = (label, reseed)
    return reseed


def _peak_memory(device) -> dict:
    import torch

    if device.type != "cuda":
        return {}
    return {"peak_gpu_memory_allocated_gib": torch.cuda.max_memory_allocated(device) / 2**30,
            "peak_gpu_memory_reserved_gib": torch.cuda.max_memory_reserved(device) / 2**30,
            "gpu_memory_total_gib": torch.cuda.get_device_properties(device).total_memory / 2**30}


def _timed_batches(run_batch, device, n_batches: int) -> tuple[list[float], int, list]:
    """Seconds of each of n_batches whole pipeline calls (the GPU synchronised at batch ends only),
    the defective images among them, and the last batch's images."""
    batch_times, defective, images = [], 0, []
    for b in range(n_batches):
        system.sync(device)
        start = time.perf_counter()
        images, bad, _ = run_batch(b)
        system.sync(device)
        batch_times.append(time.perf_counter() - start)
        defective += bad
    return batch_times, defective, images


def benchmark_generation(pipe, batch_size: int, steps: int, guidance: float, height: int, width: int,
                         n_batches: int, warmup: int = 1, compile_unet: bool = False, channels_last: bool = True,
                         *, compile_mode: str = "max-autotune", strength: float = 1.0, profile_batches: int = 1,
                         save_size: int = 256, jpeg_quality: int = 95, seed: int = 0, fuse_qkv: bool = False,
                         cache: dict | None = None) -> dict:
    """Images/s of `pipe` over n_batches batches after `warmup` batches, and the time per component.

    Timed batches are whole pipeline calls as generate.py makes them (per-image generators,
    output_type="np", then uint8 conversion), with the GPU synchronised only at batch ends. The
    breakdown comes from `profile_batches` further batches in which every component call is timed
    with the GPU synchronised around it ("other" is the rest: latents, CFG arithmetic, Python).
    The kind (text-to-image, img2img, image variation, DiT) follows from the pipeline class.
    `fuse_qkv` and `cache` ({method: deepcache|tomesd, options}) are the strategies' speed-ups,
    applied as generation applies them (generate/speedups.py).
    """
    import diffusers
    import torch

    if batch_size < 1 or n_batches < 1 or steps < 1 or warmup < 0 or profile_batches < 1:
        raise BenchmarkError("batch size, steps, n_batches and profile_batches must be at least 1 (warmup >= 0)")
    if cache and compile_unet:
        raise BenchmarkError("a cache replaces the UNet's forward functions, which --compile would compile past; "
                             "time them apart")
    kind = pipeline_kind(pipe)
    device = pipe._execution_device
    reseed_cache = _apply_speedups(pipe, fuse_qkv, cache)  # before _prepare, which compiles
    settings = _prepare(pipe, kind, compile_unet, channels_last, compile_mode)
    settings.update(batch_size=batch_size, steps=steps, guidance=guidance, height=height, width=width,
                    n_batches=n_batches, warmup=warmup, strength=strength if _noises_sources(kind) else None,
                    fuse_qkv=bool(fuse_qkv), cache=cache_settings(cache),
                    speedups=speedup_label(fuse_qkv, cache))
    kwargs = _call_kwargs(kind, batch_size, steps, guidance, height, width, strength)
    gen_device = "cuda" if device.type == "cuda" else "cpu"
    # diffusers_logging warnings (e.g. about random configs) would clutter every batch.
    diffusers.utils.logging.set_verbosity_error()

    def run_batch(batch_index: int):
        generators = [torch.Generator(gen_device).manual_seed(seed + 100_000 * batch_index + i)
                      for i in range(batch_size)]
        reseed_cache(seed + 100_000 * batch_index)
        with torch.no_grad():
            out = pipe(generator=generators, **kwargs)
        start = time.perf_counter()
        images, bad = _to_uint8(out.images)
        return images, bad, time.perf_counter() - start

    start = time.perf_counter()
    for b in range(warmup):
        run_batch(-1 - b)
    system.sync(device)
    warmup_s = time.perf_counter() - start

    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    batch_times, defective, images = _timed_batches(run_batch, device, n_batches)
    peak = _peak_memory(device)
    total = sum(batch_times)
    if images:  # the real output size (DiT and img2img take it from the model / the source images)
        settings["height"], settings["width"] = int(images[0].shape[0]), int(images[0].shape[1])
    profiled_s, breakdown = _profile(pipe, device, run_batch, n_batches, profile_batches)
    unet = breakdown.get("unet_denoising")
    unet_ms = 1000 * unet["s_per_batch"] / unet["calls_per_batch"] if unet and unet["calls_per_batch"] else None
    return {
        "settings": settings,
        "images_per_s": batch_size * n_batches / total,
        "s_per_batch": total / n_batches,
        "s_per_image": total / (batch_size * n_batches),
        "batch_times_s": batch_times,
        "warmup_s": warmup_s,
        "profiled_s_per_batch": profiled_s / profile_batches,
        "breakdown": breakdown,
        "unet_ms_per_forward": unet_ms,
        "defective_images": defective,
        "images_timed": batch_size * n_batches,
        "writer_jpeg_ms_per_image": _jpeg_ms_per_image(images[:8], save_size, jpeg_quality),
        "save_size": save_size,
        **peak,
        "random_weights": True,
    }


def benchmark_tiny(model_dir: str | os.PathLike, strategy_kind: str, batch_size: int, steps: int, size: int,
                   *, n_batches: int = 3, warmup: int = 1, guidance: float = 7.5, strength: float = 1.0,
                   device: str = "cpu", pipe=None, fuse_qkv: bool = False, cache: dict | None = None) -> dict:
    """Images/s of a tiny demo pipeline folder, loaded the way generate.py loads a model.

    strategy_kind: class_labels or img2img (an SD folder), image_variation (an image_variation
    folder) or class_conditional (a DiT folder; its image size is fixed by the model). `pipe`: the
    folder already loaded with load_tiny (to time several batch sizes without reloading).
    """
    if pipe is None:
        pipe = load_tiny(model_dir, strategy_kind, device)
    elif pipeline_kind(pipe) != strategy_kind:
        raise BenchmarkError(f"a {type(pipe).__name__} is not a {strategy_kind} pipeline")
    result = benchmark_generation(pipe, batch_size, steps, guidance, size, size, n_batches, warmup=warmup,
                                  compile_unet=False, channels_last=False, strength=strength, fuse_qkv=fuse_qkv,
                                  cache=cache)
    result["settings"]["model_dir"] = str(model_dir)
    result["random_weights"] = "tiny demo model"
    return result


# ----------------------------------------------------------------------------- command line


def build_parser(add_help: bool = True) -> argparse.ArgumentParser:
    """The benchmark's options (add_help=False to reuse it as a parent of a CLI subcommand)."""
    p = argparse.ArgumentParser(prog=NAME, description=__doc__.splitlines()[0], add_help=add_help)
    p.add_argument("--device", default=None, help="cuda or cpu (default: cuda if available)")
    p.add_argument("--dtype", default="float16", choices=["float16", "bfloat16", "float32"])
    p.add_argument("--kind", default="class_labels", choices=sorted(KIND_OF_PIPELINE.values()),
                   help="strategy kind: class_labels (SD text-to-image), img2img, image_variation, "
                        "class_conditional (DiT-XL/2)")
    p.add_argument("--batch-size", type=int, nargs="+", default=[16], help="one or more (a sweep)")
    p.add_argument("--steps", type=int, default=50)
    p.add_argument("--guidance", type=float, default=7.5)
    p.add_argument("--strength", type=float, default=1.0, help="img2img strength")
    p.add_argument("--size", type=int, default=512, help="image height = width in pixels")
    p.add_argument("--scheduler", default=None, help="diffusers scheduler class "
                   "(default: PNDMScheduler; DDIMScheduler for class_conditional)")
    p.add_argument("--n-batches", type=int, default=5)
    p.add_argument("--warmup", type=int, default=1)
    p.add_argument("--compile", action="store_true", help="torch.compile the UNet (fullgraph)")
    p.add_argument("--compile-mode", default="max-autotune",
                   help="torch.compile mode (generate.py uses max-autotune; it compiles for minutes)")
    p.add_argument("--no-channels-last", action="store_true")
    p.add_argument("--fuse-qkv", action="store_true", help="fuse the attention QKV projections (strategies' fuse_qkv)")
    p.add_argument("--cache", type=json.loads, default=None, metavar="JSON",
                   help='feature caching as a strategy\'s cache: key, e.g. \'{"method": "deepcache", "interval": 3}\' '
                        'or \'{"method": "tomesd", "ratio": 0.5}\'')
    p.add_argument("--cudnn-benchmark", action="store_true", help="torch.backends.cudnn.benchmark = True")
    p.add_argument("--tokenizer", default=None, help="a CLIP tokenizer folder (default: rebuilt from open_clip)")
    p.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    p.add_argument("--tiny", metavar="MODEL_DIR", default=None,
                   help="time this tiny demo pipeline folder instead (float32, CPU unless --device)")
    p.add_argument("--options", type=json.loads, default=None, metavar="JSON",
                   help="options as a JSON mapping of option names (batch_size, steps, ...) to values, "
                        "as config 'benchmarks: generation:' holds them; they override the flags")
    p.add_argument("--json-out", default=None, help="write all results as JSON here")
    return p


def _run_tiny(args, results: list) -> None:
    device = str(system.resolve_device(args.device or "cpu"))
    system.warn_if_busy(device, NAME)
    pipe = load_tiny(args.tiny, args.kind, device)
    for batch_size in args.batch_size:
        results.append(benchmark_tiny(args.tiny, args.kind, batch_size, args.steps, args.size,
                                      n_batches=args.n_batches, warmup=args.warmup, guidance=args.guidance,
                                      strength=args.strength, device=device, pipe=pipe, fuse_qkv=args.fuse_qkv,
                                      cache=args.cache))
        print(format_result(results[-1]), flush=True)


def _run_full_size(args, results: list) -> None:
    """Appends to `results` as it goes (what ran before an out-of-memory batch size still counts)."""
    import torch

    device = str(system.resolve_device(args.device))
    if device == "cpu" and args.dtype == "float16":
        system.log(NAME, "float16 on the CPU is very slow; consider --dtype float32 or bfloat16")
    system.warn_if_busy(device, NAME)
    start = time.perf_counter()
    if STRATEGIES[args.kind].denoiser == "transformer":
        pipe = build_dit_random(device, args.dtype, args.scheduler or "DDIMScheduler")
    else:
        pipe = build_sd15_random(device, args.dtype, args.scheduler or "PNDMScheduler", kind=args.kind,
                                 tokenizer_dir=args.tokenizer)
    system.log(NAME, f"built {type(pipe).__name__} (random weights) on {device} in {args.dtype} in "
               f"{time.perf_counter() - start:.1f} s")
    for batch_size in args.batch_size:
        results.append(benchmark_generation(
            pipe, batch_size, args.steps, args.guidance, args.size, args.size, args.n_batches,
            warmup=args.warmup, compile_unet=args.compile, channels_last=not args.no_channels_last,
            compile_mode=args.compile_mode, strength=args.strength, fuse_qkv=args.fuse_qkv, cache=args.cache))
        print(format_result(results[-1]), flush=True)
        if torch.device(device).type == "cuda":
            torch.cuda.empty_cache()


def _measure(args: argparse.Namespace, results: list[dict]) -> None:
    import torch

    if args.cudnn_benchmark:
        torch.backends.cudnn.benchmark = True
    (_run_tiny if args.tiny else _run_full_size)(args, results)


def run(args: argparse.Namespace) -> int:
    """Run the benchmark for parsed options (build_parser); prints the tables, returns an exit code."""
    from ..generate import GenerationError

    return run_measurement(NAME, args, build_parser(), _measure, format_summary, errors=(GenerationError,),
                           oom_hint="try a smaller --batch-size")
