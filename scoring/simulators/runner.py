"""The one wrapper around every simulator: cache, chunking, concurrency, usage, cost.

Simulators only predict. Here, once for all of them: each sequence is looked
up in the cache; the misses go to the simulator in chunks of
``capabilities.max_sequences_per_call``, at most ``capabilities.max_concurrency``
calls at a time per simulator (shared by every score running on the same event
loop); results are validated; successes are cached, failures never; usage and
cost are added up. Generated explanations (`run_explanations`) go through the
same cache, concurrency limit and cost accounting.
"""

from __future__ import annotations

import asyncio
import logging
import time
import weakref
from collections.abc import Callable, Sequence

from scoring.cache import SimulationCache, explanation_key, simulation_key
from scoring.results import GeneratedExplanation
from scoring.simulators.base import (
    Explainer,
    ExplanationAttempt,
    ExplanationExample,
    SequenceSimulation,
    Simulator,
    Usage,
    check_simulation,
)

logger = logging.getLogger(__name__)

ProgressCallback = Callable[[int, int, str], None]

_semaphores: weakref.WeakKeyDictionary[Simulator | Explainer, tuple[asyncio.AbstractEventLoop, asyncio.Semaphore]] = (
    weakref.WeakKeyDictionary()
)


def _semaphore_for(simulator: Simulator | Explainer) -> asyncio.Semaphore:
    loop = asyncio.get_running_loop()
    entry = _semaphores.get(simulator)
    if entry is None or entry[0] is not loop:
        entry = (loop, asyncio.Semaphore(max(1, simulator.capabilities.max_concurrency)))
        _semaphores[simulator] = entry
    return entry[1]


def price(simulator: Simulator | Explainer, usage: Usage) -> float | None:
    """Cost in USD of the tokens in `usage`, when the simulator's prices are known."""
    capabilities = simulator.capabilities
    if capabilities.cost_per_million_prompt_tokens is None:
        return None
    completion_price = capabilities.cost_per_million_completion_tokens or 0.0
    return (
        usage.prompt_tokens * capabilities.cost_per_million_prompt_tokens
        + usage.completion_tokens * completion_price
    ) / 1e6


async def run_simulations(
    simulator: Simulator,
    explanation: str,
    sequences: Sequence[Sequence[str]],
    cache: SimulationCache | None = None,
    progress: ProgressCallback | None = None,
) -> tuple[list[SequenceSimulation], Usage, list[bool]]:
    """Simulate every sequence; returns results in order, total usage, and which came from the cache."""
    total = len(sequences)
    results: list[SequenceSimulation | None] = [None] * total
    from_cache = [False] * total
    usage = Usage()
    keys = [simulation_key(simulator, explanation, tokens) for tokens in sequences]
    misses: list[int] = []
    for index, (key, tokens) in enumerate(zip(keys, sequences, strict=True)):
        hit = cache.get(key, len(tokens)) if cache is not None else None
        if hit is not None:
            results[index] = SequenceSimulation(hit)
            from_cache[index] = True
        else:
            misses.append(index)
    usage.cache_hits = total - len(misses)
    usage.cache_misses = len(misses)
    done = total - len(misses)
    if progress is not None:
        progress(done, total, f"{done} of {total} sequences from the cache")

    chunk_size = max(1, simulator.capabilities.max_sequences_per_call)
    chunks = [misses[start : start + chunk_size] for start in range(0, len(misses), chunk_size)]
    semaphore = _semaphore_for(simulator) if chunks else None

    async def run_chunk(chunk: list[int]) -> None:
        nonlocal done
        assert semaphore is not None
        async with semaphore:
            started = time.perf_counter()
            try:
                batch = await simulator.simulate(explanation, [list(sequences[i]) for i in chunk])
                outcomes = _check_batch(batch.sequences, [len(sequences[i]) for i in chunk])
                chunk_usage = batch.usage
            except Exception as exc:  # a backend failure is this chunk's NaN, with the reason
                logger.warning("simulator %s failed: %s", simulator.name, exc, exc_info=True)
                message = f"{type(exc).__name__}: {exc}".strip()
                outcomes = [SequenceSimulation(None, message) for _ in chunk]
                chunk_usage = Usage()
            chunk_usage.seconds = time.perf_counter() - started
        for index, outcome in zip(chunk, outcomes, strict=True):
            results[index] = outcome
            if outcome.ok and cache is not None and outcome.activations is not None:
                cache.set(keys[index], outcome.activations, {"simulator": simulator.name})
        usage.add(chunk_usage)
        done += len(chunk)
        if progress is not None:
            progress(done, total, f"simulated {done} of {total} sequences")

    await asyncio.gather(*(run_chunk(chunk) for chunk in chunks))
    if usage.cost_usd is None:
        usage.cost_usd = price(simulator, usage)
    final = [result if result is not None else SequenceSimulation(None, "not simulated") for result in results]
    return final, usage, from_cache


def _check_batch(outcomes: Sequence[SequenceSimulation], lengths: Sequence[int]) -> list[SequenceSimulation]:
    if len(outcomes) != len(lengths):
        reason = f"the simulator returned {len(outcomes)} results for {len(lengths)} sequences"
        return [SequenceSimulation(None, reason) for _ in lengths]
    checked = []
    for outcome, length in zip(outcomes, lengths, strict=True):
        if outcome.error is not None or outcome.activations is None:
            checked.append(SequenceSimulation(None, outcome.error or "the simulator returned no values"))
        else:
            checked.append(check_simulation(outcome.activations, length))
    return checked


MAX_GENERATED_CHARS = 300
"""A generated explanation longer than this is a rambling reply, not an explanation."""

_CUE_PREFIXES = ("explanation:", "description:")
_TRAILING = ".,;: \t"
_QUOTES = "\"'`*“”‘’ \t"


def clean_explanation(text: str | None) -> str:
    """The first non-empty line of a model's reply, without a leading cue, quotes or a final full stop."""
    lines = [line.strip() for line in (text or "").splitlines() if line.strip()]
    if not lines:
        return ""
    line = lines[0]
    for prefix in _CUE_PREFIXES:
        if line.lower().startswith(prefix):
            line = line[len(prefix):].strip()
    previous = None
    while line != previous:  # 'Explanation: "the token X".' needs quotes and full stop peeled in turn
        previous = line
        line = line.strip(_QUOTES).rstrip(_TRAILING)
    return " ".join(line.split())


def _checked(attempt: ExplanationAttempt) -> tuple[str | None, str | None]:
    """(text, None) for a usable explanation, else (None, the reason)."""
    if attempt.error is not None:
        return None, attempt.error
    text = clean_explanation(attempt.text)
    if not text:
        return None, "the model wrote no explanation (an empty reply)"
    if len(text) > MAX_GENERATED_CHARS:
        return None, f"the model wrote {len(text)} characters, not a short explanation: {text[:60]!r}..."
    return text, None


async def run_explanations(
    explainer: Explainer,
    examples: Sequence[ExplanationExample],
    n: int,
    seed: int = 0,
    cache: SimulationCache | None = None,
    progress: ProgressCallback | None = None,
    simulator_id: str = "",
) -> list[GeneratedExplanation]:
    """Attempts 0..n-1 of `explainer`, in order: cached ones read back, the others generated and cached."""
    results: list[GeneratedExplanation | None] = [None] * n
    keys = [explanation_key(explainer, examples, attempt, seed) for attempt in range(n)]
    missing = []
    for attempt, key in enumerate(keys):
        text = cache.get_text(key) if cache is not None else None
        if text is None:
            missing.append(attempt)
        else:
            results[attempt] = GeneratedExplanation(
                text, Usage(cache_hits=1), simulator=simulator_id, attempt=attempt, cached=True
            )
    done = n - len(missing)
    if progress is not None:
        progress(done, n, f"{done} of {n} candidates from the cache")
    semaphore = _semaphore_for(explainer) if missing else None

    async def generate(attempt: int) -> None:
        nonlocal done
        assert semaphore is not None
        async with semaphore:
            started = time.perf_counter()
            try:
                outcome = await explainer.explain(list(examples), attempt, seed)
            except Exception as exc:  # a backend failure is this candidate's error, with the reason
                logger.warning("explainer %s failed: %s", explainer.name, exc, exc_info=True)
                outcome = ExplanationAttempt(None, f"{type(exc).__name__}: {exc}".strip())
            usage = outcome.usage
            usage.seconds = time.perf_counter() - started
        usage.cache_misses = 1
        if usage.cost_usd is None:
            usage.cost_usd = price(explainer, usage)
        text, error = _checked(outcome)
        if text is not None and cache is not None:
            cache.set_text(keys[attempt], text, {"simulator": explainer.name})
        results[attempt] = GeneratedExplanation(text, usage, error, simulator=simulator_id, attempt=attempt)
        done += 1
        if progress is not None:
            progress(done, n, f"generated {done} of {n} candidates")

    await asyncio.gather(*(generate(attempt) for attempt in missing))
    return [result for result in results if result is not None]
