"""Detection and fuzzing scorers against values computed by hand, with the `fake` simulator
(which predicts 10 on tokens that are words of the explanation, else 0)."""

import math

import pytest

from scoring import SCORERS, ActivationRecord, score_explanation
from scoring.metrics import classification_metrics

RECORDS = [
    ActivationRecord(["the", " fox", " ran"], [0.0, 8.0, 0.0]),  # activating, on fox
    ActivationRecord(["a", " dog", " sat"], [0.0, 0.0, 0.0]),  # silent
    ActivationRecord(["one", " fox", " here"], [0.0, 0.0, 0.0]),  # silent although it says fox
    ActivationRecord(["big", " cat"], [0.0, 6.0]),  # activating, on cat
]


def test_every_scorer_is_a_row_of_the_one_table():
    from scoring.scorers import ATTENTION_SCORERS, JUDGE_SCORERS, P_VALUE_SCORERS, SCORER_OPTIONS, SCORER_TABLE

    assert list(SCORERS) == [
        "simulation", "detection", "fuzzing", "detection-judge", "fuzzing-judge", "binary-condition", "attention-head",
        "recall-alt", "eleuther-fuzz", "eleuther-recall", "eleuther-embedding", "saebench",
    ]
    assert [entry.name for entry in SCORER_TABLE] == list(SCORERS)
    assert sorted(ATTENTION_SCORERS) == ["attention-head"]
    assert JUDGE_SCORERS == (
        "detection-judge", "fuzzing-judge", "binary-condition", "attention-head",
        "recall-alt", "eleuther-fuzz", "eleuther-recall", "saebench",
    )
    assert P_VALUE_SCORERS == ("binary-condition",)
    assert SCORER_OPTIONS["binary-condition"] == ("window",) and SCORER_OPTIONS["simulation"] == ()


def test_a_name_can_be_registered_once():
    from scoring.scorers import SCORER_TABLE, ScorerEntry, index_scorers

    with pytest.raises(ValueError, match="two scorers are named 'simulation'"):
        index_scorers([*SCORER_TABLE, ScorerEntry("simulation", SCORERS["fuzzing"])])


def test_detection_by_hand():
    result = score_explanation("fox", RECORDS, simulator="fake", scorer="detection", cache=False)
    # sequence maxima predicted: 10, 0, 10, 0 ; labels: T, F, F, T
    # positives {10, 0} vs negatives {0, 10}: pairs 1 + 0.5 + 0.5 + 0 = 2 of 4
    assert result.metrics["sequence_predictions"] == [10.0, 0.0, 10.0, 0.0]
    assert result.score == pytest.approx(0.5)
    assert result.metrics["recall"] == pytest.approx(0.5)
    assert result.metrics["precision"] == pytest.approx(0.5)
    assert result.metrics["balanced_accuracy"] == pytest.approx(0.5)
    better = score_explanation("fox cat", RECORDS, simulator="fake", scorer="detection", cache=False)
    # predicted 10, 0, 10, 10: positives {10, 10} vs negatives {0, 10}: 1 + 0.5 + 1 + 0.5 = 3 of 4
    assert better.score == pytest.approx(0.75)
    assert better.metrics["f1"] == pytest.approx(0.8)
    assert better.scorer == "detection"


def test_fuzzing_by_hand():
    # activating sequences: (fox ran) and (big cat); each wrong marking has one inactive token with simulation 0
    only_fox = score_explanation("fox", RECORDS, simulator="fake", scorer="fuzzing", cache=False)
    # correct markings 10 (fox) and 0 (cat); wrong markings 0 and 0: pairs 1 + 1 + 0.5 + 0.5 = 3 of 4
    assert only_fox.score == pytest.approx(0.75)
    both = score_explanation("fox cat", RECORDS, simulator="fake", scorer="fuzzing", cache=False)
    assert both.score == pytest.approx(1.0)


def test_detection_without_negatives_is_nan_with_reason():
    result = score_explanation("fox", RECORDS[:1] + RECORDS[3:], simulator="fake", scorer="detection", cache=False)
    assert math.isnan(result.score)
    assert "non-activating" in result.error


def test_scorers_share_cached_simulations(tmp_path):
    from scoring.simulators.fake import FakeSimulator

    simulator = FakeSimulator()
    for scorer in ("simulation", "detection", "fuzzing"):
        score_explanation("fox", RECORDS, simulator=simulator, scorer=scorer, cache=tmp_path / "c")
    assert simulator.sequences_simulated == 4


def test_failed_simulation_is_nan_for_every_scorer():
    for scorer in ("detection", "fuzzing"):
        result = score_explanation("fox", RECORDS, simulator="fake:fail", scorer=scorer, cache=False)
        assert math.isnan(result.score) and "could not be simulated" in result.error


def test_classification_metrics_edge_cases():
    metrics = classification_metrics([True, False], [0.0, 0.0], threshold=5.0)
    assert math.isnan(metrics["precision"]) and math.isnan(metrics["f1"])
    assert metrics["balanced_accuracy"] == pytest.approx(0.5)
