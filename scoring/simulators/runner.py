"""The one wrapper around every simulator: cache, chunking, concurrency, usage, cost.

Simulators only predict (and judges only answer). Here, once for all of them:
each sequence (or question) is looked up in the cache; the misses go to the
simulator in chunks of ``capabilities.max_sequences_per_call`` (or
``max_questions_per_call``), at most ``capabilities.max_concurrency`` calls at
a time per simulator (shared by every score running on the same event loop,
and by its simulations and judgments, which take turns chunk by chunk); results are validated; successes are
cached, failures never; usage and cost are added up. Generated explanations
(`run_explanations`) and the chat requests of scoring protocols (`run_chats`) go
through the same cache, concurrency limit and cost accounting.
"""

from __future__ import annotations

import asyncio
import logging
import time
import weakref
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Generic, Protocol, TypeVar

from scoring.cache import SimulationCache, chat_key, explanation_key, judgment_key, simulation_key
from scoring.results import GeneratedExplanation
from scoring.shared_types import Progress
from scoring.simulators.base import (
    Explainer,
    ExplanationAttempt,
    ExplanationExample,
    SequenceSimulation,
    Simulator,
    Usage,
    check_simulation,
)
from scoring.simulators.chat import ChatJudge, ChatReply, ChatRequest
from scoring.simulators.judge import Judge, JudgeQuestion, Judgment, check_judgment

logger = logging.getLogger(__name__)

_Caller = Simulator | Judge | Explainer | ChatJudge
"""Whatever the runner sends work to: a simulator, and its judge, explainer and chat sides."""

class FairSemaphore:
    """A semaphore whose waiters are served in turn by group, one call each, not first come first served.

    Every score waits on its simulator's one semaphore with all its chunks at once. Served in arrival
    order, a small request behind a large one would wait for all the large one's chunks; served by turns,
    it waits for at most one chunk of each score ahead of it.
    """

    def __init__(self, value: int) -> None:
        self.free = value
        self.waiting: dict[object, deque[asyncio.Future[None]]] = {}
        """Waiters by group, the group to serve next first."""

    async def acquire(self, group: object) -> None:
        if self.free > 0 and not self.waiting:
            self.free -= 1
            return
        waiter = asyncio.get_running_loop().create_future()
        self.waiting.setdefault(group, deque()).append(waiter)
        try:
            await waiter
        except asyncio.CancelledError:
            if waiter.done() and not waiter.cancelled():
                self.release()  # handed a slot just as it was cancelled: pass the slot on
            else:
                queue = self.waiting.get(group)
                if queue is not None and waiter in queue:
                    queue.remove(waiter)
                    if not queue:
                        del self.waiting[group]
            raise

    def release(self) -> None:
        while self.waiting:
            group = next(iter(self.waiting))
            queue = self.waiting.pop(group)
            waiter = queue.popleft()
            if queue:
                self.waiting[group] = queue  # to the back of the turn
            if not waiter.done():
                waiter.set_result(None)
                return
        self.free += 1

    @asynccontextmanager
    async def slot(self, group: object) -> AsyncIterator[None]:
        await self.acquire(group)
        try:
            yield
        finally:
            self.release()


_semaphores: weakref.WeakKeyDictionary[_Caller, tuple[asyncio.AbstractEventLoop, FairSemaphore]] = (
    weakref.WeakKeyDictionary()
)


def _semaphore_for(simulator: _Caller) -> FairSemaphore:
    loop = asyncio.get_running_loop()
    entry = _semaphores.get(simulator)
    if entry is None or entry[0] is not loop:
        entry = (loop, FairSemaphore(max(1, simulator.capabilities.max_concurrency)))
        _semaphores[simulator] = entry
    return entry[1]


def price(simulator: _Caller, usage: Usage) -> float | None:
    """Cost in USD of the tokens in `usage`, when the simulator's prices are known."""
    capabilities = simulator.capabilities
    if capabilities.cost_per_million_prompt_tokens is None:
        return None
    completion_price = capabilities.cost_per_million_completion_tokens or 0.0
    return (
        usage.prompt_tokens * capabilities.cost_per_million_prompt_tokens
        + usage.completion_tokens * completion_price
    ) / 1e6


Outcome = TypeVar("Outcome")


class Succeeds(Protocol):
    """An outcome that says whether it succeeded (a simulation, a judgment)."""

    @property
    def ok(self) -> bool: ...


Checked = TypeVar("Checked", bound=Succeeds)


async def _run_chunks(
    simulator: _Caller,
    chunks: list[list[int]],
    call: Callable[[list[int]], Awaitable[tuple[list[Outcome], Usage]]],
    failure: Callable[[str], Outcome],
    finished: Callable[[list[int], list[Outcome], Usage], None],
    usage: Usage,
) -> None:
    """Run `call` on every chunk, at most ``max_concurrency`` at a time per simulator, by turns with other
    callers' chunks (`FairSemaphore`).

    An exception fails its chunk's items with the reason (`failure`); `finished`
    receives each chunk's outcomes and its own usage (with its seconds) as it
    completes; usage and time are added up into `usage`.
    """
    semaphore = _semaphore_for(simulator) if chunks else None
    group = object()

    async def run_chunk(chunk: list[int]) -> None:
        assert semaphore is not None
        async with semaphore.slot(group):
            started = time.perf_counter()
            try:
                outcomes, chunk_usage = await call(chunk)
            except Exception as exc:  # a backend failure is this chunk's NaN, with the reason
                logger.warning("simulator %s failed: %s", simulator.name, exc, exc_info=True)
                message = f"{type(exc).__name__}: {exc}".strip()
                outcomes, chunk_usage = [failure(message) for _ in chunk], Usage()
            chunk_usage.seconds = time.perf_counter() - started
        usage.add(chunk_usage)
        finished(chunk, outcomes, chunk_usage)

    await asyncio.gather(*(run_chunk(chunk) for chunk in chunks))
    if usage.cost_usd is None:
        usage.cost_usd = price(simulator, usage)


def _chunked(indices: list[int], size: int) -> list[list[int]]:
    size = max(1, size)
    return [indices[start : start + size] for start in range(0, len(indices), size)]


@dataclass(frozen=True)
class _Work(Generic[Checked]):
    """One kind of work the runner sends out: what its parts are called, and how one fails."""

    failure: Callable[[str], Checked]
    """The outcome of an item that got no answer, with the reason."""
    answerer: str
    """Who answers: "simulator", "judge"."""
    answers: str
    """What it sends back: "results", "answers", "replies"."""
    noun: str
    """What it is sent: "sequences", "questions", "requests"."""
    verb: str
    """What is done to them: "simulated", "judged", "answered"."""


_SIMULATIONS = _Work(lambda reason: SequenceSimulation(None, reason), "simulator", "results", "sequences", "simulated")
_JUDGMENTS = _Work(lambda reason: Judgment(None, reason), "judge", "answers", "questions", "judged")
_CHATS = _Work(lambda reason: ChatReply(None, reason), "judge", "replies", "requests", "answered")


async def _run_cached(
    caller: _Caller,
    work: _Work[Checked],
    total: int,
    cache: SimulationCache | None,
    *,
    lookup: Callable[[SimulationCache, int], Checked | None],
    call: Callable[[list[int]], Awaitable[tuple[Sequence[Checked], Usage]]],
    check: Callable[[int, Checked], Checked],
    store: Callable[[SimulationCache, int, Checked], None],
    chunk_size: int,
    progress: Progress | None,
) -> tuple[list[Checked], Usage, list[bool]]:
    """Items 0..total-1: cache hits (`lookup`) read back, the misses sent to `call` in chunks and `store`d.

    `call` answers a chunk with one outcome per item (any other count fails the whole chunk),
    each then passed through `check` with its index; only successes are `store`d, and
    `lookup` and `store` run only when there is a cache.
    Returns the outcomes in order, the total usage and which came from the cache.
    Progress reads "<done> of <total> <noun> from the cache", then "<verb> <done>
    of <total> <noun>", counting only the successes ("(<n> failed)" after them);
    an item left without an outcome fails as "not <verb>".
    """
    noun, verb = work.noun, work.verb
    results: list[Checked | None] = [None] * total
    from_cache = [False] * total
    usage = Usage()
    misses: list[int] = []
    for index in range(total):
        hit = lookup(cache, index) if cache is not None else None
        if hit is not None:
            results[index] = hit
            from_cache[index] = True
        else:
            misses.append(index)
    usage.cache_hits = total - len(misses)
    usage.cache_misses = len(misses)
    done = total - len(misses)
    if progress is not None:
        progress(done, total, f"{done} of {total} {noun} from the cache")

    async def checked_call(chunk: list[int]) -> tuple[list[Checked], Usage]:
        outcomes, chunk_usage = await call(chunk)
        if len(outcomes) != len(chunk):
            reason = f"the {work.answerer} returned {len(outcomes)} {work.answers} for {len(chunk)} {noun}"
            return [work.failure(reason) for _ in chunk], chunk_usage
        return [check(index, outcome) for index, outcome in zip(chunk, outcomes, strict=True)], chunk_usage

    failed = 0

    def finished(chunk: list[int], outcomes: list[Checked], _usage: Usage) -> None:
        nonlocal done, failed
        for index, outcome in zip(chunk, outcomes, strict=True):
            results[index] = outcome
            if outcome.ok and cache is not None:
                store(cache, index, outcome)
        done += len(chunk)
        failed += sum(not outcome.ok for outcome in outcomes)
        if progress is not None:
            failures = f" ({failed} failed)" if failed else ""
            progress(done, total, f"{verb} {done - failed} of {total} {noun}{failures}")

    await _run_chunks(caller, _chunked(misses, chunk_size), checked_call, work.failure, finished, usage)
    final = [result if result is not None else work.failure(f"not {verb}") for result in results]
    return final, usage, from_cache


def _unchecked(_index: int, outcome: Checked) -> Checked:
    return outcome


async def run_simulations(
    simulator: Simulator,
    explanation: str,
    sequences: Sequence[Sequence[str]],
    cache: SimulationCache | None = None,
    progress: Progress | None = None,
) -> tuple[list[SequenceSimulation], Usage, list[bool]]:
    """Simulate every sequence; returns results in order, total usage, and which came from the cache."""
    keys = [simulation_key(simulator, explanation, tokens) for tokens in sequences]

    def lookup(cache: SimulationCache, index: int) -> SequenceSimulation | None:
        return cache.get_simulation(keys[index], len(sequences[index]))

    async def call(chunk: list[int]) -> tuple[Sequence[SequenceSimulation], Usage]:
        batch = await simulator.simulate(explanation, [list(sequences[i]) for i in chunk])
        return batch.sequences, batch.usage

    def check(index: int, outcome: SequenceSimulation) -> SequenceSimulation:
        if outcome.error is not None or outcome.activations is None:
            return SequenceSimulation(None, outcome.error or "the simulator returned no values")
        return check_simulation(outcome.activations, len(sequences[index]), outcome.applies)

    def store(cache: SimulationCache, index: int, outcome: SequenceSimulation) -> None:
        if outcome.activations is not None:
            cache.set(keys[index], outcome.activations, {"simulator": simulator.name}, applies=outcome.applies)

    chunk_size = simulator.capabilities.max_sequences_per_call
    return await _run_cached(
        simulator, _SIMULATIONS, len(sequences), cache,
        lookup=lookup, call=call, check=check, store=store, chunk_size=chunk_size, progress=progress,
    )


async def run_judgments(
    judge: Judge,
    questions: Sequence[JudgeQuestion],
    cache: SimulationCache | None = None,
    progress: Progress | None = None,
) -> tuple[list[Judgment], Usage, list[bool]]:
    """Answer every question; returns judgments in order, total usage, and which came from the cache."""
    keys = [judgment_key(judge, question) for question in questions]

    def lookup(cache: SimulationCache, index: int) -> Judgment | None:
        hit = cache.get_judgment(keys[index])
        return Judgment(hit) if hit is not None else None

    async def call(chunk: list[int]) -> tuple[Sequence[Judgment], Usage]:
        batch = await judge.judge([questions[i] for i in chunk])
        return batch.judgments, batch.usage

    def store(cache: SimulationCache, index: int, outcome: Judgment) -> None:
        if outcome.p_yes is not None:
            cache.set_judgment(keys[index], outcome.p_yes, {"simulator": judge.name})

    chunk_size = judge.capabilities.max_questions_per_call
    return await _run_cached(
        judge, _JUDGMENTS, len(questions), cache,
        lookup=lookup, call=call, check=lambda _index, judgment: check_judgment(judgment), store=store,
        chunk_size=chunk_size, progress=progress,
    )


async def run_chats(
    judge: ChatJudge,
    requests: Sequence[ChatRequest],
    cache: SimulationCache | None = None,
    progress: Progress | None = None,
) -> tuple[list[ChatReply], Usage, list[bool]]:
    """Answer every protocol chat request; returns replies in order, total usage, and which came from the cache.

    Replies with text are cached (under the request with its run number, so the k runs of a
    sampled judge stay k draws); failed calls and empty replies never are.
    """
    keys = [chat_key(judge, request) for request in requests]

    def lookup(cache: SimulationCache, index: int) -> ChatReply | None:
        text = cache.get_text(keys[index])
        return ChatReply(text) if text is not None else None

    async def call(chunk: list[int]) -> tuple[Sequence[ChatReply], Usage]:
        batch = await judge.chat([requests[i] for i in chunk])
        return batch.replies, batch.usage

    def store(cache: SimulationCache, index: int, outcome: ChatReply) -> None:
        if outcome.text and outcome.text.strip():
            cache.set_text(keys[index], outcome.text, {"simulator": judge.name, "entry": "chat"})

    chunk_size = judge.capabilities.max_questions_per_call
    return await _run_cached(
        judge, _CHATS, len(requests), cache,
        lookup=lookup, call=call, check=_unchecked, store=store, chunk_size=chunk_size, progress=progress,
    )


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
    progress: Progress | None = None,
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

    async def call(chunk: list[int]) -> tuple[list[ExplanationAttempt], Usage]:
        outcome = await explainer.explain(list(examples), chunk[0], seed)
        return [outcome], outcome.usage

    def finished(chunk: list[int], outcomes: list[ExplanationAttempt], usage: Usage) -> None:
        nonlocal done
        attempt, outcome = chunk[0], outcomes[0]
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

    chunks = [[attempt] for attempt in missing]
    await _run_chunks(explainer, chunks, call, lambda reason: ExplanationAttempt(None, reason), finished, Usage())
    return [result for result in results if result is not None]
