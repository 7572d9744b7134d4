"""Servers run as real subprocesses on free loopback ports: the scoring server, a fake OpenAI API."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

REPO = Path(__file__).resolve().parents[1]


def free_port() -> int:
    """A TCP port nobody listens on right now (127.0.0.1)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@dataclass
class RunningServer:
    url: str
    process: subprocess.Popen[bytes]
    log_path: Path

    def log(self) -> str:
        return self.log_path.read_text(encoding="utf-8", errors="replace")

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
        self.process.wait(timeout=30)


def scoring_server_command(port: int, simulator: str) -> list[str]:
    return [sys.executable, "-m", "scoring", "serve", "--host", "127.0.0.1", "--port", str(port)] + [
        "--simulator",
        simulator,
    ]


@contextmanager
def scoring_server(
    log_path: Path,
    simulator: str = "lexical",
    env: Mapping[str, str] | None = None,
    startup_seconds: float = 60.0,
) -> Iterator[RunningServer]:
    """Run the server until the block ends; the process is always killed afterwards."""
    port = free_port()
    command = scoring_server_command(port, simulator)
    with server_process(command, port, "/health", log_path, env, startup_seconds) as server:
        yield server


@contextmanager
def scoring_servers(
    configurations: Sequence[tuple[Path, str, Mapping[str, str]]], startup_seconds: float = 60.0
) -> Iterator[list[RunningServer]]:
    """Several servers started at once (log path, simulator, environment each); all killed afterwards."""
    started: list[RunningServer] = []
    try:
        for log_path, simulator, env in configurations:
            port = free_port()
            started.append(_start(scoring_server_command(port, simulator), port, log_path, env))
        for server in started:
            _wait_until_healthy(server, "/health", startup_seconds)
        yield started
    finally:
        for server in started:
            server.stop()


@contextmanager
def fake_openai_server(
    log_path: Path, latency: float = 0.0, capacity: int = 0, startup_seconds: float = 60.0
) -> Iterator[RunningServer]:
    """Run support/fake_openai_server.py; its API is at ``<url>/v1``."""
    port = free_port()
    script = Path(__file__).with_name("fake_openai_server.py")
    command = [sys.executable, str(script), "--port", str(port), "--latency", str(latency)]
    command += ["--capacity", str(capacity)]
    with server_process(command, port, "/v1/models", log_path, None, startup_seconds) as server:
        yield server


@contextmanager
def protocol_judge_server(log_path: Path, startup_seconds: float = 60.0) -> Iterator[RunningServer]:
    """Run support/protocol_judge_server.py (records every request); its API is at ``<url>/v1``."""
    port = free_port()
    script = Path(__file__).with_name("protocol_judge_server.py")
    command = [sys.executable, str(script), "--port", str(port)]
    # the script imports the fake judge's rule from this checkout
    with server_process(command, port, "/v1/models", log_path, {"PYTHONPATH": str(REPO)}, startup_seconds) as server:
        yield server


@contextmanager
def openai_model_server(
    log_path: Path, folder: Path, name: str, startup_seconds: float = 300.0
) -> Iterator[RunningServer]:
    """Run support/openai_model_server.py over a transformers model folder; its API is at ``<url>/v1``."""
    port = free_port()
    script = Path(__file__).with_name("openai_model_server.py")
    command = [sys.executable, str(script), "--model", str(folder), "--name", name, "--port", str(port)]
    with server_process(command, port, "/v1/models", log_path, None, startup_seconds) as server:
        yield server


@contextmanager
def transformers_serve(log_path: Path, folder: Path, startup_seconds: float = 300.0) -> Iterator[RunningServer]:
    """Run ``transformers serve`` pinned to a model folder (requests name the folder as their model)."""
    port = free_port()
    command = [sys.executable, "-m", "transformers.cli.transformers", "serve", str(folder), "--host", "127.0.0.1"]
    command += ["--port", str(port), "--device", "cpu"]
    with server_process(command, port, "/health", log_path, None, startup_seconds) as server:
        yield server


@contextmanager
def server_process(
    command: list[str],
    port: int,
    health_path: str,
    log_path: Path,
    env: Mapping[str, str] | None,
    startup_seconds: float,
) -> Iterator[RunningServer]:
    """Start a server process, wait until `health_path` answers 200, always kill it afterwards."""
    server = _start(command, port, log_path, env)
    try:
        _wait_until_healthy(server, health_path, startup_seconds)
        yield server
    finally:
        server.stop()


def _start(command: list[str], port: int, log_path: Path, env: Mapping[str, str] | None) -> RunningServer:
    environment = {**os.environ, "PYTHONUNBUFFERED": "1", **(env or {})}
    with log_path.open("wb") as log:
        process = subprocess.Popen(command, cwd=REPO, env=environment, stdout=log, stderr=subprocess.STDOUT)
    return RunningServer(f"http://127.0.0.1:{port}", process, log_path)


def _wait_until_healthy(server: RunningServer, health_path: str, seconds: float) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if server.process.poll() is not None:
            raise RuntimeError(f"the server exited with {server.process.returncode}:\n{server.log()}")
        try:
            if httpx.get(f"{server.url}{health_path}", timeout=2.0).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.1)
    raise RuntimeError(f"the server did not answer /health within {seconds} s:\n{server.log()}")


def strict_json(text: str) -> Any:
    """Parse JSON refusing NaN/Infinity, which are not JSON."""

    def refuse(constant: str) -> None:
        raise AssertionError(f"the server sent {constant}, which is not valid JSON")

    return json.loads(text, parse_constant=refuse)
