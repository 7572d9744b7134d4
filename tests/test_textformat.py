"""The dashboard's input readers: the token<TAB>activation text format and stored explanations."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from scoring import ActivationRecord, ScoringInputError, load_records
from scoring.textformat import (
    CandidateExplanation,
    describe_records,
    explanations_from_object,
    load_pasted,
    looks_like_token_text,
    new_explanations,
    parse_explanation_lines,
    parse_token_text,
    records_to_token_text,
)

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"


def test_parse_token_text_keeps_leading_spaces_and_splits_on_blank_lines() -> None:
    text = "the\t0\n quick\t0.5\n fox\t7.25\n\n\n spotted\t0\n leopard\t8\n"
    assert parse_token_text(text) == [
        {"tokens": ["the", " quick", " fox"], "values": [0.0, 0.5, 7.25]},
        {"tokens": [" spotted", " leopard"], "values": [0.0, 8.0]},
    ]


def test_parse_token_text_handles_escapes_tabs_in_tokens_header_and_crlf() -> None:
    text = "token\tactivation\r\n\\n\t1\r\na\\tb\t2\r\nback\\\\slash\t3\r\nodd\\x\t4\r\n"
    parsed = parse_token_text(text)
    assert parsed == [{"tokens": ["\n", "a\tb", "back\\slash", "odd\\x"], "values": [1.0, 2.0, 3.0, 4.0]}]


def test_parse_token_text_takes_the_last_tab_as_separator() -> None:
    assert parse_token_text("x\ty\t3") == [{"tokens": ["x\ty"], "values": [3.0]}]


def test_whitespace_only_token_is_not_a_blank_line() -> None:
    assert parse_token_text("a\t1\n \t0\nb\t2") == [{"tokens": ["a", " ", "b"], "values": [1.0, 0.0, 2.0]}]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("the 0\n", "line 1 .*has no tab"),
        ("a\t1\nb\tlots\n", "line 2: the activation 'lots' is not a number"),
        ("a\tnan\n", "line 1: .*finite"),
        ("\n\n  \n", "no tokens found"),
    ],
)
def test_parse_token_text_errors_name_the_line(text: str, message: str) -> None:
    with pytest.raises(ScoringInputError, match=message):
        parse_token_text(text)


def test_round_trip_through_text() -> None:
    records = [
        ActivationRecord(["a", " b\n", "\t"], [0.0, 1.5, -2.0]),
        ActivationRecord(["back\\slash"], [3.0]),
    ]
    again = load_records(parse_token_text(records_to_token_text(records)))
    assert [(r.tokens, r.activations) for r in again] == [(r.tokens, r.activations) for r in records]


def test_looks_like_token_text() -> None:
    assert looks_like_token_text("a\t1\n\n b\t2\n")
    assert not looks_like_token_text("sequence\ttoken\tactivation\n0\ta\t1\n")
    assert not looks_like_token_text("")


def test_load_pasted_reads_every_format() -> None:
    as_text = load_pasted("the\t0\n fox\t8\n")
    assert as_text[0].tokens == ["the", " fox"] and as_text[0].activations == [0.0, 8.0]
    as_json = load_pasted(json.dumps([{"tokens": ["a", "b"], "values": [1, 0]}]))
    assert as_json[0].activations == [1.0, 0.0]
    as_csv = load_pasted("sequence,token,activation\n0,a,1\n0,b,0\n1,c,2\n")
    assert [r.tokens for r in as_csv] == [["a", "b"], ["c"]]


def test_load_pasted_errors_say_what_to_fix() -> None:
    with pytest.raises(ScoringInputError, match="nothing to read"):
        load_pasted("   ")
    with pytest.raises(ScoringInputError, match="token<TAB>activation"):
        load_pasted("just some words\nand more")
    with pytest.raises(ScoringInputError, match="not valid JSON"):
        load_pasted("{broken")
    with pytest.raises(ScoringInputError, match="one value per token"):
        load_pasted('[{"tokens": ["a", "b"], "values": [1]}]')


def test_explanations_from_object_reads_strings_objects_and_neuronpedia_scores() -> None:
    data = {
        "explanation": "single one",
        "score": 0.3,
        "explanations": [
            "  plain  ",
            {"description": "with score", "score": 0.4, "score_type": "mine"},
            {"explanation": "np style", "scores": [{"value": 0.7, "explanationScoreTypeName": "oai"}]},
            {"text": "bare scores", "scores": [0.2]},
            {"description": ""},
            17,
        ],
    }
    assert explanations_from_object(data) == [
        CandidateExplanation("plain"),
        CandidateExplanation("with score", 0.4, "mine"),
        CandidateExplanation("np style", 0.7, "oai"),
        CandidateExplanation("bare scores", 0.2, ""),
        CandidateExplanation("single one", 0.3),
    ]
    assert explanations_from_object([1, 2]) == []
    assert explanations_from_object({"explanations": "not a list"}) == []


def test_parse_explanation_lines_strips_and_deduplicates() -> None:
    assert parse_explanation_lines(" fast animals \n\nfast animals\n cats\n") == ["fast animals", "cats"]


def test_describe_records() -> None:
    facts = describe_records([ActivationRecord(["a", "b"], [0.0, 2.5]), ActivationRecord(["c"], [1.0])])
    assert facts == {"sequences": 2, "tokens": 3, "max_activation": 2.5, "active_tokens": 2}


@pytest.mark.parametrize("path", sorted(EXAMPLES.glob("*.json")), ids=lambda path: path.name)
def test_bundled_examples_load_and_carry_explanations(path: Path) -> None:
    text = path.read_text(encoding="utf-8")
    records = load_pasted(text)
    assert len(records) >= 5
    assert any(value > 0 for record in records for value in record.activations)
    assert len(explanations_from_object(json.loads(text))) >= 3


def test_context_trap_example_has_she_inside_shelled() -> None:
    data = json.loads((EXAMPLES / "shelled_context_trap.json").read_text(encoding="utf-8"))
    records = load_records(data)
    shelled = [r for r in records if " she" in r.tokens and "lled" in r.tokens]
    pronoun = [r for r in records if " she" in r.tokens and "lled" not in r.tokens]
    assert shelled and pronoun
    assert all(r.activations[r.tokens.index("lled")] > 5 for r in shelled)
    assert all(max(r.activations) == 0 for r in pronoun)


def test_new_explanations_skip_what_is_there_ignoring_case_and_spacing():
    existing = ["fast animals", "The token  cheetah"]
    candidates = ["the token cheetah", None, "  ", "Fast  Animals", " the token fox ", "the token FOX"]
    assert new_explanations(existing, candidates) == ["the token fox"]
