"""The dataset card of an exported set (README.md in the Hugging Face card format: YAML front
matter the hub reads, then what made the set, its counts, how to load and verify it, its licence
and how to cite the paper)."""

from __future__ import annotations

from pathlib import Path

import yaml

from . import formats

CITATION = """@inproceedings{bansal2023leaving,
  title     = {Leaving Reality to Imagination: Robust Classification via Generated Datasets},
  author    = {Bansal, Hritik and Grover, Aditya},
  booktitle = {ICLR 2023 Workshop on Trustworthy and Reliable Large-Scale Machine Learning Models},
  year      = {2023},
  url       = {https://arxiv.org/abs/2302.02503}
}"""


def _size_category(n: int) -> str:
    for limit, name in ((1_000, "n<1K"), (10_000, "1K<n<10K"), (100_000, "10K<n<100K"),
                        (1_000_000, "100K<n<1M"), (10_000_000, "1M<n<10M")):
        if n < limit:
            return name
    return "10M<n<100M"


def front_matter(info: dict, splits: dict, fmts: list[str]) -> dict:
    total = sum(s["images"] for s in splits.values())
    matter = {"license": info.get("license") or "other", "task_categories": ["image-classification"],
              "tags": ["synthetic", "generated", "genrobust", str(info["strategy"])],
              "size_categories": [_size_category(total)], "pretty_name": f"{info['dataset']}/{info['strategy']}"}
    if "parquet" in fmts:
        matter["configs"] = [{"config_name": "default", "data_files": [
            {"split": split, "path": f"{formats.PARQUET_DIR}/{split}-*.parquet"} for split in splits]}]
    return matter


def _counts_table(splits: dict, wnids: list[str]) -> list[str]:
    names = list(splits)
    lines = ["| class | " + " | ".join(names) + " |", "|---|" + "---|" * len(names)]
    for w in wnids:
        lines.append(f"| {w} | " + " | ".join(str(splits[s]["counts"].get(w, 0)) for s in names) + " |")
    return lines


def _how_made(info: dict) -> list[str]:
    made = {"strategy": info.get("strategy_config") or {}, "models": info.get("models") or {}}
    lines = ["## How it was made", "",
             f"genrobust's strategy `{info['strategy']}` on dataset `{info['dataset']}` (global seed "
             f"{info.get('seed', '?')}); every image's prompt, seed, model, revision, scheduler, steps and "
             "guidance are in its row (`manifest_<split>.csv`, and the same columns in every parquet row "
             "and WebDataset `.json`). The configuration that made it:", "", "```yaml",
             yaml.safe_dump(made, sort_keys=True).rstrip(), "```"]
    for split, summary in sorted((info.get("summaries") or {}).items()):
        hours = summary.get("generation_hours")
        devices = ", ".join(summary.get("devices") or []) or "unrecorded devices"
        lines += ["", f"- {split}: {summary.get('images')} images, {summary.get('regenerated', 0)} regenerated "
                      f"(NaN, black or flagged), {hours if hours is not None else '?'} hours of generation on {devices}"]
    return lines


def _how_to_load(splits: dict, fmts: list[str]) -> list[str]:
    split = next(iter(splits))
    lines = ["## Load it", ""]
    if "parquet" in fmts:
        lines += ["```python", "from datasets import load_dataset", "",
                  f'ds = load_dataset("path/to/this/folder", split="{split}")  # or the hub id it is published as',
                  'ds[0]["image"], ds.features["label"].names[ds[0]["label"]]  # a PIL image, its wnid', "```", ""]
    if "webdataset" in fmts:
        tars = splits[split]["files"]
        tars = [f for f in tars if f.startswith(formats.TAR_DIR)]
        pattern = (f"{formats.TAR_DIR}/{split}-{{000000..{len(tars) - 1:06d}}}.tar" if len(tars) > 1
                   else (tars[0] if tars else f"{formats.TAR_DIR}/{split}-000000.tar"))
        lines += ["```python", "import webdataset as wds", "",
                  f'ds = wds.WebDataset("{pattern}", shardshuffle=False).decode("pil").to_tuple("jpg;png", "cls", "json")',
                  "```", ""]
    lines += ["To train on it in genrobust, name this folder as a source of kind `external` "
              "(`strategies: {mine: {kind: external, path: <folder>}}`); its SHA256SUMS is checked first."]
    return lines


def write_card(path: Path, *, info: dict, splits: dict, fmts: list[str], wnids: list[str]) -> None:
    total = sum(s["images"] for s in splits.values())
    files = [f for s in splits.values() for f in s["files"]]
    text = ["---", yaml.safe_dump(front_matter(info, splits, fmts), sort_keys=False).rstrip(), "---", "",
            f"# {info['dataset']}/{info['strategy']}: {total:,} generated images of {len(wnids)} classes", "",
            "A generated training set exported by genrobust (`genrobust export-set`), for studies of "
            "whether training on generated images makes classifiers robust to distribution shifts.", "",
            *_how_made(info), "", "## Counts per class", "", *_counts_table(splits, wnids), "",
            *_how_to_load(splits, fmts), "", "## Files and checksums", "",
            f"{len(files)} shards ({', '.join(fmts)}), `manifest_<split>.csv` and this card; `sha256sum -c "
            f"{formats.CHECKSUMS}` verifies a copy.", "", "## Licence", "",
            f"`{info.get('license') or 'other'}`: images made by a generative model carry its licence's use "
            "terms (Stable Diffusion v1.5: CreativeML OpenRAIL-M). Check the generator's before you publish.", "",
            "## Citation", "", "The study this set was made for:", "", "```bibtex", CITATION, "```", ""]
    path.write_text("\n".join(text))
