"""Speed-ups that change the images a little, each off unless a strategy asks for it: fused QKV
projections (`fuse_qkv`) and feature caching (`cache`: DeepCache reuses the UNet's deep features
between steps, tomesd merges redundant tokens before attention). Both caches patch a Stable
Diffusion UNet in place; their packages are pinned in envs/requirements.txt."""

from __future__ import annotations

from typing import Callable, Mapping

from ..generator_checks import CACHE_OPTIONS
from .plan import GenerationError


def cache_settings(cache: Mapping | None) -> dict | None:
    """The cache as run: its method and every option, defaults filled in (None: no cache)."""
    if not cache:
        return None
    method = cache["method"]
    if method not in CACHE_OPTIONS:
        raise GenerationError(f"unknown cache method '{method}' (strategies.*.cache.method); "
                              f"known: {', '.join(CACHE_OPTIONS)}")
    unknown = sorted(set(cache) - {"method"} - set(CACHE_OPTIONS[method]))
    if unknown:
        raise GenerationError(f"strategies.*.cache: {method} has no option {', '.join(unknown)}; "
                              f"its options: {', '.join(CACHE_OPTIONS[method])}")
    return {"method": method, **CACHE_OPTIONS[method], **{k: v for k, v in cache.items() if k != "method"}}


def speedup_label(fuse_qkv: bool, cache: Mapping | None) -> str:
    """How a manifest names the speed-ups an image was made with, e.g. 'fuse_qkv; deepcache(branch=0, interval=3)'."""
    parts = ["fuse_qkv"] if fuse_qkv else []
    settings = cache_settings(cache)
    if settings:
        options = ", ".join(f"{k}={v:g}" for k, v in sorted(settings.items()) if k != "method")
        parts.append(f"{settings['method']}({options})")
    return "; ".join(parts)


def fuse_qkv_projections(pipe) -> None:
    """One matmul for each attention's q, k and v (and for the VAE's), as diffusers fuses them."""
    if getattr(pipe, "unet", None) is None:  # diffusers fuses a UNet's (and an AutoencoderKL's)
        raise GenerationError(f"strategies.*.fuse_qkv: {type(pipe).__name__} has no UNet whose QKV projections "
                              "diffusers fuses; set fuse_qkv: false")
    pipe.fuse_qkv_projections(vae=type(pipe.vae).__name__ == "AutoencoderKL")


def apply_cache(pipe, cache: Mapping | None) -> Callable[[int], None]:
    """Patch the pipeline's UNet with the cache; returns what to call with a seed before each batch
    (tomesd draws its token partitions from a generator of its own, which is reseeded from the
    batch's first seed so that an image does not depend on the batches before it: a resumed
    shard writes the same bytes)."""
    settings = cache_settings(cache)
    if settings is None:
        return lambda seed: None
    if getattr(pipe, "unet", None) is None:
        raise GenerationError(f"strategies.*.cache: {settings['method']} patches a UNet, and "
                              f"{type(pipe).__name__} has none; remove the cache")
    if settings["method"] == "deepcache":
        return _deepcache(pipe, settings)
    return _tomesd(pipe, settings)


def _deepcache(pipe, settings: dict) -> Callable[[int], None]:
    try:
        from DeepCache import DeepCacheSDHelper
    except ImportError as err:
        raise GenerationError(f"cache method deepcache needs the DeepCache package (envs/requirements.txt): {err}") from err
    helper = DeepCacheSDHelper(pipe=pipe)
    helper.set_params(cache_interval=int(settings["interval"]), cache_branch_id=int(settings["branch"]))
    helper.enable()
    pipe._genrobust_deepcache = helper  # the patched forwards refer to it; keep it alive with the pipe
    return lambda seed: None  # the skipped steps follow the step index alone


def _tomesd(pipe, settings: dict) -> Callable[[int], None]:
    import torch

    try:
        import tomesd
    except ImportError as err:
        raise GenerationError(f"cache method tomesd needs the tomesd package (envs/requirements.txt): {err}") from err
    tomesd.apply_patch(pipe, ratio=float(settings["ratio"]), max_downsample=int(settings["max_downsample"]))
    info = pipe.unet._tome_info

    def reseed(seed: int) -> None:
        info["args"]["generator"] = torch.Generator(pipe.unet.device).manual_seed(seed)

    return reseed
