"""Figure 6: a contact sheet of samples, rows = classes, column groups = Real then each strategy.

Images are picked deterministically: for every (group, class) the candidates are sorted by path
and shuffled with a seed derived from (seed, group, wnid), so the same manifests and seed give
the same sheet, whatever the row order of the manifests. A missing or unreadable image becomes a
grey tile with an X and is counted, never an error.
"""

from __future__ import annotations

import os
import sys
import textwrap
from dataclasses import dataclass
from typing import Any

import numpy as np

from . import io
from .images import open_rgb
from .seeding import derive_seed

BACKGROUND = (255, 255, 255)
MISSING_FILL = (200, 200, 200)
MISSING_CROSS = (120, 120, 120)
EMPTY_FILL = (240, 240, 240)
TEXT = (20, 20, 20)


def _font(size: int):
    from PIL import ImageFont

    try:
        return ImageFont.load_default(size=size)  # scalable with FreeType
    except (TypeError, OSError, AttributeError):  # an old Pillow or no FreeType: the bitmap font
        return ImageFont.load_default()


def _text_size(draw, text: str, font) -> tuple[int, int]:
    left, top, right, bottom = draw.multiline_textbbox((0, 0), text, font=font)
    return right - left, bottom - top


def _paths_by_class(table: str | os.PathLike, what: str, generated: bool) -> dict[str, list[str]]:
    """wnid -> image paths of a generated manifest (paths relative to its folder) or of a real
    index (paths as given)."""
    frame = io.read_csv(table)
    for column in ("path", "wnid"):
        if column not in frame.columns:
            raise ValueError(f"{what} {table} has no '{column}' column")
    paths = io.resolve_manifest_paths(frame, table) if generated else frame["path"].astype(str)
    out: dict[str, list[str]] = {}
    for path, wnid in zip(paths, frame["wnid"].astype(str)):
        out.setdefault(wnid, []).append(path)
    return out


def pick(paths: list[str], n: int, seed: int, group: str, wnid: str) -> list[str]:
    """n paths, chosen by a seed derived from (seed, group, wnid), independent of row order."""
    candidates = sorted(set(paths))
    rng = np.random.default_rng(derive_seed(seed, "contact-sheet", group, wnid))
    order = rng.permutation(len(candidates))[:n]
    return [candidates[i] for i in order]


def _choose_classes(sources: dict[str, dict[str, list[str]]], max_classes: int, seed: int) -> list[str]:
    """Classes present in every source (else in any), at most max_classes, sorted."""
    sets = [set(s) for s in sources.values() if s]
    if not sets:
        return []
    common = set.intersection(*sets) or set.union(*sets)
    classes = sorted(common)
    if len(classes) > max_classes:
        rng = np.random.default_rng(derive_seed(seed, "contact-sheet", "classes"))
        classes = sorted(classes[i] for i in rng.choice(len(classes), max_classes, replace=False))
    return classes


def _tile(path: str | None, tile: int):
    """(image, status) with status 'ok', 'missing' (grey X) or 'empty' (no image to show)."""
    from PIL import Image, ImageDraw, ImageOps

    if path is None:
        return Image.new("RGB", (tile, tile), EMPTY_FILL), "empty"
    try:
        return ImageOps.fit(open_rgb(path), (tile, tile), Image.Resampling.BICUBIC), "ok"
    except Exception:  # missing, truncated, not an image, too large: all drawn as a grey X
        image = Image.new("RGB", (tile, tile), MISSING_FILL)
        draw = ImageDraw.Draw(image)
        width = max(1, tile // 32)
        draw.line([(0, 0), (tile - 1, tile - 1)], fill=MISSING_CROSS, width=width)
        draw.line([(0, tile - 1), (tile - 1, 0)], fill=MISSING_CROSS, width=width)
        return image, "missing"


def _read_sources(manifests: dict[str, str], real_index: str | None) -> dict[str, dict[str, list[str]]]:
    """Group label -> wnid -> image paths: "Real" first (if given), then each strategy's manifest."""
    sources: dict[str, dict[str, list[str]]] = {}
    if real_index is not None:
        sources["Real"] = _paths_by_class(real_index, "real index", generated=False)
    for label, manifest in manifests.items():
        if label in sources:
            raise ValueError(f"strategy label '{label}' is used twice")
        sources[label] = _paths_by_class(manifest, "manifest", generated=True)
    if not sources:
        raise ValueError("contact_sheet needs at least one manifest or a real index")
    return sources


def _class_names(classes: list[str], class_names: dict | None) -> dict[str, str]:
    """wnid -> display name: class_names if given, else the CLIP ImageNet names, else the wnid."""
    if class_names is None:
        from .prompts import load_class_names

        try:
            class_names = load_class_names(classes, "clip")
        except (ValueError, RuntimeError, ImportError):  # not ImageNet wnids: label rows by wnid
            class_names = {}
    return {w: str(class_names.get(w, w)) for w in classes}


def _pick_cells(sources: dict[str, dict[str, list[str]]], classes: list[str], per_class: int,
                seed: int) -> dict[str, dict[str, list[str | None]]]:
    """group -> wnid -> per_class picked paths, padded with None (an empty tile) where too few."""
    return {g: {w: (pick(sources[g].get(w, []), per_class, seed, g, w) + [None] * per_class)[:per_class]
                for w in classes} for g in sources}


@dataclass
class _Layout:
    """The sheet's geometry: a label column on the left, a header row with the group titles, thin
    gaps between tiles and a wider one between groups, and an optional title on top."""

    tile: int
    gap: int
    group_gap: int
    margin: int
    font: Any
    header_font: Any
    title_font: Any
    labels: dict[str, str]
    headers: dict[str, str]
    label_w: int
    group_w: int
    header_h: int
    title_h: int
    width: int
    height: int

    def group_x(self, gi: int) -> int:
        """x of the first tile of the gi-th column group."""
        return self.margin + self.label_w + gi * (self.group_w + self.group_gap)

    def row_y(self, ri: int) -> int:
        """y of the tiles of the ri-th row."""
        return self.title_h + self.header_h + ri * (self.tile + self.gap)


def _layout(groups: list[str], classes: list[str], names: dict[str, str], title: str | None,
            per_class: int, tile: int, gap: int, group_gap: int) -> _Layout:
    """Measure the labels, headers and title and lay the sheet out around them."""
    from PIL import Image, ImageDraw

    font = _font(max(10, tile // 7))
    header_font = _font(max(11, tile // 6))
    title_font = _font(max(12, tile // 5))
    probe = ImageDraw.Draw(Image.new("RGB", (1, 1)))
    wrap = max(8, int(1.6 * tile // max(1, _text_size(probe, "n", font)[0])))
    labels = {w: "\n".join(textwrap.wrap(names[w], wrap)[:3] + [f"({w})"] if names[w] != w else [w])
              for w in classes}
    margin = max(4, tile // 12)
    label_w = max(_text_size(probe, labels[w], font)[0] for w in classes) + 2 * margin
    group_w = per_class * tile + (per_class - 1) * gap
    header_wrap = max(4, group_w // max(1, _text_size(probe, "n", header_font)[0]))
    headers = {g: "\n".join(textwrap.wrap(g, header_wrap)) or g for g in groups}
    header_h = max(_text_size(probe, headers[g], header_font)[1] for g in groups) + 2 * margin
    title_h = _text_size(probe, title, title_font)[1] + 2 * margin if title else 0
    width = margin + label_w + len(groups) * group_w + (len(groups) - 1) * group_gap + margin
    height = title_h + header_h + len(classes) * tile + (len(classes) - 1) * gap + margin
    return _Layout(tile=tile, gap=gap, group_gap=group_gap, margin=margin, font=font,
                   header_font=header_font, title_font=title_font, labels=labels, headers=headers,
                   label_w=label_w, group_w=group_w, header_h=header_h, title_h=title_h,
                   width=width, height=height)


def _draw_title(draw, layout: _Layout, title: str | None) -> None:
    """The title, centred above the header row (nothing without one)."""
    if title:
        tw, _ = _text_size(draw, title, layout.title_font)
        draw.text(((layout.width - tw) // 2, layout.margin), title, fill=TEXT, font=layout.title_font)


def _draw_groups(sheet, draw, layout: _Layout, cells: dict[str, dict[str, list[str | None]]],
                 classes: list[str]) -> tuple[dict[str, dict[str, tuple[int, int]]], int, int]:
    """Each group's header and tiles; return (origin, missing, empty) as contact_sheet reports them."""
    tile = layout.tile
    missing = empty = 0
    origin: dict[str, dict[str, tuple[int, int]]] = {g: {} for g in cells}
    for gi, group in enumerate(cells):
        x0 = layout.group_x(gi)
        tw, _ = _text_size(draw, layout.headers[group], layout.header_font)
        draw.multiline_text((x0 + (layout.group_w - tw) // 2, layout.title_h + layout.margin),
                            layout.headers[group], fill=TEXT, font=layout.header_font, spacing=2,
                            align="center")
        for ri, wnid in enumerate(classes):
            y = layout.row_y(ri)
            origin[group][wnid] = (x0, y)
            for ci, path in enumerate(cells[group][wnid]):
                image, status = _tile(path, tile)
                missing += status == "missing"
                empty += status == "empty"
                sheet.paste(image, (x0 + ci * (tile + layout.gap), y))
    return origin, missing, empty


def _draw_labels(draw, layout: _Layout, classes: list[str]) -> None:
    """Each row's class label in the left column, centred on its tiles."""
    for ri, wnid in enumerate(classes):
        y = layout.row_y(ri)
        _, th = _text_size(draw, layout.labels[wnid], layout.font)
        draw.multiline_text((layout.margin, y + (layout.tile - th) // 2), layout.labels[wnid], fill=TEXT,
                            font=layout.font, spacing=2)


def contact_sheet(manifests: dict[str, str], out_png: str | os.PathLike, classes: list[str] | None = None,
                  per_class: int = 4, max_classes: int = 8, real_index: str | None = None,
                  class_names: dict | None = None, seed: int = 0, *, tile: int = 96, gap: int = 2,
                  group_gap: int = 10, title: str | None = None) -> dict:
    """Draw the sheet and write it atomically to out_png; return its layout and counts.

    manifests: strategy label -> generated manifest.csv (columns path, wnid; paths relative to the
    manifest's folder). real_index: an index CSV (path, wnid) drawn first as "Real". classes:
    wnids in row order (default: up to max_classes classes present everywhere, seeded). class_names:
    wnid -> name (default: the CLIP ImageNet names, the wnid where there is none).

    Returns {"path", "width", "height", "rows", "columns", "groups", "classes", "tile", "cells",
    "missing", "empty", "origin"}: cells[group][wnid] lists the images drawn (None = empty tile),
    origin[group][wnid] the (x, y) of the first tile of that cell; "missing" counts the grey X
    tiles (missing or unreadable files).
    """
    from PIL import Image, ImageDraw

    if per_class < 1:
        raise ValueError("per_class must be at least 1")
    sources = _read_sources(manifests, real_index)
    classes = list(classes) if classes is not None else _choose_classes(sources, max_classes, seed)
    if not classes:
        raise ValueError("no classes to draw (the manifests are empty)")
    names = _class_names(classes, class_names)
    groups = list(sources)
    cells = _pick_cells(sources, classes, per_class, seed)

    layout = _layout(groups, classes, names, title, per_class, tile, gap, group_gap)
    sheet = Image.new("RGB", (layout.width, layout.height), BACKGROUND)
    draw = ImageDraw.Draw(sheet)
    _draw_title(draw, layout, title)
    origin, missing, empty = _draw_groups(sheet, draw, layout, cells, classes)
    _draw_labels(draw, layout, classes)

    with io.atomic_path(out_png, suffix=".png") as tmp:
        sheet.save(tmp, format="PNG")
    if missing:
        print(f"[contact-sheet] {missing} missing or unreadable images drawn as grey X tiles", file=sys.stderr)
    return {
        "path": str(out_png), "width": layout.width, "height": layout.height, "rows": len(classes),
        "columns": len(groups) * per_class, "groups": groups, "classes": classes, "tile": tile,
        "cells": cells, "origin": origin, "missing": missing, "empty": empty,
    }


# ----------------------------------------------------------------------------- command line


def build_parser(add_help: bool = True):
    """Options of the contact-sheet command (add_help=False to reuse it as a CLI subcommand parent)."""
    import argparse

    p = argparse.ArgumentParser(prog="contact_sheet", description=__doc__.splitlines()[0], add_help=add_help)
    p.add_argument("--manifest", action="append", default=[], metavar="LABEL=MANIFEST",
                   help="a strategy's column group: its label and its gathered manifest.csv (repeat)")
    p.add_argument("--real", default=None, help="a real index CSV (path, wnid): the 'Real' column group")
    p.add_argument("--classes", default=None, help="a file of wnids, one a line, in row order "
                   "(default: --max-classes classes present in every source)")
    p.add_argument("--class-names", default="clip", help="'clip' or a wnid<TAB>name file")
    p.add_argument("--per-class", type=int, default=4)
    p.add_argument("--max-classes", type=int, default=8)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--tile", type=int, default=96, help="tile size in pixels")
    p.add_argument("--title", default=None)
    p.add_argument("--out", required=True, help="the PNG to write")
    return p


def run(args) -> int:
    from .prompts import load_class_names

    manifests = {}
    for item in args.manifest:
        label, sep, path = item.partition("=")
        if not sep or not label or not path:
            raise ValueError(f"--manifest expects LABEL=PATH, got {item!r}")
        manifests[label] = path
    classes = io.read_lines(args.classes) if args.classes else None
    names = None
    if args.class_names != "clip" and classes is not None:
        names = load_class_names(classes, args.class_names)
    elif args.class_names != "clip":
        from .prompts import read_class_name_file

        names = read_class_name_file(args.class_names)
    layout = contact_sheet(manifests, args.out, classes=classes, per_class=args.per_class,
                           max_classes=args.max_classes, real_index=args.real, class_names=names,
                           seed=args.seed, tile=args.tile, title=args.title)
    print(f"[contact-sheet] {args.out}: {layout['rows']} classes x {len(layout['groups'])} groups "
          f"({', '.join(layout['groups'])}) x {args.per_class} images, {layout['width']}x{layout['height']} px, "
          f"{layout['missing']} missing, {layout['empty']} empty", file=sys.stderr)
    return 0


def main(argv: list[str] | None = None) -> int:
    return run(build_parser().parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
