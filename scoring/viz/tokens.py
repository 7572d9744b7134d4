"""HTML token heatmaps: each token a coloured box, hovering shows its values; real vs simulated side by side."""

from __future__ import annotations

import html
import math
from collections.abc import Collection, Sequence

from scoring.results import ScoreResult, SequenceResult
from scoring.shared_types import ACTIVE_THRESHOLD

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


def format_value(value: float | None) -> str:
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
        title = f"{token!r}  value {format_value(value)}"
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
            hover = [f"real {format_value(value)}" for value in cell.real]
            kind, reason = sequence_outcome(cell)
            correlation = f"r = {format_value(cell.correlation)}" if kind == "scored" else OUTCOME_MARKS[kind]
            head_class = "head missed" if kind == "missed" else "head"
            title = result.explanation + (f" — {reason}" if reason else "")
            cells.append(
                f'<div><div class="{head_class}" title="{html.escape(title, quote=True)}">'
                # The mark comes first so that a long explanation cut short by the column never hides it.
                f'<span style="font-weight:400">{correlation} ·</span> {head}</div>'
                + _simulated_html(cell, hover)
                + "</div>"
            )
        blocks.append(
            f'<div class="cmpseq">{html.escape(sequence_label(reference.tokens, index))}'
            f'<span style="font-weight:400"> · max {max(raw, default=0.0):g}</span></div>'
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


def _simulated_html(sequence: SequenceResult, hover: Sequence[str], outlined: Collection[int] = ()) -> str:
    """A sequence's simulated activations as token boxes (the page's heatmap CSS is added once, by the caller)."""
    return tokens_html(
        sequence.tokens, sequence.simulated, hover=hover, error=sequence.error, include_style=False, outlined=outlined
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
            f"real {format_value(real)}" + (" (active)" if i in active else "") for i, real in enumerate(sequence.real)
        ]
        blocks.append(
            f'<div class="cmpseq">{html.escape(sequence_label(sequence.tokens, sequence.index))}</div>'
            + _simulated_html(sequence, hover, outlined=active)
        )
    if shown == 0:
        blocks.append('<div class="tokviz">No sequence has both active and inactive tokens.</div>')
    return "".join(blocks)
