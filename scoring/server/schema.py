"""The request bodies of the scoring routes, and reading them from raw bytes with errors that name the field.

Bodies are read here rather than by FastAPI so that reading runs off the event loop (a maximum-size body
takes a while to parse) and every problem gets its own message: not UTF-8, another charset, nested too
deep, numbers too long, not an object, then each field that does not fit the schema.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any, TypeVar

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StrictBool,
    StrictInt,
    StrictStr,
    ValidationError,
    ValidationInfo,
    field_validator,
)

from scoring.records import LONG_INTEGER, NORMALIZATIONS, STRICT, TokensAndValues, lone_surrogate
from scoring.sampling import MAX_SEED, STRATEGIES
from scoring.scorers import SCORERS


def _one_of(value: str | None, choices: Any, what: str) -> str | None:
    if value is not None and value not in choices:
        raise ValueError(f"unknown {what} {value!r}; choose one of: {', '.join(choices)}")
    return value


_CHOICES: dict[str, tuple[Any, str]] = {
    "scorer": (SCORERS, "scorer"),
    "sampling": (STRATEGIES, "sampling strategy"),
    "normalization": (NORMALIZATIONS, "normalization"),
}
"""The fields that name one of a fixed set: field -> (the choices, what a message calls the field)."""


def _valid_unicode(value: str | None) -> str | None:
    if value is not None:
        position = lone_surrogate(value)
        if position is not None:
            raise ValueError(f"holds a lone surrogate at character {position}, which is not valid Unicode")
    return value


class ScoringOptions(BaseModel):
    """Fields of both scoring routes: the Neuronpedia ones, then opt-in extensions (absent: defaults)."""

    # Unknown top-level fields are ignored, as the original scorer ignored them.
    model_config = ConfigDict(extra="ignore")

    secret: StrictStr | None = Field(default=None, description="SERVER_KEY of this server, when it has one")
    activations: list[TokensAndValues] = Field(min_length=1, description="the sequences to score on")
    simulator: StrictStr | None = Field(
        default=None, description="simulator spec; only the server's own or its allowed_simulators"
    )
    scorer: StrictStr | None = Field(default=None, description="scoring method (default: simulation)")
    sampling: StrictStr | None = Field(
        default=None, description="which sequences to use: all, top, top+random, quantile, diverse"
    )
    n_sequences: StrictInt | None = Field(default=None, ge=1, description="how many sequences sampling keeps")
    seed: StrictInt | None = Field(
        default=None, ge=0, le=MAX_SEED, description="seed of random sampling and bootstrap"
    )
    normalization: StrictStr | None = Field(default=None, description="global (default), per_record or none")
    window: StrictInt | None = Field(
        default=None, ge=1, description="binary-condition scorer: tokens per window (default: whole sequences)"
    )
    metrics: StrictBool = Field(
        default=False,
        description="add every metric (r², rank correlation, ROC-AUC, interval...) to the answer",
    )

    @field_validator(*_CHOICES)
    @classmethod
    def _known_choice(cls, value: str | None, info: ValidationInfo) -> str | None:
        choices, what = _CHOICES[str(info.field_name)]
        return _one_of(value, choices, what)

    @field_validator("simulator")
    @classmethod
    def _simulator_text(cls, value: str | None) -> str | None:
        return _valid_unicode(value)

    def api_options(self) -> dict[str, Any]:
        chosen = {
            "scorer": self.scorer,
            "sampling": self.sampling,
            "n_sequences": self.n_sequences,
            "seed": self.seed,
            "normalization": self.normalization,
            "scorer_options": {"window": self.window} if self.window is not None else None,
        }
        return {name: value for name, value in chosen.items() if value is not None}

    def flight_key(self) -> str:
        """Canonical JSON of everything that decides the answer (not the secret): equal keys, equal answers."""
        return json.dumps(self.model_dump(exclude={"secret"}), sort_keys=True, ensure_ascii=True)


class ScoreRequest(ScoringOptions):
    """The Neuronpedia scorer request, plus the opt-in fields of ScoringOptions."""

    explanation: StrictStr

    @field_validator("explanation")
    @classmethod
    def _explanation_text(cls, value: str) -> str:
        return _valid_unicode(value) or ""


class ScoreManyRequest(ScoringOptions):
    """Several explanations of the same activations; answered best first."""

    explanations: list[StrictStr] = Field(min_length=1)

    @field_validator("explanations")
    @classmethod
    def _explanations_text(cls, value: list[str]) -> list[str]:
        for position, text in enumerate(value):
            if lone_surrogate(text) is not None:
                raise ValueError(f"explanations[{position}] holds a lone surrogate, which is not valid Unicode")
        return value


class BodyError(Exception):
    """A body that cannot be read as its route's request: status, and each problem as (field, message)."""

    def __init__(self, status: int, problems: list[tuple[str, str]]) -> None:
        super().__init__(problems[0][1])
        self.status = status
        self.problems = problems


Request = TypeVar("Request", bound=ScoringOptions)

JSON_MEDIA_TYPES = ("application/json",)


class DuplicateKey(ValueError):
    """A JSON object names the same key twice."""

    def __init__(self, key: str) -> None:
        super().__init__(key)
        self.key = key


def _refuse_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    """`json.loads`'s object hook: the object, unless a key repeats (JSON parsers disagree on which one wins)."""
    obj = dict(pairs)
    if len(obj) != len(pairs):
        seen: set[str] = set()
        for key, _ in pairs:
            if key in seen:
                raise DuplicateKey(key)
            seen.add(key)
    return obj


def parse_body(
    raw: bytes,
    content_type: str | None,
    model: type[Request],
    check_secret: Callable[[Any], None] | None = None,
) -> Request:
    """The request `model` from a raw body; BodyError says what is wrong with it.

    ``check_secret`` is called with the body's ``secret`` as soon as the JSON is decoded, before the schema
    is checked: a client without the key learns nothing about the schema, and costs no validation.
    """
    _check_content_type(content_type)
    if not raw.strip():
        raise BodyError(400, [("body", "the body is empty; send a JSON object")])
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise BodyError(
            400,
            [("body", f"the body is not valid UTF-8 (byte 0x{raw[exc.start]:02x} at offset {exc.start}); "
                      "send JSON encoded as UTF-8")],
        ) from None
    try:
        data = json.loads(text, object_pairs_hook=_refuse_duplicates)
    except json.JSONDecodeError as exc:
        message = f"the body is not valid JSON ({exc.msg} at line {exc.lineno} column {exc.colno})"
        raise BodyError(400, [("body", message)]) from None
    except DuplicateKey as exc:
        raise BodyError(
            400, [("body", f"the key {exc.key!r} appears twice in one object; send each key once")]
        ) from None
    except RecursionError:
        raise BodyError(
            400, [("body", "the body's JSON is nested too deeply to read (over about 900 levels); "
                           "this API's bodies nest 3 levels")]
        ) from None
    except ValueError:  # the only other failure: an integer longer than Python's 4300-digit limit
        raise BodyError(400, [("body", f"the body holds {LONG_INTEGER}")]) from None
    if not isinstance(data, dict):
        kind = "array" if isinstance(data, list) else "null" if data is None else type(data).__name__
        raise BodyError(422, [("body", f"the body must be a JSON object, got {kind}")])
    if check_secret is not None:
        check_secret(data.get("secret"))
    try:
        return model.model_validate(data, context=STRICT)
    except ValidationError as exc:
        raise BodyError(422, [(_error_path(error), _message(error)) for error in exc.errors()]) from None
    except RecursionError:
        raise BodyError(422, [("body", "the body nests too deeply")]) from None


def _check_content_type(content_type: str | None) -> None:
    if content_type is None:
        return  # as FastAPI does: no Content-Type is read as JSON
    media_type, _, parameters = content_type.partition(";")
    media_type = media_type.strip().lower()
    if media_type not in JSON_MEDIA_TYPES and not media_type.endswith("+json"):
        raise BodyError(
            415,
            [("content-type", f"the body must be JSON sent with Content-Type: application/json, not {media_type!r}")],
        )
    for parameter in parameters.split(";"):
        name, _, value = parameter.partition("=")
        charset = value.strip().strip('"').lower()
        if name.strip().lower() == "charset" and charset not in ("utf-8", "utf8"):
            raise BodyError(
                415,
                [("content-type", f"the body must be UTF-8 (charset=utf-8), not charset={charset}; "
                                  "re-encode it as UTF-8")],
            )


def field_path(location: Any) -> str:
    """A pydantic location as a path a person reads: ``activations[0].values[1]``."""
    path = ""
    for part in location:
        if part == "body":
            continue
        path += f"[{part}]" if isinstance(part, int) else (f".{part}" if path else str(part))
    return path or "body"


def _error_path(error: Any) -> str:
    location = tuple(error.get("loc", ()))
    # TokensAndValues checks a whole list at once and names the item in ``position``: point the path at it.
    position = (error.get("ctx") or {}).get("position")
    if isinstance(position, int) and location and location[-1] in ("tokens", "values"):
        location = (*location, position)
    return field_path(location)


def _message(error: Any) -> str:
    message = str(error.get("msg", "invalid value"))
    return message.removeprefix("Value error, ")
