"""Generation shards: planning, kill-and-resume equality, determinism, errors, regeneration."""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from genrobust import generate, io, prompts
from genrobust.demo.models import build_tiny_sd

WNIDS = ["n01440764", "n01443537", "n01484850"]  # tench, goldfish, great white shark


@pytest.fixture(scope="module")
def tiny_sd(tmp_path_factory) -> str:
    return str(build_tiny_sd(tmp_path_factory.mktemp("models") / "sd", seed=0))


def spec_for(model: str, **overrides) -> dict:
    spec = {"model_id": model, "revision": None, "pipeline": "StableDiffusionPipeline",
            "scheduler": "PNDMScheduler", "templates": "openai80", "class_names": "clip", "steps": 2,
            "guidance": 7.5, "height": 32, "width": 32, "batch_size": 2, "dtype": "float32",
            "save_size": 32, "jpeg_quality": 95, "safety_checker": False}
    spec.update(overrides)
    return spec


def run_shard(model: str, out: Path, shard: int = 0, n_shards: int = 2, **kwargs):
    return generate.generate_class_label_shard(
        strategy="cl80", split="train", spec=spec_for(model), wnids=WNIDS, per_class=3, n_shards=n_shards,
        shard=shard, global_seed=0, out_manifest=str(out / f"shard~{shard}" / "manifest.csv"), device="cpu",
        **kwargs)


def file_hashes(folder: Path) -> dict[str, str]:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.glob("*.jpg"))}


def test_plan_covers_every_image_once_whatever_the_shard_count():
    specs = generate.plan_images("cl80", "train", WNIDS, 1300, 0)
    assert len(specs) == 3900
    for n_shards in (1, 7, 500):
        covered = [i for s in range(n_shards) for i in generate.shard_range(len(specs), n_shards, s)]
        assert covered == list(range(len(specs)))
    # Seeds depend on (seed, strategy, split, class, k) only.
    assert specs[5].seed == generate.plan_images("cl80", "train", WNIDS, 10, 0)[5].seed
    assert specs[5].seed != generate.plan_images("cl80", "val", WNIDS, 1300, 0)[5].seed
    assert len({s.seed for s in specs}) == len(specs)
    assert len({s.id for s in specs}) == len(specs)


@pytest.mark.parametrize("per_real", [1, 3])
def test_shards_partition_the_plan_of_either_kind(tmp_path, per_real):
    index = pd.DataFrame({"path": [f"/r/{WNIDS[i % 3]}_{i}.JPEG" for i in range(17)],
                          "wnid": [WNIDS[i % 3] for i in range(17)]})
    io.write_csv(tmp_path / "real.csv", index)
    for kind, spec, full in (
            ("pixmix", {"images_per_real": per_real}, generate.plan_from_sources("s", "train", index, per_real, 0)),
            ("class_labels", {"per_class": 7}, generate.plan_images("s", "train", WNIDS, 7, 0))):
        for n_shards in (1, 4, 17):
            shards = [generate.plan_shard(kind, "s", "train", spec, WNIDS, n_shards, i, 0, str(tmp_path / "real.csv"))
                      for i in range(n_shards)]
            assert [item for shard in shards for item in shard] == full


def test_killed_and_rerun_shard_equals_uninterrupted(tiny_sd, tmp_path):
    whole = tmp_path / "whole"
    manifest = run_shard(tiny_sd, whole)
    assert len(manifest) == 4  # 9 images over 2 shards: shard 0 holds [0, 4), shard 1 [4, 9)
    killed = tmp_path / "killed"
    assert run_shard(tiny_sd, killed, max_batches=1) is None  # stopped after one batch of 2
    shard_dir = killed / "shard~0"
    assert not (shard_dir / "manifest.csv").exists()
    assert len(file_hashes(shard_dir)) == 2
    # A kill can also cut the progress log mid-line: that batch is simply redone.
    with open(shard_dir / "progress.jsonl", "a") as f:
        f.write('{"rows": [{"id": "trunc')
    resumed = run_shard(tiny_sd, killed)
    assert file_hashes(shard_dir) == file_hashes(whole / "shard~0")
    assert (shard_dir / "manifest.csv").read_bytes() == (whole / "shard~0" / "manifest.csv").read_bytes()
    assert resumed["id"].tolist() == manifest["id"].tolist()


def test_resumed_shard_reports_its_real_speed(tiny_sd, tmp_path):
    assert run_shard(tiny_sd, tmp_path, max_batches=1) is None
    run_shard(tiny_sd, tmp_path)
    stats = json.loads((tmp_path / "shard~0" / "stats.json").read_text())
    records = [json.loads(line) for line in (tmp_path / "shard~0" / "progress.jsonl").read_text().splitlines()]
    assert len(records) == 2 and all(r["seconds"] > 0 for r in records)  # one batch per run
    assert stats["seconds"] == pytest.approx(sum(r["seconds"] for r in records), abs=0.01)
    assert stats["generated_now"] == 2 and stats["threads"] >= 1


def test_a_truncated_image_of_a_finished_shard_is_redone(tiny_sd, tmp_path):
    """Every file's size is in the progress record: a finished shard whose image was cut short
    (or removed) is not taken at its word; the batch is redone, ending as an untouched shard."""
    whole = run_shard(tiny_sd, tmp_path / "a")
    before = file_hashes(tmp_path / "a" / "shard~0")
    victim = tmp_path / "a" / "shard~0" / whole["path"].iloc[3].split("/")[1]
    victim.write_bytes(victim.read_bytes()[:100])
    run_shard(tiny_sd, tmp_path / "a")
    assert file_hashes(tmp_path / "a" / "shard~0") == before


def test_full_disk_ends_with_one_line_and_keeps_finished_batches(tiny_sd, tmp_path, monkeypatch):
    import errno

    from PIL import Image

    real_save, saves = Image.Image.save, []

    def save_until_the_disk_is_full(self, fp, *args, **kwargs):
        saves.append(fp)
        if len(saves) > 2:  # the first batch of 2 fits, the third image does not
            raise OSError(errno.ENOSPC, "No space left on device")
        return real_save(self, fp, *args, **kwargs)

    monkeypatch.setattr(Image.Image, "save", save_until_the_disk_is_full)
    with pytest.raises(generate.GenerationError, match=r"disk full while writing .*shard~0 \(0\.\d MB"):
        run_shard(tiny_sd, tmp_path)
    assert len(saves) == 3
    monkeypatch.undo()
    shard = tmp_path / "shard~0"
    assert len(file_hashes(shard)) == 2 and not list(shard.glob(".*"))  # no partial file anywhere
    run_shard(tiny_sd, tmp_path)
    run_shard(tiny_sd, tmp_path / "whole")
    assert file_hashes(shard) == file_hashes(tmp_path / "whole" / "shard~0") and len(file_hashes(shard)) == 4


def test_finished_shard_reruns_without_loading_the_model(tiny_sd, tmp_path):
    model = tmp_path / "model"
    shutil.copytree(tiny_sd, model)
    out = tmp_path / "out"
    run_shard(str(model), out)
    before = file_hashes(out / "shard~0")
    shutil.rmtree(model)  # loading it now would fail: a finished shard never loads it
    again = run_shard(str(model), out)
    assert len(again) == 4 and file_hashes(out / "shard~0") == before


def test_changed_settings_restart_the_shard_instead_of_mixing_images(tiny_sd, tmp_path):
    assert run_shard(tiny_sd, tmp_path, max_batches=1) is None  # 2 of 4 images, then "killed"
    partial = file_hashes(tmp_path / "shard~0")
    changed = generate.generate_class_label_shard(
        strategy="cl80", split="train", spec=spec_for(tiny_sd, steps=3), wnids=WNIDS, per_class=3, n_shards=2,
        shard=0, global_seed=0, out_manifest=str(tmp_path / "shard~0" / "manifest.csv"), device="cpu")
    after = file_hashes(tmp_path / "shard~0")
    assert len(changed) == 4 and (changed["steps"] == 3).all()
    assert not set(partial.items()) & set(after.items())  # no image of the old settings survives


def test_a_grown_set_keeps_the_images_of_the_smaller_one(tiny_sd, tmp_path):
    """Raising per_class (the scaling study) renders only the new images; shrinking keeps a subset."""
    def shard(per_class):
        return generate.generate_class_label_shard(
            strategy="cl80", split="train", spec=spec_for(tiny_sd), wnids=WNIDS, per_class=per_class, n_shards=1,
            shard=0, global_seed=0, out_manifest=str(tmp_path / "shard~0" / "manifest.csv"), device="cpu")

    small = shard(2)
    before = {p.name: (p.stat().st_mtime_ns, p.read_bytes()) for p in (tmp_path / "shard~0").glob("*.jpg")}
    grown = shard(4)
    assert len(small) == 6 and len(grown) == 12
    assert set(small["id"]) < set(grown["id"])
    after = {p.name: (p.stat().st_mtime_ns, p.read_bytes()) for p in (tmp_path / "shard~0").glob("*.jpg")}
    assert all(after[name] == before[name] for name in before)  # not re-rendered, not rewritten
    seeds = grown.set_index("id")["seed"]
    assert (small.set_index("id")["seed"] == seeds[small["id"]]).all()
    shrunk = shard(1)
    assert set(shrunk["id"]) < set(small["id"]) and len(list((tmp_path / "shard~0").glob("*.jpg"))) == 3
    assert {p.name: p.read_bytes() for p in (tmp_path / "shard~0").glob("*.jpg")} == \
        {name: data for name, (_, data) in before.items() if name[:-4] in set(shrunk["id"])}


def test_manifest_records_seed_prompt_template_and_model(tiny_sd, tmp_path):
    manifest = run_shard(tiny_sd, tmp_path, shard=1)
    assert list(manifest.columns) == generate.MANIFEST_COLUMNS
    assert set(manifest["template"]) <= set(prompts.OPENAI_80)
    names = prompts.load_class_names(WNIDS)
    for row in manifest.itertuples():
        assert row.prompt == row.template.format(names[row.wnid])
        assert (tmp_path / row.path).is_file()  # relative to the split folder
    assert (manifest["model"] == tiny_sd).all() and (manifest["steps"] == 2).all()
    assert (manifest["attempt"] == 0).all()


def test_same_config_gives_bit_identical_images(tiny_sd, tmp_path):
    run_shard(tiny_sd, tmp_path / "a", shard=1)
    run_shard(tiny_sd, tmp_path / "b", shard=1)
    a, b = file_hashes(tmp_path / "a" / "shard~1"), file_hashes(tmp_path / "b" / "shard~1")
    assert a == b and len(a) == 5
    assert len(set(a.values())) == 5  # and different images differ


@pytest.mark.parametrize("overrides, message", [
    ({"pipeline": "NoSuchPipeline"}, "unknown diffusers pipeline class 'NoSuchPipeline'"),
    ({"scheduler": "NoSuchScheduler"}, "unknown diffusers scheduler 'NoSuchScheduler'"),
])
def test_bad_pipeline_or_scheduler_fails_before_generating(tiny_sd, tmp_path, overrides, message):
    with pytest.raises(generate.GenerationError, match=message):
        generate.generate_class_label_shard(
            strategy="cl80", split="train", spec=spec_for(tiny_sd, **overrides), wnids=WNIDS, per_class=3,
            n_shards=1, shard=0, global_seed=0, out_manifest=str(tmp_path / "m.csv"), device="cpu")
    assert not list(tmp_path.glob("*.jpg"))


def test_bad_model_path_fails_with_a_clear_message(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(generate.GenerationError, match="no model_index.json"):
        generate.load_pipeline(str(tmp_path / "empty"), None, "StableDiffusionPipeline", None, "float32", "cpu", False)


def test_stored_images_keep_their_aspect_and_are_only_shrunk():
    from PIL import Image

    from genrobust.generate.shard import fit_longer_side

    assert fit_longer_side(Image.new("RGB", (500, 375)), 256).size == (256, 192)
    assert fit_longer_side(Image.new("RGB", (375, 500)), 256).size == (192, 256)
    assert fit_longer_side(Image.new("RGB", (512, 512)), 500).size == (500, 500)
    small = Image.new("RGB", (200, 150))
    assert fit_longer_side(small, 500) is small  # no upscaling: FFCV's max_resolution only shrinks too


def test_defective_images_are_detected():
    fine = np.full((8, 8, 3), 0.5, dtype=np.float32)
    assert generate.is_defective(fine) == ""
    assert generate.is_defective(np.zeros_like(fine)) == "black"
    nan = fine.copy()
    nan[0, 0, 0] = np.nan
    assert generate.is_defective(nan) == "nan"


def text_to_image(pipe, texts):
    """The call generate makes for a class-label batch: pending image indices + their generators."""
    def call(pending, generators):
        return pipe(prompt=[texts[i] for i in pending], height=32, width=32, num_inference_steps=2,
                    guidance_scale=7.5, generator=generators, output_type="np")
    return call


class FirstSeedsBroken:
    """The real tiny pipeline, except that images from `broken` seeds come out NaN or black,
    as an fp16 VAE overflow or the safety checker's black square would."""

    def __init__(self, call, broken: dict[int, str]):
        self.call, self.broken = call, broken

    def __call__(self, pending, generators):
        seeds = [g.initial_seed() for g in generators]
        out = self.call(pending, generators)
        for j, seed in enumerate(seeds):
            if self.broken.get(seed) == "nan":
                out.images[j][:] = np.nan
            elif self.broken.get(seed) == "black":
                out.images[j][:] = 0
        return out


def test_nan_and_black_images_are_regenerated_with_the_next_seed(tiny_sd):
    pipe = generate.load_pipeline(tiny_sd, None, "StableDiffusionPipeline", None, "float32", "cpu", False)
    seeds = [11, 22, 33]
    call = text_to_image(pipe, ["a", "b", "c"])
    broken = FirstSeedsBroken(call, {11: "nan", 33: "black", generate.retry_seed(33, 1): "black"})
    images, attempts, reasons = generate._generate_with_retries(broken, seeds, "cpu")
    assert attempts == [1, 0, 2] and reasons == ["nan", "", "black"]
    assert all(im.dtype == np.uint8 and im.max() > 5 for im in images)
    # The regenerated image is exactly the image of the retry seed (generated in the same batch
    # composition as the retry: CPU kernels may round differently at another batch size).
    direct, _, _ = generate._generate_with_retries(text_to_image(pipe, ["a", "c"]),
                                                   [generate.retry_seed(11, 1), generate.retry_seed(33, 1)], "cpu")
    assert np.array_equal(images[0], direct[0])
    always = FirstSeedsBroken(text_to_image(pipe, ["b"]),
                              {generate.retry_seed(22, a): "nan" for a in range(generate.MAX_ATTEMPTS)})
    with pytest.raises(generate.GenerationError, match="stayed NaN/black"):
        generate._generate_with_retries(always, [22], "cpu")


def test_gather_concatenates_shards_and_rejects_duplicates(tiny_sd, tmp_path):
    paths = []
    for shard in (0, 1):
        run_shard(tiny_sd, tmp_path, shard=shard)
        paths.append(str(tmp_path / f"shard~{shard}" / "manifest.csv"))
    summary = generate.gather_manifests(paths, str(tmp_path / "manifest.csv"))
    gathered = io.read_csv(tmp_path / "manifest.csv")
    assert len(gathered) == 9 == summary["images"] and gathered["id"].is_unique
    assert gathered.groupby("wnid").size().tolist() == [3, 3, 3] == list(summary["per_class"]["counts"].values())
    # the rows of each shard in shard order, every column as the shard wrote it
    shards = pd.concat([io.read_csv(p) for p in paths], ignore_index=True)
    assert gathered.astype(str).equals(shards.astype(str))
    with pytest.raises(generate.GenerationError, match=r"duplicate image ids across shards: \['cl80-"):
        generate.gather_manifests(paths + paths[:1], str(tmp_path / "twice.csv"))
    assert not (tmp_path / "twice.csv").exists()


# ----------------------------------------------------------------------------- every strategy kind

@pytest.fixture(scope="module")
def kinds_setup(tmp_path_factory):
    """Tiny models of every kind, a mixing set, random DeepAugment weights and 6 real images."""
    from PIL import Image

    from genrobust.demo.deepaugment_weights import write_random_deepaugment_weights
    from genrobust.demo.fractals import write_fractal_mixing_set
    from genrobust.demo.models import build_all

    root = tmp_path_factory.mktemp("kinds")
    models = build_all(root / "models")
    write_random_deepaugment_weights(root / "deepaugment", seed=0)
    write_fractal_mixing_set(root / "fractals", n=4, size=32, seed=0)
    rows = []
    for i, wnid in enumerate(WNIDS * 2):
        path = root / "real" / wnid / f"{wnid}_{i}.JPEG"
        path.parent.mkdir(parents=True, exist_ok=True)
        h, w = (48, 64) if i % 2 == 0 else (64, 48)  # ImageNet-like 4:3 and 3:4 sources
        yy, xx = np.mgrid[0:h, 0:w]
        Image.fromarray(np.stack([xx * 4, yy * 4, np.full((h, w), 40 * i)], -1).astype(np.uint8)).save(path)
        rows.append({"path": str(path), "wnid": wnid})
    io.write_csv(root / "real.csv", pd.DataFrame(rows))
    return root, models


KIND_SPECS = {
    "class_labels": {"model": "sd", "pipeline": "StableDiffusionPipeline", "templates": "openai80",
                     "guidance": 7.5, "per_class": 2, "width": 48},  # non-square by design: 48 x 32
    "img2img": {"model": "sd", "pipeline": "StableDiffusionImg2ImgPipeline", "templates": "openai80",
                "strength": 0.75, "guidance": 7.5},
    "image_variation": {"model": "image_variation", "pipeline": "StableDiffusionImageVariationPipeline",
                        "guidance": 3.0},
    "class_conditional": {"model": "dit", "pipeline": "DiTPipeline", "guidance": 3.0, "per_class": 2},
    "deepaugment": {"edsr_input_size": 12, "cae_input_size": 20},  # the original's 128 / 512 take seconds
    "pixmix": {},
}


@pytest.mark.parametrize("kind", sorted(KIND_SPECS))
def test_every_strategy_kind_generates_a_complete_reproducible_shard(kinds_setup, tmp_path, kind):
    root, models = kinds_setup
    spec = {"kind": kind, "steps": 2, "height": 32, "width": 32, "batch_size": 4, "dtype": "float32",
            "save_size": 32, "jpeg_quality": 95, "scheduler": None, "revision": None,
            "weights": str(root / "deepaugment"), "mixing_set": str(root / "fractals"), **KIND_SPECS[kind]}
    if "model" in spec:
        spec["model_id"] = str(models[spec.pop("model")])

    def run(out):
        return generate.generate_shard(strategy="s", split="train", spec=spec, wnids=WNIDS, n_shards=1, shard=0,
                                       global_seed=0, out_manifest=str(out / "shard~0" / "manifest.csv"),
                                       real_index=str(root / "real.csv"), device="cpu")

    manifest = run(tmp_path / "a")
    assert len(manifest) == 6 and manifest["id"].is_unique
    assert sorted(manifest.groupby("wnid").size()) == [2, 2, 2]
    if kind == "class_conditional":
        from genrobust.datasets import imagenet_wnids
        assert manifest["class_id"].tolist() == [imagenet_wnids().index(w) for w in manifest["wnid"]]
    elif kind != "class_labels":  # one image per real image, which the manifest names
        assert sorted(manifest["source"]) == sorted(io.read_csv(root / "real.csv")["path"])
    # Stored images keep their aspect, the longer side shrunk to save_size (32): copies of a 4:3
    # or 3:4 source stay 4:3 or 3:4 like their real twins; pipeline outputs keep height x width.
    from PIL import Image
    for row in manifest.itertuples():
        stored = Image.open(tmp_path / "a" / row.path).size
        if kind in ("deepaugment", "pixmix"):
            w, h = Image.open(row.source).size
            assert stored == ((32, 24) if w > h else (24, 32)), row.path
        else:
            assert stored == {"class_labels": (32, 21)}.get(kind, (32, 32)), row.path
    if kind == "img2img":
        assert (manifest["strength"] == 0.75).all() and manifest["prompt"].str.len().min() > 0
    run(tmp_path / "b")  # the same config again: the same bytes
    assert file_hashes(tmp_path / "a" / "shard~0") == file_hashes(tmp_path / "b" / "shard~0")


def test_a_shard_resumed_with_other_threads_says_so_and_records_both(tiny_sd, tmp_path, capsys):
    """CPU kernels round differently with other thread counts: the finished images are kept, the
    shard's settings record every runtime, and a NOTICE says the shard is no longer byte-identical."""
    import torch

    threads = torch.get_num_threads()
    try:
        torch.set_num_threads(2)
        assert run_shard(tiny_sd, tmp_path, max_batches=1) is None  # 2 of 4 images, then "killed"
        kept = file_hashes(tmp_path / "shard~0")
        capsys.readouterr()
        torch.set_num_threads(1)
        assert run_shard(tiny_sd, tmp_path) is not None
    finally:
        torch.set_num_threads(threads)
    err = capsys.readouterr().err
    assert "NOTICE: resuming" in err and "threads 2 -> 1" in err
    settings = json.loads((tmp_path / "shard~0/settings.json").read_text())
    assert [r["threads"] for r in settings["runtimes"]] == [2, 1]
    after = file_hashes(tmp_path / "shard~0")
    assert all(after[name] == digest for name, digest in kept.items())  # the finished images stayed


def test_a_hub_models_manifests_record_the_commit_it_was_loaded_at(tiny_sd, tmp_path):
    """With no revision in config, the hub snapshot's commit (its cache folder names it) is recorded."""
    from genrobust.generate.pipelines import load_pipeline, resolved_revision

    commit = "0123456789abcdef0123456789abcdef01234567"
    snapshot = tmp_path / "models--org--sd" / "snapshots" / commit
    shutil.copytree(tiny_sd, snapshot)
    pipe = load_pipeline(str(snapshot), None, "StableDiffusionPipeline", None, "float32", "cpu", False, False)
    assert resolved_revision(pipe, None) == commit
    assert resolved_revision(pipe, "v2.0") == "v2.0"
    assert resolved_revision(load_pipeline(tiny_sd, None, "StableDiffusionPipeline", None, "float32", "cpu", False,
                                           False), None) == ""  # a local folder has no commit
