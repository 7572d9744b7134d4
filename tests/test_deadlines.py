"""One request cannot hold the scoring for long (issue 23, item 3).

- `lexical` costs time linear in the text: the issue's 1 MB body (320 explanation words, tokens of
  hyphen-joined word pieces) once cost sub-words x explanation words, 33 CPU-seconds.
- A deadline stops the work, not just the answer: a cancelled `lexical` simulation stops within one
  sequence, a cancelled blocking simulator sees `stop_requested()` and keeps its slot until it stops.
- Scores take turns on a simulator, chunk by chunk: a small one behind a large one waits for one chunk.
"""

from __future__ import annotations

import asyncio
import json
import random
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import httpx
import pytest

from scoring.simulators import lexical
from scoring.simulators.base import (
    Capabilities,
    SequenceSimulation,
    SimulationBatch,
    SimulationStopped,
    SyncSimulator,
    Usage,
    stop_requested,
)
from scoring.simulators.lexical import MIN_PREFIX, LexicalSimulator, explanation_terms, stem
from scoring.simulators.runner import FairSemaphore, run_simulations
from scoring.words import word_groups
from support.expensive import lexical_attack_body
from support.scoring_server import scoring_servers


def reference_word_strength(word: str, explanation: str) -> float:
    """The rule lexical documents, written the slow and obvious way (every piece against every term)."""
    stems, quoted = explanation_terms(explanation)
    if not word:
        return 0.0
    if word in quoted:
        return 10.0
    best = 0.0
    for piece in lexical._WORD.findall(word):
        piece_stem = stem(piece)
        if piece_stem in stems:
            return 10.0
        for target in stems:
            shorter, longer = sorted((piece_stem, target), key=len)
            if len(shorter) >= MIN_PREFIX and longer.startswith(shorter):
                best = max(best, 6.0)
    return best


def test_lexical_gives_what_the_every_piece_against_every_term_rule_gives() -> None:
    generator = random.Random(23)
    letters = "abcdeor"  # few letters, so that pieces and terms often share long beginnings
    for _ in range(300):
        terms = ["".join(generator.choices(letters, k=generator.randint(2, 9))) for _ in range(generator.randint(1, 6))]
        explanation = " ".join(terms) + (' "quoted bit"' if generator.random() < 0.2 else "")
        def piece() -> str:
            return "".join(generator.choices(letters, k=generator.randint(1, 11)))

        words = ["-".join(piece() for _ in range(generator.randint(1, 3))) for _ in range(20)]
        words += [*terms, "quoted bit", terms[0] + "ing", terms[0][:MIN_PREFIX], ""]
        simulated = asyncio.run(LexicalSimulator().simulate(explanation, [[f" {word}" for word in words]]))
        values = simulated.sequences[0].activations
        assert values is not None
        for word, value in zip(words, values, strict=True):
            assert value == reference_word_strength(word, explanation), (explanation, word)


def test_a_word_of_thousands_of_tokens_is_one_group() -> None:
    tokens = [" w", *(["x"] * 5000), " next"]
    groups = word_groups(tokens)
    assert [word for word, _ in groups] == ["w" + "x" * 5000, "next"]
    assert groups[0][1] == list(range(5001)) and groups[1][1] == [5001]


def test_a_cancelled_lexical_simulation_stops_within_one_sequence(monkeypatch: pytest.MonkeyPatch) -> None:
    """It once ran its whole chunk (64 sequences) on the event loop before a cancel could take effect."""
    grouped: list[int] = []

    async def scenario() -> None:
        task: asyncio.Task[Any] | None = None

        def counting_groups(tokens: Sequence[str]) -> list[tuple[str, list[int]]]:
            grouped.append(len(tokens))
            if len(grouped) == 3:
                assert task is not None
                task.cancel()  # what a request's deadline does to the scoring task
            return word_groups(tokens)

        monkeypatch.setattr(lexical, "word_groups", counting_groups)
        sequences = [[" fox", " ran"] for _ in range(40)]
        task = asyncio.create_task(run_simulations(LexicalSimulator(), "fox", sequences))
        with pytest.raises(asyncio.CancelledError):
            await task

    asyncio.run(scenario())
    assert len(grouped) == 3


class BlockingSimulator(SyncSimulator):
    """A blocking simulator that works until it is told to stop (or a sequence limit), counting sequences."""

    name = "blocking"
    capabilities = Capabilities(max_sequences_per_call=100, max_concurrency=1)

    def __init__(self) -> None:
        self.started = threading.Event()
        self.sequences_done = 0
        self.running = 0
        self.most_running = 0
        self.saw_stop = False
        self.lock = threading.Lock()

    def simulate_sync(self, explanation: str, sequences: Sequence[Sequence[str]]) -> SimulationBatch:
        with self.lock:
            self.running += 1
            self.most_running = max(self.most_running, self.running)
        try:
            self.started.set()
            results = []
            for tokens in sequences:
                if stop_requested():
                    self.saw_stop = True
                    raise SimulationStopped("stopped")
                threading.Event().wait(0.01)
                self.sequences_done += 1
                results.append(SequenceSimulation([1.0] * len(tokens)))
            return SimulationBatch(results, Usage())
        finally:
            with self.lock:
                self.running -= 1


def test_a_cancelled_blocking_simulator_stops_and_holds_its_slot_until_it_has() -> None:
    simulator = BlockingSimulator()
    sequences = [["a", "b"] for _ in range(100)]

    async def scenario() -> list[SequenceSimulation]:
        first = asyncio.create_task(run_simulations(simulator, "a", sequences))
        while not simulator.started.is_set():
            await asyncio.sleep(0.005)
        first.cancel()
        second = asyncio.create_task(run_simulations(simulator, "b", sequences[:2]))
        with pytest.raises(asyncio.CancelledError):
            await first
        outcomes, _, _ = await second
        return outcomes

    outcomes = asyncio.run(scenario())
    assert simulator.saw_stop
    assert simulator.sequences_done < 100 + 2  # the first call stopped short of its 100 sequences
    assert simulator.most_running == 1  # the second call started only once the first thread had stopped
    assert all(outcome.ok for outcome in outcomes)


class RecordingSimulator:
    """An async simulator that logs which explanation each call was for."""

    name = "recording"
    model = "recording"
    prompt_version = "1"
    capabilities = Capabilities(max_sequences_per_call=1, max_concurrency=1)

    def __init__(self) -> None:
        self.calls: list[str] = []

    def options(self) -> dict[str, Any]:
        return {}

    async def simulate(self, explanation: str, sequences: Sequence[Sequence[str]]) -> SimulationBatch:
        self.calls.append(explanation)
        await asyncio.sleep(0.001)
        return SimulationBatch([SequenceSimulation([0.0] * len(tokens)) for tokens in sequences], Usage())


def test_a_small_score_behind_a_large_one_waits_for_one_chunk_not_all() -> None:
    simulator = RecordingSimulator()

    async def scenario() -> None:
        large = asyncio.create_task(run_simulations(simulator, "large", [["a"]] * 10))
        await asyncio.sleep(0)  # the large score's chunks are all queued first
        small = asyncio.create_task(run_simulations(simulator, "small", [["b"]]))
        await asyncio.gather(large, small)

    asyncio.run(scenario())
    assert simulator.calls.index("small") <= 2, simulator.calls
    assert simulator.calls.count("large") == 10


def test_the_fair_semaphore_serves_groups_by_turns_and_survives_cancelled_waiters() -> None:
    order: list[str] = []

    async def scenario() -> None:
        semaphore = FairSemaphore(1)
        everyone_waits = asyncio.Event()

        async def worker(group: str, number: int) -> None:
            async with semaphore.slot(group):
                order.append(f"{group}{number}")
                if group == "h":
                    await everyone_waits.wait()
                await asyncio.sleep(0)

        holder = asyncio.create_task(worker("h", 0))
        await asyncio.sleep(0)
        tasks = [asyncio.create_task(worker("a", number)) for number in range(3)]
        tasks += [asyncio.create_task(worker("b", number)) for number in range(2)]
        doomed = asyncio.create_task(worker("c", 0))
        await asyncio.sleep(0)
        doomed.cancel()
        await asyncio.sleep(0)
        everyone_waits.set()
        await asyncio.gather(holder, *tasks)
        assert semaphore.free == 1 and not semaphore.waiting

    asyncio.run(scenario())
    assert order == ["h0", "a0", "b0", "a1", "b1", "a2"]


def test_the_issues_lexical_attack_leaves_the_server_answering(tmp_path: Path, record_property: Any) -> None:
    """A 1 MB lexical request, then a tiny one: both answered (once, the tiny one waited 57 s, or got 504)."""
    environment = {"SERVER_KEY": "", "SCORING_CACHE_DIR": str(tmp_path / "cache"), "SCORING_REQUEST_TIMEOUT": "20"}
    body = json.dumps(lexical_attack_body()).encode()
    assert len(body) > 900_000
    tiny = {"explanation": "fox", "activations": [{"tokens": ["a", " fox"], "values": [0, 1]}]}

    async def both(url: str) -> tuple[httpx.Response, httpx.Response]:
        async with httpx.AsyncClient(timeout=120) as client:
            attack = asyncio.create_task(
                client.post(f"{url}/score", content=body, headers={"content-type": "application/json"})
            )
            await asyncio.sleep(0.5)
            small = await client.post(f"{url}/score", json=tiny)
            return await attack, small

    with scoring_servers([(tmp_path / "server.log", "lexical", environment)]) as (running,):
        attack, small = asyncio.run(both(running.url))
    record_property("attack_seconds", attack.json().get("seconds"))
    assert small.status_code == 200, small.text
    assert attack.status_code == 200, attack.text
