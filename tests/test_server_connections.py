"""The header deadline's contract with uvicorn (issue 27, item 6).

uvicorn has no setting for a deadline on a request's headers (its
``--timeout-request-start`` is still an open request, encode/uvicorn#157):
``timeout_keep_alive`` waits only between requests and stops at the first
byte, ``h11_max_incomplete_event_size`` bounds size, not time, and ASGI
middleware hears of a request only once its headers are complete. So
`scoring.server.connections` subclasses uvicorn's `H11Protocol`, and uvicorn
is capped below its next release (requirements.txt, pyproject.toml; checked on
0.55.0): a release is taken once these tests pass on it.
These tests drive the protocol in-process with a recording transport: they
fail, with the attribute's name, when an uvicorn release changes what the
subclass relies on (``conn``, ``transport``, ``loop``, ``logger``,
``on_response_complete``). The real-server test is
`tests/test_server_hostile.py::test_slowloris_hundreds_of_half_sent_requests_do_not_stop_the_server`.
"""

from __future__ import annotations

import asyncio
from typing import Any

import h11
import pytest
import uvicorn
from uvicorn.protocols.http.h11_impl import H11Protocol
from uvicorn.server import ServerState

from scoring.server.connections import header_timeout_protocol

DEADLINE = 0.2


class RecordingTransport(asyncio.Transport):
    """What the protocol writes, and whether it closed the connection."""

    def __init__(self) -> None:
        super().__init__()
        self.written = b""
        self.closed = False

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return {"sockname": ("127.0.0.1", 5000), "peername": ("127.0.0.1", 40000)}.get(name, default)

    def write(self, data: bytes | bytearray | memoryview) -> None:
        self.written += bytes(data)

    def close(self) -> None:
        self.closed = True

    def is_closing(self) -> bool:
        return self.closed

    def pause_reading(self) -> None:
        pass

    def resume_reading(self) -> None:
        pass


async def _hello(scope: dict[str, Any], receive: Any, send: Any) -> None:
    await send({"type": "http.response.start", "status": 200, "headers": [(b"content-length", b"2")]})
    await send({"type": "http.response.body", "body": b"ok"})


def _connection() -> tuple[Any, RecordingTransport]:
    config = uvicorn.Config(_hello, lifespan="off", log_level="warning")
    config.load()
    protocol = header_timeout_protocol(DEADLINE)(config, ServerState(), {}, _loop=asyncio.get_running_loop())
    transport = RecordingTransport()
    protocol.connection_made(transport)
    return protocol, transport


def test_uvicorn_h11_protocol_has_what_the_subclass_uses() -> None:
    assert issubclass(header_timeout_protocol(DEADLINE), H11Protocol)

    async def check() -> None:
        protocol, transport = _connection()
        assert isinstance(protocol.conn, h11.Connection), "H11Protocol.conn is no longer h11's Connection"
        assert protocol.conn.their_state is h11.IDLE
        assert protocol.transport is transport, "H11Protocol.transport is not the connection's transport"
        assert protocol.loop is asyncio.get_running_loop(), "H11Protocol.loop is not the event loop"
        assert hasattr(protocol.logger, "info"), "H11Protocol.logger is gone"
        assert callable(getattr(H11Protocol, "on_response_complete", None)), "on_response_complete is gone"
        protocol.connection_lost(None)

    asyncio.run(check())


@pytest.mark.parametrize("sent", [b"", b"POST /score HTTP/1.1\r\nHost: x\r\nContent-Le"], ids=["nothing", "half"])
def test_a_connection_without_complete_headers_is_closed_at_the_deadline(sent: bytes) -> None:
    async def check() -> tuple[bool, bool]:
        protocol, transport = _connection()
        if sent:
            protocol.data_received(sent)
        await asyncio.sleep(DEADLINE / 2)
        if sent:
            protocol.data_received(b"n")  # a trickle does not extend the deadline
        early = transport.closed
        await asyncio.sleep(DEADLINE)
        late = transport.closed
        protocol.connection_lost(None)
        return early, late

    assert asyncio.run(check()) == (False, True)


def test_a_complete_request_is_answered_and_its_connection_kept_past_the_deadline() -> None:
    async def check() -> tuple[bytes, bool, Any]:
        protocol, transport = _connection()
        protocol.data_received(b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n")
        for _ in range(50):  # the app runs as a task of this loop
            if transport.written.endswith(b"ok"):
                break
            await asyncio.sleep(0.01)
        await asyncio.sleep(DEADLINE * 2)
        state = protocol.conn.their_state
        closed = transport.closed
        protocol.connection_lost(None)
        return transport.written, closed, state

    written, closed, state = asyncio.run(check())
    assert written.startswith(b"HTTP/1.1 200") and written.endswith(b"ok")
    assert state is h11.IDLE  # on_response_complete started the next request cycle
    assert not closed  # uvicorn's own keep-alive timeout (5 s) closes an idle connection, not the header deadline
