"""Prompt templates and class names for the class-label generation strategies.

A prompt is `template.format(class_name)`. The paper's 80 templates (Table 8) are OpenAI's
CLIP ImageNet zero-shot templates, in the same order as `open_clip.OPENAI_IMAGENET_TEMPLATES`;
the class names are the CLIP ImageNet class names (`open_clip.IMAGENET_CLASSNAMES`), indexed
like timm's sorted ImageNet wnids. Both are written out / looked up here so that generation
never depends on a download.

Beyond the paper, a template may also name WordNet facts about the class and a background, the
prompt families of Sariyildiz et al., "Fake it till you make it" (CVPR 2023): {hypernym} (the
class's WordNet hypernym), {definition} (its WordNet gloss; both from genrobust.wordnet) and
{place} (a background phrase drawn per image from a list, seeded like the template). And
{caption}: a caption from a user's file (genrobust.captions), drawn per image from its class's
captions, or the real image's own for the `captions` kind; a template with {caption} may leave
the class name out (captions usually name it).
"""

from __future__ import annotations

import functools
import os
import re
from pathlib import Path
from typing import Iterable, Sequence

import numpy as np

from .seeding import derive_seed

# Paper Table 8, in its order (identical to open_clip.OPENAI_IMAGENET_TEMPLATES).
OPENAI_80: tuple[str, ...] = (
    "a bad photo of a {}.",
    "a photo of many {}.",
    "a sculpture of a {}.",
    "a photo of the hard to see {}.",
    "a low resolution photo of the {}.",
    "a rendering of a {}.",
    "graffiti of a {}.",
    "a bad photo of the {}.",
    "a cropped photo of the {}.",
    "a tattoo of a {}.",
    "the embroidered {}.",
    "a photo of a hard to see {}.",
    "a bright photo of a {}.",
    "a photo of a clean {}.",
    "a photo of a dirty {}.",
    "a dark photo of the {}.",
    "a drawing of a {}.",
    "a photo of my {}.",
    "the plastic {}.",
    "a photo of the cool {}.",
    "a close-up photo of a {}.",
    "a black and white photo of the {}.",
    "a painting of the {}.",
    "a painting of a {}.",
    "a pixelated photo of the {}.",
    "a sculpture of the {}.",
    "a bright photo of the {}.",
    "a cropped photo of a {}.",
    "a plastic {}.",
    "a photo of the dirty {}.",
    "a jpeg corrupted photo of a {}.",
    "a blurry photo of the {}.",
    "a photo of the {}.",
    "a good photo of the {}.",
    "a rendering of the {}.",
    "a {} in a video game.",
    "a photo of one {}.",
    "a doodle of a {}.",
    "a close-up photo of the {}.",
    "a photo of a {}.",
    "the origami {}.",
    "the {} in a video game.",
    "a sketch of a {}.",
    "a doodle of the {}.",
    "a origami {}.",
    "a low resolution photo of a {}.",
    "the toy {}.",
    "a rendition of the {}.",
    "a photo of the clean {}.",
    "a photo of a large {}.",
    "a rendition of a {}.",
    "a photo of a nice {}.",
    "a photo of a weird {}.",
    "a blurry photo of a {}.",
    "a cartoon {}.",
    "art of a {}.",
    "a sketch of the {}.",
    "a embroidered {}.",
    "a pixelated photo of a {}.",
    "itap of the {}.",
    "a jpeg corrupted photo of the {}.",
    "a good photo of a {}.",
    "a plushie {}.",
    "a photo of the nice {}.",
    "a photo of the small {}.",
    "a photo of the weird {}.",
    "the cartoon {}.",
    "art of the {}.",
    "a drawing of the {}.",
    "a photo of the large {}.",
    "a black and white photo of a {}.",
    "the plushie {}.",
    "a dark photo of a {}.",
    "itap of a {}.",
    "graffiti of the {}.",
    "a toy {}.",
    "itap of my {}.",
    "a photo of a cool {}.",
    "a photo of a small {}.",
    "a tattoo of the {}.",
)

# Fake it till you make it's families (Sariyildiz et al., CVPR 2023), one template each: the class
# name c with its WordNet hypernym h_c, its definition d_c, or a background b. Verbatim as the paper
# writes them ("c, h_c", "c, d_c", "c inside b", b a Places365 category: places: places365), and
# reworded as photo prompts (hypernym, definition, background: b a phrase of PLACES).
NAMED_TEMPLATE_SETS = {
    "openai80": OPENAI_80,
    "fakeit_hypernym": ("{}, {hypernym}",),
    "fakeit_definition": ("{}, {definition}",),
    "fakeit_background": ("{} inside {place}",),
    "hypernym": ("a photo of a {}, a kind of {hypernym}",),
    "definition": ("a photo of a {}, {definition}",),
    "background": ("a photo of a {} {place}",),
}
PLACES365_FILE = Path(__file__).resolve().parent / "data" / "places365_categories.txt"
TEMPLATE_FIELDS = ("hypernym", "definition", "place", "caption")  # the named fields a template may use

# Backgrounds for {place}: common scene categories (Places365-like), each a phrase that follows
# the class name. A strategy's `places:` may name a file of one's own, one phrase per line.
PLACES: tuple[str, ...] = (
    "in a kitchen", "in a living room", "in a bedroom", "in a bathroom", "in an office", "in a classroom",
    "in a library", "in a restaurant", "in a supermarket", "in a garage", "in a workshop", "in a museum",
    "in a church", "in a hospital room", "in a laboratory", "in a warehouse", "in a parking lot",
    "on a city street", "on a country road", "on a highway", "on a bridge", "in a park", "in a garden",
    "in a backyard", "on a farm", "in a field", "in a meadow", "in a forest", "in a jungle", "on a mountain",
    "in a desert", "in a canyon", "on a beach", "on a lake shore", "by a river", "in the ocean",
    "under water", "in the snow", "on ice", "in a swamp", "in a cave", "at a harbor", "at a train station",
    "at an airport", "in a stadium", "at a playground", "in a market", "in a zoo", "in an aquarium",
    "on a rooftop",
)


# ---------------------------------------------------------------- templates


def check_template(template: str) -> str:
    """Return `template` if it holds exactly one '{}' (the class name), or at most one where it
    holds {caption}, and otherwise only the named fields of TEMPLATE_FIELDS."""
    if not isinstance(template, str):
        raise ValueError(f"template must be a string, got {template!r}")
    fields = re.findall(r"\{([^{}]*)\}", template)
    names = fields.count("")
    if names > 1 or (names == 0 and "caption" not in fields) or any(f and f not in TEMPLATE_FIELDS for f in fields):
        allowed = ", ".join("{" + f + "}" for f in TEMPLATE_FIELDS)
        raise ValueError(f"template {template!r} must contain exactly one '{{}}' for the class name (at most one "
                         f"with {{caption}}) and otherwise only {allowed} (found {['{' + f + '}' for f in fields]})")
    try:  # as class_label_prompt fills it: a lone '{' or '}' fails here, not in the shard
        template.format("name", **dict.fromkeys(TEMPLATE_FIELDS, "field"))
    except (ValueError, IndexError, KeyError) as err:
        raise ValueError(f"template {template!r} cannot be filled ({err}): a brace that is not a field is written "
                         "'{{' or '}}'") from None
    return template


def template_fields(template: str) -> set[str]:
    """The named fields ({hypernym}, {definition}, {place}, {caption}) a template uses."""
    return set(re.findall(r"\{([^{}]+)\}", template))


def load_templates(spec: str | os.PathLike | Sequence[str]) -> list[str]:
    """Templates from a named set ('openai80'), a list of strings, or a text file (one per line)."""
    if isinstance(spec, str) and spec in NAMED_TEMPLATE_SETS:
        templates = list(NAMED_TEMPLATE_SETS[spec])
    elif isinstance(spec, (str, os.PathLike)):
        path = Path(spec)
        if not path.is_file():
            raise ValueError(
                f"template spec {str(spec)!r} is neither a named set {sorted(NAMED_TEMPLATE_SETS)} "
                "nor an existing file"
            )
        lines = [line.rstrip("\r\n") for line in path.read_text().splitlines()]
        for number, line in enumerate(lines, 1):
            if line.strip() and not line.lstrip().startswith("#"):
                try:
                    check_template(line)
                except ValueError as err:
                    raise ValueError(f"{path}, line {number}: {err}") from None
        templates = [t for t in lines if t.strip() and not t.lstrip().startswith("#")]
    else:
        templates = list(spec)
    if not templates:
        raise ValueError(f"template spec {spec!r} holds no templates")
    return [check_template(t) for t in templates]


def class_label_prompt(template: str, name: str, **fields: str) -> str:
    """The template filled with the class name and the named fields it uses."""
    missing = template_fields(check_template(template)) - set(fields)
    if missing:
        raise ValueError(f"template {template!r} needs {sorted(missing)} for class {name!r}")
    return template.format(name, **fields)


def places365() -> list[str]:
    """The 365 Places365 scene categories as words ('/a/apartment_building/outdoor' -> 'apartment
    building outdoor'), in their index order (data/places365_categories.txt, with its source)."""
    lines = [line.split()[0] for line in PLACES365_FILE.read_text().splitlines() if line.startswith("/")]
    return [" ".join(line.split("/", 2)[2].replace("/", " ").split("_")) for line in lines]


NAMED_PLACES = {"default": lambda: list(PLACES), "places365": places365}


def load_places(spec: str | os.PathLike = "default") -> list[str]:
    """The background phrases for {place}: a named list (default, places365), or a file of one per line."""
    if isinstance(spec, str) and spec in NAMED_PLACES:
        return NAMED_PLACES[spec]()
    path = Path(spec)
    if not path.is_file():
        raise ValueError(f"places spec {str(spec)!r} is neither a named list ({', '.join(NAMED_PLACES)}) nor an "
                         "existing file")
    places = [line.strip() for line in path.read_text().splitlines()]
    places = [p for p in places if p and not p.startswith("#")]
    if not places:
        raise ValueError(f"places file {path} holds no places")
    return places


def choose_place(places: Sequence[str], seed: int) -> str:
    """Pick one background for one image, reproducibly from that image's seed."""
    return places[int(np.random.default_rng(seed).integers(len(places)))]


class Prompter:
    """One image's prompt from its class and seed: a seeded template, the class name, and the
    named fields the template uses (WordNet facts of the class, a seeded place, a caption: seeded
    among its class's in the per-class file `captions`, or the one the caller gives)."""

    def __init__(self, templates, wnids: Iterable[str], class_names="clip", places="default", captions=None):
        from . import captions as caption_files
        from . import wordnet

        wnids = list(wnids)
        self.templates = load_templates(templates)
        self.names = load_class_names(wnids, class_names)
        fields = set().union(*map(template_fields, self.templates))
        self.wordnet = wordnet.facts(wnids) if fields & {"hypernym", "definition"} else {}
        self.places = load_places(places) if "place" in fields else []
        self.captions_file = captions
        self.captions = caption_files.read_class_captions(captions, wnids) if captions else {}

    def class_caption(self, wnid: str, seed: int) -> tuple[str, str]:
        """(caption, where it is: 'file#wnid:i', i its index among the class's captions) of an image."""
        if not self.captions:
            raise ValueError(f"a template uses {{caption}} but no captions file is given (class {wnid})")
        from .captions import choose_caption

        i = choose_caption(self.captions[wnid], derive_seed(seed, "caption"))
        return self.captions[wnid][i], f"{self.captions_file}#{wnid}:{i}"

    def compose(self, wnid: str, seed: int, caption: tuple[str, str] | None = None) -> tuple[str, str, str]:
        """(template, prompt, caption source) of the image with this class and seed; `caption`,
        (text, source), is the image's own (per-image captions), else one of its class's is drawn.
        The caption source is '' when the template has no {caption}."""
        _, template = choose_template(self.templates, derive_seed(seed, "template"))
        fields, source = self.fields(template, wnid, seed), ""
        if "caption" in template_fields(template):
            fields["caption"], source = caption if caption is not None else self.class_caption(wnid, seed)
        return template, class_label_prompt(template, self.names[wnid], **fields), source

    def fields(self, template: str, wnid: str, seed: int) -> dict[str, str]:
        wanted = template_fields(template)
        fields = {k: self.wordnet[wnid][k] for k in wanted & {"hypernym", "definition"}}
        if "place" in wanted:
            fields["place"] = choose_place(self.places, derive_seed(seed, "place"))
        return fields

    def prompt(self, wnid: str, seed: int) -> tuple[str, str]:
        """(template, prompt) of the image with this class and seed."""
        template, text, _ = self.compose(wnid, seed)
        return template, text


def choose_template(templates: Sequence[str], seed: int) -> tuple[int, str]:
    """Pick one template for one image, reproducibly from that image's seed."""
    if not templates:
        raise ValueError("no templates to choose from")
    index = int(np.random.default_rng(seed).integers(len(templates)))
    return index, templates[index]


# ---------------------------------------------------------------- class names


@functools.lru_cache(maxsize=1)
def _clip_names_by_wnid() -> dict[str, str]:
    from open_clip import IMAGENET_CLASSNAMES
    from timm.data import ImageNetInfo

    wnids = list(ImageNetInfo().label_names())
    if len(wnids) != len(IMAGENET_CLASSNAMES) or wnids != sorted(wnids):
        raise RuntimeError("timm's ImageNet wnids do not line up with open_clip's 1000 class names")
    return dict(zip(wnids, IMAGENET_CLASSNAMES))


def _select(names: dict[str, str], wnids: Iterable[str], source: str) -> dict[str, str]:
    wnids = list(wnids)
    missing = [w for w in wnids if w not in names]
    if missing:
        raise ValueError(f"no class name in {source} for wnid(s) {', '.join(missing)}")
    return {w: names[w] for w in wnids}


def clip_class_names(wnids: Iterable[str]) -> dict[str, str]:
    """The CLIP ImageNet class names (the ones the paper prompted with) for `wnids`."""
    return _select(_clip_names_by_wnid(), wnids, "the CLIP ImageNet class names")


def read_class_name_file(path: str | os.PathLike) -> dict[str, str]:
    """Read `wnid<TAB>name` or `wnid,name` lines ('#' comments and blank lines skipped)."""
    names: dict[str, str] = {}
    for lineno, line in enumerate(Path(path).read_text().splitlines(), 1):
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        sep = "\t" if "\t" in line else ","
        wnid, _, name = line.partition(sep)
        wnid, name = wnid.strip(), name.strip()
        if not wnid or not name:
            raise ValueError(f"{path}:{lineno}: expected 'wnid<TAB or ,>name', got {line!r}")
        names[wnid] = name
    return names


def load_class_names(wnids: Iterable[str], spec: str | os.PathLike = "clip") -> dict[str, str]:
    """Class names for `wnids`: spec 'clip' (CLIP ImageNet names) or a wnid->name file."""
    if isinstance(spec, str) and spec == "clip":
        return clip_class_names(wnids)
    path = Path(spec)
    if not path.is_file():
        raise ValueError(f"class-name spec {str(spec)!r} is neither 'clip' nor an existing file")
    return _select(read_class_name_file(path), wnids, str(path))
