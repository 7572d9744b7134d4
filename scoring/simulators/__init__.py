"""Simulator registry: spec strings such as ``local`` or ``openai:gpt-4o-mini``.

A spec is ``NAME`` or ``NAME:ARGUMENT``; the part after the first colon is
handed to the factory registered under NAME. Factories import their module
lazily so that ``import scoring`` never loads a model.
"""

from __future__ import annotations

from collections.abc import Callable

from scoring.errors import ScoringInputError
from scoring.simulators.base import (
    Capabilities,
    Explainer,
    ExplanationAttempt,
    ExplanationExample,
    SequenceSimulation,
    SimulationBatch,
    Simulator,
    SyncSimulator,
    Usage,
    check_simulation,
)

SimulatorFactory = Callable[[str | None], Simulator]

SIMULATORS: dict[str, SimulatorFactory] = {}
"""Registered simulator names and their factories (argument after the colon, or None)."""

DEFAULT_SIMULATOR = "embedding"
"""The spec used when none is given (library, CLI, server, batch, dashboard); chosen by benchmark."""

DEFAULT_JUDGE = "local"
"""The spec used when none is given for work that needs yes/no answers or written explanations
(judge scorers, attention heads, generated explanations), which `embedding` cannot do."""

DEFAULT_SIMULATOR_REASON = (
    "The default simulator is `embedding`: on our development sets the embedded language model "
    "(`local`, Qwen2.5-Coder-1.5B reading the explanation and listing the words that fit) ranks true "
    "explanations above false ones more often, but one score of 20 texts x 64 tokens takes "
    "{local_seconds} on 2 CPU cores, over our 30 s budget. Choose `local` when you can wait or have a GPU, "
    "or an API model for the best rankings (docs/local-simulator.md)."
)
"""Why the default is what it is, for the dashboard to show."""


def register_simulator(name: str, factory: SimulatorFactory) -> None:
    """Add a simulator kind; a name can be registered once."""
    if name in SIMULATORS:
        raise ValueError(f"a simulator named {name!r} is already registered")
    SIMULATORS[name] = factory


def parse_spec(spec: str) -> tuple[str, str | None]:
    """Split ``NAME[:ARGUMENT]``; raises ScoringInputError on an unknown name."""
    if not isinstance(spec, str) or not spec.strip():
        raise ScoringInputError(
            f"simulator spec must be a non-empty string such as 'lexical' or 'local', got {spec!r}"
        )
    name, _, argument = spec.strip().partition(":")
    if name not in SIMULATORS:
        known = ", ".join(sorted(SIMULATORS))
        raise ScoringInputError(f"unknown simulator {name!r}; choose one of: {known}")
    return name, (argument or None)


def get_simulator(spec: str | Simulator = "lexical") -> Simulator:
    """Build a simulator from a spec string (an instance is returned as is)."""
    if not isinstance(spec, str):
        if isinstance(spec, Simulator):
            return spec
        raise ScoringInputError(f"simulator must be a spec string or a Simulator, got {type(spec).__name__}")
    name, argument = parse_spec(spec)
    return SIMULATORS[name](argument)


def _fake(argument: str | None) -> Simulator:
    from scoring.simulators.fake import FakeSimulator

    return FakeSimulator.from_argument(argument)


def _lexical(argument: str | None) -> Simulator:
    from scoring.simulators.lexical import LexicalSimulator

    return LexicalSimulator()


def _openai(argument: str | None) -> Simulator:
    from scoring.simulators.openai_backend import openai_simulator

    return openai_simulator(argument)


def _openai_compatible(argument: str | None) -> Simulator:
    from scoring.simulators.openai_backend import compatible_simulator

    return compatible_simulator(argument)


def _embedding(argument: str | None) -> Simulator:
    from scoring.simulators.embedding import EmbeddingSimulator

    return EmbeddingSimulator.from_argument(argument)


def _local(argument: str | None) -> Simulator:
    from scoring.simulators.local import LocalSimulator

    return LocalSimulator.from_argument(argument)


register_simulator("fake", _fake)
register_simulator("lexical", _lexical)
register_simulator("openai", _openai)
register_simulator("openai-compatible", _openai_compatible)
register_simulator("embedding", _embedding)
register_simulator("local", _local)

__all__ = [
    "DEFAULT_JUDGE",
    "DEFAULT_SIMULATOR",
    "DEFAULT_SIMULATOR_REASON",
    "SIMULATORS",
    "Capabilities",
    "Explainer",
    "ExplanationAttempt",
    "ExplanationExample",
    "SequenceSimulation",
    "SimulationBatch",
    "Simulator",
    "SyncSimulator",
    "Usage",
    "check_simulation",
    "get_simulator",
    "parse_spec",
    "register_simulator",
]
