"""Reading what people paste into the dashboard: a token/activation text format and candidate explanations.

The text format is one token per line, ``token<TAB>activation``, with a blank
line between sequences::

    the\t0
     quick\t0.5
     fox\t7.25

     spotted\t0
     leopard\t8

The token is everything before the last tab, so leading spaces are kept.
Newlines, tabs and backslashes inside a token are written ``\\n``, ``\\t``
and ``\\\\``. A first line ``token<TAB>activation`` (a header) is skipped.

Everything else that can be pasted (JSON in any format, long CSV/TSV) goes to
`scoring.records.load_records`, so one loader validates every input.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from scoring.errors import ScoringInputError
from scoring.records import ActivationRecord, Limits, load_records

_ESCAPES = {"\\": "\\", "n": "\n", "t": "\t", "r": "\r"}
_ESCAPE_PATTERN = re.compile(r"\\([\\ntr])")
_HEADER_TOKENS = {"token", "tokens", "text"}


def _unescape(token: str) -> str:
    return _ESCAPE_PATTERN.sub(lambda match: _ESCAPES[match.group(1)], token)


def _escape(token: str) -> str:
    return token.replace("\\", "\\\\").replace("\n", "\\n").replace("\t", "\\t").replace("\r", "\\r")


def looks_like_token_text(text: str) -> bool:
    """True when every non-blank line is ``token<TAB>activation`` (exactly one tab)."""
    lines = [line for line in text.splitlines() if line.strip()]
    return bool(lines) and all(line.count("\t") == 1 for line in lines)


def parse_token_text(text: str) -> list[dict[str, Any]]:
    """Parse the ``token<TAB>activation`` format into ``[{"tokens": [...], "values": [...]}]``.

    Raises ScoringInputError naming the line to fix.
    """
    sequences: list[dict[str, Any]] = []
    tokens: list[str] = []
    values: list[float] = []
    first_content_line = True
    for line_number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            if tokens:
                sequences.append({"tokens": tokens, "values": values})
                tokens, values = [], []
            continue
        if "\t" not in line:
            raise ScoringInputError(
                f"line {line_number} ({line[:40]!r}) has no tab: write each token as 'token<TAB>activation', "
                "with a blank line between sequences"
            )
        token, _, value_text = line.rpartition("\t")
        is_header = first_content_line and token.strip().lower() in _HEADER_TOKENS
        first_content_line = False
        if is_header and not _is_number(value_text):
            continue
        try:
            value = float(value_text.strip())
        except ValueError:
            raise ScoringInputError(
                f"line {line_number}: the activation {value_text.strip()!r} is not a number; "
                "write 'token<TAB>activation' with a number after the tab"
            ) from None
        if not math.isfinite(value):
            raise ScoringInputError(
                f"line {line_number}: the activation {value_text.strip()!r} must be a finite number"
            )
        tokens.append(_unescape(token))
        values.append(value)
    if tokens:
        sequences.append({"tokens": tokens, "values": values})
    if not sequences:
        raise ScoringInputError("no tokens found: write one 'token<TAB>activation' per line")
    return sequences


def _is_number(text: str) -> bool:
    try:
        float(text.strip())
    except ValueError:
        return False
    return True


def records_to_token_text(records: Iterable[ActivationRecord]) -> str:
    """The inverse of `parse_token_text` (used to show and edit loaded records as text)."""
    blocks = []
    for record in records:
        pairs = zip(record.tokens, record.activations, strict=True)
        lines = [f"{_escape(token)}\t{value:g}" for token, value in pairs]
        blocks.append("\n".join(lines))
    return "\n\n".join(blocks) + "\n"


def load_pasted(text: str, *, limits: Limits | None = None) -> list[ActivationRecord]:
    """Records from pasted or uploaded text: JSON, long CSV/TSV, or the token/activation text format."""
    if not text or not text.strip():
        raise ScoringInputError("nothing to read: paste JSON records or 'token<TAB>activation' lines")
    stripped = text.strip()
    if stripped[0] not in "[{" and looks_like_token_text(text):
        return load_records(parse_token_text(text), limits=limits)
    try:
        return load_records(text, limits=limits)
    except ScoringInputError as exc:
        if stripped[0] in "[{":
            raise
        raise ScoringInputError(
            f"{exc}. Or use the simple text format: one 'token<TAB>activation' per line, "
            "a blank line between sequences"
        ) from None


@dataclass
class CandidateExplanation:
    """An explanation found in an input file, with the score it claims (if any)."""

    text: str
    claimed_score: float | None = None
    """The score the file says this explanation got (e.g. from Neuronpedia), or None."""
    score_type: str = ""
    """What kind of score the claim is, as the file names it (e.g. 'recall_alt'), or ''."""


_TEXT_KEYS = ("description", "explanation", "text")
_SCORE_KEYS = ("score", "claimed_score", "scoreValue")


def explanations_from_object(data: Any) -> list[CandidateExplanation]:
    """Candidate explanations stored next to records in a JSON object.

    Accepts a top-level ``"explanations"`` list whose items are strings or
    objects (``description``/``explanation``/``text``, with a claimed score in
    ``score`` or Neuronpedia's ``scores: [{"value": ..., "explanationScoreTypeName": ...}]``),
    and a single top-level ``"explanation"`` string (a Neuronpedia scorer request).
    Returns [] when there are none.
    """
    if not isinstance(data, dict):
        return []
    found: list[CandidateExplanation] = []
    items = data.get("explanations")
    if isinstance(items, list):
        for item in items:
            candidate = _candidate_from_item(item)
            if candidate is not None:
                found.append(candidate)
    single = data.get("explanation")
    if isinstance(single, str) and single.strip() and all(c.text != single.strip() for c in found):
        found.append(CandidateExplanation(single.strip(), _number(data.get("score"))))
    return found


def _candidate_from_item(item: Any) -> CandidateExplanation | None:
    if isinstance(item, str):
        return CandidateExplanation(item.strip()) if item.strip() else None
    if not isinstance(item, dict):
        return None
    text = next((item[key] for key in _TEXT_KEYS if isinstance(item.get(key), str)), "").strip()
    if not text:
        return None
    claimed = next((_number(item[key]) for key in _SCORE_KEYS if _number(item.get(key)) is not None), None)
    score_type = str(item.get("score_type", item.get("scoreType", "")) or "")
    scores = item.get("scores")
    if claimed is None and isinstance(scores, list):
        for entry in scores:
            if isinstance(entry, dict) and _number(entry.get("value")) is not None:
                claimed = _number(entry["value"])
                score_type = str(entry.get("explanationScoreTypeName", entry.get("type", "")) or "")
                break
            if _number(entry) is not None:
                claimed = _number(entry)
                break
    return CandidateExplanation(text, claimed, score_type)


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    number = float(value)
    return number if math.isfinite(number) else None


def parse_explanation_lines(text: str) -> list[str]:
    """One explanation per non-blank line, stripped, duplicates removed (first kept)."""
    seen: dict[str, None] = {}
    for line in text.splitlines():
        cleaned = line.strip()
        if cleaned and cleaned not in seen:
            seen[cleaned] = None
    return list(seen)


def new_explanations(existing: Sequence[str], candidates: Iterable[str | None]) -> list[str]:
    """The candidates not already in `existing` nor earlier among themselves, ignoring case and spacing.

    Used to add generated explanations to a user's list without scoring one twice.
    """
    seen = {_comparable(text) for text in existing}
    added = []
    for text in candidates:
        if text is not None and text.strip() and _comparable(text) not in seen:
            seen.add(_comparable(text))
            added.append(text.strip())
    return added


def _comparable(text: str) -> str:
    return " ".join(text.split()).lower()


def describe_records(records: Sequence[ActivationRecord]) -> dict[str, Any]:
    """Short facts about loaded records for the page header."""
    all_values = [value for record in records for value in record.activations]
    return {
        "sequences": len(records),
        "tokens": sum(len(record.tokens) for record in records),
        "max_activation": max(all_values) if all_values else 0.0,
        "active_tokens": sum(1 for value in all_values if value > 0),
    }
