"""Requests per second of POST /score with a cached simulator.

    python benchmarks/bench_server.py [--requests 400] [--concurrency 16] [--sequences 20] [--tokens 64]

Starts `python -m scoring serve` on a free loopback port with its own empty cache,
warms the cache with one request per distinct explanation, then sends `--requests`
requests (cycling over the explanations) with `--concurrency` in flight and prints one
JSON object: requests per second, latency percentiles, and the settings. Every answer
must be 200, else the benchmark fails. The simulator is `lexical` by default; with a
cache hit per sequence, what is measured is the server itself (validation, cache
lookup, metrics with bootstrap interval, JSON), not a model.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.support.scoring_server import scoring_server  # noqa: E402

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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=400)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--sequences", type=int, default=20, help="sequences per request")
    parser.add_argument("--tokens", type=int, default=64, help="tokens per sequence")
    parser.add_argument("--explanations", type=int, default=8, help="distinct explanations cycled over")
    parser.add_argument("--simulator", default="lexical")
    args = parser.parse_args()

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
    result = {
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
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
