"""Records are validated, sampled and normalised once at the boundary, into a `PreparedRecords` the inner layers trust.

Ranking E explanations with S scorers validated the records 1 + S + S x E times (`load_records` ran again in
every layer); `scoring.prepare_records` now does it once and every public function takes its result as it is.
Counted with a spy on the one validation of a sequence (`TokensAndValues.model_validate`) and on the loader.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

import scoring.prepared
from scoring import (
    ActivationRecord,
    Limits,
    PreparedRecords,
    ScoringInputError,
    generate_explanations,
    load_puzzles,
    load_records,
    prepare_records,
    rank_explanations,
    rank_with_scorers,
    run_bench,
    score_explanation,
)
from scoring.batch import run_batch
from scoring.sequence_check import TokensAndValues

EXPLANATIONS = ["fox", "leopard", "quick animals", "weather"]
SCORERS = ["simulation", "detection", "fuzzing"]
SEQUENCES = [
    {"tokens": ["the", " quick", " brown", " fox"], "values": [0, 0, 0, 8]},
    {"tokens": ["spotted", " leopard", " sprints", " at"], "values": [0, 9, 4, 0]},
    {"tokens": ["rain", " fell", " on", " hills"], "values": [0, 0, 0, 0]},
    {"tokens": ["a", " fox", " and", " a", " leopard"], "values": [0, 7, 0, 0, 6]},
]


class Validations:
    """How often records were loaded (`load_records`) and sequences checked (`TokensAndValues`) during a call."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.loads = 0
        self.sequences = 0
        real_load = scoring.prepared.load_records
        real_validate = TokensAndValues.model_validate

        def load(*args: Any, **kwargs: Any) -> Any:
            self.loads += 1
            return real_load(*args, **kwargs)

        def validate(*args: Any, **kwargs: Any) -> Any:
            self.sequences += 1
            return real_validate(*args, **kwargs)

        monkeypatch.setattr(scoring.prepared, "load_records", load)
        monkeypatch.setattr(TokensAndValues, "model_validate", validate)


@pytest.fixture
def validations(monkeypatch: pytest.MonkeyPatch) -> Validations:
    return Validations(monkeypatch)


def scores(ranked: dict[str, list[Any]]) -> dict[str, list[tuple[str, float]]]:
    return {name: [(result.explanation, result.score) for result in results] for name, results in ranked.items()}


@pytest.mark.parametrize("null", [None, True], ids=["explanations", "with-chance-level"])
def test_ranking_four_explanations_with_three_scorers_validates_the_records_once(
    validations: Validations, null: bool | None
) -> None:
    ranked = rank_with_scorers(EXPLANATIONS, SEQUENCES, SCORERS, simulator="fake", cache=False, null=null)
    assert list(ranked) == SCORERS and all(len(results) == len(EXPLANATIONS) for results in ranked.values())
    assert validations.loads == 1  # was 1 + S + S x E = 16 (and 76 with the 20 unrelated explanations)
    assert validations.sequences == len(SEQUENCES)


def test_records_already_prepared_are_not_validated_again_and_score_the_same(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    options: dict[str, Any] = {"simulator": "fake", "cache": False, "sampling": "top", "n_sequences": 3, "seed": 2}
    from_raw = rank_with_scorers(EXPLANATIONS, SEQUENCES, SCORERS, **options)
    prepared = prepare_records(SEQUENCES, sampling="top", n_sequences=3, seed=2)
    counted = Validations(monkeypatch)
    assert scores(rank_with_scorers(EXPLANATIONS, prepared, SCORERS, **options)) == scores(from_raw)
    one = score_explanation("fox", prepared, simulator="fake", cache=False, sampling="top", n_sequences=3, seed=2)
    assert one.score == from_raw["simulation"][[r.explanation for r in from_raw["simulation"]].index("fox")].score
    assert one.sampling == {"strategy": "top", "n": 3, "seed": 2, "indices": list(prepared.indices)}
    assert (counted.loads, counted.sequences) == (0, 0)


def test_other_sampling_on_prepared_records_chooses_again_without_validating(monkeypatch: pytest.MonkeyPatch) -> None:
    prepared = prepare_records(SEQUENCES)  # every sequence, globally normalised
    counted = Validations(monkeypatch)
    strategies = ("top", "quantile", "diverse", "top+random")
    for sampling in strategies:
        options: dict[str, Any] = {"sampling": sampling, "n_sequences": 2, "normalization": "per_record"}
        from_prepared = score_explanation("fox leopard", prepared, simulator="fake", cache=False, **options)
        from_raw = score_explanation("fox leopard", SEQUENCES, simulator="fake", cache=False, **options)
        assert from_prepared.sampling == from_raw.sampling
        assert [s.real for s in from_prepared.sequences] == [s.real for s in from_raw.sequences]
        assert from_prepared.score == from_raw.score and from_raw.error is None
    assert counted.loads == len(strategies)  # only the calls given raw records
    assert counted.sequences == len(strategies) * len(SEQUENCES)


def test_prepared_records_hold_the_choice_and_every_record() -> None:
    prepared = prepare_records(SEQUENCES, sampling="top", n_sequences=2, normalization="per_record")
    assert len(prepared) == 4 and [record.tokens for record in prepared] == [s["tokens"] for s in SEQUENCES]
    assert prepared.indices == (1, 0)  # strongest first
    assert prepared.chosen == (prepared[1], prepared[0])
    assert prepared.real == ((0.0, 10.0, 40 / 9, 0.0), (0.0, 0.0, 0.0, 10.0))
    assert prepare_records(prepared, sampling="top", n_sequences=2, normalization="per_record") is prepared
    again = prepare_records(prepared)
    assert again.indices == (0, 1, 2, 3) and again.records is prepared.records
    copies = load_records(prepared)  # a list of its records, the caller's to change
    assert copies == list(prepared.records) and copies[0] is not prepared[0]


def test_prepared_records_are_made_by_prepare_records_only() -> None:
    record = ActivationRecord(["a"], [float("nan")])
    with pytest.raises(TypeError, match="scoring.prepare_records"):
        PreparedRecords((record,), Limits(), "all", None, 0, "global", (0,), ((0.0,),))
    prepared = prepare_records(SEQUENCES)
    with pytest.raises(AttributeError):
        prepared.indices = (0,)  # type: ignore[misc]


@pytest.mark.parametrize(
    ("records", "message"),
    [
        ([{"tokens": ["a", "b"], "values": [1.0]}], r"sequence\[0\].*2 tokens but 1 value"),
        ([{"tokens": ["a"], "values": [float("nan")]}], r"sequence\[0\].*finite"),
        ([], "no activation sequences found"),
        ([ActivationRecord(["a", "b"], [1.0])], "sequence 0"),
        ("   ", "the records input is empty"),
        (42, "records must be a path"),
    ],
)
def test_bad_records_get_the_same_error_from_every_entry(records: Any, message: str) -> None:
    with pytest.raises(ScoringInputError, match=message) as loaded:
        load_records(records)
    entries: list[Callable[[], Any]] = [
        lambda: prepare_records(records),
        lambda: score_explanation("fox", records, simulator="fake", cache=False),
        lambda: rank_explanations(["fox", "dog"], records, simulator="fake", cache=False),
        lambda: rank_with_scorers(["fox", "dog"], records, SCORERS, simulator="fake", cache=False),
        lambda: generate_explanations(records, simulator="fake", cache=False),
    ]
    for entry in entries:
        with pytest.raises(ScoringInputError) as raised:
            entry()
        assert str(raised.value) == str(loaded.value)


def test_limits_still_bound_prepared_records() -> None:
    prepared = prepare_records(SEQUENCES)
    with pytest.raises(ScoringInputError, match="4 sequences is more than the limit of 3"):
        score_explanation("fox", prepared, simulator="fake", cache=False, limits=Limits(max_sequences=3))
    with pytest.raises(ScoringInputError, match="has 5 tokens, more than the limit of 4"):
        rank_explanations(["fox"], prepared, simulator="fake", cache=False, limits=Limits(max_tokens_per_sequence=4))
    assert prepare_records(SEQUENCES, limits=Limits(max_sequences=4)).limits == Limits(max_sequences=4)


def test_bad_sampling_options_on_prepared_records_are_refused_as_on_raw_ones() -> None:
    prepared = prepare_records(SEQUENCES)
    for options, message in [
        ({"sampling": "best"}, "unknown sampling 'best'"),
        ({"n_sequences": 0}, "positive whole number"),
        ({"seed": -1}, "seed must be a whole number"),
        ({"normalization": "max"}, "unknown normalization 'max'"),
    ]:
        for records in (prepared, SEQUENCES):
            with pytest.raises(ScoringInputError, match=message):
                rank_with_scorers(["fox"], records, SCORERS, simulator="fake", cache=False, **options)


def test_a_puzzle_file_is_validated_when_read_and_not_again_when_scored(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    puzzles = {
        "fox": {"explanation": "fox", "false_explanations": ["rain", "hills"], "sentences": [["the", [" fox", 8]]]},
        "rain": {"explanation": "rain", "false_explanations": ["fox"], "sentences": [[["rain", 5], " fell"]]},
    }
    assert isinstance(load_puzzles(puzzles)[0].records, PreparedRecords)
    counted = Validations(monkeypatch)
    report = run_bench(puzzles, simulator="fake", scorer=["simulation", "detection"])
    assert report["accuracy"] == 1.0
    assert counted.loads == len(puzzles)  # once per puzzle, not per scorer and explanation
    with pytest.raises(ScoringInputError, match=r"fox sentence 0 .*finite"):
        load_puzzles({**puzzles, "fox": {**puzzles["fox"], "sentences": [["the", [" fox", float("inf")]]]}})


def test_a_batch_line_is_validated_once_for_all_its_explanations(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    source = tmp_path / "in.jsonl"
    source.write_text(json.dumps({"id": "f", "activations": SEQUENCES, "explanations": EXPLANATIONS}) + "\n")
    counted = Validations(monkeypatch)
    summary = run_batch(source, tmp_path / "out.jsonl", simulator="fake", cache=False, progress=False)
    assert summary["ok"] == len(EXPLANATIONS)
    assert (counted.loads, counted.sequences) == (1, len(SEQUENCES))
