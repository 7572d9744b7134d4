"""Benchmark suites: does a scorer rank true explanations above false ones?

A puzzle file has the schema of OpenAI's puzzles: ``{key: {name, explanation,
false_explanations: [...], sentences: [[token or [token, activation], ...], ...]}}``
where a bare string is an inactive token. Every explanation of a puzzle is
scored on all its sentences; the true one should win. Several scorers can run
on the same puzzles; their rankings are then compared (`rank_agreement`).
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from scoring.api import arank_explanations, refuse_attention_scorer, run_cache, run_sync
from scoring.errors import ScoringInputError
from scoring.job import simulator_id
from scoring.metrics import best_first_ranks, kendall_tau
from scoring.prepared import PreparedRecords, prepare_records
from scoring.records import ActivationRecord
from scoring.scorers import JUDGE_SCORERS, SCORERS
from scoring.shared_types import Progress
from scoring.simulators import Simulator


@dataclass
class Puzzle:
    key: str
    explanation: str
    false_explanations: list[str]
    records: PreparedRecords
    """The sentences, validated once when the file is read."""


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
        explanation, decoys = str(entry["explanation"]), [str(e) for e in false_explanations]
        puzzles.append(Puzzle(str(key), explanation, decoys, prepare_records(records)))
    return puzzles


def scorer_names(scorer: str | Sequence[str]) -> list[str]:
    """Scorer names from a name, a comma list, or a list of either; each must be registered, none twice.

    Scorers that read attention records (attention-head) are refused: puzzles hold activation records.
    """
    items = [scorer] if isinstance(scorer, str) else list(scorer)
    names: list[str] = []
    for item in items:
        for name in str(item).split(","):
            name = name.strip()
            if not name:
                continue
            if name not in SCORERS:
                raise ScoringInputError(f"unknown scorer {name!r}; choose one of: {', '.join(SCORERS)}")
            refuse_attention_scorer(name)  # puzzles hold activation records
            if name not in names:
                names.append(name)
    if not names:
        raise ScoringInputError(f"name at least one scorer: {', '.join(SCORERS)}")
    return names


def chance_levels(puzzles: Sequence[Puzzle]) -> dict[str, float]:
    """What a scorer that ranks at random gets: ``chance_accuracy``, the mean over puzzles of 1/(decoys + 1)
    (the true explanation on top by luck), and ``chance_pairwise_accuracy``, 0.5 (a coin per pair)."""
    if not puzzles:
        return {"chance_accuracy": math.nan, "chance_pairwise_accuracy": math.nan}
    accuracy = sum(1 / (len(puzzle.false_explanations) + 1) for puzzle in puzzles) / len(puzzles)
    return {"chance_accuracy": accuracy, "chance_pairwise_accuracy": 0.5}


async def _bench_scorer(
    puzzles: list[Puzzle], sim: Simulator, scorer: str, cache: Any, on_puzzle: Callable[[str], None] | None = None
) -> tuple[dict[str, Any], dict[str, list[float]]]:
    """One scorer over every puzzle: its summary, and per puzzle the scores of [true, *false] explanations."""
    per_puzzle: dict[str, Any] = {}
    scores_by_puzzle: dict[str, list[float]] = {}
    wins = pairs_won = pairs = n_scores = failed_scores = prompt_tokens = completion_tokens = cache_hits = 0
    cost = 0.0
    cost_known = True
    priced = False
    started = time.perf_counter()
    for puzzle in puzzles:
        explanations = [puzzle.explanation, *puzzle.false_explanations]
        results = await arank_explanations(explanations, puzzle.records, simulator=sim, scorer=scorer, cache=cache)
        by_text = {result.explanation: result for result in results}
        true_score = by_text[puzzle.explanation.strip()].score
        false_scores = {text: by_text[text.strip()].score for text in puzzle.false_explanations}
        scores_by_puzzle[puzzle.key] = [by_text[text.strip()].score for text in explanations]
        won_pairs = [_beats(true_score, score) for score in false_scores.values()]
        won = all(won_pairs)
        wins += won
        pairs_won += sum(won_pairs)
        pairs += len(won_pairs)
        for result in results:
            n_scores += 1
            failed_scores += result.failed
            prompt_tokens += result.usage.prompt_tokens
            completion_tokens += result.usage.completion_tokens
            cache_hits += result.usage.cache_hits
            if result.usage.cost_usd is None:
                cost_known = cost_known and result.usage.requests == 0
            else:
                priced = True
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
        if on_puzzle is not None:
            on_puzzle(puzzle.key)
    seconds = time.perf_counter() - started
    summary = {
        "simulator": simulator_id(sim),
        "scorer": scorer,
        "n_puzzles": len(puzzles),
        "n_scores": n_scores,
        "failed_scores": failed_scores,
        "accuracy": wins / len(puzzles) if puzzles else math.nan,
        "pairwise_accuracy": pairs_won / pairs if pairs else math.nan,
        **chance_levels(puzzles),
        "seconds": round(seconds, 3),
        "seconds_per_score": seconds / n_scores if n_scores else math.nan,
        "prompt_tokens_per_score": prompt_tokens / n_scores if n_scores else math.nan,
        "completion_tokens_per_score": completion_tokens / n_scores if n_scores else math.nan,
        # As `Usage.add` sums it: unknown (None) unless some score carried a price, so a free or fully cached
        # run without prices reads n/a, as on the Score page, not $0.
        "cost_usd": cost if cost_known and priced else None,
        "cache_hits": cache_hits,
        "puzzles": per_puzzle,
    }
    return summary, scores_by_puzzle


def rank_agreement(
    scores: dict[str, dict[str, list[float]]], scorers: Sequence[str]
) -> dict[str, Any]:
    """How alike scorers rank each puzzle's explanations, for every pair of scorers.

    Per pair: ``kendall_tau``, the mean over puzzles of Kendall's tau-b between
    the two scorings (a NaN score ranks lowest; puzzles where either scorer ties
    every explanation are left out, ``tau_puzzles`` counts the rest); and
    ``top_agreement``, the share of puzzles where both put the same explanation(s)
    on top (highest finite score; puzzles where either has no finite score are
    left out, ``top_puzzles`` counts the rest). ``mean_kendall_tau`` and
    ``mean_top_agreement`` average the pairs.
    """
    pairs: list[dict[str, Any]] = []
    for position, first in enumerate(scorers):
        for second in scorers[position + 1:]:
            taus: list[float] = []
            tops: list[bool] = []
            for key, first_scores in scores[first].items():
                second_scores = scores[second][key]
                tau = kendall_tau(first_scores, second_scores)
                if not math.isnan(tau):
                    taus.append(tau)
                first_top, second_top = _top_set(first_scores), _top_set(second_scores)
                if first_top and second_top:
                    tops.append(first_top == second_top)
            pairs.append(
                {
                    "scorers": [first, second],
                    "kendall_tau": sum(taus) / len(taus) if taus else math.nan,
                    "tau_puzzles": len(taus),
                    "top_agreement": sum(tops) / len(tops) if tops else math.nan,
                    "top_puzzles": len(tops),
                }
            )
    return {
        "pairs": pairs,
        "mean_kendall_tau": _mean_defined([pair["kendall_tau"] for pair in pairs]),
        "mean_top_agreement": _mean_defined([pair["top_agreement"] for pair in pairs]),
    }


def _top_set(scores: Sequence[float]) -> frozenset[int]:
    """Positions holding the highest finite score (empty when none is finite)."""
    return frozenset(position for position, rank in enumerate(best_first_ranks(scores)) if rank == 1)


def _mean_defined(values: Sequence[float]) -> float:
    defined = [value for value in values if not math.isnan(value)]
    return sum(defined) / len(defined) if defined else math.nan


async def arun_bench(
    source: str | Path | dict[str, Any],
    simulator: str | Simulator | None = None,
    scorer: str | Sequence[str] = "simulation",
    cache: Any = False,
    limit: int | None = None,
    progress: Progress | None = None,
) -> dict[str, Any]:
    """Score every puzzle with each scorer; returns the summary described in ARCHITECTURE.md.

    With one scorer the summary has the keys of ARCHITECTURE.md. With several
    (a list or a comma list) the top-level figures are the first scorer's, and
    ``scorers`` holds each scorer's summary and ``agreement`` their rank
    agreement (`rank_agreement`). Scorers run one after the other and the later
    ones read the simulations (and judgments) of the earlier ones: from `cache`
    when one is given, else from a temporary cache that lives for this run only
    (`scoring.api.run_cache`). So with ``cache=False`` the first scorer's seconds
    and tokens are what a fresh run costs, and a later scorer's are only what it
    adds (its ``cache_hits`` count the simulations it reused).
    `limit`: only the first `limit` puzzles. `progress(done, total, message)` is called
    after each puzzle. ``failed_scores`` counts the scores whose simulations or judgments failed.
    Raises ScoringInputError when a judge scorer is asked of a simulator that cannot judge.
    """
    from scoring.api import require_judge, resolve_simulator

    names = scorer_names(scorer)
    if limit is not None and (isinstance(limit, bool) or not isinstance(limit, int) or limit < 1):
        raise ScoringInputError(f"limit must be a positive whole number (or None for every puzzle), got {limit!r}")
    sim = resolve_simulator(simulator, judge=any(name in JUDGE_SCORERS for name in names))
    require_judge(sim, names)
    puzzles = load_puzzles(source)[:limit]
    summaries: dict[str, dict[str, Any]] = {}
    scores: dict[str, dict[str, list[float]]] = {}
    total = len(names) * len(puzzles)
    done = 0

    def report_puzzle(name: str) -> Callable[[str], None] | None:
        if progress is None:
            return None

        def finished(key: str) -> None:
            nonlocal done
            done += 1
            assert progress is not None
            progress(done, total, f"scorer {name}: puzzle {key} done")

        return finished

    with run_cache(cache, len(names)) as run_simulations:
        for name in names:
            summaries[name], scores[name] = await _bench_scorer(
                puzzles, sim, name, run_simulations, report_puzzle(name)
            )
    report = dict(summaries[names[0]])
    if len(names) > 1:
        report["scorers"] = {
            name: {key: value for key, value in summary.items() if key != "simulator"}
            for name, summary in summaries.items()
        }
        report["agreement"] = rank_agreement(scores, names)
    return report


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
