"""The one check of a ``{tokens, values}`` sequence, shared by `load_records`, the server and batch.

`TokensAndValues` validates a sequence and words every problem so the user knows what to fix;
`scoring.records` re-exports every public name here.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any

import numpy as np
from pydantic import AliasChoices, BaseModel, ConfigDict, Field, ValidationInfo, field_validator, model_validator
from pydantic_core import PydanticCustomError

from scoring.errors import ScoringInputError

MAX_ABS_ACTIVATION = 1e30
"""Largest activation magnitude accepted: far beyond any real activation, and small enough that scaling
and correlation (which square the values) stay finite."""

STRICT = {"strict": True}
"""Validation context of `TokensAndValues` that refuses numeric strings as values (JSON APIs)."""


_QUOTE_INPUT: ContextVar[bool] = ContextVar("scoring_quote_input", default=True)


@contextmanager
def unquoted_input() -> Iterator[None]:
    """Within the block, error messages name the place of a bad value but never quote it.

    Records read from a file path are checked in this mode: whoever named the file must not learn its
    contents from an error (a path to ``.env`` would otherwise show ``OPENAI_API_KEY=...``).
    """
    token = _QUOTE_INPUT.set(False)
    try:
        yield
    finally:
        _QUOTE_INPUT.reset(token)


def quoting_input() -> bool:
    """False inside `unquoted_input`: messages must not carry the input's text."""
    return _QUOTE_INPUT.get()


def shown(value: Any) -> str:
    """`value` as an error message quotes it (a space and its repr), or "" inside `unquoted_input`."""
    return f" {value!r}" if _QUOTE_INPUT.get() else ""


def _quoted_then(value: Any) -> str:
    """" 'x'," to read "value 3 is 'x', not a number", or "" to read "value 3 is not a number"."""
    return f" {value!r}," if _QUOTE_INPUT.get() else ""


def _error(kind: str, message: str, position: int) -> PydanticCustomError:
    # The message is complete here, so its text (which may quote the input) is never read as a template;
    # only ``position`` is context, for callers that point at the item.
    return PydanticCustomError(kind, message, {"position": position})


def lone_surrogate(text: str) -> int | None:
    """Position of the first lone surrogate in `text` (not valid Unicode, cannot be encoded), else None."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as exc:
        return exc.start
    return None


def check_unicode(text: str, what: str) -> str:
    """`text` unchanged, or ScoringInputError naming `what` when it holds a lone surrogate."""
    position = lone_surrogate(text)
    if position is not None:
        raise ScoringInputError(
            f"{what} holds a lone surrogate{shown(text[position])} at character {position}, which is not valid "
            "Unicode; fix the text's encoding"
        )
    return text


def _token(value: Any, position: int) -> str:
    if not isinstance(value, str):
        raise _error(
            "token_type", f"token {position} is {type(value).__name__}{shown(value)}; tokens must be strings", position
        )
    index = lone_surrogate(value)
    if index is not None:
        raise _error(
            "token_unicode",
            f"token {position} holds a lone surrogate{shown(value[index])} at character {index}, which is not "
            "valid Unicode; fix the text's encoding",
            position,
        )
    return value


def parse_activation(value: Any, position: int, strict: bool) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float, str)) or (strict and isinstance(value, str)):
        raise _error(
            "value_type",
            f"value {position} is {type(value).__name__}{shown(value)}; activations must be numbers",
            position,
        )
    try:
        number = float(value)
    except (ValueError, OverflowError):
        raise _error(
            "value_parsing",
            f"value {position} is{_quoted_then(value)} not a number; activations must be numbers",
            position,
        ) from None
    if not math.isfinite(number):
        raise _error(
            "value_finite",
            f"value {position} is{_quoted_then(value)} not finite; replace NaN/inf activations with finite numbers",
            position,
        )
    if abs(number) > MAX_ABS_ACTIVATION:
        raise _error(
            "value_range",
            f"value {position} is{_quoted_then(value)} beyond the limit of {MAX_ABS_ACTIVATION:g} in magnitude; "
            "rescale the activations",
            position,
        )
    return number


def _list_of(value: Any, field_name: str, what: str) -> list[Any]:
    if not isinstance(value, list):
        raise PydanticCustomError(
            "list_required", "'{field}' must be a list of {what}, got {kind}",
            {"field": field_name, "what": what, "kind": type(value).__name__},
        )
    return value


class TokensAndValues(BaseModel):
    """One sequence as every input gives it: ``{"tokens": [...], "values": [...]}`` (or ``"activations"``).

    The one validation of a sequence: `load_records`, the server's request models and batch input all use
    it. Values may be numeric strings (CSV) unless validated with ``context=STRICT``.
    """

    model_config = ConfigDict(extra="ignore")

    tokens: list[str] = Field(description="token strings as the subject model saw them")
    values: list[float] = Field(
        validation_alias=AliasChoices("values", "activations"), description="the real activation of each token"
    )

    @field_validator("tokens", mode="before")
    @classmethod
    def _tokens(cls, value: Any) -> list[str]:
        items = _list_of(value, "tokens", "strings")
        # The common case checked at C speed: a maximum-size request holds millions of tokens.
        if all(type(item) is str for item in items) and lone_surrogate("".join(items)) is None:
            return items
        return [_token(item, position) for position, item in enumerate(_list_of(value, "tokens", "strings"))]

    @field_validator("values", mode="before")
    @classmethod
    def _values(cls, value: Any, info: ValidationInfo) -> list[float]:
        strict = bool((info.context or {}).get("strict"))
        items = _list_of(value, "values", "numbers")
        if all(type(item) is float or type(item) is int for item in items):
            try:
                array = np.asarray(items, dtype=np.float64)
            except OverflowError:
                array = None
            if array is not None and bool(np.all(np.abs(array) <= MAX_ABS_ACTIVATION)):
                return list(array.tolist())
        return [parse_activation(item, position, strict) for position, item in enumerate(items)]

    @model_validator(mode="after")
    def _same_length(self) -> TokensAndValues:
        if not self.tokens:
            raise PydanticCustomError("no_tokens", "has no tokens; remove it or give it tokens and values")
        if len(self.tokens) != len(self.values):
            raise PydanticCustomError(
                "length_mismatch",
                "has {tokens} tokens but {values} values; give exactly one value per token",
                {"tokens": len(self.tokens), "values": len(self.values)},
            )
        return self


_MISSING = {
    "tokens": "has no 'tokens' list",
    "values": "has no 'values' (or 'activations') list",
}


def sequence_error_message(error: Any, where: str) -> str:
    """One error of `TokensAndValues` as load_records words it, `where` naming the sequence."""
    location = tuple(error.get("loc", ()))
    if error.get("type") == "missing" and location and location[0] in _MISSING:
        return f"{where} {_MISSING[str(location[0])]}"
    if error.get("type") == "list_required":
        return f"{where}: {error['msg']}"
    return f"{where} {error['msg']}"
