"""Training benchmark (genrobust.benchmark.training) at a tiny scale: the loaders really iterate
whole epochs of the drawn images (last partial batch dropped), the training-step figures belong to
the requested model and settings, and bad options fail with a message that says what to fix."""

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from genrobust import beton as B
from genrobust.benchmark import synthetic
from genrobust.benchmark import training as bt

# numba prints a harmless KeyError when a freed ffcv pipeline's dispatchers are finalised
pytestmark = pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")

IMAGES, BATCH = 70, 16  # 70 images -> 4 full batches of 16 = 64 images per epoch (drop_last)
TINY = ["--device", "cpu", "--threads", "1", "--images", str(IMAGES), "--image-size", "32",
        "--batch-size", str(BATCH), "--res", "32", "--epochs", "1", "--workers", "2"]


def main(argv):
    """What `python -m genrobust benchmark-training ARGV` runs, returning its exit code."""
    return bt.run(bt.build_parser().parse_args(argv))


@pytest.fixture(autouse=True)
def keep_threads():
    threads = torch.get_num_threads()
    yield
    torch.set_num_threads(threads)


def _finite_positive(x) -> bool:
    return isinstance(x, (int, float)) and math.isfinite(x) and x > 0


def test_tiny_run_reports_whole_epochs_and_the_right_model(tmp_path, capsys):
    out = tmp_path / "bench.json"
    rc = main([*TINY, "--arch", "resnet18", "--steps", "2", "--warmup-steps", "1",
                  "--num-classes", "10", "--json-out", str(out)])
    assert rc == 0
    report = json.loads(out.read_text())

    loaders = report["loaders"]
    expected_backends = ["ffcv", "plain"] if B.ffcv_available() else ["plain"]
    assert loaders["ffcv_available"] == B.ffcv_available()
    assert [r["backend"] for r in loaders["results"]] == expected_backends
    assert loaders["data"]["images"] == IMAGES and loaders["data"]["source"] == "drawn"
    expected = (IMAGES // BATCH) * BATCH
    for r in loaders["results"]:
        assert r["expected_images_per_epoch"] == expected == 64
        assert r["images_per_epoch"] == [expected] and r["warmup_images"] == expected
        assert r["batches_per_epoch"] == IMAGES // BATCH and r["batches_per_epoch_seen"] == [IMAGES // BATCH]
        assert (r["batch_size"], r["resolution"], r["workers"], r["epochs"]) == (BATCH, 32, 2, 1)
        assert _finite_positive(r["images_per_s"]) and _finite_positive(r["warmup_s"])
        assert len(r["epoch_s"]) == 1 and _finite_positive(r["epoch_s"][0])
    if B.ffcv_available():
        ffcv, plain = loaders["results"]
        assert loaders["ffcv_over_plain"] == pytest.approx(ffcv["images_per_s"] / plain["images_per_s"])

    [step] = report["training"]
    assert (step["arch"], step["resolution"], step["batch_size"]) == ("resnet18", 32, BATCH)
    assert (step["precision"], step["device"], step["steps"], step["num_classes"]) == ("fp32", "cpu", 2, 10)
    assert step["channels_last"] and not step["compile"] and step["peak_memory_gib"] is None
    assert _finite_positive(step["images_per_s"]) and _finite_positive(step["ms_per_step"])
    assert step["images_per_s"] == pytest.approx(BATCH * 1000 / step["ms_per_step"])
    assert math.isfinite(step["last_loss"])
    assert 11e6 < step["parameters"] < 12e6  # ResNet-18 with a 10-class head
    assert report["settings"]["torch_threads"] == 1

    printed = capsys.readouterr().out
    assert "images/s" in printed and "resnet18" in printed and "ms/step" in printed
    assert ("ffcv / plain" in printed) == B.ffcv_available()


def test_without_ffcv_the_plain_loader_is_reported_alone(tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(B, "ffcv_available", lambda: False)
    out = tmp_path / "bench.json"
    assert main([*TINY, "--skip-training", "--json-out", str(out)]) == 0
    report = json.loads(out.read_text())
    assert report["loaders"]["ffcv_available"] is False and report["loaders"]["data"]["beton"] is None
    assert [r["backend"] for r in report["loaders"]["results"]] == ["plain"]
    assert report["loaders"]["results"][0]["images_per_epoch"] == [64]
    assert report["loaders"]["ffcv_over_plain"] is None and report["training"] == []
    assert "ffcv is NOT importable" in capsys.readouterr().out


def test_manifest_with_paths_relative_to_its_folder(tmp_path, monkeypatch):
    data = tmp_path / "data"
    frame = synthetic.draw_images(data / "images", 20, 24, num_classes=3)
    frame["path"] = [str(Path(p).relative_to(data)) for p in frame["path"]]
    frame.to_csv(data / "train.csv", index=False)
    monkeypatch.chdir(tmp_path)  # the paths do not exist from here, only from the manifest's folder
    out = tmp_path / "bench.json"
    assert main(["--device", "cpu", "--threads", "1", "--manifest", str(data / "train.csv"),
                    "--backends", "plain", "--batch-size", "8", "--res", "24", "--epochs", "1",
                    "--workers", "0", "--skip-training", "--json-out", str(out)]) == 0
    [r] = json.loads(out.read_text())["loaders"]["results"]
    assert r["images_per_epoch"] == [16] and r["batches_per_epoch"] == 2


def test_errors_say_what_to_fix(tmp_path, capsys):
    assert main(["--device", "cpu", "--arch", "resnet18", "resnett50", "--skip-loaders"]) == 2
    err = capsys.readouterr().err
    assert "unknown architecture 'resnett50'" in err and "resnet50" in err and "list_models" in err
    with pytest.raises(ValueError, match="unknown architecture"):
        bt.benchmark_training_step("no_such_net_xyz", resolution=32, batch_size=2, device="cpu")

    assert main(["--device", "cpu", "--images", "10", "--batch-size", "16", "--skip-training",
                    "--backends", "plain", "--work-dir", str(tmp_path / "w")]) == 2
    assert "too few images for one full batch of 16" in capsys.readouterr().err
    assert main(["--device", "cpu", "--beton", str(tmp_path / "x.beton"), "--skip-training"]) == 2
    assert "--beton needs --manifest" in capsys.readouterr().err
    assert main(["--skip-loaders", "--skip-training"]) == 2
    if not torch.cuda.is_available():
        assert main(["--device", "cuda", "--skip-loaders"]) == 2
        assert "no CUDA" in capsys.readouterr().err


def test_cli_subcommand():
    from genrobust.cli import build_parser

    args = build_parser().parse_args(["benchmark-training", "--arch", "resnet50", "--res", "176",
                                      "--batch-size", "256", "--precision", "bf16"])
    assert (args.arch, args.res, args.batch_size, args.precision) == (["resnet50"], 176, 256, "bf16")
    assert args.func.__name__ == "cmd_benchmark_training"

    env = dict(os.environ, PYTHONPATH=str(Path(__file__).resolve().parents[1] / "workflow"))  # as the rules
    done = subprocess.run([sys.executable, "-m", "genrobust", "benchmark-training", "--help"],
                          capture_output=True, text=True, env=env, timeout=60)
    assert done.returncode == 0, done.stderr
    assert "--skip-loaders" in done.stdout and "--precision" in done.stdout


def test_options_mapping_is_parsed_like_the_flags(capsys):
    """--options (config `benchmarks: training:` as the rule passes it) overrides the flags it names
    and is checked by the same parser; unknown names and bad values fail with exit code 2."""
    from genrobust.benchmark import generation
    from genrobust.benchmark.options import apply_options

    parser = bt.build_parser()
    args = parser.parse_args(["--res", "64", "--options", json.dumps(
        {"res": 32, "arch": ["resnet18"], "skip_loaders": True, "compile": False, "loader_res": None})])
    args = apply_options(args, parser)
    assert (args.res, args.arch, args.skip_loaders) == (32, ["resnet18"], True)
    assert not args.compile and args.loader_res is None
    gen = generation.build_parser()
    args = apply_options(gen.parse_args(["--options", '{"batch_size": 4, "dtype": "float32"}']), gen)
    assert (args.batch_size, args.dtype) == ([4], "float32")

    assert main(["--options", '{"no_such_option": 1}']) == 2
    assert "unknown option 'no_such_option'" in capsys.readouterr().err
    assert main(["--options", '{"precision": "fp8"}']) == 2
    assert "invalid choice" in capsys.readouterr().err
    assert main(["--options", '{"json_out": "x.json"}']) == 2
