"""The chance level of a score: unrelated explanations scored through the same simulator and scorer."""

import json
import math
import subprocess
import sys
from pathlib import Path

import pytest

from scoring import NullDistribution, ScoringInputError, null_scores, rank_explanations, score_explanation
from scoring.null import NULL_METRICS, NULL_SIZE, attach_null, choose_null, null_bank, null_from_metrics
from scoring.results import ScoreResult
from scoring.simulators.fake import FakeSimulator

ROOT = Path(__file__).resolve().parent.parent


def null_of(scores: list[float]) -> NullDistribution:
    return NullDistribution("simulation", "fake:fake-match", [f"unrelated {i}" for i in range(len(scores))], scores)


def test_percentile_threshold_and_margin_on_known_scores():
    null = null_of([0.1 * i for i in range(20)])  # 0.0 .. 1.9
    assert null.n == 20
    # 95th percentile by nearest rank: the 19th of 20 sorted values.
    assert null.threshold == pytest.approx(1.8)
    assert null.margin(2.0) == pytest.approx(0.2)
    assert null.margin(1.0) == pytest.approx(-0.8)
    assert null.percentile(2.5) == 100.0
    assert null.percentile(-1.0) == 0.0
    # 0.5 beats 0.0..0.4 (5 values) and ties 0.5 (counted half): 5.5 of 20.
    assert null.percentile(0.5) == pytest.approx(27.5)
    assert math.isnan(null.percentile(math.nan))
    assert math.isnan(null.margin(math.nan))


def test_an_unrelated_explanation_that_predicts_nothing_counts_as_no_correlation():
    null = null_of([math.nan, math.nan, 0.3, -0.2])
    assert null.predicted_nothing == 2
    assert null.values == [0.0, 0.0, 0.3, -0.2]
    assert null.percentile(0.1) == 75.0
    assert null.to_dict()["scores"][0]["score"] is None
    json.dumps(null.to_dict(), allow_nan=False)


def test_an_empty_null_gives_nan_not_a_number_made_up():
    null = null_of([])
    assert math.isnan(null.threshold)
    assert math.isnan(null.percentile(0.5))
    assert null.to_dict()["p95"] is None


def test_the_bank_is_varied_and_the_draw_is_seeded_and_excludes_your_own():
    bank = null_bank()
    assert len(bank) >= 40 and len(set(bank)) == len(bank)
    assert not any(line.startswith("#") for line in bank)
    first = choose_null(5, seed=1)
    assert first == choose_null(5, seed=1)
    assert first != choose_null(5, seed=2)
    mine = bank[0].upper()
    assert bank[0] not in choose_null(len(bank) - 1, exclude=[mine])
    with pytest.raises(ScoringInputError, match="at least 2"):
        choose_null(1)
    with pytest.raises(ScoringInputError, match="fewer than"):
        choose_null(len(bank), exclude=[bank[0]])


def test_rank_with_null_adds_each_explanations_standing_and_keeps_unrelated_out(seed_records):
    simulator = FakeSimulator()
    ranked = rank_explanations(
        ["fox leopard sprints", "zebra"], seed_records, simulator=simulator, cache=False, null=4
    )
    assert [r.explanation for r in ranked] == ["fox leopard sprints", "zebra"]
    null = null_from_metrics(ranked[0])
    assert null is not None and null.n == 4
    assert set(null.explanations) <= set(null_bank())
    best = ranked[0]
    assert set(NULL_METRICS) <= set(best.metrics)
    assert best.metrics["null_percentile"] == null.percentile(best.score)
    assert best.metrics["over_null_p95"] == pytest.approx(best.score - null.threshold)
    assert best.metrics["null_n"] == 4
    # "zebra" matches nothing: NaN score, so no standing, but the null is still told.
    assert math.isnan(ranked[1].metrics["null_percentile"])
    json.dumps([r.to_dict() for r in ranked], allow_nan=False)


def test_null_scores_matches_what_rank_attaches(seed_records, tmp_path):
    options = {"simulator": "fake", "cache": tmp_path / "cache"}
    ranked = rank_explanations(["fox leopard sprints"], seed_records, null=5, **options)
    alone = null_scores(seed_records, n=5, exclude=["fox leopard sprints"], **options)
    attached = null_from_metrics(ranked[0])
    assert attached is not None
    standing = dict(zip(attached.explanations, attached.values, strict=True))
    assert dict(zip(alone.explanations, alone.values, strict=True)) == pytest.approx(standing)


def test_score_explanation_takes_null_true_for_the_default_size(seed_records):
    result = score_explanation("fox leopard sprints", seed_records, simulator="fake", cache=False, null=True)
    assert result.metrics["null_n"] + len(null_from_metrics(result).failed) == NULL_SIZE
    plain = score_explanation("fox leopard sprints", seed_records, simulator="fake", cache=False)
    assert "null" not in plain.metrics and plain.score == result.score


@pytest.mark.parametrize("bad", [1, 0.5, "many", -3])
def test_bad_null_option_says_what_to_give(seed_records, bad):
    with pytest.raises(ScoringInputError, match="null must be True, False or a number"):
        score_explanation("fox", seed_records, simulator="fake", null=bad)


def test_failed_unrelated_explanations_are_left_out_and_named(seed_records):
    ranked = rank_explanations(["fox"], seed_records, simulator="fake:fail", cache=False, null=3)
    null = null_from_metrics(ranked[0])
    assert null is not None
    assert null.n == 0 and len(null.failed) == 3
    assert all("fake:fail always fails" in reason for reason in null.failed.values())
    assert math.isnan(ranked[0].metrics["null_p95"])


def test_progress_names_the_chance_level_step(seed_records):
    messages = []
    rank_explanations(
        ["fox"], seed_records, simulator="fake", cache=False, null=2, progress=lambda d, t, m: messages.append(m)
    )
    assert any(m.startswith("chance level: unrelated explanation 2/2") for m in messages)
    assert any(m.startswith("explanation 1/1") for m in messages)


def test_attach_null_survives_a_round_trip_through_metrics():
    result = ScoreResult(explanation="x", score=0.5, simulator="fake:fake-match", scorer="simulation")
    attach_null([result], null_of([0.1, math.nan, 0.6]))
    back = null_from_metrics(result)
    assert back is not None and back.n == 3 and back.predicted_nothing == 1
    assert result.metrics["null_percentile"] == pytest.approx(100 * 2 / 3)


def test_cheap_simulators_say_so():
    from scoring import get_simulator

    assert get_simulator("fake").capabilities.cheap
    assert get_simulator("lexical").capabilities.cheap
    assert not get_simulator("openai-compatible:m@http://127.0.0.1:9/v1").capabilities.cheap


def test_cli_null_flag_prints_the_chance_level(data_dir):
    done = subprocess.run(
        [sys.executable, "-m", "scoring", "score", str(data_dir / "neuronpedia_request.json"),
         "-e", "fox leopard", "--simulator", "fake", "--no-cache", "--null", "4"],
        cwd=ROOT, capture_output=True, text=True, timeout=120,
    )
    assert done.returncode == 0, done.stderr
    assert "chance level: 95th percentile" in done.stdout
    assert "of 4 unrelated explanations" in done.stdout
    assert "fox leopard: beats" in done.stdout and "over their 95th percentile" in done.stdout
    as_json = subprocess.run(
        [sys.executable, "-m", "scoring", "score", str(data_dir / "neuronpedia_request.json"),
         "-e", "fox leopard", "--simulator", "fake", "--no-cache", "--null", "--json"],
        cwd=ROOT, capture_output=True, text=True, timeout=120,
    )
    assert as_json.returncode == 0, as_json.stderr
    metrics = json.loads(as_json.stdout)["results"][0]["metrics"]
    assert metrics["null"]["n"] + len(metrics["null"]["failed"]) == NULL_SIZE
