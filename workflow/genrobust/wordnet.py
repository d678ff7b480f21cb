"""WordNet 3.0 facts about the ImageNet classes: each wnid's definition (gloss) and hypernym.

ImageNet's wnids are WordNet 3.0 noun offsets ('n02123045' = offset 02123045 of data.noun), so
the table is read straight from WordNet's own database files, no nltk needed. The project ships
the table for the 1000 ImageNet-1K classes (genrobust/data/imagenet_wordnet.tsv); rebuild it from
any WordNet 3.0 copy (Debian/Ubuntu: `apt-get install wordnet-base` puts it in /usr/share/wordnet)
with `python -m genrobust.wordnet /usr/share/wordnet`.

Used by the prompt families of Sariyildiz et al., "Fake it till you make it" (CVPR 2023):
'a photo of a tabby, a kind of domestic cat' (hypernym) and 'a photo of a tabby, a cat with a
grey or tawny coat mottled with black' (definition).
"""

from __future__ import annotations

import csv
import functools
import sys
from dataclasses import dataclass
from pathlib import Path

TABLE = Path(__file__).with_name("data") / "imagenet_wordnet.tsv"
COLUMNS = ("wnid", "name", "hypernym_wnid", "hypernym", "definition")
HYPERNYM_POINTERS = ("@", "@i")  # hypernym, instance hypernym


@dataclass(frozen=True)
class Synset:
    wnid: str
    lemmas: tuple[str, ...]
    hypernym_wnids: tuple[str, ...]
    definition: str

    @property
    def name(self) -> str:
        return self.lemmas[0]


def _lemma(word: str) -> str:
    return word.replace("_", " ")


def _definition(gloss: str) -> str:
    """The gloss up to its first example: WordNet glosses read 'definition; "example"; ...'."""
    parts = [p.strip() for p in gloss.split(";")]
    kept = [p for p in parts if p and not p.startswith('"')]
    return (kept[0] if kept else gloss.strip()).rstrip(".")


def parse_data_line(line: str) -> Synset:
    """One line of WordNet's data.noun: offset lex_filenum ss_type w_cnt (word lex_id)*
    p_cnt (pointer_symbol offset pos source/target)* | gloss  (see wndb(5WN))."""
    head, _, gloss = line.partition(" | ")
    fields = head.split()
    offset, n_words = fields[0], int(fields[3], 16)
    words = tuple(_lemma(fields[4 + 2 * i]) for i in range(n_words))
    at = 4 + 2 * n_words
    n_pointers = int(fields[at])
    hypernyms = []
    for i in range(n_pointers):
        symbol, target, pos = fields[at + 1 + 4 * i: at + 4 + 4 * i]
        if symbol in HYPERNYM_POINTERS and pos == "n":
            hypernyms.append("n" + target)
    return Synset("n" + offset, words, tuple(hypernyms), _definition(gloss))


def read_synset(data_noun: Path, wnid: str) -> Synset:
    """The synset of a noun wnid, by seeking to its byte offset in data.noun."""
    if not (wnid.startswith("n") and wnid[1:].isdigit() and len(wnid) == 9):
        raise ValueError(f"{wnid!r} is not a WordNet noun id like 'n02123045'")
    with open(data_noun, "rb") as f:
        f.seek(int(wnid[1:]))
        line = f.readline().decode("utf-8")
    if not line.startswith(wnid[1:] + " "):
        raise ValueError(f"{data_noun} has no synset at offset {wnid[1:]}: is it WordNet 3.0's data.noun?")
    return parse_data_line(line)


def build_table(wordnet_dir: str | Path, wnids: list[str]) -> list[dict[str, str]]:
    """One row per wnid: its first lemma, its first hypernym (id and first lemma), its definition."""
    data_noun = Path(wordnet_dir) / "data.noun"
    if not data_noun.is_file():
        raise FileNotFoundError(f"no data.noun in {wordnet_dir}: give a WordNet 3.0 database folder "
                                "(e.g. /usr/share/wordnet from Debian's wordnet-base)")
    rows = []
    for wnid in wnids:
        synset = read_synset(data_noun, wnid)
        if not synset.hypernym_wnids:
            raise ValueError(f"{wnid} ({synset.name}) has no hypernym in {data_noun}")
        parent = read_synset(data_noun, synset.hypernym_wnids[0])
        rows.append({"wnid": wnid, "name": synset.name, "hypernym_wnid": parent.wnid, "hypernym": parent.name,
                     "definition": synset.definition})
    return rows


def write_table(rows: list[dict[str, str]], path: Path = TABLE) -> None:
    with open(path, "w", newline="") as f:
        writer = csv.DictWriter(f, COLUMNS, delimiter="\t", lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)


@functools.lru_cache(maxsize=1)
def imagenet_table() -> dict[str, dict[str, str]]:
    """The shipped table, by wnid."""
    with open(TABLE, newline="") as f:
        return {row["wnid"]: row for row in csv.DictReader(f, delimiter="\t")}


def facts(wnids) -> dict[str, dict[str, str]]:
    """hypernym and definition per wnid; an error naming the wnids the table lacks."""
    table = imagenet_table()
    missing = [w for w in wnids if w not in table]
    if missing:
        raise ValueError(f"no WordNet entry for wnid(s) {', '.join(missing[:5])} in {TABLE} (the 1000 "
                         "ImageNet-1K classes); rebuild it for other synsets: python -m genrobust.wordnet <dir>")
    return {w: table[w] for w in wnids}


def main(argv: list[str]) -> None:
    from timm.data import ImageNetInfo

    if len(argv) != 1:
        raise SystemExit("usage: python -m genrobust.wordnet <WordNet 3.0 dict folder, e.g. /usr/share/wordnet>")
    rows = build_table(argv[0], list(ImageNetInfo().label_names()))
    write_table(rows)
    print(f"wrote {len(rows)} synsets to {TABLE}")


if __name__ == "__main__":
    main(sys.argv[1:])
