"""Connection-level protection that ASGI cannot give: a deadline on receiving a request's headers.

An ASGI app first hears of a request once its headers are complete, so a client that opens connections and
sends headers a byte at a time, or never finishes them (slowloris), would hold each connection forever:
uvicorn times out idle keep-alive connections only after a response. `HeaderTimeoutProtocol` closes any
connection whose request headers are not complete ``header_timeout`` seconds after it opened or after its
previous response. Body deadlines are the app's (`RequestGuardMiddleware`).

uvicorn offers no setting for this (``timeout_keep_alive`` stops at a request's first byte,
``h11_max_incomplete_event_size`` bounds size, not time), so this subclasses its `H11Protocol` and uses
its ``conn``, ``transport``, ``loop``, ``logger`` and ``on_response_complete``. uvicorn is capped below
its next release; `tests/test_server_connections.py` checks that contract before the cap is raised.
"""

from __future__ import annotations

import asyncio
from typing import Any

import h11
from uvicorn.protocols.http.h11_impl import H11Protocol


def header_timeout_protocol(header_timeout: float) -> type[H11Protocol]:
    """uvicorn's h11 protocol with a header deadline (pass it as ``uvicorn.run(..., http=...)``)."""

    class HeaderTimeoutProtocol(H11Protocol):
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)
            self.header_timer: asyncio.TimerHandle | None = None

        def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
            super().connection_made(transport)
            self._arm()

        def data_received(self, data: bytes) -> None:
            super().data_received(data)
            # Waiting for a request's headers (h11's IDLE) with no deadline running: start one. Bytes that
            # trickle in do not restart it.
            if self.conn.their_state is h11.IDLE:
                if self.header_timer is None:
                    self._arm()
            else:
                self._disarm()

        def on_response_complete(self) -> None:
            super().on_response_complete()
            self._disarm()

        def connection_lost(self, exc: Exception | None) -> None:
            self._disarm()
            super().connection_lost(exc)

        def _arm(self) -> None:
            self._disarm()
            self.header_timer = self.loop.call_later(header_timeout, self._expired)

        def _disarm(self) -> None:
            if self.header_timer is not None:
                self.header_timer.cancel()
                self.header_timer = None

        def _expired(self) -> None:
            self.header_timer = None
            if self.conn.their_state is h11.IDLE and not self.transport.is_closing():
                self.logger.info("closing a connection that sent no complete request headers in %g s", header_timeout)
                self.transport.close()

    return HeaderTimeoutProtocol
