"""Activation records: loading every input format, validation, normalisation.

A record is one sequence of tokens with one real activation per token. Raw
activations are kept as given; `normalize` derives the 0..10 scale that
simulators predict, so the choice of normalisation never loses the raw data.
The check of one ``{tokens, values}`` sequence lives in `scoring.sequence_check`
and is re-exported here.
"""

from __future__ import annotations

import csv
import io
import json
import math
import re
from collections.abc import Callable, Iterable, Sequence
from contextlib import nullcontext
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

from pydantic import ValidationError
from pydantic_core import PydanticCustomError

from scoring.errors import ScoringInputError
from scoring.sequence_check import MAX_ABS_ACTIVATION as MAX_ABS_ACTIVATION
from scoring.sequence_check import (
    STRICT,
    TokensAndValues,
    parse_activation,
    quoting_input,
    sequence_error_message,
    shown,
    unquoted_input,
)
from scoring.sequence_check import check_unicode as check_unicode
from scoring.sequence_check import lone_surrogate as lone_surrogate

NORMALIZATIONS = ("global", "per_record", "none")
"""global: relu then scale by the max over all records (OpenAI, original Neuronpedia scorer);
per_record: relu then scale each record by its own max (Neuronpedia's newer scorers);
none: raw values."""

OPENAI_RECORD_KEYS = (
    "most_positive_activation_records",
    "random_sample",
    "random_sample_by_quantile",
    "top_activating_records",
    "random_records",
    "activation_records",
)


@dataclass
class ActivationRecord:
    """One sequence of tokens and the real activation of each token."""

    tokens: list[str]
    """Token strings as the subject model saw them (leading spaces kept)."""
    activations: list[float]
    """Raw activation per token, same length as `tokens`."""
    source: str = ""
    """Where the record came from in its file, for error messages (e.g. 'random_sample[3]')."""

    @property
    def max_activation(self) -> float:
        return max(self.activations) if self.activations else 0.0

    def to_dict(self) -> dict[str, Any]:
        return {"tokens": self.tokens, "values": self.activations}


@dataclass(frozen=True)
class Limits:
    """Upper bounds on what one score may contain (protects servers and memory)."""

    max_sequences: int = 1000
    max_tokens_per_sequence: int = 4096


DEFAULT_LIMITS = Limits()


def load_records(
    source: str | Path | dict[str, Any] | list[Any] | Sequence[ActivationRecord],
    *,
    limits: Limits | None = None,
    allowed_dirs: Sequence[str | Path] | None = None,
) -> list[ActivationRecord]:
    """Read activation records from a path, a JSON/CSV string or a parsed object.

    The format is detected: a Neuronpedia scorer request or feature export
    (``{"activations": [{"tokens", "values"}]}``), a bare list of
    ``{tokens, values}``, OpenAI neuron records (``most_positive_activation_records``,
    ``random_sample``, ``random_sample_by_quantile``, ...) or a long CSV/TSV with
    columns ``sequence, token, activation``. Raises ScoringInputError saying what
    to fix when the input is unusable.

    ``allowed_dirs``: where a path (a `Path`, or a one-line string) may be read from. None (the default,
    for callers that trust whoever named the path): anywhere. A sequence of folders: only files inside
    one of them, after following symlinks; ``()`` reads no file at all, so text from a stranger (a
    dashboard's paste box, a batch line) is never taken for a path to open. Errors about a file's
    contents give the place of a problem, never the file's text.
    """
    limits = limits or DEFAULT_LIMITS
    given = _given_records(source)
    if given is not None:
        records = [ActivationRecord(list(r.tokens), list(r.activations), r.source) for r in given]
        for index, record in enumerate(records):
            _validate_pair(record.tokens, record.activations, record.source or f"sequence {index}")
    else:
        parsed, from_file = _parse_source(source, allowed_dirs)
        with unquoted_input() if from_file else nullcontext():
            if isinstance(parsed, list) and parsed and isinstance(parsed[0], ActivationRecord):
                records = parsed
            else:
                records = _records_from_object(parsed)
    if not records:
        raise ScoringInputError("no activation sequences found: give at least one sequence of tokens and values")
    check_limits(records, limits, "sequences")
    return records


def _given_records(source: object) -> list[ActivationRecord] | None:
    """`source` as a list when it is a non-empty sequence of ActivationRecords (a list, a tuple, prepared records)."""
    if isinstance(source, (str, bytes)) or not isinstance(source, Sequence) or not source:
        return None
    items = list(source)
    return items if all(isinstance(item, ActivationRecord) for item in items) else None


def check_limits(records: Sequence[ActivationRecord | AttentionRecord], limits: Limits, noun: str) -> None:
    """Raise ScoringInputError when there are more records, or longer ones, than `limits` allow."""
    if len(records) > limits.max_sequences:
        raise ScoringInputError(
            f"{len(records)} {noun} is more than the limit of {limits.max_sequences}; "
            f"send fewer {noun} or raise Limits.max_sequences"
        )
    for index, record in enumerate(records):
        if len(record.tokens) > limits.max_tokens_per_sequence:
            raise ScoringInputError(
                f"{record.source or f'sequence {index}'} has {len(record.tokens)} tokens, more than the limit of "
                f"{limits.max_tokens_per_sequence}; split it or raise Limits.max_tokens_per_sequence"
            )


def _parse_source(source: Any, allowed_dirs: Sequence[str | Path] | None) -> tuple[Any, bool]:
    """The parsed input, and whether it was read from a file (its errors then quote nothing)."""
    if isinstance(source, Path):
        return _read_path(source, allowed_dirs), True
    if isinstance(source, bytes):
        source = source.decode("utf-8", errors="replace")
    if isinstance(source, str):
        text = source.strip()
        if not text:
            raise ScoringInputError("the records input is empty: paste JSON or CSV, or give a file path")
        if text[0] in "[{":
            return parse_json(text, "the records text"), False
        if "\n" not in text and len(text) < 4096 and not looks_like_token_text(text):
            if allowed_dirs is not None and not allowed_dirs:
                raise ScoringInputError(
                    "could not read the records: expected JSON, CSV/TSV with columns sequence, token, activation, "
                    "or token<TAB>activation lines. A file path is not opened here: give the records themselves "
                    "(or upload the file)"
                )
            path = Path(text).expanduser()
            if allowed_dirs is not None or path.exists():
                return _read_path(path, allowed_dirs), True
            if text.lower().endswith((".json", ".csv", ".tsv", ".jsonl")):
                raise ScoringInputError(f"file not found: {text}")
        if looks_like_token_text(text):
            return parse_token_text(text), False
        if "\n" in text and ("," in text or "\t" in text):
            return _parse_table(text, "the records text"), False
        raise ScoringInputError(
            "could not read the records: expected a file path, JSON, or CSV/TSV with columns "
            "sequence, token, activation"
        )
    if isinstance(source, (dict, list, tuple)):
        return source, False
    raise ScoringInputError(
        f"records must be a path, a JSON/CSV string, a dict or a list, not {type(source).__name__}"
    )


def check_allowed_path(path: Path, allowed_dirs: Sequence[str | Path]) -> Path:
    """`path` resolved (symlinks followed), when it lies inside one of `allowed_dirs`; else ScoringInputError.

    Nothing is opened and the error is the same whether the file exists or not, so a refused path tells
    whoever named it nothing about the machine.
    """
    resolved = path.expanduser().resolve()
    for folder in allowed_dirs:
        if resolved.is_relative_to(Path(folder).expanduser().resolve()):
            return resolved
    folders = ", ".join(str(folder) for folder in allowed_dirs) or "none"
    raise ScoringInputError(
        f"{path} is outside the folders records may be read from ({folders}); move the file there, or allow "
        "its folder (batch: --allow-paths DIR)"
    )


def _read_path(path: Path, allowed_dirs: Sequence[str | Path] | None = None) -> Any:
    if allowed_dirs is not None:
        path = check_allowed_path(path, allowed_dirs)
    if not path.exists():
        raise ScoringInputError(f"file not found: {path}")
    if path.is_dir():
        raise ScoringInputError(f"{path} is a folder; give the path of a JSON or CSV/TSV file")
    if not path.is_file():
        raise ScoringInputError(f"{path} is not a regular file; give the path of a JSON or CSV/TSV file")
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise ScoringInputError(
            f"{path} is not UTF-8 text (byte {exc.start}); save it as UTF-8 JSON or CSV"
        ) from None
    except OSError as exc:
        raise ScoringInputError(f"cannot read {path}: {exc.strerror or type(exc).__name__}") from None
    # Errors about what the file holds name the place, never the text (see `unquoted_input`).
    with unquoted_input():
        if path.suffix.lower() in (".csv", ".tsv"):
            return _parse_table(text, str(path))
        if not text.strip():
            raise ScoringInputError(f"{path} is empty")
        if text.lstrip()[:1] in "[{":
            return parse_json(text, str(path))
        if looks_like_token_text(text):
            return parse_token_text(text)
        return _parse_table(text, str(path))


LONG_INTEGER = "an integer of more than 4300 digits, too long to read; write it as a float such as 1e30"
"""The end of the message for a JSON number Python refuses to convert."""


def parse_json(text: str, where: str) -> Any:
    """`text` parsed as JSON; ScoringInputError naming `where` and what is wrong (never a traceback)."""
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise ScoringInputError(
            f"{where} is not valid JSON: {exc.msg} at line {exc.lineno} column {exc.colno}"
        ) from None
    except RecursionError:
        raise ScoringInputError(
            f"{where} is JSON nested too deeply to read (over about 900 levels); records nest 3 or 4 levels"
        ) from None
    except ValueError:  # the only other failure: an integer longer than Python's 4300-digit limit
        raise ScoringInputError(f"{where} holds {LONG_INTEGER}") from None


_SEQUENCE_COLUMNS = ("sequence", "sequence_id", "seq", "record", "example")
_TOKEN_COLUMNS = ("token", "tokens", "text")
_VALUE_COLUMNS = ("activation", "activations", "value", "values", "act")


def _parse_table(text: str, where: str) -> list[ActivationRecord]:
    """Long CSV/TSV: one row per token, with sequence, token and activation columns."""
    first_line = text.splitlines()[0] if text.splitlines() else ""
    delimiter = "\t" if "\t" in first_line else ","
    reader = csv.reader(io.StringIO(text), delimiter=delimiter)
    rows = [row for row in reader if row]
    if not rows:
        raise ScoringInputError(f"{where} has no rows")
    header = [cell.strip().lower() for cell in rows[0]]

    def find(names: tuple[str, ...]) -> int | None:
        for name in names:
            if name in header:
                return header.index(name)
        return None

    seq_col, tok_col, val_col = find(_SEQUENCE_COLUMNS), find(_TOKEN_COLUMNS), find(_VALUE_COLUMNS)
    if seq_col is None or tok_col is None or val_col is None:
        raise ScoringInputError(
            f"{where}: a CSV/TSV needs a header row with columns sequence, token, activation "
            f"(found {', '.join(header) or 'none' if quoting_input() else f'{len(header)} columns'})"
        )
    order: list[str] = []
    grouped: dict[str, tuple[list[str], list[Any]]] = {}
    for line_number, row in enumerate(rows[1:], start=2):
        if len(row) <= max(seq_col, tok_col, val_col):
            raise ScoringInputError(f"{where} line {line_number}: expected {len(header)} columns, got {len(row)}")
        key = row[seq_col].strip()
        if key not in grouped:
            grouped[key] = ([], [])
            order.append(key)
        grouped[key][0].append(row[tok_col])
        grouped[key][1].append(row[val_col].strip())
    records = []
    for number, key in enumerate(order, start=1):
        tokens, values = grouped[key]
        source = f"sequence {key!r}" if quoting_input() else f"sequence number {number}"
        records.append(ActivationRecord(tokens, _clean_values(values, source), source))
    return records


# The token<TAB>activation text format: one token per line, a blank line between
# sequences. The token is everything before the last tab, so leading spaces are
# kept; newlines, tabs and backslashes inside a token are written \n, \t and
# \\. A first line ``token<TAB>activation`` (a header) is skipped.

_TOKEN_TEXT_ESCAPES = {"\\": "\\", "n": "\n", "t": "\t", "r": "\r"}
_TOKEN_TEXT_ESCAPE = re.compile(r"\\([\\ntr])")
_TOKEN_TEXT_HEADERS = {"token", "tokens", "text"}


def looks_like_token_text(text: str) -> bool:
    """True when `text` is in the token<TAB>activation format: its first non-blank line has exactly one tab.

    Only the first line decides, so a later line without its tab is reported by
    `parse_token_text` by its number instead of making the whole text unreadable.
    """
    first = next((line for line in text.splitlines() if line.strip()), "")
    return first.count("\t") == 1 and first.lstrip()[:1] not in "[{"


def parse_token_text(text: str) -> list[dict[str, Any]]:
    """The token<TAB>activation format as ``[{"tokens": [...], "values": [...]}]``.

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
                f"line {line_number}{f' ({line[:40]!r})' if quoting_input() else ''} has no tab: write each token "
                "as 'token<TAB>activation', with a blank line between sequences"
            )
        token, _, value_text = line.rpartition("\t")
        is_header = first_content_line and token.strip().lower() in _TOKEN_TEXT_HEADERS
        first_content_line = False
        if is_header and not _is_number(value_text):
            continue
        try:
            value = float(value_text.strip())
        except ValueError:
            raise ScoringInputError(
                f"line {line_number}: the activation{shown(value_text.strip())} is not a number; "
                "write 'token<TAB>activation' with a number after the tab"
            ) from None
        if not math.isfinite(value):
            raise ScoringInputError(
                f"line {line_number}: the activation{shown(value_text.strip())} must be a finite number"
            )
        tokens.append(_TOKEN_TEXT_ESCAPE.sub(lambda match: _TOKEN_TEXT_ESCAPES[match.group(1)], token))
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
    """Records in the token<TAB>activation format (the inverse of `parse_token_text`)."""
    blocks = []
    for record in records:
        pairs = zip(record.tokens, record.activations, strict=True)
        blocks.append("\n".join(f"{_escape_token(token)}\t{value:g}" for token, value in pairs))
    return "\n\n".join(blocks) + "\n"


def _escape_token(token: str) -> str:
    return token.replace("\\", "\\\\").replace("\n", "\\n").replace("\t", "\\t").replace("\r", "\\r")


def _records_from_object(data: Any) -> list[ActivationRecord]:
    if isinstance(data, dict):
        if "activations" in data and isinstance(data["activations"], list):
            return _records_from_list(data["activations"], "activations")
        openai_keys = [key for key in OPENAI_RECORD_KEYS if key in data]
        if openai_keys:
            records: list[ActivationRecord] = []
            for key in openai_keys:
                records.extend(_records_from_list(data[key], key, allow_nested=True))
            return records
        if "tokens" in data:
            return _records_from_list([data], "record")
        keys = ", ".join(sorted(map(str, data))[:10]) or "none" if quoting_input() else f"{len(data)} of them"
        raise ScoringInputError(
            "could not find activation records in this JSON object (keys: "
            f"{keys}); expected 'activations': [{{'tokens': [...], 'values': [...]}}] or OpenAI neuron "
            "records such as 'most_positive_activation_records'"
        )
    if isinstance(data, (list, tuple)):
        return _records_from_list(list(data), "sequence")
    raise ScoringInputError(f"expected a JSON object or list of records, got {type(data).__name__}")


def _records_from_list(items: Any, label: str, allow_nested: bool = False) -> list[ActivationRecord]:
    if not isinstance(items, list):
        raise ScoringInputError(f"'{label}' must be a list of records, got {type(items).__name__}")
    records: list[ActivationRecord] = []
    for index, item in enumerate(items):
        where = f"{label}[{index}]"
        if allow_nested and isinstance(item, list):
            records.extend(_records_from_list(item, where))
            continue
        records.append(_record_from_item(item, where))
    return records


def _record_from_item(item: Any, where: str) -> ActivationRecord:
    if not isinstance(item, dict):
        raise ScoringInputError(
            f"{where} must be an object with 'tokens' and 'values' (or 'activations'), got {type(item).__name__}"
        )
    try:
        checked = TokensAndValues.model_validate(item)
    except ValidationError as exc:
        raise ScoringInputError(sequence_error_message(exc.errors()[0], where)) from None
    return ActivationRecord(checked.tokens, checked.values, where)


def _clean_values(values: Iterable[Any], where: str) -> list[float]:
    cleaned: list[float] = []
    for position, value in enumerate(values):
        try:
            cleaned.append(parse_activation(value, position, strict=False))
        except PydanticCustomError as exc:
            raise ScoringInputError(f"{where} {exc.message()}") from None
    return cleaned


def _validate_pair(tokens: Sequence[str], values: Sequence[float], where: str) -> None:
    try:
        TokensAndValues.model_validate({"tokens": list(tokens), "values": list(values)}, context=STRICT)
    except ValidationError as exc:
        raise ScoringInputError(sequence_error_message(exc.errors()[0], where)) from None


def normalize(records: Sequence[ActivationRecord], mode: str = "global") -> list[list[float]]:
    """Real activations on the simulators' 0..10 scale (floats).

    All-zero (or all-negative) activations stay all zero; the score is then
    undefined and the caller reports NaN with that reason.
    """
    if mode not in NORMALIZATIONS:
        raise ScoringInputError(f"unknown normalization {mode!r}; choose one of: {', '.join(NORMALIZATIONS)}")
    if mode == "none":
        return [list(map(float, record.activations)) for record in records]
    rectified = [[max(0.0, float(value)) for value in record.activations] for record in records]
    if mode == "global":
        top = max((max(values) for values in rectified if values), default=0.0)
        return [[_scale(value, top) for value in values] for values in rectified]
    return [[_scale(value, max(values)) for value in values] for values in rectified]


def _scale(value: float, top: float) -> float:
    return 10.0 * value / top if top > 0 else 0.0


# ---------------------------------------------------------------------------
# Attention records (the attention-head scorer)
# ---------------------------------------------------------------------------

AttentionPair = tuple[int, int, float]
"""(from_index, to_index, value): the attention the token at from_index pays to the token at to_index."""


@dataclass
class AttentionRecord:
    """One sequence of tokens and an attention head's weights between its tokens."""

    tokens: list[str]
    """Token strings as the model saw them (leading spaces kept)."""
    pairs: list[AttentionPair]
    """Every (from_index, to_index, value) given. A full matrix gives all its cells, except that a
    causal one (every cell with to > from zero) gives only the cells with to <= from."""
    source: str = ""
    """Where the record came from in its input, for error messages."""

    @property
    def max_value(self) -> float:
        return max((value for _, _, value in self.pairs), default=0.0)

    @classmethod
    def from_matrix(cls, tokens: Sequence[str], matrix: Any, source: str = "attention record") -> AttentionRecord:
        """From ``matrix[to][from]``: row = the token attended to, column = the token attending."""
        checked_tokens = _attention_tokens(tokens, source)
        return cls(checked_tokens, _pairs_from_matrix(matrix, len(checked_tokens), source), source)

    @classmethod
    def from_pairs(cls, tokens: Sequence[str], pairs: Any, source: str = "attention record") -> AttentionRecord:
        """From a list of (from_index, to_index, value) triples or {"from", "to", "value"} objects."""
        checked_tokens = _attention_tokens(tokens, source)
        return cls(checked_tokens, _pairs_from_list(pairs, len(checked_tokens), source), source)


def load_attention_records(source: Any, *, limits: Limits | None = None) -> list[AttentionRecord]:
    """Read attention records from a path, a JSON string, a parsed object or AttentionRecords.

    A record is ``{"tokens": [...], "attention": matrix}`` with ``matrix[to][from]``
    (one row per token attended to, one column per attending token), or
    ``{"tokens": [...], "pairs": [[from_index, to_index, value], ...]}`` (or
    objects with keys from, to, value). Several records come as a list or under
    ``"records"``. Values are attention weights: finite and >= 0. Raises
    ScoringInputError saying what to fix when the input is unusable.
    """
    limits = limits or DEFAULT_LIMITS
    if isinstance(source, AttentionRecord):
        source = [source]
    if isinstance(source, (list, tuple)) and source and all(isinstance(r, AttentionRecord) for r in source):
        records = [_recheck(record, f"attention record {index}") for index, record in enumerate(source)]
    else:
        parsed, from_file = _parse_source(source, None)
        if isinstance(parsed, dict) and "records" in parsed:
            parsed = parsed["records"]
        elif isinstance(parsed, dict):
            parsed = [parsed]
        if not isinstance(parsed, (list, tuple)) or (parsed and isinstance(parsed[0], ActivationRecord)):
            raise ScoringInputError(
                "attention records must be JSON: a list of {'tokens': [...], 'attention': [[...]]} or "
                "{'tokens': [...], 'pairs': [[from, to, value], ...]} objects"
            )
        with unquoted_input() if from_file else nullcontext():
            records = [
                _attention_record_from_item(item, f"attention record {index}") for index, item in enumerate(parsed)
            ]
    if not records:
        raise ScoringInputError("no attention records found: give at least one record of tokens and attention")
    check_limits(records, limits, "attention records")
    return records


def _recheck(record: AttentionRecord, where: str) -> AttentionRecord:
    source = record.source or where
    return AttentionRecord.from_pairs(record.tokens, record.pairs, source)


def _attention_record_from_item(item: Any, where: str) -> AttentionRecord:
    if not isinstance(item, dict):
        raise ScoringInputError(
            f"{where} must be an object with 'tokens' and 'attention' (or 'pairs'), got {type(item).__name__}"
        )
    if "tokens" not in item:
        raise ScoringInputError(f"{where} has no 'tokens' list")
    if "attention" in item:
        return AttentionRecord.from_matrix(item["tokens"], item["attention"], where)
    if "pairs" in item:
        return AttentionRecord.from_pairs(item["tokens"], item["pairs"], where)
    raise ScoringInputError(
        f"{where} has neither 'attention' (a matrix [to][from]) nor 'pairs' ([[from, to, value], ...])"
    )


def _attention_tokens(tokens: Any, where: str) -> list[str]:
    if not isinstance(tokens, (list, tuple)):
        raise ScoringInputError(f"{where}: 'tokens' must be a list of strings, got {type(tokens).__name__}")
    if not tokens:
        raise ScoringInputError(f"{where} has no tokens; give its tokens and the attention between them")
    for position, token in enumerate(tokens):
        if not isinstance(token, str):
            raise ScoringInputError(
                f"{where} token {position} is {type(token).__name__}{shown(token)}; tokens must be strings"
            )
    return list(tokens)


def _attention_value(value: Any, where: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ScoringInputError(f"{where} is {type(value).__name__}{shown(value)}; attention values must be numbers")
    number = float(value)
    if not math.isfinite(number):
        raise ScoringInputError(
            f"{where} is{shown(value)} not finite; replace NaN/inf attention values with finite numbers"
        )
    if number < 0:
        raise ScoringInputError(
            f"{where} is{shown(value)} negative; attention weights must be >= 0 (give weights, not logits)"
        )
    return number


def _sized_list(
    value: Any, n_tokens: int, not_a_list: Callable[[str], str], wrong_length: Callable[[int], str]
) -> Sequence[Any]:
    """`value` if it is a list (or tuple) of `n_tokens` items, else ScoringInputError with `not_a_list(type name)`
    or `wrong_length(its length)`."""
    if not isinstance(value, (list, tuple)):
        raise ScoringInputError(not_a_list(type(value).__name__))
    if len(value) != n_tokens:
        raise ScoringInputError(wrong_length(len(value)))
    return value


def _pairs_from_matrix(matrix: Any, n_tokens: int, where: str) -> list[AttentionPair]:
    if hasattr(matrix, "tolist"):
        matrix = matrix.tolist()
    rows = _sized_list(
        matrix,
        n_tokens,
        lambda kind: f"{where}: 'attention' must be a list of rows, got {kind}",
        lambda length: f"{where}: the attention matrix has {length} rows for {n_tokens} tokens; "
        "give one row per token (matrix[to][from])",
    )

    def not_a_row(to_index: int, kind: str) -> str:
        return f"{where}: attention row {to_index} is {kind}, not a list"

    def ragged_row(to_index: int, length: int) -> str:
        return (
            f"{where}: attention row {to_index} has {length} values for {n_tokens} tokens; "
            "the matrix must be square, one value per token in every row"
        )

    values = [[0.0] * n_tokens for _ in range(n_tokens)]
    for to_index, given in enumerate(rows):
        row = _sized_list(given, n_tokens, partial(not_a_row, to_index), partial(ragged_row, to_index))
        for from_index, value in enumerate(row):
            values[to_index][from_index] = _attention_value(value, f"{where} attention[{to_index}][{from_index}]")
    causal = all(values[to][frm] == 0.0 for to in range(n_tokens) for frm in range(to))
    return [
        (frm, to, values[to][frm])
        for frm in range(n_tokens)
        for to in range(n_tokens)
        if not causal or to <= frm
    ]


def _pairs_from_list(pairs: Any, n_tokens: int, where: str) -> list[AttentionPair]:
    if not isinstance(pairs, (list, tuple)):
        raise ScoringInputError(f"{where}: 'pairs' must be a list of [from, to, value], got {type(pairs).__name__}")
    if not pairs:
        raise ScoringInputError(f"{where} has no attention pairs; give at least one [from, to, value]")
    checked: list[AttentionPair] = []
    seen: set[tuple[int, int]] = set()
    for position, pair in enumerate(pairs):
        label = f"{where} pair {position}"
        if isinstance(pair, dict):
            missing = [key for key in ("from", "to", "value") if key not in pair]
            if missing:
                raise ScoringInputError(f"{label} has no {', '.join(missing)}; give from, to and value")
            items = (pair["from"], pair["to"], pair["value"])
        elif isinstance(pair, (list, tuple)) and len(pair) == 3:
            items = tuple(pair)
        else:
            raise ScoringInputError(
                f"{label} is {type(pair).__name__}{shown(pair)}; give [from_index, to_index, value]"
            )
        indices = []
        for name, index in zip(("from", "to"), items[:2], strict=True):
            if isinstance(index, bool) or not isinstance(index, int):
                raise ScoringInputError(f"{label}: the {name} index{shown(index)} must be a whole number")
            if not 0 <= index < n_tokens:
                raise ScoringInputError(
                    f"{label}: the {name} index {index} is out of range for {n_tokens} tokens (0..{n_tokens - 1})"
                )
            indices.append(index)
        if (indices[0], indices[1]) in seen:
            raise ScoringInputError(f"{label} repeats the pair from {indices[0]} to {indices[1]}; give each pair once")
        seen.add((indices[0], indices[1]))
        checked.append((indices[0], indices[1], _attention_value(items[2], f"{label} value")))
    return checked
