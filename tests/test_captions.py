"""Prompts from a user's captions file (genrobust.captions): per class for class_labels (an LLM's
scene descriptions), per real image for the `captions` kind (Real-Fake / SynCLR: BLIP-2 captions)."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import pandas as pd
import pytest
import yaml
from PIL import Image
from snakemake.utils import validate

from conftest import REPO, check_semantics
from genrobust import captions, generate, io, prompts
from genrobust.config import ConfigError
from genrobust.demo.models import build_tiny_sd

WNIDS = ["n01440764", "n01443537", "n01484850"]  # tench, goldfish, great white shark
CLASS_CAPTIONS = {
    "n01440764": ["a tench in a fishing net", "a tench on wet grass", "an angler holding a tench"],
    "n01443537": ["a goldfish in a glass bowl", "two goldfish in a pond"],
    "n01484850": ["a great white shark below a boat"],
}


def write_class_captions(path: Path, by_class=CLASS_CAPTIONS) -> str:
    rows = [(w, c) for w, caps in by_class.items() for c in caps]
    pd.DataFrame(rows, columns=["wnid", "caption"]).to_csv(path, index=False)
    return str(path)


@pytest.fixture(scope="module")
def tiny_sd(tmp_path_factory) -> str:
    return str(build_tiny_sd(tmp_path_factory.mktemp("models") / "sd", seed=0))


@pytest.fixture(scope="module")
def real(tmp_path_factory):
    """Six real train images (two per class) in the ImageNet layout, their index, and a
    path,caption file: four rows by relative path, one by bare file name, one by absolute path."""
    root = tmp_path_factory.mktemp("real")
    rows = []
    for i, wnid in enumerate(WNIDS * 2):
        path = root / "train" / wnid / f"{wnid}_{i}.JPEG"
        path.parent.mkdir(parents=True, exist_ok=True)
        Image.new("RGB", (40, 30), (40 * i, 20, 0)).save(path)
        rows.append({"path": str(path), "wnid": wnid})
    index = pd.DataFrame(rows)
    io.write_csv(root / "real.csv", index)
    keys = [f"{w}/{Path(p).name}" for p, w in zip(index["path"], index["wnid"])]
    keys[4] = Path(index["path"][4]).name  # a bare file name, unique in the file
    keys[5] = index["path"][5]  # a full path: matched on its last two parts
    table = pd.DataFrame({"path": keys, "caption": [f"a photo showing scene number {i}" for i in range(6)]})
    table.to_csv(root / "captions.csv", index=False)
    return root, index, table


def spec(model: str, **overrides) -> dict:
    return {"model_id": model, "pipeline": "StableDiffusionPipeline", "scheduler": None, "steps": 2, "height": 32,
            "width": 32, "batch_size": 2, "dtype": "float32", "save_size": 32, **overrides}


# ----------------------------------------------------------------------------- per class


def test_class_caption_is_seeded_and_covers_the_class(tmp_path):
    path = write_class_captions(tmp_path / "c.csv")
    prompter = prompts.Prompter(["{caption}"], WNIDS, captions=path)
    for wnid, caps in CLASS_CAPTIONS.items():
        drawn = [prompter.compose(wnid, seed) for seed in range(60)]
        assert {text for _, text, _ in drawn} == set(caps)  # every caption of the class, none of another
        for seed, (template, text, source) in enumerate(drawn):
            assert template == "{caption}" and source == f"{path}#{wnid}:{caps.index(text)}"
            assert prompter.compose(wnid, seed) == (template, text, source)  # the seed decides
    # a fresh prompter (another process) draws the same captions
    again = prompts.Prompter(["{caption}"], WNIDS, captions=path)
    assert [again.prompt("n01440764", s) for s in range(20)] == [prompter.prompt("n01440764", s) for s in range(20)]


def test_caption_template_may_name_the_class_and_other_fields(tmp_path):
    path = write_class_captions(tmp_path / "c.csv")
    prompter = prompts.Prompter(["a photo of a {}, {caption}", "{caption}, a kind of {hypernym}"], WNIDS,
                                captions=path)
    made = [prompter.compose("n01443537", s) for s in range(40)]
    texts = {text for _, text, _ in made}
    assert {f"a photo of a goldfish, {c}" for c in CLASS_CAPTIONS["n01443537"]} <= texts
    assert any(t.endswith(", a kind of cyprinid") for t in texts)


@pytest.mark.parametrize("template, ok", [
    ("{caption}", True), ("a {} {caption}", True), ("a {} {} {caption}", False), ("{hypernym}", False),
    ("{caption} {captions}", False)])
def test_a_caption_template_may_leave_out_the_class_name_only(template, ok):
    if ok:
        assert prompts.check_template(template) == template
    else:
        with pytest.raises(ValueError, match="exactly one"):
            prompts.check_template(template)


def test_a_class_without_a_caption_fails_naming_the_file_and_class(tmp_path):
    path = write_class_captions(tmp_path / "c.csv", {w: CLASS_CAPTIONS[w] for w in WNIDS[:2]})
    with pytest.raises(ValueError, match=rf"captions file {path} has no caption for 1 of the 3 classes \(n01484850\)"):
        captions.read_class_captions(path, WNIDS)
    (tmp_path / "cols.csv").write_text("class,text\nn01440764,a tench\n")
    with pytest.raises(ValueError, match="has no column wnid, caption"):
        captions.read_class_captions(tmp_path / "cols.csv", WNIDS)


def test_a_class_captions_strategy_without_templates_prompts_with_the_caption():
    def templates(**given):
        return generate.StrategySpec.from_dict(given).prompt_templates()

    assert templates(kind="class_labels", captions="c.csv", templates=["{} {caption}"]) == ("{} {caption}",)
    assert templates(kind="class_labels", captions="c.csv") == ("{caption}",)
    assert templates(kind="class_labels") == "openai80"
    assert templates(kind="captions", captions="i.csv") == ("{caption}",)


def test_class_caption_shard_writes_each_prompt_from_its_class(tiny_sd, tmp_path):
    path = write_class_captions(tmp_path / "c.csv")
    manifest = generate.generate_shard(
        strategy="llm", split="train", spec=spec(tiny_sd, kind="class_labels", captions=path, per_class=3,
                                                  templates=["a photo of a {}, {caption}"]),
        wnids=WNIDS, n_shards=1, shard=0, global_seed=0, out_manifest=str(tmp_path / "s" / "manifest.csv"),
        device="cpu")
    names = prompts.load_class_names(WNIDS)
    assert len(manifest) == 9
    for row in manifest.itertuples():
        caption = row.prompt.removeprefix(f"a photo of a {names[row.wnid]}, ")
        assert caption in CLASS_CAPTIONS[row.wnid] and row.template == "a photo of a {}, {caption}"
        assert row.caption_source == f"{path}#{row.wnid}:{CLASS_CAPTIONS[row.wnid].index(caption)}"


def test_editing_class_captions_changes_the_settings_and_others_keep_theirs(tmp_path):
    path = write_class_captions(tmp_path / "c.csv")
    make = generate.RENDERERS["class_labels"]
    with_captions = generate.StrategySpec.from_dict({"kind": "class_labels", "captions": path, "model_id": "m"})
    before = make(with_captions, WNIDS, "cpu").settings()
    edited = copy.deepcopy(CLASS_CAPTIONS)
    edited["n01443537"][1] = "two goldfish in a garden pond"
    write_class_captions(tmp_path / "c.csv", edited)
    after = make(with_captions, WNIDS, "cpu").settings()
    assert before.keys() == after.keys() == {"captions_sha256"} and before != after
    # a strategy without captions adds nothing to its settings (its shards are not restarted)
    plain = generate.StrategySpec.from_dict({"kind": "class_labels", "model_id": "m"})
    assert make(plain, WNIDS, "cpu").settings() == {}


def test_a_caption_template_without_captions_fails_before_generating():
    s = generate.StrategySpec.from_dict({"kind": "class_labels", "model_id": "m", "templates": ["{caption}"]})
    with pytest.raises(generate.GenerationError, match=r"uses \{caption\} but the strategy has no captions file"):
        generate.RENDERERS["class_labels"](s, WNIDS, "cpu")


# ----------------------------------------------------------------------------- per real image


def test_image_captions_match_by_relative_path_bare_name_and_full_path(real):
    root, index, table = real
    found = captions.read_image_captions(root / "captions.csv", index["path"])
    assert [found[p][0] for p in index["path"]] == list(table["caption"])
    assert found[index["path"][4]][1] == Path(index["path"][4]).name  # matched by its bare name
    assert found[index["path"][0]][1] == f"{WNIDS[0]}/{Path(index['path'][0]).name}"


def test_image_captions_read_in_chunks_give_the_same_answer(real, monkeypatch):
    root, index, _ = real
    whole = captions.read_image_captions(root / "captions.csv", index["path"])
    monkeypatch.setattr(captions, "CHUNK_ROWS", 2)
    assert captions.read_image_captions(root / "captions.csv", index["path"]) == whole


def test_missing_or_ambiguous_image_captions_fail_naming_the_file_count_and_paths(real, tmp_path):
    root, index, table = real
    cut = table.drop(index=[1, 2])
    cut.to_csv(tmp_path / "cut.csv", index=False)
    second = f"{WNIDS[1]}/{Path(index['path'][1]).name}"
    with pytest.raises(ValueError, match=rf"captions file {tmp_path}/cut.csv has no caption for 2 of the 6 real "
                                         rf"images it must describe \(first: {second}, "):
        captions.read_image_captions(tmp_path / "cut.csv", index["path"])
    # the bare name of image 4 given twice: ambiguous, so not a match
    twice = pd.concat([table, pd.DataFrame({"path": [f"elsewhere/{table['path'][4]}"], "caption": ["another"]})])
    twice.to_csv(tmp_path / "twice.csv", index=False)
    with pytest.raises(ValueError, match="no caption for 1 of the 6"):
        captions.read_image_captions(tmp_path / "twice.csv", index["path"])
    clash = pd.concat([table, table.iloc[[0]].assign(caption="something else")])
    clash.to_csv(tmp_path / "clash.csv", index=False)
    with pytest.raises(ValueError, match="two different captions"):
        captions.read_image_captions(tmp_path / "clash.csv", index["path"])


def caption_shard(model, real, out: Path, captions_file=None, **overrides):
    root, _, _ = real
    s = spec(model, kind="captions", captions=str(captions_file or root / "captions.csv"), **overrides)
    return generate.generate_shard(strategy="blip", split="train", spec=s, wnids=WNIDS, n_shards=2, shard=0,
                                   global_seed=0, out_manifest=str(out / "shard~0" / "manifest.csv"),
                                   real_index=str(root / "real.csv"), device="cpu")


def test_caption_shard_prompts_with_each_real_images_caption(tiny_sd, real, tmp_path):
    root, index, table = real
    manifest = caption_shard(tiny_sd, real, tmp_path / "a", templates=["a photo of a {}, {caption}"])
    assert len(manifest) == 3  # shard 0 of 2 of six real images
    caption_of = dict(zip(index["path"], table["caption"]))
    wnid_of = dict(zip(index["path"], index["wnid"]))
    names = prompts.load_class_names(WNIDS)
    for row in manifest.itertuples():
        assert row.wnid == wnid_of[row.source]  # labelled with its real image's class
        assert row.prompt == f"a photo of a {names[row.wnid]}, {caption_of[row.source]}"
        assert row.caption_source.startswith(f"{root}/captions.csv#") and row.template == "a photo of a {}, {caption}"
    bare = caption_shard(tiny_sd, real, tmp_path / "b")  # no templates: the caption is the prompt
    assert bare["prompt"].tolist() == [caption_of[s] for s in bare["source"]]


def test_a_real_image_without_a_caption_fails_before_loading_the_model(real, tmp_path):
    root, index, table = real
    table.drop(index=[0]).to_csv(tmp_path / "cut.csv", index=False)
    with pytest.raises(generate.GenerationError, match=rf"cut.csv has no caption for 1 of the 3 real images"):
        caption_shard("/nonexistent/model", real, tmp_path / "a", captions_file=tmp_path / "cut.csv")


def test_editing_a_caption_restarts_only_the_shards_that_use_it(real, tmp_path):
    root, index, table = real

    def settings(shard, path):
        s = generate.StrategySpec.from_dict({"kind": "captions", "captions": str(path), "model_id": "m"})
        renderer = generate.RENDERERS["captions"](s, WNIDS, "cpu")
        renderer.plan(generate.plan_shard("captions", "blip", "train", s, WNIDS, 2, shard, 0, str(root / "real.csv")))
        return renderer.settings()

    before = [settings(i, root / "captions.csv") for i in (0, 1)]
    table.assign(caption=[c + " (edited)" if i == 4 else c for i, c in enumerate(table["caption"])]).to_csv(
        tmp_path / "edited.csv", index=False)
    after = [settings(i, tmp_path / "edited.csv") for i in (0, 1)]
    assert before[0] == after[0]  # shard 0 holds images 0-2
    assert before[1] != after[1]  # shard 1 holds image 4


# ----------------------------------------------------------------------------- plan-time checks

DEMO = yaml.safe_load((REPO / "config/demo.yaml").read_text())
DEMO_WNIDS = [w for w in (REPO / "config/demo_classes.txt").read_text().splitlines() if w.startswith("n0")]
SCHEMA = str(REPO / "workflow/schemas/config.schema.yaml")


@pytest.fixture
def in_repo(monkeypatch):
    monkeypatch.chdir(REPO)


def with_strategy(name: str, strategy: dict, check_paths=True) -> dict:
    """demo.yaml with one more strategy generated for demo10, validated as the Snakefile does."""
    config = copy.deepcopy(DEMO)
    config["strategies"][name] = {**config["strategies"]["cl80"], "templates": None, **strategy}
    config["strategies"][name] = {k: v for k, v in config["strategies"][name].items() if v is not None}
    gen = {"train_shards": 1, "val_shards": 0}
    if strategy["kind"] == "class_labels":
        gen["train_per_class"] = 4
    config["datasets"]["demo10"]["generate"][name] = gen
    config["check_paths"] = check_paths
    validate(config, SCHEMA)
    return config


def test_demo_caption_strategies_plan(in_repo):
    check_semantics(with_strategy("llm", {"kind": "class_labels", "captions": "config/demo_captions.csv"}))
    check_semantics(with_strategy("blip", {"kind": "captions",
                                           "captions": "results/demo/data/imagenet/train_captions.csv"}))


@pytest.mark.parametrize("strategy, message", [
    ({"kind": "captions"}, r"^strategies\.s\.captions: a captions strategy needs a file"),
    ({"kind": "class_labels", "captions": "config/nope.csv"},
     r"^strategies\.s\.captions: 'config/nope.csv' is not an "),
    ({"kind": "class_labels", "templates": ["a {}, {caption}"]},
     r"^strategies\.s\.templates: 'a \{\}, \{caption\}' uses \{caption\}, but the strategy has no captions file"),
    ({"kind": "class_labels", "captions": "config/demo_captions.csv", "templates": ["a photo of a {}"]},
     r"^strategies\.s\.templates: no template uses \{caption\}"),
    ({"kind": "captions", "captions": "x.csv", "templates": "hypernym"},
     r"^strategies\.s\.templates: 'a photo of a \{\}, a kind of \{hypernym\}' has no \{caption\}"),
    ({"kind": "img2img", "captions": "config/demo_captions.csv"},
     r"^strategies\.s\.captions: a img2img strategy takes no"),
])
def test_caption_config_errors_name_the_key(in_repo, strategy, message):
    with pytest.raises(ConfigError, match=message):
        check_semantics(with_strategy("s", strategy))


def test_class_captions_must_cover_every_class_at_plan_time(in_repo, tmp_path):
    lines = (REPO / "config/demo_captions.csv").read_text().splitlines()
    (tmp_path / "short.csv").write_text("\n".join(line for line in lines if not line.startswith("n07753275")))
    with pytest.raises(ConfigError, match=rf"^strategies\.s\.captions: captions file {tmp_path}/short.csv has no "
                                          r"caption for 1 of the 10 classes \(n07753275\)"):
        check_semantics(with_strategy("s", {"kind": "class_labels", "captions": str(tmp_path / "short.csv")}))
    (tmp_path / "cols.csv").write_text("file,text\nx.JPEG,a\n")
    with pytest.raises(ConfigError, match=r"^strategies\.s\.captions: captions file .*cols.csv has no column path, "):
        check_semantics(with_strategy("s", {"kind": "captions", "captions": str(tmp_path / "cols.csv")}))


def test_demo_class_captions_name_their_class(in_repo):
    names = prompts.load_class_names(DEMO_WNIDS)
    by_class = captions.read_class_captions(REPO / "config/demo_captions.csv", names)
    for wnid, caps in by_class.items():
        assert len(caps) >= 3 and all(names[wnid].split()[-1].lower() in c.lower() for c in caps), wnid


# ----------------------------------------------------------------------------- demo data


def test_demo_data_captions_every_train_image_with_what_it_shows(tmp_path):
    from genrobust import datasets
    from genrobust.demo import data

    classes = DEMO_WNIDS
    root = tmp_path / "data"
    data.write_demo_data(root, classes, seed=0, n_train=4, n_val=1, n_test=1, n_corrupt=1)
    train = datasets.index_image_folder(root / "imagenet" / "train", classes)
    found = captions.read_image_captions(root / data.TRAIN_CAPTIONS, train["path"])
    concepts = {w: data.concept_for(i, len(classes)) for i, w in enumerate(sorted(classes))}
    for path, wnid in zip(train["path"], train["wnid"]):
        caption, key = found[path]
        c = concepts[wnid]
        assert key == f"{wnid}/{Path(path).name}"
        assert f"{data.TEXTURE_WORDS[c.texture]} " in caption and caption.split(" of a ")[0].split(" at ")[0] \
            .split(" in the ")[0].endswith(c.shape)
    assert len({c for c, _ in found.values()}) > len(classes)  # per image, not per class
