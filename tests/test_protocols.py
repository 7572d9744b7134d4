"""Neuronpedia's score types and SAEBench, reproduced: example selection, highlighting, parsing, aggregation,
and the exact re-derivation of a stored value from hand-made details in Neuronpedia's schema."""

from __future__ import annotations

import json
import math
import random

import pytest

from scoring.errors import ScoringInputError
from scoring.protocols import eleuther, recall_alt, saebench
from scoring.protocols.common import js_truthy
from scoring.protocols.neuronpedia import Row, js_json, js_number, read_feature, select_rows
from scoring.protocols.prompts import recall_alt_message, template_from_messages

# --- shared: JavaScript's JSON, the rows every type is computed on ------------------------------


@pytest.mark.parametrize(
    ("value", "written"),
    [
        (0.0, "0"), (-0.0, "0"), (10.0, "10"), (6.666666666666667, "6.666666666666667"), (0.5, "0.5"),
        (1e-7, "1e-7"), (0.000001, "0.000001"), (2.5e-6, "0.0000025"), (1e21, "1e+21"), (-3.5, "-3.5"),
        (123456789012345678901.0, "123456789012345680000"), (0.1 + 0.2, "0.30000000000000004"),
    ],
)
def test_numbers_are_written_as_javascript_writes_them(value: float, written: str) -> None:
    assert js_number(value) == written


def test_recall_alt_message_is_compact_json_with_javascript_numbers() -> None:
    message = recall_alt_message(["\u2581The", " cat", "\n"], [0.0, 10.0, 2.5], 'cats "and" dogs')
    assert message == (
        '{"activations":[{"token":" The","activation":0},{"token":" cat","activation":10},'
        '{"token":"\\n","activation":2.5}],"explanation":"cats \\"and\\" dogs"}'
    )
    assert js_json({"a": [1.0, None, True]}) == '{"a":[1,null,true]}'


def test_rows_are_deduplicated_sorted_and_split_as_neuronpedia_does() -> None:
    rows = [
        Row(["a", "b"], [0.0, 2.0], 2.0, 0),
        Row(["z"], [0.0], 0.0, 1),
        Row(["a", "b"], [0.0, 4.0], 4.0, 2),  # same text: replaces row 0 in row 0's place
        Row(["c"], [5.0], 5.0, 3),
        Row(["neg"], [-1.0], -1.0, 4),
        *[Row([f"q{i}"], [0.0], 0.0, 5 + i) for i in range(6)],
    ]
    selection = select_rows(rows)
    assert [row.source for row in selection.top] == [3, 2]
    assert selection.top[1].values == [0.0, 10.0] and selection.top[0].values == [10.0]
    assert [row.source for row in selection.zero] == [1, 5, 6, 7, 8]


def test_top_rows_are_limited_to_twenty_and_rescaled_by_their_own_max() -> None:
    rows = [Row([f"t{i}"], [float(i + 1), 0.0][:1], float(i + 1), i) for i in range(25)]
    selection = select_rows(rows)
    assert len(selection.top) == 20 and selection.top[0].source == 24
    assert all(row.values == [10.0] for row in selection.top)


def test_js_truthiness() -> None:
    assert [js_truthy(v) for v in (True, "false", 1, [], {})] == [True] * 5
    assert [js_truthy(v) for v in (False, None, 0, "", float("nan"))] == [False] * 5


# --- recall_alt ----------------------------------------------------------------------------------


def _entry(tokens: list[str], values: list[float], match: object, reason: str = "ok") -> dict[str, object]:
    return {"id": 1, "tokens": tokens, "values": values, "match": match, "reason": reason, "messages": "[]"}


def recall_alt_details(top: list[object], zero: list[object], decoy: list[object]) -> dict[str, object]:
    """Hand-made details: each group's judgments (match values as Neuronpedia stores them)."""
    def group(matches: list[object], reason: str = "ok") -> list[dict[str, object]]:
        return [_entry(["x", " y"], [0.0, 10.0], match, reason) for match in matches]
    return {"top": group(top), "zero": group(zero), "decoy": group(decoy)}


def test_recall_alt_is_rederived_from_its_details() -> None:
    details = recall_alt_details([True, True, False, "yes"], [False, True], [False, False, False, False, False])
    derivation = recall_alt.derive(details)
    # top matched: 3 (the string "yes" counts, as JavaScript reads it); zero and decoys not matched: 1 + 5
    assert derivation.value == 9 / 11
    assert derivation.follows(9 / 11) and not derivation.follows(0.83)
    missed = [item for item in derivation.judged if item.example.expected and not item.answer]
    alarms = [item for item in derivation.judged if not item.example.expected and item.answer]
    assert len(missed) == 1 and len(alarms) == 1 and alarms[0].example.group == "zero"


def test_recall_alt_with_every_top_call_failed_saves_no_score() -> None:
    details = recall_alt_details([], [False], [False] * 5)
    details["top"] = [_entry(["a"], [10.0], False, "Error") for _ in range(3)]
    derivation = recall_alt.derive(details)
    assert math.isnan(derivation.value) and "every request about a top row failed" in (derivation.problem or "")
    # an unusable reply is not a failed call: that one still counts as "no match"
    details["top"][0] = _entry(["a"], [10.0], False, "Invalid JSON response")
    assert recall_alt.derive(details).value == pytest.approx(6 / 9)


@pytest.mark.parametrize(
    ("details", "message"),
    [
        ([], "must be an object"),
        ({"zero": []}, "no top list"),
        ({"top": [{"tokens": ["a"], "values": [1, 2]}]}, "top[0] has 1 tokens but 2 values"),
        ({"top": [{"tokens": "a b", "values": [1]}]}, "top[0].tokens must be a list of strings"),
        ({"top": [], "zero": "none"}, "zero must be a list"),
    ],
)
def test_bad_recall_alt_details_say_what_is_wrong(details: object, message: str) -> None:
    derivation = recall_alt.derive(details)
    assert math.isnan(derivation.value) and message in (derivation.problem or "")


def test_recall_alt_reply_reading_follows_the_protocol() -> None:
    from scoring.protocols.common import Example
    from scoring.simulators.chat import ChatReply

    example = Example("top", ["a"], [10.0], True)
    assert recall_alt.read_reply(example, ChatReply('{"match": true, "reason": "fits"}')).answer is True
    assert recall_alt.read_reply(example, ChatReply('{"match": "no"}')).answer is True  # JavaScript truth
    for text in ("", "not json", "null", "0"):
        judged = recall_alt.read_reply(example, ChatReply(text))
        assert judged.answer is False and judged.failed
    failed = recall_alt.read_reply(example, ChatReply(None, "HTTP 503"))
    assert failed.failed and failed.reason.startswith("Error: ")


# --- delphi's fuzz and detection -----------------------------------------------------------------


def test_highlighting_marks_tokens_at_thirty_percent_of_the_max_in_runs() -> None:
    values = [0.0, 3.0, 2.9, 10.0, 9.0, 0.0, 3.0]
    assert eleuther.activating_marks(values) == [1, 3, 4, 6]
    assert eleuther.delphi_text(["a", " b", " c", " d", " e", " f", " g"], [1, 3, 4, 6]) == "a<< b>> c<< d e>> f<< g>>"


def test_non_activating_marks_are_drawn_as_delphi_draws_them_with_the_global_random() -> None:
    values = [0.0, -1.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0]
    random.seed(22)
    expected = sorted(random.sample([0, 1, 2, 3, 4, 5, 6, 7], 3))
    marks, generator = eleuther.non_activating_marks(values, 3)
    assert marks == expected and generator is not None
    assert eleuther.non_activating_marks([0.0, 5.0, 5.0], 2) == (None, None)  # one eligible token: the placeholder


def test_the_fuzz_order_follows_from_the_last_seeded_highlighting() -> None:
    rows = [
        (["a", " hot", " cup"], [0.0, 8.0, 2.0], 0),
        (["b", " cold", " tea", " here"], [1.0, 5.0, 0.0, 4.0], 1),
        (["c", " d", " e"], [0.0, 0.0, 0.0], 2),
        (["f", " g", " h", " i"], [0.0, 0.0, 0.0, 0.0], 3),
    ]
    prepared = eleuther.prepare(rows, eleuther.FUZZ)
    # delphi's steps with the global random: n = ceil((2 + 3) / 2) = 3 marks per silent example,
    # seed(22) before each, then one shuffle of [silent..., activating...]
    random.seed(22)
    first = sorted(random.sample([0, 1, 2], 3))
    random.seed(22)
    second = sorted(random.sample([0, 1, 2, 3], 3))
    order = ["c", "f", "a", "b"]
    random.shuffle(order)
    assert [example.tokens[0] for example in prepared.examples] == order
    by_name = {example.tokens[0]: example for example in prepared.examples}
    assert by_name["c"].marked == first and by_name["f"].marked == second
    assert by_name["a"].marked == [1] and by_name["b"].marked == [1, 3]
    assert by_name["b"].text == "b<< cold>> tea<< here>>"


def test_replies_are_parsed_as_the_first_list_on_one_line_with_five_entries() -> None:
    assert eleuther.parse_reply("Sure: [1, 0, 1, 1, 0] and [0]") == [1, 0, 1, 1, 0]
    assert eleuther.parse_reply("[1, 0,\n 1, 1, 0]") is None
    assert eleuther.parse_reply("[1, 0, 1]") is None
    assert eleuther.parse_reply("[1, 0, one, 1, 0]") is None
    assert eleuther.parse_reply(None) is None


def test_balanced_accuracy_as_the_service_computes_it() -> None:
    assert eleuther.balanced_accuracy([(True, True), (True, False), (False, True), (False, True)]) == 0.75
    assert eleuther.balanced_accuracy([(True, True), (True, True)]) == 0.0  # no negatives: 0
    assert eleuther.balanced_accuracy([(False, True), (False, False)]) == 0.25  # no positives: recall 0


def fuzz_row(activating: bool, prediction: object, correct: object) -> dict[str, object]:
    """One stored fuzz example as Neuronpedia keeps it (a dropped batch's rows: prediction and correct false)."""
    tokens = [" a", " cup", " of", " coffee"]
    values = [0.0, 0.0, 0.0, 9.0] if activating else [0.0] * len(tokens)
    return {
        "text": "".join(tokens), "distance": 1 if activating else -1, "ground_truth": activating,
        "prediction": prediction, "highlighted": True, "correct": correct, "probability": 0.0,
        "conditional_probability": 0.0, "activations": values, "str_tokens": tokens,
    }


def test_fuzz_is_rederived_with_its_failed_batch_dropped() -> None:
    answered = [fuzz_row(True, True, True), fuzz_row(True, True, True), fuzz_row(True, False, False),
                fuzz_row(False, False, True), fuzz_row(False, False, True)]
    failed = [fuzz_row(True, False, False), fuzz_row(False, False, False), fuzz_row(True, False, False),
              fuzz_row(False, False, False), fuzz_row(True, False, False)]
    derivation = eleuther.derive(answered + failed, eleuther.FUZZ)
    # kept: TP 2, FN 1, TN 2, FP 0 -> (2/3 + 1) / 2; counting the failed batch would give (2/6 + 2/4) / 2
    assert derivation.value == (2 / 3 + 1) / 2
    assert derivation.follows(5 / 6) and not derivation.follows((2 / 6 + 2 / 4) / 2)
    dropped = [item for item in derivation.judged if not item.counted]
    assert len(dropped) == 5 and {item.batch for item in dropped} == {1}
    assert any("dropped by the protocol" in note and "1" in note for note in derivation.notes)
    assert derivation.judged[0].example.marked == [3]  # highlighting redrawn from str_tokens and activations


def test_an_all_activating_batch_answered_zero_reads_both_ways() -> None:
    answered = [fuzz_row(True, True, True), fuzz_row(False, False, True), fuzz_row(True, True, True),
                fuzz_row(False, True, False), fuzz_row(True, True, True)]
    all_zero = [fuzz_row(True, False, False) for _ in range(5)]
    derivation = eleuther.derive(answered + all_zero, eleuther.FUZZ)
    kept_value = (3 / 8 + 1 / 2) / 2
    dropped_value = (3 / 3 + 1 / 2) / 2
    assert derivation.value == kept_value
    assert derivation.alternatives == [("batches 1 were dropped", dropped_value)]
    assert derivation.follows(dropped_value) and derivation.reading_for(dropped_value) == "batches 1 were dropped"


def test_every_batch_failed_means_no_score() -> None:
    rows = [fuzz_row(True, False, False), fuzz_row(False, False, False)]
    derivation = eleuther.derive(rows, eleuther.RECALL)
    assert math.isnan(derivation.value) and "every batch was dropped" in (derivation.problem or "")


@pytest.mark.parametrize(
    ("details", "message"),
    [
        ({"rows": []}, "must be a list"),
        ([], "hold no examples"),
        ([{"text": "x"}], "neither ground_truth"),
        ([{"ground_truth": True}], "neither text nor str_tokens"),
    ],
)
def test_bad_fuzz_details_say_what_is_wrong(details: object, message: str) -> None:
    derivation = eleuther.derive(details, eleuther.FUZZ)
    assert math.isnan(derivation.value) and message in (derivation.problem or "")


def test_embedding_auc_is_rederived_from_the_stored_similarities() -> None:
    details = [
        {"text": "coffee", "distance": 1, "similarity": 0.9},
        {"text": "latte", "distance": 1, "similarity": 0.4},
        {"text": "bus", "distance": -1, "similarity": 0.5},
        {"text": "dog", "distance": -1, "similarity": 0.1},
    ]
    derivation = eleuther.derive_embedding(details)
    assert derivation.value == 0.75  # pairs ranked right: 3 of 4
    flagged = [item.example.text for item in derivation.judged if item.correct is False]
    assert flagged == []  # each example is ranked right against at least half of the other kind
    details[1]["similarity"] = 0.05
    assert eleuther.derive_embedding(details).value == 0.5
    assert "only one kind" in (eleuther.derive_embedding(details[:2]).problem or "")
    assert "numeric distance" in (eleuther.derive_embedding([{"text": "x"}]).problem or "")


# --- SAEBench ------------------------------------------------------------------------------------


def test_saebench_replies_are_read_by_its_rules() -> None:
    assert saebench.parse_predictions("2, 5 and 7.") == [2, 5, 7]
    assert saebench.parse_predictions("None") == []
    assert saebench.parse_predictions("3, maybe 4") is None


def test_saebench_windows_are_21_tokens_top_importance_and_quiet() -> None:
    rows = []
    for record in range(12):
        values = [0.0] * 40
        values[20] = 10.0 - record * 0.5
        values[25] = 0.3 + record * 0.01
        rows.append(([f" w{record}_{i}" for i in range(40)], values))
    rows += [([f" q{r}_{i}" for i in range(30)], [0.0] * 30) for r in range(3)]
    examples, notes = saebench.choose_windows(rows, seed=0)
    groups = [example.group for example in examples]
    assert groups.count("top") == 2 and groups.count("importance") == 2 and groups.count("random") == 10
    assert all(len(example.tokens) == saebench.WINDOW for example in examples)
    assert all(example.expected for example in examples if example.group != "random")
    assert not any(example.expected for example in examples if example.group == "random")
    assert notes == [] and saebench.max_tokens(len(examples)) == 33


# --- reading a feature ---------------------------------------------------------------------------


def test_a_feature_is_read_with_its_claims_and_bad_parts_become_problems() -> None:
    feature = read_feature(
        {
            "modelId": "m", "layer": "1", "index": "2",
            "activations": [{"tokens": ["a", " b"], "values": [0, 3], "maxValue": 3}],
            "explanations": [
                {"description": "b", "scores": [
                    {"value": 0.5, "explanationScoreTypeName": "recall_alt", "explanationScoreModelName": "g",
                     "jsonDetails": json.dumps(recall_alt_details([True], [False], []))},
                    {"value": 0.2, "explanationScoreTypeName": "eleuther_fuzz", "jsonDetails": "{broken"},
                    {"value": "high", "explanationScoreTypeName": "recall_alt"},
                ]},
                {"explanationModelName": "x"},
                "plain",
            ],
        }
    )
    assert feature.identity == "m · layer 1 · index 2" and feature.rows[0].max_value == 3
    first, plain = feature.explanations
    assert [claim.type for claim in first.claims] == ["recall_alt", "eleuther_fuzz", "recall_alt"]
    assert first.claims[0].details["top"][0]["match"] is True
    assert "not valid JSON" in (first.claims[1].details_problem or "")
    assert first.claims[2].value is None and plain.text == "plain" and not plain.claims
    assert any("explanations[1] has no description" in problem for problem in feature.problems)
    assert any("value is not a number" in problem for problem in feature.problems)


@pytest.mark.parametrize(
    ("data", "message"),
    [([1, 2], "must be a JSON object"), ({"activations": []}, "no explanations found")],
)
def test_unusable_features_say_what_to_fix(data: object, message: str) -> None:
    with pytest.raises(ScoringInputError, match=message):
        read_feature(data)


def test_templates_are_checked() -> None:
    good = [{"role": "system", "content": "Judge."}, {"role": "user", "content": "{explanation}\n{examples}"}]
    assert template_from_messages(good, "eleuther_fuzz").source == "file"
    with pytest.raises(ScoringInputError, match="must contain \\{examples\\}"):
        template_from_messages(good[:1], "eleuther_fuzz")
    with pytest.raises(ScoringInputError, match="must not be a user message"):
        template_from_messages(good, "recall_alt")
    with pytest.raises(ScoringInputError, match="role"):
        template_from_messages([{"role": "boss", "content": "x"}], "saebench")
