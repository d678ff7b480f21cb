"""Generation throughput, and where the time goes (text encoding, UNet loop, VAE decode, ...).

The paper's datasets are millions of Stable Diffusion v1.5 images, so images/s on the target GPU
decides the compute budget. The real weights cannot be downloaded everywhere, but throughput does
not depend on the weights: `build_sd15_random` builds the full-size SD v1.5 architecture (UNet,
VAE, CLIP ViT-L/14 text encoder, the real CLIP tokenizer) with random weights, directly on the
device in the target dtype. `benchmark_generation` then times whole pipeline calls, the way
`generate.py` makes them (per-image generators, output_type="np", uint8 conversion), and one
extra instrumented batch in which every component call is timed (synchronised around the call):
text/image encoding, UNet denoising loop, scheduler steps, VAE decode, postprocess, other.

Command line: `python -m genrobust.benchmark --device cuda --dtype float16 --batch-size 16 32`
(or workflow/scripts/benchmark_generation.py); `--tiny MODEL_DIR` times a tiny demo pipeline.
"""

from __future__ import annotations

import argparse
import contextlib
import inspect
import os
import platform
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path
from typing import Iterator

import numpy as np

# Strategy kind -> diffusers pipeline class (the same names as config strategies.*.kind/pipeline).
KIND_PIPELINES = {
    "class_labels": "StableDiffusionPipeline",
    "img2img": "StableDiffusionImg2ImgPipeline",
    "image_variation": "StableDiffusionImageVariationPipeline",
    "class_conditional": "DiTPipeline",
}
PIPELINE_KINDS = {v: k for k, v in KIND_PIPELINES.items()}

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


class BenchmarkError(Exception):
    """A problem the user must fix (no CUDA, unknown dtype, a model folder of the wrong kind)."""


# ----------------------------------------------------------------------------- building


def _torch_dtype(dtype):
    import torch

    if isinstance(dtype, torch.dtype):
        return dtype
    value = getattr(torch, str(dtype), None)
    if not isinstance(value, torch.dtype) or not value.is_floating_point:
        raise BenchmarkError(f"unknown floating dtype '{dtype}' (float16, bfloat16 or float32)")
    return value


@contextlib.contextmanager
def _build_on(device, dtype) -> Iterator[None]:
    """Create parameters directly on `device` in `dtype` (no float32 copy on the CPU first)."""
    import torch

    old = torch.get_default_dtype()
    torch.set_default_dtype(_torch_dtype(dtype))
    try:
        with torch.device(device):
            yield
    finally:
        torch.set_default_dtype(old)


def _tokenizer(tokenizer_dir: str | os.PathLike | None):
    """The real-vocabulary CLIP tokenizer: from a folder (a tokenizer folder, or a pipeline folder
    holding tokenizer/), else rebuilt from open_clip's merges like demo.models.build_tokenizer."""
    from transformers import CLIPTokenizer

    from .demo.models import build_tokenizer

    if tokenizer_dir is not None:
        folder = Path(tokenizer_dir)
        if (folder / "tokenizer").is_dir():
            folder = folder / "tokenizer"
        if not (folder / "vocab.json").is_file():
            raise BenchmarkError(f"tokenizer folder '{tokenizer_dir}' has no vocab.json (nor tokenizer/vocab.json)")
        return CLIPTokenizer.from_pretrained(folder)
    with tempfile.TemporaryDirectory(prefix="genrobust-tokenizer-") as tmp:
        return CLIPTokenizer.from_pretrained(build_tokenizer(Path(tmp) / "tokenizer"))


def _scheduler(name: str, base_config: dict, base_class: str):
    import diffusers

    scheduler_class = getattr(diffusers, name or base_class, None)
    if scheduler_class is None or not hasattr(scheduler_class, "from_config"):
        raise BenchmarkError(f"unknown diffusers scheduler '{name}' (e.g. PNDMScheduler, DDIMScheduler, "
                             "DPMSolverMultistepScheduler)")
    config = dict(getattr(diffusers, base_class)(**base_config).config)
    if "clip_sample" in inspect.signature(scheduler_class.__init__).parameters:
        config.setdefault("clip_sample", False)  # as in SD v1.5's shipped scheduler_config.json
    # The same swap generate.load_pipeline makes: the shipped scheduler config, another class.
    return scheduler_class.from_config(config)


def sd15_vision_config() -> dict:
    """CLIPVisionConfig kwargs of CLIP ViT-L/14 (the image encoder of lambdalabs/sd-image-variations)."""
    return dict(hidden_size=1024, intermediate_size=4096, projection_dim=768, num_hidden_layers=24,
                num_attention_heads=16, image_size=224, patch_size=14, hidden_act="quick_gelu",
                layer_norm_eps=1e-5, attention_dropout=0.0, dropout=0.0, initializer_range=0.02,
                initializer_factor=1.0)


def dit_xl2_config() -> dict:
    """DiTTransformer2DModel config of facebook/DiT-XL-2-256 (learned sigma, 256 px images)."""
    return dict(sample_size=32, patch_size=2, in_channels=4, out_channels=8, num_layers=28,
                num_attention_heads=16, attention_head_dim=72, num_embeds_ada_norm=1000,
                norm_type="ada_norm_zero", norm_elementwise_affine=False, activation_fn="gelu-approximate")


def build_sd15_components(device="cpu", dtype="float32", *, kind: str = "class_labels") -> dict:
    """The random-weight networks of SD v1.5 (UNet, VAE and, by kind, the text or image encoder),
    created directly on `device` in `dtype`. device="meta" builds them without any memory."""
    import torch
    from diffusers import AutoencoderKL, UNet2DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModel, CLIPVisionConfig, CLIPVisionModelWithProjection

    from .demo.models import sd15_text_config, sd15_unet_config, sd15_vae_config

    if kind not in ("class_labels", "img2img", "image_variation"):
        raise BenchmarkError(f"kind '{kind}' is not a Stable Diffusion strategy (class_labels, img2img, "
                             "image_variation); class_conditional uses build_dit_random")
    device = torch.device(device)
    with _build_on(device, dtype):
        parts = {"unet": UNet2DConditionModel(**sd15_unet_config()), "vae": AutoencoderKL(**sd15_vae_config())}
        if kind == "image_variation":
            parts["image_encoder"] = CLIPVisionModelWithProjection(CLIPVisionConfig(**sd15_vision_config()))
        else:
            parts["text_encoder"] = CLIPTextModel(CLIPTextConfig(**sd15_text_config()))
    for module in parts.values():
        module.eval().requires_grad_(False)
    return parts


def build_sd15_random(device="cuda", dtype="float16", scheduler: str = "PNDMScheduler", *,
                      kind: str = "class_labels", tokenizer_dir: str | os.PathLike | None = None, seed: int = 0):
    """A Stable Diffusion v1.5 pipeline (full-size architecture, random weights, no hub access).

    kind 'class_labels' gives a StableDiffusionPipeline, 'img2img' the img2img pipeline on the same
    components, 'image_variation' a StableDiffusionImageVariationPipeline with a CLIP ViT-L/14 image
    encoder (the lambdalabs model's architecture). safety_checker is None.
    """
    import diffusers
    import torch
    from transformers import CLIPImageProcessor

    from .demo.models import sd15_scheduler_config

    if str(device).startswith("cuda") and not torch.cuda.is_available():
        raise BenchmarkError("--device cuda, but torch sees no CUDA device")
    torch.manual_seed(seed)
    parts = build_sd15_components(device, dtype, kind=kind)
    parts["scheduler"] = _scheduler(scheduler, sd15_scheduler_config(), "PNDMScheduler")
    pipeline_class = getattr(diffusers, KIND_PIPELINES[kind])
    if kind == "image_variation":
        feature_extractor = CLIPImageProcessor(
            do_resize=True, size={"shortest_edge": 224}, resample=3, do_center_crop=True,
            crop_size={"height": 224, "width": 224}, do_normalize=True, do_convert_rgb=True)
        pipe = pipeline_class(**parts, safety_checker=None, feature_extractor=feature_extractor,
                              requires_safety_checker=False)
    else:
        pipe = pipeline_class(**parts, tokenizer=_tokenizer(tokenizer_dir), safety_checker=None,
                              feature_extractor=None, image_encoder=None, requires_safety_checker=False)
    pipe.set_progress_bar_config(disable=True)
    return pipe


def build_dit_random(device="cuda", dtype="float16", scheduler: str = "DDIMScheduler", *, seed: int = 0):
    """A DiTPipeline with the DiT-XL/2-256 architecture (random weights) and the SD VAE."""
    import torch
    from diffusers import AutoencoderKL, DiTPipeline, DiTTransformer2DModel

    from .demo.models import sd15_vae_config

    if str(device).startswith("cuda") and not torch.cuda.is_available():
        raise BenchmarkError("--device cuda, but torch sees no CUDA device")
    torch.manual_seed(seed)
    with _build_on(torch.device(device), dtype):
        transformer = DiTTransformer2DModel(**dit_xl2_config())
        vae = AutoencoderKL(**sd15_vae_config())
    for module in (transformer, vae):
        module.eval().requires_grad_(False)
    base = dict(num_train_timesteps=1000, beta_start=0.0001, beta_end=0.02, beta_schedule="linear",
                clip_sample=False)
    pipe = DiTPipeline(transformer=transformer, vae=vae, scheduler=_scheduler(scheduler, base, "DDIMScheduler"))
    pipe.set_progress_bar_config(disable=True)
    return pipe


def count_parameters(module) -> int:
    return sum(p.numel() for p in module.parameters())


# ----------------------------------------------------------------------------- timing


class _ComponentTimer:
    """Wraps component methods on instances (so compiled modules keep working) and sums their
    wall time, synchronising the GPU before and after each call."""

    def __init__(self, device):
        import torch

        self.device = device
        self.cuda = torch.device(device).type == "cuda"
        self.seconds: dict[str, float] = defaultdict(float)
        self.calls: dict[str, int] = defaultdict(int)
        self._undo: list = []

    def sync(self) -> None:
        if self.cuda:
            import torch

            torch.cuda.synchronize(self.device)

    def wrap(self, obj, attr: str, key: str) -> None:
        if obj is None or not hasattr(obj, attr):
            return
        original = getattr(obj, attr)
        had = attr in vars(obj)
        previous = vars(obj).get(attr)

        def timed(*args, **kwargs):
            self.sync()
            start = time.perf_counter()
            out = original(*args, **kwargs)
            self.sync()
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


def _pipeline_kind(pipe) -> str:
    for cls in type(pipe).__mro__:
        if cls.__name__ in PIPELINE_KINDS:
            return PIPELINE_KINDS[cls.__name__]
    raise BenchmarkError(f"cannot benchmark a {type(pipe).__name__} (one of {sorted(PIPELINE_KINDS)})")


def _source_images(n: int, height: int, width: int, seed: int = 0) -> list:
    from PIL import Image

    rng = np.random.default_rng(seed)
    out = []
    for _ in range(n):
        yy, xx = np.mgrid[0:height, 0:width]
        base = np.stack([xx * 255 // max(width - 1, 1), yy * 255 // max(height - 1, 1),
                         np.full_like(xx, rng.integers(0, 256))], axis=-1)
        noise = rng.integers(-30, 30, base.shape)
        out.append(Image.fromarray(np.clip(base + noise, 0, 255).astype(np.uint8)))
    return out


def _call_kwargs(kind: str, batch_size: int, steps: int, guidance: float, height: int, width: int,
                 strength: float) -> dict:
    kwargs: dict = dict(num_inference_steps=steps, guidance_scale=guidance, output_type="np")
    prompts = [f"a photo of a {PROMPT_NAMES[i % len(PROMPT_NAMES)]}." for i in range(batch_size)]
    if kind == "class_labels":
        kwargs.update(prompt=prompts, height=height, width=width)
    elif kind == "img2img":
        kwargs.update(prompt=prompts, image=_source_images(batch_size, height, width), strength=strength)
    elif kind == "image_variation":
        kwargs.update(image=_source_images(batch_size, height, width), height=height, width=width)
    elif kind == "class_conditional":
        kwargs.update(class_labels=[(37 * i) % 1000 for i in range(batch_size)])
    return kwargs


def _to_uint8(images) -> tuple[list, int]:
    """What generate._generate_with_retries does with each image; also counts defective ones."""
    from .generate import is_defective

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


def _device_name(device) -> str:
    import torch

    device = torch.device(device)
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    return f"CPU ({platform.processor() or platform.machine()}, {torch.get_num_threads()} torch threads)"


def _load_average() -> float | None:
    try:
        return round(os.getloadavg()[0], 2)
    except (AttributeError, OSError):
        return None


def _warn_if_busy(device) -> None:
    """CPU timings on a busy machine are meaningless with more torch threads than free cores."""
    import torch

    load, cores = _load_average(), os.cpu_count() or 1
    if torch.device(device).type == "cpu" and load is not None and load + torch.get_num_threads() > cores + 0.5:
        print(f"[benchmark] the machine is busy (load {load:.1f} on {cores} cores): {torch.get_num_threads()} "
              "torch threads will contend with other processes and the numbers will be low and noisy; "
              "--threads 1 is steadier", file=sys.stderr)


def _versions() -> dict:
    import diffusers
    import torch
    import transformers

    return {"python": platform.python_version(), "torch": torch.__version__, "cuda": torch.version.cuda,
            "cudnn": torch.backends.cudnn.version() if torch.backends.cudnn.is_available() else None,
            "diffusers": diffusers.__version__, "transformers": transformers.__version__}


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


def benchmark_generation(pipe, batch_size: int, steps: int, guidance: float, height: int, width: int,
                         n_batches: int, warmup: int = 1, compile_unet: bool = False, channels_last: bool = True,
                         *, compile_mode: str = "max-autotune", strength: float = 1.0, profile_batches: int = 1,
                         save_size: int = 256, jpeg_quality: int = 95, seed: int = 0) -> dict:
    """Images/s of `pipe` over n_batches batches after `warmup` batches, and the time per component.

    Timed batches are whole pipeline calls as generate.py makes them (per-image generators,
    output_type="np", then uint8 conversion), with the GPU synchronised only at batch ends. The
    breakdown comes from `profile_batches` further batches in which every component call is timed
    with the GPU synchronised around it ("other" is the rest: latents, CFG arithmetic, Python).
    The kind (text-to-image, img2img, image variation, DiT) follows from the pipeline class.
    """
    import diffusers
    import torch

    if batch_size < 1 or n_batches < 1 or steps < 1 or warmup < 0 or profile_batches < 1:
        raise BenchmarkError("batch size, steps, n_batches and profile_batches must be at least 1 (warmup >= 0)")
    kind = _pipeline_kind(pipe)
    device = pipe._execution_device
    cuda = device.type == "cuda"
    denoiser_name = "transformer" if kind == "class_conditional" else "unet"
    denoiser = getattr(pipe, denoiser_name)
    is_compiled = hasattr(denoiser, "_orig_mod")
    processors = {"unet": _use_sdpa(getattr(denoiser, "_orig_mod", denoiser)), "vae": _use_sdpa(pipe.vae)}
    if channels_last:
        if kind != "class_conditional":  # a transformer has no convolutions to reorder
            denoiser.to(memory_format=torch.channels_last)
        pipe.vae.to(memory_format=torch.channels_last)
    if compile_unet and not is_compiled:
        setattr(pipe, denoiser_name, torch.compile(denoiser, mode=compile_mode, fullgraph=True))
    pipe.set_progress_bar_config(disable=True)
    dtype = getattr(pipe, denoiser_name).dtype
    settings = {
        "kind": kind, "pipeline": type(pipe).__name__, "device": str(device), "device_name": _device_name(device),
        **_versions(), "dtype": str(dtype).replace("torch.", ""), "batch_size": batch_size, "steps": steps,
        "guidance": guidance, "height": height, "width": width, "n_batches": n_batches, "warmup": warmup,
        "compile_unet": bool(compile_unet or is_compiled), "compile_mode": compile_mode if compile_unet else None,
        "channels_last": channels_last, "scheduler": type(pipe.scheduler).__name__,
        "attention_processors": processors, "strength": strength if kind == "img2img" else None,
        "parameters": {name: count_parameters(module) for name, module in pipe.components.items()
                       if isinstance(module, torch.nn.Module)},
        "cudnn_benchmark": torch.backends.cudnn.benchmark, "torch_threads": torch.get_num_threads(),
        "cpu_count": os.cpu_count(), "load_average_1min": _load_average(),
    }
    kwargs = _call_kwargs(kind, batch_size, steps, guidance, height, width, strength)
    gen_device = "cuda" if cuda else "cpu"
    # diffusers_logging warnings (e.g. about random configs) would clutter every batch.
    diffusers.utils.logging.set_verbosity_error()

    def run_batch(batch_index: int):
        generators = [torch.Generator(gen_device).manual_seed(seed + 100_000 * batch_index + i)
                      for i in range(batch_size)]
        with torch.no_grad():
            out = pipe(generator=generators, **kwargs)
        start = time.perf_counter()
        images, bad = _to_uint8(out.images)
        return images, bad, time.perf_counter() - start

    def sync():
        if cuda:
            torch.cuda.synchronize(device)

    start = time.perf_counter()
    for b in range(warmup):
        run_batch(-1 - b)
    sync()
    warmup_s = time.perf_counter() - start

    if cuda:
        torch.cuda.reset_peak_memory_stats(device)
    batch_times, defective, images = [], 0, []
    for b in range(n_batches):
        sync()
        start = time.perf_counter()
        images, bad, _ = run_batch(b)
        sync()
        batch_times.append(time.perf_counter() - start)
        defective += bad
    peak = {}
    if cuda:
        peak = {"peak_gpu_memory_allocated_gib": torch.cuda.max_memory_allocated(device) / 2**30,
                "peak_gpu_memory_reserved_gib": torch.cuda.max_memory_reserved(device) / 2**30,
                "gpu_memory_total_gib": torch.cuda.get_device_properties(device).total_memory / 2**30}
    total = sum(batch_times)
    if images:  # the real output size (DiT and img2img take it from the model / the source images)
        settings["height"], settings["width"] = int(images[0].shape[0]), int(images[0].shape[1])

    profiled_s = 0.0
    with _instrumented(pipe, device) as timer:
        for b in range(profile_batches):
            sync()
            start = time.perf_counter()
            _, _, convert_s = run_batch(n_batches + b)
            sync()
            profiled_s += time.perf_counter() - start
            timer.seconds["postprocess"] += convert_s  # generate.py's uint8 conversion after the call
    breakdown = {}
    for key, label in COMPONENTS:
        if key in timer.seconds:
            s = timer.seconds[key] / profile_batches
            breakdown[key] = {"label": label, "s_per_batch": s, "percent": 100 * s * profile_batches / profiled_s,
                              "calls_per_batch": timer.calls.get(key, 0) / profile_batches}
    other = (profiled_s - sum(timer.seconds.values())) / profile_batches
    breakdown["other"] = {"label": "other (latents, guidance arithmetic, Python)", "s_per_batch": other,
                          "percent": 100 * other * profile_batches / profiled_s, "calls_per_batch": None}
    unet = breakdown.get("unet_denoising")
    return {
        "settings": settings,
        "images_per_s": batch_size * n_batches / total,
        "s_per_batch": total / n_batches,
        "s_per_image": total / (batch_size * n_batches),
        "batch_times_s": batch_times,
        "warmup_s": warmup_s,
        "profiled_s_per_batch": profiled_s / profile_batches,
        "breakdown": breakdown,
        "unet_ms_per_forward": 1000 * unet["s_per_batch"] / unet["calls_per_batch"] if unet and unet["calls_per_batch"] else None,
        "defective_images": defective,
        "images_timed": batch_size * n_batches,
        "writer_jpeg_ms_per_image": _jpeg_ms_per_image(images[:8], save_size, jpeg_quality),
        "save_size": save_size,
        **peak,
        "random_weights": True,
    }


def load_tiny(model_dir: str | os.PathLike, strategy_kind: str, device: str = "cpu"):
    """A demo pipeline folder loaded the way generate.py loads a model (float32 on the CPU)."""
    from .generate import load_pipeline

    if strategy_kind not in KIND_PIPELINES:
        raise BenchmarkError(f"unknown strategy kind '{strategy_kind}' (one of {sorted(KIND_PIPELINES)})")
    if not (Path(model_dir) / "model_index.json").is_file():
        raise BenchmarkError(f"'{model_dir}' is not a diffusers pipeline folder (no model_index.json)")
    # safety_checker=True passes no safety-checker kwargs (the DiT pipeline takes none).
    return load_pipeline(str(model_dir), None, KIND_PIPELINES[strategy_kind], None, "float32", device,
                         safety_checker=strategy_kind == "class_conditional")


def benchmark_tiny(model_dir: str | os.PathLike, strategy_kind: str, batch_size: int, steps: int, size: int,
                   *, n_batches: int = 3, warmup: int = 1, guidance: float = 7.5, strength: float = 1.0,
                   device: str = "cpu", pipe=None) -> dict:
    """Images/s of a tiny demo pipeline folder, loaded the way generate.py loads a model.

    strategy_kind: class_labels or img2img (an SD folder), image_variation (an image_variation
    folder) or class_conditional (a DiT folder; its image size is fixed by the model). `pipe`: the
    folder already loaded with load_tiny (to time several batch sizes without reloading).
    """
    if pipe is None:
        pipe = load_tiny(model_dir, strategy_kind, device)
    elif _pipeline_kind(pipe) != strategy_kind:
        raise BenchmarkError(f"a {type(pipe).__name__} is not a {strategy_kind} pipeline")
    result = benchmark_generation(pipe, batch_size, steps, guidance, size, size, n_batches, warmup=warmup,
                                  compile_unet=False, channels_last=False, strength=strength)
    result["settings"]["model_dir"] = str(model_dir)
    result["random_weights"] = "tiny demo model"
    return result


# ----------------------------------------------------------------------------- reporting


def format_result(result: dict) -> str:
    s = result["settings"]
    lines = [
        f"== {s['pipeline']} ({s['kind']}) on {s['device_name']} [{s['device']}]",
        f"   torch {s['torch']} (CUDA {s['cuda']}, cuDNN {s['cudnn']}), diffusers {s['diffusers']}, "
        f"transformers {s['transformers']}, Python {s['python']}",
        f"   {s['dtype']}, batch {s['batch_size']}, {s['steps']} steps, guidance {s['guidance']}, "
        f"{s['height']}x{s['width']} px, {s['scheduler']}, attention {s['attention_processors']}, "
        f"channels_last {s['channels_last']}, compile {s['compile_unet']}"
        + (f" ({s['compile_mode']})" if s["compile_mode"] else "")
        + (f", strength {s['strength']}" if s.get("strength") is not None else ""),
        f"   torch threads {s['torch_threads']} of {s['cpu_count']} CPUs, load average {s['load_average_1min']}",
        f"   weights: {result['random_weights'] if result['random_weights'] is not True else 'random (full-size architecture)'}; "
        f"parameters {', '.join(f'{k} {v / 1e6:.1f}M' for k, v in s['parameters'].items())}",
        "",
        f"   THROUGHPUT  {result['images_per_s']:.3f} images/s   ({result['s_per_batch']:.3f} s per batch of "
        f"{s['batch_size']}, {result['s_per_image'] * 1000:.1f} ms per image; {s['n_batches']} timed batches "
        f"after {s['warmup']} warm-up, warm-up took {result['warmup_s']:.1f} s)",
    ]
    if "peak_gpu_memory_allocated_gib" in result:
        lines.append(f"   peak GPU memory {result['peak_gpu_memory_allocated_gib']:.2f} GiB allocated, "
                     f"{result['peak_gpu_memory_reserved_gib']:.2f} GiB reserved, of "
                     f"{result['gpu_memory_total_gib']:.1f} GiB")
    if result["unet_ms_per_forward"]:
        lines.append(f"   UNet forward: {result['unet_ms_per_forward']:.1f} ms per call")
    lines += ["", f"   where the time goes (one instrumented batch, {result['profiled_s_per_batch']:.3f} s, "
              "GPU synchronised around each call):",
              f"   {'component':<46}{'s/batch':>10}{'%':>8}{'calls':>8}"]
    for key, item in result["breakdown"].items():
        calls = "" if item["calls_per_batch"] is None else f"{item['calls_per_batch']:g}"
        lines.append(f"   {item['label']:<46}{item['s_per_batch']:>10.4f}{item['percent']:>7.1f}%{calls:>8}")
    jpeg = result["writer_jpeg_ms_per_image"]
    lines += ["", f"   writer thread (not in the above; overlaps the GPU): resize to {result['save_size']} px + JPEG "
              f"{jpeg:.2f} ms/image = {1000 / jpeg:.0f} images/s on one core"]
    if result["defective_images"]:
        lines.append(f"   note: {result['defective_images']}/{result['images_timed']} images were NaN/black "
                     "(expected with random weights; speed is unaffected)")
    return "\n".join(lines)


def format_summary(results: list[dict]) -> str:
    if len(results) < 2:
        return ""
    lines = ["== summary", f"   {'kind':<18}{'batch':>6}{'steps':>6}{'px':>6}{'images/s':>11}{'UNet %':>8}"
             f"{'VAE dec %':>10}{'text %':>8}{'peak GiB':>10}"]
    for r in results:
        s, b = r["settings"], r["breakdown"]
        pct = lambda key: f"{b[key]['percent']:.1f}" if key in b else "-"  # noqa: E731
        peak = f"{r['peak_gpu_memory_allocated_gib']:.1f}" if "peak_gpu_memory_allocated_gib" in r else "-"
        lines.append(f"   {s['kind']:<18}{s['batch_size']:>6}{s['steps']:>6}{s['height']:>6}{r['images_per_s']:>11.3f}"
                     f"{pct('unet_denoising'):>8}{pct('vae_decode'):>10}{pct('text_encoding'):>8}{peak:>10}")
    return "\n".join(lines)


# ----------------------------------------------------------------------------- command line


def build_parser(add_help: bool = True) -> argparse.ArgumentParser:
    """The benchmark's options (add_help=False to reuse it as a parent of a CLI subcommand)."""
    p = argparse.ArgumentParser(prog="benchmark_generation", description=__doc__.splitlines()[0],
                                add_help=add_help)
    p.add_argument("--device", default=None, help="cuda or cpu (default: cuda if available)")
    p.add_argument("--dtype", default="float16", choices=["float16", "bfloat16", "float32"])
    p.add_argument("--kind", default="class_labels", choices=sorted(KIND_PIPELINES),
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
    p.add_argument("--cudnn-benchmark", action="store_true", help="torch.backends.cudnn.benchmark = True")
    p.add_argument("--tokenizer", default=None, help="a CLIP tokenizer folder (default: rebuilt from open_clip)")
    p.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    p.add_argument("--tiny", metavar="MODEL_DIR", default=None,
                   help="time this tiny demo pipeline folder instead (float32, CPU unless --device)")
    p.add_argument("--json-out", default=None, help="write all results as JSON here")
    return p


def main(argv: list[str] | None = None) -> int:
    return run(build_parser().parse_args(argv))


def run(args: argparse.Namespace) -> int:
    """Run the benchmark for parsed options (build_parser); prints the tables, returns an exit code."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")  # everything here is built locally
    import torch

    from . import io
    from .generate import GenerationError

    if args.threads:
        torch.set_num_threads(args.threads)
    if args.cudnn_benchmark:
        torch.backends.cudnn.benchmark = True
    results = []
    try:
        if args.tiny:
            device = args.device or "cpu"
            _warn_if_busy(device)
            pipe = load_tiny(args.tiny, args.kind, device)
            for batch_size in args.batch_size:
                results.append(benchmark_tiny(args.tiny, args.kind, batch_size, args.steps, args.size,
                                              n_batches=args.n_batches, warmup=args.warmup, guidance=args.guidance,
                                              strength=args.strength, device=device, pipe=pipe))
                print(format_result(results[-1]), flush=True)
        else:
            device = args.device or ("cuda" if torch.cuda.is_available() else "cpu")
            dtype = args.dtype
            if device == "cpu" and dtype == "float16":
                print("[benchmark] float16 on the CPU is very slow; consider --dtype float32 or bfloat16",
                      file=sys.stderr)
            _warn_if_busy(device)
            start = time.perf_counter()
            if args.kind == "class_conditional":
                pipe = build_dit_random(device, dtype, args.scheduler or "DDIMScheduler")
            else:
                pipe = build_sd15_random(device, dtype, args.scheduler or "PNDMScheduler", kind=args.kind,
                                         tokenizer_dir=args.tokenizer)
            print(f"[benchmark] built {type(pipe).__name__} (random weights) on {device} in {dtype} in "
                  f"{time.perf_counter() - start:.1f} s", file=sys.stderr, flush=True)
            for batch_size in args.batch_size:
                results.append(benchmark_generation(
                    pipe, batch_size, args.steps, args.guidance, args.size, args.size, args.n_batches,
                    warmup=args.warmup, compile_unet=args.compile, channels_last=not args.no_channels_last,
                    compile_mode=args.compile_mode, strength=args.strength))
                print(format_result(results[-1]), flush=True)
                if torch.device(device).type == "cuda":
                    torch.cuda.empty_cache()
    except (BenchmarkError, GenerationError) as err:
        print(f"benchmark: error: {err}", file=sys.stderr)
        return 2
    except torch.OutOfMemoryError as err:
        print(f"benchmark: out of GPU memory ({err}); try a smaller --batch-size", file=sys.stderr)
        if not results:
            return 3
    summary = format_summary(results)
    if summary:
        print("\n" + summary)
    if args.json_out:
        io.write_json(args.json_out, results)
        print(f"[benchmark] wrote {args.json_out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
