"""The dashboard pages under `streamlit.testing.v1.AppTest` (no browser, no model: the `fake` simulator)."""

from __future__ import annotations

import json
import threading
from pathlib import Path

import pandas as pd
import pytest
from streamlit.testing.v1 import AppTest

import dashboard as ui
from scoring import SIMULATORS, ActivationRecord, Simulator, default_simulator_spec
from scoring.simulators.fake import FakeSimulator

REPO = Path(__file__).resolve().parent.parent
APP = str(REPO / "app.py")
SPOT_CHECK = str(REPO / "pages" / "2_Spot_check.py")
BENCHMARK = str(REPO / "pages" / "3_Benchmark.py")
TIMEOUT = 60


@pytest.fixture(autouse=True)
def no_model_loading(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> None:
    """The pages may offer `local` (and default to it), but no test here builds it unless marked `model`."""
    if "local" in SIMULATORS and request.node.get_closest_marker("model") is None:

        def refuse(argument: str | None) -> Simulator:
            raise AssertionError("a dashboard test tried to load the local model; select `fake`")

        monkeypatch.setitem(SIMULATORS, "local", refuse)


def run_page(path: str) -> AppTest:
    app = AppTest.from_file(path, default_timeout=TIMEOUT)
    app.run()
    assert_clean(app)
    return app


def assert_clean(app: AppTest) -> None:
    """No exception reached the page."""
    assert not app.exception, [element.value for element in app.exception]


def texts(elements: object) -> list[str]:
    return [str(element.value) for element in elements]  # type: ignore[attr-defined]


def html_of(app: AppTest) -> str:
    return "".join(str(node.proto.body) for node in app.get("html"))


def table(app: AppTest, column: str, *, index: int = 0) -> pd.DataFrame:
    """The `index`-th dataframe on the page that has `column` (dataframes carry no key in AppTest)."""
    frames = [element.value for element in app.dataframe if column in element.value.columns]
    assert len(frames) > index, f"no table with column {column!r}"
    return frames[index]


def choose_simulator(app: AppTest, key: str, spec: str) -> AppTest:
    """Select `spec` in the simulator box `key`; specs not offered (`fake`) are typed in the sidebar first."""
    if spec not in app.selectbox(key=key).options:
        app.text_input(key=ui.EXTRA_SPEC_STATE).input(spec).run()
    app.selectbox(key=key).select(spec).run()
    return app


def score_with(app: AppTest, simulator: str = "fake", explanations: str | None = None) -> AppTest:
    """Pick a simulator, optionally type explanations (form values travel with the submit), press Score."""
    choose_simulator(app, "score_simulator", simulator)
    if explanations is not None:
        app.text_area(key="explanations_text").input(explanations)
    app.button(key="FormSubmitter:score_form-Score").click().run()
    assert_clean(app)
    return app


def test_score_page_loads_with_the_bundled_example() -> None:
    app = run_page(APP)
    assert app.title[0].value == "Score explanations"
    assert not app.error
    assert any("fast_animals.json" in text and "10 sequences" in text for text in texts(app.success))
    assert "fast animals" in app.text_area(key="explanations_text").value
    options = app.selectbox(key="score_simulator").options
    assert options[0] == ui.simulator_label(default_simulator_spec()) and options[0].endswith("(default)")
    assert any(option.startswith("lexical") for option in options)
    assert not any(option.startswith("fake") for option in options)  # for tests, not offered


def test_the_default_says_why_and_other_local_specs_carry_the_caveat() -> None:
    from scoring.simulators import default_simulator

    reason = default_simulator()[1]
    app = run_page(APP)
    assert app.selectbox(key="score_simulator").value == default_simulator_spec()
    assert reason in texts(app.caption)
    choose_simulator(app, "score_simulator", "lexical")
    assert reason not in texts(app.caption) and ui.LOCAL_CAVEAT not in texts(app.caption)
    choose_simulator(app, "score_simulator", "local:model=gemma-3-270m&method=pointer")
    assert ui.LOCAL_CAVEAT in texts(app.caption)


@pytest.mark.model
def test_the_default_simulator_scores_the_bundled_example() -> None:
    """What a newcomer's first Score press runs: the default simulator, loaded from its package."""
    app = AppTest.from_file(APP, default_timeout=900)
    app.run()
    score_with(app, default_simulator_spec(), "fast animals\nkitchen furniture")
    assert not app.error, texts(app.error)
    ranking = table(app, "rank")
    assert list(ranking["explanation"]) == ["fast animals", "kitchen furniture"]
    assert app.session_state["score_results"][0].error is None


def test_scoring_with_fake_fills_ranking_heatmaps_and_charts() -> None:
    app = score_with(run_page(APP))
    assert not app.error, texts(app.error)
    ranking = table(app, "rank")
    assert list(ranking["rank"]) == [1, 2, 3, 4]
    assert ranking["explanation"].iloc[0] == "fox, leopard, cheetah, hare and other quick animals"
    assert ranking["score"].iloc[-1] == "n/a"  # 'animals' matches no token: undefined, never 0
    page_html = html_of(app)
    assert "cmpgrid" in page_html and "Real activations" in page_html
    assert "fox" in page_html and "title=" in page_html
    charts = {chart.key for chart in app.get("plotly_chart")}
    assert {"score_records_text_histogram", "score_ranking_chart", "score_per_sequence", "score_scatter"} == charts
    downloads = [button.key for button in app.get("download_button")]
    assert {"score_dl_csv", "score_dl_tokens", "score_dl_json", "score_records_text"} == set(downloads)
    assert app.session_state["score_results"][0].simulator == "fake:fake-match"


def test_second_score_comes_from_the_cache() -> None:
    app = score_with(run_page(APP))
    app.button(key="FormSubmitter:score_form-Score").click().run()
    assert_clean(app)
    hits = next(metric for metric in app.metric if metric.label == "Cache hits")
    assert hits.value == "40 / 40"
    assert set(table(app, "rank")["cached"]) == {"yes"}


def test_results_survive_a_rerun() -> None:
    app = score_with(run_page(APP))
    app.run()
    assert_clean(app)
    assert table(app, "rank").shape[0] == 4


def test_pasted_token_text_is_scored() -> None:
    app = run_page(APP)
    app.radio(key="source_kind").set_value("Paste").run()
    app.text_area(key="pasted_text").input("the\t0\n quick\t1\n fox\t8\n\n spotted\t0\n leopard\t9\n").run()
    assert_clean(app)
    assert any("2 sequences" in text for text in texts(app.success))
    score_with(app, explanations="fox leopard\nquick")
    ranking = table(app, "rank")
    assert list(ranking["explanation"]) == ["fox leopard", "quick"]


def test_records_handed_over_by_the_explore_page_are_loaded() -> None:
    app = AppTest.from_file(APP, default_timeout=TIMEOUT)
    feature = {
        "activations": [{"tokens": ["a", " fox"], "values": [0, 5]}, {"tokens": ["b", " cat"], "values": [2, 0]}]
    }
    app.session_state["records_json"] = json.dumps(feature)
    app.run()
    assert_clean(app)
    assert app.radio(key="source_kind").value == "Paste"
    assert json.loads(app.text_area(key="pasted_text").value) == feature
    assert any("2 sequences" in text for text in texts(app.success))


def test_explanations_stored_in_pasted_json_can_be_used() -> None:
    app = run_page(APP)
    app.radio(key="source_kind").set_value("Paste").run()
    feature = {
        "explanations": ["foxes", "dogs"],
        "activations": [{"tokens": ["a", " fox"], "values": [0, 3]}],
    }
    app.text_area(key="pasted_text").input(json.dumps(feature)).run()
    app.button(key="use_file_explanations").click().run()
    assert_clean(app)
    assert app.text_area(key="explanations_text").value == "foxes\ndogs"


def test_fewer_sequences_than_the_last_sample_size_is_no_error() -> None:
    app = run_page(APP)
    choose_simulator(app, "score_simulator", "fake")
    app.number_input(key="score_n_sequences").set_value(8)
    app.button(key="FormSubmitter:score_form-Score").click().run()
    app.radio(key="source_kind").set_value("Paste").run()
    app.text_area(key="pasted_text").input("a\t0\n fox\t3\n").run()
    assert_clean(app)
    assert app.number_input(key="score_n_sequences").value == 0


def test_api_simulator_appears_with_a_key_and_shows_an_estimate(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test-not-used")
    app = run_page(APP)
    assert "openai:gpt-4o-mini" in app.selectbox(key="score_simulator").options
    app.selectbox(key="score_simulator").select("openai:gpt-4o-mini").run()
    assert_clean(app)
    estimates = [text for text in texts(app.info) if text.startswith("Estimate before scoring")]
    assert estimates and "requests" in estimates[0] and "$" in estimates[0]


def test_api_simulator_is_hidden_without_a_key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    monkeypatch.delenv("OPENAI_BASE_URL", raising=False)
    app = run_page(APP)
    assert not any(option.startswith("openai") for option in app.selectbox(key="score_simulator").options)
    app.text_input(key=ui.BASE_URL_STATE).input("http://127.0.0.1:9/v1").run()
    options = app.selectbox(key="score_simulator").options
    assert "openai-compatible:gpt-4o-mini@http://127.0.0.1:9/v1" in options


def test_bad_paste_shows_what_to_fix() -> None:
    app = run_page(APP)
    app.radio(key="source_kind").set_value("Paste").run()
    app.text_area(key="pasted_text").input("the\tzero\n fox\t8\n").run()
    assert_clean(app)
    errors = texts(app.error)
    assert errors and "line 1" in errors[0] and "not a number" in errors[0]
    app.button(key="FormSubmitter:score_form-Score").click().run()
    assert_clean(app)
    assert any("Load activations first" in text for text in texts(app.error))


def test_bad_json_shows_an_error() -> None:
    app = run_page(APP)
    app.radio(key="source_kind").set_value("Paste").run()
    app.text_area(key="pasted_text").input('{"activations": [{"tokens": ["a", "b"], "values": [1]}]}').run()
    assert_clean(app)
    assert any("one value per token" in text for text in texts(app.error))


def test_no_explanations_shows_an_error() -> None:
    app = run_page(APP)
    score_with(app, explanations="  \n ")
    assert any("at least one explanation" in text for text in texts(app.error))
    assert not app.dataframe


def test_unknown_simulator_spec_shows_an_error() -> None:
    app = run_page(APP)
    app.text_input(key=ui.EXTRA_SPEC_STATE).input("no-such-simulator").run()
    score_with(app, "no-such-simulator")
    assert any("unknown simulator" in text for text in texts(app.error))


def test_failing_simulator_shows_errors_per_sequence() -> None:
    app = run_page(APP)
    app.text_input(key=ui.EXTRA_SPEC_STATE).input("fake:fail").run()
    score_with(app, "fake:fail")
    ranking = table(app, "rank")
    assert set(ranking["score"]) == {"n/a"}
    assert any("could not be simulated" in text for text in texts(app.warning))
    errors = table(app, "sequence")
    assert len(errors) == 40 and "fake:fail always fails" in errors["error"].iloc[0]
    assert "no simulation" in html_of(app)


def test_switching_example_loads_its_explanations() -> None:
    app = run_page(APP)
    app.selectbox(key="example_name").select("shelled_context_trap.json").run()
    assert_clean(app)
    assert "the pronoun she" in app.text_area(key="explanations_text").value


def test_spot_check_derives_every_claim_of_the_example_and_flags_the_planted_ones() -> None:
    app = run_page(SPOT_CHECK)
    claims = table(app, "derived")
    assert list(claims["type"])[:3] == ["recall_alt", "eleuther_fuzz", "eleuther_embedding"]
    assert list(claims["claimed"])[:3] == list(claims["derived"])[:3] == ["0.733", "0.794", "0.730"]
    verdicts = dict(zip(claims["explanation"] + " " + claims["type"], claims["verdict"], strict=True))
    assert verdicts["morning routines recall_alt"] == "contradicts its details"
    assert verdicts["brewing recall_alt"] == "contradicts its details"
    assert verdicts["coffee eleuther_fuzz"] == "follows from its details"
    assert any("gpt2-small · layer 6-res-jb · index 3310" in text for text in texts(app.markdown))
    assert any("2 of 7 claims are refuted" in text for text in texts(app.error))
    # the evidence: the stored judgments per example, the failed fuzz batch among them, drawn as tokens
    evidence = table(app, "outcome", index=1)
    assert (evidence["outcome"] == "dropped").sum() == 5 and "wrong" in set(evidence["outcome"])
    assert any("1 batch dropped" in text for text in texts(app.markdown))
    drawn = html_of(app)
    assert "data-outcome='dropped'" in drawn and "data-outcome='failed (counted as no)'" in drawn


def test_spot_check_rescore_with_another_judge_says_the_methods_differ() -> None:
    app = run_page(SPOT_CHECK)
    app.text_input(key=ui.EXTRA_SPEC_STATE).input("fake").run()
    app.selectbox(key="spot_judge").select("fake")  # inside the form: the choice travels with the submit
    app.number_input(key="spot_runs").set_value(2)
    app.text_area(key="spot_new_explanations").input("espresso drinks")
    app.button(key="FormSubmitter:spot_form-Re-score").click().run()
    assert_clean(app)
    claims = table(app, "rescored")
    rows = dict(zip(claims["explanation"] + " " + claims["type"], claims.to_dict("records"), strict=True))
    assert rows["coffee recall_alt"]["verdict"] == "agrees (methods differ: model)"
    assert rows["coffee eleuther_fuzz"]["verdict"] == "agrees (methods differ: model, prompt)"
    assert rows["coffee eleuther_fuzz"]["sd"] == "0.000" and "over 2 runs" in rows["coffee eleuther_fuzz"]["reason"]
    assert rows["morning routines recall_alt"]["verdict"] == "contradicts its details"
    assert rows["espresso drinks recall_alt"]["verdict"] == "no claim"
    assert rows["espresso drinks recall_alt"]["rescored"] != "n/a"
    assert any("another judge model or prompt" in text for text in texts(app.warning))
    assert any("Re-scored with `fake`" in text for text in texts(app.caption))
    assert any(tab.label == "Re-score" for tab in app.tabs)


def test_spot_check_says_when_a_type_is_an_explainer_or_details_are_bad() -> None:
    feature = {
        "modelId": "toy",
        "layer": "0",
        "index": "7",
        "explanations": [
            {"description": "fox", "scores": [{"value": 0.7, "explanationScoreTypeName": "oai_token-act-pair"}]},
            {"description": "leopard", "scores": [{"value": 0.5, "explanationScoreTypeName": "recall_alt",
                                                   "explanationScoreModelName": "gpt-4o-mini",
                                                   "jsonDetails": "{\"top\": ["}]},
        ],
        "activations": [{"tokens": ["a", " fox"], "values": [0, 9]}, {"tokens": ["c", " leopard"], "values": [0, 1]}],
    }
    app = run_page(SPOT_CHECK)
    app.radio(key="spot_source").set_value("Paste JSON").run()
    app.text_area(key="spot_pasted").input(json.dumps(feature)).run()
    assert_clean(app)
    claims = table(app, "verdict")
    assert list(claims["verdict"]) == ["not a score type", "details unreadable"]
    assert "explainer method" in claims["reason"].iloc[0] and "not valid JSON" in claims["reason"].iloc[1]
    assert any("toy · layer 0 · index 7" in text for text in texts(app.markdown))


def test_spot_check_without_explanations_says_what_to_add() -> None:
    app = run_page(SPOT_CHECK)
    app.radio(key="spot_source").set_value("Paste JSON").run()
    app.text_area(key="spot_pasted").input('{"activations": [{"tokens": ["a", " fox"], "values": [0, 3]}]}').run()
    assert_clean(app)
    assert any('"explanations" list' in text for text in texts(app.error))
    app.text_area(key="spot_pasted").input('[{"tokens": ["a", " fox"], "values": [0, 3]}]').run()
    assert any("must be a JSON object" in text for text in texts(app.error))


def test_spot_check_bad_json_shows_an_error() -> None:
    app = run_page(SPOT_CHECK)
    app.radio(key="spot_source").set_value("Paste JSON").run()
    app.text_area(key="spot_pasted").input('{"explanations": ["x"], "activations": [').run()
    assert_clean(app)
    assert any("not valid JSON" in text for text in texts(app.error))


def test_benchmark_runs_and_shows_wrong_puzzles() -> None:
    app = run_page(BENCHMARK)
    assert any("puzzles" in text for text in texts(app.success))
    choose_simulator(app, "bench_simulator", "fake")
    app.number_input(key="bench_limit").set_value(4)
    app.button(key="FormSubmitter:bench_form-Run benchmark").click().run()
    assert_clean(app)
    assert not app.error, texts(app.error)
    accuracy = next(metric for metric in app.metric if metric.label == "Accuracy")
    assert accuracy.value != "n/a"
    puzzles = table(app, "won")
    assert len(puzzles) == 4
    if not puzzles["won"].all():
        assert "cmpgrid" in html_of(app)
        assert table(app, "rank").shape[0] >= 2


def test_benchmark_with_a_broken_puzzle_file_shows_an_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    broken = tmp_path / "puzzles.json"
    broken.write_text('{"p": {"explanation": "x", "sentences": []}}', encoding="utf-8")
    monkeypatch.setattr(ui, "BUNDLED_PUZZLES", broken)
    app = run_page(BENCHMARK)
    assert any("false_explanations" in text for text in texts(app.error))


def test_several_scorers_rank_side_by_side_and_show_how_they_judged() -> None:
    app = run_page(APP)
    assert app.multiselect(key="score_scorers").value == ["simulation"]
    choose_simulator(app, "score_simulator", "fake")
    app.multiselect(key="score_scorers").select("detection").select("fuzzing")
    app.button(key="FormSubmitter:score_form-Score").click().run()
    assert_clean(app)
    assert not app.error, texts(app.error)
    by_scorer = table(app, "disagreement")
    assert list(by_scorer["explanation"][:2]) == ["fox, leopard, cheetah, hare and other quick animals", "fast animals"]
    assert {"simulation", "simulation rank", "detection rank", "fuzzing rank"} <= set(by_scorer.columns)
    assert list(by_scorer["simulation rank"][:2]) == ["#1", "#2"]
    # 'animals' matches no token: a flat simulation, no evidence (NaN) for every scorer, so they do not disagree
    assert by_scorer["explanation"].iloc[-1] == "animals" and by_scorer["disagreement"].iloc[-1] == ""
    assert list(by_scorer.iloc[-1][["simulation", "detection", "fuzzing"]]) == ["n/a"] * 3
    assert app.session_state["score_results"][0].scorer == "simulation"
    assert set(app.session_state["score_results_by_scorer"]) == {"simulation", "detection", "fuzzing"}
    assert [tab.label for tab in app.tabs] == ["detection", "fuzzing"]
    outcomes = table(app, "outcome")
    assert len(outcomes) == 10 and "hit" in set(outcomes["outcome"])
    assert list(table(app, "right_higher")["right_higher"][:4]) == ["yes"] * 4
    assert 'class="tok active"' in html_of(app)
    # one simulation pass served all three scorers
    later = app.session_state["score_results_by_scorer"]
    assert all(result.cached for name in ("detection", "fuzzing") for result in later[name])


def test_judge_scorers_rank_beside_simulation_and_show_their_questions() -> None:
    app = run_page(APP)
    offered = app.multiselect(key="score_scorers").options
    assert {"detection-judge", "fuzzing-judge", "binary-condition"} <= set(offered)
    assert "attention-head" not in offered  # it reads attention records, not these
    choose_simulator(app, "score_simulator", "fake")
    app.multiselect(key="score_scorers").select("detection-judge").select("fuzzing-judge")
    app.button(key="FormSubmitter:score_form-Score").click().run()
    assert_clean(app)
    assert not app.error, texts(app.error)
    by_scorer = table(app, "disagreement")
    assert {"detection-judge rank", "fuzzing-judge rank"} <= set(by_scorer.columns)
    assert [tab.label for tab in app.tabs] == ["detection-judge", "fuzzing-judge"]
    # detection-judge: one row per sequence asked about, the judge's P(yes) as the prediction, fires at 0.5
    detection = table(app, "judged")
    assert len(detection) == 8 and set(detection["outcome"]) <= {"hit", "miss", "false alarm", "correct rejection"}
    assert set(detection["prediction"]) <= {"0.00", "0.50", "0.75", "0.88"}
    # every question of each judge scorer, with the text it was shown
    detection_questions = table(app, "p_yes")
    assert len(detection_questions) == 8
    fuzzing_questions = table(app, "p_yes", index=1)
    assert any("<<" in text for text in fuzzing_questions["text"])
    assert set(fuzzing_questions["outcome"]) <= {"right", "wrong"}
    results = app.session_state["score_results_by_scorer"]
    assert all(result.judgments for name in ("detection-judge", "fuzzing-judge") for result in results[name])


def test_a_judge_scorer_alone_draws_no_simulations_and_points_to_its_questions() -> None:
    app = run_page(APP)
    choose_simulator(app, "score_simulator", "fake")
    app.multiselect(key="score_scorers").unselect("simulation").select("binary-condition")
    app.button(key="FormSubmitter:score_form-Score").click().run()
    assert_clean(app)
    assert not app.error, texts(app.error)
    assert app.session_state["score_results"][0].scorer == "binary-condition"
    assert any("asks a judge yes/no questions" in text for text in texts(app.info))
    charts = {chart.key for chart in app.get("plotly_chart")}
    # The ranking, but no per-sequence correlation or scatter.
    assert charts == {"score_records_text_histogram", "score_ranking_chart"}
    assert [tab.label for tab in app.tabs] == ["binary-condition"]
    assert len(table(app, "p_yes")) == 10  # one question per sequence (no window)


def test_a_simulator_that_cannot_judge_says_so_per_explanation() -> None:
    app = run_page(APP)
    app.selectbox(key="score_simulator").select("lexical").run()
    app.multiselect(key="score_scorers").select("detection-judge")
    app.button(key="FormSubmitter:score_form-Score").click().run()
    assert_clean(app)
    assert any("cannot answer them" in text for text in texts(app.warning))


def test_one_scorer_has_no_comparison_table() -> None:
    app = score_with(run_page(APP))
    assert not [frame for frame in app.dataframe if "disagreement" in frame.value.columns]
    assert not app.tabs


def test_generate_adds_labelled_candidates_to_the_list() -> None:
    app = run_page(APP)
    choose_simulator(app, "score_simulator", "fake")
    app.number_input(key="generate_n").set_value(2)
    app.button(key="generate_button").click().run()
    assert_clean(app)
    lines = app.text_area(key="explanations_text").value.splitlines()
    assert lines[-2:] == ["the token cheetah", "the token leopard"] and len(lines) == 6
    assert any("Added 2 generated explanation(s)" in text for text in texts(app.success))
    assert list(table(app, "attempt")["explanation"]) == ["the token cheetah", "the token leopard"]
    app.button(key="FormSubmitter:score_form-Score").click().run()
    assert_clean(app)
    ranking = table(app, "rank")
    sources = dict(zip(ranking["explanation"], ranking["source"], strict=True))
    assert sources["the token cheetah"] == sources["the token leopard"] == "generated"
    assert sources["fast animals"] == "given"
    # generating again adds nothing twice
    app.button(key="generate_button").click().run()
    assert len(app.text_area(key="explanations_text").value.splitlines()) == 6
    assert any("already in the list" in text for text in texts(app.info))


def test_generation_failures_and_unable_simulators_say_why() -> None:
    app = run_page(APP)
    before = app.text_area(key="explanations_text").value
    app.text_input(key=ui.EXTRA_SPEC_STATE).input("fake:fail").run()
    choose_simulator(app, "score_simulator", "fake:fail")
    app.button(key="generate_button").click().run()
    assert_clean(app)
    assert sum("fake:fail always fails" in text for text in texts(app.warning)) == 3
    assert app.text_area(key="explanations_text").value == before
    app.selectbox(key="score_simulator").select("lexical").run()
    assert_clean(app)
    assert not [button for button in app.button if button.key == "generate_button"]
    assert any("`lexical` scores explanations but does not write them" in text for text in texts(app.caption))


TINY_PUZZLES = {
    "pets": {"name": "pets", "explanation": "cat", "false_explanations": ["dog", "sat"],
             "sentences": [[[" cat", 10], " sat"], ["the", " dog"]]},
    "colors": {"name": "colors", "explanation": "red", "false_explanations": ["blue"],
               "sentences": [[[" red", 10], " hat"], ["a", " blue"]]},
}


def tiny_benchmark_page(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> AppTest:
    """The benchmark page with TINY_PUZZLES as its bundled puzzle file."""
    puzzles = tmp_path / "puzzles.json"
    puzzles.write_text(json.dumps(TINY_PUZZLES), encoding="utf-8")
    monkeypatch.setattr(ui, "BUNDLED_PUZZLES", puzzles)
    return run_page(BENCHMARK)


def test_benchmark_compares_several_scorers(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    app = tiny_benchmark_page(tmp_path, monkeypatch)
    choose_simulator(app, "bench_simulator", "fake")
    app.multiselect(key="bench_scorers").select("detection")
    app.button(key="FormSubmitter:bench_form-Run benchmark").click().run()
    assert_clean(app)
    assert not app.error, texts(app.error)
    scorers = table(app, "pairwise_accuracy")
    assert list(scorers["scorer"]) == ["simulation", "detection"]
    assert list(scorers["accuracy"]) == ["1.000", "0.500"]  # detection ties cat with sat (tests/test_bench.py)
    agreement = table(app, "kendall_tau")
    assert list(agreement["scorers"]) == ["simulation ~ detection"]
    assert list(agreement["kendall_tau"]) == ["0.750"] and list(agreement["top_agreement"]) == ["0.500"]
    assert list(table(app, "won")["won"]) == [True, True]  # the first scorer's puzzles
    app.selectbox(key="bench_view_scorer").select("detection").run()
    assert_clean(app)
    assert list(table(app, "won")["won"]) == [False, True]
    assert any("detection gets wrong (1)" in header.value for header in app.header)
    assert table(app, "rank").shape[0] == 3  # the wrong puzzle re-scored with detection


def test_benchmark_with_a_judge_scorer(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    app = tiny_benchmark_page(tmp_path, monkeypatch)
    assert "attention-head" not in app.multiselect(key="bench_scorers").options
    choose_simulator(app, "bench_simulator", "fake")
    app.multiselect(key="bench_scorers").select("detection-judge")
    app.button(key="FormSubmitter:bench_form-Run benchmark").click().run()
    assert_clean(app)
    assert not app.error, texts(app.error)
    scorers = table(app, "pairwise_accuracy")
    assert list(scorers["scorer"]) == ["simulation", "detection-judge"]
    assert list(scorers["accuracy"]) == ["1.000", "0.500"]  # the fake judge ties cat with sat (test_bench.py)
    app.selectbox(key="bench_view_scorer").select("detection-judge").run()
    assert_clean(app)
    assert any("detection-judge gets wrong (1)" in header.value for header in app.header)
    assert table(app, "rank").shape[0] == 3  # the wrong puzzle re-scored with the judge
    assert len(table(app, "p_yes")) == 2  # and the judge's two questions about it


def test_benchmark_without_a_scorer_says_so(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    app = tiny_benchmark_page(tmp_path, monkeypatch)
    app.multiselect(key="bench_scorers").unselect("simulation")
    app.button(key="FormSubmitter:bench_form-Run benchmark").click().run()
    assert_clean(app)
    assert any("at least one scorer" in text for text in texts(app.error))


# --- Issue 17: results tied to their input, missed firings, failing simulators, honest numbers, large inputs ---


def paste(app: AppTest, text: str) -> AppTest:
    app.radio(key="source_kind").set_value("Paste").run()
    app.text_area(key="pasted_text").input(text).run()
    assert_clean(app)
    return app


def press_score(app: AppTest) -> AppTest:
    app.button(key="FormSubmitter:score_form-Score").click().run()
    assert_clean(app)
    return app


def stale_warnings(app: AppTest) -> list[str]:
    return [text for text in texts(app.warning) if text.startswith("Stale results")]


def test_results_are_marked_stale_when_the_input_or_settings_change() -> None:
    app = paste(run_page(APP), "the\t0\n fox\t8\n")
    score_with(app, explanations="fox")
    assert [header.value for header in app.header][-1] == "3 · Results" and not stale_warnings(app)
    # every paste is "pasted text": only the content tells the two apart
    app.text_area(key="pasted_text").input("the\t0\n cat\t8\n").run()
    assert_clean(app)
    assert [header.value for header in app.header][-1] == "3 · Results (stale)"
    warning = stale_warnings(app)
    assert warning and "the activations changed" in warning[0] and "press Score" in warning[0]
    press_score(app)
    assert not stale_warnings(app)
    app.selectbox(key="score_simulator").select("lexical").run()
    assert "the simulator or settings changed" in stale_warnings(app)[0]
    choose_simulator(app, "score_simulator", "fake")
    assert not stale_warnings(app)
    app.text_area(key="explanations_text").input("cat")
    press_score(app)
    assert not stale_warnings(app)
    assert app.session_state["score_settings"]["records_sha256"] == ui.LoadedInput(
        [ActivationRecord(["the", " cat"], [0.0, 8.0])]
    ).fingerprint


MISSED = "the\t0\n fox\t8\n\n spotted\t0\n leopard\t9\n\n a\t0\n b\t0\n"


def test_a_missed_firing_is_marked_and_not_shown_like_a_silent_neuron() -> None:
    app = paste(run_page(APP), MISSED)
    score_with(app, explanations="leopard")
    per_sequence = table(app, "leopard")
    cells = dict(zip(per_sequence.index, per_sequence["leopard"], strict=True))
    assert cells["#0 the fox"] == "✗ missed"  # fires, the simulation predicted nothing
    assert cells["#1 spotted leopard"] == "1.000"
    assert cells["#2 a b"] == "–"  # silent neuron: nothing to correlate
    page_html = html_of(app)
    assert "✗ missed" in page_html and "a missed firing" in page_html
    assert "recall of active tokens 0/1" in page_html


def register(monkeypatch: pytest.MonkeyPatch, name: str, factory: object) -> None:
    monkeypatch.setitem(SIMULATORS, name, factory)


class RaisingSimulator(FakeSimulator):
    """Raises inside simulate, as a broken backend would."""

    def __init__(self) -> None:
        super().__init__()
        self.model = "raising"  # its own cache entries: never served the fake simulator's cached answers

    async def simulate(self, explanation: str, sequences: object) -> object:
        raise RuntimeError("backend exploded")


class StallingSimulator(FakeSimulator):
    """Never answers until the test releases it (blocks its thread like a hung network call)."""

    release = threading.Event()

    def __init__(self) -> None:
        super().__init__()
        self.model = "stalling"  # its own cache entries: never served the fake simulator's cached answers

    async def simulate(self, explanation: str, sequences: object) -> object:
        self.release.wait(60)
        raise RuntimeError("released by the test")


def test_a_simulator_that_raises_is_an_error_in_the_page(monkeypatch: pytest.MonkeyPatch) -> None:
    register(monkeypatch, "raising", lambda argument: RaisingSimulator())
    app = score_with(run_page(APP), "raising")
    assert set(table(app, "rank")["score"]) == {"n/a"}
    assert any("backend exploded" in text for text in texts(app.warning))

    def cannot_build(argument: str | None) -> Simulator:
        raise RuntimeError("no such device")

    register(monkeypatch, "unbuildable", cannot_build)
    score_with(app, "unbuildable")
    assert any("could not be loaded" in text and "no such device" in text for text in texts(app.error))
    score_with(app, "fake")  # the page still works
    assert not app.error and table(app, "rank").shape[0] == 4


def test_a_stalled_simulator_is_given_up_on_after_the_time_limit(monkeypatch: pytest.MonkeyPatch) -> None:
    register(monkeypatch, "stalling", lambda argument: StallingSimulator())
    StallingSimulator.release.clear()
    try:
        app = choose_simulator(run_page(APP), "score_simulator", "stalling")
        app.number_input(key="score_time_limit").set_value(1)  # form values travel with the submit
        press_score(app)
        assert any("Scoring stopped: no result within 1 s" in text for text in texts(app.error))
        assert not app.session_state["score_results"]
        score_with(app, "fake")
        assert not app.error and table(app, "rank").shape[0] == 4
    finally:
        StallingSimulator.release.set()


def test_r_squared_is_labelled_as_computed_and_the_time_is_wall_time() -> None:
    app = score_with(run_page(APP))
    assert any("r² (no fit)" in text and "negative" in text for text in texts(app.markdown))
    wall = next(metric for metric in app.metric if metric.label == "Wall time")
    assert wall.value.endswith(" s") and wall.value != "n/a"
    assert any("wall time" in text for text in texts(app.caption))
    assert "summed" not in " ".join(texts(app.caption))
    best = [text for text in texts(app.markdown) if text.startswith("**Best explanation**")]
    assert best and "other quick animals" in best[0]  # the whole text, not cut at 40 characters


def test_a_hand_off_from_explore_starts_clean_with_the_default_simulator() -> None:
    app = run_page(APP)
    app.text_input(key=ui.EXTRA_SPEC_STATE).input("fake:fail").run()
    score_with(app, "fake:fail")
    assert app.session_state["score_results"]
    feature = {"activations": [{"tokens": ["a", " fox"], "values": [0, 5]}], "model": "gpt2", "layer": 3, "index": 9}
    app.session_state["records_json"] = json.dumps(feature)
    app.run()
    assert_clean(app)
    assert app.text_area(key="explanations_text").value == ""  # nothing left from the bundled example
    assert app.selectbox(key="score_simulator").value == default_simulator_spec()
    assert not app.session_state["score_results"] and not [h for h in app.header if "Results" in h.value]
    assert any("gpt2 · layer 3 · index 9" in text for text in texts(app.success))


def test_over_limit_input_names_the_setting_and_raising_it_works() -> None:
    long_text = "".join(f" w{position}\t{position % 7}\n" for position in range(5000))
    app = paste(run_page(APP), long_text)
    error = texts(app.error)[0]
    assert "5,000 tokens" in error and "“Max tokens per sequence” under “Input limits”" in error
    assert "Limits." not in error
    app.number_input(key=ui.LIMIT_MAX_TOKENS_STATE).set_value(6000).run()
    assert_clean(app)
    assert any("5,000 tokens" in text for text in texts(app.success))
    score_with(app, explanations="w6")
    assert not app.error, texts(app.error)
    assert 'class="tokviz scroll"' in html_of(app)  # the long sequence scrolls in its box


def test_a_tab_line_without_its_tab_is_named() -> None:
    app = paste(run_page(APP), "the\t0\n fox\t8\n quick 3\n")
    assert any("line 3" in text and "has no tab" in text for text in texts(app.error))


def test_many_sequences_show_the_strongest_first_with_show_more() -> None:
    text = "\n".join(f"s{index}\t0\n t{index}\t{index}\n" for index in range(25))
    app = paste(run_page(APP), text)
    score_with(app, explanations="t24\nt3")
    page_html = html_of(app)
    assert page_html.index("#24 s24 t24") < page_html.index("#23 s23 t23")  # highest activation first
    grid = page_html[page_html.index("cmpgrid") :]
    assert grid.count('class="cmpseq"') == 10
    app.button(key="score_show_more").click().run()
    assert_clean(app)
    grid = html_of(app)[html_of(app).index("cmpgrid") :]
    assert grid.count('class="cmpseq"') == 20


OPENAI_RECORDS = {
    "most_positive_activation_records": [
        {"tokens": ["a", " fox"], "activations": [0, 4]},
        {"tokens": ["b", " fox"], "activations": [0, 9]},
    ],
    "random_sample": [{"tokens": ["c", " dog"], "activations": [-2, 1]}],
}


def test_excerpts_are_sorted_and_labelled_with_histogram_density_and_negatives() -> None:
    app = paste(run_page(APP), json.dumps(OPENAI_RECORDS))
    assert any("3 active tokens (density 50.0%)" in text for text in texts(app.success))
    page_html = html_of(app)
    assert page_html.index("#1 b fox · top · max 9") < page_html.index("#0 a fox · top · max 4")
    assert "#2 c dog · random · max 1" in page_html
    notes = [text for text in texts(app.info) if "negative activations" in text]
    assert notes and "1 of 6 tokens" in notes[0] and "sets them to 0" in notes[0]
    assert "score_records_text_histogram" in {chart.key for chart in app.get("plotly_chart")}
    choose_simulator(app, "score_simulator", "fake")
    app.selectbox(key="score_normalization").select("none")  # in the form: applies with the submit
    press_score(app)
    assert any("keeps them" in text for text in texts(app.info))


def test_judge_counts_print_as_whole_numbers() -> None:
    app = run_page(APP)
    choose_simulator(app, "score_simulator", "fake")
    app.multiselect(key="score_scorers").select("detection")
    press_score(app)
    metrics = table(app, "positives")
    assert all("." not in value for value in metrics["positives"])


def chart_spec(app: AppTest, key: str) -> dict[str, object]:
    chart = next(chart for chart in app.get("plotly_chart") if chart.key == key)
    return json.loads(chart.proto.spec)  # type: ignore[attr-defined, no-any-return]


def test_the_charts_show_misses_ties_and_zero_predictions() -> None:
    app = paste(run_page(APP), MISSED + "\n the\t0\n leopard\t9\n")
    choose_simulator(app, "score_simulator", "fake")
    app.text_area(key="explanations_text").input("leopard")
    app.multiselect(key="score_scorers").select("detection")
    press_score(app)
    per_sequence = chart_spec(app, "score_per_sequence")["data"]
    assert [trace.get("name") for trace in per_sequence][1] == "missed firing"  # the amber overlay
    assert any("✗ missed" in row for row in per_sequence[0]["text"])
    scatter = chart_spec(app, "score_scatter")["data"][0]
    sizes = scatter["marker"]["size"]
    assert max(sizes) > min(sizes)  # tied tokens drawn as one larger marker
    assert any(text.startswith("5 tokens") for text in scatter["text"])
    detection = chart_spec(app, "score_detection_fig")["data"]
    assert all(trace["mode"] == "markers" for trace in detection)
    assert 0.0 in [value for trace in detection for value in trace["y"]]  # a zero prediction is drawn
    assert "· max 9" in html_of(app)


def test_the_sidebar_lists_the_score_page_by_name() -> None:
    app = run_page(APP)
    labels = [link.proto.label for link in app.get("page_link")]  # type: ignore[attr-defined]
    assert labels == ["Score", "Spot-check", "Benchmark", "Explore"]


def test_benchmark_results_go_stale_and_a_stalled_simulator_is_given_up_on(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    app = tiny_benchmark_page(tmp_path, monkeypatch)
    choose_simulator(app, "bench_simulator", "fake")
    app.button(key="FormSubmitter:bench_form-Run benchmark").click().run()
    assert_clean(app)
    assert [header.value for header in app.header][0] == "Results"
    app.selectbox(key="bench_simulator").select("lexical").run()
    assert [header.value for header in app.header][0] == "Results (stale)"
    assert any("the simulator changed" in text for text in stale_warnings(app))
    register(monkeypatch, "stalling", lambda argument: StallingSimulator())
    StallingSimulator.release.clear()
    try:
        choose_simulator(app, "bench_simulator", "stalling")
        app.number_input(key="bench_time_limit").set_value(1)
        app.button(key="FormSubmitter:bench_form-Run benchmark").click().run()
        assert_clean(app)
        assert any("The benchmark stopped: no result within 1 s" in text for text in texts(app.error))
    finally:
        StallingSimulator.release.set()
