"""A feature as Neuronpedia's API returns it, the examples its score types share, and its stored-score schema.

``GET /api/feature/{model}/{layer}/{index}`` returns the feature with ``activations``
(``tokens``, ``values``, ``maxValue``) and ``explanations``, each with ``description``,
``explanationModelName`` and ``scores``: ``value``, ``explanationScoreTypeName``,
``explanationScoreModelName`` and ``jsonDetails``, the details of the score as a JSON
string whose shape depends on the type. `read_feature` reads all of it; what cannot be
read becomes a message in `NeuronpediaFeature.problems` (or the claim's
``details_problem``), never an exception, unless there is nothing to check at all.

The examples every score type shares (`select_rows`), as Neuronpedia's score route picks
them: the feature's rows de-duplicated on their joined text (the first position is
kept, with the last row of that text, as a JavaScript Map keeps them), sorted by max
value (stable); up to `N_TOP` of the first rows with max > 0 are "top", up to `N_ZERO`
rows with max = 0 are "zero"; whole rows, no windowing. Top rows are rescaled to
value x 10 / row max (since 2025-10-26); zero rows stay as stored.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any

from scoring.errors import ScoringInputError
from scoring.prepared import prepare_records
from scoring.protocols.common import number
from scoring.records import ActivationRecord
from scoring.textformat import feature_identity, text_field

N_TOP = 20
"""Most top rows (max > 0) a score type is computed on."""

N_ZERO = 5
"""Most zero rows (max = 0)."""

SCORE_TYPES = ("recall_alt", "eleuther_fuzz", "eleuther_recall", "eleuther_embedding")
"""The explanation score types Neuronpedia computes today."""

EXPLAINER_TYPES = ("oai_token-act-pair",)
"""Names of Neuronpedia *explainer* methods that files put where a score type belongs."""


@dataclass
class Row:
    """One activation row of a feature."""

    tokens: list[str]
    values: list[float]
    max_value: float
    """Neuronpedia's ``maxValue`` when the row carries one, else the largest value."""
    source: int | None = None
    """Position in the feature's activations."""


@dataclass
class Selection:
    """The rows a score type is computed on."""

    top: list[Row]
    """Up to N_TOP rows with max > 0, strongest first, values rescaled to a max of 10."""
    zero: list[Row]
    """Up to N_ZERO rows with max = 0, values as stored."""


def rows_from_records(records: Sequence[ActivationRecord]) -> list[Row]:
    return [
        Row(list(record.tokens), list(record.activations), record.max_activation, position)
        for position, record in enumerate(records)
    ]


def select_rows(rows: list[Row]) -> Selection:
    """Neuronpedia's shared examples (see the module docstring)."""
    unique: dict[str, Row] = {}
    for row in rows:
        unique["".join(row.tokens)] = row  # a later row replaces an earlier one in place, as in a JS Map
    ordered = sorted(unique.values(), key=lambda row: -row.max_value)
    zero = [row for row in ordered if row.max_value == 0][:N_ZERO]
    top = [
        Row(row.tokens, [value * 10 / row.max_value for value in row.values], row.max_value, row.source)
        for row in ordered[:N_TOP]
        if row.max_value > 0
    ]
    return Selection(top, zero)


# ----------------------------------------------------------------------------- JavaScript's JSON


def js_number(value: float) -> str:
    """A number as JavaScript's ``JSON.stringify`` writes it (``0``, ``6.5``, ``1e-7``, ``1e+21``)."""
    if not math.isfinite(value):
        return "null"
    if value == 0:
        return "0"
    sign = "-" if value < 0 else ""
    digits_tuple = Decimal(repr(abs(float(value)))).normalize().as_tuple()
    digits = "".join(str(digit) for digit in digits_tuple.digits)
    exponent = int(digits_tuple.exponent)
    k = len(digits)
    n = k + exponent
    if k <= n <= 21:
        text = digits + "0" * (n - k)
    elif 0 < n <= 21:
        text = digits[:n] + "." + digits[n:]
    elif -6 < n <= 0:
        text = "0." + "0" * (-n) + digits
    else:
        power = n - 1
        mantissa = digits if k == 1 else digits[0] + "." + digits[1:]
        text = f"{mantissa}e{'+' if power >= 0 else '-'}{abs(power)}"
    return sign + text


def js_json(value: Any) -> str:
    """Compact JSON as JavaScript's ``JSON.stringify`` writes it (numbers by `js_number`)."""
    if isinstance(value, bool) or value is None:
        return json.dumps(value)
    if isinstance(value, (int, float)):
        return js_number(float(value))
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=False)
    if isinstance(value, dict):
        return "{" + ",".join(f"{js_json(str(key))}:{js_json(item)}" for key, item in value.items()) + "}"
    if isinstance(value, (list, tuple)):
        return "[" + ",".join(js_json(item) for item in value) + "]"
    raise TypeError(f"not JSON: {type(value).__name__}")


# ----------------------------------------------------------------------------- reading a feature


@dataclass
class Claim:
    """A score shown beside an explanation."""

    type: str
    """``explanationScoreTypeName`` ('' when the file does not say)."""
    model: str
    """``explanationScoreModelName``: the judge model, or the embedding model ('' when not said)."""
    value: float | None
    details: Any = None
    """The parsed ``jsonDetails`` (None when the score carries none)."""
    details_problem: str | None = None
    """Why ``jsonDetails`` could not be parsed."""
    id: str = ""


@dataclass
class FeatureExplanation:
    """An explanation of the feature and the scores claimed for it."""

    text: str
    explainer: str = ""
    """``explanationModelName``: who wrote it."""
    claims: list[Claim] = field(default_factory=list)
    id: str = ""


@dataclass
class NeuronpediaFeature:
    """A feature read from Neuronpedia's API JSON (or a file in that shape)."""

    identity: str
    """'model · layer · index' when the JSON names it, else ''."""
    rows: list[Row]
    records: Sequence[ActivationRecord]
    """The activations, validated once when read (a `scoring.PreparedRecords`), or none."""
    explanations: list[FeatureExplanation]
    problems: list[str] = field(default_factory=list)
    """What could not be read, in words (the rest is still checked)."""
    name: str = ""
    """Where it came from (file name, line), for messages."""


def parse_details(raw: Any) -> tuple[Any, str | None]:
    """``jsonDetails`` as stored (a JSON string, or already parsed) -> (parsed, problem)."""
    if raw is None:
        return None, None
    if isinstance(raw, str):
        if not raw.strip():
            return None, None
        try:
            return json.loads(raw), None
        except json.JSONDecodeError as exc:
            return None, f"jsonDetails is not valid JSON ({exc.msg} at character {exc.pos + 1})"
    if isinstance(raw, (dict, list)):
        return raw, None
    return None, f"jsonDetails must be a JSON string, object or list, got {type(raw).__name__}"


def _claim(entry: Any, where: str, problems: list[str]) -> Claim | None:
    if not isinstance(entry, dict):
        value = number(entry)
        if value is None:
            problems.append(f"{where} is neither a score object nor a number; skipped")
            return None
        return Claim("", "", value)
    value = number(entry.get("value"))
    if value is None and entry.get("value") is not None:
        problems.append(f"{where}.value is not a number ({entry.get('value')!r}); the claim has no value")
    details, problem = parse_details(entry.get("jsonDetails"))
    return Claim(
        text_field(entry, "explanationScoreTypeName", "type", "score_type", "scoreType"),
        text_field(entry, "explanationScoreModelName", "model", "score_model"),
        value,
        details,
        problem,
        text_field(entry, "id"),
    )


def _explanation(item: Any, where: str, problems: list[str]) -> FeatureExplanation | None:
    if isinstance(item, str):
        return FeatureExplanation(item.strip()) if item.strip() else None
    if not isinstance(item, dict):
        problems.append(f"{where} is neither an explanation object nor a string; skipped")
        return None
    text = text_field(item, "description", "explanation", "text")
    if not text:
        problems.append(f"{where} has no description; skipped")
        return None
    explanation = FeatureExplanation(
        text, text_field(item, "explanationModelName", "explainer_model", "authorName"), id=text_field(item, "id")
    )
    scores = item.get("scores")
    if isinstance(scores, list):
        for position, entry in enumerate(scores):
            claim = _claim(entry, f"{where}.scores[{position}]", problems)
            if claim is not None:
                explanation.claims.append(claim)
    elif scores is not None:
        problems.append(f"{where}.scores is not a list; its scores are skipped")
    single = number(item.get("score"))
    if single is not None and not explanation.claims:
        score_type = text_field(item, "score_type", "scoreType")
        score_model = text_field(item, "score_model", "explanationScoreModelName")
        explanation.claims.append(Claim(score_type, score_model, single))
    return explanation


def read_feature(data: Any, name: str = "") -> NeuronpediaFeature:
    """A feature from its parsed JSON; raises ScoringInputError only when there is nothing to check."""
    if not isinstance(data, dict):
        raise ScoringInputError(
            f"a feature must be a JSON object (Neuronpedia's /api/feature/... response), got {type(data).__name__}"
        )
    problems: list[str] = []
    records: Sequence[ActivationRecord] = ()
    rows: list[Row] = []
    items = data.get("activations")
    if items:
        try:
            records = prepare_records({"activations": items})
        except ScoringInputError as exc:
            problems.append(f"the activations cannot be read ({exc}); claims are checked from their details only")
        else:
            rows = rows_from_records(records)
            if isinstance(items, list) and len(items) == len(rows):
                for row, item in zip(rows, items, strict=True):
                    stored_max = number(item.get("maxValue")) if isinstance(item, dict) else None
                    if stored_max is not None:
                        row.max_value = stored_max
    else:
        problems.append("the feature has no activations; claims are checked from their details only")
    explanations: list[FeatureExplanation] = []
    raw = data.get("explanations")
    if isinstance(raw, list):
        for position, item in enumerate(raw):
            explanation = _explanation(item, f"explanations[{position}]", problems)
            if explanation is not None:
                explanations.append(explanation)
    elif raw is not None:
        problems.append("explanations is not a list")
    if isinstance(data.get("explanation"), str) and data["explanation"].strip() and not explanations:
        explanations.append(FeatureExplanation(data["explanation"].strip()))
    if not explanations:
        raise ScoringInputError(
            'no explanations found: a feature needs an "explanations" list (Neuronpedia\'s '
            "/api/feature/{model}/{layer}/{index} response has one)"
            + (f"; also: {'; '.join(problems)}" if problems else "")
        )
    return NeuronpediaFeature(feature_identity(data), rows, records, explanations, problems, name)


def parse_feature_text(text: str, name: str = "pasted feature") -> NeuronpediaFeature:
    """A feature from JSON text (never a path: text that is not JSON is an error)."""
    if not text.strip():
        raise ScoringInputError("nothing to read: paste a feature's JSON")
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ScoringInputError(f"the feature is not valid JSON ({exc.msg} at character {exc.pos + 1})") from None
    return read_feature(data, name)


def load_features(path: str | Path) -> list[tuple[str, NeuronpediaFeature | ScoringInputError]]:
    """Features from a JSON file (one feature, or a list) or a JSONL file (one per line, a moderator's queue).

    Returns (name, feature or the error that line gave), so one bad line is reported and the rest still run.
    Raises ScoringInputError when the file itself cannot be read.
    """
    location = Path(path)
    try:
        text = location.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ScoringInputError(f"cannot read {path}: {exc}") from None
    try:
        whole = json.loads(text)
    except json.JSONDecodeError:
        whole = None
    if isinstance(whole, dict):
        return [(location.name, _read_or_error(whole, location.name))]
    if isinstance(whole, list):
        names = [f"{location.name}[{position}]" for position in range(len(whole))]
        return [(name, _read_or_error(item, name)) for name, item in zip(names, whole, strict=True)]
    found: list[tuple[str, NeuronpediaFeature | ScoringInputError]] = []
    for number_of_line, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        name = f"{location.name}:{number_of_line}"
        try:
            data = json.loads(line)
        except json.JSONDecodeError as exc:
            found.append((name, ScoringInputError(f"line {number_of_line} is not valid JSON ({exc.msg})")))
            continue
        found.append((name, _read_or_error(data, name)))
    if not found:
        raise ScoringInputError(f"{path} holds no feature: give a feature's JSON, or one feature per line (JSONL)")
    return found


def _read_or_error(data: Any, name: str) -> NeuronpediaFeature | ScoringInputError:
    try:
        return read_feature(data, name)
    except ScoringInputError as exc:
        return exc


# ----------------------------------------------------------------------------- writing a stored score


def score_entry(score_type: str, model: str, value: float, details: Any) -> dict[str, Any]:
    """A score in the shape Neuronpedia's API returns it, ``jsonDetails`` a compact JSON string."""
    return {
        "value": value,
        "explanationScoreTypeName": score_type,
        "explanationScoreModelName": model,
        "jsonDetails": json.dumps(details, ensure_ascii=False, separators=(",", ":")),
    }
