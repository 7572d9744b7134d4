"""The scoring server measured: throughput, /health under heavy load, slow clients.

    python benchmarks/bench_server.py [--scenario all|throughput|heavy|slowloris|expensive] [--requests 400]
        [--concurrency 16] [--sequences 20] [--tokens 64] [--heavy-requests 6] [--half-sent 300]

Each scenario starts `python -m scoring serve` on a free loopback port with its own empty
cache and prints one JSON object:

- ``throughput``: warms the cache with one request per distinct explanation, then sends
  `--requests` requests (cycling over the explanations) with `--concurrency` in flight:
  requests per second and latency percentiles. Every answer must be 200. The simulator is
  `lexical` by default; with a cache hit per sequence, what is measured is the server itself
  (validation, cache lookup, metrics with bootstrap interval, JSON), not a model.
- ``heavy``: `--heavy-requests` maximum-size requests (the default limits: 500 sequences of
  4096 tokens would be 2M tokens; here 100 sequences of 2048 tokens, about 3.5 MB of JSON each) at
  once, while ``GET /health`` is timed every 0.25 s: the statuses (200, or 503 past the
  admission bound), the seconds each took, and the /health latencies.
- ``slowloris``: `--half-sent` connections that send part of their headers or body and stop;
  /health is timed while they are held, then the seconds until the server has closed them all.
- ``expensive``: the costly request of issue 23 (about 1 MB for `lexical`: 320 explanation words, tokens of
  hyphen-joined word pieces), then one tiny request 1 s later, with ``request_timeout`` 10 s: the status and
  seconds of each, and the server process's CPU-seconds.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import socket
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from support.expensive import lexical_attack_body  # noqa: E402
from support.scoring_server import scoring_server  # noqa: E402

WORDS = "the quick brown fox jumps over a lazy dog while rain falls on cold hills and rivers".split()


def make_body(sequences: int, tokens: int, explanation: str, seed: int = 0) -> dict[str, Any]:
    rng = random.Random(seed)
    activations = []
    for _ in range(sequences):
        text = [(" " if position else "") + rng.choice(WORDS) for position in range(tokens)]
        values = [round(rng.random() * 10, 2) if token.strip() in ("fox", "dog") else 0.0 for token in text]
        activations.append({"tokens": text, "values": values})
    return {"explanation": explanation, "secret": "", "activations": activations}


async def hammer(url: str, bodies: list[dict[str, Any]], total: int, concurrency: int) -> list[float]:
    latencies: list[float] = []
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(base_url=url, timeout=120, limits=limits) as client:
        queue = iter(range(total))

        async def worker() -> None:
            for index in queue:
                started = time.perf_counter()
                response = await client.post("/score", json=bodies[index % len(bodies)])
                latencies.append(time.perf_counter() - started)
                if response.status_code != 200:
                    raise RuntimeError(f"request {index}: HTTP {response.status_code}: {response.text[:200]}")

        await asyncio.gather(*(worker() for _ in range(concurrency)))
    return latencies


def throughput(args: argparse.Namespace) -> dict[str, Any]:
    explanations = ["fox and dog", "animals", "the word fox", "dogs", "weather", "rain", "hills", "jumps"]
    bodies = [
        make_body(args.sequences, args.tokens, explanations[i % len(explanations)] + f" {i}")
        for i in range(args.explanations)
    ]
    with tempfile.TemporaryDirectory() as directory:
        env = {"SERVER_KEY": "", "SCORING_CACHE_DIR": str(Path(directory) / "cache")}
        with scoring_server(Path(directory) / "server.log", simulator=args.simulator, env=env) as server:
            asyncio.run(hammer(server.url, bodies, len(bodies), 1))  # warm the cache
            started = time.perf_counter()
            latencies = asyncio.run(hammer(server.url, bodies, args.requests, args.concurrency))
            seconds = time.perf_counter() - started
    latencies.sort()
    return {
        "benchmark": "server /score, cached simulations",
        "simulator": args.simulator,
        "requests": args.requests,
        "concurrency": args.concurrency,
        "sequences_per_request": args.sequences,
        "tokens_per_sequence": args.tokens,
        "seconds": round(seconds, 3),
        "requests_per_second": round(args.requests / seconds, 1),
        "latency_ms_p50": round(statistics.median(latencies) * 1000, 1),
        "latency_ms_p95": round(latencies[int(0.95 * (len(latencies) - 1))] * 1000, 1),
    }


async def _probe_health(client: httpx.AsyncClient, stop: asyncio.Event, every: float) -> list[float]:
    timings = []
    while not stop.is_set():
        started = time.perf_counter()
        response = await client.get("/health")
        timings.append(time.perf_counter() - started)
        if response.status_code != 200:
            raise RuntimeError(f"/health answered {response.status_code}")
        await asyncio.sleep(every)
    return timings


def heavy(args: argparse.Namespace) -> dict[str, Any]:
    bodies = [
        json.dumps(make_body(args.heavy_sequences, args.heavy_tokens, f"fox {index}", seed=index)).encode()
        for index in range(args.heavy_requests)
    ]

    async def run(url: str) -> tuple[list[tuple[int, float]], list[float]]:
        async with httpx.AsyncClient(base_url=url, timeout=600) as client:
            stop = asyncio.Event()
            probe = asyncio.create_task(_probe_health(client, stop, 0.25))

            async def post(body: bytes) -> tuple[int, float]:
                started = time.perf_counter()
                response = await client.post("/score", content=body, headers={"content-type": "application/json"})
                return response.status_code, round(time.perf_counter() - started, 2)

            outcomes = await asyncio.gather(*(post(body) for body in bodies))
            stop.set()
            return list(outcomes), await probe

    with tempfile.TemporaryDirectory() as directory:
        env = {"SERVER_KEY": "", "SCORING_CACHE_DIR": str(Path(directory) / "cache")}
        with scoring_server(Path(directory) / "server.log", simulator=args.simulator, env=env) as server:
            outcomes, health = asyncio.run(run(server.url))
    health.sort()
    return {
        "benchmark": "server /score, heavy requests at once, /health timed",
        "simulator": args.simulator,
        "requests": args.heavy_requests,
        "sequences_per_request": args.heavy_sequences,
        "tokens_per_sequence": args.heavy_tokens,
        "body_megabytes": round(len(bodies[0]) / 1e6, 2),
        "statuses": [status for status, _ in outcomes],
        "seconds_per_request": [seconds for _, seconds in outcomes],
        "health_probes": len(health),
        "health_ms_p50": round(statistics.median(health) * 1000, 1),
        "health_ms_max": round(health[-1] * 1000, 1),
    }


def slowloris(args: argparse.Namespace) -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as directory:
        env = {"SERVER_KEY": "", "SCORING_CACHE_DIR": str(Path(directory) / "cache")}
        with scoring_server(Path(directory) / "server.log", simulator=args.simulator, env=env) as server:
            host, port = server.url.removeprefix("http://").split(":")
            held = []
            for index in range(args.half_sent):
                connection = socket.create_connection((host, int(port)), timeout=30)
                partial = b"POST /score HTTP/1.1\r\nHost: x\r\nContent-Le"
                if index % 2:
                    partial = b"POST /score HTTP/1.1\r\nHost: x\r\nContent-Length: 1000\r\n\r\n{"
                connection.sendall(partial)
                held.append(connection)
            started = time.perf_counter()
            health = httpx.get(f"{server.url}/health", timeout=60)
            health_seconds = time.perf_counter() - started
            held_since = time.perf_counter()
            while held:
                still = []
                for connection in held:
                    connection.settimeout(0.005)
                    try:
                        while connection.recv(65536):
                            pass
                        connection.close()
                    except TimeoutError:
                        still.append(connection)
                    except OSError:
                        connection.close()
                held = still
                if time.perf_counter() - held_since > 300:
                    raise RuntimeError(f"{len(held)} connections still held after 300 s")
                time.sleep(0.1)
            all_closed = time.perf_counter() - held_since
    return {
        "benchmark": "server with half-sent requests held open",
        "half_sent_connections": args.half_sent,
        "health_status": health.status_code,
        "health_ms": round(health_seconds * 1000, 1),
        "seconds_until_all_closed": round(all_closed, 1),
    }


def expensive(args: argparse.Namespace) -> dict[str, Any]:
    body = json.dumps(lexical_attack_body()).encode()
    tiny = {"explanation": "fox", "activations": [{"tokens": ["a", " fox"], "values": [0, 1]}]}

    async def run(url: str) -> list[tuple[int, float]]:
        async with httpx.AsyncClient(base_url=url, timeout=600) as client:

            async def post(content: bytes, wait: float) -> tuple[int, float]:
                await asyncio.sleep(wait)
                started = time.perf_counter()
                response = await client.post("/score", content=content, headers={"content-type": "application/json"})
                return response.status_code, round(time.perf_counter() - started, 2)

            return list(await asyncio.gather(post(body, 0.0), post(json.dumps(tiny).encode(), 1.0)))

    with tempfile.TemporaryDirectory() as directory:
        env = {"SERVER_KEY": "", "SCORING_CACHE_DIR": str(Path(directory) / "cache"), "SCORING_REQUEST_TIMEOUT": "10"}
        with scoring_server(Path(directory) / "server.log", simulator=args.simulator, env=env) as server:
            before = _cpu_seconds(server.process.pid)
            (attack_status, attack_seconds), (tiny_status, tiny_seconds) = asyncio.run(run(server.url))
            cpu = _cpu_seconds(server.process.pid) - before
    return {
        "benchmark": "server /score, one costly request then a tiny one",
        "simulator": args.simulator,
        "body_megabytes": round(len(body) / 1e6, 2),
        "costly": {"status": attack_status, "seconds": attack_seconds},
        "tiny_1s_later": {"status": tiny_status, "seconds": tiny_seconds},
        "server_cpu_seconds": round(cpu, 2),
    }


def _cpu_seconds(pid: int) -> float:
    """User plus system CPU time of a process so far (Linux /proc)."""
    import os

    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


SCENARIOS = {"throughput": throughput, "heavy": heavy, "slowloris": slowloris, "expensive": expensive}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scenario", default="all", choices=["all", *SCENARIOS])
    parser.add_argument("--requests", type=int, default=400)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--sequences", type=int, default=20, help="sequences per request")
    parser.add_argument("--tokens", type=int, default=64, help="tokens per sequence")
    parser.add_argument("--explanations", type=int, default=8, help="distinct explanations cycled over")
    parser.add_argument("--heavy-requests", type=int, default=6)
    parser.add_argument("--heavy-sequences", type=int, default=100)
    parser.add_argument("--heavy-tokens", type=int, default=2048)
    parser.add_argument("--half-sent", type=int, default=300)
    parser.add_argument("--simulator", default="lexical")
    args = parser.parse_args()
    chosen = list(SCENARIOS) if args.scenario == "all" else [args.scenario]
    for name in chosen:
        print(json.dumps(SCENARIOS[name](args), indent=2), flush=True)


if __name__ == "__main__":
    main()
