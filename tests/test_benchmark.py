"""Generation benchmark (genrobust.benchmark.generation): the full-size SD v1.5 architecture built
on the meta device (no memory, no weights), and the CPU timing path on tiny demo pipelines."""

import json
import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import pytest
import torch

from genrobust import tokenizer
from genrobust.benchmark import generation, pipelines
from genrobust.benchmark.system import BenchmarkError
from genrobust.demo import models

# Parameter counts of the stable-diffusion-v1-5 checkpoints.
SD15_PARAMS = {"unet": 859_520_964, "vae": 83_653_863, "text_encoder": 123_060_480}
BREAKDOWN = {"text_encoding", "unet_denoising", "vae_decode", "postprocess", "other"}


def main(argv):
    """What `python -m genrobust benchmark-generation ARGV` runs, returning its exit code."""
    return generation.run(generation.build_parser().parse_args(argv))


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    """Tiny models gain nothing from 2 threads, and 2 threads on a busy 2-core machine thrash."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def tiny_sd(tmp_path_factory):
    return models.build_tiny_sd(tmp_path_factory.mktemp("models") / "sd", seed=0)


def test_full_size_components_have_sd15_parameter_counts():
    parts = pipelines.build_sd15_components("meta", "float16")
    counts = {name: pipelines.count_parameters(module) for name, module in parts.items()}
    assert counts == SD15_PARAMS
    for module in parts.values():
        assert {p.device.type for p in module.parameters()} == {"meta"}
        assert {p.dtype for p in module.parameters()} == {torch.float16}
    assert torch.get_default_dtype() == torch.float32  # restored after building


def test_full_size_pipeline_on_meta(tiny_sd):
    from diffusers import DDIMScheduler, StableDiffusionPipeline

    pipe = pipelines.build_sd15_random("meta", "bfloat16", tokenizer_dir=tiny_sd)
    assert type(pipe) is StableDiffusionPipeline
    assert pipe.safety_checker is None
    assert pipe.unet.dtype == torch.bfloat16 and pipe.unet.device.type == "meta"
    assert {n: pipelines.count_parameters(getattr(pipe, n)) for n in SD15_PARAMS} == SD15_PARAMS
    assert pipe.scheduler.config.beta_schedule == "scaled_linear" and pipe.scheduler.config.skip_prk_steps
    assert pipe.tokenizer("a photo of a goldfish.").input_ids[0] == tokenizer.BOS_TOKEN_ID

    ddim = pipelines.build_sd15_random("meta", "float16", "DDIMScheduler", tokenizer_dir=tiny_sd)
    assert isinstance(ddim.scheduler, DDIMScheduler) and ddim.scheduler.config.steps_offset == 1
    with pytest.raises(BenchmarkError, match="unknown diffusers scheduler"):
        pipelines.build_sd15_random("meta", "float16", "NoSuchScheduler", tokenizer_dir=tiny_sd)
    with pytest.raises(BenchmarkError, match="dtype"):
        pipelines.build_sd15_components("meta", "int8")


def test_other_full_size_kinds_on_meta(tiny_sd):
    variation = pipelines.build_sd15_random("meta", "float16", kind="image_variation")
    assert type(variation).__name__ == "StableDiffusionImageVariationPipeline"
    assert variation.image_encoder.config.projection_dim == variation.unet.config.cross_attention_dim == 768
    assert type(pipelines.build_sd15_random("meta", "float16", kind="img2img", tokenizer_dir=tiny_sd)).__name__ \
        == "StableDiffusionImg2ImgPipeline"
    dit = pipelines.build_dit_random("meta", "float16")
    # DiT-XL/2 is 675M parameters; diffusers' layout gives every block its own timestep and class
    # embedders (same compute, ~75M more parameters).
    assert 740e6 < pipelines.count_parameters(dit.transformer) < 760e6


@pytest.mark.parametrize("kind", ["class_labels", "img2img"])
def test_benchmark_tiny(tiny_sd, kind):
    result = generation.benchmark_tiny(tiny_sd, kind, batch_size=2, steps=2, size=64, n_batches=1, warmup=0)
    assert result["images_per_s"] > 0
    assert len(result["batch_times_s"]) == 1 and result["images_timed"] == 2
    settings = result["settings"]
    assert settings["kind"] == kind and settings["device"] == "cpu" and settings["dtype"] == "float32"
    assert (settings["batch_size"], settings["steps"], settings["height"], settings["width"]) == (2, 2, 64, 64)
    assert settings["guidance"] == 7.5 and settings["model_dir"] == str(tiny_sd)
    assert {"torch", "diffusers", "transformers", "device_name"} <= set(settings)
    breakdown = result["breakdown"]
    assert BREAKDOWN <= set(breakdown)
    assert ("vae_encode" in breakdown) == (kind == "img2img")
    assert breakdown["unet_denoising"]["calls_per_batch"] == 3  # PNDM (PLMS): steps + 1 UNet calls
    assert breakdown["text_encoding"]["calls_per_batch"] >= 1
    assert sum(item["percent"] for item in breakdown.values()) == pytest.approx(100)
    assert all(item["s_per_batch"] >= 0 for key, item in breakdown.items() if key != "other")
    assert result["unet_ms_per_forward"] > 0 and result["writer_jpeg_ms_per_image"] > 0
    json.dumps(result)  # --json-out can write it


def test_instrumentation_is_removed_afterwards(tiny_sd):
    pipe = pipelines.load_tiny(tiny_sd, "class_labels")
    with pytest.raises(BenchmarkError, match="not a img2img"):
        generation.benchmark_tiny(tiny_sd, "img2img", 1, 1, 64, pipe=pipe)
    generation.benchmark_generation(pipe, 1, 1, 1.0, 64, 64, n_batches=1, warmup=0, channels_last=True)
    assert "forward" not in vars(pipe.unet) and "forward" not in vars(pipe.text_encoder)
    assert "decode" not in vars(pipe.vae) and "step" not in vars(pipe.scheduler)
    assert "postprocess" not in vars(pipe.image_processor)


def test_cli_tiny_writes_json_and_table(tiny_sd, tmp_path, capsys):
    out = tmp_path / "bench.json"
    rc = main(["--tiny", str(tiny_sd), "--batch-size", "1", "2", "--steps", "1", "--size", "64",
                         "--n-batches", "1", "--warmup", "0", "--json-out", str(out)])
    assert rc == 0
    results = json.loads(out.read_text())
    assert [r["settings"]["batch_size"] for r in results] == [1, 2]
    printed = capsys.readouterr().out
    assert "images/s" in printed and "UNet denoising loop" in printed and "== summary" in printed


def test_cli_times_the_strategies_speedups_once_per_pipeline(tiny_sd, tmp_path, capsys):
    """--options as config's benchmarks: generation: holds them (a cache is a mapping), over a sweep
    of batch sizes that reuses one pipeline: the speed-ups are applied once and recorded."""
    out = tmp_path / "bench.json"
    options = {"fuse_qkv": True, "cache": {"method": "tomesd", "max_downsample": 2}, "batch_size": [1, 2]}
    rc = main(["--tiny", str(tiny_sd), "--steps", "2", "--size", "32", "--n-batches", "1", "--warmup", "0",
               "--options", json.dumps(options), "--json-out", str(out)])
    assert rc == 0
    for result in json.loads(out.read_text()):
        assert result["settings"]["speedups"] == "fuse_qkv; tomesd(max_downsample=2, ratio=0.5)"
        assert result["settings"]["cache"] == {"method": "tomesd", "ratio": 0.5, "max_downsample": 2}
        assert result["settings"]["attention_processors"]["unet"] == ["FusedAttnProcessor2_0"]
    assert "speed-ups fuse_qkv; tomesd" in capsys.readouterr().out
    pipe = pipelines.load_tiny(tiny_sd, "class_labels")
    generation.benchmark_generation(pipe, 1, 1, 1.0, 32, 32, n_batches=1, warmup=0, cache={"method": "deepcache"})
    with pytest.raises(BenchmarkError, match="already runs with speed-ups 'deepcache"):
        generation.benchmark_generation(pipe, 1, 1, 1.0, 32, 32, n_batches=1, warmup=0, fuse_qkv=True)


def test_cli_errors_are_one_line(tmp_path, capsys):
    assert main(["--tiny", str(tmp_path), "--batch-size", "1"]) == 2
    assert "no model_index.json" in capsys.readouterr().err
    if not torch.cuda.is_available():
        assert main(["--device", "cuda", "--batch-size", "1"]) == 2
        assert "no CUDA" in capsys.readouterr().err


def test_cli_subcommand_runs_without_snakemake():
    import subprocess
    import sys
    from pathlib import Path

    workflow_dir = Path(__file__).resolve().parents[1] / "workflow"
    env = dict(os.environ, PYTHONPATH=str(workflow_dir))  # as the rules run it
    done = subprocess.run([sys.executable, "-m", "genrobust", "benchmark-generation", "--help"],
                          capture_output=True, text=True, env=env, timeout=60)
    assert done.returncode == 0, done.stderr
    assert "--batch-size" in done.stdout and "--tiny" in done.stdout
