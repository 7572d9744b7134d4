import math

import pytest

from scoring import ScoringInputError
from scoring.bench import load_puzzles, run_bench

PUZZLES = {
    "animals": {
        "name": "animals",
        "explanation": "fox and leopard",
        "false_explanations": ["zebra", "the word quick"],
        "sentences": [["the", " quick", " brown", [" fox", 8]], ["spotted", [" leopard", 9], " sprints"]],
    },
    "colors": {
        "name": "colors",
        "explanation": "brown",
        "false_explanations": ["fox"],
        "sentences": [["the", " quick", [" brown", 5], " fox"]],
    },
}


def test_puzzle_tokens_strings_are_inactive_pairs_are_active():
    puzzles = load_puzzles(PUZZLES)
    assert puzzles[0].records[0].tokens == ["the", " quick", " brown", " fox"]
    assert puzzles[0].records[0].activations == [0, 0, 0, 8]


def test_bench_counts_wins_pairs_and_nan_losses():
    summary = run_bench(PUZZLES, simulator="fake")
    # animals: true 'fox and leopard' matches both active tokens; 'zebra' is NaN (loses), 'quick' is negative.
    assert summary["puzzles"]["animals"]["won"] is True
    assert summary["puzzles"]["animals"]["false_scores"]["zebra"] is None
    # colors: true 'brown' is perfect, 'fox' negative
    assert summary["puzzles"]["colors"]["won"] is True
    assert summary["accuracy"] == 1.0 and summary["pairwise_accuracy"] == 1.0
    assert summary["n_scores"] == 5
    assert summary["prompt_tokens_per_score"] > 0
    assert summary["seconds_per_score"] >= 0


def test_a_nan_true_score_loses():
    puzzles = {"p": {**PUZZLES["colors"], "explanation": "zebra", "false_explanations": ["brown"]}}
    summary = run_bench(puzzles, simulator="fake")
    assert summary["accuracy"] == 0.0 and summary["pairwise_accuracy"] == 0.0
    assert summary["puzzles"]["p"]["true_score"] is None


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({}, "non-empty JSON object"),
        ({"p": {"explanation": "x"}}, "needs 'explanation'"),
        ({"p": {"explanation": "x", "sentences": [], "false_explanations": []}}, "non-empty 'false_explanations'"),
        ({"p": {"explanation": "x", "sentences": [[3]], "false_explanations": ["y"]}}, "string or \\[token"),
    ],
)
def test_bad_puzzle_files(data, message):
    with pytest.raises(ScoringInputError, match=message):
        load_puzzles(data)


def test_limit():
    assert run_bench(PUZZLES, simulator="fake", limit=1)["n_puzzles"] == 1
    assert not math.isnan(run_bench(PUZZLES, simulator="lexical")["pairwise_accuracy"])
