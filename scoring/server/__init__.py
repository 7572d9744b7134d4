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
- 400: the body is empty, not UTF-8, not JSON, nested too deeply, holds a key twice in one
  object, or is framed twice (Content-Length and Transfer-Encoding). 401: wrong or missing
  secret (a key in an ``Authorization: Bearer`` header is checked before the body is read,
  the body's ``secret`` as soon as the JSON is decoded, before the schema). 404/405: no such
  route. 408: the body did not arrive within ``body_timeout``.
- 413: the body is larger than ``max_body_bytes``. 415: the body is not declared as UTF-8
  JSON. 422: the body does not match the schema or a limit; ``error`` names the field and
  ``errors`` lists every problem.
- 502: the simulator failed on every sequence (its error is in ``error``); nothing could
  be scored, and the fault is upstream of this server, not in the request.
- 503 with ``Retry-After``: ``max_concurrent_requests`` scoring requests, or
  ``max_inflight_body_bytes`` of bodies (counted as they arrive), are already in flight,
  or this client's share of them (``max_client_requests``, ``max_client_body_bytes``).
  504: scoring took longer than ``request_timeout``; the scoring stops too.
- A client that leaves before its body is complete is logged once, as 499.

The secret is ``SERVER_KEY`` from the environment or a ``.env`` file, compared in
constant time; an empty or unset key accepts any request, which the server allows only on
a loopback address unless ``allow_open`` (``--allow-open``) says otherwise, and then warns
about at start. Upstream server addresses are shown only to callers with the key
(``/health``: a caller sending ``Authorization: Bearer <SERVER_KEY>``); an open server
hides them from everyone. ``/docs`` and ``/openapi.json`` are off unless ``docs``
(``SCORING_DOCS``) is set. The threat model is in docs/server.md. Limits and deadlines come from ``serve`` options,
else the environment (``SCORING_`` + the setting's name, e.g. ``SCORING_MAX_BODY_BYTES``),
else the defaults of `ServerSettings` (see docs/server.md). A request may pick a
simulator other than the server's only when it is listed in ``allowed_simulators`` /
``SCORING_ALLOWED_SIMULATORS`` (comma-separated specs), so a client cannot make the server
spend on a paid model it was not set up for.
Unknown request fields are ignored, as the original scorer ignored them.

Every request is logged (method, path, status, milliseconds, client); bodies and
secrets never are.

The package is split by concern: `settings` (pydantic-settings), `schema` (request
models and body reading), `middleware` (access log, admission, body size and deadline),
`connections` (header deadline), `app` (routes and the scoring service).
"""

from __future__ import annotations

import logging
from typing import Any

from scoring.errors import ScoringInputError
from scoring.process_settings import configure_process
from scoring.server.app import create_app, score_payload, scored_sequence, simulation_failed
from scoring.server.connections import header_timeout_protocol
from scoring.server.schema import ScoreManyRequest, ScoreRequest, ScoringOptions
from scoring.server.settings import LOOPBACK_HOSTS, ServerSettings, load_settings

__all__ = [
    "ScoreManyRequest",
    "ScoreRequest",
    "ScoringOptions",
    "ServerSettings",
    "create_app",
    "load_settings",
    "score_payload",
    "scored_sequence",
    "serve",
    "simulation_failed",
]

logger = logging.getLogger("scoring.server")


def check_exposure(host: str, settings: ServerSettings) -> None:
    """Refuse an open server (no key) on a non-loopback address unless asked for; warn about any open one."""
    if settings.server_key:
        return
    if host not in LOOPBACK_HOSTS and not settings.allow_open:
        raise ScoringInputError(
            f"refusing to listen on {host} without a SERVER_KEY: anyone who can reach it could score, and "
            "spend on the simulators. Set SERVER_KEY (environment or .env), or pass --allow-open "
            "(SCORING_ALLOW_OPEN=1) to run an open server on purpose"
        )
    logger.warning(
        "NO SERVER_KEY IS SET: this server accepts every request%s. Set SERVER_KEY to require a secret",
        "" if host in LOOPBACK_HOSTS else f" from anyone who can reach {host}",
    )


def serve(
    host: str = "127.0.0.1",
    port: int = 5000,
    simulator: str | None = None,
    **options: Any,
) -> None:
    """Run the scoring server until interrupted.

    ``simulator``: spec of the simulator of requests that name none (None: ``$SCORING_SIMULATOR``, else
    `scoring.api.default_simulator_spec`: the user's settings file, else the built-in choice for this
    hardware).
    ``options``: any field of `ServerSettings` (``server_key``, ``allowed_simulators``,
    ``cache``, ``allow_open``, the limits and deadlines), and ``log_level`` (default ``info``).
    """
    import uvicorn

    configure_process()
    if isinstance(port, bool) or not isinstance(port, int) or not 1 <= port <= 65535:
        raise ScoringInputError(f"port must be a whole number from 1 to 65535, got {port!r}")
    log_level = str(options.pop("log_level", "info")).lower()
    settings = load_settings(simulator, **options)
    if not logging.getLogger().handlers:
        logging.basicConfig(format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    # Request lines are this package's INFO records, shown even when the CLI quiets the root logger.
    logger.setLevel(log_level.upper())
    check_exposure(host, settings)
    app = create_app(settings)
    logger.info(
        "serving on http://%s:%d simulator=%s secret_required=%s",
        host,
        port,
        settings.simulator,
        bool(settings.server_key),
    )
    # One process: the simulator and its cache are shared by all requests; scoring runs on one scoring loop
    # in a worker thread (see scoring.server.app), and this loop only moves bytes.
    uvicorn.run(
        app,
        host=host,
        port=port,
        log_level=log_level,
        access_log=False,
        http=header_timeout_protocol(settings.header_timeout),
        timeout_keep_alive=5,
    )
