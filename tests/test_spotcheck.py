"""The spot-check verdict and the like-for-like comparison of a claimed score's method with a re-score's."""

from __future__ import annotations

import math

from scoring.results import ScoreResult
from scoring.spotcheck import compare_method, simulator_model, verdict

NAN = math.nan


def rescore(score: float, low: float = NAN, high: float = NAN, **kw: str) -> ScoreResult:
    return ScoreResult(explanation="x", score=score, metrics={"ci_low": low, "ci_high": high}, **kw)  # type: ignore[arg-type]


def test_verdict_uses_the_interval_widened_by_the_tolerance() -> None:
    scored = rescore(0.5, 0.4, 0.6)
    assert verdict(0.55, scored) == "agrees"
    assert verdict(0.64, scored, tolerance=0.05) == "agrees"
    assert verdict(0.66, scored, tolerance=0.05) == "disagrees"
    assert verdict(0.1, scored) == "disagrees"
    assert verdict(None, scored) == "no claim"
    assert verdict(NAN, scored) == "no claim"
    assert verdict(0.5, rescore(NAN)) == "not scored"
    no_interval = rescore(0.5)
    assert verdict(0.52, no_interval) == "agrees"
    assert verdict(0.7, no_interval) == "disagrees"


def test_a_verdict_across_methods_says_so() -> None:
    assert verdict(0.9, rescore(0.5, 0.4, 0.6), same_method=False) == "disagrees (methods differ)"
    assert verdict(0.5, rescore(0.5, 0.4, 0.6), same_method=False) == "agrees (methods differ)"


def test_compare_method_needs_the_same_scorer_and_model() -> None:
    api = rescore(0.5, simulator="openai:gpt-4o", scorer="simulation")
    assert compare_method("oai_token-act-pair", "gpt-4o", api).same
    assert compare_method("oai_token-act-pair", "GPT-4o", api).same
    other_model = compare_method("oai_token-act-pair", "gpt-4", api)
    assert not other_model.same and "gpt-4" in other_model.note and "openai:gpt-4o" in other_model.note
    lexical = rescore(0.5, simulator="lexical", scorer="simulation")
    assert not compare_method("oai_token-act-pair", "gpt-4", lexical).same
    assert "does not name its model" in compare_method("oai_token-act-pair", "", api).note
    assert not compare_method("", "", api).same
    assert "not a method computed here" in compare_method("eleuther_embedding", "x", api).note
    fuzzing = rescore(0.5, simulator="openai:gpt-4o", scorer="fuzzing")
    other_scorer = compare_method("oai_token-act-pair", "gpt-4o", fuzzing)
    assert not other_scorer.same and "simulation scorer" in other_scorer.note


def test_simulator_model() -> None:
    assert simulator_model("openai:gpt-4o-mini") == "gpt-4o-mini"
    assert simulator_model("lexical") == ""
    assert simulator_model("local:SmolLM2") == "SmolLM2"
