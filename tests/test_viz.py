"""The pure picture functions of `scoring.viz`, on hand-made results (no Streamlit, no simulator)."""

from __future__ import annotations

import io
import json
import math
import re
from pathlib import Path

import pandas as pd
import plotly.graph_objects as go
import pytest

from scoring import ActivationRecord, viz
from scoring import results as results_module
from scoring.pricing import estimate_api_usage
from scoring.prompts import API_CHAT_SYSTEM
from scoring.results import ScoreResult, SequenceResult
from scoring.simulators.base import Usage

NAN = math.nan


def sequence(
    index: int, tokens: list[str], real: list[float], simulated: list[float] | None, **kw: object
) -> SequenceResult:
    correlation = float(kw.pop("correlation", NAN))  # type: ignore[arg-type]
    return SequenceResult(
        tokens=tokens,
        raw=[value / 2 for value in real],
        real=real,
        simulated=simulated,
        correlation=correlation,
        index=index,
        **kw,
    )


def result(explanation: str, score: float, sequences: list[SequenceResult], **kw: object) -> ScoreResult:
    metrics = {"ci_low": score - 0.1, "ci_high": score + 0.1, "r_squared": 0.5, "roc_auc": 0.9}
    metrics.update(kw.pop("metrics", {}))
    return ScoreResult(explanation=explanation, score=score, sequences=sequences, metrics=metrics, **kw)


@pytest.fixture
def results() -> list[ScoreResult]:
    good = result(
        "fast animals",
        0.8,
        [
            sequence(0, ["the", " quick", " fox"], [0, 2, 10], [0, 1, 9], correlation=0.97, cached=True),
            sequence(3, [" spotted", " leopard"], [0, 8], [0, 10], correlation=1.0, cached=True),
        ],
        usage=Usage(requests=2, prompt_tokens=120, completion_tokens=30, cost_usd=0.001, cache_hits=2),
    )
    failed = result(
        "cats <b>",
        NAN,
        [
            sequence(0, ["the", " quick", " fox"], [0, 2, 10], None, error="model said <nonsense>"),
            sequence(3, [" spotted", " leopard"], [0, 8], [0, 0]),
        ],
        metrics={"ci_low": NAN, "ci_high": NAN, "r_squared": NAN, "roc_auc": NAN},
        error="1 of 2 sequences could not be simulated",
        usage=Usage(requests=1, prompt_tokens=50, cache_misses=2),
    )
    return [good, failed]


def test_activation_color_scales_alpha_and_marks_missing() -> None:
    assert viz.activation_color(0) == "rgba(255,140,0,0.000)"
    assert viz.activation_color(10) == "rgba(255,140,0,0.850)"
    assert viz.activation_color(25) == viz.activation_color(10)
    assert viz.activation_color(-3) == "rgba(31,111,235,0.255)"  # negative: blue, as strong as +3
    assert viz.activation_color(5, vmax=5) == viz.activation_color(10)
    assert viz.activation_color(None) == viz.activation_color(NAN) == "rgba(200,200,200,0.6)"


def test_visible_token_text_escapes_and_shows_whitespace() -> None:
    assert viz.visible_token_text(" <b>") == '<span class="ws">·</span>&lt;b&gt;'
    assert viz.visible_token_text("\n") == '<span class="ws">↵</span>'
    assert viz.visible_token_text("\t") == '<span class="ws">→</span>'
    assert viz.visible_token_text("") == '<span class="ws">∅</span>'


def test_tokens_html_escapes_text_and_hover() -> None:
    hostile = '"><img src=x onerror=alert(1)>'
    page = viz.tokens_html(["ok", hostile], [7.25, 0.0], hover=["real 1.00", "real <0>"])
    assert "<img" not in page
    assert "&lt;img src=x onerror=alert(1)&gt;" in page
    assert 'title="&#x27;ok&#x27;  value 7.25  real 1.00"' in page
    assert "real &lt;0&gt;" in page
    assert page.count('class="tok"') == 2


def test_tokens_html_failed_sequence_shows_reason() -> None:
    page = viz.tokens_html(["a", "b"], None, error="bad <reply>")
    assert page.count('class="tok failed"') == 2
    assert "value n/a" in page
    assert "bad &lt;reply&gt;" in page


def test_tokens_html_rejects_mismatched_lengths() -> None:
    with pytest.raises(ValueError, match="2 tokens but 1 values"):
        viz.tokens_html(["a", "b"], [1.0])
    with pytest.raises(ValueError, match="hover"):
        viz.tokens_html(["a"], [1.0], hover=[])


def test_comparison_html_has_real_plus_one_column_per_explanation(results: list[ScoreResult]) -> None:
    page = viz.comparison_html(results)
    assert page.count('class="cmpgrid"') == 2
    assert page.count("repeat(3,") == 2
    assert page.count("Real activations") == 2
    assert "cats &lt;b&gt;" in page and "cats <b>" not in page
    assert "model said &lt;nonsense&gt;" in page
    assert "r = 0.97 ·" in page and "error ·" in page
    assert "✗ missed ·" in page and 'class="head missed"' in page and "a missed firing" in page
    assert "raw 5" in page  # the real column's hover shows the raw activation
    assert viz.comparison_html(results, max_sequences=1).count('class="cmpgrid"') == 1
    assert viz.comparison_html([]) == ""


def test_comparison_html_marks_sequences_an_explanation_did_not_score(results: list[ScoreResult]) -> None:
    partial = result("only one", 0.5, [results[0].sequences[1]])
    page = viz.comparison_html([results[0], partial])
    assert "not scored" in page


def test_sequence_label_shortens() -> None:
    assert viz.sequence_label(["the", " quick"], 4) == "#4 the quick"
    assert viz.sequence_label(["x" * 100], 0, width=10) == "#0 " + "x" * 9 + "…"


def test_ranking_frame_and_table(results: list[ScoreResult]) -> None:
    frame = results_module.ranking_frame(results)
    assert list(frame["explanation"]) == ["fast animals", "cats <b>"]
    assert frame.loc[0, "interval"] == "[0.70, 0.90]"
    assert frame.loc[1, "interval"] == "n/a"
    assert bool(frame.loc[0, "cached"]) and not bool(frame.loc[1, "cached"])
    assert frame.loc[0, "cost_usd"] == pytest.approx(0.001)
    assert math.isnan(frame.loc[1, "cost_usd"])
    styler = viz.ranking_table(results)
    shown = styler.data
    assert list(shown["score"]) == ["0.800", "n/a"]
    assert list(shown["cost_usd"]) == ["$0.00100", "n/a"]
    assert list(shown["cached"]) == ["yes", "no"]
    styled = styler.to_html()
    assert styled.count("rgba(40,167,69,0.25)") == 1


def test_best_index_skips_nan() -> None:
    nan_first = [result("a", NAN, []), result("b", 0.2, []), result("c", 0.6, [])]
    assert viz.best_index(nan_first) == 2
    assert viz.best_index([result("a", NAN, [])]) is None


def test_per_sequence_frame_and_figure(results: list[ScoreResult]) -> None:
    frame = viz.per_sequence_frame(results)
    assert frame.shape == (2, 2)
    assert list(frame.columns) == ["fast animals", "cats <b>"]
    assert frame.iloc[0, 0] == pytest.approx(0.97)
    assert math.isnan(frame.iloc[0, 1])
    figure = viz.per_sequence_figure(results)
    assert isinstance(figure, go.Figure)
    heatmap = figure.data[0]
    assert len(heatmap.z) == 2 and len(heatmap.z[0]) == 2
    assert "model said &lt;nonsense&gt;" in heatmap.hovertext[0][1]
    assert heatmap.text[0][1] == "error"
    # cats <b> on the leopard: the neuron fires (8) and the simulation is flat at 0 -- a missed firing
    assert heatmap.text[1][1] == "✗ missed"
    assert "fires here" in heatmap.hovertext[1][1] and "simulation is constant at 0.00" in heatmap.hovertext[1][1]
    missed = figure.data[1]
    assert missed.name == "missed firing" and missed.z[1][1] == 1.0 and missed.z[0][1] is None
    table = viz.per_sequence_table(results)
    assert list(table.iloc[:, 1]) == ["error", "✗ missed"] and table.iloc[0, 0] == "0.970"


def test_sequence_outcome_says_which_side_is_constant() -> None:
    silent = sequence(0, ["a", "b"], [0, 0], [0, 5])
    assert viz.sequence_outcome(silent)[0] == "silent"
    assert "real activation is constant at 0.00" in viz.sequence_outcome(silent)[1]
    missed = sequence(1, ["a", "b", "c"], [0, 6, 3], [2, 2, 2])
    kind, reason = viz.sequence_outcome(missed)
    assert kind == "missed" and "constant at 2.00" in reason and "recall of active tokens 2/2" in reason
    scored = sequence(2, ["a", "b"], [0, 6], [0, 5], correlation=1.0)
    assert viz.sequence_outcome(scored) == ("scored", "")
    both = sequence(3, ["a", "b"], [1, 1], [0, 0])
    assert "the simulation is constant too" in viz.sequence_outcome(both)[1]


def test_per_sequence_frame_keeps_duplicate_explanations_apart() -> None:
    twice = [result("same", 0.1, []), result("same", 0.2, [])]
    assert list(viz.per_sequence_frame(twice).columns) == ["same", "same (2)"]


def test_scatter_figure_plots_every_simulated_token(results: list[ScoreResult]) -> None:
    figure = viz.scatter_figure(results)
    assert [trace.name for trace in figure.data] == ["fast animals", "cats <b>", "perfect"]
    # the two tokens at (0, 0) are one marker, larger, whose hover counts them
    assert list(figure.data[0].x) == [0, 2, 10, 8]
    assert list(figure.data[0].y) == [0, 1, 9, 10]
    sizes = list(figure.data[0].marker.size)
    assert sizes[0] > sizes[1] == sizes[2] == sizes[3]
    assert figure.data[0].text[0].startswith("2 tokens:")
    assert len(figure.data[1].x) == 2  # the failed sequence has no points
    assert len(viz.scatter_figure(results, max_points=3).data[0].x) == 3


def test_downloads_are_valid_csv_and_json(results: list[ScoreResult]) -> None:
    ranking = pd.read_csv(io.StringIO(results_module.results_csv(results)))
    assert list(ranking["explanation"]) == ["fast animals", "cats <b>"]
    tokens = pd.read_csv(io.StringIO(results_module.tokens_csv(results)))
    assert len(tokens) == 10
    assert set(tokens.columns) >= {"explanation", "sequence", "token", "raw", "real", "simulated", "error"}
    document = json.loads(results_module.results_json(results, {"settings": {"simulator": "fake"}}))
    assert document["settings"] == {"simulator": "fake"}
    assert document["results"][1]["score"] is None
    assert document["results"][0]["sequences"][0]["tokens"] == ["the", " quick", " fox"]


def test_usage_summary_adds_up(results: list[ScoreResult]) -> None:
    total = results_module.usage_summary(results)
    assert total["requests"] == 3
    assert total["prompt_tokens"] == 170
    assert total["cache_hits"] == 2 and total["cache_misses"] == 2
    assert total["cost_usd"] == pytest.approx(0.001)
    assert results_module.usage_summary([results[1]])["cost_usd"] is None


def test_spot_check_claims_table_and_evidence() -> None:
    from scoring.protocols.neuronpedia import read_feature
    from scoring.spotcheck import spot_check

    data = json.loads((Path(__file__).resolve().parents[1] / "examples" / "neuronpedia_spot_check.json").read_text())
    check = spot_check(read_feature(data, "example"))
    frame = viz.claims_frame([check])
    assert list(frame.columns) == list(viz.CLAIM_COLUMNS) and len(frame) == 8
    wrong = frame[frame["explanation"] == "morning routines"].iloc[0]
    assert (wrong["claimed"], wrong["derived"], wrong["verdict"]) == (0.83, 0.4, "contradicts its details")
    styled = viz.claims_table(frame)
    assert "rgba(220,53,69,0.3)" in styled.to_html() and list(styled.data["claimed"])[0] == "0.733"
    fuzz = next(claim for claim in check.claims if claim.type == "eleuther_fuzz")
    judged = viz.claim_evidence(fuzz)["stored"]
    evidence = viz.evidence_frame(judged)
    assert list(evidence.columns) == list(viz.EVIDENCE_COLUMNS) and len(evidence) == 25
    assert (evidence["outcome"] == "dropped").sum() == 5
    assert "1 batch dropped" in viz.evidence_summary(judged)
    drawn = viz.evidence_html(judged)
    assert drawn.count("class='cmpseq'") == len(viz.where_it_fails(judged)) and "tok active" in drawn
    assert "data-outcome='dropped'" in drawn and "data-outcome='wrong'" in drawn


def test_bench_frame_picks_the_strongest_false_explanation() -> None:
    report = {
        "puzzles": {
            "colors": {
                "explanation": "colours",
                "true_score": 0.4,
                "false_scores": {"adjectives": 0.6, "smells": None},
                "won": False,
                "pairs_won": 1,
                "pairs": 2,
                "errors": {"smells": "matched nothing"},
            },
            "dates": {"explanation": "years", "true_score": None, "false_scores": {}, "won": False},
        }
    }
    frame = viz.bench_frame(report)
    assert list(frame["puzzle"]) == ["colors", "dates"]
    assert frame.loc[0, "best_false_explanation"] == "adjectives"
    assert frame.loc[0, "margin"] == pytest.approx(-0.2)
    assert frame.loc[0, "pairs_won"] == "1/2"
    assert frame.loc[0, "errors"] == "smells: matched nothing"
    assert math.isnan(frame.loc[1, "true_score"])
    assert "rgba(220,53,69,0.18)" in viz.highlight_bench(frame).to_html()


def test_estimate_api_usage_counts_requests_and_cost() -> None:
    from scoring.pricing import PRICES_PER_MILLION
    from scoring.prompts import api_chat_user_message

    sequences = [["a", " b"], ["c"], ["d", " e", " f"]]
    input_price, output_price = PRICES_PER_MILLION["gpt-4o-mini"]
    assert (input_price, output_price) == (0.15, 0.60)  # USD per million tokens in the pricing table
    estimate = estimate_api_usage(
        ["one", "two"], sequences, sequences_per_call=2, prompt_price=input_price, completion_price=output_price
    )
    # 2 explanations x 2 requests ([a b, c] and [d e f]); each request asks 3 tokens x 3 + 10 = 19 completion tokens
    assert estimate["requests"] == 4
    assert estimate["completion_tokens"] == 76
    # prompt tokens: about 4 characters each, plus 1, of the system text and the request's message
    prompt_tokens = sum(
        (len(API_CHAT_SYSTEM) + len(api_chat_user_message(explanation, chunk))) // 4 + 1
        for explanation in ("one", "two")
        for chunk in ([["a", " b"], ["c"]], [["d", " e", " f"]])
    )
    assert estimate["prompt_tokens"] == prompt_tokens
    assert estimate["cost_usd"] == pytest.approx((prompt_tokens * 0.15 + 76 * 0.60) / 1_000_000)
    assert estimate_api_usage(["one"], sequences, sequences_per_call=10)["cost_usd"] is None


def test_format_number() -> None:
    assert viz.format_number(0.12345) == "0.123"
    assert viz.format_number(NAN) == "n/a"
    assert viz.format_number(None) == "n/a"
    assert viz.format_number(3, 0) == "3"
    assert viz.format_number("text") == "text"


# --- several scorers, generated candidates, detection and fuzzing views ------


def styled_rows(styler: object, colour: str) -> set[int]:
    """Rows whose cells the Styler paints with `colour` (its CSS groups the cells of one style in one rule)."""
    page = styler.to_html()  # type: ignore[attr-defined]
    rows: set[int] = set()
    for rule in page.split("}"):
        selectors, _, body = rule.partition("{")
        if colour in body:
            rows |= {int(number) for number in re.findall(r"_row(\d+)_col", selectors)}
    return rows


def scored(pairs: list[tuple[str, float]]) -> list[ScoreResult]:
    return [result(text, score, []) for text, score in pairs]


def test_ranking_shows_the_source_only_when_something_was_generated(results: list[ScoreResult]) -> None:
    assert "source" not in viz.ranking_table(results).data.columns
    frame = results_module.ranking_frame(results, generated={"cats <b>"})
    assert list(frame["source"]) == ["given", "generated"]
    assert list(viz.ranking_table(results, generated={"cats <b>"}).data["source"]) == ["given", "generated"]


def test_scorer_ranking_frame_ranks_per_scorer_and_flags_disagreement() -> None:
    by_scorer = {
        "simulation": scored([("a", 0.9), ("b", 0.5), ("c", 0.5), ("d", NAN)]),
        "detection": scored([("b", 1.0), ("a", 0.8), ("c", 0.2), ("d", 0.1)]),
    }
    frame = viz.scorer_ranking_frame(by_scorer, generated={"c"})
    assert list(frame["explanation"]) == ["a", "b", "c", "d"]  # the first scorer's order
    assert list(frame["source"]) == ["given", "given", "generated", "given"]
    assert list(frame["simulation"][:3]) == [0.9, 0.5, 0.5] and math.isnan(frame["simulation"][3])
    assert list(frame["simulation rank"][:3]) == [1, 2, 2]  # ties share a rank ...
    assert pd.isna(frame["simulation rank"][3])  # ... and a NaN score has none
    assert list(frame["detection rank"]) == [2, 1, 3, 4]
    assert list(frame["rank_spread"][:3]) == [1, 1, 1] and pd.isna(frame["rank_spread"][3])
    assert list(frame["disagreement"]) == ["⚠ 1", "⚠ 1", "⚠ 1", "⚠ n/a"]
    agreeing = viz.scorer_ranking_frame({"x": scored([("a", 2), ("b", 1)]), "y": scored([("a", 0.7), ("b", 0.1)])})
    assert list(agreeing["disagreement"]) == ["", ""] and list(agreeing["rank_spread"]) == [0, 0]


def test_scorer_ranking_table_formats_and_tints() -> None:
    by_scorer = {"simulation": scored([("a", 0.9), ("b", NAN)]), "fuzzing": scored([("b", 0.75), ("a", 0.5)])}
    styler = viz.scorer_ranking_table(by_scorer)
    shown = styler.data
    assert list(shown.columns) == [
        "explanation", "simulation", "simulation rank", "fuzzing", "fuzzing rank", "disagreement"
    ]
    assert list(shown["simulation"]) == ["0.900", "n/a"]
    assert list(shown["simulation rank"]) == ["#1", "n/a"] and list(shown["fuzzing rank"]) == ["#2", "#1"]
    assert styled_rows(styler, "rgba(255,193,7,0.25)") == {0, 1}


def test_metrics_frame_keeps_numbers_only() -> None:
    scored_result = result("a", 0.5, [], metrics={"sequence_predictions": [1.0], "precision": 1, "flag": True})
    frame = viz.metrics_frame([scored_result])
    assert {"explanation", "score", "precision", "roc_auc", "error"} <= set(frame.columns)
    assert "sequence_predictions" not in frame.columns and "flag" not in frame.columns
    shown = viz.metrics_table([scored_result, result("b", NAN, [], metrics={"precision": 0})])
    assert list(shown["precision"]) == ["1", "0"] and list(shown["score"]) == ["0.500", "n/a"]


def detection_result(predictions: list[float] | None) -> ScoreResult:
    metrics: dict[str, object] = {"threshold": 5.0}
    if predictions is not None:
        metrics["sequence_predictions"] = predictions
    return result(
        "foxes",
        0.75,
        [
            sequence(0, ["a", " fox"], [0, 10], [0, 9]),  # activating, predicted high: hit
            sequence(1, ["a", " cat"], [0, 4], [0, 2]),  # activating, predicted low: miss
            sequence(2, ["the", " dog"], [0, 0], [6, 0]),  # silent, predicted high: false alarm
            sequence(3, ["the", " end"], [0, 0.5], [0, 0]),  # silent (below 1), predicted low: correct rejection
            sequence(4, ["x"], [3], None, error="failed"),
        ],
        metrics=metrics,
        scorer="detection",
    )


def test_detection_frame_reads_the_recorded_predictions() -> None:
    frame = viz.detection_frame(detection_result([9.0, 2.0, 6.0, 0.0, 7.0]))
    assert list(frame["activating"]) == ["yes", "yes", "no", "no", "yes"]
    assert list(frame["judged"]) == ["fires", "silent", "fires", "silent", "fires"]
    assert list(frame["outcome"]) == ["hit", "miss", "false alarm", "correct rejection", "hit"]
    assert frame["sequence"][0] == "#0 a fox"
    derived = viz.detection_frame(detection_result(None))  # not recorded: the highest simulated value
    assert list(derived["prediction"][:4]) == [9.0, 2.0, 6.0, 0.0]
    assert derived["outcome"][4] == "not simulated" and math.isnan(derived["prediction"][4])
    assert "applies" not in frame.columns  # no chance recorded: no column
    weighed = detection_result([9.0, 2.0, 6.0, 0.0, 7.0])
    weighed.metrics["sequence_applies"] = [None] * 5  # a simulator that gives none: still no column
    assert "applies" not in viz.detection_frame(weighed).columns
    weighed.metrics["sequence_applies"] = [0.9, 0.25, None, 0.0, 0.5]
    assert list(viz.detection_frame(weighed)["applies"][[0, 1, 3, 4]]) == [0.9, 0.25, 0.0, 0.5]
    assert math.isnan(viz.detection_frame(weighed)["applies"][2])
    assert list(viz.detection_table(weighed).data["applies"][[0, 1, 4]]) == ["0.90", "0.25", "0.50"]
    judged = detection_result([True, False, True, False, False])  # a judge's yes/no answers
    assert list(viz.detection_frame(judged)["judged"]) == ["fires", "silent", "fires", "silent", "silent"]


def test_detection_table_and_figure() -> None:
    scored_result = detection_result(None)
    styler = viz.detection_table(scored_result)
    assert styled_rows(styler, "rgba(220,53,69,0.2)") == {1, 2}  # the miss and the false alarm
    assert styled_rows(styler, "rgba(40,167,69,0.2)") == {0}
    figure = viz.detection_figure(scored_result)
    assert [trace.name for trace in figure.data] == ["activating", "not activating"]
    assert list(figure.data[0].y[:2]) == [9.0, 2.0]
    assert figure.layout.shapes[0].y0 == 5.0


def test_detection_view_of_a_judge_scorer_from_a_real_score() -> None:
    from scoring import score_explanation
    from scoring.records import ActivationRecord

    records = [
        ActivationRecord(["the", " fox", " ran"], [0.0, 8.0, 0.0]),
        ActivationRecord(["a", " dog", " sat"], [0.0, 0.0, 0.0]),
        ActivationRecord(["one", " fox", " here"], [0.0, 0.0, 0.0]),
        ActivationRecord(["big", " cat"], [0.0, 6.0]),
    ]
    judged = score_explanation("fox", records, simulator="fake", scorer="detection-judge", cache=False)
    frame = viz.detection_frame(judged)  # the judge's P(yes) per sequence, "fires" at 0.5
    assert list(frame["prediction"]) == [0.5, 0.0, 0.5, 0.0]
    assert list(frame["outcome"]) == ["hit", "correct rejection", "false alarm", "miss"]
    figure = viz.detection_figure(judged)
    assert figure.layout.shapes[0].y0 == 0.5 and figure.layout.yaxis.title.text == "the judge's P(yes)"
    failed = score_explanation("fox", records, simulator="fake:fail", scorer="detection-judge", cache=False)
    assert set(viz.detection_frame(failed)["outcome"]) == {"not judged"}


def test_judgments_frame_lists_the_questions_with_the_right_answer() -> None:
    from scoring.results import JudgmentResult

    sequences = [sequence(0, ["the", " fox"], [0, 10], None), sequence(2, ["a", " dog"], [0, 0], None)]
    fuzzing = result(
        "fox",
        1.0,
        sequences,
        metrics={"threshold": 0.5},
        scorer="fuzzing-judge",
        judgments=[
            JudgmentResult(0, "the <<fox>>", 1.0, 0.75),
            JudgmentResult(0, "<<the>> fox", 0.0, 0.5),
            JudgmentResult(2, "a <<dog>>", 0.0, None, error="timed out"),
        ],
    )
    frame = viz.judgments_frame(fuzzing)
    assert list(frame.columns) == list(viz.JUDGMENT_COLUMNS)
    assert list(frame["sequence"]) == ["#0 the fox", "#0 the fox", "#2 a dog"]
    assert list(frame["expected"]) == ["yes", "no", "no"]
    assert list(frame["answer"]) == ["yes", "yes", "n/a"]
    assert list(frame["outcome"]) == ["right", "wrong", "no answer: timed out"]
    styler = viz.judgments_table(fuzzing)
    assert styled_rows(styler, "rgba(220,53,69,0.2)") == {1}
    # binary-condition: the target is the window's highest real activation; active (>= 1) means "yes"
    graded = result(
        "fox", 0.9, sequences, scorer="binary-condition",
        judgments=[JudgmentResult(0, "the fox", 10.0, 0.75), JudgmentResult(2, "a dog", 0.5, 0.0)],
    )
    assert list(viz.judgments_frame(graded)["expected"]) == ["yes", "no"]
    assert list(viz.judgments_frame(graded)["outcome"]) == ["right", "right"]
    assert viz.judgments_frame(result("x", NAN, [])).empty


def test_fuzzing_frame_and_html_show_the_active_tokens() -> None:
    fuzzed = result(
        "foxes",
        0.5,
        [
            sequence(0, ["a", " fox", " ran"], [0, 10, 2], [0, 8, 4]),
            sequence(1, ["a", " cat"], [0, 5], [6, 2]),
            sequence(2, ["the", " dog"], [0, 0], [0, 0]),  # nothing active: not judged
            sequence(3, [" fox"], [7], [7]),  # nothing inactive: not judged
        ],
        scorer="fuzzing",
    )
    frame = viz.fuzzing_frame(fuzzed)
    assert list(frame["sequence"]) == ["#0 a fox ran", "#1 a cat"]
    assert list(frame["active_tokens"]) == ["fox, ran", "cat"]
    assert list(frame["active_mean"]) == [6.0, 2.0] and list(frame["inactive_mean"]) == [0.0, 6.0]
    assert list(frame["right_higher"]) == ["yes", "no"]
    page = viz.fuzzing_html(fuzzed)
    assert page.count('class="tok active"') == 3 and page.count('class="cmpseq"') == 2
    assert "(active)" in page
    assert "No sequence" in viz.fuzzing_html(result("x", 0.0, [sequence(0, ["a"], [0], [0])]))


def test_generated_frame_shows_text_or_reason() -> None:
    from scoring.results import GeneratedExplanation

    frame = viz.generated_frame(
        [
            GeneratedExplanation("fast animals", Usage(requests=1, prompt_tokens=40, cost_usd=0.0002)),
            GeneratedExplanation(None, Usage(), "HTTP 503", attempt=1),
            GeneratedExplanation("cats", Usage(cache_hits=1), attempt=2, cached=True),
        ]
    )
    assert list(frame["attempt"]) == [1, 2, 3]
    assert list(frame["explanation"]) == ["fast animals", "", "cats"]
    assert list(frame["error"]) == ["", "HTTP 503", ""]
    assert list(frame["cached"]) == ["no", "no", "yes"]
    assert list(frame["cost_usd"]) == ["$0.00020", "n/a", "n/a"]


def test_bench_frames_for_one_and_several_scorers() -> None:
    single = {"scorer": "simulation", "accuracy": 0.5, "pairwise_accuracy": 0.75, "seconds_per_score": 0.1,
              "prompt_tokens_per_score": 10, "cost_usd": None, "n_puzzles": 2,
              "puzzles": {"p": {"won": True}, "q": {"won": False}}}
    frame = viz.bench_scorers_frame(single)
    assert list(frame["scorer"]) == ["simulation"] and frame["puzzles_won"][0] == 1
    assert math.isnan(frame["cost_usd"][0])
    several = {**single, "scorers": {"simulation": single, "fuzzing": {**single, "accuracy": 1.0}},
               "agreement": {"pairs": [{"scorers": ["simulation", "fuzzing"], "kendall_tau": 0.5,
                                        "tau_puzzles": 2, "top_agreement": None, "top_puzzles": 0}]}}
    assert list(viz.bench_scorers_frame(several)["accuracy"]) == [0.5, 1.0]
    agreement = viz.bench_agreement_frame(several)
    assert agreement["scorers"][0] == "simulation ~ fuzzing" and agreement["kendall_tau"][0] == 0.5
    assert math.isnan(agreement["top_agreement"][0])
    assert viz.bench_agreement_frame(single).empty


def test_long_sequences_scroll_and_column_heads_stay_on_one_line(results: list[ScoreResult]) -> None:
    assert 'class="tokviz scroll"' in viz.tokens_html(["a"] * 4000, [0.0] * 4000)
    assert 'class="tokviz"' in viz.tokens_html(["a"], [1.0], scroll=False)
    page = viz.comparison_html(results)
    assert "white-space:nowrap" in page and "text-overflow:ellipsis" in page  # a long title cannot push a column down


def test_comparison_html_can_put_the_strongest_sequences_first(results: list[ScoreResult]) -> None:
    weak_first = [result("r", 0.5, [sequence(0, ["a"], [1], [1]), sequence(1, ["b"], [9], [9])])]
    page = viz.comparison_html(weak_first, strongest_first=True, max_sequences=1)
    assert "#1 b" in page and "#0 a" not in page


def test_activation_histogram_reports_density() -> None:
    records = [ActivationRecord(["a", "b", "c", "d"], [0.0, 2.0, -1.0, 5.0])]
    figure = viz.activation_histogram(records)
    assert list(figure.data[0].x) == [0.0, 2.0, -1.0, 5.0]
    assert "density 50.0% (2 tokens > 0)" in figure.layout.title.text


def test_detection_figure_draws_zero_predictions() -> None:
    figure = viz.detection_figure(detection_result([0.0, 0.0, 6.0, 0.0]))
    assert all(trace.mode == "markers" for trace in figure.data)
    assert 0.0 in [value for trace in figure.data for value in trace.y]


def test_metrics_table_prints_counts_without_decimals() -> None:
    with_counts = result("a", 0.5, [], metrics={"positives": 19.0, "n_tokens": 40, "roc_auc": 0.75})
    without = result("b", NAN, [], metrics={"roc_auc": NAN})
    table = viz.metrics_table([with_counts, without])
    assert list(table["positives"]) == ["19", "n/a"] and list(table["n_tokens"]) == ["40", "n/a"]
    assert list(table["roc_auc"]) == ["0.750", "n/a"]


def test_the_failure_chart_puts_the_strongest_sequences_first_and_shows_a_page_of_them() -> None:
    sequences = [sequence(index, [f"t{index}", " x"], [0, float(index % 7)], [0, 1], correlation=0.5)
                 for index in range(200)]
    many = [result("a", 0.5, sequences)]
    order = viz.strongest_sequences(many)
    assert [max(sequences[index].real) for index in order[:3]] == [6.0, 6.0, 6.0]
    assert order[:2] == [6, 13]  # ties in index order
    figure = viz.per_sequence_figure(many, max_sequences=10)
    heatmap = figure.data[0]
    assert len(heatmap.y) == 10
    assert list(heatmap.y) == list(viz.per_sequence_frame(many, order[:10]).index)
    assert figure.layout.height < 600
    assert len(viz.per_sequence_figure(many).data[0].y) == 200


def test_ranking_figure_draws_scores_and_the_chance_level() -> None:
    from scoring.null import NullDistribution, attach_null

    scored = [result("fast animals", 0.8, []), result("cats", 0.1, []), result("nothing", NAN, [])]
    plain = viz.ranking_figure(scored)
    assert list(plain.data[0].y) == ["fast animals", "cats"]
    assert len(plain.data) == 1 and "1 without a score left out" in plain.layout.title.text
    attach_null(scored, NullDistribution("simulation", "fake", ["u1", "u2", "u3"], [0.05, NAN, 0.2]))
    figure = viz.ranking_figure(scored)
    chance = figure.data[1]
    assert list(chance.x) == [0.05, 0.0, 0.2]
    assert set(chance.y) == {"chance (3 unrelated)"}
    assert "predicted nothing" in chance.hovertext[1]
    assert figure.layout.shapes[0].x0 == pytest.approx(0.2)
    table = viz.ranking_table(scored).data
    assert list(table["chance_percentile"]) == ["100%", "67%", "n/a"]
    assert list(table["over_chance_p95"]) == ["+0.600", "-0.100", "n/a"]
    assert "chance_percentile" not in viz.ranking_table(scored[:0] or [result("x", 0.3, [])]).data.columns


def test_numbers_on_the_correlation_heatmap_read_on_every_cell_colour(results: list[ScoreResult]) -> None:
    def luminance(rgb: str) -> float:
        channels = [int(part) / 255 for part in re.findall(r"\d+", rgb)[:3]]
        linear = [c / 12.92 if c <= 0.03928 else ((c + 0.055) / 1.055) ** 2.4 for c in channels]
        return 0.2126 * linear[0] + 0.7152 * linear[1] + 0.0722 * linear[2]

    heatmap = viz.per_sequence_figure(results).data[0]
    text = luminance("rgb(17,17,17)")
    assert heatmap.textfont.color == "#111"
    for _, colour in heatmap.colorscale:
        assert (luminance(colour) + 0.05) / (text + 0.05) >= 4.5  # WCAG AA for normal text


def test_the_ranking_shows_the_error_column_only_when_something_failed(results: list[ScoreResult]) -> None:
    assert "error" in viz.ranking_table(results).data.columns
    assert "error" not in viz.ranking_table(results[:1]).data.columns
