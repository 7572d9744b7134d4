"""HTTP scoring server, a drop-in replacement for the Neuronpedia scorer.

``POST /score`` takes the Neuronpedia scorer request unchanged::

    {"explanation": "fast animals", "secret": "...",
     "activations": [{"tokens": ["the", " quick"], "values": [0, 5]}, ...]}

and answers ``{"score": float | null, "simulations": [...]}``; each simulation has the
shape of neuron-explainer's ``ScoredSequenceSimulation`` (``simulation.tokens``,
``simulation.expected_activations``, ``true_activations``, ``ev_correlation_score``), so
the existing Neuronpedia caller works as before. Everything else is additive and opt-in:
request fields ``simulator``, ``sampling``, ``n_sequences``, ``seed``, ``normalization``,
``scorer`` (judge scorers add ``judgments``, their questions and answers, to the answer),
``window`` (binary-condition) and ``metrics: true``; ``POST /score/many`` scores several
explanations on the same activations (binary-condition p-values then come corrected for
the number of explanations); ``GET /health``. The attention-head scorer takes attention
records, which this Neuronpedia-shaped route does not: asking for it is a 422 that says so.

Status codes:

- 200: scored. ``score`` is null (never NaN, which is not JSON) when it is undefined,
  with ``error`` saying why: real or simulated activations constant, or some sequences
  failed to simulate (the API never scores a subset silently); each failed simulation
  carries its own ``error``, the others their simulated activations.
- 400: the body is not valid JSON. 401: wrong or missing secret (checked after the schema,
  so a malformed body is a 4xx about the body whoever sends it). 404/405: no such route.
- 413: the body is larger than ``max_body_bytes``. 422: the body does not match the
  schema or a limit; ``error`` names the field and ``errors`` lists every problem.
- 502: the simulator failed on every sequence (its error is in ``error``); nothing could
  be scored, and the fault is upstream of this server, not in the request.

The secret is ``SERVER_KEY`` from the environment or a ``.env`` file, compared in
constant time; an empty or unset key accepts any request (local use). Limits come from
``serve`` options, else the environment (``SCORING_MAX_BODY_BYTES``,
``SCORING_MAX_SEQUENCES``, ``SCORING_MAX_TOKENS_PER_SEQUENCE``,
``SCORING_MAX_EXPLANATIONS``, ``SCORING_MAX_EXPLANATION_CHARS``), else the defaults of
`ServerSettings`. A request may pick a simulator other than the server's only when it
is listed in ``allowed_simulators`` / ``SCORING_ALLOWED_SIMULATORS`` (comma-separated
specs), so a client cannot make the server spend on a paid model it was not set up for.
Unknown request fields are ignored, as the original scorer ignored them.

Every request is logged (method, path, status, milliseconds, client); bodies and
secrets never are.
"""

from __future__ import annotations

import hmac
import json
import logging
import math
import os
import time
from collections.abc import Awaitable, Callable, MutableMapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import Response
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StrictBool,
    StrictInt,
    StrictStr,
    field_validator,
    model_validator,
)
from starlette.exceptions import HTTPException

from scoring.api import (
    MAX_EXPLANATION_CHARS,
    arank_explanations,
    ascore_explanation,
    default_simulator_spec,
    resolve_cache,
    resolve_simulator,
)
from scoring.cache import SimulationCache
from scoring.errors import ScoringInputError
from scoring.metrics import absolute_dev_explained, r_squared
from scoring.records import NORMALIZATIONS, ActivationRecord, Limits
from scoring.results import ScoreResult, SequenceResult, jsonable
from scoring.sampling import STRATEGIES
from scoring.scorers import SCORERS
from scoring.simulators import Simulator

logger = logging.getLogger(__name__)

ACTIVATION_SCALE = "simulated_normalized_activations"
"""neuron-explainer's name for the 0..10 scale our simulated activations are on."""

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]


@dataclass
class ServerSettings:
    """Everything that configures one server process."""

    simulator: str = field(default_factory=default_simulator_spec)
    """Spec of the simulator used when a request names none."""
    server_key: str = ""
    """Shared secret; empty means every request is accepted."""
    allowed_simulators: tuple[str, ...] = ()
    """Further specs a request may pick with ``"simulator"`` (the default one always is)."""
    cache: SimulationCache | str | Path | bool | None = True
    """Simulation cache shared by all requests (True: the default cache directory)."""
    max_body_bytes: int = 10_000_000
    max_sequences: int = 500
    max_tokens_per_sequence: int = 4096
    max_explanations: int = 50
    """Most explanations one ``/score/many`` request may carry."""
    max_explanation_chars: int = MAX_EXPLANATION_CHARS
    """At most the API's own limit (MAX_EXPLANATION_CHARS)."""


_ENV_LIMITS = {
    "max_body_bytes": "SCORING_MAX_BODY_BYTES",
    "max_sequences": "SCORING_MAX_SEQUENCES",
    "max_tokens_per_sequence": "SCORING_MAX_TOKENS_PER_SEQUENCE",
    "max_explanations": "SCORING_MAX_EXPLANATIONS",
    "max_explanation_chars": "SCORING_MAX_EXPLANATION_CHARS",
}


def load_settings(simulator: str | None = None, **options: Any) -> ServerSettings:
    """Settings from explicit options, then the environment / ``.env``, then defaults."""
    _load_dotenv()
    unknown = set(options) - {
        "server_key",
        "allowed_simulators",
        "cache",
        *_ENV_LIMITS,
    }
    if unknown:
        raise ScoringInputError(f"unknown server option(s): {', '.join(sorted(unknown))}")
    values: dict[str, Any] = {}
    for name, variable in _ENV_LIMITS.items():
        raw = options.get(name)
        if raw is None and os.environ.get(variable, "").strip():
            raw = os.environ[variable]
        if raw is None:
            continue
        try:
            number = int(raw)
        except (TypeError, ValueError):
            raise ScoringInputError(f"{name} ({variable}) must be a positive integer, got {raw!r}") from None
        if number < 1:
            raise ScoringInputError(f"{name} ({variable}) must be a positive integer, got {raw!r}")
        values[name] = number
    if values.get("max_explanation_chars", 0) > MAX_EXPLANATION_CHARS:
        raise ScoringInputError(
            f"max_explanation_chars can be at most the API's limit of {MAX_EXPLANATION_CHARS}"
        )
    server_key = options.get("server_key")
    if server_key is None:
        server_key = os.environ.get("SERVER_KEY", "")
    allowed = options.get("allowed_simulators") or os.environ.get("SCORING_ALLOWED_SIMULATORS", "")
    if isinstance(allowed, str):
        allowed = tuple(spec.strip() for spec in allowed.split(",") if spec.strip())
    return ServerSettings(
        simulator=simulator or default_simulator_spec(),
        server_key=str(server_key),
        allowed_simulators=tuple(allowed),
        cache=options.get("cache", True),
        **values,
    )


def _load_dotenv() -> None:
    from dotenv import find_dotenv, load_dotenv

    # Values already in the environment win over the file, as in the original scorer.
    load_dotenv(find_dotenv(usecwd=True), override=False)


# ---------------------------------------------------------------- request models

FiniteNumber = Annotated[float, Field(strict=True, allow_inf_nan=False)]


class ActivationSequence(BaseModel):
    """One text: its tokens and the real activation of each."""

    model_config = ConfigDict(extra="ignore")

    tokens: list[StrictStr] = Field(min_length=1)
    values: list[FiniteNumber] = Field(min_length=1)

    @model_validator(mode="after")
    def _same_length(self) -> ActivationSequence:
        if len(self.tokens) != len(self.values):
            raise ValueError(
                f"tokens and values must have the same length, got {len(self.tokens)} tokens "
                f"and {len(self.values)} values"
            )
        return self


def _one_of(value: str | None, choices: Any, what: str) -> str | None:
    if value is not None and value not in choices:
        raise ValueError(f"unknown {what} {value!r}; choose one of: {', '.join(choices)}")
    return value


class ScoringOptions(BaseModel):
    """Fields of both scoring routes: the Neuronpedia ones, then opt-in extensions (absent: defaults)."""

    # Unknown top-level fields are ignored, as the original scorer ignored them.
    model_config = ConfigDict(extra="ignore")

    secret: StrictStr | None = Field(default=None, description="SERVER_KEY of this server, when it has one")
    activations: list[ActivationSequence] = Field(min_length=1, description="the sequences to score on")
    simulator: StrictStr | None = Field(
        default=None, description="simulator spec; only the server's own or its allowed_simulators"
    )
    scorer: StrictStr | None = Field(default=None, description="scoring method (default: simulation)")
    sampling: StrictStr | None = Field(
        default=None, description="which sequences to use: all, top, top+random, quantile, diverse"
    )
    n_sequences: StrictInt | None = Field(default=None, ge=1, description="how many sequences sampling keeps")
    seed: StrictInt | None = Field(default=None, description="seed of random sampling and bootstrap")
    normalization: StrictStr | None = Field(default=None, description="global (default), per_record or none")
    window: StrictInt | None = Field(
        default=None, ge=1, description="binary-condition scorer: tokens per window (default: whole sequences)"
    )
    metrics: StrictBool = Field(
        default=False,
        description="add every metric (r², rank correlation, ROC-AUC, interval...) to the answer",
    )

    @field_validator("scorer")
    @classmethod
    def _known_scorer(cls, value: str | None) -> str | None:
        return _one_of(value, SCORERS, "scorer")

    @field_validator("sampling")
    @classmethod
    def _known_sampling(cls, value: str | None) -> str | None:
        return _one_of(value, STRATEGIES, "sampling strategy")

    @field_validator("normalization")
    @classmethod
    def _known_normalization(cls, value: str | None) -> str | None:
        return _one_of(value, NORMALIZATIONS, "normalization")

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


class ScoreRequest(ScoringOptions):
    """The Neuronpedia scorer request, plus the opt-in fields of ScoringOptions."""

    explanation: StrictStr


class ScoreManyRequest(ScoringOptions):
    """Several explanations of the same activations; answered best first."""

    explanations: list[StrictStr] = Field(min_length=1)


# ---------------------------------------------------------------- responses


class SafeJSONResponse(Response):
    """JSON with NaN/inf written as null, so every answer is valid JSON."""

    media_type = "application/json"

    def render(self, content: Any) -> bytes:
        return json.dumps(jsonable(content), allow_nan=False, separators=(",", ":")).encode("utf-8")


def _error_response(status_code: int, message: str, **extra: Any) -> SafeJSONResponse:
    return SafeJSONResponse({"error": message, **extra}, status_code=status_code)


def scored_sequence(sequence: SequenceResult) -> dict[str, Any]:
    """One sequence as neuron-explainer's ScoredSequenceSimulation, plus our extra fields."""
    return {
        "simulation": {
            "tokens": sequence.tokens,
            "expected_activations": sequence.simulated,
            "activation_scale": ACTIVATION_SCALE,
            "distribution_values": None,
            "distribution_probabilities": None,
            "uncalibrated_simulation": None,
        },
        "true_activations": sequence.raw,
        "ev_correlation_score": sequence.correlation,
        "rsquared_score": r_squared(sequence.real, sequence.simulated) if sequence.simulated else None,
        "absolute_dev_explained_score": (
            absolute_dev_explained(sequence.real, sequence.simulated) if sequence.simulated else None
        ),
        "index": sequence.index,
        "normalized_true_activations": sequence.real,
        "cached": sequence.cached,
        "error": sequence.error,
    }


def score_payload(result: ScoreResult, include_metrics: bool) -> dict[str, Any]:
    """The /score answer for one result."""
    payload: dict[str, Any] = {
        "score": result.score,
        "simulations": [scored_sequence(sequence) for sequence in result.sequences],
        "error": result.error,
        "explanation": result.explanation,
        "simulator": result.simulator,
        "scorer": result.scorer,
        "cached": result.cached,
        "usage": result.usage.to_dict(),
        "seconds": round(result.seconds, 4),
    }
    if result.judgments:
        payload["judgments"] = [judgment.to_dict() for judgment in result.judgments]
    if include_metrics:
        payload["metrics"] = result.metrics
        payload["sampling"] = result.sampling
        payload["normalization"] = result.normalization
    return payload


def simulation_failed(result: ScoreResult) -> bool:
    """True when the simulator failed on every sequence (not: when the score is merely undefined)."""
    return bool(result.sequences) and all(sequence.error is not None for sequence in result.sequences)


# ---------------------------------------------------------------- middleware


class BodyTooLarge(HTTPException):
    """Raised from inside body reading; FastAPI re-raises HTTPExceptions untouched."""


class BodyLimitMiddleware:
    """Refuse bodies above a size with 413, by header and by counting streamed bytes."""

    def __init__(self, app: ASGIApp, max_body_bytes: int) -> None:
        self.app = app
        self.max_body_bytes = max_body_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        message = f"request body too large: the limit is {self.max_body_bytes} bytes (max_body_bytes)"
        for name, value in scope.get("headers", []):
            if name == b"content-length":
                try:
                    declared = int(value)
                except ValueError:
                    declared = 0
                if declared > self.max_body_bytes:
                    await _error_response(413, message)(scope, receive, send)
                    return
        received = 0

        async def counting_receive() -> Message:
            nonlocal received
            incoming = await receive()
            if incoming["type"] == "http.request":
                received += len(incoming.get("body", b""))
                if received > self.max_body_bytes:
                    raise BodyTooLarge(status_code=413, detail=message)
            return incoming

        await self.app(scope, counting_receive, send)


class AccessLogMiddleware:
    """One log line per request: method, path, status, duration, client. Never the body."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500

        async def recording_send(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, recording_send)
        finally:
            client = scope.get("client")
            logger.info(
                "%s %s %d %.1fms client=%s",
                scope.get("method", "?"),
                scope.get("path", "?"),
                status,
                (time.perf_counter() - started) * 1000,
                f"{client[0]}:{client[1]}" if client else "-",
            )


# ---------------------------------------------------------------- the app


def _field_path(location: tuple[Any, ...]) -> str:
    parts = [part for part in location if part != "body"]
    path = ""
    for part in parts:
        path += f"[{part}]" if isinstance(part, int) else (f".{part}" if path else str(part))
    return path or "body"


class ScoringService:
    """State shared by every request: settings, simulators (built once) and the cache."""

    def __init__(self, settings: ServerSettings) -> None:
        self.settings = settings
        self.started = time.time()
        self.simulators: dict[str, Simulator] = {settings.simulator: resolve_simulator(settings.simulator)}
        for spec in settings.allowed_simulators:
            self.simulators.setdefault(spec, resolve_simulator(spec))
        self.cache = resolve_cache(settings.cache)
        self.limits = Limits(
            max_sequences=settings.max_sequences, max_tokens_per_sequence=settings.max_tokens_per_sequence
        )
        self.requests_scored = 0

    def check_secret(self, secret: str | None) -> None:
        expected = self.settings.server_key
        if not expected:
            return
        given = (secret or "").encode("utf-8")
        if not hmac.compare_digest(given, expected.encode("utf-8")):
            raise HTTPException(status_code=401, detail="wrong or missing secret")

    def simulator_for(self, spec: str | None) -> Simulator:
        if spec is None:
            return self.simulators[self.settings.simulator]
        if spec not in self.simulators:
            offered = ", ".join(sorted(self.simulators))
            raise _InvalidField(
                "simulator", f"simulator {spec!r} is not enabled on this server; use one of: {offered}"
            )
        return self.simulators[spec]

    def records(self, body: ScoringOptions) -> list[ActivationRecord]:
        limits = self.settings
        if len(body.activations) > limits.max_sequences:
            raise _InvalidField(
                "activations",
                f"{len(body.activations)} sequences exceed this server's limit of {limits.max_sequences}",
            )
        records = []
        for position, sequence in enumerate(body.activations):
            if len(sequence.tokens) > limits.max_tokens_per_sequence:
                raise _InvalidField(
                    f"activations[{position}].tokens",
                    f"{len(sequence.tokens)} tokens exceed this server's limit of "
                    f"{limits.max_tokens_per_sequence} per sequence",
                )
            records.append(ActivationRecord(tokens=list(sequence.tokens), activations=list(sequence.values)))
        return records

    def explanation(self, text: str, field_name: str) -> str:
        if not text.strip():
            raise _InvalidField(field_name, "the explanation is empty; send the text to score")
        if len(text) > self.settings.max_explanation_chars:
            raise _InvalidField(
                field_name,
                f"the explanation has {len(text)} characters, more than this server's limit of "
                f"{self.settings.max_explanation_chars}",
            )
        return text


class _InvalidField(Exception):
    def __init__(self, field_name: str, message: str) -> None:
        super().__init__(message)
        self.field_name = field_name
        self.message = message


def create_app(settings: ServerSettings | None = None) -> FastAPI:
    """Build the ASGI app (``serve`` runs it; tests and other servers may mount it)."""
    settings = settings or load_settings()
    service = ScoringService(settings)
    app = FastAPI(
        title="Explanation scorer",
        description="Neuronpedia-compatible scoring of neuron/latent explanations.",
        default_response_class=SafeJSONResponse,
    )
    app.state.service = service

    @app.exception_handler(RequestValidationError)
    async def _invalid_body(request: Request, error: RequestValidationError) -> Response:
        problems = []
        status = 422
        for item in error.errors():
            location = tuple(item.get("loc", ()))
            if item.get("type") == "json_invalid":
                status = 400
                reason = (item.get("ctx") or {}).get("error", "invalid JSON")
                problems.append({"field": "body", "message": f"the body is not valid JSON ({reason})"})
                continue
            message = item.get("msg", "invalid value")
            if location == ("body",) and item.get("type") in {"model_attributes_type", "dict_type"}:
                message = "the body must be a JSON object sent with Content-Type: application/json"
            problems.append({"field": _field_path(location), "message": message})
        if not problems:
            problems.append({"field": "body", "message": "the body is missing"})
        first = problems[0]
        return _error_response(status, f"{first['field']}: {first['message']}", errors=problems)

    @app.exception_handler(HTTPException)
    async def _http_error(request: Request, error: HTTPException) -> Response:
        return _error_response(error.status_code, str(error.detail))

    @app.exception_handler(_InvalidField)
    async def _invalid_field(request: Request, error: _InvalidField) -> Response:
        return _error_response(
            422,
            f"{error.field_name}: {error.message}",
            errors=[{"field": error.field_name, "message": error.message}],
        )

    @app.exception_handler(ScoringInputError)
    async def _scoring_input(request: Request, error: ScoringInputError) -> Response:
        return _error_response(422, str(error), errors=[{"field": "body", "message": str(error)}])

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, error: Exception) -> Response:
        # Our bug, not the client's: the traceback goes to the log, the client gets JSON.
        logger.error("error while handling %s %s", request.method, request.url.path, exc_info=error)
        return _error_response(500, f"internal error ({type(error).__name__}); see the server log")

    @app.get("/health")
    async def health() -> dict[str, Any]:
        """Liveness and what this server scores with."""
        return {
            "status": "ok",
            "simulator": settings.simulator,
            "simulators": sorted(service.simulators),
            "secret_required": bool(settings.server_key),
            "cache": service.cache is not None,
            "requests_scored": service.requests_scored,
            "uptime_seconds": round(time.time() - service.started, 1),
            "limits": {
                "max_body_bytes": settings.max_body_bytes,
                "max_sequences": settings.max_sequences,
                "max_tokens_per_sequence": settings.max_tokens_per_sequence,
                "max_explanations": settings.max_explanations,
                "max_explanation_chars": settings.max_explanation_chars,
            },
        }

    @app.post("/score")
    async def score(body: ScoreRequest) -> Response:
        """Score one explanation (the Neuronpedia scorer route)."""
        service.check_secret(body.secret)
        explanation = service.explanation(body.explanation, "explanation")
        records = service.records(body)
        simulator = service.simulator_for(body.simulator)
        result = await ascore_explanation(
            explanation,
            records,
            simulator=simulator,
            cache=service.cache,
            limits=service.limits,
            **body.api_options(),
        )
        service.requests_scored += 1
        logger.info(
            "scored explanation_chars=%d sequences=%d score=%s cached=%s error=%s",
            len(explanation),
            len(result.sequences),
            f"{result.score:.4f}" if math.isfinite(result.score) else "null",
            result.cached,
            result.error,
        )
        payload = score_payload(result, include_metrics=body.metrics)
        return SafeJSONResponse(payload, status_code=502 if simulation_failed(result) else 200)

    @app.post("/score/many")
    async def score_many(body: ScoreManyRequest) -> Response:
        """Score several explanations of the same activations; results best first."""
        service.check_secret(body.secret)
        if len(body.explanations) > settings.max_explanations:
            raise _InvalidField(
                "explanations",
                f"{len(body.explanations)} explanations exceed this server's limit of "
                f"{settings.max_explanations}",
            )
        explanations = [
            service.explanation(text, f"explanations[{position}]")
            for position, text in enumerate(body.explanations)
        ]
        records = service.records(body)
        simulator = service.simulator_for(body.simulator)
        results = await arank_explanations(
            explanations,
            records,
            simulator=simulator,
            cache=service.cache,
            limits=service.limits,
            **body.api_options(),
        )
        service.requests_scored += 1
        payloads = [score_payload(result, include_metrics=body.metrics) for result in results]
        for rank, payload in enumerate(payloads, start=1):
            payload["rank"] = rank
        everything_failed = all(simulation_failed(result) for result in results)
        return SafeJSONResponse({"results": payloads}, status_code=502 if everything_failed else 200)

    app.add_middleware(BodyLimitMiddleware, max_body_bytes=settings.max_body_bytes)
    app.add_middleware(AccessLogMiddleware)
    return app


def serve(
    host: str = "127.0.0.1",
    port: int = 5000,
    simulator: str | None = None,
    **options: Any,
) -> None:
    """Run the scoring server until interrupted.

    ``simulator``: spec of the default simulator (None: the API's default, ``local`` when
    installed, else ``lexical``).
    ``options``: ``server_key`` (else ``SERVER_KEY``), ``allowed_simulators`` (specs a
    request may choose, list or comma-separated), ``cache`` (as in the API),
    ``max_body_bytes``, ``max_sequences``, ``max_tokens_per_sequence``,
    ``max_explanations``, ``max_explanation_chars``, ``log_level`` (default ``info``).
    """
    import uvicorn

    log_level = str(options.pop("log_level", "info")).lower()
    settings = load_settings(simulator, **options)
    if not logging.getLogger().handlers:
        logging.basicConfig(format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    # Request lines are this module's INFO records, shown even when the CLI quiets the root logger.
    logger.setLevel(log_level.upper())
    app = create_app(settings)
    logger.info(
        "serving on http://%s:%d simulator=%s secret_required=%s",
        host,
        port,
        settings.simulator,
        bool(settings.server_key),
    )
    # One process: the simulator and its cache are shared by all requests; concurrency
    # comes from the event loop (network simulators) and worker threads (in-process ones).
    uvicorn.run(app, host=host, port=port, log_level=log_level, access_log=False)
