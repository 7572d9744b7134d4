"""The public functions: score and rank explanations.

Synchronous functions wrap the async ones (``ascore_explanation``,
``arank_explanations``), which servers and batch jobs call directly.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import math
import threading
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path
from typing import Any, TypeVar

from scoring import judged
from scoring.cache import SimulationCache, open_cache
from scoring.errors import ScoringInputError
from scoring.metrics import benjamini_hochberg, holm_bonferroni
from scoring.records import (
    NORMALIZATIONS,
    ActivationRecord,
    AttentionRecord,
    Limits,
    load_attention_records,
    load_records,
    normalize,
)
from scoring.results import ScoreResult
from scoring.sampling import sample_records
from scoring.scorers import ATTENTION_SCORERS, SCORERS, ScoringJob, check_scorer_options
from scoring.simulators import SIMULATORS, Simulator, get_simulator

MAX_EXPLANATION_CHARS = 2000

RecordsInput = str | Path | dict[str, Any] | list[Any] | Sequence[ActivationRecord]
AttentionInput = str | Path | dict[str, Any] | list[Any] | Sequence[AttentionRecord]
CacheOption = SimulationCache | str | Path | bool | None
Progress = Callable[[int, int, str], None]

T = TypeVar("T")

_simulators: dict[str, Simulator] = {}
_simulators_lock = threading.Lock()


def default_simulator_spec() -> str:
    """``local`` (the embedded model) when installed and registered, else ``lexical``."""
    return "local" if "local" in SIMULATORS else "lexical"


def resolve_simulator(simulator: str | Simulator | None) -> Simulator:
    """One shared instance per spec string, so models load once and limits are shared."""
    if simulator is None:
        simulator = default_simulator_spec()
    if not isinstance(simulator, str):
        return get_simulator(simulator)
    with _simulators_lock:
        if simulator not in _simulators:
            _simulators[simulator] = get_simulator(simulator)
        return _simulators[simulator]


def resolve_cache(cache: CacheOption) -> SimulationCache | None:
    if cache is None or cache is False:
        return None
    if cache is True:
        return open_cache(None)
    if isinstance(cache, SimulationCache):
        return cache
    if isinstance(cache, (str, Path)):
        return open_cache(cache)
    raise ScoringInputError(f"cache must be True/False, a directory or a SimulationCache, not {type(cache).__name__}")


def check_explanation(explanation: Any) -> str:
    if not isinstance(explanation, str):
        raise ScoringInputError(f"an explanation must be text, got {type(explanation).__name__}")
    text = explanation.strip()
    if not text:
        raise ScoringInputError("the explanation is empty: write what the neuron responds to")
    if len(text) > MAX_EXPLANATION_CHARS:
        raise ScoringInputError(
            f"the explanation is {len(text)} characters; keep it under {MAX_EXPLANATION_CHARS}"
        )
    return text


async def ascore_explanation(
    explanation: str,
    records: RecordsInput,
    *,
    simulator: str | Simulator | None = None,
    scorer: str = "simulation",
    sampling: str = "all",
    n_sequences: int | None = None,
    seed: int = 0,
    normalization: str = "global",
    cache: CacheOption = True,
    progress: Progress | None = None,
    limits: Limits | None = None,
    scorer_options: dict[str, Any] | None = None,
) -> ScoreResult:
    """Score one explanation (async). See `score_explanation`."""
    text = check_explanation(explanation)
    if scorer not in SCORERS:
        raise ScoringInputError(f"unknown scorer {scorer!r}; choose one of: {', '.join(SCORERS)}")
    if scorer in ATTENTION_SCORERS:
        raise ScoringInputError(
            f"the {scorer} scorer reads attention records, not activation records: call "
            "scoring.score_attention_explanation(explanation, attention_records, simulator=...) "
            "or run `python -m scoring attention RECORDS -e EXPLANATION`"
        )
    options = check_scorer_options(scorer, scorer_options)
    if normalization not in NORMALIZATIONS:
        raise ScoringInputError(
            f"unknown normalization {normalization!r}; choose one of: {', '.join(NORMALIZATIONS)}"
        )
    loaded = load_records(records, limits=limits)
    indices = sample_records(loaded, sampling, n_sequences, seed)
    all_real = normalize(loaded, normalization)
    job = ScoringJob(
        explanation=text,
        records=[loaded[i] for i in indices],
        indices=indices,
        real=[all_real[i] for i in indices],
        simulator=resolve_simulator(simulator),
        cache=resolve_cache(cache),
        normalization=normalization,
        sampling={"strategy": sampling, "n": n_sequences, "seed": seed, "indices": list(indices)},
        seed=seed,
        progress=progress,
        options=options,
    )
    return await SCORERS[scorer](job)


def score_explanation(explanation: str, records: RecordsInput, **options: Any) -> ScoreResult:
    """Score how well `explanation` predicts the activations in `records`.

    Options: simulator (spec string or instance; default ``local`` when
    installed, else ``lexical``), scorer (``simulation``, ``detection``,
    ``fuzzing``, or a judge scorer: ``detection-judge``, ``fuzzing-judge``,
    ``binary-condition``), scorer_options (``{"window": W}`` for
    binary-condition), sampling (``all``, ``top``, ``top+random``,
    ``quantile``, ``diverse``), n_sequences, seed, normalization (``global``,
    ``per_record``, ``none``), cache (True, False, a directory or a
    SimulationCache), progress (callback(done, total, message)), limits. The
    score is NaN with ``result.error`` set when it cannot be computed. Raises
    ScoringInputError for bad input (``attention-head`` included: it takes
    attention records, see `score_attention_explanation`).
    """
    return run_sync(ascore_explanation(explanation, records, **options))


async def arank_explanations(
    explanations: Sequence[str], records: RecordsInput, *, progress: Progress | None = None, **options: Any
) -> list[ScoreResult]:
    """Score several explanations on the same records (async), best first, NaN last."""
    if isinstance(explanations, str) or not isinstance(explanations, Sequence):
        raise ScoringInputError("explanations must be a list of strings")
    if not explanations:
        raise ScoringInputError("give at least one explanation to rank")
    texts = [check_explanation(e) for e in explanations]
    loaded = load_records(records, limits=options.pop("limits", None))
    done = [0] * len(texts)
    totals = [0] * len(texts)

    def progress_for(position: int) -> Progress | None:
        if progress is None:
            return None

        def report(finished: int, total: int, message: str) -> None:
            done[position], totals[position] = finished, total
            progress(sum(done), max(sum(totals), 1), f"explanation {position + 1}/{len(texts)}: {message}")

        return report

    results = await asyncio.gather(
        *(ascore_explanation(text, loaded, progress=progress_for(i), **options) for i, text in enumerate(texts))
    )
    correct_p_values(list(results))
    return sort_results(list(results))


def rank_explanations(explanations: Sequence[str], records: RecordsInput, **options: Any) -> list[ScoreResult]:
    """Score several explanations on the same records; best first, NaN scores last.

    When the scorer reports a ``p_value`` (binary-condition), each result's
    metrics also get it corrected for the number of explanations tested:
    ``p_value_holm`` (Holm-Bonferroni, the default, copied to
    ``p_value_corrected``) and ``p_value_bh`` (Benjamini-Hochberg).
    """
    return run_sync(arank_explanations(explanations, records, **options))


P_VALUE_CORRECTION = "holm"
"""The correction `p_value_corrected` carries: Holm-Bonferroni, which bounds the chance of any
false discovery among the explanations ranked, with no assumption about how their tests depend."""


def correct_p_values(results: Sequence[ScoreResult]) -> None:
    """Add Holm and Benjamini-Hochberg corrected p-values to results whose metrics hold ``p_value``."""
    tested = [result for result in results if "p_value" in result.metrics]
    if not tested:
        return
    pvalues = [float(result.metrics["p_value"]) for result in tested]
    for result, holm, bh in zip(tested, holm_bonferroni(pvalues), benjamini_hochberg(pvalues), strict=True):
        result.metrics["p_value_holm"] = holm
        result.metrics["p_value_bh"] = bh
        result.metrics["p_value_corrected"] = holm
        result.metrics["p_value_correction"] = P_VALUE_CORRECTION
        result.metrics["comparisons"] = sum(math.isfinite(value) for value in pvalues)


async def ascore_attention_explanation(
    explanation: str,
    attention_records: AttentionInput,
    *,
    simulator: str | Simulator | None = None,
    seed: int = 0,
    cache: CacheOption = True,
    progress: Progress | None = None,
    limits: Limits | None = None,
) -> ScoreResult:
    """Score an explanation of an attention head (async). See `score_attention_explanation`."""
    text = check_explanation(explanation)
    loaded = load_attention_records(attention_records, limits=limits)
    job = ScoringJob(
        explanation=text,
        records=[],
        indices=[],
        real=[],
        simulator=resolve_simulator(simulator),
        cache=resolve_cache(cache),
        normalization="none",
        sampling={
            "strategy": "top+weak pairs",
            "top_pairs": judged.ATTENTION_TOP_PAIRS,
            "weak_pairs": judged.ATTENTION_LOW_PAIRS,
            "seed": seed,
        },
        seed=seed,
        progress=progress,
        attention_records=loaded,
    )
    return await SCORERS["attention-head"](job)


def score_attention_explanation(explanation: str, attention_records: AttentionInput, **options: Any) -> ScoreResult:
    """Score how well `explanation` describes an attention head, with the attention-head scorer.

    `attention_records`: a path, JSON text, parsed JSON or AttentionRecords (see
    `scoring.records.load_attention_records`). Per record, the judge is asked
    about its 5 strongest token pairs and 5 pairs drawn (seeded) below 0.1 x its
    strongest; the score is the ROC-AUC of its P(yes) on strong against weak pairs.
    Options: simulator (one that judges), seed, cache, progress, limits.
    """
    return run_sync(ascore_attention_explanation(explanation, attention_records, **options))


def sort_results(results: list[ScoreResult]) -> list[ScoreResult]:
    return sorted(results, key=lambda r: (math.isnan(r.score), -r.score if not math.isnan(r.score) else 0.0))


def run_sync(coroutine: Awaitable[T]) -> T:
    """Run a coroutine from sync code, also when an event loop already runs (notebooks)."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(coroutine)  # type: ignore[arg-type]
    with concurrent.futures.ThreadPoolExecutor(max_workers=1) as pool:
        return pool.submit(asyncio.run, coroutine).result()  # type: ignore[arg-type]
