"""The figures' shared drawing: one palette, grouped bars, category tick labels that fit their slot,
and saving (headless, atomic, nothing clipped).

Labels here are the config's row and classifier names, which can be long ("timm test_vit (random
weights, save_for_hf folder)"): ticks are wrapped to the width their slot has, and turned when a
single word is still wider, so that no two tick labels overlap. save() checks every figure for
that, for axis labels and for legends (figure_problems) and says what it found in the job's log."""

from __future__ import annotations

import sys
import textwrap

import numpy as np

from genrobust import io

# Figure 2's colours: real (green), generated (blue), real + generated (orange), then others.
COLOURS = ["#4daf4a", "#377eb8", "#ff7f00", "#984ea3", "#e41a1c", "#a65628", "#f781bf", "#999999"]
# Average character width in font-size units: conservative for DejaVu Sans (matplotlib's default).
CHAR_WIDTH = 0.62


def pyplot():
    """matplotlib.pyplot on the headless Agg backend (cluster jobs have no display)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def save(fig, out_figure: str) -> list[str]:
    """Lay out (turning tick labels that still collide), check what a reader needs (figure_problems:
    printed as a WARNING in the job's log), write atomically (a killed job leaves no half PNG),
    close. bbox_inches="tight" keeps legends placed outside the axes in the picture."""
    fig.tight_layout()
    if _turn_colliding_ticks(fig):
        fig.tight_layout()
    problems = figure_problems(fig)
    for problem in problems:
        print(f"WARNING: figure {out_figure}: {problem}", file=sys.stderr)
    with io.atomic_path(out_figure) as tmp:
        fig.savefig(tmp, dpi=150, bbox_inches="tight")
    pyplot().close(fig)
    return problems


def _plot_axes(fig) -> list:
    return [ax for ax in fig.axes if ax.get_label() != "<colorbar>" and ax.get_visible()]


def _shown(texts) -> list:
    return [t for t in texts if t.get_visible() and t.get_text().strip()]


def _tick_labels(ax, which: str) -> list:
    """The tick labels drawn: those of ticks inside the axis's view (matplotlib keeps others)."""
    labels = ax.get_xticklabels() if which == "x" else ax.get_yticklabels()
    low, high = sorted(ax.get_xlim() if which == "x" else ax.get_ylim())
    at = 0 if which == "x" else 1
    return [t for t in _shown(labels) if low <= t.get_position()[at] <= high]


def _overlap(a, b, pad: float = 1.0) -> bool:
    return a.x0 + pad < b.x1 and b.x0 + pad < a.x1 and a.y0 + pad < b.y1 and b.y0 + pad < a.y1


def _collide(a, b, renderer) -> bool:
    box_a, box_b = a.get_window_extent(renderer), b.get_window_extent(renderer)
    if not _overlap(box_a, box_b):
        return False
    angle = np.radians(a.get_rotation())
    if a.get_rotation() == b.get_rotation() != 0:
        # Parallel turned labels (ticks): their boxes overlap, the labels do not while the gap between
        # their anchors, measured across the text, is at least one text line high.
        (xa, ya), (xb, yb) = (t.get_transform().transform(t.get_position()) for t in (a, b))
        across = abs((xb - xa) * np.sin(angle) - (yb - ya) * np.cos(angle))
        line = a.get_fontsize() * renderer.points_to_pixels(1.0) * 1.1
        return across < line
    return True


def _colliding(texts, renderer) -> list[tuple[str, str]]:
    return [(a.get_text(), b.get_text()) for i, a in enumerate(texts) for b in texts[i + 1:]
            if _collide(a, b, renderer)]


def _turn_colliding_ticks(fig) -> bool:
    renderer = fig.canvas.get_renderer()
    turned = False
    for ax in _plot_axes(fig):
        ticks = _tick_labels(ax, "x")
        if _colliding(ticks, renderer):
            ax.tick_params(axis="x", labelrotation=30)
            for t in ticks:
                t.set_horizontalalignment("right")
                t.set_rotation_mode("anchor")
            turned = True
    return turned


def _described(ax, axes, which: str) -> bool:
    """An axis says what it measures: its own label, a neighbour's in the same column (x) or row (y)
    of a panel grid, or text tick labels (categories name themselves)."""
    label = ax.get_xlabel() if which == "x" else ax.get_ylabel()
    if label.strip():
        return True
    ticks = _tick_labels(ax, which)
    if ticks and not all(_numeric(t.get_text()) for t in ticks):
        return True
    here = ax.get_position()
    for other in axes:
        there = other.get_position()
        same_line = abs(here.x0 - there.x0) < 0.02 if which == "x" else abs(here.y0 - there.y0) < 0.02
        if other is not ax and same_line and (other.get_xlabel() if which == "x" else other.get_ylabel()).strip():
            return True
    return False


def _numeric(text: str) -> bool:
    text = text.replace("\u2212", "-").replace("$", "").replace("\\mathdefault{", "").replace("}", "").strip("%")
    try:
        float(text)
        return True
    except ValueError:
        return False


def figure_problems(fig) -> list[str]:
    """What would leave a reader guessing: an axis that says nothing of what it measures, several
    series and no legend naming them, text (tick labels, axis labels, titles) drawn over other text,
    values printed on bars or cells over one another."""
    fig.canvas.draw()
    renderer = fig.canvas.get_renderer()
    axes = _plot_axes(fig)
    problems = []
    legend_texts = {t.get_text() for legend in [*fig.legends, *(ax.get_legend() for ax in fig.axes)]
                    if legend is not None for t in legend.get_texts()}
    for n, ax in enumerate(axes):
        name = ax.get_title() or f"panel {n + 1}"
        for which in ("x", "y"):
            if ax.has_data() and not _described(ax, axes, which):
                problems.append(f"{name}: the {which} axis has no label")
        labels = ax.get_legend_handles_labels()[1]  # the series that carry a name
        if len(labels) > 1 and not set(labels) <= legend_texts:
            problems.append(f"{name}: {len(labels)} series and no legend naming them")
    texts = [t for ax in axes for t in [*_shown([ax.xaxis.label, ax.yaxis.label, ax.title]),
                                        *_tick_labels(ax, "x"), *_tick_labels(ax, "y")]]
    if fig._suptitle is not None:  # the Text itself (get_suptitle() gives only its string)
        texts += _shown([fig._suptitle])
    problems += [f"text {a!r} overlaps {b!r}" for a, b in _colliding(texts, renderer)]
    for ax in axes:  # the values printed on bars and cells
        problems += [f"value {a!r} overlaps {b!r}" for a, b in _colliding(_shown(ax.texts), renderer)]
    return problems


def colour(i: int) -> str:
    return COLOURS[i % len(COLOURS)]


def category_ticks(ax, positions, labels, fontsize: float = 8, max_lines: int = 4) -> None:
    """Tick labels under categories: each wrapped to the width between neighbouring ticks, and all
    turned 30 degrees when a word is still wider than its slot."""
    labels = [str(label) for label in labels]
    fig = ax.get_figure()
    axis_inches = fig.get_figwidth() * ax.get_position().width
    positions = list(positions)
    left, right = ax.get_xlim()
    step = (max(positions) - min(positions)) / (len(positions) - 1) if len(positions) > 1 else right - left
    slot_inches = axis_inches * step / (right - left)
    chars = max(int(0.9 * slot_inches * 72 / (fontsize * CHAR_WIDTH)), 4)
    wrapped = [textwrap.wrap(label, chars, break_long_words=False) or [label] for label in labels]
    if all(len(lines) <= max_lines and max(map(len, lines)) <= chars for lines in wrapped):
        ax.set_xticks(positions, ["\n".join(lines) for lines in wrapped], fontsize=fontsize)
    else:
        ax.set_xticks(positions, labels, fontsize=fontsize, rotation=30, ha="right", rotation_mode="anchor")


def grouped_bars(ax, mean, std=None, fmt: str = "%.1f") -> None:
    """One group per column of `mean` (a DataFrame), one bar per row with its value printed on it and
    the row's std (same shape, may be None or NaN) as error bars; the legend outside, on the right."""
    rows, columns = list(mean.index), list(mean.columns)
    width = 0.8 / max(len(rows), 1)
    x = np.arange(len(columns))
    for i, row in enumerate(rows):
        errors = None if std is None else std.loc[row].to_numpy(dtype=float)
        bars = ax.bar(x + (i - (len(rows) - 1) / 2) * width, mean.loc[row].to_numpy(dtype=float), width,
                      yerr=None if errors is None or np.isnan(errors).all() else np.nan_to_num(errors),
                      capsize=2, label=row, color=colour(i))
        ax.bar_label(bars, fmt=fmt, fontsize=7, padding=2)
    category_ticks(ax, x, columns)
    ax.legend(frameon=False, fontsize=8, loc="upper left", bbox_to_anchor=(1.0, 1.0))
    ax.spines[["top", "right"]].set_visible(False)


def bar_figure_size(n_groups: int, n_bars: int) -> tuple[float, float]:
    """Wide enough for every group's bars and their printed values (about 0.4 in per bar), and the
    legend on the right."""
    return max(1.6 * n_groups, 0.42 * n_groups * n_bars) + 3.5, 4.0


MARKERS = "osD^vP*Xhp"
# Logit axes for accuracies: percent ticks, and 0% / 100% drawn just inside the edge.
LOGIT_LIMITS = (0.005, 0.995)
LOGIT_GRID = np.linspace(0.01, 0.99, 99)
LOGIT_TICKS = [0.01, 0.1, 0.25, 0.5, 0.75, 0.9, 0.99]


def labelled_points(ax, x, y, labels, yerr=None, logit: bool = False) -> bool:
    """One marker and colour per point, named in the legend (names written next to points pile up
    where points do). logit: accuracies (0-1) on logit axes with percent ticks, points at 0 or 1
    drawn at the edge. Returns whether every point is where its value is."""
    x, y = np.asarray(x, dtype=float), np.asarray(y, dtype=float)
    inside = True
    if logit:
        low, high = LOGIT_LIMITS[0] * 1.2, 1 - (1 - LOGIT_LIMITS[1]) * 1.2
        inside = bool(((x >= low) & (x <= high) & (y >= low) & (y <= high)).all())
        x, y = np.clip(x, low, high), np.clip(y, low, high)
    errors = None if yerr is None else np.asarray(yerr, dtype=float)
    for i, label in enumerate(labels):
        ax.errorbar(x[i], y[i], yerr=None if errors is None else errors[i], fmt=MARKERS[i % len(MARKERS)],
                    color=colour(i), capsize=3, label=str(label), zorder=3)
    if logit:
        ax.set_xscale("logit")
        ax.set_yscale("logit")
        ax.set_xlim(*LOGIT_LIMITS)
        ax.set_ylim(*LOGIT_LIMITS)
        ticks = [f"{100 * t:g}%" for t in LOGIT_TICKS]
        ax.set_xticks(LOGIT_TICKS, ticks)
        ax.set_yticks(LOGIT_TICKS, ticks)
        ax.minorticks_off()
    return inside
