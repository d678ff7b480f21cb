"""What a reader needs from a figure, checked the way plots.save checks every figure it writes:
each axis says what it measures, several series have a legend, and no text is drawn over other
text (tick labels, axis labels, titles, printed values), from matplotlib's own text extents.
The runs' figures are checked in test_rehearsal (the full config) and test_demo_e2e (the demo)."""

from __future__ import annotations

import numpy as np
import pandas as pd

from genrobust import plots

LONG = ["timm test_vit (random weights, save_for_hf folder)", "Zero-shot CLIP (tiny, random weights)",
        "ResNet-18 (Real + Generated Data)", "Generated (Class Labels, CLIP-filtered)", "+ Stable Diffusion (Ours)"]


def _figure(width=6.0):
    return plots.pyplot().subplots(figsize=(width, 3))


def test_a_labelled_figure_has_no_problems():
    fig, ax = _figure()
    ax.plot([0, 1], [1, 2], label="a")
    ax.plot([0, 1], [2, 1], label="b")
    ax.set_xlabel("epoch")
    ax.set_ylabel("loss")
    ax.legend()
    assert plots.figure_problems(fig) == []


def test_unlabelled_axes_and_unnamed_series_are_found():
    fig, ax = _figure()
    ax.plot([0, 1], [1, 2], label="a")
    ax.plot([0, 1], [2, 1], label="b")
    problems = plots.figure_problems(fig)
    assert "panel 1: the x axis has no label" in problems and "panel 1: the y axis has no label" in problems
    assert "panel 1: 2 series and no legend naming them" in problems


def test_long_category_labels_collide_unless_wrapped():
    fig, ax = _figure(width=10)
    ax.bar(range(len(LONG)), range(1, len(LONG) + 1))
    ax.set_xticks(range(len(LONG)), LONG)
    ax.set_ylabel("accuracy (%)")
    fig.tight_layout()
    assert any("overlaps" in p for p in plots.figure_problems(fig))

    fig, ax = _figure(width=10)
    ax.bar(range(len(LONG)), range(1, len(LONG) + 1))
    plots.category_ticks(ax, range(len(LONG)), LONG)
    ax.set_ylabel("accuracy (%)")
    fig.tight_layout()
    assert plots.figure_problems(fig) == []
    assert all("\n" in t.get_text() for t in ax.get_xticklabels()[:4])  # wrapped, not shrunk or cut
    assert [t.get_text().replace("-\n", "-").replace("\n", " ") for t in ax.get_xticklabels()] == LONG


def test_save_turns_tick_labels_that_still_collide(tmp_path):
    """A label with one word wider than its slot cannot be wrapped: save turns the ticks instead."""
    words = ["x" * 40 + str(i) for i in range(6)]
    fig, ax = _figure()
    ax.bar(range(6), range(1, 7))
    ax.set_xticks(range(6), words)
    ax.set_ylabel("score")
    assert plots.save(fig, str(tmp_path / "f.png")) == []
    assert (tmp_path / "f.png").stat().st_size > 0


def test_printed_values_that_overlap_are_found_and_the_bar_size_avoids_them():
    mean = pd.DataFrame(np.full((6, 5), 34.4), index=LONG + ["Real"], columns=[f"set {i}" for i in range(5)])
    fig, ax = plots.pyplot().subplots(figsize=(6, 4))
    plots.grouped_bars(ax, mean)
    ax.set_ylabel("accuracy (%)")
    fig.tight_layout()
    assert any(p.startswith("value '34.4' overlaps") for p in plots.figure_problems(fig))

    fig, ax = plots.pyplot().subplots(figsize=plots.bar_figure_size(5, 6))
    plots.grouped_bars(ax, mean)
    ax.set_ylabel("accuracy (%)")
    fig.tight_layout()
    assert plots.figure_problems(fig) == []


def test_points_at_0_or_100_percent_are_drawn_at_the_edge_of_logit_axes():
    fig, ax = _figure()
    inside = plots.labelled_points(ax, [0.4, 0.0], [1.0, 0.3], ["a", "b"], logit=True)
    assert not inside
    assert plots.labelled_points(_figure()[1], [0.4, 0.2], [0.5, 0.3], ["a", "b"], logit=True)
    drawn = np.concatenate([line.get_xydata() for line in ax.get_lines()])
    low, high = plots.LOGIT_LIMITS
    assert ((drawn > low) & (drawn < high)).all()  # on the axes, not lost off them
