"""Batch throughput against a loopback OpenAI-compatible server, relative to its own max rate.

    python benchmarks/bench_batch.py [--features 40] [--explanations 3] [--sequences 20] [--tokens 32]
                                     [--latency 1.0] [--capacity 32] [--concurrency 16]

Starts support/fake_openai_server.py, which holds every request `--latency`
seconds and processes at most `--capacity` at once (a stand-in for one vLLM replica).
First its own max rate is measured: chat requests of the same shape sent straight to
it with half, once and twice its capacity in flight, the best rate kept (on a small
machine the stand-in is CPU-bound below its nominal capacity / latency, also reported).
Then `run_batch` scores `--features` x `--explanations` pairs through
``openai-compatible:...@<url>/v1`` with an empty cache and `--concurrency` pairs in
flight, and the request rate it reached is compared with the server's. Prints one JSON
object.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from scoring.api import resolve_simulator  # noqa: E402
from scoring.batch import run_batch  # noqa: E402
from scoring.process_settings import configure_process  # noqa: E402
from scoring.prompts import API_CHAT_SYSTEM, api_chat_user_message  # noqa: E402
from support.scoring_server import fake_openai_server  # noqa: E402

WORDS = "the quick brown fox jumps over a lazy dog while rain falls on cold hills and rivers".split()


def make_sequence(rng: random.Random, tokens: int, hot: str) -> dict[str, Any]:
    text = [(" " if position else "") + rng.choice(WORDS) for position in range(tokens)]
    return {"tokens": text, "values": [8.0 if token.strip() == hot else 0.0 for token in text]}


def write_input(path: Path, features: int, explanations: int, sequences: int, tokens: int) -> int:
    rng = random.Random(0)
    with path.open("w", encoding="utf-8") as handle:
        for feature in range(features):
            hot = WORDS[feature % len(WORDS)]
            line = {
                "id": f"feature-{feature}",
                "activations": [make_sequence(rng, tokens, hot) for _ in range(sequences)],
                "explanations": [f"{hot} variant {k}" for k in range(explanations)],
            }
            handle.write(json.dumps(line) + "\n")
    return features * explanations


async def server_max_rate(url: str, requests: int, in_flight: int, sequences: int, tokens: int) -> float:
    rng = random.Random(1)
    batch = [make_sequence(rng, tokens, "fox")["tokens"] for _ in range(sequences)]
    body = {
        "model": "fake-model",
        "temperature": 0,
        "messages": [
            {"role": "system", "content": API_CHAT_SYSTEM},
            {"role": "user", "content": api_chat_user_message("fox", batch)},
        ],
    }
    limits = httpx.Limits(max_connections=in_flight, max_keepalive_connections=in_flight)
    async with httpx.AsyncClient(base_url=url, timeout=120, limits=limits) as client:
        queue = iter(range(requests))

        async def worker() -> None:
            for _ in queue:
                response = await client.post("/v1/chat/completions", json=body)
                response.raise_for_status()

        started = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(in_flight)))
        return requests / (time.perf_counter() - started)


def main() -> None:
    configure_process()  # as the command line does: the figures are the entry points'
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--features", type=int, default=40)
    parser.add_argument("--explanations", type=int, default=3)
    parser.add_argument("--sequences", type=int, default=20, help="sequences per feature")
    parser.add_argument("--tokens", type=int, default=32, help="tokens per sequence")
    parser.add_argument("--per-request", type=int, default=5, help="sequences per API request (?batch=)")
    parser.add_argument("--latency", type=float, default=1.0, help="server seconds per request")
    parser.add_argument("--capacity", type=int, default=32, help="requests the server processes at once")
    parser.add_argument("--concurrency", type=int, default=16, help="pairs in flight (run_batch concurrency)")
    parser.add_argument("--backend-concurrency", type=int, default=32, help="requests in flight")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as directory:
        work = Path(directory)
        pairs = write_input(work / "in.jsonl", args.features, args.explanations, args.sequences, args.tokens)
        with fake_openai_server(work / "api.log", latency=args.latency, capacity=args.capacity) as api:
            # The best rate a plain client reaches, over a few in-flight levels.
            levels = (args.capacity // 2 or 1, args.capacity, args.capacity, 2 * args.capacity)
            shape = (args.per_request, args.tokens)
            max_rate = max(
                asyncio.run(server_max_rate(api.url, 10 * args.capacity, level, *shape)) for level in levels
            )
            httpx.post(f"{api.url}/stats/reset")
            spec = (
                f"openai-compatible:fake-model@{api.url}/v1?mode=json"
                f"&batch={args.per_request}&concurrency={args.backend_concurrency}"
            )
            resolve_simulator(spec)  # imports the OpenAI SDK (seconds) before the clock starts
            started = time.perf_counter()
            summary = run_batch(
                work / "in.jsonl",
                work / "out.jsonl",
                simulator=spec,
                concurrency=args.concurrency,
                cache=work / "cache",
                progress=False,
            )
            seconds = time.perf_counter() - started
            stats = httpx.get(f"{api.url}/stats").json()
    rate = stats["requests"] / seconds
    result = {
        "benchmark": "batch against a loopback OpenAI-compatible server",
        "pairs": pairs,
        "ok": summary["ok"],
        "sequences_per_pair": args.sequences,
        "sequences_per_request": args.per_request,
        "server_latency_s": args.latency,
        "server_capacity": args.capacity,
        "batch_concurrency": args.concurrency,
        "backend_concurrency": args.backend_concurrency,
        "server_nominal_requests_per_second": round(args.capacity / args.latency, 1) if args.latency else 0,
        "server_max_requests_per_second": round(max_rate, 1),
        "batch_requests_per_second": round(rate, 1),
        "batch_pairs_per_second": round(pairs / seconds, 2),
        "share_of_server_max": round(rate / max_rate, 3),
        "server_most_in_flight": stats["most_in_flight"],
        "seconds": round(seconds, 2),
    }
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
