"""Detection and fuzzing scorers against values computed by hand, with the `fake` simulator
(which predicts 10 on tokens that are words of the explanation, else 0)."""

import math

import pytest

from scoring import SCORERS, ActivationRecord, score_explanation
from scoring.metrics import classification_metrics, pearson
from scoring.simulators.fake import FakeSimulator

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
    # simulated: [0 10 0], [0 0 0], [0 10 0], [0 0]; labels: T, F, F, T; the fake gives no chance of its own,
    # so each prediction is the highest value / 10: 1, 0, 1, 0
    assert result.metrics["sequence_predictions"] == [1.0, 0.0, 1.0, 0.0]
    assert result.metrics["sequence_applies"] == [None] * 4
    # labels centred (.5, -.5, -.5, .5) . predictions centred (.5, -.5, .5, -.5) = 0: no correlation
    assert result.score == pytest.approx(0.0)
    assert result.metrics["roc_auc"] == pytest.approx(0.5) and result.metrics["roc_auc_max"] == pytest.approx(0.5)
    assert result.metrics["threshold"] == 0.5
    assert result.metrics["recall"] == pytest.approx(0.5)
    assert result.metrics["precision"] == pytest.approx(0.5)
    assert result.metrics["balanced_accuracy"] == pytest.approx(0.5)
    better = score_explanation("fox cat", RECORDS, simulator="fake", scorer="detection", cache=False)
    # predictions 1, 0, 1, 1: centred (.25, -.75, .25, .25), dot with the labels .5, norms 1 and sqrt(.75)
    assert better.score == pytest.approx(1 / math.sqrt(3))
    assert better.metrics["roc_auc"] == pytest.approx(0.75)
    assert better.metrics["f1"] == pytest.approx(0.8)
    assert better.scorer == "detection"


class ChanceSimulator(FakeSimulator):
    """The fake's values, and a chance that the explanation applies to each text: `chances`, in order."""

    def __init__(self, chances: list[float | None]) -> None:
        super().__init__()
        self.chances = chances

    async def simulate(self, explanation, sequences):
        batch = await super().simulate(explanation, sequences)
        for simulation, chance in zip(batch.sequences, self.chances, strict=True):
            simulation.applies = chance
        return batch


def test_detection_weighs_the_highest_value_by_the_simulators_chance_that_the_explanation_applies():
    # "fox" reaches 10 in the activating first text and in the silent third one; a simulator that gives the
    # third text a low chance (0.2) tells them apart: predictions 0.9, 0, 0.2, 0 (the last text has no fox)
    chances = [0.9, 0.5, 0.2, 0.7]
    result = score_explanation("fox", RECORDS, simulator=ChanceSimulator(chances), scorer="detection", cache=False)
    assert result.metrics["sequence_applies"] == chances
    assert result.metrics["sequence_predictions"] == pytest.approx([0.9, 0.0, 0.2, 0.0])
    expected = pearson([1.0, 0.0, 0.0, 1.0], [0.9, 0.0, 0.2, 0.0])
    assert result.score == pytest.approx(expected) and expected > 0.4
    plain = score_explanation("fox", RECORDS, simulator="fake", scorer="detection", cache=False)
    assert result.score > plain.score  # 0 without the chances


def test_detection_is_chance_when_every_text_gets_the_same_prediction():
    # "the fox dog big" puts 10 in every text: nothing tells a firing text from a silent one, so 0 (chance), while a
    # simulation that says nothing at all (flat) stays NaN and ranks below it
    result = score_explanation("the fox dog big", RECORDS, simulator="fake", scorer="detection", cache=False)
    assert result.score == 0.0 and result.error is None
    assert result.metrics["roc_auc"] == pytest.approx(0.5)
    flat = score_explanation("zebra", RECORDS, simulator="fake", scorer="detection", cache=False)
    assert math.isnan(flat.score) and "predicts nothing" in flat.error


def test_a_chance_outside_0_to_1_fails_the_sequence_with_the_reason():
    result = score_explanation("fox", RECORDS, simulator=ChanceSimulator([0.5, 1.5, 0.5, 0.5]), scorer="detection",
                               cache=False)
    assert math.isnan(result.score)
    assert "not a number from 0 to 1" in result.error
    assert result.sequences[1].simulated is None and result.sequences[0].applies == 0.5


def test_fuzzing_by_hand():
    # correct markings: " fox" of sequence 0 (real 8) and " cat" of sequence 3 (real 6), one token each;
    # wrong markings of one token: "the", " ran", "big" in the activating texts (same text) and the six tokens
    # of the two silent texts (other text)
    only_fox = score_explanation("fox", RECORDS, simulator="fake", scorer="fuzzing", cache=False)
    # correct {10, 0}; same text {0, 0, 0}: 3 + 1.5 = 4.5 of 6; other text {0, 0, 0, 0, 10 (" fox"), 0}:
    # 5.5 + 2.5 = 8 of 12; the score is their mean
    assert only_fox.metrics["roc_auc_same_text"] == pytest.approx(0.75)
    assert only_fox.metrics["roc_auc_other_text"] == pytest.approx(8 / 12)
    assert only_fox.score == pytest.approx((0.75 + 8 / 12) / 2)
    both = score_explanation("fox cat", RECORDS, simulator="fake", scorer="fuzzing", cache=False)
    # correct {10, 10}: every same-text pair won, other text 5.5 of 6 each (" fox" of the trap ties)
    assert both.metrics["roc_auc_same_text"] == pytest.approx(1.0)
    assert both.metrics["roc_auc_other_text"] == pytest.approx(11 / 12)
    assert both.score == pytest.approx((1.0 + 11 / 12) / 2)


def test_span_markings_mark_runs_and_equal_length_wrong_spans():
    from scoring.simulated import CORRECT, OTHER_TEXT, SAME_TEXT, span_markings

    real = [
        [0.0, 9.0, 10.0, 0.0, 2.0, 0.0, 0.0],  # a run of two at >= 3 (0.3 x 10); 2.0 is active but below the cut
        [0.0, 0.5, 0.0],  # silent (max < 1)
    ]
    markings = span_markings(real).rows()
    # the correct span first, then every run of two inactive tokens: none around the marked span or the token
    # at 2.0, which is in no marking, and none across the end of one sequence into the next
    assert markings == [(0, 1, 3, CORRECT), (0, 5, 7, SAME_TEXT), (1, 0, 2, OTHER_TEXT), (1, 1, 3, OTHER_TEXT)]
    assert span_markings(real).rows() == markings  # no sampling, no seed
    simulated = [[0.0, 6.0, 8.0, 0.0, 0.0, 1.0, 3.0], [4.0, 0.0, 2.0]]
    assert span_markings(real).means(simulated).tolist() == [7.0, 2.0, 2.0, 1.0]


def test_span_markings_of_several_lengths_and_of_nothing():
    from scoring.simulated import span_markings

    real = [[5.0, 0.0, 5.0, 5.0, 0.0, 0.0, 0.0]]
    rows = span_markings(real).rows()
    assert [row[1:3] for row in rows if row[3] == "correct"] == [(0, 1), (2, 4)]
    assert [row[1:3] for row in rows if row[3] != "correct"] == [(1, 2), (4, 5), (5, 6), (6, 7), (4, 6), (5, 7)]
    # equal means tie exactly, whatever the rounding of the running sums
    tied = span_markings([[5.0, 5.0, 5.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0]]).means([[0.1, 0.2, 0.7] * 3])
    assert len(tied) == 5 and len(set(tied.tolist())) == 1
    assert span_markings([[0.0, 0.0], []]).rows() == []  # nothing fires: no marking at all
    assert span_markings([]).rows() == []


def test_span_markings_cut_is_relative_to_each_sequence():
    from scoring.simulated import span_markings

    # 0.3 x 4 = 1.2: 1.5 is marked in the weak sequence; 0.3 x 10 = 3 leaves 2.0 unmarked in the strong one
    correct = [row for row in span_markings([[4.0, 1.5, 0.0], [10.0, 2.0, 0.0]]).rows() if row[3] == "correct"]
    assert [row[:3] for row in correct] == [(0, 0, 2), (1, 0, 1)]


def test_fuzzing_with_only_activating_texts_uses_the_same_text_markings():
    result = score_explanation("fox", [RECORDS[0], RECORDS[3]], simulator="fake", scorer="fuzzing", cache=False)
    assert math.isnan(result.metrics["roc_auc_other_text"])
    # correct {10, 0} against same-text {0, 0, 0}
    assert result.score == pytest.approx(0.75) and result.error is None


def test_fuzzing_with_nothing_to_mark_wrongly_is_nan_with_reason():
    every_token_fires = [ActivationRecord(["the", " fox"], [5.0, 8.0])]
    result = score_explanation("fox", every_token_fires, simulator="fake", scorer="fuzzing", cache=False)
    assert math.isnan(result.score)
    assert "inactive tokens to mark wrongly" in result.error and "add random or low-activation records" in result.error


@pytest.mark.parametrize("scorer", ["detection", "fuzzing"])
def test_a_flat_simulation_is_no_evidence_nan_with_reason(scorer):
    # "zebra" names no token: the fake simulation is 0 everywhere, which is not chance (0.5) but no evidence
    result = score_explanation("zebra", RECORDS, simulator="fake", scorer=scorer, cache=False)
    assert math.isnan(result.score)
    assert "0 on every token" in result.error and "predicts nothing" in result.error
    assert result.metrics["roc_auc"] == pytest.approx(0.5)  # what the old reading would have scored


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


def test_the_cache_keeps_the_chance_and_a_second_score_reads_it(tmp_path):
    from scoring.cache import SimulationCache

    simulator = ChanceSimulator([0.9, 0.5, 0.2, 0.7])
    first = score_explanation("fox", RECORDS, simulator=simulator, scorer="detection", cache=tmp_path)
    simulator.chances = [0.1, 0.1, 0.1, 0.1]  # a second call would give other chances: the cache must answer
    second = score_explanation("fox", RECORDS, simulator=simulator, scorer="detection", cache=tmp_path)
    assert all(sequence.cached for sequence in second.sequences)
    assert [sequence.applies for sequence in second.sequences] == [0.9, 0.5, 0.2, 0.7]
    assert second.score == first.score
    cache = SimulationCache(tmp_path / "by-hand")
    cache.set("kept", [1.0, 2.0], applies=0.25)
    cache.set("none", [1.0, 2.0])
    assert cache.get_simulation("kept", 2).applies == 0.25 and cache.get("kept", 2) == [1.0, 2.0]
    assert cache.get_simulation("none", 2).applies is None
    cache._store.set("bad", {"activations": [1.0, 2.0], "applies": 3.0})  # written by something else: read again
    assert cache.get_simulation("bad", 2) is None
