"""The Explore page's pictures in `scoring.viz`, on plain data: search heatmap and table, windows, maxima, twins."""

from __future__ import annotations

import math

import numpy as np

from scoring import viz
from scoring.subjects import SearchHit, Twin


def hit(unit: str, index: int, values: list[float], **standing: float) -> SearchHit:
    peak = int(np.argmax(values))
    return SearchHit(unit, 6, index, values[peak], values[peak], peak, ["a", " red", "\n"][peak], values, **standing)


HITS = [
    hit("latent", 1347, [0.0, 4.0, 0.5], percentile=1.0, of_max=1.5, density=0.02),
    hit("neuron", 271, [1.0, 2.0, 3.0], percentile=0.5, of_max=math.inf, density=1.0),
]
FEATURE_WINDOWS = [
    {"tokens": ["a", " red"], "values": [0.0, 2.5], "sample": "top", "window": 17, "maxValue": 2.5, "duplicates": 2},
    {"tokens": ["<b>", "x"], "values": [0.1, 0.0], "sample": "random", "window": 3, "maxValue": 0.1},
]


def test_search_heatmap_has_one_row_per_hit_and_one_column_per_token() -> None:
    figure = viz.search_heatmap(["a", " red", "\n"], HITS)
    heatmap = figure.data[0]
    assert [list(row) for row in heatmap.z] == [[0.0, 4.0, 0.5], [1.0, 2.0, 3.0]]
    assert list(heatmap.y) == ["L6 latent #1347", "L6 neuron #271"]
    assert list(heatmap.x) == ["0:a", "1:·red", "2:↵"]  # whitespace drawn, positions keep equal tokens apart
    assert figure.layout.height == 90 + 24 * 2


def test_search_hits_frame_shows_the_column_ranked_by() -> None:
    frame = viz.search_hits_frame(HITS, "specificity")
    assert list(frame.columns) == [
        "unit", "activation", "at token", "specificity", "corpus percentile", "of corpus max", "density"
    ]
    assert list(frame["at token"]) == ["1: ·red", "2: ↵"]
    assert list(frame["of corpus max"]) == ["1.50×", "never fired"]
    assert list(frame["density"]) == ["2.0%", "100.0%"]
    assert "÷ layer RMS" in viz.search_hits_frame(HITS, "layer").columns
    assert "specificity" not in viz.search_hits_frame(HITS, "activation").columns


def test_window_scale_is_the_largest_value_and_always_positive() -> None:
    assert viz.window_scale(FEATURE_WINDOWS) == 2.5
    assert viz.window_scale([]) == 1.0
    # a unit that never fires (every value <= 0) still gets a usable colour scale
    assert viz.window_scale([{"values": [-3.0, -1.0]}, {"values": []}]) == 1.0


def test_window_labels_and_feature_windows_html() -> None:
    assert viz.window_label(FEATURE_WINDOWS[0]) == "top · window 17 · max 2.500 · 2 similar windows merged"
    assert viz.window_label(FEATURE_WINDOWS[1]) == "random · window 3 · max 0.100"
    html = viz.feature_windows_html(FEATURE_WINDOWS, vmax=2.5)
    assert html.count('<div class="explore-window">') == 2
    assert html.index("top · window 17") < html.index("random · window 3")  # the feature's order
    assert "&lt;b&gt;" in html  # token text is escaped
    assert html.count("<style>") == 2  # the windows' own, and the token boxes' once


def test_window_maxima_histogram_draws_the_windows_where_the_unit_fires() -> None:
    firing = viz.window_maxima_histogram(np.array([0.0, 0.0, 1.0, 2.0, 3.0], np.float32))
    assert list(firing.data[0].x) == [1.0, 2.0, 3.0]
    silent = viz.window_maxima_histogram(np.array([0.0, -1.0], np.float32))
    assert list(silent.data[0].x) == [0.0, -1.0]  # a silent unit shows all its maxima rather than nothing


def test_twins_frame() -> None:
    frame = viz.twins_frame([Twin(6, 3, 0.91234), Twin(2, 40, -0.5)])
    assert frame.to_dict("records") == [
        {"neuron": "L6 #3", "weight cosine": 0.912},
        {"neuron": "L2 #40", "weight cosine": -0.5},
    ]
    assert list(viz.twins_frame([]).columns) == ["neuron", "weight cosine"]
