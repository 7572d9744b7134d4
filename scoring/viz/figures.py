"""Plotly figures: per-sequence correlation, real vs simulated scatter, activation histogram, detection."""

from __future__ import annotations

import html
import math
from collections.abc import Sequence

import plotly.graph_objects as go

from scoring.null import null_from_metrics
from scoring.records import ActivationRecord
from scoring.results import ScoreResult
from scoring.shared_types import DECISION_THRESHOLD
from scoring.viz.scorer_tables import detection_frame
from scoring.viz.tables import outcome_grid, per_sequence_frame, strongest_sequences
from scoring.viz.tokens import OUTCOME_MARKS, SCALE_MAX, format_value, shorten

MISSED_COLOUR = "rgb(255,176,0)"
CORRELATION_COLOURS = [[0.0, "rgb(229,125,112)"], [0.5, "rgb(247,247,247)"], [1.0, "rgb(112,166,214)"]]
"""Red for r = -1, white at 0, blue for r = 1, light enough at both ends that the dark numbers on the cells read."""


def per_sequence_figure(results: Sequence[ScoreResult], *, max_sequences: int | None = None) -> go.Figure:
    """Heatmap of per-sequence correlation (sequences x explanations), the sequences with the highest real
    activation at the top (as the token view orders them), the first `max_sequences` of them.

    An undefined r says why on hover: a silent neuron ("–"), a failed
    simulation ("error"), or a missed firing ("✗ missed", drawn amber): the
    neuron fires but the simulation is flat.
    """
    rows = strongest_sequences(results)[:max_sequences]
    frame = per_sequence_frame(results, rows)
    grid = outcome_grid(results, rows)
    values = frame.to_numpy()
    shape = range(values.shape[0]), range(values.shape[1])
    columns = [shorten(str(name), 30) for name in frame.columns]
    text = [
        [OUTCOME_MARKS.get(grid[row][column][0], format_value(values[row][column])) for column in shape[1]]
        for row in shape[0]
    ]
    hover = [
        [
            f"{html.escape(str(frame.index[row]))}<br>{html.escape(str(frame.columns[column]))}<br>"
            + (
                f"r = {text[row][column]}"
                if grid[row][column][0] == "scored"
                else f"r undefined: {html.escape(grid[row][column][1])}"
            )
            for column in shape[1]
        ]
        for row in shape[0]
    ]
    missed = [[1.0 if grid[row][column][0] == "missed" else None for column in shape[1]] for row in shape[0]]
    figure = go.Figure(
        go.Heatmap(
            z=values,
            x=columns,
            y=list(frame.index),
            zmin=-1,
            zmax=1,
            zmid=0,
            colorscale=CORRELATION_COLOURS,
            text=text,
            texttemplate="%{text}",
            textfont={"color": "#111"},
            hovertext=hover,
            hoverinfo="text",
            colorbar={"title": {"text": "r"}},
        )
    )
    if any(value is not None for row in missed for value in row):
        figure.add_trace(
            go.Heatmap(
                z=missed,
                x=columns,
                y=list(frame.index),
                colorscale=[[0, MISSED_COLOUR], [1, MISSED_COLOUR]],
                showscale=False,
                text=text,
                texttemplate="%{text}",
                hovertext=hover,
                hoverinfo="text",
                name="missed firing",
            )
        )
    figure.update_layout(
        title="Correlation per sequence (where each explanation fails; ✗ missed = fires, simulation flat)",
        yaxis={"autorange": "reversed"},
        height=max(260, 34 * len(frame.index) + 140),
        margin={"l": 10, "r": 10, "t": 50, "b": 10},
    )
    return figure


CHANCE_COLOUR = "rgb(150,150,150)"


def ranking_figure(results: Sequence[ScoreResult]) -> go.Figure:
    """Each explanation's score with its 95% interval, best at the top; when the results carry a chance level
    (`scoring.null_scores`), the unrelated explanations' scores on a row of their own and their 95th
    percentile as a dashed line, so a score reads against chance. Undefined scores are left out and named."""
    scored = [result for result in results if math.isfinite(result.score)]
    labels = [shorten(result.explanation, 40) for result in scored]
    figure = go.Figure(
        go.Scatter(
            x=[result.score for result in scored],
            y=labels,
            mode="markers",
            marker={"size": 11, "color": "rgb(31,119,180)"},
            error_x={
                "type": "data",
                "symmetric": False,
                "array": [_finite_or_zero(result.interval[1] - result.score) for result in scored],
                "arrayminus": [_finite_or_zero(result.score - result.interval[0]) for result in scored],
            },
            hovertext=[
                f"{html.escape(result.explanation)}<br>score {result.score:.3f}" for result in scored
            ],
            hoverinfo="text",
            name="explanations",
        )
    )
    rows = list(labels)
    null = null_from_metrics(results[0]) if results else None
    if null is not None and null.n:
        chance_row = f"chance ({null.n} unrelated)"
        rows.append(chance_row)
        figure.add_trace(
            go.Scatter(
                x=null.values,
                y=[chance_row] * null.n,
                mode="markers",
                marker={"size": 8, "color": CHANCE_COLOUR, "symbol": "x"},
                hovertext=[
                    f"unrelated: {html.escape(text)}<br>score "
                    + (f"{score:.3f}" if math.isfinite(score) else "n/a (predicted nothing: counted as 0)")
                    for text, score in zip(null.explanations, null.scores, strict=True)
                ],
                hoverinfo="text",
                name="unrelated explanations",
            )
        )
        figure.add_vline(
            x=null.threshold,
            line={"dash": "dash", "color": CHANCE_COLOUR},
            annotation_text=f"chance, 95th percentile: {null.threshold:.3f}",
            annotation_position="top",
        )
    left_out = len(results) - len(scored)
    figure.update_layout(
        title="Scores with 95% intervals" + (f" ({left_out} without a score left out)" if left_out else ""),
        xaxis={"title": {"text": f"score ({results[0].scorer})" if results else "score"}, "range": [-1.05, 1.05]},
        yaxis={"categoryorder": "array", "categoryarray": rows[::-1], "automargin": True},
        height=max(220, 36 * len(rows) + 120),
        margin={"l": 10, "r": 10, "t": 60, "b": 10},
        showlegend=False,
    )
    return figure


def _finite_or_zero(value: float) -> float:
    return value if math.isfinite(value) else 0.0


def scatter_figure(results: Sequence[ScoreResult], *, max_points: int = 20000) -> go.Figure:
    """Real vs simulated activation per token, one colour per explanation, y = x for reference.

    Tokens with the same (real, simulated) pair, to two decimals, are one
    marker sized by how many there are (ties would otherwise hide each other);
    the hover gives the count and a few of the tokens.
    """
    figure = go.Figure()
    points = 0
    for result in results:
        tied: dict[tuple[float, float], list[str]] = {}
        for sequence in result.sequences:
            if sequence.simulated is None:
                continue
            for token, real, simulated in zip(sequence.tokens, sequence.real, sequence.simulated, strict=True):
                if points >= max_points:
                    break
                tied.setdefault((round(real, 2), round(simulated, 2)), []).append(
                    f"#{sequence.index} {html.escape(repr(token))}"
                )
                points += 1
        pairs = list(tied)
        counts = [len(tied[pair]) for pair in pairs]
        labels = [
            f"{count} token{'s' if count > 1 else ''}: " + ", ".join(tied[pair][:4]) + (" …" if count > 4 else "")
            for pair, count in zip(pairs, counts, strict=True)
        ]
        figure.add_trace(
            go.Scattergl(
                x=[pair[0] for pair in pairs],
                y=[pair[1] for pair in pairs],
                mode="markers",
                name=shorten(result.explanation, 40),
                text=labels,
                hovertemplate="%{text}<br>real %{x:.2f}<br>simulated %{y:.2f}<extra></extra>",
                marker={"size": [min(40.0, 6 + 4 * math.sqrt(count - 1)) for count in counts], "opacity": 0.6},
            )
        )
    figure.add_trace(
        go.Scatter(
            x=[0, SCALE_MAX],
            y=[0, SCALE_MAX],
            mode="lines",
            name="perfect",
            line={"dash": "dash", "color": "#888"},
            hoverinfo="skip",
        )
    )
    figure.update_layout(
        title="Real vs simulated activation per token (marker size: tokens at that point)",
        xaxis_title="real (normalised 0..10)",
        yaxis_title="simulated (0..10)",
        height=420,
        margin={"l": 10, "r": 10, "t": 50, "b": 10},
    )
    return figure


def activation_histogram(records: Sequence[ActivationRecord], *, bins: int = 40) -> go.Figure:
    """Histogram of the raw activations of every token; the title gives the density (share of tokens > 0)."""
    values = [value for record in records for value in record.activations]
    active = sum(value > 0 for value in values)
    density = active / len(values) if values else 0.0
    figure = go.Figure(go.Histogram(x=values, nbinsx=bins, marker={"color": "rgb(255,140,0)"}))
    figure.update_layout(
        title=f"Activations of all {len(values):,} tokens · density {density:.1%} ({active:,} tokens > 0)",
        xaxis_title="raw activation",
        yaxis_title="tokens (log scale)",
        yaxis_type="log",
        height=260,
        margin={"l": 10, "r": 10, "t": 40, "b": 10},
        bargap=0.05,
    )
    return figure


def detection_figure(result: ScoreResult) -> go.Figure:
    """Each sequence's prediction as a bar, coloured by whether it really activates, with the threshold line."""
    frame = detection_frame(result)
    threshold = float(result.metrics.get("threshold", DECISION_THRESHOLD))
    figure = go.Figure()
    for activating, colour, name in (("yes", "rgb(255,140,0)", "activating"), ("no", "#9a9a9a", "not activating")):
        part = frame[frame["activating"] == activating] if not frame.empty else frame
        # Markers, not bars: a prediction of 0 must still be visible (a bar of height 0 draws nothing).
        figure.add_trace(
            go.Scatter(
                x=list(part["sequence"]) if not part.empty else [],
                y=list(part["prediction"]) if not part.empty else [],
                mode="markers",
                name=name,
                marker={"color": colour, "size": 11, "line": {"width": 1, "color": "#333"}},
                customdata=list(part["outcome"]) if not part.empty else [],
                hovertemplate="%{x}<br>prediction %{y:.2f}<br>%{customdata}<extra></extra>",
            )
        )
    figure.add_hline(y=threshold, line_dash="dash", line_color="#444", annotation_text=f"fires at {threshold:g}")
    figure.update_layout(
        title=f"Detection: {shorten(result.explanation, 60)}",
        yaxis_title="the judge's P(yes)" if result.judgments else "prediction (chance the text fires, 0..1)",
        xaxis={"showticklabels": False, "title": "sequences"},
        height=340,
        margin={"l": 10, "r": 10, "t": 50, "b": 10},
    )
    return figure
