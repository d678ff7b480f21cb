"""The tables the benchmarks print (their JSON holds every figure; these are for people)."""

from __future__ import annotations

import numpy as np

# ----------------------------------------------------------------------------- generation


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
        + (f", strength {s['strength']}" if s.get("strength") is not None else "")
        + (f", speed-ups {s['speedups']}" if s.get("speedups") else ""),
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


# ----------------------------------------------------------------------------- training


def format_loaders(loaders: dict) -> str:
    rows = loaders["results"]
    lines = []
    if rows:
        r = rows[0]
        lines.append(f"== loaders: {loaders['data']['images']} images, batch {r['batch_size']}, "
                     f"res {r['resolution']}, {r['workers']} workers, {r['device']} "
                     "(last partial batch dropped)")
        lines.append(f"{'backend':8} {'warm-up s':>9} {'epochs':>6} {'images/epoch':>12} "
                     f"{'s/epoch':>8} {'images/s':>9}")
        for r in rows:
            lines.append(f"{r['backend']:8} {r['warmup_s']:9.2f} {r['epochs']:6d} "
                         f"{r['images_per_epoch'][0]:12d} {np.mean(r['epoch_s']):8.3f} "
                         f"{r['images_per_s']:9.0f}")
    if not loaders["ffcv_available"]:
        lines.append("ffcv is not importable in this environment: plain loader only "
                     "(install ffcv to compare)")
    if loaders.get("ffcv_over_plain") is not None:
        lines.append(f"ffcv / plain: {loaders['ffcv_over_plain']:.2f}x images/s")
    return "\n".join(lines)


def format_training(rows: list[dict]) -> str:
    if not rows:
        return ""
    r = rows[0]
    layout = "channels_last" if r["channels_last"] else "contiguous"
    compiled = ", torch.compile" if r["compile"] else ""
    lines = [f"== training steps (forward + backward + SGD, random batch on {r['device']}, "
             + f"{layout}{compiled})",
             f"{'arch':24} {'res':>4} {'batch':>5} {'precision':>9} {'images/s':>9} "
             + f"{'ms/step':>8} {'peak mem':>9}"]
    for r in rows:
        mem = "-" if r["peak_memory_gib"] is None else f"{r['peak_memory_gib']:.2f} GiB"
        lines.append(f"{r['arch']:24} {r['resolution']:4d} {r['batch_size']:5d} "
                     f"{r['precision']:>9} {r['images_per_s']:9.1f} {r['ms_per_step']:8.1f} "
                     f"{mem:>9}")
    return "\n".join(lines)
