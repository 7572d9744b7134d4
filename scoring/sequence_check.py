"""The one check of a ``{tokens, values}`` sequence, shared by `load_records`, the server and batch.

`TokensAndValues` validates a sequence and words every problem so the user knows what to fix;
`scoring.records` re-exports every public name here.
"""

from __future__ import annotations

import math
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
            f"{what} holds a lone surrogate {text[position]!r} at character {position}, which is not valid "
            "Unicode; fix the text's encoding"
        )
    return text


def _token(value: Any, position: int) -> str:
    if not isinstance(value, str):
        raise PydanticCustomError(
            "token_type", "token {position} is {kind} {value}; tokens must be strings",
            {"position": position, "kind": type(value).__name__, "value": repr(value)},
        )
    index = lone_surrogate(value)
    if index is not None:
        raise PydanticCustomError(
            "token_unicode",
            "token {position} holds a lone surrogate {value} at character {index}, which is not valid Unicode; "
            "fix the text's encoding",
            {"position": position, "value": repr(value[index]), "index": index},
        )
    return value


def parse_activation(value: Any, position: int, strict: bool) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float, str)) or (strict and isinstance(value, str)):
        raise PydanticCustomError(
            "value_type", "value {position} is {kind} {value}; activations must be numbers",
            {"position": position, "kind": type(value).__name__, "value": repr(value)},
        )
    try:
        number = float(value)
    except (ValueError, OverflowError):
        raise PydanticCustomError(
            "value_parsing", "value {position} is {value}, not a number; activations must be numbers",
            {"position": position, "value": repr(value)},
        ) from None
    if not math.isfinite(number):
        raise PydanticCustomError(
            "value_finite", "value {position} is {value}; replace NaN/inf activations with finite numbers",
            {"position": position, "value": repr(value)},
        )
    if abs(number) > MAX_ABS_ACTIVATION:
        raise PydanticCustomError(
            "value_range",
            "value {position} is {value}, beyond the limit of {limit:g} in magnitude; rescale the activations",
            {"position": position, "value": repr(value), "limit": MAX_ABS_ACTIVATION},
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
