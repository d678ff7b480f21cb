"""Templates and class names for class-label generation (genrobust.prompts)."""

import pytest

from genrobust import prompts
from genrobust.prompts import (
    OPENAI_80,
    choose_template,
    class_label_prompt,
    clip_class_names,
    load_class_names,
    load_templates,
)

# A few templates exactly as the paper's Table 8 prints them ('{class label}' -> '{}').
TABLE8_SAMPLES = [
    "a bad photo of a {}.",  # first
    "a photo of many {}.",
    "a {} in a video game.",
    "itap of my {}.",
    "a jpeg corrupted photo of the {}.",
    "a tattoo of the {}.",  # last
]


def test_openai80_is_the_papers_80_templates():
    assert len(OPENAI_80) == 80
    assert len(set(OPENAI_80)) == 80
    assert all(t.count("{}") == 1 for t in OPENAI_80)
    assert OPENAI_80[0] == "a bad photo of a {}."
    assert OPENAI_80[-1] == "a tattoo of the {}."
    for template in TABLE8_SAMPLES:
        assert template in OPENAI_80


def test_openai80_matches_open_clip_in_order():
    import open_clip

    shipped = [t("{}") if callable(t) else t for t in open_clip.OPENAI_IMAGENET_TEMPLATES]
    assert list(OPENAI_80) == shipped


def test_load_templates_named_list_and_file(tmp_path):
    assert load_templates("openai80") == list(OPENAI_80)
    assert load_templates(["a photo of a {}.", "a rendition of a {}."]) == [
        "a photo of a {}.",
        "a rendition of a {}.",
    ]
    path = tmp_path / "templates.txt"
    path.write_text("# one per line\na photo of a {}.\n\na sketch of the {}.\n")
    assert load_templates(path) == ["a photo of a {}.", "a sketch of the {}."]
    assert load_templates(str(path)) == ["a photo of a {}.", "a sketch of the {}."]


@pytest.mark.parametrize("bad", ["a photo of a dog.", "a {} and a {}.", "a photo of a {name}.", "a {0}."])
def test_bad_template_is_a_value_error_naming_it(bad, tmp_path):
    with pytest.raises(ValueError, match="must contain exactly one"):
        load_templates(["a photo of a {}.", bad])
    with pytest.raises(ValueError) as info:
        load_templates([bad])
    assert repr(bad) in str(info.value)
    path = tmp_path / "t.txt"
    path.write_text(f"a photo of a {{}}.\n{bad}\n")
    with pytest.raises(ValueError, match="exactly one"):
        load_templates(path)


def test_unknown_or_empty_template_spec(tmp_path):
    with pytest.raises(ValueError, match="neither a named set"):
        load_templates("openai81")
    with pytest.raises(ValueError, match="no templates"):
        load_templates([])
    empty = tmp_path / "empty.txt"
    empty.write_text("# nothing\n")
    with pytest.raises(ValueError, match="no templates"):
        load_templates(empty)


def test_class_label_prompt():
    assert class_label_prompt("a bad photo of a {}.", "tench") == "a bad photo of a tench."
    assert class_label_prompt("a {} in a video game.", "great white shark") == "a great white shark in a video game."
    with pytest.raises(ValueError):
        class_label_prompt("a photo", "tench")


def test_choose_template_is_deterministic_and_covers_all():
    templates = load_templates("openai80")
    picks = [choose_template(templates, seed) for seed in range(2000)]
    assert picks == [choose_template(templates, seed) for seed in range(2000)]
    assert all(templates[index] == template for index, template in picks)
    assert {index for index, _ in picks} == set(range(80))
    assert len({index for index, _ in picks[:20]}) > 1  # actually varies with the seed
    with pytest.raises(ValueError):
        choose_template([], 0)


def test_clip_class_names_known_wnids():
    names = clip_class_names(["n01440764", "n01443537", "n01484850", "n02085620", "n07753275"])
    assert names == {
        "n01440764": "tench",
        "n01443537": "goldfish",
        "n01484850": "great white shark",
        "n02085620": "Chihuahua",
        "n07753275": "pineapple",
    }
    assert list(names) == ["n01440764", "n01443537", "n01484850", "n02085620", "n07753275"]
    assert load_class_names(["n01440764"], "clip") == {"n01440764": "tench"}


def test_clip_class_names_cover_all_1000():
    from timm.data import ImageNetInfo

    wnids = list(ImageNetInfo().label_names())
    names = clip_class_names(wnids)
    assert len(names) == 1000 and all(names.values())


def test_unknown_wnid_is_a_value_error_naming_it(tmp_path):
    with pytest.raises(ValueError, match="n99999999"):
        clip_class_names(["n01440764", "n99999999"])
    path = tmp_path / "names.tsv"
    path.write_text("n01440764\ttench fish\n")
    with pytest.raises(ValueError, match="n01443537"):
        load_class_names(["n01440764", "n01443537"], path)


def test_load_class_names_from_file(tmp_path):
    path = tmp_path / "names.txt"
    path.write_text("# wnid, name\nn01440764\ttench fish\nn01443537,gold fish, the pet\n\n")
    assert load_class_names(["n01443537", "n01440764"], path) == {
        "n01443537": "gold fish, the pet",
        "n01440764": "tench fish",
    }
    with pytest.raises(ValueError, match="neither 'clip'"):
        load_class_names(["n01440764"], tmp_path / "missing.txt")
    bad = tmp_path / "bad.txt"
    bad.write_text("n01440764\n")
    with pytest.raises(ValueError, match="bad.txt:1"):
        load_class_names(["n01440764"], bad)


def test_prompts_module_has_no_torch_import_at_module_level():
    # Templates must be usable (e.g. in a Snakefile) without importing torch.
    import ast
    import inspect

    tree = ast.parse(inspect.getsource(prompts))
    top_imports = {
        alias.name.split(".")[0]
        for node in tree.body
        if isinstance(node, (ast.Import, ast.ImportFrom))
        for alias in (node.names if isinstance(node, ast.Import) else [ast.alias(node.module or "")])
    }
    assert not top_imports & {"torch", "open_clip", "timm"}


def test_fake_it_families_verbatim_with_the_places365_backgrounds():
    """Sariyildiz et al. (CVPR 2023) write 'c, h_c', 'c, d_c' and 'c inside b', b a Places365 scene."""
    assert prompts.NAMED_TEMPLATE_SETS["fakeit_hypernym"] == ("{}, {hypernym}",)
    assert prompts.NAMED_TEMPLATE_SETS["fakeit_definition"] == ("{}, {definition}",)
    assert prompts.NAMED_TEMPLATE_SETS["fakeit_background"] == ("{} inside {place}",)
    places = prompts.load_places("places365")
    assert len(places) == 365 == len(set(places))
    assert places[0] == "airfield" and places[8] == "apartment building outdoor" and places[-1] == "zen garden"
    prompter = prompts.Prompter("fakeit_background", ["n01440764"], places="places365")
    _, prompt = prompter.prompt("n01440764", 7)
    assert prompt.startswith("tench inside ") and prompt.removeprefix("tench inside ") in places
