"""The judge scorers (detection-judge, fuzzing-judge, binary-condition, attention-head) and their plumbing.

Offline and deterministic: the `fake` judge answers P(yes) = 1 - 0.5**k, k being the
explanation's words among the marked words of a question (or all its words when none
is marked), so every expected value below is worked out by hand.
"""

from __future__ import annotations

import json
import math
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from fastapi.testclient import TestClient

from scoring import (
    SCORERS,
    ActivationRecord,
    AttentionRecord,
    ScoringInputError,
    open_cache,
    prompts,
    rank_explanations,
    score_attention_explanation,
    score_explanation,
)
from scoring.cache import judgment_key
from scoring.judged import attention_pairs, context_windows, detection_sample
from scoring.metrics import benjamini_hochberg, holm_bonferroni
from scoring.server import create_app, load_settings
from scoring.simulated import fuzzing_markings
from scoring.simulators.fake import FakeSimulator
from scoring.simulators.judge import JudgeQuestion
from scoring.simulators.openai_backend import read_yes_no
from support.fault_proxy import FaultProxy
from support.scoring_server import RunningServer, fake_openai_server

ROOT = Path(__file__).resolve().parent.parent
JUDGE_SCORERS = ("detection-judge", "fuzzing-judge", "binary-condition", "attention-head")

RECORDS = [
    ActivationRecord(["the", " fox", " ran"], [0.0, 8.0, 0.0]),  # activating, on fox
    ActivationRecord(["a", " dog", " sat"], [0.0, 0.0, 0.0]),  # silent
    ActivationRecord(["one", " fox", " here"], [0.0, 0.0, 0.0]),  # silent although it says fox
    ActivationRecord(["big", " cat"], [0.0, 6.0]),  # activating, on cat
]

# matrix[to][from]: row = the token attended to, column = the attending token; causal (nothing with to > from)
ATTENTION_TOKENS = ["The", " previous", " token", " sat"]
ATTENTION_MATRIX = [
    [1.0, 0.6, 0.05, 0.01],
    [0.0, 0.4, 0.9, 0.02],
    [0.0, 0.0, 0.05, 0.9],
    [0.0, 0.0, 0.0, 0.07],
]


def test_registered() -> None:
    assert set(JUDGE_SCORERS) <= set(SCORERS)


# --- questions ---------------------------------------------------------------


def test_judge_text_wraps_runs_and_keeps_spaces_outside_the_marks() -> None:
    tokens = ["the", " fox", " ran", ".", "\n", "Then"]
    assert prompts.token_runs([3, 1, 2, 5]) == [(1, 4), (5, 6)]
    assert prompts.judge_text(tokens, prompts.token_runs([1, 2])) == "the <<fox ran>>. Then"
    assert prompts.judge_text([" big ", "cat"], [(0, 1), (1, 2)]) == "<<big>> <<cat>>"


def test_detection_question_exact_text() -> None:
    question = prompts.detection_question(" farm  animals ", ["We", " fed", " the", " goat", "."])
    assert question.kind == "detection"
    assert question.content == "We fed the goat."
    assert question.prompt_version == prompts.JUDGE_PROMPT_VERSION
    assert question.prompt == (
        "An explanation says what makes a neuron of a language model fire.\n"
        "Explanation: farm animals\n"
        "Text: We fed the goat.\n"
        "Question: Does the text contain what the explanation describes?"
    )


def test_fuzzing_and_condition_questions_exact_text() -> None:
    fuzzing = prompts.fuzzing_question("colors", ["a", " red", " green", " box"], [1, 2])
    assert fuzzing.content == "a <<red green>> box"
    assert fuzzing.prompt.endswith(
        "Explanation: colors\nText: a <<red green>> box\n"
        "Question: Are the marked tokens what the explanation describes?"
    )
    condition = prompts.condition_question("colors", [" red", " box"])
    assert condition.kind == "binary-condition"
    assert condition.prompt.endswith(
        "Text: red box\nQuestion: Does the condition of the explanation hold in this text?"
    )


def test_attention_question_exact_text() -> None:
    question = prompts.attention_question("previous token", ["The", " cat", " sat"], 2, 1)
    assert question.content == 'The <<cat>> <<sat>>\nFrom-token: "sat" (token 3)\nTo-token: "cat" (token 2)'
    assert question.prompt == (
        "An explanation says which token an attention head of a language model attends from and which token it "
        "attends to; two tokens of the text are marked with << >>.\n"
        "Explanation: previous token\n"
        'Text: The <<cat>> <<sat>>\nFrom-token: "sat" (token 3)\nTo-token: "cat" (token 2)\n'
        "Question: Does the explanation describe attention from the from-token to the to-token?"
    )


def test_base_model_prompt_is_worked_examples_then_the_question() -> None:
    question = prompts.fuzzing_question("farm animals.", ["The", " cow", " ate"], [1])
    text = prompts.judge_completion_prompt(question)
    assert text.startswith(
        "Text: He tuned the <<guitar>> before the concert.\n"
        "Question: Are the words between << and >> musical instruments?\nAnswer: Yes\n\n"
    )
    assert text.endswith(
        "\n\nText: The <<cow>> ate\nQuestion: Are the words between << and >> farm animals?\nAnswer:"
    )
    assert text.count("Answer:") == len(prompts.JUDGE_BASE_EXAMPLES["fuzzing"]) + 1


# --- what is asked -----------------------------------------------------------


def test_detection_sample_is_balanced_and_spread_over_the_activation_range() -> None:
    real = [[10, 0], [0, 0], [0, 5], [0, 0.5], [2, 0], [0.5, 0], [0, 8, 9]]
    # activating by max: 4 (2), 2 (5), 6 (9), 0 (10); silent: 1, 3, 5. Three of each, one activating per
    # stratum of maxima [4, 2], [6], [0].
    positives, negatives = detection_sample(real, seed=0)
    assert negatives == [1, 3, 5]
    assert positives == [0, 2, 6]
    assert detection_sample(real, seed=1) == ([0, 4, 6], [1, 3, 5])
    assert detection_sample([[5.0], [3.0]], seed=0) == ([], [])


def test_fuzzing_markings_are_seeded_and_as_large_as_the_correct_one() -> None:
    markings = fuzzing_markings([[0, 10, 0, 0], [0, 0], [5, 0, 7, 0, 0, 0]], seed=0)
    assert markings == [(0, [1], [3]), (2, [0, 2], [3, 4])]


def test_context_windows() -> None:
    assert context_windows(5, None) == [(0, 5)]
    assert context_windows(5, 2) == [(0, 2), (2, 4), (4, 5)]


def test_attention_pairs_top_five_and_weak_ones_below_a_tenth_of_the_max() -> None:
    record = AttentionRecord.from_matrix(ATTENTION_TOKENS, ATTENTION_MATRIX)
    assert len(record.pairs) == 10  # causal: only the cells with to <= from
    top, weak = attention_pairs(record, np.random.default_rng(0))
    assert top == [(0, 0, 1.0), (2, 1, 0.9), (3, 2, 0.9), (1, 0, 0.6), (1, 1, 0.4)]
    # below 0.1: (2, 0, 0.05), (2, 2, 0.05), (3, 0, 0.01), (3, 1, 0.02), (3, 3, 0.07): all five taken
    assert weak == [(2, 0, 0.05), (2, 2, 0.05), (3, 0, 0.01), (3, 1, 0.02), (3, 3, 0.07)]


def test_attention_pairs_draw_five_weak_pairs_seeded() -> None:
    size = 8
    matrix = [[(1.0 if to == frm else 0.0) for frm in range(size)] for to in range(size)]
    record = AttentionRecord.from_matrix([f" t{i}" for i in range(size)], matrix)
    first = attention_pairs(record, np.random.default_rng(3))
    assert first == attention_pairs(record, np.random.default_rng(3))
    top, weak = first
    assert [(frm, to) for frm, to, _ in top] == [(i, i) for i in range(5)]
    assert len(weak) == 5 and all(value == 0.0 and to < frm for frm, to, value in weak)


# --- scorers with the fake judge ---------------------------------------------


def test_detection_judge_by_hand() -> None:
    result = score_explanation("fox cat", RECORDS, simulator="fake", scorer="detection-judge", cache=False)
    # one silent sequence per activating one: both activating (0, 3) and both silent (1, 2)
    assert [(j.index, j.content, j.target, j.p_yes) for j in result.judgments] == [
        (0, "the fox ran", 1.0, 0.5),
        (1, "a dog sat", 0.0, 0.0),
        (2, "one fox here", 0.0, 0.5),
        (3, "big cat", 1.0, 0.5),
    ]
    # positives {0.5, 0.5} vs negatives {0, 0.5}: 1 + 0.5 + 1 + 0.5 = 3 of 4 pairs
    assert result.score == pytest.approx(0.75)
    assert result.metrics["recall"] == 1.0 and result.metrics["precision"] == pytest.approx(2 / 3)
    assert result.metrics["balanced_accuracy"] == pytest.approx(0.75)
    assert result.metrics["threshold"] == 0.5
    assert result.scorer == "detection-judge" and result.error is None
    assert [sequence.index for sequence in result.sequences] == [0, 1, 2, 3]


def test_detection_judge_without_negatives_is_nan_with_reason() -> None:
    result = score_explanation("fox", [RECORDS[0], RECORDS[3]], simulator="fake", scorer="detection-judge")
    assert math.isnan(result.score)
    assert "found 2 and 0" in (result.error or "")
    assert result.judgments == [] and result.usage.requests == 0


def test_fuzzing_judge_by_hand() -> None:
    result = score_explanation("fox", RECORDS, simulator="fake", scorer="fuzzing-judge", cache=False)
    assert [(j.content, j.target, j.p_yes) for j in result.judgments] == [
        ("the <<fox>> ran", 1.0, 0.5),
        ("the fox <<ran>>", 0.0, 0.0),
        ("big <<cat>>", 1.0, 0.0),
        ("<<big>> cat", 0.0, 0.0),
    ]
    # correct {0.5, 0} vs wrong {0, 0}: 1 + 1 + 0.5 + 0.5 = 3 of 4
    assert result.score == pytest.approx(0.75)
    both = score_explanation("fox cat", RECORDS, simulator="fake", scorer="fuzzing-judge", cache=False)
    assert both.score == pytest.approx(1.0)
    assert [sequence.index for sequence in both.sequences] == [0, 3]


def test_binary_condition_by_hand() -> None:
    result = score_explanation("fox cat", RECORDS, simulator="fake", scorer="binary-condition", cache=False)
    # P(yes) per sequence 0.5, 0, 0.5, 0.5; highest real activation (global scale) 10, 0, 0, 7.5
    assert [(j.p_yes, j.target, j.position) for j in result.judgments] == [
        (0.5, 10.0, {"start": 0, "end": 3}),
        (0.0, 0.0, {"start": 0, "end": 3}),
        (0.5, 0.0, {"start": 0, "end": 3}),
        (0.5, 7.5, {"start": 0, "end": 2}),
    ]
    # deviations (0.125, -0.375, 0.125, 0.125) and (5.625, -4.375, -4.375, 3.125):
    # r = 2.1875 / sqrt(0.1875 * 79.6875)
    expected = 2.1875 / math.sqrt(0.1875 * 79.6875)
    assert result.score == pytest.approx(expected)
    assert result.metrics["correlation"] == pytest.approx(expected)
    assert result.metrics["indicator_correlation"] == pytest.approx(expected)  # here P(yes) >= 0.5 is the same
    assert 0 < result.metrics["p_value"] < 1 and result.metrics["windows"] == 4


def test_binary_condition_windows() -> None:
    result = score_explanation(
        "fox", RECORDS[:2], simulator="fake", scorer="binary-condition", scorer_options={"window": 2}, cache=False
    )
    assert [(j.content, j.target) for j in result.judgments] == [
        ("the fox", 10.0), ("ran", 0.0), ("a dog", 0.0), ("sat", 0.0)
    ]
    assert result.metrics["window_tokens"] == 2
    # P(yes) 0.5, 0, 0, 0 against 10, 0, 0, 0: a perfect correlation
    assert result.score == pytest.approx(1.0) and result.metrics["p_value"] == 0.0


@pytest.mark.parametrize("window", [0, -2, "2", True, 1.5])
def test_bad_window_is_an_input_error(window: object) -> None:
    with pytest.raises(ScoringInputError, match="window must be a positive whole number"):
        score_explanation(
            "fox", RECORDS, simulator="fake", scorer="binary-condition", scorer_options={"window": window}
        )


def test_options_of_another_scorer_are_refused() -> None:
    with pytest.raises(ScoringInputError, match="the detection-judge scorer has no option window"):
        score_explanation("fox", RECORDS, simulator="fake", scorer="detection-judge", scorer_options={"window": 2})


def test_ranking_attaches_corrected_p_values() -> None:
    results = rank_explanations(
        ["fox cat", "fox", "dog", "zebra"], RECORDS, simulator="fake", scorer="binary-condition", cache=False
    )
    by_text = {result.explanation: result for result in results}
    assert math.isnan(by_text["zebra"].score)  # P(yes) 0 everywhere: undefined, and not counted
    tested = [by_text[text] for text in ("fox cat", "fox", "dog")]
    raw = [result.metrics["p_value"] for result in tested]
    for result, holm, bh in zip(tested, holm_bonferroni(raw), benjamini_hochberg(raw), strict=True):
        assert result.metrics["p_value_holm"] == pytest.approx(holm)
        assert result.metrics["p_value_bh"] == pytest.approx(bh)
        assert result.metrics["p_value_corrected"] == result.metrics["p_value_holm"]
        assert result.metrics["p_value_correction"] == "holm" and result.metrics["comparisons"] == 3
    assert math.isnan(by_text["zebra"].metrics["p_value_holm"])


def test_attention_head_by_hand() -> None:
    record = {"tokens": ATTENTION_TOKENS, "attention": ATTENTION_MATRIX}
    result = score_attention_explanation("previous token", [record], simulator="fake", cache=False)
    answers = [(j.position["from"], j.position["to"], j.target, j.p_yes) for j in result.judgments]
    # a pair's marked words are its two tokens: k counts "previous" and "token" among them
    assert answers == [
        (0, 0, 1.0, 0.0), (2, 1, 1.0, 0.75), (3, 2, 1.0, 0.5), (1, 0, 1.0, 0.5), (1, 1, 1.0, 0.5),
        (2, 0, 0.0, 0.5), (2, 2, 0.0, 0.5), (3, 0, 0.0, 0.0), (3, 1, 0.0, 0.5), (3, 3, 0.0, 0.0),
    ]
    # strong {0, .75, .5, .5, .5} vs weak {.5, .5, 0, .5, 0}: 16.5 of 25 pairs won
    assert result.score == pytest.approx(16.5 / 25)
    assert result.judgments[1].content == (
        'The <<previous>> <<token>> sat\nFrom-token: "token" (token 3)\nTo-token: "previous" (token 2)'
    )
    assert result.scorer == "attention-head" and result.sampling["seed"] == 0


def test_attention_head_without_weak_pairs_is_nan_with_reason() -> None:
    record = {"tokens": ["a", "b"], "pairs": [[1, 0, 0.5], [1, 1, 0.5]]}
    result = score_attention_explanation("a", [record], simulator="fake", cache=False)
    assert math.isnan(result.score) and "found 2 and 0" in (result.error or "")


def test_attention_head_through_score_explanation_points_to_its_function() -> None:
    with pytest.raises(ScoringInputError, match="score_attention_explanation"):
        score_explanation("fox", RECORDS, simulator="fake", scorer="attention-head")


@pytest.mark.parametrize("scorer", JUDGE_SCORERS)
def test_a_simulator_that_cannot_judge_gives_nan_and_says_so(scorer: str) -> None:
    if scorer == "attention-head":
        result = score_attention_explanation(
            "x", [{"tokens": ATTENTION_TOKENS, "attention": ATTENTION_MATRIX}], simulator="lexical"
        )
    else:
        result = score_explanation("fox", RECORDS, simulator="lexical", scorer=scorer)
    assert math.isnan(result.score)
    assert "cannot answer them" in (result.error or "") and "lexical" in (result.error or "")


@pytest.mark.parametrize(
    ("spec", "reason"), [("fake:fail", "fake:fail always fails"), ("fake:garbage", "not a probability in 0..1")]
)
def test_failed_judgments_are_nan_with_the_reason_and_never_cached(spec: str, reason: str, tmp_path: Path) -> None:
    cache = open_cache(tmp_path / "cache")
    for scorer in ("detection-judge", "fuzzing-judge", "binary-condition"):
        result = score_explanation("fox", RECORDS, simulator=spec, scorer=scorer, cache=cache)
        assert math.isnan(result.score)
        assert "could not be answered" in (result.error or "") and reason in (result.error or "")
        assert all(j.p_yes is None and reason in (j.error or "") for j in result.judgments)
        assert all(sequence.error is not None for sequence in result.sequences)
    assert len(cache) == 0


def test_judgments_are_cached_and_the_key_holds_the_prompt_version(tmp_path: Path) -> None:
    judge = FakeSimulator()
    first = score_explanation("fox cat", RECORDS, simulator=judge, scorer="detection-judge", cache=tmp_path / "c")
    asked = judge.questions_judged
    again = score_explanation("fox cat", RECORDS, simulator=judge, scorer="detection-judge", cache=tmp_path / "c")
    assert judge.questions_judged == asked == 4
    assert again.cached and not first.cached and again.usage.cache_hits == 4 and again.usage.requests == 0
    assert again.score == first.score
    question = prompts.detection_question("fox", ["a", " fox"])
    other_version = JudgeQuestion(question.kind, question.explanation, question.content, question.prompt, "judge-0")
    other_kind = JudgeQuestion("binary-condition", *(question.explanation, question.content, question.prompt),
                               question.prompt_version)
    keys = {judgment_key(judge, q) for q in (question, other_version, other_kind)}
    assert len(keys) == 3


def test_judge_results_are_strict_json() -> None:
    result = score_explanation("zebra", RECORDS, simulator="fake", scorer="binary-condition", cache=False)
    data = json.loads(json.dumps(result.to_dict(), allow_nan=False))
    assert data["score"] is None and len(data["judgments"]) == 4
    assert data["judgments"][0] == {
        "index": 0, "content": "the fox ran", "target": 10.0, "p_yes": 0.0, "error": None, "cached": False,
        "position": {"start": 0, "end": 3},
    }


# --- the HTTP server and the CLI -----------------------------------------------

SERVER_BODY = {
    "explanation": "fox leopard",
    "secret": "",
    "activations": [
        {"tokens": ["the", " quick", " brown", " fox"], "values": [0, 5, 0, 8]},
        {"tokens": ["spotted", " leopard", " sprints", " at"], "values": [0, 9, 4, 0]},
    ],
}


def test_server_scores_with_judge_scorers(tmp_path: Path) -> None:
    client = TestClient(create_app(load_settings("fake", server_key="", cache=tmp_path / "cache")))
    answer = client.post("/score", json={**SERVER_BODY, "scorer": "binary-condition", "window": 2, "metrics": True})
    assert answer.status_code == 200
    data = answer.json()
    assert [j["content"] for j in data["judgments"]] == ["the quick", "brown fox", "spotted leopard", "sprints at"]
    assert data["metrics"]["window_tokens"] == 2 and data["score"] is not None
    many = client.post(
        "/score/many",
        json={**SERVER_BODY, "explanations": ["fox leopard", "quick"], "scorer": "binary-condition", "metrics": True},
    )
    assert many.status_code == 200
    assert all("p_value_holm" in result["metrics"] for result in many.json()["results"])
    refused = client.post("/score", json={**SERVER_BODY, "scorer": "attention-head"})
    assert refused.status_code == 422 and "score_attention_explanation" in refused.json()["error"]


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "scoring", *args], cwd=ROOT, capture_output=True, text=True, timeout=120
    )


def test_cli_attention_subcommand(tmp_path: Path) -> None:
    records = tmp_path / "attention.json"
    records.write_text(json.dumps([{"tokens": ATTENTION_TOKENS, "attention": ATTENTION_MATRIX}]))
    done = _cli("attention", str(records), "-e", "sat", "-e", "previous token", "--simulator", "fake", "--json")
    assert done.returncode == 0, done.stderr
    results = json.loads(done.stdout)["results"]
    assert [r["explanation"] for r in results] == ["previous token", "sat"]
    assert results[0]["score"] == pytest.approx(16.5 / 25) and results[0]["scorer"] == "attention-head"
    table = _cli("attention", str(records), "-e", "previous token", "--simulator", "fake", "--no-cache")
    assert table.returncode == 0 and "previous token" in table.stdout.splitlines()[1]
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps([{"tokens": ["a", "b"], "attention": [[1.0, 0.5], [0.2]]}]))
    refused = _cli("attention", str(bad), "-e", "x", "--simulator", "fake")
    assert refused.returncode == 2 and "attention row 1 has 1 values for 2 tokens" in refused.stderr


def test_cli_score_with_a_judge_scorer_and_window(data_dir: Path) -> None:
    request = str(data_dir / "neuronpedia_request.json")
    done = _cli("score", request, "-e", "fox", "--scorer", "binary-condition", "--window", "2", "--simulator", "fake")
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines()[0].split() == ["rank", "explanation", "score", "p", "(Holm)", "asked"]
    refused = _cli("score", request, "-e", "fox", "--scorer", "attention-head", "--simulator", "fake")
    assert refused.returncode == 2 and "python -m scoring attention" in refused.stderr


# --- the OpenAI-compatible judge ---------------------------------------------


def test_read_yes_no() -> None:
    assert read_yes_no("Yes", {"Yes": math.log(0.6), " no": math.log(0.2), "Maybe": -1.0}) == (
        pytest.approx(0.75), None
    )
    assert read_yes_no("No", {"No": 0.0}) == (0.0, None)
    assert read_yes_no("**Yes**, it does", None) == (1.0, None)
    assert read_yes_no(" no.", {"The": -0.1}) == (0.0, None)  # no Yes/No among the alternatives: the text
    p_yes, problem = read_yes_no("Nothing here", {})
    assert p_yes is None and problem == "the reply is neither Yes nor No: 'Nothing here'"
    assert read_yes_no(None, None)[0] is None


@pytest.fixture(scope="module")
def fake_api(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    with fake_openai_server(tmp_path_factory.mktemp("api") / "api.log") as server:
        yield server


def test_openai_judge_reads_logprobs_like_the_fake_judge(fake_api: RunningServer) -> None:
    spec = f"openai-compatible:fake-model@{fake_api.url}/v1"
    for scorer in ("detection-judge", "fuzzing-judge", "binary-condition"):
        served = score_explanation("fox cat", RECORDS, simulator=spec, scorer=scorer, cache=False)
        reference = score_explanation("fox cat", RECORDS, simulator="fake", scorer=scorer, cache=False)
        assert served.error is None
        assert [j.p_yes for j in served.judgments] == pytest.approx([j.p_yes for j in reference.judgments])
        assert served.score == pytest.approx(reference.score)
        assert served.usage.requests == len(served.judgments) and served.usage.prompt_tokens > 0


def test_openai_judge_without_logprobs_reads_the_reply(fake_api: RunningServer) -> None:
    spec = f"openai-compatible:fake-model@{fake_api.url}/v1?mode=json"
    result = score_explanation("fox cat", RECORDS, simulator=spec, scorer="detection-judge", cache=False)
    assert [j.p_yes for j in result.judgments] == [1.0, 0.0, 1.0, 1.0]  # "Yes" where P(yes) >= 0.5
    assert result.score == pytest.approx(0.75)


def test_openai_judge_garbage_is_retried_then_nan_and_nothing_cached(fake_api: RunningServer, tmp_path: Path) -> None:
    cache = open_cache(tmp_path / "cache")
    with FaultProxy(fake_api.url) as proxy:
        proxy.garble = True
        spec = f"openai-compatible:fake-model@{proxy.url}/v1?json_retries=1"
        result = score_explanation("fox cat", RECORDS, simulator=spec, scorer="detection-judge", cache=cache)
        assert math.isnan(result.score)
        assert "no usable answer after 2 attempts: the reply is neither Yes nor No" in (result.error or "")
        assert all(j.p_yes is None for j in result.judgments)
        assert result.usage.requests == 2 * len(result.judgments) == len(proxy.requests)
    assert len(cache) == 0


# --- the local judge (loads the packaged model) ---------------------------------

FARM_RECORDS = [
    ActivationRecord(["We", " fed", " the", " horse", " and", " the", " goat", "."], [0, 0, 0, 9, 0, 0, 8, 0]),
    ActivationRecord(["The", " cow", " gave", " milk", " on", " the", " farm", "."], [0, 10, 0, 0, 0, 0, 0, 0]),
    ActivationRecord(["A", " pig", " rolled", " in", " the", " mud", "."], [0, 7, 0, 0, 0, 0, 0]),
    ActivationRecord(["The", " meeting", " starts", " at", " nine", " tomorrow", "."], [0] * 7),
    ActivationRecord(["She", " paid", " the", " bill", " with", " a", " card", "."], [0] * 8),
    ActivationRecord(["Rain", " is", " expected", " over", " the", " weekend", "."], [0] * 7),
]


@pytest.mark.model
def test_local_judge_ranks_the_right_explanation_first(tmp_path: Path) -> None:
    ranked = rank_explanations(
        ["money and payments", "farm animals"], FARM_RECORDS, simulator="local", scorer="detection-judge",
        cache=tmp_path / "cache",
    )
    assert [result.explanation for result in ranked] == ["farm animals", "money and payments"]
    best = ranked[0]
    assert best.error is None and best.score > 0.5
    assert all(0.0 < (j.p_yes or 0.0) < 1.0 for j in best.judgments)
    assert best.usage.prompt_tokens > 0 and best.simulator.startswith("local:")
    again = score_explanation("farm animals", FARM_RECORDS, simulator="local", scorer="detection-judge",
                              cache=tmp_path / "cache")
    assert again.cached and again.score == best.score
