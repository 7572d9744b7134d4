"""The `local` simulator: a packaged small language model run in-process, offline.

These tests load the real models from their PyPI packages (no network) and are
marked `model`; the spec checks load nothing. The cases are small, invented here, and far from
the benchmarks.
"""

from __future__ import annotations

import math

import pytest

from scoring import models
from scoring.errors import ScoringInputError
from scoring.metrics import pearson
from scoring.scorers import simulator_id
from scoring.simulators import get_simulator, local
from scoring.simulators.base import Simulator
from scoring.simulators.forward import MAX_PROMPT_TOKENS
from scoring.simulators.local import LocalSimulator

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


@pytest.fixture(scope="module")
def small() -> LocalSimulator:
    """The fast packaged model, for the checks that do not depend on which model simulates."""
    return LocalSimulator(model="gemma-3-270m", method="pointer")


def _real(tokens: list[str], active: set[str]) -> list[float]:
    return [10.0 if token in active else 0.0 for token in tokens]


def test_the_default_spec_and_roles() -> None:
    built = get_simulator("local")
    assert isinstance(built, LocalSimulator) and isinstance(built, Simulator)
    assert (built.simulator_model, built.method) == (local.DEFAULT_MODEL, local.DEFAULT_METHOD)
    assert built.text_model_key == local.DEFAULT_TEXT_MODEL
    assert built.prompt_version == local._PROMPT_VERSIONS[local.DEFAULT_METHOD]
    # The dtype the weights run in is part of the cache key: int8, bfloat16 and float32 give slightly different numbers.
    dtype = models.device_dtype_for(local.DEFAULT_MODEL)[1]
    assert built.options() == {"method": built.method, "text_model": built.text_model, "floor": -15.0, "dtype": dtype}
    # Results name the model that produced them: simulations by the simulating model, judgments and
    # explanations by the text model.
    assert simulator_id(built) == f"local:{built.model}"
    assert simulator_id(built, writing=True) == f"local:{built.text_model}"
    other = get_simulator("local:model=gemma-3-270m&method=pointer")
    assert isinstance(other, LocalSimulator)
    assert other.simulator_model == other.text_model_key == "gemma-3-270m"
    assert other.model != built.model or other.method != built.method  # either enters the cache key


@pytest.mark.parametrize(
    "spec, message",
    [
        ("local:method=guess", "unknown local method 'guess'; choose one of: pointer"),
        ("local:method=contrastive", "unknown local method 'contrastive'"),
        ("local:model=nothing", "unknown local model 'nothing'; choose one of: gemma-3-270m"),
        ("local:text_model=nothing", "unknown local text_model 'nothing'"),
        ("local:speed=fast", r"unknown local simulator option\(s\) \['speed'\]; use model="),
        ("local:threads=2", r"unknown local simulator option\(s\) \['threads'\]"),
        ("local:model=gemma-3-270m&method=pointer-chat", "writes ChatML turns, which gemma-3-270m was not trained on"),
        ("local:model=gemma-3-270m&method=list-chat", "use it with model=qwen2.5-coder-1.5b"),
        ("local:floor=five", "floor must be a negative number of nats"),
        ("local:floor=5", "floor=5.0: a floor is a log-probability in nats between -100 and 0"),
        ("local:floor=nan", "floor=nan"),
        ("local:floor=-500", "floor=-500.0"),
        ("local:gate=yes", "gate must be on or off, got 'yes'"),
        ("local:model=gemma-3-270m&method=pointer&gate=on", "method pointer writes no list: use it with method=list"),
    ],
)
def test_bad_specs_say_what_to_fix(spec: str, message: str) -> None:
    with pytest.raises(ScoringInputError, match=message):
        get_simulator(spec)


@pytest.mark.model
@pytest.mark.parametrize("tokens, active, right, wrong", CASES)
def test_the_default_ranks_the_correct_explanation_first(
    simulator: LocalSimulator, tokens: list[str], active: set[str], right: str, wrong: str
) -> None:
    real = _real(tokens, active)
    right_values = simulator.simulate_sync(right, [tokens]).sequences[0].activations
    wrong_values = simulator.simulate_sync(wrong, [tokens]).sequences[0].activations
    assert right_values is not None and wrong_values is not None
    assert pearson(real, right_values) > pearson(real, wrong_values), (right_values, wrong_values)


@pytest.mark.model
def test_output_shape_and_range(small: LocalSimulator) -> None:
    sequences = [case[0] for case in CASES] + [["x"], ["\n", " ", "tab\t", "ü", "😀"], [], [" ", "\n"]]
    batch = small.simulate_sync("farm animals", sequences)
    assert len(batch.sequences) == len(sequences)
    for tokens, simulation in zip(sequences, batch.sequences, strict=True):
        assert simulation.ok, simulation.error
        assert simulation.activations is not None
        assert len(simulation.activations) == len(tokens)
        assert all(0.0 <= value <= 10.0 and math.isfinite(value) for value in simulation.activations)
    assert batch.usage.prompt_tokens > 0


@pytest.mark.model
def test_a_sequence_gets_the_same_values_alone_or_in_a_batch(small: LocalSimulator) -> None:
    tokens = CASES[0][0]
    alone = small.simulate_sync("farm animals", [tokens]).sequences[0].activations
    assert small.simulate_sync("farm animals", [tokens]).sequences[0].activations == alone
    small.simulate_sync("colors", [CASES[1][0], tokens])
    batched = small.simulate_sync("farm animals", [CASES[2][0], tokens, CASES[1][0]]).sequences[1].activations
    assert alone is not None and batched is not None
    # Padding is masked out, so only the order of floating-point sums differs.
    assert batched == pytest.approx(alone, abs=0.05)


@pytest.mark.model
def test_pointer_gives_a_word_the_same_value_on_all_its_pieces(small: LocalSimulator) -> None:
    tokens = ["The", " sh", "elled", " peas", " cost", " 16", "87", " coins", "."]
    values = small.simulate_sync("vegetables", [tokens]).sequences[0].activations
    assert values is not None
    assert values[1] == values[2] and values[5] == values[6]
    assert values[3] > values[4], values  # peas (a vegetable) above cost


@pytest.mark.model
def test_floor_sets_where_the_pointer_values_reach_zero(small: LocalSimulator) -> None:
    tokens = CASES[0][0]
    steep = LocalSimulator(model="gemma-3-270m", method="pointer", floor=-5)
    assert steep.options()["floor"] == -5.0 != small.options()["floor"]  # part of the cache key
    default = small.simulate_sync("farm animals", [tokens]).sequences[0].activations
    values = steep.simulate_sync("farm animals", [tokens]).sequences[0].activations
    assert default is not None and values is not None
    # Both map the same log-probability linearly: 10 at 0 nats, 0 at the floor.
    for wide, narrow in zip(default, values, strict=True):
        assert narrow == pytest.approx(min(10.0, max(0.0, 3.0 * wide - 20.0)), abs=1e-6)
    assert sum(value == 0.0 for value in values) > sum(value == 0.0 for value in default)


# Fewer input tokens than the records' limit, but more model tokens than a prompt may hold.
TOO_LONG = [" Pneumonoultramicroscopicsilicovolcanoconiosis"] * (MAX_PROMPT_TOKENS // 4)


@pytest.mark.model
def test_too_long_sequence_fails_with_a_reason_not_a_zero(small: LocalSimulator) -> None:
    batch = small.simulate_sync("farm animals", [TOO_LONG, CASES[0][0]])
    failed, fine = batch.sequences
    assert failed.activations is None
    assert failed.error and "model tokens but at most" in failed.error
    assert fine.ok


@pytest.mark.model
def test_score_of_a_failed_sequence_is_nan_with_the_reason(small: LocalSimulator) -> None:
    from scoring import ActivationRecord, score_explanation

    records = [ActivationRecord(TOO_LONG, [0.0] * (len(TOO_LONG) - 1) + [5.0])]
    result = score_explanation("farm animals", records, simulator=small, cache=False)
    assert math.isnan(result.score)
    assert result.error and "model tokens" in result.error


@pytest.mark.model
def test_list_method_gives_listed_words_ten_and_others_half_their_pointer_value() -> None:
    tokens = CASES[1][0]
    listing = LocalSimulator(model="qwen2.5-coder-1.5b", method="list-chat")
    pointing = LocalSimulator(model="qwen2.5-coder-1.5b", method="pointer-chat")
    values = listing.simulate_sync("colors", [tokens]).sequences[0].activations
    pointer = pointing.simulate_sync("colors", [tokens]).sequences[0].activations
    assert values is not None and pointer is not None
    listed = {token.strip() for token, value in zip(tokens, values, strict=True) if value == 10.0}
    assert {"red", "green"} <= listed, values
    for token, value, first_slot in zip(tokens, values, pointer, strict=True):
        if token.strip() not in listed:
            assert value == pytest.approx(first_slot * local.LIST_UNLISTED_SHARE, abs=0.05), token


@pytest.mark.model
def test_text_first_runs_each_text_once_for_all_explanations_with_the_same_values() -> None:
    """Ranking explanations on the same records: later explanations reuse the texts' work (on llama.cpp, which
    keeps it) and get the values they get when scored alone."""
    texts = [case[0] for case in CASES]
    simulator = LocalSimulator(model="qwen2.5-coder-1.5b", method="text-first-chat")
    lm = models.load("qwen2.5-coder-1.5b")
    kept = hasattr(lm.model, "forget")
    if kept:  # other tests may have run these texts already
        lm.model.forget()
    first = simulator.simulate_sync("farm animals", texts)
    again = simulator.simulate_sync("colors", texts)
    if kept:
        assert again.usage.prompt_tokens < first.usage.prompt_tokens / 2, (again.usage, first.usage)
        lm.model.forget()
    alone = simulator.simulate_sync("colors", texts)
    if kept:
        assert alone.usage.prompt_tokens > again.usage.prompt_tokens
    for shared, fresh in zip(again.sequences, alone.sequences, strict=True):
        assert shared.activations is not None and fresh.activations is not None
        assert shared.activations == pytest.approx(fresh.activations, abs=0.5), (shared, fresh)
    values = again.sequences[1].activations or []
    listed = {token.strip() for token, value in zip(texts[1], values, strict=True) if value == max(values)}
    assert {"red", "green"} <= listed, values


@pytest.mark.model
def test_text_first_weighs_a_text_by_the_chance_that_the_rule_applies_to_it() -> None:
    """With gate=on a text's values are scaled by the chance that its answer names a word rather than "none":
    a text the rule does not fit stays low even where greedy decoding lists some word of it."""
    texts = [case[0] for case in CASES]
    simulator = get_simulator("local:gate=on")
    assert isinstance(simulator, LocalSimulator) and simulator.gate
    assert simulator.prompt_version != LocalSimulator().prompt_version  # its own cache entries
    highest = [max(seq.activations or [math.nan]) for seq in simulator.simulate_sync("colors", texts).sequences]
    fits, others = highest[1], [highest[0], highest[2]]
    assert fits > 8.0 and all(value < fits - 3.0 for value in others), highest


@pytest.mark.model
def test_the_list_methods_report_the_chance_that_the_rule_applies_to_each_text(
    simulator: LocalSimulator, small: LocalSimulator
) -> None:
    """Without the gate the values are left as they are, and each text carries its chance of a word rather than
    "none" (what `detection` weighs its highest value by); the gate multiplies the same chance in."""
    texts = [case[0] for case in CASES]
    plain = simulator.simulate_sync("colors", texts).sequences
    chances = [sequence.applies for sequence in plain]
    assert all(chance is not None and 0.0 <= chance <= 1.0 for chance in chances), chances
    fits, others = chances[1], [chances[0], chances[2]]
    assert fits is not None and all(other is not None and other < fits for other in others), chances
    gated = get_simulator("local:gate=on").simulate_sync("colors", texts).sequences
    for before, after in zip(plain, gated, strict=True):
        assert before.activations is not None and after.activations is not None and before.applies is not None
        expected = [value * before.applies for value in before.activations]
        assert after.activations == pytest.approx(expected, abs=0.5)
    assert all(sequence.applies is None for sequence in small.simulate_sync("colors", texts).sequences)
