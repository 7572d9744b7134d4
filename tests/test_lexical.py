import pytest

from scoring import score_explanation
from scoring.records import ActivationRecord
from scoring.simulators.lexical import explanation_terms, stem
from scoring.words import word_groups


@pytest.mark.parametrize(
    ("word", "expected"),
    [("shells", "shell"), ("shelled", "shell"), ("running", "run"), ("sprints", "sprint"), ("stories", "story"),
     ("cat", "cat"), ("recipes", "recip"), ("recipe", "recipe")],
)
def test_stem(word, expected):
    assert stem(word) == expected


def test_tokens_join_into_words():
    assert word_groups([" she", "lled", " eggs", ",", " she", " said"]) == [
        ("shelled", [0, 1]), ("eggs", [2]), (",", [3]), ("she", [4]), ("said", [5])
    ]


def test_explanation_terms_drop_function_words_and_keep_quotes():
    stems, quoted = explanation_terms('mentions of the word "red" in recipes')
    # "es" is tried before "s", so "recipes" stems to "recip" (and would not meet "recipe", which has no suffix)
    assert stems == {"recip", "red"}
    assert quoted == {"red"}


def test_context_trap_she_inside_shelled():
    records = [
        ActivationRecord([" The", " she", "lled", " peanuts", " were", " salty"], [0, 9, 7, 2, 0, 0]),
        ActivationRecord([" She", " cracked", " the", " eggs"], [0, 0, 0, 3]),
    ]
    context = score_explanation("shelled nuts and eggs", records, simulator="lexical", cache=False)
    surface = score_explanation("the pronoun she", records, simulator="lexical", cache=False)
    assert context.score > 0.5
    assert surface.score < context.score
