"""ASGI middleware of the scoring server: access log, request framing, admission, body size and deadline.

Everything here works on the raw ASGI messages (the documented interface between uvicorn and the app), so it
holds for every route and answers before FastAPI reads anything. Admission counts what a request really
costs: a slot from its headers on, and the bytes of its body as they arrive (never a declared
Content-Length, which costs a client nothing to claim). Each client (IP address, as uvicorn reports it) has
a share of both, so a few connections from one client cannot shut the others out; a request that shows the
server's key in its ``Authorization`` header is trusted and held only to the server-wide bounds.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Awaitable, Callable, MutableMapping
from dataclasses import dataclass, field
from typing import Any

from starlette.exceptions import HTTPException

logger = logging.getLogger("scoring.server")

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

SCORING_PATHS = ("/score", "/score/many")
AUTHORIZED = "scoring.authorized"
"""Scope key set to True when the request's Authorization header carries the server's key."""
CLIENT_GONE = 499
"""The status logged for a request whose client left before its body was complete (nginx's convention)."""


async def send_error(
    send: Send,
    status: int,
    message: str,
    headers: dict[str, str] | None = None,
    before_closing: Callable[[], Awaitable[None]] | None = None,
) -> None:
    """A JSON ``{"error": ...}`` answer straight on the ASGI channel.

    ``before_closing`` runs once the whole answer is out (its Content-Length tells the client it is complete)
    but before the response ends: the time to read the rest of a refused body, so that closing the
    connection does not reset it under a client still uploading.
    """
    body = json.dumps({"error": message}).encode("utf-8")
    raw_headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    raw_headers += [(name.lower().encode(), value.encode()) for name, value in (headers or {}).items()]
    await send({"type": "http.response.start", "status": status, "headers": raw_headers})
    if before_closing is None:
        await send({"type": "http.response.body", "body": body})
        return
    await send({"type": "http.response.body", "body": body, "more_body": True})
    await before_closing()
    await send({"type": "http.response.body", "body": b""})


def header(scope: Scope, name: bytes) -> bytes | None:
    """The first value of header `name` (lower case), or None."""
    for key, value in scope.get("headers", []):
        if key == name:
            return bytes(value)
    return None


def declared_length(scope: Scope) -> int | None:
    value = header(scope, b"content-length")
    if value is None:
        return None
    try:
        return max(0, int(value))
    except ValueError:
        return None


def client_of(scope: Scope) -> str:
    """Who sent the request, for fair shares: the client's IP address (uvicorn applies proxy headers)."""
    client = scope.get("client")
    return str(client[0]) if client else "-"


async def discard_body(receive: Receive, max_bytes: int, seconds: float) -> None:
    """Read a request's body without keeping it, until it ends, passes `max_bytes` or `seconds` pass."""
    received = 0
    try:
        async with asyncio.timeout(max(seconds, 0.001)):
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


class Busy(HTTPException):
    """The body would pass a bound on bytes in flight (the server's, or this client's share)."""


@dataclass
class ClientUse:
    """What one client has in flight."""

    requests: int = 0
    bytes: int = 0


@dataclass
class Admission:
    """Scoring requests and body bytes in flight, server-wide and per client; past a bound, a request is refused.

    A request takes a slot from its headers on and adds its body's bytes as they arrive; both are given back
    when it ends. A trusted request (the key in its header) is held only to the server-wide bounds.
    """

    max_requests: int
    max_bytes: int
    max_client_requests: int
    max_client_bytes: int
    requests: int = 0
    bytes: int = 0
    refused: int = 0
    clients: dict[str, ClientUse] = field(default_factory=dict)

    def admit(self, client: str, trusted: bool) -> Ticket | str:
        """A ticket for a new request, or why it is refused."""
        use = self.clients.get(client, ClientUse())
        if self.requests >= self.max_requests:
            self.refused += 1
            return f"{self.requests} scoring requests are in flight, the limit (max_concurrent_requests)"
        if not trusted and use.requests >= self.max_client_requests:
            self.refused += 1
            return (
                f"this client has {use.requests} scoring requests in flight, its share (max_client_requests); "
                "send fewer at once"
            )
        self.clients[client] = use
        use.requests += 1
        self.requests += 1
        return Ticket(self, client, trusted)

    def take(self, ticket: Ticket, size: int) -> str | None:
        """Count `size` more received bytes for `ticket`'s request; the reason when that passes a bound."""
        use = self.clients[ticket.client]
        if self.bytes + size > self.max_bytes:
            self.refused += 1
            return (
                f"{self.bytes} bytes of request bodies are in flight and this one would pass the limit of "
                f"{self.max_bytes} (max_inflight_body_bytes)"
            )
        if not ticket.trusted and use.bytes + size > self.max_client_bytes:
            self.refused += 1
            return (
                f"this client has {use.bytes} bytes of request bodies in flight and this one would pass its share "
                f"of {self.max_client_bytes} (max_client_body_bytes)"
            )
        use.bytes += size
        self.bytes += size
        ticket.bytes += size
        return None

    def drop_bytes(self, ticket: Ticket) -> None:
        """Give back `ticket`'s body bytes: its body is refused, or its answer has started."""
        self.clients[ticket.client].bytes -= ticket.bytes
        self.bytes -= ticket.bytes
        ticket.bytes = 0

    def release(self, ticket: Ticket) -> None:
        """The request has ended: give back its bytes and its slot."""
        self.drop_bytes(ticket)
        use = self.clients[ticket.client]
        use.requests -= 1
        self.requests -= 1
        if use.requests == 0:
            del self.clients[ticket.client]


@dataclass
class Ticket:
    """One admitted request's hold on the admission counts."""

    admission: Admission
    client: str
    trusted: bool
    bytes: int = 0


class RequestGuardMiddleware:
    """Framing, secret-in-header, admission, body size and body deadline, for every request.

    - 400 for a body framed twice (Content-Length and Transfer-Encoding both), which proxies may read
      differently (request smuggling); 413 for a declared Content-Length over ``max_body_bytes``.
    - Scoring routes: a wrong key in an ``Authorization: Bearer`` header is 401 before any body byte is read;
      past a slot bound, 503 with Retry-After; past a byte bound while the body arrives, 503 as well.
    - Every route: 413 once more than ``max_body_bytes`` arrive, 408 when the body is not complete
      ``body_timeout`` seconds after the headers.
    - An answer sent before the body is complete (a refusal) first reads the rest into nothing, within the
      same bounds, so a client still uploading sees it instead of a reset connection.
    """

    def __init__(
        self,
        app: ASGIApp,
        *,
        admission: Admission,
        max_body_bytes: int,
        body_timeout: float,
        retry_after_seconds: int,
        server_key_matches: Callable[[str], bool] | None,
    ) -> None:
        self.app = app
        self.admission = admission
        self.max_body_bytes = max_body_bytes
        self.body_timeout = body_timeout
        self.retry_after_seconds = retry_after_seconds
        self.server_key_matches = server_key_matches
        """None on an open server (no key): no request is trusted, every client gets its share."""

    def busy(self, reason: str) -> tuple[str, dict[str, str]]:
        headers = {"retry-after": str(self.retry_after_seconds), "connection": "close"}
        return f"the server is busy: {reason}; retry after {self.retry_after_seconds} s", headers

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = asyncio.get_running_loop().time()
        if header(scope, b"transfer-encoding") is not None and header(scope, b"content-length") is not None:
            await send_error(
                send,
                400,
                "the request has both Content-Length and Transfer-Encoding; send one of them",
                {"connection": "close"},
            )
            return
        declared = declared_length(scope)
        too_large = f"request body too large: the limit is {self.max_body_bytes} bytes (max_body_bytes)"
        if declared is not None and declared > self.max_body_bytes:
            await send_error(send, 413, too_large, {"connection": "close"})
            return
        ticket: Ticket | None = None
        if scope.get("method") == "POST" and scope.get("path") in SCORING_PATHS:
            trusted = False
            bearer = header(scope, b"authorization")
            if bearer is not None and self.server_key_matches is not None:
                given = bearer.decode("latin-1").removeprefix("Bearer ").strip()
                if not self.server_key_matches(given):
                    await send_error(
                        send,
                        401,
                        "wrong secret in the Authorization header",
                        {"connection": "close"},
                        lambda: discard_body(receive, self.max_body_bytes, self.body_timeout),
                    )
                    return
                trusted = True
                scope[AUTHORIZED] = True
            admitted = self.admission.admit(client_of(scope), trusted)
            if isinstance(admitted, str):
                message, headers = self.busy(admitted)
                await send_error(
                    send, 503, message, headers, lambda: discard_body(receive, self.max_body_bytes, self.body_timeout)
                )
                return
            ticket = admitted
        received = 0
        # HTTP/1.1: without Content-Length or Transfer-Encoding a request has no body.
        complete = not declared and header(scope, b"transfer-encoding") is None
        stopped = False  # timed out or disconnected: nothing more will come
        deadline = started + self.body_timeout

        async def guarded_receive() -> Message:
            nonlocal received, complete, stopped
            if complete or stopped:
                return await receive()  # after the body: only the disconnect is left to wait for
            remaining = deadline - asyncio.get_running_loop().time()
            try:
                incoming = await asyncio.wait_for(receive(), timeout=max(remaining, 0.001))
            except TimeoutError:
                stopped = True
                raise BodyTimeout(
                    status_code=408,
                    detail=f"the request body did not arrive within {self.body_timeout:g} s (body_timeout); "
                    f"got {received} of {declared if declared is not None else 'an unknown number of'} bytes",
                    headers={"connection": "close"},
                ) from None
            if incoming["type"] != "http.request":
                stopped = True
                return incoming
            size = len(incoming.get("body", b""))
            received += size
            if received > self.max_body_bytes:
                raise BodyTooLarge(status_code=413, detail=too_large, headers={"connection": "close"})
            if ticket is not None:
                refusal = self.admission.take(ticket, size)
                if refusal is not None:
                    # What arrived is dropped now, so others may use it while the rest is read into nothing.
                    self.admission.drop_bytes(ticket)
                    message, headers = self.busy(refusal)
                    raise Busy(status_code=503, detail=message, headers=headers)
            complete = not incoming.get("more_body", False)
            return incoming

        async def guarded_send(message: Message) -> None:
            if message["type"] == "http.response.start" and ticket is not None:
                self.admission.drop_bytes(ticket)  # the body has been used, or is refused
            if (
                message["type"] == "http.response.body"
                and not message.get("more_body", False)
                and not complete
                and not stopped
            ):
                # Answered before the body was complete (a refusal): the answer goes out now, and the rest of
                # the body is read into nothing before the response ends, so the client is not reset.
                await send({**message, "more_body": True})
                remaining = deadline - asyncio.get_running_loop().time()
                await discard_body(receive, self.max_body_bytes, remaining)
                await send({"type": "http.response.body", "body": b""})
                return
            await send(message)

        try:
            await self.app(scope, guarded_receive, guarded_send)
        finally:
            if ticket is not None:
                self.admission.release(ticket)


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
                "%s %s %d %.1fms client=%s%s",
                scope.get("method", "?"),
                scope.get("path", "?"),
                status,
                (time.perf_counter() - started) * 1000,
                f"{client[0]}:{client[1]}" if client else "-",
                " (the client disconnected before sending its whole body)" if status == CLIENT_GONE else "",
            )
