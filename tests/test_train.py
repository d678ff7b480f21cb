"""The training recipe: schedules, models, weight-decay groups, and kill-and-resume."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from torch import nn

from conftest import draw_labelled_images
import dataclasses

from genrobust import beton as B
from genrobust import classifiers as C
from genrobust import recipe as R
from genrobust import train as T

pytestmark = pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")

PAPER = dict(epochs=40, batch_size=512, lr=0.5, scale_lr=True, momentum=0.9,
             weight_decay=5e-5, label_smoothing=0.1, lr_peak_epoch=2, warmup_start_factor=1e-4,
             blurpool=True, min_res=160, max_res=192, start_ramp=None, end_ramp=None,
             res_step=32, val_res=256, crop_ratio=224 / 256, precision="bf16",
             channels_last=True, num_workers=8)
ARCHS = ["resnet18", "resnext50_32x4d", "resnext101_32x8d", "efficientnet_b0", "mobilenet_v2",
         "mobilenetv2_100"]  # the last is timm's name: names only timm knows still work


def recipe(**kw):
    return R.Recipe.from_dict({**PAPER, **kw})


# ---------------------------------------------------------------------------- schedules

def test_lr_40_epochs():
    r = recipe(epochs=40)
    assert R.lr_at(0, r) == pytest.approx(5e-5)
    assert R.lr_at(1, r) == pytest.approx((5e-5 + 0.5) / 2)
    assert R.lr_at(2, r) == pytest.approx(0.5)
    assert R.lr_at(21, r) == pytest.approx(0.25)  # halfway down from epoch 2 to 40
    assert R.lr_at(30.5, r) == pytest.approx(0.5 * 9.5 / 38)
    assert R.lr_at(40, r) == 0.0
    # per iteration: iteration 250 of 1000 in epoch 0 is epoch 0.25
    assert R.lr_at(0 + 250 / 1000, r) == pytest.approx(5e-5 + (0.5 - 5e-5) * 0.125)
    lrs = [R.lr_at(e + i / 10, r) for e in range(40) for i in range(10)]
    assert np.argmax(lrs) == 20 and all(a > b for a, b in zip(lrs[20:], lrs[21:]))


def test_lr_88_epochs_and_scaling():
    r = recipe(epochs=88)
    assert R.lr_at(0, r) == pytest.approx(5e-5)
    assert R.lr_at(2, r) == pytest.approx(0.5)
    assert R.lr_at(45, r) == pytest.approx(0.25)
    assert R.lr_at(66.5, r) == pytest.approx(0.5 * 21.5 / 86)
    assert R.lr_at(88, r) == 0.0
    assert R.peak_lr(r, 512) == 0.5
    assert R.peak_lr(r, 1024) == 1.0
    assert R.peak_lr(recipe(scale_lr=False), 1024) == 0.5
    assert R.lr_at(2, r, peak=R.peak_lr(r, 256)) == pytest.approx(0.25)
    assert R.lr_at(0, r, peak=0.25) == pytest.approx(2.5e-5)


def test_resolution_40_and_88_epochs():
    r40, r88 = recipe(epochs=40), recipe(epochs=88)
    assert R.ramp(r40) == (29, 34) and R.ramp(r88) == (65, 76)
    res40 = [R.resolution_at(e, r40) for e in range(40)]
    assert res40 == [160] * 32 + [192] * 8  # 30: 166.4 -> 160, 31: 172.8 -> 160, 32: 179.2 -> 192
    res88 = [R.resolution_at(e, r88) for e in range(88)]
    assert res88[:66] == [160] * 66 and res88[76:] == [192] * 12
    assert res88 == [160] * 71 + [192] * 17
    for res in res40 + res88:
        assert res % 32 == 0
    # explicit ramps and res_step win over the defaults
    r = recipe(epochs=10, start_ramp=2, end_ramp=6, min_res=64, max_res=192, res_step=16)
    assert [R.resolution_at(e, r) for e in range(10)] == [64, 64, 64, 96, 128, 160, 192, 192,
                                                          192, 192]


def test_default_ramp():
    for epochs, expected in R.FFCV_RAMPS.items():
        assert R.default_ramp(epochs) == expected
    assert R.default_ramp(100) == (74, 86)  # 88's fractions (65/88, 76/88) held beyond 88
    assert R.default_ramp(8) == (6, 6)  # 16's fractions below 16
    start, end = R.default_ramp(60)  # between 56 and 88
    assert 41 / 56 * 60 - 1 <= start <= 65 / 88 * 60 + 1 and end <= 59 and start < end
    previous = (0, 0)
    for epochs in range(1, 120):
        start, end = R.default_ramp(epochs)
        assert 0 <= start <= end <= max(epochs - 1, 0)
        assert start >= previous[0] and end >= previous[1]
        previous = (start, end)


# ---------------------------------------------------------------------------- models

@pytest.mark.parametrize("arch", ARCHS)
def test_head_sizes(arch):
    for n in (10, 100):
        with torch.device("meta"):  # no memory, no init cost: resnext101 is big
            model = C.create_model(arch, n)
        head = C.classifier_head(model)
        assert head.out_features == n
        assert any(isinstance(m, C.BlurPoolConv2d) for m in model.modules())


def test_blurpool_and_forward():
    model = C.create_model("resnet18", 10)
    wrapped = [m.conv for m in model.modules() if isinstance(m, C.BlurPoolConv2d)]
    assert len(wrapped) == 6  # layer2-4: first conv and downsample conv
    assert all(max(c.stride) > 1 and c.in_channels >= 16 for c in wrapped)
    assert model(torch.zeros(2, 3, 32, 32)).shape == (2, 10)
    plain = C.create_model("resnet18", 10, blurpool=False)
    assert not any(isinstance(m, C.BlurPoolConv2d) for m in plain.modules())


def test_paper_names_resolve_to_torchvision_models():
    """The paper and ffcv-imagenet build torchvision's models: no zero-init of the last BN of a
    residual block (timm's default), dropout and stochastic depth in EfficientNet-B0, dropout in
    MobileNet-V2; a name only timm knows, or the timm: prefix, still gives timm's."""
    import timm.models
    import torchvision.models as tvm
    from torchvision.ops import StochasticDepth

    model = C.create_model("resnet18", 100, blurpool=False)
    assert type(model) is tvm.ResNet and model.fc.out_features == 100
    assert all(torch.all(b.bn2.weight == 1) for b in model.modules() if isinstance(b, tvm.resnet.BasicBlock))
    timm_model = C.create_model("timm:resnet18", 100, blurpool=False)
    assert not isinstance(timm_model, tvm.ResNet)
    assert all(torch.all(b.bn2.weight == 0) for b in timm_model.modules() if hasattr(b, "bn2"))
    with torch.device("meta"):
        effnet = C.create_model("efficientnet_b0", 100)
        mobilenet = C.create_model("mobilenet_v2", 100)
        timm_mobilenet = C.create_model("mobilenetv2_100", 100)
    assert type(effnet) is tvm.EfficientNet and C.classifier_head(effnet).out_features == 100
    assert any(isinstance(m, StochasticDepth) and m.p > 0 for m in effnet.modules())
    assert [m.p for m in effnet.classifier if isinstance(m, nn.Dropout)] == [0.2]
    assert type(mobilenet) is tvm.MobileNetV2 and C.classifier_head(mobilenet).out_features == 100
    assert [m.p for m in mobilenet.classifier if isinstance(m, nn.Dropout)] == [0.2]
    assert type(timm_mobilenet) is timm.models.efficientnet.EfficientNet  # timm builds it as an EfficientNet


def test_unknown_arch_suggests():
    with pytest.raises(ValueError, match="resnet18"):
        C.create_model("resnet19", 10)
    with pytest.raises(ValueError, match="unknown architecture"):
        C.create_model("torchvision:mobilenetv2_100", 10)  # timm's name, torchvision asked


def _groups_by_name(model, wd=5e-5):
    groups = C.parameter_groups(model, wd)
    ids = {id(p): g["weight_decay"] for g in groups for p in g["params"]}
    assert len(ids) == sum(1 for _ in model.parameters())
    return {name: ids[id(p)] for name, p in model.named_parameters()}


def _norm_param_names(model):
    norms = (nn.modules.batchnorm._NormBase, nn.GroupNorm, nn.LayerNorm)
    return {f"{mname}.{pname}" if mname else pname
            for mname, m in model.named_modules() if isinstance(m, norms)
            for pname, _ in m.named_parameters(recurse=False)}


@pytest.mark.parametrize("arch", ["resnet18", "timm:resnet18", "efficientnet_b0", "timm:efficientnet_b0",
                                  "mobilenet_v2", "mobilenetv2_100"])
def test_weight_decay_groups(arch):
    with torch.device("meta"):
        model = C.create_model(arch, 10)
    wd = _groups_by_name(model)
    norm_names = _norm_param_names(model)
    assert norm_names
    for name, decay in wd.items():
        assert decay == (0.0 if name in norm_names else 5e-5), name
    conv_weights = [f"{n}.weight" for n, m in model.named_modules() if isinstance(m, nn.Conv2d)]
    assert conv_weights and all(wd[n] == 5e-5 for n in conv_weights)
    if arch == "resnet18":
        # ffcv-imagenet's `'bn' in name` rule would decay these
        assert wd["layer2.0.downsample.1.weight"] == 0.0
        assert wd["layer2.0.downsample.1.bias"] == 0.0
        assert wd["fc.weight"] == 5e-5
    if arch == "timm:efficientnet_b0":
        from timm.layers import BatchNormAct2d

        bnact = [n for n, m in model.named_modules() if isinstance(m, BatchNormAct2d)]
        assert bnact and all(wd[f"{n}.weight"] == 0.0 for n in bnact)
        assert wd["conv_head.weight"] == 5e-5 and wd["bn2.weight"] == 0.0


# ---------------------------------------------------------------------------- training

@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    root = tmp_path_factory.mktemp("train")
    manifest = draw_labelled_images(root)
    manifest_path = root / "manifest.csv"
    manifest.to_csv(manifest_path, index=False)
    beton_path = None
    if B.ffcv_available():
        beton_path = root / "all.beton"
        B.write_beton(manifest, beton_path, num_workers=1)
    return beton_path, manifest_path


TINY = recipe(epochs=3, batch_size=8, lr=0.5, lr_peak_epoch=1, min_res=32, max_res=64,
              start_ramp=0, end_ramp=1, val_res=32, precision="bf16", num_workers=1)
WNIDS = ["n01", "n02", "n03", "n04"]
TIMING = ("images_per_s", "seconds")


def _run(dataset, tmp_path, tag, threads=2, **kw):
    beton_path, manifest_path = dataset
    indices = list(range(0, 32, 2)) + [1, 3, 5, 7, 9, 11, 13, 15]  # 24 rows: 3 batches
    return T.train_classifier({"real": T.TrainingSource(beton_path, manifest_path, indices)},
                              beton_path, manifest_path, WNIDS, "resnet18", TINY, 7, tmp_path / f"{tag}.pt",
                              tmp_path / f"{tag}.jsonl", tmp_path / f"{tag}.ckpt",
                              device="cpu", threads=threads, **kw)


def _strip(metrics):
    return [{k: v for k, v in m.items() if k not in TIMING} for m in metrics]


def test_kill_and_resume_is_exact(dataset, tmp_path, monkeypatch):
    full = _run(dataset, tmp_path, "full")
    assert [m["resolution"] for m in full] == [32, 64, 64]
    assert [m["epoch"] for m in full] == [0, 1, 2]
    assert not (tmp_path / "full.ckpt").exists()  # removed after success

    class Killed(Exception):
        pass

    real_step, steps = T.train_step, []

    def crash_in_second_epoch(*args):
        steps.append(1)
        if len(steps) == 5:  # 3 steps per epoch: the second step of the second epoch
            raise Killed
        return real_step(*args)

    monkeypatch.setattr(T, "train_step", crash_in_second_epoch)
    with pytest.raises(Killed):
        _run(dataset, tmp_path, "resumed")
    assert (tmp_path / "resumed.ckpt").exists() and not (tmp_path / "resumed.pt").exists()
    assert len(T.read_metrics(tmp_path / "resumed.jsonl")) == 1
    monkeypatch.setattr(T, "train_step", real_step)
    resumed = _run(dataset, tmp_path, "resumed")

    a = torch.load(tmp_path / "full.pt", weights_only=True)
    b = torch.load(tmp_path / "resumed.pt", weights_only=True)
    assert a.keys() == {"arch", "num_classes", "class_wnids", "blurpool", "state_dict", "recipe"}
    assert a["state_dict"].keys() == b["state_dict"].keys()
    for k in a["state_dict"]:
        assert torch.equal(a["state_dict"][k], b["state_dict"][k]), k
    assert _strip(full) == _strip(resumed)
    assert _strip(T.read_metrics(tmp_path / "resumed.jsonl")) == _strip(full)
    for m in full:
        assert set(m) == {"epoch", "train_loss", "lr", "resolution", "val_top1", "val_top5",
                          "images", "processes", "images_per_s", "seconds"}
        assert 0 <= m["val_top1"] <= m["val_top5"] <= 1 and np.isfinite(m["train_loss"])
    assert full[-1]["train_loss"] < full[0]["train_loss"]

    model, wnids = C.load_classifier(tmp_path / "full.pt", "cpu")
    assert wnids == WNIDS and not model.training
    assert model(torch.zeros(1, 3, 32, 32)).shape == (1, 4)
    assert json.loads((tmp_path / "full.jsonl").read_text().splitlines()[-1])["epoch"] == 2
    record = json.loads((tmp_path / "run.json").read_text())  # the resumed run's
    assert record["recipe"] == TINY.as_dict() and record["resolved"]["ramp"] == [0, 1]
    assert (record["train_rows"], record["processes"], record["threads"]) == (24, 1, 2)
    assert record["resolved"]["peak_lr"] == pytest.approx(0.5 * 8 / 512)


def test_resume_under_another_thread_count_says_so(dataset, tmp_path, monkeypatch, capsys):
    class Killed(Exception):
        pass

    real_step, steps = T.train_step, []

    def crash_in_second_epoch(*args):
        steps.append(1)
        if len(steps) == 4:
            raise Killed
        return real_step(*args)

    monkeypatch.setattr(T, "train_step", crash_in_second_epoch)
    with pytest.raises(Killed):
        _run(dataset, tmp_path, "t")
    monkeypatch.setattr(T, "train_step", real_step)
    capsys.readouterr()
    _run(dataset, tmp_path, "t", threads=1)
    assert "with threads 2 -> 1" in capsys.readouterr().err
    assert json.loads((tmp_path / "run.json").read_text())["resumed_from"]["threads"] == 2


def test_divergence_stops_with_a_clear_error(dataset, tmp_path):
    beton_path, manifest_path = dataset
    with pytest.raises(ValueError, match=r"diverged in epoch \d: mean training loss (nan|inf).*Lower recipe.lr"):
        T.train_classifier({"real": T.TrainingSource(beton_path, manifest_path)}, None, None, WNIDS, "resnet18",
                           dataclasses.replace(TINY, lr=1e12), 7, tmp_path / "d.pt", tmp_path / "d.jsonl",
                           tmp_path / "d.ckpt", device="cpu", threads=2)
    assert not (tmp_path / "d.pt").exists()
    assert all(np.isfinite(m["train_loss"]) for m in T.read_metrics(tmp_path / "d.jsonl"))


def test_checkpoint_from_another_run_is_refused(dataset, tmp_path):
    torch.save({"identity": {"arch": "resnet50"}, "epoch": 1}, tmp_path / "x.ckpt")
    with pytest.raises(ValueError, match="different run"):
        _run(dataset, tmp_path, "x")


def test_recipe_checks(dataset, tmp_path):
    with pytest.raises(ValueError, match="lacks"):
        R.Recipe.from_dict({k: v for k, v in TINY.as_dict().items() if k != "res_step"})
    with pytest.raises(ValueError, match="unknown keys.*'epoch'"):
        R.Recipe.from_dict({**TINY.as_dict(), "epoch": 3})
    with pytest.raises(ValueError, match="min_res 96 > recipe.max_res 64"):
        R.Recipe.from_dict({**TINY.as_dict(), "min_res": 96})
    with pytest.raises(ValueError, match="precision"):
        R.Recipe.from_dict({**TINY.as_dict(), "precision": "fp8"})
    beton_path, manifest_path = dataset
    with pytest.raises(ValueError, match="classes"):
        T.train_classifier({"real": T.TrainingSource(beton_path, manifest_path)}, None, None, WNIDS[:3], "resnet18",
                           TINY, 0, tmp_path / "m.pt", tmp_path / "m.jsonl",
                           tmp_path / "m.ckpt", device="cpu")


def test_recipe_keys_are_the_schemas():
    import yaml
    from pathlib import Path

    schema = yaml.safe_load((Path(R.__file__).parents[1] / "schemas" / "config.schema.yaml").read_text())
    recipe_schema = schema["$defs"]["recipe"]
    fields = [f.name for f in dataclasses.fields(R.Recipe)]
    assert set(recipe_schema["properties"]) == set(fields)
    assert set(recipe_schema["required"]) == set(fields) - set(R.OPTIONAL)
    assert {f.name: f.default for f in dataclasses.fields(R.Recipe) if f.name in R.OPTIONAL} == R.OPTIONAL


def test_optional_recipe_key_at_its_default_leaves_the_run_identity_alone():
    base = TINY.as_dict()
    assert "generated_bn" not in base
    assert R.Recipe.from_dict({**base, "generated_bn": "shared"}).as_dict() == base
    assert R.Recipe.from_dict({**base, "generated_bn": "separate"}).as_dict()["generated_bn"] == "separate"
    with pytest.raises(ValueError, match="generated_bn must be 'shared' or 'separate'"):
        R.Recipe.from_dict({**base, "generated_bn": "split"})


# ---------------------------------------------------------------- separate BN for generated images

def test_split_batchnorm_routes_real_rows_to_main_and_the_rest_to_aux():
    from genrobust.classifiers import SplitBatchNorm

    torch.manual_seed(0)
    x = torch.randn(6, 3, 4, 4) + torch.arange(6.0).view(6, 1, 1, 1)  # every row its own mean
    split = SplitBatchNorm(torch.nn.BatchNorm2d(3, momentum=1.0))  # running stats = the last batch's
    split.real_rows = (2, 4)
    split.train()
    out = split(x)
    main, aux = torch.nn.BatchNorm2d(3, momentum=1.0).train(), torch.nn.BatchNorm2d(3, momentum=1.0).train()
    generated = aux(torch.cat([x[:2], x[4:]]))
    assert torch.allclose(out, torch.cat([generated[:2], main(x[2:4]), generated[2:]]), atol=1e-6)
    assert torch.allclose(split.main.running_mean, x[2:4].mean(dim=(0, 2, 3)), atol=1e-5)
    assert torch.allclose(split.aux.running_mean, torch.cat([x[:2], x[4:]]).mean(dim=(0, 2, 3)), atol=1e-5)
    split.eval()
    assert torch.allclose(split(x), split.main(x))  # evaluation: the real images' statistics


def test_separate_bn_model_saves_as_a_plain_model():
    from genrobust.classifiers import SplitBatchNorm, create_model, plain_state_dict, with_separate_bn

    plain = create_model("resnet18", 4)
    split = with_separate_bn(create_model("resnet18", 4))
    n_bn = sum(isinstance(m, torch.nn.BatchNorm2d) for m in plain.modules())
    assert sum(isinstance(m, SplitBatchNorm) for m in split.modules()) == n_bn == 20
    state = plain_state_dict(split)
    assert list(state) == list(plain.state_dict())
    plain.load_state_dict(state)  # strict: exactly the plain model's keys


def test_mixture_with_separate_bn_trains_and_evaluates_with_real_statistics(dataset, tmp_path):
    beton_path, manifest_path = dataset
    sources = {"real": T.TrainingSource(beton_path, manifest_path, list(range(0, 32, 2))),
               "gen": T.TrainingSource(beton_path, manifest_path, list(range(1, 32, 2)))}
    runs = {}
    for mode in ("shared", "separate"):
        T.train_classifier(sources, beton_path, manifest_path, WNIDS, "resnet18",
                           {**TINY.as_dict(), "epochs": 1, "generated_bn": mode}, 7, tmp_path / f"{mode}.pt",
                           tmp_path / f"{mode}.jsonl", tmp_path / f"{mode}.ckpt", device="cpu", threads=2)
        runs[mode], _ = C.load_classifier(tmp_path / f"{mode}.pt")
    shared, separate = (runs[m].state_dict() for m in ("shared", "separate"))
    assert list(shared) == list(separate)
    # The first BN sees the images straight after conv1: with separate statistics its running
    # mean is the real rows' alone, so it differs from the shared one.
    assert not torch.allclose(shared["bn1.running_mean"], separate["bn1.running_mean"])


DDP_SCRIPT = """
import json, sys
from genrobust import train as T
a = json.loads(sys.argv[1])
T.train_classifier({"real": T.TrainingSource(a["beton"], a["manifest"], a["indices"])}, a["beton"], a["manifest"], a["wnids"],
                   "resnet18", a["recipe"], 7, a["out"] + ".pt", a["out"] + ".jsonl",
                   a["out"] + ".ckpt", device="cpu", threads=2)
"""


def test_data_parallel_under_torchrun(dataset, tmp_path):
    """What the train rule runs when a job asks for 2 GPUs: torchrun, one process each (gloo
    on the CPU here, NCCL on GPUs). Each process loads half of every batch of the total."""
    import os
    import subprocess
    import sys
    from pathlib import Path

    beton_path, manifest_path = dataset
    script = tmp_path / "ddp_train.py"
    script.write_text(DDP_SCRIPT)
    indices = list(range(0, 32, 2)) + [1, 3, 5, 7, 9, 11, 13, 15]  # 24 rows: 3 steps of 8 (2 x 4)
    args = {"beton": str(beton_path) if beton_path else None, "manifest": str(manifest_path),
            "indices": indices, "wnids": WNIDS, "recipe": {**TINY.as_dict(), "epochs": 2},
            "out": str(tmp_path / "ddp")}
    env = {**os.environ, "PYTHONPATH": str(Path(T.__file__).parents[1]), "OMP_NUM_THREADS": "1"}
    result = subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2",
         str(script), json.dumps(args)], env=env, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    metrics = T.read_metrics(tmp_path / "ddp.jsonl")
    assert [m["epoch"] for m in metrics] == [0, 1]
    assert [(m["processes"], m["images"]) for m in metrics] == [(2, 24), (2, 24)]  # 2 x 3 steps x 4
    assert all(np.isfinite(m["train_loss"]) and 0 <= m["val_top1"] <= 1 for m in metrics)
    model, wnids = C.load_classifier(tmp_path / "ddp.pt", "cpu")
    assert wnids == WNIDS and model(torch.zeros(1, 3, 32, 32)).shape == (1, 4)
    assert not (tmp_path / "ddp.ckpt").exists()


def test_checkpoint_identity_includes_the_draws_a_source_is_keyed_by():
    """An imported copy trained with its set's draws resumes only its own checkpoint, not the
    checkpoint of the same rows drawn under their own name."""
    rows = np.arange(8)
    own = T.TrainingData({"copy": T.TrainingSource("a.beton", "a.csv", rows)}, None, None, "plain")
    keyed = T.TrainingData({"copy": T.TrainingSource("a.beton", "a.csv", rows, "cl80")}, None, None, "plain")
    assert own.digest() != keyed.digest()
    moved = T.TrainingData({"copy": T.TrainingSource("b.beton", "b.csv", rows, "cl80")}, None, None, "plain")
    assert keyed.digest() == moved.digest()  # where the files are is not what the run trains on
