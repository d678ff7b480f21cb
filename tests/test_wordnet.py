"""WordNet facts of the ImageNet classes, and the prompt families built on them (issue 15)."""

from __future__ import annotations

from pathlib import Path

import pytest

from genrobust import generate, prompts, wordnet

SYSTEM_WORDNET = Path("/usr/share/wordnet")


def test_shipped_table_has_known_synsets():
    table = wordnet.imagenet_table()
    assert len(table) == 1000
    tabby, tench, volcano = table["n02123045"], table["n01440764"], table["n09472597"]
    assert (tabby["name"], tabby["hypernym"]) == ("tabby", "domestic cat")
    assert tabby["definition"] == "a cat with a grey or tawny coat mottled with black"
    assert (tench["hypernym_wnid"], tench["hypernym"]) == ("n01439121", "cyprinid")
    assert volcano["hypernym"] == "mountain"
    assert all(row["definition"] and '"' not in row["definition"] for row in table.values())


def test_data_line_parsing_takes_the_first_hypernym_and_drops_examples():
    line = ("02121808 05 n 04 domestic_cat 0 house_cat 0 Felis_domesticus 0 Felis_catus 0 003 "
            "@ 02121620 n 0000 #m 02121234 n 0000 ~ 02123045 n 0000 | any domesticated member of the genus "
            'Felis; "the cat sat on the mat"  \n')
    synset = wordnet.parse_data_line(line)
    assert synset.wnid == "n02121808" and synset.name == "domestic cat"
    assert synset.lemmas == ("domestic cat", "house cat", "Felis domesticus", "Felis catus")
    assert synset.hypernym_wnids == ("n02121620",)  # not the member holonym (#m) or hyponym (~)
    assert synset.definition == "any domesticated member of the genus Felis"


@pytest.mark.skipif(not (SYSTEM_WORDNET / "data.noun").is_file(), reason="no WordNet 3.0 in /usr/share/wordnet")
def test_table_rebuilds_from_the_wordnet_database():
    wnids = ["n02123045", "n01440764", "n04592741"]
    rows = wordnet.build_table(SYSTEM_WORDNET, wnids)
    assert rows == [{k: wordnet.imagenet_table()[w][k] for k in wordnet.COLUMNS} for w in wnids]
    with pytest.raises(ValueError, match="not a WordNet noun id"):
        wordnet.build_table(SYSTEM_WORDNET, ["02123045"])


def test_unknown_wnid_is_named():
    with pytest.raises(ValueError, match="n99999999"):
        wordnet.facts(["n02123045", "n99999999"])


def test_family_templates_fill_from_wordnet_and_places():
    facts = wordnet.facts(["n02123045"])["n02123045"]
    (hypernym,) = prompts.load_templates("hypernym")
    assert prompts.class_label_prompt(hypernym, "tabby cat", hypernym=facts["hypernym"]) == \
        "a photo of a tabby cat, a kind of domestic cat"
    (background,) = prompts.load_templates("background")
    assert prompts.class_label_prompt(background, "tabby cat", place="in a kitchen") == \
        "a photo of a tabby cat in a kitchen"
    with pytest.raises(ValueError, match="needs \\['definition'\\]"):
        prompts.class_label_prompt("a photo of a {}, {definition}", "tabby cat")


@pytest.mark.parametrize("bad", ["a photo of a {}, {hypernyms}", "{hypernym} only", "a {} {place} {}"])
def test_template_with_an_unknown_or_missing_field_is_refused(bad):
    with pytest.raises(ValueError, match="exactly one '\\{\\}' for the class name"):
        prompts.check_template(bad)


def test_places_file_and_seeded_choice(tmp_path):
    path = tmp_path / "places.txt"
    path.write_text("# mine\nin a kitchen\non a beach\n\n")
    assert prompts.load_places(path) == ["in a kitchen", "on a beach"]
    assert prompts.load_places() == list(prompts.PLACES)
    picks = [prompts.choose_place(prompts.PLACES, seed) for seed in range(200)]
    assert picks == [prompts.choose_place(prompts.PLACES, seed) for seed in range(200)]
    assert len(set(picks)) > 30  # drawn across the list, not stuck on a few
    with pytest.raises(ValueError, match=r"neither a named list \(default, places365\) nor an existing file"):
        prompts.load_places(tmp_path / "absent.txt")


def test_prompter_gives_each_image_its_class_facts_and_a_seeded_place():
    wnids = ["n02123045", "n01440764"]
    prompter = prompts.Prompter(["a photo of a {}, a kind of {hypernym} {place}"], wnids)
    batch = generate.plan_images("fam", "train", wnids, 20, 0)
    made = [prompter.prompt(image.wnid, image.seed) for image in batch]
    places = set()
    for image, (template, text) in zip(batch, made):
        head = f"a photo of a {prompter.names[image.wnid]}, a kind of {wordnet.facts([image.wnid])[image.wnid]['hypernym']} "
        assert text.startswith(head) and text[len(head):] in prompts.PLACES
        places.add(text[len(head):])
    assert made == [prompter.prompt(image.wnid, image.seed) for image in batch]  # seeded
    assert len(places) > 5


def test_generated_manifest_records_family_prompts(tmp_path):
    from genrobust.demo.models import build_tiny_sd

    model = str(build_tiny_sd(tmp_path / "sd", seed=0))
    spec = {"model_id": model, "revision": None, "pipeline": "StableDiffusionPipeline", "scheduler": "PNDMScheduler",
            "templates": "definition", "class_names": "clip", "steps": 2, "guidance": 7.5, "height": 32,
            "width": 32, "batch_size": 4, "dtype": "float32", "save_size": 32, "jpeg_quality": 95,
            "safety_checker": False}
    wnids = ["n02123045", "n09472597"]
    manifest = generate.generate_class_label_shard(
        strategy="def", split="train", spec=spec, wnids=wnids, per_class=2, n_shards=1, shard=0, global_seed=0,
        out_manifest=str(tmp_path / "shard~0" / "manifest.csv"), device="cpu")
    facts = wordnet.facts(wnids)
    names = prompts.load_class_names(wnids)
    assert len(manifest) == 4
    for row in manifest.itertuples():
        assert row.prompt == f"a photo of a {names[row.wnid]}, {facts[row.wnid]['definition']}"
