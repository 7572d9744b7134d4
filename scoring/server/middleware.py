"""ASGI middleware of the scoring server: access log, admission control, body size and body deadline.

Each works on the raw ASGI messages, so it holds for every route and answers before FastAPI reads anything.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from starlette.exceptions import HTTPException

logger = logging.getLogger("scoring.server")

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

SCORING_PATHS = ("/score", "/score/many")


async def send_error(send: Send, status: int, message: str, headers: dict[str, str] | None = None) -> None:
    """A JSON ``{"error": ...}`` answer straight on the ASGI channel."""
    body = json.dumps({"error": message}).encode("utf-8")
    raw_headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    raw_headers += [(name.lower().encode(), value.encode()) for name, value in (headers or {}).items()]
    await send({"type": "http.response.start", "status": status, "headers": raw_headers})
    await send({"type": "http.response.body", "body": body})


def declared_length(scope: Scope) -> int | None:
    for name, value in scope.get("headers", []):
        if name == b"content-length":
            try:
                return max(0, int(value))
            except ValueError:
                return None
    return None


async def discard_body(receive: Receive, max_bytes: int, seconds: float) -> None:
    """Read a request's body without keeping it, until it ends, passes `max_bytes` or `seconds` pass."""
    received = 0
    try:
        async with asyncio.timeout(seconds):
            while received <= max_bytes:
                message = await receive()
                if message["type"] != "http.request":
                    return
                received += len(message.get("body", b""))
                if not message.get("more_body", False):
                    return
    except TimeoutError:
        return


class BodyTooLarge(HTTPException):
    """Raised from inside body reading; FastAPI re-raises HTTPExceptions untouched."""


class BodyTimeout(HTTPException):
    """The client did not send its whole body in time."""


class BodyGuardMiddleware:
    """413 for a body over ``max_body_bytes`` (by header, or by counting what streams in); 408 when the
    body does not arrive within ``body_timeout`` seconds of the headers (a slow or stalled client)."""

    def __init__(self, app: ASGIApp, max_body_bytes: int, body_timeout: float) -> None:
        self.app = app
        self.max_body_bytes = max_body_bytes
        self.body_timeout = body_timeout

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        too_large = f"request body too large: the limit is {self.max_body_bytes} bytes (max_body_bytes)"
        declared = declared_length(scope)
        if declared is not None and declared > self.max_body_bytes:
            await send_error(send, 413, too_large, {"connection": "close"})
            return
        deadline = asyncio.get_running_loop().time() + self.body_timeout
        received = 0
        complete = False

        async def guarded_receive() -> Message:
            nonlocal received, complete
            if complete:
                return await receive()  # after the body: only the disconnect is left to wait for
            remaining = deadline - asyncio.get_running_loop().time()
            try:
                incoming = await asyncio.wait_for(receive(), timeout=max(remaining, 0.001))
            except TimeoutError:
                raise BodyTimeout(
                    status_code=408,
                    detail=f"the request body did not arrive within {self.body_timeout:g} s (body_timeout); "
                    f"got {received} of {declared if declared is not None else 'an unknown number of'} bytes",
                    headers={"connection": "close"},
                ) from None
            if incoming["type"] == "http.request":
                received += len(incoming.get("body", b""))
                if received > self.max_body_bytes:
                    raise BodyTooLarge(status_code=413, detail=too_large, headers={"connection": "close"})
                complete = not incoming.get("more_body", False)
            return incoming

        await self.app(scope, guarded_receive, send)


class Admission:
    """Counts the scoring requests and body bytes admitted; beyond either bound, a request is refused."""

    def __init__(self, max_requests: int, max_bytes: int, max_body_bytes: int) -> None:
        self.max_requests = max_requests
        self.max_bytes = max_bytes
        self.max_body_bytes = max_body_bytes
        self.requests = 0
        self.bytes = 0
        self.refused = 0

    def admit(self, scope: Scope) -> tuple[int, str | None]:
        """(bytes reserved, None) when admitted, else (0, why not)."""
        # A body of unknown length (chunked) may be as large as the limit allows.
        size = declared_length(scope)
        reserve = self.max_body_bytes if size is None else size
        if self.requests >= self.max_requests:
            self.refused += 1
            return 0, f"{self.requests} scoring requests are in flight, the limit (max_concurrent_requests)"
        if self.bytes + reserve > self.max_bytes:
            self.refused += 1
            return 0, (
                f"{self.bytes} bytes of request bodies are in flight and this one would pass the limit of "
                f"{self.max_bytes} (max_inflight_body_bytes)"
            )
        self.requests += 1
        self.bytes += reserve
        return reserve, None

    def release(self, reserved: int) -> None:
        self.requests -= 1
        self.bytes -= reserved


class AdmissionMiddleware:
    """Bounds the scoring work in flight; past the bound, 503 with Retry-After before reading the body."""

    def __init__(self, app: ASGIApp, admission: Admission, retry_after_seconds: int, body_timeout: float) -> None:
        self.app = app
        self.admission = admission
        self.retry_after_seconds = retry_after_seconds
        self.body_timeout = body_timeout

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope.get("method") != "POST" or scope.get("path") not in SCORING_PATHS:
            await self.app(scope, receive, send)
            return
        reserved, refusal = self.admission.admit(scope)
        if refusal is not None:
            # Read the body into nothing first: closing on unread bytes resets the connection, and a client
            # still uploading would then never see the 503. Bounded by the body limit and the body deadline.
            await discard_body(receive, self.admission.max_body_bytes, self.body_timeout)
            await send_error(
                send,
                503,
                f"the server is busy: {refusal}; retry after {self.retry_after_seconds} s",
                {"retry-after": str(self.retry_after_seconds), "connection": "close"},
            )
            return
        try:
            await self.app(scope, receive, send)
        finally:
            self.admission.release(reserved)


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
