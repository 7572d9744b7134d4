"""Pictures of the Explore page: search hits as a heatmap and a table, a unit's corpus windows on one colour
scale, the histogram of its window maxima, its weight twins."""

from __future__ import annotations

import html
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
import plotly.graph_objects as go

from scoring.viz.tables import count
from scoring.viz.tokens import shorten, tokens_html

if TYPE_CHECKING:
    from scoring.subjects.latents import Twin
    from scoring.subjects.search import SearchHit

_PLAIN_WHITESPACE = {" ": "·", "\n": "↵", "\t": "→", "\r": "␍"}


def readable_token(token: str) -> str:
    """A token as plain text with its whitespace drawn (``·`` space, ``↵`` newline), as the heatmaps draw it."""
    if token == "":
        return "∅"
    return "".join(_PLAIN_WHITESPACE.get(character, character) for character in token)


def hit_label(hit: SearchHit) -> str:
    """'L6 latent #1347': how the page names a hit (unique within one search)."""
    return f"L{hit.layer} {hit.unit} #{hit.index}"


def search_heatmap(tokens: Sequence[str], hits: Sequence[SearchHit]) -> go.Figure:
    """Rows: the hits, best first; columns: the text's tokens; colour: each unit's activation."""
    columns = [f"{position}:{shorten(readable_token(token), 12)}" for position, token in enumerate(tokens)]
    figure = go.Figure(
        go.Heatmap(
            z=[hit.values for hit in hits],
            x=columns,
            y=[hit_label(hit) for hit in hits],
            colorscale="Oranges",
            hovertemplate="unit %{y}<br>token %{x}<br>activation %{z:.3f}<extra></extra>",
        )
    )
    figure.update_layout(
        height=90 + 24 * len(hits),
        margin={"l": 10, "r": 10, "t": 10, "b": 10},
        yaxis={"autorange": "reversed", "type": "category"},
        xaxis={"type": "category"},
    )
    return figure


def _share(value: float | None, digits: int = 1) -> str:
    return "" if value is None else f"{value:.{digits}%}"


def _times(value: float | None) -> str:
    if value is None:
        return ""
    return "never fired" if not np.isfinite(value) else f"{value:.2f}×"


def search_hits_frame(hits: Sequence[SearchHit], rank: str) -> pd.DataFrame:
    """One row per hit: unit, activation, the token it peaks on, where that stands in the corpus, density.

    ``corpus percentile``: the share of corpus windows whose maximum is below the
    activation; ``of corpus max``: the activation as a multiple of the unit's largest
    window maximum. The column ranked by is shown too: with ``rank="specificity"`` the
    corpus percentile × (1 − density), with ``rank="layer"`` the activation ÷ the layer's
    RMS on the text.
    """
    rows = []
    for hit in hits:
        row: dict[str, object] = {
            "unit": hit_label(hit),
            "activation": round(hit.activation, 4),
            "at token": f"{hit.token_position}: {readable_token(hit.token)}",
        }
        if rank == "layer":
            row["÷ layer RMS"] = round(hit.score, 3)
        elif rank == "specificity":
            row["specificity"] = round(hit.score, 3)
        row["corpus percentile"] = _share(hit.percentile)
        row["of corpus max"] = _times(hit.of_max)
        row["density"] = _share(hit.density)
        rows.append(row)
    return pd.DataFrame(rows)


_WINDOW_CSS = (
    "<style>.explore-window{margin:18px 0 0 0}"
    ".explore-window .label{font:600 13px system-ui,sans-serif;color:#333;margin:0 0 3px 0}</style>"
)


def windows_html(windows: Sequence[tuple[str, Sequence[str], Sequence[float]]], vmax: float) -> str:
    """Corpus windows as token heatmaps, each label set right above its own box (and well apart from the
    box before it), on one colour scale (`vmax`)."""
    parts = [_WINDOW_CSS]
    for position, (label, tokens, values) in enumerate(windows):
        parts.append(
            f'<div class="explore-window"><div class="label">{html.escape(label)}</div>'
            + tokens_html(tokens, values, vmax=vmax, include_style=position == 0)
            + "</div>"
        )
    return "".join(parts)


def window_maxima_histogram(maxima: np.ndarray) -> go.Figure:
    """Histogram of a unit's per-window maxima where it fires (all of them when it never fires)."""
    firing = maxima[maxima > 0]
    figure = go.Figure(go.Histogram(x=firing if firing.size else maxima, nbinsx=40))
    figure.update_layout(
        height=200,
        margin={"l": 10, "r": 10, "t": 30, "b": 10},
        title={"text": "Per-window maximum where it fires (> 0)", "font": {"size": 13}},
        xaxis_title="activation",
        yaxis_title="windows",
    )
    return figure


def window_scale(windows: Sequence[Mapping[str, Any]]) -> float:
    """One colour scale for a feature's windows and any text tested against them: the largest value on their
    tokens, or 1.0 when none is above 0 (a scale must be positive)."""
    peak = max((max(window["values"], default=0.0) for window in windows), default=0.0)
    return float(peak) if peak > 0 else 1.0


def window_label(window: Mapping[str, Any]) -> str:
    """'top · window 17 · max 3.210 · 2 similar windows merged': the heading of one window of a feature file
    (`scoring.subjects.feature_json`)."""
    duplicates = int(window.get("duplicates") or 0)
    merged = f" · {count(duplicates, 'similar window')} merged" if duplicates else ""
    return f"{window['sample']} · window {window['window']} · max {window['maxValue']:.3f}{merged}"


def feature_windows_html(windows: Sequence[Mapping[str, Any]], vmax: float) -> str:
    """The windows of a feature file (its ``activations``) as labelled token heatmaps on the scale `vmax`."""
    return windows_html([(window_label(window), window["tokens"], window["values"]) for window in windows], vmax)


def twins_frame(twins: Sequence[Twin]) -> pd.DataFrame:
    """One row per weight twin of a latent: the neuron ('L6 #3') and the cosine of their directions."""
    rows = [{"neuron": f"L{twin.layer} #{twin.index}", "weight cosine": round(twin.cosine, 3)} for twin in twins]
    return pd.DataFrame(rows, columns=["neuron", "weight cosine"])
