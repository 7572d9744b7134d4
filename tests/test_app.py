"""The dashboard pages under `streamlit.testing.v1.AppTest` (no browser, no model: the `fake` simulator)."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest
from streamlit.testing.v1 import AppTest

import pages as ui
from scoring import SIMULATORS, Simulator

REPO = Path(__file__).resolve().parent.parent
APP = str(REPO / "app.py")
SPOT_CHECK = str(REPO / "pages" / "2_Spot_check.py")
BENCHMARK = str(REPO / "pages" / "3_Benchmark.py")
TIMEOUT = 60


@pytest.fixture(autouse=True)
def no_model_loading(monkeypatch: pytest.MonkeyPatch) -> None:
    """The pages may offer `local` (and default to it), but no test here may build it."""
    if "local" in SIMULATORS:

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


def score_with(app: AppTest, simulator: str = "fake", explanations: str | None = None) -> AppTest:
    """Pick a simulator, optionally type explanations (form values travel with the submit), press Score."""
    app.selectbox(key="score_simulator").select(simulator).run()
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
    assert "fake" in app.selectbox(key="score_simulator").options[-1] or "fake" in str(
        app.selectbox(key="score_simulator").options
    )


def test_the_local_simulator_carries_its_caveat_and_others_do_not() -> None:
    app = run_page(APP)
    assert app.selectbox(key="score_simulator").value == "local"
    assert ui.LOCAL_CAVEAT in texts(app.caption)
    app.selectbox(key="score_simulator").select("fake").run()
    assert ui.LOCAL_CAVEAT not in texts(app.caption)


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
    assert len(app.get("plotly_chart")) == 2
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
    app.selectbox(key="score_simulator").select("fake").run()
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


def test_spot_check_flags_disagreements() -> None:
    app = run_page(SPOT_CHECK)
    claims = table(app, "claimed score")
    assert list(claims["claimed score"])[:3] == ["0.710", "0.550", "0.830"]
    app.selectbox(key="spot_simulator").select("fake").run()
    app.button(key="FormSubmitter:spot_form-Re-score").click().run()
    assert_clean(app)
    verdicts = table(app, "verdict")
    assert list(verdicts["explanation"]) == list(claims["explanation"])
    assert "disagrees" in set(verdicts["verdict"])
    assert verdicts["verdict"].iloc[-1] == "no claim"
    assert any("claimed scores disagree" in text for text in texts(app.error))
    assert "cmpgrid" in html_of(app)


def test_spot_check_without_explanations_says_what_to_add() -> None:
    app = run_page(SPOT_CHECK)
    app.radio(key="spot_source").set_value("Paste JSON").run()
    app.text_area(key="spot_pasted").input('[{"tokens": ["a", " fox"], "values": [0, 3]}]').run()
    assert_clean(app)
    assert any('"explanations" list' in text for text in texts(app.error))


def test_spot_check_bad_json_shows_an_error() -> None:
    app = run_page(SPOT_CHECK)
    app.radio(key="spot_source").set_value("Paste JSON").run()
    app.text_area(key="spot_pasted").input('{"explanations": ["x"], "activations": [').run()
    assert_clean(app)
    assert any("not valid JSON" in text for text in texts(app.error))


def test_benchmark_runs_and_shows_wrong_puzzles() -> None:
    app = run_page(BENCHMARK)
    assert any("puzzles" in text for text in texts(app.success))
    app.selectbox(key="bench_simulator").select("fake").run()
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
    app.selectbox(key="score_simulator").select("fake").run()
    app.multiselect(key="score_scorers").select("detection").select("fuzzing")
    app.button(key="FormSubmitter:score_form-Score").click().run()
    assert_clean(app)
    assert not app.error, texts(app.error)
    by_scorer = table(app, "disagreement")
    assert list(by_scorer["explanation"][:2]) == ["fox, leopard, cheetah, hare and other quick animals", "fast animals"]
    assert {"simulation", "simulation rank", "detection rank", "fuzzing rank"} <= set(by_scorer.columns)
    assert list(by_scorer["simulation rank"][:2]) == ["#1", "#2"]
    # 'animals' matches no token: undefined under simulation, scored by detection and fuzzing
    assert by_scorer["disagreement"].iloc[-1] == "⚠ n/a"
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
    app.selectbox(key="score_simulator").select("fake").run()
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
    app.selectbox(key="score_simulator").select("fake").run()
    app.multiselect(key="score_scorers").unselect("simulation").select("binary-condition")
    app.button(key="FormSubmitter:score_form-Score").click().run()
    assert_clean(app)
    assert not app.error, texts(app.error)
    assert app.session_state["score_results"][0].scorer == "binary-condition"
    assert any("asks a judge yes/no questions" in text for text in texts(app.info))
    assert not [chart for chart in app.get("plotly_chart")]  # no per-sequence correlation or scatter
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
    app.selectbox(key="score_simulator").select("fake").run()
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
    app.selectbox(key="score_simulator").select("fake:fail").run()
    app.button(key="generate_button").click().run()
    assert_clean(app)
    assert sum("fake:fail always fails" in text for text in texts(app.warning)) == 3
    assert app.text_area(key="explanations_text").value == before
    app.selectbox(key="score_simulator").select("lexical").run()
    app.button(key="generate_button").click().run()
    assert_clean(app)
    assert any("cannot write explanations" in text for text in texts(app.error))


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
    app.selectbox(key="bench_simulator").select("fake").run()
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
    app.selectbox(key="bench_simulator").select("fake").run()
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
