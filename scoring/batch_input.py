"""Batch input: one JSONL line per feature, read into a `Feature`, or the reason it cannot be.

The formats a line may take are in `scoring.batch`'s docstring.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from scoring.errors import ScoringInputError
from scoring.prepared import PreparedRecords, prepare_records
from scoring.records import check_unicode, lone_surrogate, parse_json


@dataclass
class Feature:
    """One parsed input line."""

    line: int
    feature_id: str
    records: PreparedRecords
    """Validated once here; each pair's score trusts them (and samples again only for other sampling options)."""
    explanations: list[str]


def feature_id_of(data: dict[str, Any], line: int) -> str:
    for key in ("id", "feature_id", "feature"):
        value = data.get(key)
        if isinstance(value, str | int) and not isinstance(value, bool) and str(value).strip():
            return str(value)
    if all(key in data for key in ("modelId", "layer", "index")):
        return f"{data['modelId']}/{data['layer']}/{data['index']}"
    return f"line:{line}"


def explanations_of(data: dict[str, Any]) -> list[str]:
    """The explanation texts of a line, in order, without repeats."""
    raw: Any = data.get("explanations")
    if raw is None and "explanation" in data:
        raw = [data["explanation"]]
    if raw is None:
        raise ScoringInputError('the line has no explanations: add "explanations": ["..."]')
    if isinstance(raw, str | dict):
        raw = [raw]
    if not isinstance(raw, list) or not raw:
        raise ScoringInputError('"explanations" must be a non-empty list of strings')
    texts: dict[str, None] = {}  # ordered, and a repeat is found in constant time
    for position, item in enumerate(raw):
        if isinstance(item, dict):
            texts_in_item = [
                item[key] for key in ("description", "explanation", "text") if isinstance(item.get(key), str)
            ]
            item = texts_in_item[0] if texts_in_item else None
        if not isinstance(item, str) or not item.strip():
            raise ScoringInputError(
                f"explanations[{position}] must be a non-empty string (or an object with a "
                f'"description"), got {item!r}'
            )
        check_unicode(item, f"explanations[{position}]")
        texts.setdefault(item)
    return list(texts)


def parse_line(
    text: str, line: int, limits: Any = None, allowed_dirs: Sequence[str | Path] | None = None
) -> Feature:
    """One input line to a Feature; raises ScoringInputError saying what to fix.

    ``allowed_dirs``: the folders a ``records`` path may be read from (see `scoring.records.load_records`).
    """
    position = lone_surrogate(text)
    if position is not None:
        raise ScoringInputError(
            f"the line is not valid UTF-8 (at character {position + 1}); save the input as UTF-8"
        )
    data = parse_json(text.strip(), "the line")
    if not isinstance(data, dict):
        raise ScoringInputError(f"each line must be a JSON object, got {type(data).__name__}")
    explanations = explanations_of(data)
    source = data.get("records", data)
    records = prepare_records(source, limits=limits, allowed_dirs=allowed_dirs)
    return Feature(line, feature_id_of(data, line), records, explanations)


def count_pairs(text: str) -> int:
    """How many output lines an input line will give (1 when it is unusable)."""
    try:
        data = json.loads(text)
        return len(explanations_of(data)) if isinstance(data, dict) else 1
    except (ValueError, RecursionError):
        return 1


def line_digest(text: str) -> str:
    return hashlib.sha256(text.strip().encode("utf-8", errors="surrogateescape")).hexdigest()[:16]


def input_lines(path: Path) -> Iterator[tuple[int, str]]:
    """Numbered non-blank lines; a line that is not UTF-8 comes as its bytes escaped (its parse then fails)."""
    with path.open("rb") as handle:
        for number, raw in enumerate(handle, start=1):
            # surrogateescape keeps every line readable; parse_line turns the escapes into this line's error.
            text = raw.decode("utf-8", errors="surrogateescape")
            if text.strip():
                yield number, text
