"""The `local` simulator: a packaged small language model run in-process, offline.

These tests load the real model from its PyPI package (no network) and are
marked `model`. The cases are small, invented here, and far from the benchmarks.
"""

from __future__ import annotations

import math

import pytest

from scoring.job import simulator_id
from scoring.metrics import pearson
from scoring.simulators import get_simulator
from scoring.simulators.base import Simulator
from scoring.simulators.local import CONTEXT_TOKENS, LocalSimulator

pytestmark = pytest.mark.model

# Each case: tokens, the tokens that should fire, a correct explanation, a wrong one.
CASES = [
    (
        ["We", " fed", " the", " horse", " and", " the", " goat", " before", " lunch", "."],
        {" horse", " goat"},
        "farm animals",
        "meals and times of day",
    ),
    (
        ["She", " wore", " a", " red", " scarf", " and", " green", " boots", " today", "."],
        {" red", " green"},
        "colors",
        "clothing items",
    ),
    (
        ["The", " train", " left", " Madrid", " and", " reached", " Lisbon", " at", " noon", "."],
        {" Madrid", " Lisbon"},
        "names of cities",
        "words about time",
    ),
]


@pytest.fixture(scope="module")
def simulator() -> LocalSimulator:
    built = get_simulator("local")
    assert isinstance(built, LocalSimulator)
    return built


def _real(tokens: list[str], active: set[str]) -> list[float]:
    return [10.0 if token in active else 0.0 for token in tokens]


def test_satisfies_the_protocol(simulator: LocalSimulator) -> None:
    assert isinstance(simulator, Simulator)
    assert simulator.name == "local"
    assert simulator.capabilities.max_concurrency == 1
    assert simulator.prompt_version
    assert simulator.options()["method"] == simulator.method


@pytest.mark.parametrize("tokens, active, right, wrong", CASES)
def test_ranks_the_correct_explanation_first(
    simulator: LocalSimulator, tokens: list[str], active: set[str], right: str, wrong: str
) -> None:
    real = _real(tokens, active)
    right_values = simulator.simulate_sync(right, [tokens]).sequences[0].activations
    wrong_values = simulator.simulate_sync(wrong, [tokens]).sequences[0].activations
    assert right_values is not None and wrong_values is not None
    right_score = pearson(real, right_values)
    wrong_score = pearson(real, wrong_values)
    assert right_score > wrong_score, (right_score, wrong_score)


def test_output_shape_and_range(simulator: LocalSimulator) -> None:
    sequences = [case[0] for case in CASES] + [["x"], ["\n", " ", "tab\t", "ü", "😀"]]
    batch = simulator.simulate_sync("farm animals", sequences)
    assert len(batch.sequences) == len(sequences)
    for tokens, simulation in zip(sequences, batch.sequences, strict=True):
        assert simulation.ok, simulation.error
        assert simulation.activations is not None
        assert len(simulation.activations) == len(tokens)
        assert all(0.0 <= value <= 10.0 and math.isfinite(value) for value in simulation.activations)
    assert batch.usage.prompt_tokens > 0


def test_same_input_same_output(simulator: LocalSimulator) -> None:
    tokens = CASES[0][0]
    first = simulator.simulate_sync("farm animals", [tokens]).sequences[0].activations
    second = simulator.simulate_sync("farm animals", [tokens]).sequences[0].activations
    assert first == second
    # Whatever ran in between (other rules, other texts, other methods), the same input gives the same values.
    simulator.simulate_sync("colors", [CASES[1][0], tokens])
    get_simulator("local:method=contrastive").simulate_sync("farm animals", [tokens])
    third = simulator.simulate_sync("farm animals", [CASES[2][0], tokens]).sequences[1].activations
    assert third == first


def test_defaults_pointer_on_smollm2_and_gemma_to_judge(simulator: LocalSimulator) -> None:
    assert simulator.method == "pointer"
    assert simulator.prompt_version == "local-pointer-1"
    assert simulator.model_key == "smollm2" and simulator.text_model_key == "gemma-3-270m"
    chosen = get_simulator("local:model=gemma-3-270m")
    assert isinstance(chosen, LocalSimulator)
    assert chosen.model_key == chosen.text_model_key == "gemma-3-270m"
    assert chosen.model != simulator.model  # the simulation model enters the cache key
    # Judged scores and written explanations name the model that wrote them.
    assert simulator_id(simulator) == "local:smollm2-135m-instruct-q4_1"
    assert simulator_id(simulator, writing=True) == "local:gemma-3-270m-q4_k_m"


def test_pointer_gives_a_word_the_same_value_on_all_its_pieces(simulator: LocalSimulator) -> None:
    tokens = ["The", " sh", "elled", " peas", " cost", " 16", "87", " coins", "."]
    values = simulator.simulate_sync("vegetables", [tokens]).sequences[0].activations
    assert values is not None
    assert values[1] == values[2] and values[5] == values[6]
    assert values[3] > values[4], values  # peas (a vegetable) above cost


def test_floor_sets_where_the_pointer_values_reach_zero(simulator: LocalSimulator) -> None:
    tokens = CASES[0][0]
    steep = get_simulator("local:floor=-5")
    assert isinstance(steep, LocalSimulator)
    assert simulator.floor == -15.0 and steep.floor == -5.0
    assert steep.options()["floor"] == -5.0 != simulator.options()["floor"]  # part of the cache key
    default = simulator.simulate_sync("farm animals", [tokens]).sequences[0].activations
    values = steep.simulate_sync("farm animals", [tokens]).sequences[0].activations
    assert default is not None and values is not None
    # Both map the same log-probability linearly: 10 at 0 nats, 0 at the floor.
    for wide, narrow in zip(default, values, strict=True):
        assert narrow == pytest.approx(max(0.0, 3.0 * wide - 20.0), abs=1e-9)
    assert sum(value == 0.0 for value in values) > sum(value == 0.0 for value in default)


@pytest.mark.parametrize("method", ["contrastive", "slots", "list"])
def test_other_methods_run(simulator: LocalSimulator, method: str) -> None:
    other = get_simulator(f"local:method={method}")
    tokens = CASES[1][0]
    simulation = other.simulate_sync("colors", [tokens]).sequences[0]
    assert simulation.ok and simulation.activations is not None
    assert len(simulation.activations) == len(tokens)
    assert other.prompt_version != simulator.prompt_version


# Fewer input tokens than the records' limit, but more model tokens than the context holds.
TOO_LONG = [" Pneumonoultramicroscopicsilicovolcanoconiosis"] * (CONTEXT_TOKENS // 4)


def test_too_long_sequence_fails_with_a_reason_not_a_zero(simulator: LocalSimulator) -> None:
    too_long = TOO_LONG
    batch = simulator.simulate_sync("farm animals", [too_long, CASES[0][0]])
    failed, fine = batch.sequences
    assert failed.activations is None
    assert failed.error and "context" in failed.error
    assert fine.ok


def test_score_of_a_failed_sequence_is_nan_with_the_reason() -> None:
    from scoring import ActivationRecord, score_explanation

    records = [ActivationRecord(TOO_LONG, [0.0] * (len(TOO_LONG) - 1) + [5.0])]
    result = score_explanation("farm animals", records, simulator="local", cache=False)
    assert math.isnan(result.score)
    assert result.error


@pytest.mark.parametrize("method", ["pointer-chat", "list-chat"])
def test_chat_form_runs_and_ranks(simulator: LocalSimulator, method: str) -> None:
    chat = LocalSimulator(model="smollm2", method=method)
    tokens, active, right, wrong = CASES[1]
    real = _real(tokens, active)
    right_values = chat.simulate_sync(right, [tokens]).sequences[0].activations
    wrong_values = chat.simulate_sync(wrong, [tokens]).sequences[0].activations
    assert right_values is not None and wrong_values is not None
    assert pearson(real, right_values) > pearson(real, wrong_values)
    assert chat.prompt_version != simulator.prompt_version


def test_list_method_gives_listed_words_ten_and_others_half_their_pointer_value(simulator: LocalSimulator) -> None:
    from scoring.simulators import local

    tokens = CASES[1][0]
    listing = LocalSimulator(model="smollm2", method="list-chat")
    pointing = LocalSimulator(model="smollm2", method="pointer-chat")
    values = listing.simulate_sync("colors", [tokens]).sequences[0].activations
    pointer = pointing.simulate_sync("colors", [tokens]).sequences[0].activations
    assert values is not None and pointer is not None
    model = local.load_model("smollm2")
    with model.lock:
        listed = {word for word, _ in local.answer_list(model, "colors", tokens, chat=True)}
    assert listed, "the model named no word at all"
    for token, value, first_slot in zip(tokens, values, pointer, strict=True):
        expected = 10.0 if token.strip() in listed else first_slot * local.LIST_UNLISTED_SHARE
        assert value == pytest.approx(expected, abs=1e-9), token


def test_local_large_runs_the_larger_model_when_installed() -> None:
    from scoring.simulators.local import LARGE_MODEL, model_installed

    if not model_installed(LARGE_MODEL):
        pytest.skip("local-large's model is not installed (pip install -r requirements-large.txt)")
    large = get_simulator("local-large")
    assert isinstance(large, LocalSimulator) and large.model_key == LARGE_MODEL
    for tokens, active, right, wrong in CASES:
        real = _real(tokens, active)
        right_values = large.simulate_sync(right, [tokens]).sequences[0].activations
        wrong_values = large.simulate_sync(wrong, [tokens]).sequences[0].activations
        assert right_values is not None and wrong_values is not None
        assert pearson(real, right_values) > pearson(real, wrong_values), (right, wrong)
