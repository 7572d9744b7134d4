"""Talking to an OpenAI-compatible server: what it accepts, and what counts as an answer.

A `Negotiator` sends the backend's requests. What a server rejects by name
(``temperature``, ``seed``, ``max_tokens``, a ``response_format`` form) is dropped or
stepped down once and remembered. A 200 that is not a completion (an HTML error page
from a proxy, broken or empty JSON, echoed logprobs cut short) is a transient fault: it
is retried with backoff like a 5xx, and then fails with a reason a person can act on.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Awaitable, Callable
from functools import partial
from typing import Any

import openai

from scoring.simulators.base import Usage
from scoring.simulators.openai_config import OpenAIBackendConfig

logger = logging.getLogger(__name__)


class Unsupported(Exception):
    """The server cannot serve a mode (so `auto` moves on to the next)."""


class BadReply(Exception):
    """The server answered, but not with a usable completion, on every attempt."""


RETRY_BASE_SECONDS = 0.5
"""First wait before retrying a reply that was not a completion; doubled on each retry, at most 8 s."""


# Parameters a server may reject by name; the chat call drops them (and remembers) rather than fail.
_DROPPABLE = {"temperature", "seed", "reasoning_effort"}

RESPONSE_FORMATS = ("json_schema", "json_object+schema", "json_object", "none")
"""Ways to ask for the reply's shape, tried in this order until the server accepts one: OpenAI's
structured outputs (also vLLM, Ollama), the schema inside json_object (llama.cpp-python), plain JSON
mode, nothing."""


def response_format(kind: str, schema: dict[str, Any]) -> dict[str, Any] | None:
    if kind == "json_schema":
        return {"type": "json_schema", "json_schema": {"name": "activations", "schema": schema}}
    if kind == "json_object+schema":
        return {"type": "json_object", "schema": schema}
    if kind == "json_object":
        return {"type": "json_object"}
    return None


def _mentions_response_format(exc: openai.APIStatusError) -> bool:
    return "response_format" in f"{exc.message} {exc.body}"


def _rejected_parameter(exc: openai.APIStatusError) -> str | None:
    body = exc.body if isinstance(exc.body, dict) else {}
    error = body.get("error", body) if isinstance(body.get("error", body), dict) else body
    param = error.get("param") if isinstance(error, dict) else None
    return param if isinstance(param, str) else None


def count_usage(usage: Usage, response: Any) -> None:
    usage.requests += 1
    counted = getattr(response, "usage", None)
    if counted is not None:
        usage.prompt_tokens += counted.prompt_tokens or 0
        usage.completion_tokens += counted.completion_tokens or 0


def describe_body(body: Any) -> str:
    """What a server sent instead of a completion, in words."""
    if not isinstance(body, str | bytes):
        return f"a {type(body).__name__} instead of a completion"
    text = body.decode("utf-8", errors="replace") if isinstance(body, bytes) else body
    if not text.strip():
        return "an empty body"
    if text.lstrip()[:1] == "<":
        return f"an HTML page ({' '.join(text.split())[:80]!r})"
    return f"text that is not a completion ({' '.join(text.split())[:80]!r})"


def describe_error(exc: openai.APIError, where: str, config: OpenAIBackendConfig) -> str:
    """An SDK error as a reason a person can act on."""
    if isinstance(exc, openai.APITimeoutError):
        return f"request to {where} timed out after {config.timeout:g}s ({config.retries} retries)"
    if isinstance(exc, openai.APIConnectionError):
        return f"could not reach {where}: {exc}"
    if isinstance(exc, openai.APIStatusError):
        retried = (
            f" after {config.retries} retries"
            if exc.status_code in (408, 409, 429) or exc.status_code >= 500
            else ""
        )
        return f"{where} answered HTTP {exc.status_code}{retried}: {exc.message}"
    return f"{where}: {exc}"


class Negotiator:
    """Sends one backend's requests to one server, learning once what the server accepts."""

    def __init__(self, model: str, config: OpenAIBackendConfig) -> None:
        self.model = model
        self.config = config
        self.where = config.base_url or "the OpenAI API"
        self.dropped: set[str] = set()
        self.token_limit_name = "max_tokens"
        self.format_level = 0

    @property
    def response_format(self) -> str:
        """The form of ``response_format`` this server accepts (one of `RESPONSE_FORMATS`)."""
        return RESPONSE_FORMATS[self.format_level]

    async def send(
        self, create: Callable[[], Awaitable[Any]], usage: Usage, read: Callable[[Any], Any] | None = None
    ) -> Any:
        """``await create()`` until it gives a completion with choices (and `read`, when given, reads it
        without ValueError); the completion, or what `read` made of it. BadReply after the retries."""
        problem = "no reply"
        for attempt in range(self.config.retries + 1):
            if attempt:
                await asyncio.sleep(min(8.0, RETRY_BASE_SECONDS * 2 ** (attempt - 1)))
            try:
                response = await create()
            except (json.JSONDecodeError, openai.APIResponseValidationError) as exc:
                problem = f"a body that is not valid JSON ({exc})"
            else:
                if isinstance(response, str | bytes) or not hasattr(response, "choices"):
                    problem = describe_body(response)
                elif not response.choices:
                    count_usage(usage, response)
                    problem = "a completion without choices"
                else:
                    count_usage(usage, response)
                    if read is None:
                        return response
                    try:
                        return read(response)
                    except ValueError as exc:
                        problem = str(exc)
            logger.info("%s answered 200 with %s (attempt %d)", self.where, problem, attempt + 1)
        raise BadReply(
            f"{self.where} answered 200 with {problem} on {self.config.retries + 1} attempts; check that the "
            "base URL is the server's OpenAI API (it usually ends in /v1) and that nothing between rewrites replies"
        )

    async def complete(
        self, client: openai.AsyncOpenAI, params: dict[str, Any], usage: Usage, read: Callable[[Any], Any]
    ) -> Any:
        """One legacy completions request (prompt logprobs), read by `read` (see `send`)."""
        return await self.send(lambda: client.completions.create(**params), usage, read)

    async def chat(
        self, client: openai.AsyncOpenAI, params: dict[str, Any], schema: dict[str, Any] | None, usage: Usage
    ) -> Any:
        """One chat request; what the server rejects by name is dropped or stepped down, and remembered.

        With a `schema` the reply's shape is asked for in the first form the server accepts; without, it is
        free text (no response_format is sent): judge questions and explanations.
        """
        for _ in range(len(_DROPPABLE) + len(RESPONSE_FORMATS) + 2):
            request = {key: value for key, value in params.items() if key not in self.dropped}
            level = self.format_level
            shape = response_format(RESPONSE_FORMATS[level], schema) if schema is not None else None
            if shape is not None:
                request["response_format"] = shape
            if self.token_limit_name != "max_tokens" and "max_tokens" in request:
                # Newer OpenAI models count reasoning tokens in this budget: leave room for them.
                request[self.token_limit_name] = request.pop("max_tokens") + 4096
            try:
                return await self.send(partial(client.chat.completions.create, **request), usage)
            except openai.APIStatusError as exc:
                if exc.status_code not in (400, 422, 500):
                    raise
                rejected = _rejected_parameter(exc)
                # llama.cpp-python answers a request it cannot validate with 500, so 500 counts here too
                if shape is not None and (rejected == "response_format" or _mentions_response_format(exc)):
                    # concurrent requests may all be refused: step down once per level, not once per request
                    self.format_level = max(self.format_level, level + 1)
                    logger.info("%s rejects that response_format; trying %s", self.model, self.response_format)
                    continue
                if exc.status_code == 500:
                    raise
                if rejected in _DROPPABLE and rejected in request:
                    # requests sent at once are all refused: each is sent again without it, the drop logged once
                    if rejected not in self.dropped:
                        logger.info("%s rejects %r; sending requests without it", self.model, rejected)
                    self.dropped.add(rejected)
                    continue
                if rejected == "max_tokens" and self.token_limit_name == "max_tokens":
                    self.token_limit_name = "max_completion_tokens"
                    continue
                if rejected in ("logprobs", "top_logprobs"):
                    raise Unsupported(f"HTTP {exc.status_code}: {exc.message}") from exc
                raise
        raise Unsupported("the server rejected every form of the chat request")
