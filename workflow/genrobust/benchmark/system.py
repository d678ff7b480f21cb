"""What both benchmarks need to know about the machine: the device, its name, the load, versions."""

from __future__ import annotations

import importlib
import os
import platform
import sys


class BenchmarkError(ValueError):
    """A problem the user must fix (no CUDA, unknown dtype or architecture, a folder of the wrong
    kind, too few images for a batch)."""


def log(name: str, msg: str) -> None:
    print(f"[{name}] {msg}", file=sys.stderr, flush=True)


def resolve_device(device: str | None):
    """torch.device of a --device option (cpu or cuda; None: cuda if available), CUDA checked."""
    import torch

    if device is None:
        device = "cuda" if torch.cuda.is_available() else "cpu"
    try:
        dev = torch.device(device)
    except RuntimeError as e:
        raise BenchmarkError(f"bad --device {device!r} ({e}); use cpu or cuda") from e
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise BenchmarkError("--device cuda, but torch sees no CUDA device (use --device cpu)")
    if dev.type not in ("cpu", "cuda"):
        raise BenchmarkError(f"--device must be cpu or cuda, not {device!r}")
    if dev.type == "cuda" and dev.index is None:
        dev = torch.device("cuda", torch.cuda.current_device())
    return dev


def sync(device) -> None:
    """Wait for the GPU (timings end when the work ends, not when it was queued)."""
    import torch

    if torch.device(device).type == "cuda":
        torch.cuda.synchronize(device)


def device_name(device) -> str:
    import torch

    device = torch.device(device)
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    return f"CPU ({platform.processor() or platform.machine()}, {os.cpu_count()} cores)"


def load_average() -> float | None:
    try:
        return round(os.getloadavg()[0], 2)
    except (AttributeError, OSError):
        return None


def warn_if_busy(device, name: str) -> None:
    """CPU timings on a busy machine are meaningless with more torch threads than free cores."""
    import torch

    load, cores, threads = load_average(), os.cpu_count() or 1, torch.get_num_threads()
    if torch.device(device).type == "cpu" and load is not None and load + threads > cores + 0.5:
        log(name, f"the machine is busy (load {load:.1f} on {cores} cores): {threads} torch threads will "
            "contend with other processes and the figures will be low and noisy; --threads 1 is steadier")


def versions(*packages: str) -> dict:
    """Python, torch, CUDA and cuDNN versions, and those of `packages` (None where absent)."""
    import torch

    out = {"python": platform.python_version(), "torch": torch.__version__, "cuda": torch.version.cuda,
           "cudnn": torch.backends.cudnn.version() if torch.backends.cudnn.is_available() else None}
    for name in packages:
        try:
            out[name] = importlib.import_module(name).__version__
        except Exception:  # noqa: BLE001 - optional
            out[name] = None
    return out

