"""An HTTP proxy that injects faults in front of a real server, for tests.

It forwards every request to the upstream server unchanged, except that it can
first answer with queued error statuses (500, 429, ...), answer with queued
hostile replies of its own (`HOSTILE_REPLIES`: an HTML page, broken JSON, an empty
body, a reply trickled one byte a second, a 429 asking to wait 30 s, echoed
prompt logprobs cut short), hold a request for a while (to provoke client
timeouts), or replace the text of chat replies with garbage. It listens on
127.0.0.1 only, on a free port.
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

HOSTILE_REPLIES = ("html", "broken-json", "empty", "trickle", "retry-after-30", "truncated-logprobs")
"""What `FaultProxy.answer_with` may hold."""

_TRUNCATED_COMPLETION = {
    "id": "cmpl-1",
    "object": "text_completion",
    "created": 0,
    "model": "m",
    "choices": [
        {
            "index": 0,
            "text": "x",
            "finish_reason": "length",
            "logprobs": {
                "tokens": ["Explanation", ":", " x", "\n"],
                "token_logprobs": [None, -1.0],
                "top_logprobs": [None, {":": -1.0}],
                "text_offset": [0, 11, 12, 14],
            },
        }
    ],
    "usage": {"prompt_tokens": 4, "completion_tokens": 1, "total_tokens": 5},
}


class FaultProxy:
    """Forwarding proxy; set `fail_with`, `delay` or `garble` to inject faults."""

    def __init__(self, upstream: str) -> None:
        parts = urlsplit(upstream)
        self.upstream_host = parts.hostname or "127.0.0.1"
        self.upstream_port = parts.port or 80
        self.fail_with: deque[int] = deque()
        """Statuses answered, in order, before requests are forwarded again."""
        self.answer_with: deque[str] = deque()
        """Hostile replies (`HOSTILE_REPLIES`) answered, in order, before requests are forwarded again."""
        self.refuse_fields: set[str] = set()
        """Request fields answered with HTTP 400 naming the field, as a server without that feature does."""
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
        refused = self._refused_field(body)
        if refused is not None:
            self._record(handler.path, 400)
            payload = json.dumps({"error": {"message": f"{refused} is not supported", "param": refused}}).encode()
            handler.send_response(400)
            handler.send_header("Content-Type", "application/json")
            handler.send_header("Content-Length", str(len(payload)))
            handler.end_headers()
            handler.wfile.write(payload)
            return
        with self._lock:
            hostile = self.answer_with.popleft() if self.answer_with else None
        if hostile is not None:
            self._hostile(handler, hostile)
            return
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

    def _refused_field(self, body: bytes) -> str | None:
        if not self.refuse_fields or not body:
            return None
        try:
            request = json.loads(body)
        except ValueError:
            return None
        return next((name for name in sorted(self.refuse_fields) if name in request), None)

    def _hostile(self, handler: BaseHTTPRequestHandler, kind: str) -> None:
        status, content_type, payload, headers = 200, "application/json", b"", {}
        if kind == "html":
            content_type, payload = "text/html", b"<html><body><h1>502 Bad Gateway</h1></body></html>"
        elif kind == "broken-json":
            payload = b'{"id": "chatcmpl-1", "choices": [{"message": {"content": "{\\"1\\": [0'
        elif kind == "retry-after-30":
            status, payload, headers = 429, b'{"error": {"message": "slow down"}}', {"Retry-After": "30"}
        elif kind == "truncated-logprobs":
            payload = json.dumps(_TRUNCATED_COMPLETION).encode()
        elif kind not in ("empty", "trickle"):
            raise ValueError(f"unknown hostile reply {kind!r}; choose from {HOSTILE_REPLIES}")
        self._record(handler.path, status)
        try:
            handler.send_response(status)
            handler.send_header("Content-Type", content_type)
            for name, value in headers.items():
                handler.send_header(name, value)
            handler.send_header("Content-Length", str(1000 if kind == "trickle" else len(payload)))
            handler.end_headers()
            if kind == "trickle":
                # A peer that never finishes: one byte a second, each resetting a read timeout.
                for _ in range(1000):
                    handler.wfile.write(b" ")
                    handler.wfile.flush()
                    time.sleep(1.0)
            else:
                handler.wfile.write(payload)
        except (BrokenPipeError, ConnectionResetError):
            pass
