"""Benchmark suites: does a scorer rank true explanations above false ones?

A puzzle file has the schema of OpenAI's puzzles: ``{key: {name, explanation,
false_explanations: [...], sentences: [[token or [token, activation], ...], ...]}}``
where a bare string is an inactive token. Every explanation of a puzzle is
scored on all its sentences; the true one should win.
"""

from __future__ import annotations

import json
import math
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from scoring.api import arank_explanations, run_sync
from scoring.errors import ScoringInputError
from scoring.records import ActivationRecord
from scoring.scorers import simulator_id
from scoring.simulators import Simulator


@dataclass
class Puzzle:
    key: str
    explanation: str
    false_explanations: list[str]
    records: list[ActivationRecord]


def load_puzzles(source: str | Path | dict[str, Any]) -> list[Puzzle]:
    """Read a puzzle file (path, JSON text or parsed dict), validating every entry."""
    if isinstance(source, dict):
        data = source
    else:
        path = Path(source)
        if not path.exists():
            raise ScoringInputError(f"puzzle file not found: {path}")
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except json.JSONDecodeError as exc:
            raise ScoringInputError(f"{path} is not valid JSON: {exc.msg} at line {exc.lineno}") from exc
    if not isinstance(data, dict) or not data:
        raise ScoringInputError("a puzzle file must be a non-empty JSON object keyed by puzzle name")
    puzzles = []
    for key, entry in data.items():
        if not isinstance(entry, dict) or "explanation" not in entry or "sentences" not in entry:
            raise ScoringInputError(f"puzzle {key!r} needs 'explanation', 'false_explanations' and 'sentences'")
        false_explanations = entry.get("false_explanations") or []
        if not isinstance(false_explanations, list) or not false_explanations:
            raise ScoringInputError(f"puzzle {key!r} needs a non-empty 'false_explanations' list")
        records = []
        for number, sentence in enumerate(entry["sentences"]):
            tokens: list[str] = []
            values: list[float] = []
            for item in sentence:
                if isinstance(item, str):
                    tokens.append(item)
                    values.append(0.0)
                elif isinstance(item, list) and len(item) == 2 and isinstance(item[0], str):
                    tokens.append(item[0])
                    values.append(float(item[1]))
                else:
                    raise ScoringInputError(
                        f"puzzle {key!r} sentence {number}: each token is a string or [token, activation], "
                        f"got {item!r}"
                    )
            records.append(ActivationRecord(tokens, values, f"{key} sentence {number}"))
        puzzles.append(Puzzle(str(key), str(entry["explanation"]), [str(e) for e in false_explanations], records))
    return puzzles


async def arun_bench(
    source: str | Path | dict[str, Any],
    simulator: str | Simulator | None = None,
    scorer: str = "simulation",
    cache: Any = False,
    limit: int | None = None,
) -> dict[str, Any]:
    """Score every puzzle; returns the summary described in ARCHITECTURE.md."""
    from scoring.api import resolve_simulator

    puzzles = load_puzzles(source)[:limit] if limit else load_puzzles(source)
    sim = resolve_simulator(simulator)
    per_puzzle: dict[str, Any] = {}
    wins = pairs_won = pairs = n_scores = prompt_tokens = completion_tokens = cache_hits = 0
    cost = 0.0
    cost_known = True
    started = time.perf_counter()
    for puzzle in puzzles:
        explanations = [puzzle.explanation, *puzzle.false_explanations]
        results = await arank_explanations(explanations, puzzle.records, simulator=sim, scorer=scorer, cache=cache)
        by_text = {result.explanation: result for result in results}
        true_score = by_text[puzzle.explanation.strip()].score
        false_scores = {text: by_text[text.strip()].score for text in puzzle.false_explanations}
        won_pairs = [_beats(true_score, score) for score in false_scores.values()]
        won = all(won_pairs)
        wins += won
        pairs_won += sum(won_pairs)
        pairs += len(won_pairs)
        for result in results:
            n_scores += 1
            prompt_tokens += result.usage.prompt_tokens
            completion_tokens += result.usage.completion_tokens
            cache_hits += result.usage.cache_hits
            if result.usage.cost_usd is None:
                cost_known = cost_known and result.usage.requests == 0
            else:
                cost += result.usage.cost_usd
        per_puzzle[puzzle.key] = {
            "explanation": puzzle.explanation,
            "true_score": _json(true_score),
            "false_scores": {text: _json(score) for text, score in false_scores.items()},
            "won": won,
            "pairs_won": sum(won_pairs),
            "pairs": len(won_pairs),
            "errors": {r.explanation: r.error for r in results if r.error},
        }
    seconds = time.perf_counter() - started
    return {
        "simulator": simulator_id(sim),
        "scorer": scorer,
        "n_puzzles": len(puzzles),
        "n_scores": n_scores,
        "accuracy": wins / len(puzzles) if puzzles else math.nan,
        "pairwise_accuracy": pairs_won / pairs if pairs else math.nan,
        "seconds": round(seconds, 3),
        "seconds_per_score": seconds / n_scores if n_scores else math.nan,
        "prompt_tokens_per_score": prompt_tokens / n_scores if n_scores else math.nan,
        "completion_tokens_per_score": completion_tokens / n_scores if n_scores else math.nan,
        "cost_usd": cost if cost_known else None,
        "cache_hits": cache_hits,
        "puzzles": per_puzzle,
    }


def run_bench(source: str | Path | dict[str, Any], **options: Any) -> dict[str, Any]:
    """Synchronous `arun_bench`."""
    return run_sync(arun_bench(source, **options))


def _beats(true_score: float, false_score: float) -> bool:
    """A NaN true score loses; a NaN false score loses to any real true score."""
    if math.isnan(true_score):
        return False
    return math.isnan(false_score) or true_score > false_score


def _json(value: float) -> float | None:
    return None if math.isnan(value) else round(value, 4)
