"""Reading what people paste into the dashboard: activation records and the candidate explanations stored with them.

Records in every format (JSON, long CSV/TSV, the token<TAB>activation text
format) are read by `scoring.records.load_records`, so one loader validates
every input.

This is a public module of the library (docs/architecture.md, "The public
surface"): the dashboard, and any other front end that takes pasted text, calls
the names in `__all__`.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from scoring.errors import ScoringInputError
from scoring.records import (
    ActivationRecord,
    Limits,
    load_records,
    looks_like_token_text,
    parse_token_text,
    records_to_token_text,
)

__all__ = [
    "CandidateExplanation",
    "describe_records",
    "explanations_from_object",
    "feature_identity",
    "looks_like_token_text",
    "load_pasted",
    "new_explanations",
    "parse_explanation_lines",
    "parse_token_text",
    "records_to_token_text",
]


def load_pasted(text: str, *, limits: Limits | None = None) -> list[ActivationRecord]:
    """Records from pasted or uploaded text: JSON, long CSV/TSV, or the token<TAB>activation text format.

    The text is only ever text: a file path in it is never opened (a dashboard may be served to a team, and
    what one member types must not read the serving machine's files).
    """
    if not text or not text.strip():
        raise ScoringInputError("nothing to read: paste JSON records or 'token<TAB>activation' lines")
    stripped = text.strip()
    try:
        return load_records(text, limits=limits, allowed_dirs=())
    except ScoringInputError as exc:
        if stripped[0] in "[{" or looks_like_token_text(text) or "token<TAB>activation" in str(exc):
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
    """What kind of score the claim is, as the file names it (e.g. 'oai_token-act-pair'), or ''."""
    score_model: str = ""
    """The model that produced the claimed score (Neuronpedia's explanationScoreModelName), or ''."""
    explainer_model: str = ""
    """The model (or person) that wrote the explanation (Neuronpedia's explanationModelName), or ''."""


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
    score_type = text_field(item, "score_type", "scoreType")
    score_model = text_field(item, "score_model", "explanationScoreModelName")
    scores = item.get("scores")
    if claimed is None and isinstance(scores, list):
        for entry in scores:
            if isinstance(entry, dict) and _number(entry.get("value")) is not None:
                claimed = _number(entry["value"])
                score_type = text_field(entry, "explanationScoreTypeName", "type")
                score_model = text_field(entry, "explanationScoreModelName", "model") or score_model
                break
            if _number(entry) is not None:
                claimed = _number(entry)
                break
    explainer = text_field(item, "explanationModelName", "explainer_model", "authorName")
    return CandidateExplanation(text, claimed, score_type, score_model, explainer)


def text_field(item: dict[str, Any], *keys: str) -> str:
    """The first of `keys` that holds a non-empty string or number, as text ('' when none does)."""
    for key in keys:
        value = item.get(key)
        if isinstance(value, (str, int, float)) and not isinstance(value, bool) and str(value).strip():
            return str(value).strip()
    return ""


def feature_identity(data: Any) -> str:
    """Who a feature is, as its export names it: 'model · layer · index', or 'source · id'; '' when unnamed.

    Reads Neuronpedia's ``modelId``/``layer``/``index`` (also ``model``,
    ``source``/``id``), and ``kind`` and ``corpus`` where the Explore page adds them.
    """
    if not isinstance(data, dict):
        return ""
    model = text_field(data, "modelId", "model")
    layer = text_field(data, "layer", "source")
    index = text_field(data, "index", "id", "featureIndex", "neuron")
    parts = [model, f"layer {layer}" if layer else "", f"index {index}" if index else ""]
    kind = text_field(data, "kind")
    if kind:
        parts.append(kind)
    return " · ".join(part for part in parts if part)


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
