"""An HTTP proxy that injects faults in front of a real server, for tests.

It forwards every request to the upstream server unchanged, except that it can
first answer with queued error statuses (500, 429, ...), hold a request for a
while (to provoke client timeouts), or replace the text of chat replies with
garbage. It listens on 127.0.0.1 only, on a free port.
"""

from __future__ import annotations

import http.client
import json
import threading
import time
from collections import deque
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import urlsplit

GARBAGE_REPLY = "I think these tokens are rather interesting, maybe seven?"


class FaultProxy:
    """Forwarding proxy; set `fail_with`, `delay` or `garble` to inject faults."""

    def __init__(self, upstream: str) -> None:
        parts = urlsplit(upstream)
        self.upstream_host = parts.hostname or "127.0.0.1"
        self.upstream_port = parts.port or 80
        self.fail_with: deque[int] = deque()
        """Statuses answered, in order, before requests are forwarded again."""
        self.delay = 0.0
        """Seconds each request is held before it is handled."""
        self.garble = False
        """Replace the message text of chat completion replies with `GARBAGE_REPLY`."""
        self.requests: list[tuple[str, int]] = []
        """(path, status answered) of every request seen."""
        self._lock = threading.Lock()
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - the base class's name
                return

            def do_GET(self) -> None:  # noqa: N802 - http.server's naming
                proxy._handle(self)

            def do_POST(self) -> None:  # noqa: N802
                proxy._handle(self)

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    def start(self) -> FaultProxy:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def __enter__(self) -> FaultProxy:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def statuses(self) -> list[int]:
        with self._lock:
            return [status for _, status in self.requests]

    def _record(self, path: str, status: int) -> None:
        with self._lock:
            self.requests.append((path, status))

    def _handle(self, handler: BaseHTTPRequestHandler) -> None:
        body = handler.rfile.read(int(handler.headers.get("Content-Length") or 0))
        if self.delay:
            time.sleep(self.delay)
        with self._lock:
            injected = self.fail_with.popleft() if self.fail_with else None
        if injected is not None:
            self._record(handler.path, injected)
            payload = json.dumps(
                {"error": {"message": f"injected HTTP {injected}", "type": "injected"}}
            ).encode()
            handler.send_response(injected)
            handler.send_header("Content-Type", "application/json")
            handler.send_header("Content-Length", str(len(payload)))
            handler.send_header("retry-after-ms", "20")
            handler.end_headers()
            handler.wfile.write(payload)
            return
        connection = http.client.HTTPConnection(self.upstream_host, self.upstream_port, timeout=600)
        headers = {
            key: value for key, value in handler.headers.items() if key.lower() not in ("host", "connection")
        }
        try:
            connection.request(handler.command, handler.path, body=body or None, headers=headers)
            response = connection.getresponse()
            payload = response.read()
            status = response.status
            content_type = response.getheader("Content-Type", "application/json")
        finally:
            connection.close()
        if self.garble and status == 200 and "chat/completions" in handler.path:
            reply = json.loads(payload)
            for choice in reply.get("choices", []):
                choice["message"]["content"] = GARBAGE_REPLY
                choice["logprobs"] = None
            payload = json.dumps(reply).encode()
        self._record(handler.path, status)
        try:
            handler.send_response(status)
            handler.send_header("Content-Type", content_type)
            handler.send_header("Content-Length", str(len(payload)))
            handler.end_headers()
            handler.wfile.write(payload)
        except (BrokenPipeError, ConnectionResetError):
            # the client gave up (a timeout test): nothing to answer
            pass
