"""Pure functions from scoring results to pictures: HTML strings, plotly figures, tables, downloads.

Nothing here imports Streamlit or scores anything, so the pages stay thin and
every picture can be tested on plain data.
"""

from __future__ import annotations

import html
import json
import math
from collections.abc import Collection, Mapping, Sequence
from typing import Any

import pandas as pd
import plotly.graph_objects as go

from scoring.judged import JUDGE_THRESHOLD
from scoring.metrics import best_first_ranks
from scoring.records import ActivationRecord
from scoring.results import GeneratedExplanation, ScoreResult, SequenceResult, jsonable
from scoring.scorers import ACTIVE_THRESHOLD, DECISION_THRESHOLD
from scoring.simulators.base import Usage
from scoring.spotcheck import compare_method, verdict
from scoring.textformat import CandidateExplanation

SCALE_MAX = 10.0
"""Top of the 0..10 scale that real (normalised) and simulated activations share."""

ACTIVATION_RGB = (255, 140, 0)
"""Orange for activation strength, as Neuronpedia shows it."""

NEGATIVE_RGB = (31, 111, 235)
"""Blue for negative activations (shown only where a normalization keeps them)."""

_VISIBLE_WHITESPACE = {" ": "·", "\n": "↵", "\t": "→", "\r": "␍"}

_HEATMAP_CSS = (
    "<style>"
    ".tokviz{background:#fff;color:#111;font-family:ui-monospace,SFMono-Regular,Menlo,monospace;"
    "font-size:13px;line-height:1.9;padding:6px 8px;border:1px solid #e3e3e3;border-radius:6px}"
    ".tokviz .tok{display:inline-block;white-space:pre;padding:0 2px;margin:1px 0;"
    "border-right:1px solid rgba(0,0,0,.18);border-radius:2px}"
    ".tokviz .ws{color:#9a9a9a}"
    ".tokviz .failed{background:repeating-linear-gradient(45deg,#f3f3f3,#f3f3f3 4px,#e6e6e6 4px,#e6e6e6 8px)}"
    ".tokviz .err{color:#b00020;font-size:12px;margin:2px 0}"
    ".tokviz .active{outline:2px solid #1f6feb;outline-offset:-1px}"
    ".tokviz.scroll{max-height:11.5em;overflow-y:auto}"
    ".cmpgrid{display:grid;gap:8px;margin-bottom:14px;align-items:start}"
    ".cmpgrid .head{font:600 12px system-ui,sans-serif;color:#333;margin-bottom:2px;"
    "white-space:nowrap;overflow:hidden;text-overflow:ellipsis}"
    ".cmpgrid .head.missed{color:#b35900}"
    ".cmpseq{font:600 13px system-ui,sans-serif;margin:10px 0 4px 0}"
    "</style>"
)


def activation_color(value: float | None, vmax: float = SCALE_MAX) -> str:
    """CSS background for an activation: transparent at 0, full orange at `vmax`, blue below 0, grey when missing."""
    if value is None or not math.isfinite(value):
        return "rgba(200,200,200,0.6)"
    strength = 0.0 if vmax <= 0 else min(1.0, abs(value) / vmax)
    red, green, blue = NEGATIVE_RGB if value < 0 else ACTIVATION_RGB
    return f"rgba({red},{green},{blue},{strength * 0.85:.3f})"


def visible_token_text(token: str) -> str:
    """HTML for a token with spaces, tabs and newlines drawn as visible marks (escaped)."""
    if token == "":
        return '<span class="ws">∅</span>'
    parts = []
    for character in token:
        if character in _VISIBLE_WHITESPACE:
            parts.append(f'<span class="ws">{_VISIBLE_WHITESPACE[character]}</span>')
        else:
            parts.append(html.escape(character, quote=True))
    return "".join(parts)


def _format_value(value: float | None) -> str:
    if value is None or not math.isfinite(value):
        return "n/a"
    return f"{value:.2f}"


def tokens_html(
    tokens: Sequence[str],
    values: Sequence[float] | None,
    *,
    vmax: float = SCALE_MAX,
    hover: Sequence[str] | None = None,
    error: str | None = None,
    include_style: bool = True,
    outlined: Collection[int] = (),
    scroll: bool = True,
) -> str:
    """One sequence as coloured token boxes; hovering a token shows its exact value(s).

    `values` None (a failed simulation) draws hatched boxes and the `error` text.
    `hover` gives extra text per token for the tooltip (e.g. the real value).
    Tokens at the positions in `outlined` get a blue outline (class ``active``).
    With `scroll` a long sequence scrolls inside a box of a few lines instead of
    making the page tall.
    """
    if values is not None and len(values) != len(tokens):
        raise ValueError(f"{len(tokens)} tokens but {len(values)} values")
    if hover is not None and len(hover) != len(tokens):
        raise ValueError(f"{len(tokens)} tokens but {len(hover)} hover texts")
    spans = []
    for position, token in enumerate(tokens):
        value = None if values is None else float(values[position])
        title = f"{token!r}  value {_format_value(value)}"
        if hover is not None:
            title += f"  {hover[position]}"
        css_class = "tok" if values is not None else "tok failed"
        if position in outlined:
            css_class += " active"
        style = "" if values is None else f' style="background:{activation_color(value, vmax)}"'
        spans.append(
            f'<span class="{css_class}"{style} title="{html.escape(title, quote=True)}">'
            f"{visible_token_text(token)}</span>"
        )
    body = "".join(spans)
    if error:
        body += f'<div class="err">{html.escape(error)}</div>'
    box = "tokviz scroll" if scroll else "tokviz"
    return (_HEATMAP_CSS if include_style else "") + f'<div class="{box}">{body}</div>'


def sequence_label(tokens: Sequence[str], index: int, width: int = 40) -> str:
    """'#3 the quick brown…' — a short name for a sequence in tables and axes."""
    text = "".join(tokens).replace("\n", " ").strip()
    if len(text) > width:
        text = text[: width - 1] + "…"
    return f"#{index} {text}"


def sequence_outcome(sequence: SequenceResult) -> tuple[str, str]:
    """Why a sequence has the correlation it has: (kind, sentence for a hover).

    kind is "scored" (a finite correlation), "failed" (no simulation),
    "silent" (the real activations are constant: the neuron does not fire
    here, so no correlation is defined) or "missed" (the neuron fires but the
    simulation is the same on every token: the explanation predicted nothing
    here, the failure a moderator looks for).
    """
    if sequence.simulated is None or sequence.error:
        return "failed", sequence.error or "the simulation failed"
    if math.isfinite(sequence.correlation):
        return "scored", ""
    real_constant = max(sequence.real, default=0.0) == min(sequence.real, default=0.0)
    simulated_constant = max(sequence.simulated, default=0.0) == min(sequence.simulated, default=0.0)
    flat = sequence.simulated[0] if sequence.simulated else 0.0
    if real_constant:
        level = sequence.real[0] if sequence.real else 0.0
        side = "and the simulation is constant too" if simulated_constant else "(the simulation varies)"
        return "silent", (
            f"the real activation is constant at {level:.2f} {side}: the neuron does not fire differently "
            "here, so no correlation is defined"
        )
    if simulated_constant:
        active = [position for position, value in enumerate(sequence.real) if value > 0]
        predicted = sum(sequence.simulated[position] > 0 for position in active)
        return "missed", (
            f"the neuron fires here (real max {max(sequence.real):.2f} of 10) but the simulation is constant at "
            f"{flat:.2f} on every token: a missed firing; recall of active tokens {predicted}/{len(active)}"
        )
    return "failed", "the correlation is undefined here"


OUTCOME_MARKS = {"silent": "–", "missed": "✗ missed", "failed": "error"}
"""What a per-sequence cell shows instead of r when r is undefined."""


def comparison_html(
    results: Sequence[ScoreResult], *, max_sequences: int | None = None, strongest_first: bool = False
) -> str:
    """Real vs simulated activations for every scored sequence, one column per explanation.

    Sequences are matched across results by their index in the loaded records;
    each block shows the sequence's real activations first, then what each
    explanation's simulation predicted, with its per-sequence correlation (or
    why there is none). With `strongest_first` the sequences with the highest
    real activation come first.
    """
    if not results:
        return ""
    order: list[int] = []
    by_index: dict[int, dict[int, SequenceResult]] = {}
    for column, result in enumerate(results):
        for sequence in result.sequences:
            if sequence.index not in by_index:
                by_index[sequence.index] = {}
                order.append(sequence.index)
            by_index[sequence.index][column] = sequence
    if strongest_first:
        order.sort(key=lambda index: -max(next(iter(by_index[index].values())).real, default=0.0))
    if max_sequences is not None:
        order = order[:max_sequences]
    n_columns = len(results) + 1
    blocks = [_HEATMAP_CSS]
    for index in order:
        columns = by_index[index]
        reference = next(iter(columns.values()))
        real = reference.real
        raw = reference.raw
        real_hover = [f"raw {raw_value:g}" for raw_value in raw]
        cells = [
            '<div><div class="head">Real activations</div>'
            + tokens_html(reference.tokens, real, hover=real_hover, include_style=False)
            + "</div>"
        ]
        for column, result in enumerate(results):
            cell = columns.get(column)
            head = html.escape(shorten(result.explanation, 60))
            if cell is None:
                cells.append(f'<div><div class="head">{head}</div><div class="tokviz">not scored</div></div>')
                continue
            hover = [f"real {_format_value(value)}" for value in cell.real]
            kind, reason = sequence_outcome(cell)
            correlation = f"r = {_format_value(cell.correlation)}" if kind == "scored" else OUTCOME_MARKS[kind]
            head_class = "head missed" if kind == "missed" else "head"
            title = result.explanation + (f" — {reason}" if reason else "")
            cells.append(
                f'<div><div class="{head_class}" title="{html.escape(title, quote=True)}">'
                f'{head} <span style="font-weight:400">({correlation})</span></div>'
                + tokens_html(
                    cell.tokens,
                    cell.simulated,
                    hover=hover,
                    error=cell.error,
                    include_style=False,
                )
                + "</div>"
            )
        blocks.append(
            f'<div class="cmpseq">{html.escape(sequence_label(reference.tokens, index))}</div>'
            f'<div class="cmpgrid" style="grid-template-columns:repeat({n_columns},minmax(0,1fr))">'
            + "".join(cells)
            + "</div>"
        )
    return "".join(blocks)


def shorten(text: str, width: int) -> str:
    """`text` cut to `width` characters with an ellipsis."""
    return text if len(text) <= width else text[: width - 1] + "…"


def color_legend_html(vmax: float = SCALE_MAX) -> str:
    """A small swatch row explaining the colours."""
    steps = [0.0, 2.5, 5.0, 7.5, 10.0]
    swatches = "".join(
        f'<span class="tok" style="background:{activation_color(step * vmax / SCALE_MAX, vmax)}">'
        f"{step * vmax / SCALE_MAX:g}</span> "
        for step in steps
    )
    return (
        _HEATMAP_CSS
        + '<div class="tokviz">Activation (0..10): '
        + swatches
        + ' &nbsp; <span class="ws">·</span> space <span class="ws">↵</span> newline '
        + '<span class="ws">→</span> tab &nbsp; '
        + '<span class="tok failed">&nbsp;&nbsp;</span> no simulation</div>'
    )


def _metric(result: ScoreResult, name: str) -> float:
    value = result.metrics.get(name, math.nan)
    return float(value) if isinstance(value, (int, float)) else math.nan


def best_index(results: Sequence[ScoreResult]) -> int | None:
    """Position of the highest finite score, or None when no score is finite."""
    finite = [(result.score, pos) for pos, result in enumerate(results) if math.isfinite(result.score)]
    if not finite:
        return None
    return max(finite, key=lambda pair: (pair[0], -pair[1]))[1]


def explanation_source(explanation: str, generated: Collection[str]) -> str:
    """'generated' for a candidate a simulator wrote, 'given' for one the user gave."""
    return "generated" if explanation in generated else "given"


def ranking_frame(results: Sequence[ScoreResult], generated: Collection[str] = ()) -> pd.DataFrame:
    """One row per explanation, in the given (ranked) order, with every headline number.

    `generated` names the explanations a simulator wrote; the ``source`` column says which.
    """
    rows = []
    for rank, result in enumerate(results, start=1):
        low, high = result.interval
        rows.append(
            {
                "rank": rank,
                "explanation": result.explanation,
                "source": explanation_source(result.explanation, generated),
                "score": result.score,
                "interval": _interval_text(low, high),
                "ci_low": low,
                "ci_high": high,
                "r_squared": _metric(result, "r_squared"),
                "roc_auc": _metric(result, "roc_auc"),
                "spearman": _metric(result, "spearman"),
                "mean_seq_corr": _metric(result, "mean_sequence_correlation"),
                "prompt_tokens": result.usage.prompt_tokens,
                "completion_tokens": result.usage.completion_tokens,
                "cost_usd": result.usage.cost_usd if result.usage.cost_usd is not None else math.nan,
                "cached": result.cached,
                "seconds": result.seconds,
                "error": result.error or "",
            }
        )
    return pd.DataFrame(rows)


def _interval_text(low: float, high: float) -> str:
    if not (math.isfinite(low) and math.isfinite(high)):
        return "n/a"
    return f"[{low:.2f}, {high:.2f}]"


_BEST_ROW_STYLE = "background-color: rgba(40,167,69,0.25); font-weight: 600"
_RANKING_COLUMNS = (
    "rank",
    "explanation",
    "source",
    "score",
    "interval",
    "r_squared",
    "roc_auc",
    "spearman",
    "mean_seq_corr",
    "prompt_tokens",
    "cost_usd",
    "cached",
    "seconds",
    "error",
)


def format_number(value: Any, digits: int = 3) -> str:
    """A float for display: fixed digits, 'n/a' for NaN/None (undefined is never shown as 0)."""
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "n/a"
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return str(value)
    return f"{value:.{digits}f}"


def ranking_table(results: Sequence[ScoreResult], generated: Collection[str] = ()) -> Any:
    """The ranking for display: numbers as text ('n/a' when undefined), the best row tinted green.

    The ``source`` column is shown when some explanation was generated.
    Returns a pandas Styler (st.dataframe shows its colours).
    """
    frame = ranking_frame(results, generated)
    columns = [name for name in _RANKING_COLUMNS if name != "source" or any(frame["source"] == "generated")]
    shown = frame.loc[:, columns].copy()
    for name in ("score", "r_squared", "roc_auc", "spearman", "mean_seq_corr"):
        shown[name] = [format_number(value) for value in frame[name]]
    shown["cost_usd"] = [
        "n/a" if not math.isfinite(value) else f"${value:.5f}" for value in frame["cost_usd"].astype(float)
    ]
    shown["seconds"] = [format_number(value, 2) for value in frame["seconds"]]
    shown["cached"] = ["yes" if value else "no" for value in frame["cached"]]
    best = best_index(results)

    def tint(row: pd.Series) -> list[str]:
        return [_BEST_ROW_STYLE if row.name == best else ""] * len(row)

    return shown.style.apply(tint, axis=1)


def per_sequence_frame(results: Sequence[ScoreResult]) -> pd.DataFrame:
    """Per-sequence correlation: rows are sequences, columns explanations (NaN where undefined)."""
    labels: dict[int, str] = {}
    data: dict[str, dict[int, float]] = {}
    for result in results:
        column = data.setdefault(_unique_column(result.explanation, data), {})
        for sequence in result.sequences:
            labels.setdefault(sequence.index, sequence_label(sequence.tokens, sequence.index))
            column[sequence.index] = float(sequence.correlation)
    frame = pd.DataFrame(data, index=sorted(labels), dtype=float)
    frame.index = [labels[index] for index in frame.index]
    frame.index.name = "sequence"
    return frame


def _unique_column(name: str, existing: Mapping[str, Any]) -> str:
    candidate, number = name, 2
    while candidate in existing:
        candidate, number = f"{name} ({number})", number + 1
    return candidate


def _outcome_grid(results: Sequence[ScoreResult], rows: Sequence[int]) -> list[list[tuple[str, str]]]:
    """`sequence_outcome` per (row = sequence index in `rows`, column = result); ("failed", ...) where unscored."""
    positions = {index: row for row, index in enumerate(rows)}
    grid = [[("failed", "not scored with this explanation")] * len(results) for _ in rows]
    for column, result in enumerate(results):
        for sequence in result.sequences:
            grid[positions[sequence.index]][column] = sequence_outcome(sequence)
    return grid


def per_sequence_table(results: Sequence[ScoreResult]) -> pd.DataFrame:
    """`per_sequence_frame` for display: r with 3 digits, or why r is undefined (✗ missed, –, error)."""
    frame = per_sequence_frame(results)
    rows = sorted({sequence.index for result in results for sequence in result.sequences})
    grid = _outcome_grid(results, rows)
    shown = frame.astype(object)
    for row in range(frame.shape[0]):
        for column in range(frame.shape[1]):
            kind, _ = grid[row][column]
            value = frame.iat[row, column]
            shown.iat[row, column] = format_number(value) if kind == "scored" else OUTCOME_MARKS[kind]
    return shown


MISSED_COLOUR = "rgb(255,176,0)"


def per_sequence_figure(results: Sequence[ScoreResult]) -> go.Figure:
    """Heatmap of per-sequence correlation (sequences x explanations).

    An undefined r says why on hover: a silent neuron ("–"), a failed
    simulation ("error"), or a missed firing ("✗ missed", drawn amber): the
    neuron fires but the simulation is flat.
    """
    frame = per_sequence_frame(results)
    rows = sorted({sequence.index for result in results for sequence in result.sequences})
    grid = _outcome_grid(results, rows)
    values = frame.to_numpy()
    shape = range(values.shape[0]), range(values.shape[1])
    columns = [shorten(str(name), 30) for name in frame.columns]
    text = [
        [
            OUTCOME_MARKS.get(grid[row][column][0], _format_value(values[row][column]))
            for column in shape[1]
        ]
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
            colorscale="RdBu",
            text=text,
            texttemplate="%{text}",
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


def results_csv(results: Sequence[ScoreResult]) -> str:
    """The ranking table as CSV."""
    return ranking_frame(results).to_csv(index=False)


def tokens_csv(results: Sequence[ScoreResult]) -> str:
    """Every token of every explanation: explanation, sequence, position, token, raw, real, simulated."""
    rows = []
    for result in results:
        for sequence in result.sequences:
            simulated = sequence.simulated or [math.nan] * len(sequence.tokens)
            for position, token in enumerate(sequence.tokens):
                rows.append(
                    {
                        "explanation": result.explanation,
                        "sequence": sequence.index,
                        "position": position,
                        "token": token,
                        "raw": sequence.raw[position],
                        "real": sequence.real[position],
                        "simulated": simulated[position],
                        "error": sequence.error or "",
                    }
                )
    return pd.DataFrame(rows).to_csv(index=False)


def results_json(results: Sequence[ScoreResult], extra: Mapping[str, Any] | None = None) -> str:
    """Every result (with sequences) as a JSON document; NaN becomes null."""
    document: dict[str, Any] = dict(extra or {})
    document["results"] = [result.to_dict() for result in results]
    return json.dumps(jsonable(document), indent=2, allow_nan=False, default=str)


def usage_summary(results: Sequence[ScoreResult]) -> dict[str, Any]:
    """Totals over all results: requests, tokens, cost (None when unknown), cache hits/misses, seconds."""
    total = Usage()
    for result in results:
        total.add(result.usage)
    summary = total.to_dict()
    summary["seconds"] = sum(result.seconds for result in results)
    return summary


def spot_check_frame(
    claims: Sequence[float | None],
    results: Sequence[ScoreResult],
    tolerance: float = 0.05,
    candidates: Sequence[CandidateExplanation] | None = None,
) -> pd.DataFrame:
    """Claimed vs re-scored, one row per explanation (results in the claims' order).

    With `candidates` (the explanations as the file gave them) the table also
    shows who wrote each explanation, how its score was made, and whether that
    is the re-score's method (`scoring.spotcheck.compare_method`); a verdict
    across different methods says so.
    """
    rows = []
    for position, (claimed, result) in enumerate(zip(claims, results, strict=True)):
        low, high = result.interval
        candidate = candidates[position] if candidates is not None else None
        method = compare_method(candidate.score_type, candidate.score_model, result) if candidate else None
        row: dict[str, Any] = {"explanation": result.explanation}
        if candidate is not None:
            row["explainer"] = candidate.explainer_model
        row.update(
            {
                "claimed": claimed if claimed is not None else math.nan,
                "rescored": result.score,
                "interval": _interval_text(low, high),
                "difference": (result.score - claimed) if claimed is not None else math.nan,
                "verdict": verdict(claimed, result, tolerance, same_method=method.same if method else True),
            }
        )
        if candidate is not None and method is not None:
            row["claim method"] = " · ".join(part for part in (candidate.score_type, candidate.score_model) if part)
            row["comparison"] = method.note if claimed is not None else ""
        row["error"] = result.error or ""
        rows.append(row)
    return pd.DataFrame(rows)


_VERDICT_STYLES = {
    "disagrees": "background-color: rgba(220,53,69,0.25); font-weight: 600",
    "agrees": "background-color: rgba(40,167,69,0.2)",
    "disagrees (methods differ)": "background-color: rgba(255,193,7,0.3)",
    "agrees (methods differ)": "background-color: rgba(40,167,69,0.1)",
    "not scored": "background-color: rgba(255,193,7,0.25)",
}


def highlight_verdicts(frame: pd.DataFrame) -> Any:
    """Styler for `spot_check_frame`: numbers as text; disagreements red, across methods amber; agreements green."""
    shown = frame.copy()
    for name in ("claimed", "rescored", "difference"):
        if name in shown.columns:
            shown[name] = [format_number(value) for value in frame[name]]

    def tint(row: pd.Series) -> list[str]:
        return [_VERDICT_STYLES.get(str(row.get("verdict")), "")] * len(row)

    return shown.style.apply(tint, axis=1)


def bench_frame(report: Mapping[str, Any]) -> pd.DataFrame:
    """One row per puzzle of a `scoring.bench.run_bench` report: true score vs the best false one."""
    rows = []
    for key, entry in dict(report.get("puzzles", {})).items():
        false_scores = {
            text: (math.nan if score is None else float(score))
            for text, score in dict(entry.get("false_scores", {})).items()
        }
        finite = {text: score for text, score in false_scores.items() if math.isfinite(score)}
        best_false = max(finite, key=lambda text: finite[text]) if finite else next(iter(false_scores), "")
        errors = dict(entry.get("errors", {}))
        true_score = entry.get("true_score")
        true_value = math.nan if true_score is None else float(true_score)
        best_value = false_scores.get(best_false, math.nan)
        rows.append(
            {
                "puzzle": key,
                "won": bool(entry.get("won")),
                "explanation": entry.get("explanation", ""),
                "true_score": true_value,
                "best_false_explanation": best_false,
                "best_false_score": best_value,
                "margin": true_value - best_value,
                "pairs_won": f"{entry.get('pairs_won', 0)}/{entry.get('pairs', 0)}",
                "errors": "; ".join(f"{text}: {error}" for text, error in errors.items()),
            }
        )
    return pd.DataFrame(rows)


def highlight_bench(frame: pd.DataFrame) -> Any:
    """Styler for `bench_frame`: numbers as text ('n/a' when undefined), lost puzzles tinted red."""
    shown = frame.copy()
    for name in ("true_score", "best_false_score", "margin"):
        if name in shown.columns:
            shown[name] = [format_number(value) for value in frame[name]]

    def tint(row: pd.Series) -> list[str]:
        return ["" if row.get("won") else "background-color: rgba(220,53,69,0.18)"] * len(row)

    return shown.style.apply(tint, axis=1)


def estimate_api_usage(
    explanations: Sequence[str],
    sequences: Sequence[Sequence[str]],
    *,
    sequences_per_call: int,
    prompt_price: float | None = None,
    completion_price: float | None = None,
) -> dict[str, Any]:
    """A rough count of requests, tokens and cost before scoring with an API simulator.

    Prompt size follows the chat layout of `scoring.prompts` (system text plus
    the explanation and the token list, about 4 characters per token); each
    token costs about 3 completion tokens (a number and a separator). Cache
    hits are not subtracted, so this is an upper bound for repeated scores.
    """
    from scoring.prompts import API_CHAT_SYSTEM, api_chat_user_message

    per_call = max(1, int(sequences_per_call))
    chunks = [
        [list(tokens) for tokens in sequences[start : start + per_call]]
        for start in range(0, len(sequences), per_call)
    ]
    prompt_tokens = completion_tokens = requests = 0
    for explanation in explanations:
        for chunk in chunks:
            characters = len(API_CHAT_SYSTEM) + len(api_chat_user_message(explanation, chunk))
            prompt_tokens += characters // 4 + 1
            completion_tokens += 3 * sum(len(tokens) for tokens in chunk) + 10
            requests += 1
    cost = None
    if prompt_price is not None and completion_price is not None:
        cost = (prompt_tokens * prompt_price + completion_tokens * completion_price) / 1_000_000
    return {
        "requests": requests,
        "prompt_tokens": prompt_tokens,
        "completion_tokens": completion_tokens,
        "cost_usd": cost,
    }


# ---------------------------------------------------------------------------
# Several scorers: one row per explanation, a score and a rank per scorer
# ---------------------------------------------------------------------------

DISAGREEMENT_MARK = "⚠"


def scorer_ranking_frame(
    results_by_scorer: Mapping[str, Sequence[ScoreResult]], generated: Collection[str] = ()
) -> pd.DataFrame:
    """One row per explanation, in the first scorer's order: per scorer its score and rank, and the rank spread.

    Ranks are competition ranks (1 = best, equal scores share a rank); a NaN
    score has no rank (<NA>). ``rank_spread`` is the largest minus the smallest rank an
    explanation gets (<NA> with fewer than two ranks); ``disagreement`` is
    "⚠ <spread>" when the scorers rank it differently, an explanation scored
    by one scorer and undefined under another included ("⚠ n/a").
    """
    names = list(results_by_scorer)
    if not names:
        return pd.DataFrame()
    order = [result.explanation for result in results_by_scorer[names[0]]]
    scores: dict[str, dict[str, float]] = {}
    ranks: dict[str, dict[str, int | None]] = {}
    for name in names:
        by_text = {result.explanation: float(result.score) for result in results_by_scorer[name]}
        scores[name] = by_text
        texts = list(by_text)
        ranks[name] = dict(zip(texts, best_first_ranks([by_text[text] for text in texts]), strict=True))
        order += [text for text in texts if text not in order]
    rows = []
    for text in order:
        row: dict[str, Any] = {"explanation": text, "source": explanation_source(text, generated)}
        found: list[int | None] = []
        for name in names:
            row[name] = scores[name].get(text, math.nan)
            rank = ranks[name].get(text)
            row[f"{name} rank"] = rank
            found.append(rank)
        known = [rank for rank in found if rank is not None]
        spread = max(known) - min(known) if len(known) >= 2 else None
        row["rank_spread"] = spread
        if known and len(known) < len(found):
            row["disagreement"] = f"{DISAGREEMENT_MARK} n/a"
        elif spread:
            row["disagreement"] = f"{DISAGREEMENT_MARK} {spread}"
        else:
            row["disagreement"] = ""
        rows.append(row)
    frame = pd.DataFrame(rows)
    for column in [f"{name} rank" for name in names] + ["rank_spread"]:
        frame[column] = pd.array([None if pd.isna(value) else int(value) for value in frame[column]], dtype="Int64")
    return frame


_DISAGREEMENT_STYLE = "background-color: rgba(255,193,7,0.25)"


def scorer_ranking_table(
    results_by_scorer: Mapping[str, Sequence[ScoreResult]], generated: Collection[str] = ()
) -> Any:
    """`scorer_ranking_frame` for display: scores as text, ranks as '#n', disagreeing rows tinted amber."""
    frame = scorer_ranking_frame(results_by_scorer, generated)
    if frame.empty:
        return frame.style
    shown = frame.drop(columns=["rank_spread"])
    if not any(shown["source"] == "generated"):
        shown = shown.drop(columns=["source"])
    for name in results_by_scorer:
        shown[name] = [format_number(value) for value in frame[name]]
        shown[f"{name} rank"] = [
            "n/a" if rank is None or pd.isna(rank) else f"#{int(rank)}" for rank in frame[f"{name} rank"]
        ]

    def tint(row: pd.Series) -> list[str]:
        return [_DISAGREEMENT_STYLE if row.get("disagreement") else ""] * len(row)

    return shown.style.apply(tint, axis=1)


def metrics_frame(results: Sequence[ScoreResult]) -> pd.DataFrame:
    """Every number a scorer reported, one row per explanation (lists and nested entries left out)."""
    rows = []
    for result in results:
        row: dict[str, Any] = {"explanation": result.explanation, "score": result.score}
        for name, value in result.metrics.items():
            if isinstance(value, (int, float)) and not isinstance(value, bool):
                row[name] = value
        row["error"] = result.error or ""
        rows.append(row)
    return pd.DataFrame(rows)


COUNT_METRICS = frozenset({"positives", "negatives", "questions"})
"""Metrics that count things (besides every ``n_...``): shown as whole numbers."""


def metrics_table(results: Sequence[ScoreResult]) -> pd.DataFrame:
    """`metrics_frame` for display: counts as whole numbers, other numbers with 3 digits, 'n/a' when undefined.

    A count stays a count when a missing value turned its column into floats.
    """
    frame = metrics_frame(results)
    shown = frame.copy()
    for name in frame.columns:
        if pd.api.types.is_integer_dtype(frame[name]) or (
            (str(name).startswith("n_") or name in COUNT_METRICS) and pd.api.types.is_numeric_dtype(frame[name])
        ):
            shown[name] = [format_number(value, 0) for value in frame[name]]
        elif pd.api.types.is_numeric_dtype(frame[name]):
            shown[name] = [format_number(value) for value in frame[name]]
    return shown


# ---------------------------------------------------------------------------
# How detection and fuzzing judged: sequences and tokens
# ---------------------------------------------------------------------------


def _is_positive(prediction: Any, threshold: float) -> bool:
    if isinstance(prediction, bool):
        return prediction
    return math.isfinite(float(prediction)) and float(prediction) >= threshold


def detection_frame(result: ScoreResult) -> pd.DataFrame:
    """Per sequence: activating or not (real max >= ACTIVE_THRESHOLD), the prediction, and the verdict.

    The prediction is ``metrics["sequence_predictions"]`` when the scorer
    recorded it (one per sequence, in order), else the sequence's highest
    simulated activation; "fires" means at or above ``metrics["threshold"]``
    (default DECISION_THRESHOLD). Outcomes: hit, miss, false alarm, correct
    rejection, or "not simulated" ("not judged" for a judge scorer). For
    detection-judge the prediction is the judge's P(yes) and the threshold 0.5.
    """
    threshold = float(result.metrics.get("threshold", DECISION_THRESHOLD))
    recorded = result.metrics.get("sequence_predictions")
    if not isinstance(recorded, list) or len(recorded) != len(result.sequences):
        recorded = None
    rows = []
    for position, sequence in enumerate(result.sequences):
        real_max = max(sequence.real, default=0.0)
        activating = real_max >= ACTIVE_THRESHOLD
        prediction: Any
        if recorded is not None:
            prediction = recorded[position]
        elif sequence.simulated:
            prediction = max(sequence.simulated)
        else:
            prediction = None
        if prediction is None:
            judged, outcome = "n/a", "not judged" if result.judgments else "not simulated"
        else:
            fires = _is_positive(prediction, threshold)
            judged = "fires" if fires else "silent"
            outcome = {
                (True, True): "hit",
                (True, False): "miss",
                (False, True): "false alarm",
                (False, False): "correct rejection",
            }[(activating, fires)]
        rows.append(
            {
                "sequence": sequence_label(sequence.tokens, sequence.index),
                "real_max": real_max,
                "activating": "yes" if activating else "no",
                "prediction": math.nan if prediction is None else float(prediction),
                "judged": judged,
                "outcome": outcome,
            }
        )
    return pd.DataFrame(rows)


_OUTCOME_STYLES = {
    "hit": "background-color: rgba(40,167,69,0.2)",
    "correct rejection": "background-color: rgba(40,167,69,0.1)",
    "miss": "background-color: rgba(220,53,69,0.2)",
    "false alarm": "background-color: rgba(220,53,69,0.2)",
}


def detection_table(result: ScoreResult) -> Any:
    """`detection_frame` for display: numbers as text, right verdicts green, wrong ones red."""
    frame = detection_frame(result)
    shown = frame.copy()
    for name in ("real_max", "prediction"):
        if name in shown.columns:
            shown[name] = [format_number(value, 2) for value in frame[name]]

    def tint(row: pd.Series) -> list[str]:
        return [_OUTCOME_STYLES.get(str(row.get("outcome")), "")] * len(row)

    return shown.style.apply(tint, axis=1)


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
        yaxis_title="the judge's P(yes)" if result.judgments else "prediction (highest simulated activation)",
        xaxis={"showticklabels": False, "title": "sequences"},
        height=340,
        margin={"l": 10, "r": 10, "t": 50, "b": 10},
    )
    return figure


def fuzzing_frame(result: ScoreResult) -> pd.DataFrame:
    """Per activating sequence that also has inactive tokens: the simulation on the active vs the other tokens.

    A token is active at real >= ACTIVE_THRESHOLD. ``right_higher`` says whether
    the active (correctly marked) tokens get a higher mean simulated activation
    than the inactive ones. The fuzzing scorer compares with a seeded random
    sample of as many inactive tokens, which it does not record; the mean over
    all inactive tokens shows the same comparison without the draw.
    """
    rows = []
    for sequence in result.sequences:
        active = [i for i, value in enumerate(sequence.real) if value >= ACTIVE_THRESHOLD]
        inactive = [i for i, value in enumerate(sequence.real) if value < ACTIVE_THRESHOLD]
        if not active or not inactive:
            continue
        simulated = sequence.simulated
        active_mean = sum(simulated[i] for i in active) / len(active) if simulated else math.nan
        inactive_mean = sum(simulated[i] for i in inactive) / len(inactive) if simulated else math.nan
        if not simulated:
            verdict = "not simulated"
        elif active_mean > inactive_mean:
            verdict = "yes"
        elif active_mean < inactive_mean:
            verdict = "no"
        else:
            verdict = "tie"
        rows.append(
            {
                "sequence": sequence_label(sequence.tokens, sequence.index),
                "active_tokens": ", ".join(sequence.tokens[i].strip() or repr(sequence.tokens[i]) for i in active),
                "active_mean": active_mean,
                "inactive_mean": inactive_mean,
                "right_higher": verdict,
            }
        )
    return pd.DataFrame(
        rows, columns=["sequence", "active_tokens", "active_mean", "inactive_mean", "right_higher"]
    )


def fuzzing_html(result: ScoreResult, *, max_sequences: int | None = None) -> str:
    """Activating sequences as simulated-activation heatmaps with the really active tokens outlined."""
    blocks = [_HEATMAP_CSS]
    shown = 0
    for sequence in result.sequences:
        active = {i for i, value in enumerate(sequence.real) if value >= ACTIVE_THRESHOLD}
        if not active or len(active) == len(sequence.tokens):
            continue
        if max_sequences is not None and shown >= max_sequences:
            break
        shown += 1
        hover = [
            f"real {_format_value(real)}" + (" (active)" if i in active else "")
            for i, real in enumerate(sequence.real)
        ]
        blocks.append(
            f'<div class="cmpseq">{html.escape(sequence_label(sequence.tokens, sequence.index))}</div>'
            + tokens_html(
                sequence.tokens,
                sequence.simulated,
                hover=hover,
                error=sequence.error,
                include_style=False,
                outlined=active,
            )
        )
    if shown == 0:
        blocks.append('<div class="tokviz">No sequence has both active and inactive tokens.</div>')
    return "".join(blocks)


# ---------------------------------------------------------------------------
# How a judge scorer judged: its questions and the answers
# ---------------------------------------------------------------------------

JUDGMENT_COLUMNS = ("sequence", "text", "target", "expected", "p_yes", "answer", "outcome")


def judgments_frame(result: ScoreResult) -> pd.DataFrame:
    """One row per question a judge scorer asked (`result.judgments`), in the order asked.

    ``text`` is what the judge was shown (marked tokens in << >>); ``target``
    what a perfect judge follows (1 or 0, or for binary-condition the window's
    highest real activation); ``expected`` the right answer ("yes" for target 1,
    or for binary-condition a window with an active token); ``answer`` the
    judge's, "yes" at P(yes) >= ``metrics["threshold"]`` (0.5); ``outcome``
    "right", "wrong", or the reason there is no answer. Empty (with these
    columns) for a scorer that asked nothing.
    """
    threshold = float(result.metrics.get("threshold", JUDGE_THRESHOLD))
    graded = result.scorer == "binary-condition"
    tokens_at = {sequence.index: sequence.tokens for sequence in result.sequences}
    rows = []
    for judgment in result.judgments:
        tokens = tokens_at.get(judgment.index)
        label = sequence_label(tokens, judgment.index) if tokens is not None else f"#{judgment.index}"
        expected = judgment.target >= (ACTIVE_THRESHOLD if graded else 0.5)
        if judgment.p_yes is None:
            answer, outcome = "n/a", f"no answer: {judgment.error or 'not judged'}"
        else:
            said_yes = judgment.p_yes >= threshold
            answer = "yes" if said_yes else "no"
            outcome = "right" if said_yes == expected else "wrong"
        rows.append(
            {
                "sequence": label,
                "text": judgment.content,
                "target": judgment.target,
                "expected": "yes" if expected else "no",
                "p_yes": math.nan if judgment.p_yes is None else judgment.p_yes,
                "answer": answer,
                "outcome": outcome,
            }
        )
    return pd.DataFrame(rows, columns=list(JUDGMENT_COLUMNS))


_JUDGMENT_STYLES = {
    "right": "background-color: rgba(40,167,69,0.15)",
    "wrong": "background-color: rgba(220,53,69,0.2)",
}


def judgments_table(result: ScoreResult) -> Any:
    """`judgments_frame` for display: numbers as text, right answers green, wrong ones red."""
    frame = judgments_frame(result)
    shown = frame.copy()
    shown["target"] = [format_number(value, 2) for value in frame["target"]]
    shown["p_yes"] = [format_number(value, 3) for value in frame["p_yes"]]

    def tint(row: pd.Series) -> list[str]:
        return [_JUDGMENT_STYLES.get(str(row.get("outcome")), "")] * len(row)

    return shown.style.apply(tint, axis=1)


# ---------------------------------------------------------------------------
# Generated explanations
# ---------------------------------------------------------------------------


def generated_frame(generated: Sequence[GeneratedExplanation]) -> pd.DataFrame:
    """One row per generation attempt: the text or the reason it failed, whether cached, tokens and cost."""
    rows = [
        {
            "attempt": candidate.attempt + 1,
            "explanation": candidate.text if candidate.text is not None else "",
            "error": candidate.error or "",
            "cached": "yes" if candidate.cached else "no",
            "prompt_tokens": candidate.usage.prompt_tokens,
            "cost_usd": "n/a" if candidate.usage.cost_usd is None else f"${candidate.usage.cost_usd:.5f}",
        }
        for candidate in generated
    ]
    return pd.DataFrame(
        rows, columns=["attempt", "explanation", "error", "cached", "prompt_tokens", "cost_usd"]
    )


# ---------------------------------------------------------------------------
# Benchmarks with several scorers
# ---------------------------------------------------------------------------


def bench_scorers_frame(report: Mapping[str, Any]) -> pd.DataFrame:
    """One row per scorer of a `scoring.bench.run_bench` report (one row for a single-scorer report)."""
    scorers = dict(report.get("scorers") or {report.get("scorer", ""): report})
    rows = [
        {
            "scorer": name,
            "accuracy": _number(summary.get("accuracy")),
            "pairwise_accuracy": _number(summary.get("pairwise_accuracy")),
            "seconds_per_score": _number(summary.get("seconds_per_score")),
            "prompt_tokens_per_score": _number(summary.get("prompt_tokens_per_score")),
            "cost_usd": _number(summary.get("cost_usd")),
            "puzzles_won": sum(bool(entry.get("won")) for entry in dict(summary.get("puzzles", {})).values()),
            "n_puzzles": summary.get("n_puzzles", 0),
        }
        for name, summary in scorers.items()
    ]
    return pd.DataFrame(rows)


def bench_agreement_frame(report: Mapping[str, Any]) -> pd.DataFrame:
    """One row per pair of scorers: mean Kendall tau-b and the share of puzzles with the same top explanation."""
    pairs = list(dict(report.get("agreement") or {}).get("pairs", []))
    rows = [
        {
            "scorers": " ~ ".join(pair.get("scorers", [])),
            "kendall_tau": _number(pair.get("kendall_tau")),
            "tau_puzzles": pair.get("tau_puzzles", 0),
            "top_agreement": _number(pair.get("top_agreement")),
            "top_puzzles": pair.get("top_puzzles", 0),
        }
        for pair in pairs
    ]
    return pd.DataFrame(rows, columns=["scorers", "kendall_tau", "tau_puzzles", "top_agreement", "top_puzzles"])


def _number(value: Any) -> float:
    return math.nan if value is None else float(value)
