"""AppTests for the dashboard's second round (issue 25): first-use preparation, the chance level, compare
chips, source switching, the failure chart, the negative-activation note and wording."""

from __future__ import annotations

import json
from dataclasses import replace

import pytest
from test_app import (  # noqa: F401 - no_model_loading is an autouse fixture
    APP,
    FakeSimulator,
    assert_clean,
    choose_simulator,
    no_model_loading,
    paste,
    press_score,
    register,
    run_page,
    score_with,
    table,
    texts,
)


class PreparingSimulator(FakeSimulator):
    """A fake whose first use converts a model, as `local` does on a fresh machine."""

    events: list[str] = []

    def __init__(self) -> None:
        super().__init__()
        self.model = "preparing"
        self.ready = False

    def preparation_needed(self) -> str | None:
        return None if self.ready else "converts the model, about 2 min, 1.9 GB"

    def prepare(self, progress=None) -> None:
        for done in range(1, 4):
            self.events.append(f"converting {done}/3")
            if progress is not None:
                progress("converting the model", done, 3)
        self.ready = True

    async def simulate(self, explanation, sequences):
        self.events.append("simulate")
        return await super().simulate(explanation, sequences)


def test_first_use_preparation_is_announced_then_run_as_its_own_step(monkeypatch: pytest.MonkeyPatch) -> None:
    PreparingSimulator.events = []
    register(monkeypatch, "preparing-first-use", lambda argument: PreparingSimulator())
    app = choose_simulator(run_page(APP), "score_simulator", "preparing-first-use")
    # Said before the user commits to it, with the simulator's own estimate.
    notes = [text for text in texts(app.warning) if "Before its first score" in text]
    assert notes and "converts the model, about 2 min, 1.9 GB" in notes[0]
    assert PreparingSimulator.events == []
    press_score(app)
    assert PreparingSimulator.events[:3] == ["converting 1/3", "converting 2/3", "converting 3/3"]
    assert "simulate" in PreparingSimulator.events[3:]
    assert table(app, "rank").shape[0] == 4
    # Ready now: no note, and a second score prepares nothing.
    assert not [text for text in texts(app.warning) if "Before its first score" in text]
    press_score(app)
    assert PreparingSimulator.events.count("converting 1/3") == 1


def test_a_failed_preparation_is_an_error_and_the_page_still_scores(monkeypatch: pytest.MonkeyPatch) -> None:
    class BrokenPreparation(PreparingSimulator):
        def prepare(self, progress=None) -> None:
            raise OSError("no space left on device")

    register(monkeypatch, "preparing-broken", lambda argument: BrokenPreparation())
    app = choose_simulator(run_page(APP), "score_simulator", "preparing-broken")
    press_score(app)
    assert any("Preparing preparing-broken failed" in text and "no space left" in text for text in texts(app.error))
    assert not app.session_state["score_results"]
    score_with(app, "fake")
    assert not app.error and table(app, "rank").shape[0] == 4


class SlowSimulator(FakeSimulator):
    """A fake that says it is not cheap, as API and in-process models do."""

    capabilities = replace(FakeSimulator.capabilities, cheap=False)

    def __init__(self) -> None:
        super().__init__()
        self.model = "slow"


def test_a_cheap_simulator_shows_the_chance_level_by_default() -> None:
    app = score_with(run_page(APP), "fake")
    ranking = table(app, "rank")
    assert {"chance_percentile", "over_chance_p95"} <= set(ranking.columns)
    assert all(value.endswith("%") or value == "n/a" for value in ranking["chance_percentile"])
    assert any(value != "n/a" for value in ranking["chance_percentile"])
    assert any("Chance level" in text and "95th percentile" in text for text in texts(app.caption))
    results = app.session_state["score_results"]
    assert all("null_percentile" in result.metrics for result in results)
    # The chart draws the unrelated explanations and their 95th percentile.
    charts = [json.loads(chart.proto.spec) for chart in app.get("plotly_chart")]
    ranking_chart = next(chart for chart in charts if "intervals" in chart["layout"]["title"]["text"])
    assert any(trace.get("name") == "unrelated explanations" for trace in ranking_chart["data"])
    assert any("chance, 95th percentile" in shape.get("text", "") for shape in ranking_chart["layout"]["annotations"])
    assert not [button for button in app.button if button.key == "score_chance_button"]


def test_a_slow_simulator_offers_the_chance_level_on_demand(monkeypatch: pytest.MonkeyPatch) -> None:
    register(monkeypatch, "slow-for-chance", lambda argument: SlowSimulator())
    app = score_with(run_page(APP), "slow-for-chance")
    assert "chance_percentile" not in table(app, "rank").columns
    assert all("null" not in result.metrics for result in app.session_state["score_results"])
    app.button(key="score_chance_button").click().run()
    assert_clean(app)
    assert "chance_percentile" in table(app, "rank").columns
    results = app.session_state["score_results"]
    assert all(result.metrics["null_n"] >= 2 for result in results)
    assert not [button for button in app.button if button.key == "score_chance_button"]


def failure_chart(app) -> dict:
    charts = [json.loads(chart.proto.spec) for chart in app.get("plotly_chart")]
    return next(chart for chart in charts if chart["layout"]["title"]["text"].startswith("Correlation per sequence"))


def test_the_failure_chart_shows_the_strongest_sequences_first_and_more_on_demand() -> None:
    text = "\n".join(f"s{index}\t0\n t{index}\t{index}\n" for index in range(45))
    app = paste(run_page(APP), text)
    score_with(app, explanations="t44\nt3")
    rows = failure_chart(app)["data"][0]["y"]
    assert len(rows) == 20
    assert rows[0].startswith("#44") and rows[1].startswith("#43")
    assert any("20 sequences of 45 with the highest real activation" in text for text in texts(app.caption))
    app.button(key="score_failures_more").click().run()
    assert_clean(app)
    assert len(failure_chart(app)["data"][0]["y"]) == 40
    app.button(key="score_failures_more").click().run()
    assert len(failure_chart(app)["data"][0]["y"]) == 45
    assert not [button for button in app.button if button.key == "score_failures_more"]


def test_the_compare_chips_follow_new_explanations() -> None:
    app = score_with(run_page(APP), "fake")
    chips = app.multiselect(key="score_heatmap_explanations")
    first = list(chips.value)
    assert len(first) == 3
    score_with(app, "fake", "fox\nleopard\ncheetah\nsprints")
    chips = app.multiselect(key="score_heatmap_explanations")
    names = [result.explanation for result in app.session_state["score_results"]]
    assert set(chips.options) == set(names)
    assert list(chips.value) == names[:3] and not set(chips.value) & set(first)
    # Removing a chip changes the columns drawn.
    chips.unselect(names[0]).run()
    assert_clean(app)
    assert list(app.multiselect(key="score_heatmap_explanations").value) == names[1:3]


def test_switching_away_from_the_example_leaves_its_explanations_behind() -> None:
    app = run_page(APP)
    example = app.text_area(key="explanations_text").value
    assert example.strip()
    app.radio(key="source_kind").set_value("Paste").run()
    assert_clean(app)
    assert app.text_area(key="explanations_text").value == ""
    app.radio(key="source_kind").set_value("Bundled example").run()
    assert app.text_area(key="explanations_text").value == example
    # Explanations the user wrote (and scored: the list is in the Score form) stay when the source changes.
    score_with(app, "fake", "my own idea")
    app.radio(key="source_kind").set_value("Paste").run()
    assert app.text_area(key="explanations_text").value == "my own idea"


def test_generate_is_offered_only_with_a_simulator_that_writes() -> None:
    app = choose_simulator(run_page(APP), "score_simulator", "embedding")
    assert not [button for button in app.button if button.key == "generate_button"]
    assert any("does not write them" in text and "local" in text for text in texts(app.caption))
    choose_simulator(app, "score_simulator", "fake")
    assert [button for button in app.button if button.key == "generate_button"]


def test_the_negative_activation_note_follows_the_normalization_at_once() -> None:
    app = paste(run_page(APP), "a\t-2\n fox\t8\n")
    notes = lambda: [text for text in texts(app.caption) + texts(app.info) if "negative activations" in text]  # noqa: E731
    assert any("`global` normalization sets them to 0" in text for text in notes())
    app.selectbox(key="score_normalization").select("none").run()  # no Score pressed
    assert_clean(app)
    assert any("`none` normalization keeps them" in text for text in notes())
    assert not any("sets them to 0" in text for text in notes())


def test_counts_are_in_the_right_number_with_thousands_separators() -> None:
    app = paste(run_page(APP), " a\t0\n fox\t3\n")
    summary = next(text for text in texts(app.success) if text.startswith("Loaded"))
    assert "1 sequence ·" in summary and "2 tokens" in summary and "1 active token " in summary
    sequences = "\n\n".join("\n".join(f" t{index}\t{index % 3}" for index in range(415)) for _ in range(10))
    paste(app, sequences)
    summary = next(text for text in texts(app.success) if text.startswith("Loaded"))
    assert "10 sequences" in summary and "4,150 tokens" in summary
    stored = json.dumps({"explanation": "fast animals", "activations": [{"tokens": ["a", " fox"], "values": [0, 3]}]})
    paste(app, stored)
    assert [button.label for button in app.button if button.key == "use_file_explanations"] == [
        "Use the 1 explanation stored in the file"
    ]


def test_a_failing_simulator_reports_no_prompt_tokens_and_no_sequences_simulated() -> None:
    app = score_with(run_page(APP), "fake:fail")
    ranking = table(app, "rank")
    assert set(ranking["prompt_tokens"]) == {0}
    assert set(ranking["score"]) == {"n/a"}


def test_the_ranking_fits_the_page_and_the_details_sit_in_an_expander() -> None:
    app = score_with(run_page(APP), "fake", "fox leopard\nzebra")
    ranking = next(frame for frame in app.dataframe if "rank" in frame.value.columns)
    shown = list(ranking.proto.column_order)
    assert shown[:2] == ["rank", "explanation"] and "score" in shown
    assert not {"prompt_tokens", "cost_usd", "cached", "seconds", "error"} & set(shown)
    details = table(app, "seconds", index=1)  # the first is the ranking, whose data holds every column
    assert list(details.columns) == ["rank", "explanation", "prompt_tokens", "cost_usd", "cached", "seconds", "error"]
    assert any("Tokens, cost, time and errors" in expander.label for expander in app.expander)
