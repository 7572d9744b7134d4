"""Simulator registry: spec strings such as ``local`` or ``openai:gpt-4o-mini``.

A spec is ``NAME`` or ``NAME:ARGUMENT``; the part after the first colon is
handed to the factory registered under NAME. Factories import their module
lazily so that ``import scoring`` never loads a model.

`get_simulator` is the one way to build a simulator from a spec; every face
calls it (the API through `scoring.api.resolve_simulator`, which shares one
instance per spec, the dashboard inside its resource cache). Which spec is
used when none is given, and why, is `scoring.simulators.defaults.default_choice`.

Adding a simulator is one module and one line (docs/architecture.md shows it)::

    register_simulator("toy", lambda argument: ToySimulator(argument))
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import TypeVar

from scoring.errors import ScoringInputError
from scoring.shared_types import Credentials
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
"""Builds a simulator from the part of its spec after the colon (None when there is none)."""
PayingSimulatorFactory = Callable[[str | None, Credentials], Simulator]
"""The same, for a simulator that calls a paid API: it also gets the caller's `Credentials`."""

SIMULATORS: dict[str, SimulatorFactory | PayingSimulatorFactory] = {}
"""Registered simulator names and their factories (argument after the colon, or None)."""
_PAYING: set[str] = set()
"""Names whose factory takes `Credentials` as its second argument."""

Built = TypeVar("Built")

DEFAULT_JUDGE = "local"
"""The spec used when none is given for work that needs yes/no answers or written explanations
(judge scorers, attention heads, generated explanations), which `embedding` cannot do."""

_LOCAL_REASON = (
    "The default simulator is `local` (Qwen2.5-Coder-1.5B, offline). On our development sets it ranks true "
    "explanations above false ones more often than `embedding` (218 of 253 pairs against 172), and on this "
    "machine (a GPU, or a CPU with native bfloat16) it scores 20 texts x 64 tokens in about 20 s. It is weak on "
    "structural explanations: for scores you rely on, use an API model (docs/local-simulator.md)."
)
_EMBEDDING_REASON = (
    "The default simulator is `embedding` (fast, offline). `local` ranks true explanations better on our "
    "development sets (218 of 253 pairs against 172), but this CPU has no native bfloat16, and here `local` takes "
    "{local_time}, over our budgets (30 s and 60 s). Pick `local` if you can wait, or an API model for the best "
    "rankings (docs/local-simulator.md)."
)
_LOCAL_TIME = {
    "q4_k_m": "about 40 s for 20 texts x 64 tokens and 95 s to rank 5 explanations on them on 2 cores "
    "(llama.cpp kernels)",
    "float32": "80-105 s for 20 texts x 64 tokens on 2 cores (torch in float32)",
}


@functools.lru_cache(maxsize=1)
def default_simulator() -> tuple[str, str]:
    """(spec, why) of the simulator used when none is given, chosen by benchmark for this hardware.

    `local` beats `embedding` on the pooled development sets; it fits the 30 s budget for a
    20 x 64 score where it runs in bfloat16 on the CPU or on a GPU, not in float32
    (docs/local-simulator.md). Decided once per process (the check imports torch).
    """
    from scoring.models import device_dtype_for

    device, dtype = device_dtype_for("qwen2.5-coder-1.5b")
    if device == "cuda" or dtype == "bfloat16":
        return "local", _LOCAL_REASON
    return "embedding", _EMBEDDING_REASON.format(local_time=_LOCAL_TIME.get(dtype, _LOCAL_TIME["float32"]))


def register_simulator(
    name: str, factory: SimulatorFactory | PayingSimulatorFactory, *, credentials: bool = False
) -> None:
    """Add a simulator kind: specs ``name`` and ``name:ARGUMENT`` build with ``factory(ARGUMENT or None)``.

    With ``credentials=True`` the factory is called ``factory(argument, credentials)``, for simulators that
    send a key (`Credentials`). A name can be registered once; it may not contain a colon.
    """
    if not isinstance(name, str) or not name or ":" in name or name != name.strip():
        raise ValueError(f"a simulator name is a non-empty word without a colon or spaces around it, got {name!r}")
    if name in SIMULATORS:
        raise ValueError(f"a simulator named {name!r} is already registered")
    if not callable(factory):
        raise TypeError(f"the factory of simulator {name!r} must be callable, got {type(factory).__name__}")
    SIMULATORS[name] = factory
    if credentials:
        _PAYING.add(name)


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


def get_simulator(spec: str | Simulator | None = None, *, credentials: Credentials | None = None) -> Simulator:
    """The one factory: build a simulator from a spec string (an instance is returned as is).

    None builds the default (`scoring.simulators.defaults.default_choice`: the user's setting, else the
    built-in choice for this machine). ``credentials`` (default: the operator's, `Credentials()`) say which
    key a simulator that calls an API sends and whether the spec may read this machine's environment.
    Raises ScoringInputError for a spec that names no registered simulator or has bad options.
    """
    credentials = credentials or Credentials()
    if spec is None:
        return build_default(lambda default: get_simulator(default, credentials=credentials))
    if not isinstance(spec, str):
        if isinstance(spec, Simulator):
            return spec
        raise ScoringInputError(f"simulator must be a spec string or a Simulator, got {type(spec).__name__}")
    name, argument = parse_spec(spec)
    factory = SIMULATORS[name]
    if name in _PAYING:
        return factory(argument, credentials)  # type: ignore[call-arg]
    return factory(argument)  # type: ignore[call-arg]


def build_default(build: Callable[[str], Built], *, judge: bool = False) -> Built:
    """``build(spec)`` of the default spec (with `judge`, the default judge's), as
    `scoring.simulators.defaults.default_choice` names it; when a spec the user configured does not build,
    the error says where it was set."""
    from scoring.simulators.defaults import default_choice

    choice = default_choice(judge)
    try:
        return build(choice.spec)
    except ScoringInputError as exc:
        if choice.source == "built-in":
            raise
        raise ScoringInputError(f"{exc} ({choice.reason[:-1]}; fix or remove it)") from None


def _fake(argument: str | None) -> Simulator:
    from scoring.simulators.fake import FakeSimulator

    return FakeSimulator.from_argument(argument)


def _lexical(argument: str | None) -> Simulator:
    from scoring.simulators.lexical import LexicalSimulator

    if argument:
        raise ScoringInputError(f"the lexical simulator takes no options, got {argument!r}; use plain 'lexical'")
    return LexicalSimulator()


def _openai(argument: str | None, credentials: Credentials) -> Simulator:
    from scoring.simulators.openai_backend import openai_simulator

    return openai_simulator(argument, credentials=credentials)


def _openai_compatible(argument: str | None, credentials: Credentials) -> Simulator:
    from scoring.simulators.openai_backend import compatible_simulator

    return compatible_simulator(argument, credentials=credentials)


def _embedding(argument: str | None) -> Simulator:
    from scoring.simulators.embedding import EmbeddingSimulator

    return EmbeddingSimulator.from_argument(argument)


def _local(argument: str | None) -> Simulator:
    from scoring.simulators.local import LocalSimulator

    return LocalSimulator.from_argument(argument)


register_simulator("fake", _fake)
register_simulator("lexical", _lexical)
register_simulator("openai", _openai, credentials=True)
register_simulator("openai-compatible", _openai_compatible, credentials=True)
register_simulator("embedding", _embedding)
register_simulator("local", _local)

__all__ = [
    "DEFAULT_JUDGE",
    "SIMULATORS",
    "Capabilities",
    "Credentials",
    "Explainer",
    "ExplanationAttempt",
    "ExplanationExample",
    "SequenceSimulation",
    "SimulationBatch",
    "Simulator",
    "SyncSimulator",
    "Usage",
    "build_default",
    "check_simulation",
    "default_simulator",
    "get_simulator",
    "parse_spec",
    "register_simulator",
]
