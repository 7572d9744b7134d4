"""Seconds for one score of 20 texts x 64 tokens, per simulator: the budget the default must meet.

    python benchmarks/bench_speed.py --simulator embedding --simulator local [--repeat 2] [--rank 5] [--json]

The texts are the dev puzzles' sentences run together and cut into 64-token
windows (tokens as the puzzles give them). Each simulator is loaded and warmed up
on two other windows first (reported as `load_seconds`), then scores fresh
explanations with the cache off, each on 20 windows it has not seen (a simulator
that keeps work per text, such as `local`'s text-first method, gets no head start);
`seconds` is the wall time of each score; `rank_seconds` the wall time of ranking
`--rank` explanations on 20 more unseen windows (the dashboard's main use: the
explanations share the records), and `peak_rss_gb` the process's peak resident
memory so far (run one simulator per process to read it per simulator).
Run it on an otherwise idle machine: the figures are only as good as the CPU time
the process gets (`SCORING_THREADS` sets torch's threads).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from scoring import (  # noqa: E402
    ActivationRecord,
    configure_process,
    get_simulator,
    rank_explanations,
    score_explanation,
)

EXPLANATIONS = (
    "words about the weather",
    "names of animals",
    "numbers and quantities",
    "verbs in the past tense",
    "words about food and cooking",
    "the word 'the'",
    "place names",
)


def windows(count: int = 20, length: int = 64) -> list[list[str]]:
    """`count` windows of `length` tokens from the dev puzzles' sentences, in file order."""
    tokens: list[str] = []
    for name in ("dev_puzzles.json", "dev_puzzles_2.json"):
        for puzzle in json.loads((ROOT / "benchmarks" / name).read_text(encoding="utf-8")).values():
            for sentence in puzzle["sentences"]:
                tokens.extend(item if isinstance(item, str) else item[0] for item in sentence)
    return [tokens[index * length : (index + 1) * length] for index in range(count)]


def peak_rss_gb() -> float:
    """Peak resident memory of this process so far, in GB (Linux reports kB, macOS bytes)."""
    import resource

    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return round(peak / (1e9 if sys.platform == "darwin" else 1e6), 2)


def measure(spec: str, repeat: int, rank: int) -> dict[str, object]:
    # Real activations only matter for the correlation; the timing is the simulator's.
    pool = [ActivationRecord(text, [float(index % 7 == 0) for index in range(len(text))]) for text in windows(80)]
    if len(pool) < 20 * (repeat + 1) + 2:
        raise SystemExit(f"--repeat {repeat} needs more unseen windows than the dev puzzles give; use at most 2")
    started = time.perf_counter()
    simulator = get_simulator(spec)
    score_explanation("warm-up", pool[-2:], simulator=simulator, cache=False)
    load_seconds = time.perf_counter() - started
    seconds = []
    for turn, explanation in enumerate(EXPLANATIONS[:repeat]):
        records = pool[20 * turn : 20 * turn + 20]
        started = time.perf_counter()
        result = score_explanation(explanation, records, simulator=simulator, cache=False)
        seconds.append(round(time.perf_counter() - started, 2))
        failed = [sequence.error for sequence in result.sequences if sequence.error]
        if failed:
            raise SystemExit(f"{spec}: {len(failed)} sequences failed to simulate, e.g. {failed[0]}")
    rank_seconds = None
    if rank:
        started = time.perf_counter()
        fresh = pool[20 * repeat : 20 * repeat + 20]
        rank_explanations(list(EXPLANATIONS[-rank:]), fresh, simulator=simulator, cache=False)
        rank_seconds = round(time.perf_counter() - started, 2)
    return {
        "simulator": spec,
        "load_seconds": round(load_seconds, 1),
        "seconds": seconds,
        "rank_explanations": rank,
        "rank_seconds": rank_seconds,
        "peak_rss_gb": peak_rss_gb(),
    }


def main() -> int:
    configure_process()  # as the command line does: the figures are the entry points'
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--simulator", action="append", required=True, help="a spec (repeat)")
    parser.add_argument("--repeat", type=int, default=2, help="scores per simulator (default 2)")
    parser.add_argument("--rank", type=int, default=0, choices=range(0, 6), help="also rank this many (1-5)")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    report = {
        "machine": f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores",
        "load_average": os.getloadavg()[0],
        "runs": [measure(spec, args.repeat, args.rank) for spec in args.simulator],
    }
    if args.json:
        print(json.dumps(report))
    else:
        for run in report["runs"]:  # type: ignore[attr-defined]
            ranked = f"   rank {run['rank_explanations']}: {run['rank_seconds']} s" if run["rank_seconds"] else ""
            print(
                f"{run['simulator']:30} load {run['load_seconds']:6.1f} s   20x64 score {run['seconds']} s"
                f"{ranked}   peak {run['peak_rss_gb']} GB"
            )
        print(f"({report['machine']}, load average {report['load_average']:.1f} when started)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
