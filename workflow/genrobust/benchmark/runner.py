"""The frame the GPU benchmarks (generation, fine-tuning) run in: options, threads, errors, output."""

from __future__ import annotations

import os
import sys

from .. import io
from . import system
from .options import apply_options
from .system import BenchmarkError


def run_measurement(name: str, args, parser, measure, summary, errors: tuple = (), oom_hint: str = "") -> int:
    """The frame a GPU benchmark runs in; returns its exit code. args.options are applied (parser),
    args.threads set, then measure(args, results) appends one dict per configuration measured.
    A BenchmarkError (or one of `errors`) is one line on stderr, exit 2; running out of GPU memory
    keeps what was measured before it (exit 3 when nothing was). summary(results) is printed and
    the results written to args.json_out."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")  # everything here is built locally
    import torch

    results: list[dict] = []
    try:
        args = apply_options(args, parser)
        if args.threads:
            torch.set_num_threads(args.threads)
        measure(args, results)
    except (BenchmarkError, *errors) as err:
        print(f"{name}: error: {err}", file=sys.stderr)
        return 2
    except torch.OutOfMemoryError as err:
        system.log(name, f"out of GPU memory ({err}); {oom_hint}")
        if not results:
            return 3
    text = summary(results)
    if text:
        print("\n" + text)
    if args.json_out:
        io.write_json(args.json_out, results)
        system.log(name, f"wrote {args.json_out}")
    return 0
