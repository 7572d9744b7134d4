"""Everything that configures one server process, from options, the environment and ``.env``.

Explicit `serve` options win over the environment (``SERVER_KEY``, ``SCORING_<NAME>`` for every other
field, e.g. ``SCORING_MAX_BODY_BYTES``), which wins over a ``.env`` file in the working directory or
above it, which wins over the defaults below.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

from pydantic import AliasChoices, Field, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from scoring.api import MAX_EXPLANATION_CHARS, default_simulator_spec
from scoring.cache import SimulationCache
from scoring.errors import ScoringInputError

LOOPBACK_HOSTS = ("127.0.0.1", "::1", "localhost")


class ServerSettings(BaseSettings):
    """One server's settings; each field's environment variable is ``SCORING_`` + its name in capitals."""

    model_config = SettingsConfigDict(
        env_prefix="SCORING_", extra="ignore", arbitrary_types_allowed=True, validate_default=True
    )

    simulator: str = Field(default_factory=default_simulator_spec)
    """Spec of the simulator used when a request names none."""
    server_key: str = Field(default="", validation_alias=AliasChoices("server_key", "SERVER_KEY"))
    """Shared secret (``SERVER_KEY``); empty means every request is accepted."""
    allowed_simulators: Annotated[tuple[str, ...], NoDecode] = ()
    """Further specs a request may pick with ``"simulator"`` (comma-separated in the environment)."""
    cache: SimulationCache | str | Path | bool | None = True
    """Simulation cache shared by all requests (True: the default cache directory)."""
    allow_open: bool = False
    """Listen on an address other than loopback without a ``server_key`` (anyone there may score)."""

    max_body_bytes: int = Field(default=10_000_000, ge=1)
    """Largest request body; larger ones get 413."""
    max_sequences: int = Field(default=500, ge=1)
    """Most sequences in one request; more get 422."""
    max_tokens_per_sequence: int = Field(default=4096, ge=1)
    """Most tokens in one sequence; more get 422."""
    max_explanations: int = Field(default=50, ge=1)
    """Most explanations one ``/score/many`` request may carry."""
    max_explanation_chars: int = Field(default=MAX_EXPLANATION_CHARS, ge=1, le=MAX_EXPLANATION_CHARS)
    """Longest explanation, at most the API's own limit (MAX_EXPLANATION_CHARS)."""

    max_concurrent_requests: int = Field(default=256, ge=1)
    """Scoring requests admitted at once (reading, waiting or scoring); more get 503 with Retry-After."""
    max_client_requests: int = Field(default=64, ge=1)
    """Scoring requests one client (IP address) may have in flight; more get 503 with Retry-After. A request
    with ``Authorization: Bearer <SERVER_KEY>`` is held only to max_concurrent_requests."""
    max_inflight_body_bytes: int = Field(default=30_000_000, ge=1)
    """Bytes of request bodies in flight, counted as they arrive and held until the request ends (a body
    takes about 13 times its size in memory once parsed); a request whose bytes would pass it gets 503 with
    Retry-After. At least max_body_bytes."""
    max_client_body_bytes: int | None = Field(default=None, ge=1)
    """Bytes of request bodies one client may have in flight (None: max_body_bytes, one largest body at a
    time); past it, 503 with Retry-After. Not for requests with the key in their Authorization header."""
    request_timeout: float = Field(default=300.0, gt=0)
    """Seconds one scoring request may take once its body is read; then 504."""
    body_timeout: float = Field(default=30.0, gt=0)
    """Seconds a client has to send a request's body after its headers; then 408 and the connection closes."""
    header_timeout: float = Field(default=10.0, gt=0)
    """Seconds a client has to send a request's headers after connecting (or after its previous request);
    then the connection closes."""
    retry_after_seconds: int = Field(default=2, ge=1)
    """The ``Retry-After`` of a 503."""
    docs: bool = False
    """Serve the interactive API documentation (``/docs``, ``/openapi.json``); off, they are 404."""

    @field_validator("allowed_simulators", mode="before")
    @classmethod
    def _comma_separated(cls, value: Any) -> Any:
        if isinstance(value, str):
            return tuple(spec.strip() for spec in value.split(",") if spec.strip())
        return value

    @model_validator(mode="after")
    def _budget_holds_one_body(self) -> ServerSettings:
        if self.max_inflight_body_bytes < self.max_body_bytes:
            raise ValueError(
                f"max_inflight_body_bytes ({self.max_inflight_body_bytes}) must be at least max_body_bytes "
                f"({self.max_body_bytes}), or no request of the largest size could ever be admitted"
            )
        return self

    @property
    def client_body_bytes(self) -> int:
        """max_client_body_bytes in effect: its default, and never above max_inflight_body_bytes."""
        share = self.max_client_body_bytes if self.max_client_body_bytes is not None else self.max_body_bytes
        return min(share, self.max_inflight_body_bytes)

    def limits(self) -> dict[str, Any]:
        """The limits a client may want to know (``/health`` shows them)."""
        limits = {name: getattr(self, name) for name in LIMIT_FIELDS}
        limits["max_client_body_bytes"] = self.client_body_bytes
        return limits


LIMIT_FIELDS = (
    "max_body_bytes",
    "max_sequences",
    "max_tokens_per_sequence",
    "max_explanations",
    "max_explanation_chars",
    "max_concurrent_requests",
    "max_client_requests",
    "max_inflight_body_bytes",
    "max_client_body_bytes",
    "request_timeout",
    "body_timeout",
    "header_timeout",
)

OPTIONS = tuple(name for name in ServerSettings.model_fields if name != "simulator")
"""The keyword options `load_settings` and `serve` take."""


def load_settings(simulator: str | None = None, **options: Any) -> ServerSettings:
    """Settings from explicit options, then the environment / ``.env``, then defaults.

    Raises ScoringInputError naming the option and its environment variable when one is wrong.
    """
    unknown = set(options) - set(OPTIONS)
    if unknown:
        raise ScoringInputError(
            f"unknown server option(s): {', '.join(sorted(unknown))}; known: {', '.join(OPTIONS)}"
        )
    _load_dotenv()
    given = {name: value for name, value in options.items() if value is not None}
    if simulator:
        given["simulator"] = simulator
    try:
        return ServerSettings(**given)
    except ValidationError as exc:
        problems = []
        for error in exc.errors():
            name = str(error["loc"][0]) if error.get("loc") else ""
            variable = "SERVER_KEY" if name == "server_key" else f"SCORING_{name.upper()}"
            where = f"{name} ({variable})" if name else "server settings"
            problems.append(f"{where}: {error['msg']}, got {error.get('input')!r}" if name else error["msg"])
        raise ScoringInputError("; ".join(problems)) from None


def _load_dotenv() -> None:
    from dotenv import find_dotenv, load_dotenv

    # Values already in the environment win over the file, as in the original scorer; the file also
    # carries the simulators' keys (OPENAI_API_KEY), which is why it is loaded into the environment.
    load_dotenv(find_dotenv(usecwd=True), override=False)
