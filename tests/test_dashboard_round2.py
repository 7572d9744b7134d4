"""AppTests for the dashboard's second round (issue 25): first-use preparation, the chance level, compare
chips, source switching, the failure chart, the negative-activation note and wording."""

from __future__ import annotations

import pytest
from streamlit.testing.v1 import AppTest
from test_app import (  # noqa: F401 - no_model_loading is an autouse fixture
    APP,
    FakeSimulator,
    assert_clean,
    choose_simulator,
    no_model_loading,
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
