"""The FastAPI app: routes, the scoring service, and how requests reach the simulators.

Event-loop discipline: the server's own loop only moves bytes. A body is parsed and validated in a worker
thread, and all scoring (records, simulators, metrics, rendering the answer) runs on one scoring event
loop in its own thread, which every request shares (so simulator concurrency limits and the cache hold
across requests as before). ``/health`` therefore answers while maximum-size requests are being scored.
Identical requests in flight at once are scored once (single flight): the later ones wait for the first
one's answer.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import logging
import math
import re
import threading
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine
from contextlib import asynccontextmanager
from typing import Any, TypeVar

from fastapi import FastAPI, Request
from fastapi.responses import Response
from starlette.exceptions import HTTPException
from starlette.requests import ClientDisconnect

from scoring.api import arank_explanations, ascore_explanation, resolve_cache, resolve_simulator
from scoring.errors import ScoringInputError
from scoring.metrics import sequence_fit
from scoring.records import ActivationRecord, Limits
from scoring.results import ScoreResult, SequenceResult, jsonable
from scoring.server.middleware import (
    AUTHORIZED,
    CLIENT_GONE,
    AccessLogMiddleware,
    Admission,
    RequestGuardMiddleware,
)
from scoring.server.schema import BodyError, ScoreManyRequest, ScoreRequest, ScoringOptions, parse_body
from scoring.server.settings import ServerSettings, load_settings
from scoring.simulators import Simulator

logger = logging.getLogger("scoring.server")

ACTIVATION_SCALE = "simulated_normalized_activations"
"""neuron-explainer's name for the 0..10 scale our simulated activations are on."""

Result = TypeVar("Result")
Body = TypeVar("Body", bound=ScoringOptions)


def render_json(content: Any) -> bytes:
    """JSON with NaN/inf written as null, so every answer is valid JSON."""
    return json.dumps(jsonable(content), allow_nan=False, separators=(",", ":")).encode("utf-8")


class SafeJSONResponse(Response):
    """A JSON response rendered by `render_json`."""

    media_type = "application/json"

    def render(self, content: Any) -> bytes:
        return render_json(content)


def error_response(status_code: int, message: str, headers: dict[str, str] | None = None, **extra: Any) -> Response:
    return SafeJSONResponse({"error": message, **extra}, status_code=status_code, headers=headers)


def scored_sequence(sequence: SequenceResult, hide_addresses: bool = False) -> dict[str, Any]:
    """One sequence as neuron-explainer's ScoredSequenceSimulation, plus our extra fields.

    ``hide_addresses``: upstream server addresses in its error become ``<hidden>``.
    """
    fit = sequence_fit(sequence.real, sequence.simulated) if sequence.simulated else None
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
        "rsquared_score": fit["r_squared"] if fit else None,
        "absolute_dev_explained_score": fit["absolute_dev_explained"] if fit else None,
        "index": sequence.index,
        "normalized_true_activations": sequence.real,
        "cached": sequence.cached,
        "error": redact(sequence.error) if hide_addresses and sequence.error else sequence.error,
    }


def score_payload(result: ScoreResult, include_metrics: bool, hide_addresses: bool = False) -> dict[str, Any]:
    """The /score answer for one result (``hide_addresses``: upstream addresses in errors become ``<hidden>``)."""

    def shown(error: str | None) -> str | None:
        return redact(error) if hide_addresses and error else error

    payload: dict[str, Any] = {
        "score": result.score,
        "simulations": [scored_sequence(sequence, hide_addresses) for sequence in result.sequences],
        "error": shown(result.error),
        "explanation": result.explanation,
        "simulator": result.simulator,
        "scorer": result.scorer,
        "cached": result.cached,
        "usage": result.usage.to_dict(),
        "seconds": round(result.seconds, 4),
    }
    if result.judgments:
        payload["judgments"] = [
            {**judgment.to_dict(), "error": shown(judgment.error)} for judgment in result.judgments
        ]
    if include_metrics:
        payload["metrics"] = result.metrics
        payload["sampling"] = result.sampling
        payload["normalization"] = result.normalization
    return payload


def simulation_failed(result: ScoreResult) -> bool:
    """True when the simulator failed on every sequence (not: when the score is merely undefined)."""
    return bool(result.sequences) and all(sequence.error is not None for sequence in result.sequences)


class InvalidField(Exception):
    """A request that fits the schema but not this server's limits or choices (422)."""

    def __init__(self, field_name: str, message: str) -> None:
        super().__init__(message)
        self.field_name = field_name
        self.message = message


class ScoringLoop:
    """One event loop in a worker thread on which all scoring runs."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, name="scoring-loop", daemon=True)
        self.thread.start()

    async def run(self, work: Coroutine[Any, Any, Result]) -> Result:
        """Run `work` on the scoring loop and wait for it here; cancelling the wait cancels the work."""
        future = asyncio.run_coroutine_threadsafe(work, self.loop)
        try:
            return await asyncio.wrap_future(future)
        except asyncio.CancelledError:
            future.cancel()
            raise

    def close(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(timeout=10)


_URL = re.compile(r"https?://[^\s'\"<>]+")


def redact(text: str) -> str:
    """A simulator spec or an error without server addresses (upstream URLs are not for anonymous callers)."""
    return _URL.sub("<hidden>", text)


class ScoringService:
    """State shared by every request: settings, simulators (built once), the cache, admission, flights."""

    def __init__(self, settings: ServerSettings) -> None:
        self.settings = settings
        self.started = time.time()
        self.simulators: dict[str, Simulator] = {settings.simulator: resolve_simulator(settings.simulator)}
        for spec in settings.allowed_simulators:
            self.simulators.setdefault(spec, resolve_simulator(spec))
        self.cache = resolve_cache(settings.cache)
        # scipy.stats takes a second or two of CPU to import: paid at start, not by the first request while it
        # holds the scoring loop.
        import scipy.stats  # noqa: F401
        self.limits = Limits(
            max_sequences=settings.max_sequences, max_tokens_per_sequence=settings.max_tokens_per_sequence
        )
        self.admission = Admission(
            max_requests=settings.max_concurrent_requests,
            max_bytes=settings.max_inflight_body_bytes,
            max_client_requests=settings.max_client_requests,
            max_client_bytes=settings.client_body_bytes,
        )
        self.scoring_loop: ScoringLoop | None = None
        self.flights: dict[str, asyncio.Future[Any]] = {}
        self.requests_scored = 0
        self.requests_merged = 0
        # On a keyed server every scoring request has shown the key by the time it is read; on an open one,
        # anyone may ask, and upstream addresses are theirs to see nowhere.
        self.hide_addresses = not settings.server_key

    def check_secret(self, secret: Any) -> None:
        if not self.is_authorized(secret):
            raise HTTPException(status_code=401, detail="wrong or missing secret (the field secret)")

    def is_authorized(self, secret: Any) -> bool:
        expected = self.settings.server_key
        if not expected:
            return True
        if not isinstance(secret, str):
            return False
        # surrogatepass: a lone surrogate in what a client sent is a wrong secret, not an error
        given = secret.encode("utf-8", errors="surrogatepass")
        return hmac.compare_digest(given, expected.encode("utf-8", errors="surrogatepass"))

    def simulator_for(self, spec: str | None) -> Simulator:
        if spec is None:
            return self.simulators[self.settings.simulator]
        if spec not in self.simulators:
            offered = ", ".join(sorted(redact(name) if self.hide_addresses else name for name in self.simulators))
            raise InvalidField(
                "simulator", f"simulator {spec!r} is not enabled on this server; use one of: {offered}"
            )
        return self.simulators[spec]

    def records(self, body: ScoringOptions) -> list[ActivationRecord]:
        limits = self.settings
        if len(body.activations) > limits.max_sequences:
            raise InvalidField(
                "activations",
                f"{len(body.activations)} sequences exceed this server's limit of {limits.max_sequences} "
                "(max_sequences)",
            )
        records = []
        for position, sequence in enumerate(body.activations):
            if len(sequence.tokens) > limits.max_tokens_per_sequence:
                raise InvalidField(
                    f"activations[{position}].tokens",
                    f"{len(sequence.tokens)} tokens exceed this server's limit of "
                    f"{limits.max_tokens_per_sequence} per sequence (max_tokens_per_sequence)",
                )
            records.append(ActivationRecord(tokens=sequence.tokens, activations=sequence.values))
        return records

    def explanation(self, text: str, field_name: str) -> str:
        if not text.strip():
            raise InvalidField(field_name, "the explanation is empty; send the text to score")
        if len(text) > self.settings.max_explanation_chars:
            raise InvalidField(
                field_name,
                f"the explanation has {len(text)} characters, more than this server's limit of "
                f"{self.settings.max_explanation_chars} (max_explanation_chars)",
            )
        return text

    async def run_scoring(self, key: str, work: Callable[[], Coroutine[Any, Any, Result]]) -> Result:
        """`work()` on the scoring loop within request_timeout, once for all identical requests in flight."""
        flight = self.flights.get(key)
        if flight is None:
            flight = asyncio.ensure_future(self._bounded(work))
            self.flights[key] = flight
            flight.add_done_callback(lambda _: self.flights.pop(key, None))
        else:
            self.requests_merged += 1
        # shield: one waiter giving up (a client that left) does not cancel the work the others wait for
        result: Result = await asyncio.shield(flight)
        return result

    async def _bounded(self, work: Callable[[], Coroutine[Any, Any, Result]]) -> Result:
        assert self.scoring_loop is not None, "the scoring loop starts with the app"
        timeout = self.settings.request_timeout
        try:
            return await asyncio.wait_for(self.scoring_loop.run(work()), timeout)
        except TimeoutError:
            raise HTTPException(
                status_code=504,
                detail=f"scoring took longer than {timeout:g} s (request_timeout); send fewer sequences or "
                "explanations, or ask the operator to raise request_timeout",
            ) from None

    async def score_one(self, body: ScoreRequest) -> tuple[int, bytes]:
        explanation = self.explanation(body.explanation, "explanation")
        records = self.records(body)
        simulator = self.simulator_for(body.simulator)
        result = await ascore_explanation(
            explanation, records, simulator=simulator, cache=self.cache, limits=self.limits, **body.api_options()
        )
        self.requests_scored += 1
        logger.info(
            "scored explanation_chars=%d sequences=%d score=%s cached=%s error=%s",
            len(explanation),
            len(result.sequences),
            f"{result.score:.4f}" if math.isfinite(result.score) else "null",
            result.cached,
            result.error,
        )
        payload = score_payload(result, include_metrics=body.metrics, hide_addresses=self.hide_addresses)
        return (502 if simulation_failed(result) else 200), render_json(payload)

    async def score_many(self, body: ScoreManyRequest) -> tuple[int, bytes]:
        if len(body.explanations) > self.settings.max_explanations:
            raise InvalidField(
                "explanations",
                f"{len(body.explanations)} explanations exceed this server's limit of "
                f"{self.settings.max_explanations} (max_explanations)",
            )
        explanations = [
            self.explanation(text, f"explanations[{position}]") for position, text in enumerate(body.explanations)
        ]
        records = self.records(body)
        simulator = self.simulator_for(body.simulator)
        results = await arank_explanations(
            explanations, records, simulator=simulator, cache=self.cache, limits=self.limits, **body.api_options()
        )
        self.requests_scored += 1
        payloads = [
            score_payload(result, include_metrics=body.metrics, hide_addresses=self.hide_addresses)
            for result in results
        ]
        for rank, payload in enumerate(payloads, start=1):
            payload["rank"] = rank
        everything_failed = all(simulation_failed(result) for result in results)
        return (502 if everything_failed else 200), render_json({"results": payloads})


def _parse_with_key(
    raw: bytes, content_type: str | None, model: type[Body], check_secret: Callable[[Any], None] | None
) -> tuple[Body, str]:
    body = parse_body(raw, content_type, model, check_secret)
    key = hashlib.sha256(f"{model.__name__}:{body.flight_key()}".encode()).hexdigest()
    return body, key


async def read_body(
    request: Request, model: type[Body], check_secret: Callable[[Any], None] | None
) -> tuple[Body, str]:
    """The request's body as `model` and its single-flight key, parsed off the event loop.

    ``check_secret`` sees the body's secret once the JSON is decoded (None: the header already showed the
    key, or the server has none).
    """
    raw = await request.body()
    return await asyncio.to_thread(_parse_with_key, raw, request.headers.get("content-type"), model, check_secret)


def _body_schema(model: type[ScoringOptions]) -> dict[str, Any]:
    schema = model.model_json_schema(ref_template="#/components/schemas/{model}")
    return {"requestBody": {"required": True, "content": {"application/json": {"schema": schema}}}}


def create_app(settings: ServerSettings | None = None) -> FastAPI:
    """Build the ASGI app (``serve`` runs it; tests and other servers may mount it)."""
    settings = settings or load_settings()
    service = ScoringService(settings)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        yield
        if service.scoring_loop is not None:
            service.scoring_loop.close()

    app = FastAPI(
        title="Explanation scorer",
        description="Neuronpedia-compatible scoring of neuron/latent explanations.",
        default_response_class=SafeJSONResponse,
        lifespan=lifespan,
        # Off by default: a server reachable by strangers need not describe itself to them.
        docs_url="/docs" if settings.docs else None,
        redoc_url=None,
        openapi_url="/openapi.json" if settings.docs else None,
    )
    app.state.service = service
    service.scoring_loop = ScoringLoop()

    @app.exception_handler(BodyError)
    async def _bad_body(request: Request, error: BodyError) -> Response:
        problems = [{"field": field_name, "message": message} for field_name, message in error.problems]
        first = problems[0]
        return error_response(error.status, f"{first['field']}: {first['message']}", errors=problems)

    @app.exception_handler(HTTPException)
    async def _http_error(request: Request, error: HTTPException) -> Response:
        message = str(error.detail)
        if error.status_code == 404:
            message = f"no route {request.url.path}; the routes are POST /score, POST /score/many, GET /health"
        elif error.status_code == 405:
            allowed = (error.headers or {}).get("Allow", "")
            message = f"method {request.method} is not allowed on {request.url.path}; use {allowed or 'another'}"
        return error_response(error.status_code, message, headers=dict(error.headers or {}))

    @app.exception_handler(InvalidField)
    async def _invalid_field(request: Request, error: InvalidField) -> Response:
        return error_response(
            422,
            f"{error.field_name}: {error.message}",
            errors=[{"field": error.field_name, "message": error.message}],
        )

    @app.exception_handler(ScoringInputError)
    async def _scoring_input(request: Request, error: ScoringInputError) -> Response:
        return error_response(422, f"body: {error}", errors=[{"field": "body", "message": str(error)}])

    @app.exception_handler(ClientDisconnect)
    async def _client_gone(request: Request, error: ClientDisconnect) -> Response:
        # Nobody is left to read an answer; the access log line says what happened (status 499).
        return Response(status_code=CLIENT_GONE)

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, error: Exception) -> Response:
        # Our bug, not the client's: the traceback goes to the log, the client gets JSON.
        logger.error("error while handling %s %s", request.method, request.url.path, exc_info=error)
        return error_response(500, f"internal error ({type(error).__name__}); see the server log")

    @app.get("/health")
    async def health(request: Request) -> dict[str, Any]:
        """Liveness and what this server scores with (server addresses only with ``Authorization: Bearer <key>``)."""
        bearer = request.headers.get("authorization", "").removeprefix("Bearer ").strip()
        trusted = bool(settings.server_key) and service.is_authorized(bearer)
        show: Callable[[str], str] = (lambda spec: spec) if trusted else redact
        admission = service.admission
        return {
            "status": "ok",
            "simulator": show(settings.simulator),
            "simulators": sorted(show(spec) for spec in service.simulators),
            "secret_required": bool(settings.server_key),
            "cache": service.cache is not None,
            "requests_scored": service.requests_scored,
            "requests_merged": service.requests_merged,
            "in_flight": {
                "requests": admission.requests,
                "body_bytes": admission.bytes,
                "clients": len(admission.clients),
                "refused": admission.refused,
            },
            "uptime_seconds": round(time.time() - service.started, 1),
            "limits": settings.limits(),
        }

    def secret_check(request: Request) -> Callable[[Any], None] | None:
        trusted = not settings.server_key or request.scope.get(AUTHORIZED, False)
        return None if trusted else service.check_secret

    async def scored(status_and_body: Awaitable[tuple[int, bytes]]) -> Response:
        status, content = await status_and_body
        return Response(content=content, status_code=status, media_type="application/json")

    @app.post("/score", openapi_extra=_body_schema(ScoreRequest))
    async def score(request: Request) -> Response:
        """Score one explanation (the Neuronpedia scorer route)."""
        body, key = await read_body(request, ScoreRequest, secret_check(request))
        return await scored(service.run_scoring(key, lambda: service.score_one(body)))

    @app.post("/score/many", openapi_extra=_body_schema(ScoreManyRequest))
    async def score_many(request: Request) -> Response:
        """Score several explanations of the same activations; results best first."""
        body, key = await read_body(request, ScoreManyRequest, secret_check(request))
        return await scored(service.run_scoring(key, lambda: service.score_many(body)))

    # The last added is the outermost: the log sees every answer, and the guard runs before any body is read.
    app.add_middleware(
        RequestGuardMiddleware,
        admission=service.admission,
        max_body_bytes=settings.max_body_bytes,
        body_timeout=settings.body_timeout,
        retry_after_seconds=settings.retry_after_seconds,
        server_key_matches=service.is_authorized if settings.server_key else None,
    )
    app.add_middleware(AccessLogMiddleware)
    return app
