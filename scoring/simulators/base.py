"""The one interface every simulator implements.

A simulator reads an explanation and predicts, for every token of every
sequence it is given, how strongly the neuron fires (0..10 scale). Simulators
do only that: caching, concurrency, retries and cost accounting live once in
`scoring.simulators.runner`, around them.

The shared types (`Usage`, `Capabilities`, the `Simulator` and `Explainer`
protocols, ...) live in `scoring.shared_types` and are re-exported here; this
module adds the behaviour: `SyncSimulator`, cooperative stopping and
`check_simulation`.
"""

from __future__ import annotations

import asyncio
import contextvars
import math
import threading
from collections.abc import Sequence
from contextvars import ContextVar
from typing import Any

from scoring.shared_types import (
    Capabilities,
    Explainer,
    ExplanationAttempt,
    ExplanationExample,
    SequenceSimulation,
    SimulationBatch,
    Simulator,
    Usage,
)

__all__ = [
    "Capabilities",
    "Explainer",
    "ExplanationAttempt",
    "ExplanationExample",
    "SequenceSimulation",
    "SimulationBatch",
    "SimulationStopped",
    "Simulator",
    "SyncSimulator",
    "Usage",
    "check_simulation",
    "stop_requested",
]


class SyncSimulator:
    """Base for simulators whose work is blocking Python (in-process models).

    Subclasses implement `simulate_sync`; `simulate` runs it in a worker
    thread so an event loop (server, dashboard) stays responsive. When the
    call is cancelled (a request's deadline), `stop_requested()` turns True
    inside `simulate_sync`, which should check it between sequences and
    return early; `simulate` waits for the thread to end before it passes the
    cancellation on, so the runner's concurrency limit still counts the work.
    """

    name: str = "sync"
    model: str = ""
    prompt_version: str = "0"
    capabilities: Capabilities = Capabilities()

    def options(self) -> dict[str, Any]:
        return {}

    def simulate_sync(
        self, explanation: str, sequences: Sequence[Sequence[str]]
    ) -> SimulationBatch:
        raise NotImplementedError

    async def simulate(
        self, explanation: str, sequences: Sequence[Sequence[str]]
    ) -> SimulationBatch:
        stop = threading.Event()

        def run() -> SimulationBatch:
            token = _STOP.set(stop)
            try:
                return self.simulate_sync(explanation, sequences)
            finally:
                _STOP.reset(token)

        # As asyncio.to_thread does, the thread runs in a copy of the caller's context.
        work = asyncio.get_running_loop().run_in_executor(None, contextvars.copy_context().run, run)
        try:
            return await asyncio.shield(work)
        except asyncio.CancelledError:
            stop.set()
            # The thread cannot be killed: it stops at its next check; until then it holds its slot.
            await asyncio.wait([work])
            raise


_STOP: ContextVar[threading.Event | None] = ContextVar("scoring_simulation_stop", default=None)


class SimulationStopped(Exception):
    """Raised by a `simulate_sync` that saw `stop_requested()`: nobody waits for its result."""


def stop_requested() -> bool:
    """True inside `SyncSimulator.simulate_sync` once its call was cancelled: stop, the result is not wanted."""
    stop = _STOP.get()
    return stop is not None and stop.is_set()


def check_simulation(values: Sequence[float] | None, n_tokens: int, applies: float | None = None) -> SequenceSimulation:
    """Validate a simulator's output for one sequence (its values, and its chance that the explanation applies).

    Wrong length, NaN/inf or values outside 0..10, or a chance that is not a number from 0 to 1,
    become a failed simulation with the reason, never a silent zero.
    """
    if values is None:
        return SequenceSimulation(None, "the simulator returned nothing for this sequence")
    if len(values) != n_tokens:
        return SequenceSimulation(
            None, f"the simulator returned {len(values)} values for {n_tokens} tokens"
        )
    cleaned: list[float] = []
    for value in values:
        try:
            number = float(value)
        except (TypeError, ValueError):
            return SequenceSimulation(None, f"the simulator returned a non-number: {value!r}")
        if not math.isfinite(number):
            return SequenceSimulation(None, f"the simulator returned a non-finite value: {value!r}")
        cleaned.append(min(10.0, max(0.0, number)))
    if applies is not None and not (isinstance(applies, (int, float)) and 0.0 <= applies <= 1.0):  # NaN fails too
        return SequenceSimulation(
            None, f"the simulator's chance that the explanation applies is {applies!r}, not a number from 0 to 1"
        )
    return SequenceSimulation(cleaned, applies=None if applies is None else float(applies))
