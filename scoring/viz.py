"""Pure functions from scoring results to pictures: HTML strings, plotly figures, tables, downloads.

Nothing here imports Streamlit or scores anything, so the pages stay thin and
every picture can be tested on plain data.
"""

from __future__ import annotations

import html
import json
import math
from collections.abc import Mapping, Sequence
from typing import Any

import pandas as pd
import plotly.graph_objects as go

from scoring.results import ScoreResult, SequenceResult, jsonable
from scoring.simulators.base import Usage

SCALE_MAX = 10.0
"""Top of the 0..10 scale that real (normalised) and simulated activations share."""

ACTIVATION_RGB = (255, 140, 0)
"""Orange for activation strength, as Neuronpedia shows it."""

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
    ".cmpgrid{display:grid;gap:8px;margin-bottom:14px}"
    ".cmpgrid .head{font:600 12px system-ui,sans-serif;color:#333;margin-bottom:2px}"
    ".cmpseq{font:600 13px system-ui,sans-serif;margin:10px 0 4px 0}"
    "</style>"
)


def activation_color(value: float | None, vmax: float = SCALE_MAX) -> str:
    """CSS background for an activation: transparent at 0, full orange at `vmax`, grey when missing."""
    if value is None or not math.isfinite(value):
        return "rgba(200,200,200,0.6)"
    strength = 0.0 if vmax <= 0 else min(1.0, max(0.0, value / vmax))
    red, green, blue = ACTIVATION_RGB
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
) -> str:
    """One sequence as coloured token boxes; hovering a token shows its exact value(s).

    `values` None (a failed simulation) draws hatched boxes and the `error` text.
    `hover` gives extra text per token for the tooltip (e.g. the real value).
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
        style = "" if values is None else f' style="background:{activation_color(value, vmax)}"'
        spans.append(
            f'<span class="{css_class}"{style} title="{html.escape(title, quote=True)}">'
            f"{visible_token_text(token)}</span>"
        )
    body = "".join(spans)
    if error:
        body += f'<div class="err">{html.escape(error)}</div>'
    return (_HEATMAP_CSS if include_style else "") + f'<div class="tokviz">{body}</div>'


def sequence_label(tokens: Sequence[str], index: int, width: int = 40) -> str:
    """'#3 the quick brown…' — a short name for a sequence in tables and axes."""
    text = "".join(tokens).replace("\n", " ").strip()
    if len(text) > width:
        text = text[: width - 1] + "…"
    return f"#{index} {text}"


def comparison_html(results: Sequence[ScoreResult], *, max_sequences: int | None = None) -> str:
    """Real vs simulated activations for every scored sequence, one column per explanation.

    Sequences are matched across results by their index in the loaded records;
    each block shows the sequence's real activations first, then what each
    explanation's simulation predicted, with its per-sequence correlation.
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
            correlation = _format_value(cell.correlation)
            cells.append(
                f'<div><div class="head" title="{html.escape(result.explanation, quote=True)}">'
                f'{head} <span style="font-weight:400">(r = {correlation})</span></div>'
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


def ranking_frame(results: Sequence[ScoreResult]) -> pd.DataFrame:
    """One row per explanation, in the given (ranked) order, with every headline number."""
    rows = []
    for rank, result in enumerate(results, start=1):
        low, high = result.interval
        rows.append(
            {
                "rank": rank,
                "explanation": result.explanation,
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


def ranking_table(results: Sequence[ScoreResult]) -> Any:
    """The ranking for display: numbers as text ('n/a' when undefined), the best row tinted green.

    Returns a pandas Styler (st.dataframe shows its colours).
    """
    frame = ranking_frame(results)
    shown = frame.loc[:, list(_RANKING_COLUMNS)].copy()
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


def per_sequence_figure(results: Sequence[ScoreResult]) -> go.Figure:
    """Heatmap of per-sequence correlation (sequences x explanations); failures show their reason on hover."""
    frame = per_sequence_frame(results)
    reasons: dict[tuple[int, int], str] = {}
    index_positions: dict[int, int] = {}
    for result in results:
        for sequence in result.sequences:
            index_positions.setdefault(sequence.index, 0)
    for row, index in enumerate(sorted(index_positions)):
        index_positions[index] = row
    for column, result in enumerate(results):
        for sequence in result.sequences:
            if not math.isfinite(sequence.correlation):
                reasons[(index_positions[sequence.index], column)] = sequence.error or (
                    "undefined: constant real or simulated activations in this sequence"
                )
    values = frame.to_numpy()
    text = [
        [
            _format_value(values[row][column]) if math.isfinite(values[row][column]) else "–"
            for column in range(values.shape[1])
        ]
        for row in range(values.shape[0])
    ]
    hover = [
        [
            f"{frame.index[row]}<br>{html.escape(str(frame.columns[column]))}<br>r = {text[row][column]}"
            + (f"<br>{html.escape(reasons[(row, column)])}" if (row, column) in reasons else "")
            for column in range(values.shape[1])
        ]
        for row in range(values.shape[0])
    ]
    figure = go.Figure(
        go.Heatmap(
            z=values,
            x=[shorten(str(name), 30) for name in frame.columns],
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
    figure.update_layout(
        title="Correlation per sequence (where each explanation fails)",
        yaxis={"autorange": "reversed"},
        height=max(260, 34 * len(frame.index) + 140),
        margin={"l": 10, "r": 10, "t": 50, "b": 10},
    )
    return figure


def scatter_figure(results: Sequence[ScoreResult], *, max_points: int = 20000) -> go.Figure:
    """Real vs simulated activation for every token, one colour per explanation, y = x for reference."""
    figure = go.Figure()
    points = 0
    for result in results:
        xs: list[float] = []
        ys: list[float] = []
        labels: list[str] = []
        for sequence in result.sequences:
            if sequence.simulated is None:
                continue
            triples = zip(sequence.tokens, sequence.real, sequence.simulated, strict=True)
            for token, real, simulated in triples:
                if points >= max_points:
                    break
                xs.append(real)
                ys.append(simulated)
                labels.append(f"#{sequence.index} {html.escape(repr(token))}")
                points += 1
        figure.add_trace(
            go.Scattergl(
                x=xs,
                y=ys,
                mode="markers",
                name=shorten(result.explanation, 40),
                text=labels,
                hovertemplate="%{text}<br>real %{x:.2f}<br>simulated %{y:.2f}<extra></extra>",
                marker={"size": 7, "opacity": 0.6},
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
        title="Real vs simulated activation per token",
        xaxis_title="real (normalised 0..10)",
        yaxis_title="simulated (0..10)",
        height=420,
        margin={"l": 10, "r": 10, "t": 50, "b": 10},
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


def disagreement(claimed: float | None, result: ScoreResult, tolerance: float = 0.05) -> str:
    """How a claimed score compares with a re-score: 'agrees', 'disagrees', 'no claim' or 'not scored'.

    A claim agrees when it lies inside the re-score's bootstrap interval widened
    by `tolerance` on each side (or within `tolerance` of the score when no
    interval is available).
    """
    if claimed is None or not math.isfinite(claimed):
        return "no claim"
    if not math.isfinite(result.score):
        return "not scored"
    low, high = result.interval
    if not (math.isfinite(low) and math.isfinite(high)):
        low = high = result.score
    return "agrees" if low - tolerance <= claimed <= high + tolerance else "disagrees"


def spot_check_frame(
    claims: Sequence[float | None], results: Sequence[ScoreResult], tolerance: float = 0.05
) -> pd.DataFrame:
    """Claimed vs re-scored, one row per explanation (results in the claims' order)."""
    rows = []
    for claimed, result in zip(claims, results, strict=True):
        low, high = result.interval
        rows.append(
            {
                "explanation": result.explanation,
                "claimed": claimed if claimed is not None else math.nan,
                "rescored": result.score,
                "interval": _interval_text(low, high),
                "difference": (result.score - claimed) if claimed is not None else math.nan,
                "verdict": disagreement(claimed, result, tolerance),
                "error": result.error or "",
            }
        )
    return pd.DataFrame(rows)


def highlight_verdicts(frame: pd.DataFrame) -> Any:
    """Styler for `spot_check_frame`: numbers as text, disagreements red, agreements green."""
    colours = {
        "disagrees": "background-color: rgba(220,53,69,0.25); font-weight: 600",
        "agrees": "background-color: rgba(40,167,69,0.2)",
        "not scored": "background-color: rgba(255,193,7,0.25)",
    }
    shown = frame.copy()
    for name in ("claimed", "rescored", "difference"):
        if name in shown.columns:
            shown[name] = [format_number(value) for value in frame[name]]

    def tint(row: pd.Series) -> list[str]:
        return [colours.get(str(row.get("verdict")), "")] * len(row)

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
