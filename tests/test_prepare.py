"""First-use preparation of a simulator (model conversion, loading) reported before the first score."""

import pytest

from scoring import preparation_needed, prepare_simulator, score_explanation
from scoring.simulators.fake import FakeSimulator


class PreparingSimulator(FakeSimulator):
    """A fake whose first use converts and loads a model, as `local` does."""

    def __init__(self) -> None:
        super().__init__()
        self.ready = False
        self.prepared = 0

    def preparation_needed(self) -> str | None:
        return None if self.ready else "converts the model, about 2 min, 1.9 GB"

    def prepare(self, progress=None) -> None:
        self.prepared += 1
        for done in range(3):
            if progress is not None:
                progress("converting the model", done, 3)
        if progress is not None:
            progress("loading the model", 1, 1)
        self.ready = True


def test_a_simulator_that_needs_preparation_says_what_and_reports_progress(seed_records):
    simulator = PreparingSimulator()
    assert preparation_needed(simulator) == "converts the model, about 2 min, 1.9 GB"
    seen = []
    prepare_simulator(simulator, lambda stage, done, total: seen.append((stage, done, total)))
    assert seen == [
        ("converting the model", 0, 3),
        ("converting the model", 1, 3),
        ("converting the model", 2, 3),
        ("loading the model", 1, 1),
    ]
    assert preparation_needed(simulator) is None
    prepare_simulator(simulator)  # no progress callback: still fine
    assert simulator.prepared == 2
    assert score_explanation("fox leopard sprints", seed_records, simulator=simulator, cache=False).error is None


def test_a_simulator_without_the_methods_is_ready_and_preparing_it_does_nothing():
    simulator = FakeSimulator()
    assert preparation_needed(simulator) is None
    assert preparation_needed("lexical") is None
    prepare_simulator(simulator, lambda *args: pytest.fail("no progress expected"))
    prepare_simulator("fake")


def test_a_spec_string_prepares_the_shared_instance_the_scorers_use(monkeypatch):
    from scoring import api

    simulator = PreparingSimulator()
    monkeypatch.setitem(api._simulators, "prepared-by-test", simulator)
    assert preparation_needed("prepared-by-test") is not None
    prepare_simulator("prepared-by-test")
    assert simulator.ready and preparation_needed("prepared-by-test") is None


def test_a_blank_sentence_means_ready_and_a_wrong_type_is_a_bug_named():
    class Blank(FakeSimulator):
        def preparation_needed(self):
            return "  "

    class Wrong(FakeSimulator):
        def preparation_needed(self):
            return 120

    assert preparation_needed(Blank()) is None
    with pytest.raises(TypeError, match="Wrong.preparation_needed\\(\\) returned int"):
        preparation_needed(Wrong())


def test_a_failing_preparation_raises_its_own_error():
    class Broken(PreparingSimulator):
        def prepare(self, progress=None):
            raise OSError("no space left to convert the model")

    with pytest.raises(OSError, match="no space left"):
        prepare_simulator(Broken())


def test_fake_prepare_mode_needs_preparing_once_and_reports_each_step(monkeypatch, seed_records):
    from scoring.simulators import fake

    monkeypatch.setattr(fake, "PREPARATION_STEP_SECONDS", 0.0)
    simulator = fake.FakeSimulator("prepare")
    assert "prepares a pretend model" in preparation_needed(simulator)
    seen = []
    prepare_simulator(simulator, lambda stage, done, total: seen.append((done, total)))
    assert seen == [(done, fake.PREPARATION_STEPS) for done in range(1, fake.PREPARATION_STEPS + 1)]
    assert preparation_needed(simulator) is None
    assert preparation_needed(fake.FakeSimulator()) is None
    result = score_explanation("fox leopard sprints", seed_records, simulator=simulator, cache=False)
    assert result.error is None and result.score > 0.5
