"""One factory builds a simulator from a spec (`get_simulator`), one function names the default and why
(`default_choice`), and a new simulator is one class and one registration line (docs/architecture.md)."""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from typing import Any

import pytest

from scoring import (
    SIMULATORS,
    Credentials,
    ScoringInputError,
    default_simulator_choice,
    default_simulator_spec,
    get_simulator,
    load_records,
    register_simulator,
    score_explanation,
)
from scoring.api import resolve_simulator
from scoring.simulators import Capabilities, SequenceSimulation, SimulationBatch
from scoring.simulators.lexical import LexicalSimulator


class ToySimulator:
    """The example of docs/architecture.md: predicts 10 on tokens that contain one word, else 0."""

    name = "toy"
    model = "word-match"
    prompt_version = "1"
    capabilities = Capabilities(cheap=True)

    def __init__(self, argument: str | None) -> None:
        self.word = argument or "fox"

    def options(self) -> dict[str, Any]:
        return {"word": self.word}

    async def simulate(self, explanation: str, sequences: Sequence[Sequence[str]]) -> SimulationBatch:
        return SimulationBatch(
            [SequenceSimulation([10.0 if self.word in token else 0.0 for token in tokens]) for tokens in sequences]
        )


@pytest.fixture
def toy() -> Iterator[None]:
    register_simulator("toy", ToySimulator)
    yield
    SIMULATORS.pop("toy", None)
    from scoring import api

    for spec in [spec for spec in api._simulators if spec.startswith("toy")]:
        del api._simulators[spec]


RECORDS = [
    {"tokens": ["the", " fox", " ran"], "values": [0, 5, 0]},
    {"tokens": ["a", " cat", " sat"], "values": [0, 0, 1]},
    {"tokens": ["fox", "es", " hide"], "values": [4, 0, 0]},
]


@pytest.mark.usefixtures("toy")
def test_a_simulator_registered_by_one_line_scores_through_the_public_api() -> None:
    records = load_records(RECORDS)
    matching = score_explanation("foxes", records, simulator="toy:fox", cache=False)
    missing = score_explanation("foxes", records, simulator="toy:owl", cache=False)
    assert matching.error is None and matching.score > 0.5
    assert [sequence.simulated for sequence in matching.sequences][0] == [0.0, 10.0, 0.0]
    assert math.isnan(missing.score) and missing.error  # predicts nothing anywhere: no evidence, never a 0
    assert "toy" in SIMULATORS
    assert isinstance(get_simulator("toy:owl"), ToySimulator)
    assert resolve_simulator("toy:fox") is resolve_simulator("toy:fox")  # one shared instance per spec


@pytest.mark.usefixtures("toy")
def test_a_name_is_registered_once_and_must_be_a_plain_word() -> None:
    with pytest.raises(ValueError, match="already registered"):
        register_simulator("toy", ToySimulator)
    for name in ("", "to:y", " toy2", None):
        with pytest.raises(ValueError, match="without a colon"):
            register_simulator(name, ToySimulator)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="callable"):
        register_simulator("toy2", "ToySimulator")  # type: ignore[arg-type]
    assert "toy2" not in SIMULATORS


def test_an_unknown_spec_names_the_registered_ones() -> None:
    with pytest.raises(ScoringInputError, match="unknown simulator 'toys'.*lexical"):
        get_simulator("toys")


def test_no_spec_builds_the_default_that_default_choice_names(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SCORING_SIMULATOR", "lexical")
    choice = default_simulator_choice()
    assert (choice.spec, choice.source) == ("lexical", "environment")
    assert default_simulator_spec() == "lexical"
    assert isinstance(get_simulator(), LexicalSimulator)
    assert "SCORING_SIMULATOR" in choice.reason


def test_a_configured_default_that_does_not_build_says_where_it_was_set(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SCORING_SIMULATOR", "lexical:loud")
    for build in (get_simulator, resolve_simulator):
        with pytest.raises(ScoringInputError, match="takes no options.*SCORING_SIMULATOR.*fix or remove it"):
            build(None)


def test_a_spec_from_a_browser_may_not_name_an_environment_variable_as_its_key() -> None:
    stranger = Credentials(api_key="sk-typed", from_operator=False)
    for spec in ("openai:gpt-4o-mini?key_env=HOME", "openai-compatible:m@http://127.0.0.1:9/v1?key_env=HOME"):
        with pytest.raises(ScoringInputError, match="key_env"):
            get_simulator(spec, credentials=stranger)


def test_the_operator_may_name_the_variable_of_the_key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MY_KEY", "sk-operator")
    simulator = get_simulator("openai:gpt-4o-mini?key_env=MY_KEY")
    assert simulator._api_key == "sk-operator"  # type: ignore[attr-defined]


def test_this_machines_key_goes_only_to_the_operators_address(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPENAI_COMPATIBLE_API_KEY", "sk-machine")
    monkeypatch.delenv("OPENAI_BASE_URL", raising=False)
    spec = "openai-compatible:m@http://127.0.0.1:9/v1"
    stranger = Credentials(from_operator=False)
    assert get_simulator(spec, credentials=stranger)._api_key is None  # type: ignore[attr-defined]
    typed = Credentials(api_key="sk-typed", from_operator=False)
    assert get_simulator(spec, credentials=typed)._api_key == "sk-typed"  # type: ignore[attr-defined]
    assert get_simulator(spec)._api_key == "sk-machine"  # type: ignore[attr-defined]
    monkeypatch.setenv("OPENAI_BASE_URL", "http://127.0.0.1:9/v1/")
    assert get_simulator(spec, credentials=stranger)._api_key == "sk-machine"  # type: ignore[attr-defined]
