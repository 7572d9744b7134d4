import asyncio
import json
import logging
import math

import pytest

from scoring import (
    SCORERS,
    SIMULATORS,
    ActivationRecord,
    ScoringInputError,
    SimulationCache,
    ascore_explanation,
    get_simulator,
    rank_explanations,
    score_explanation,
)
from scoring.cache import simulation_key
from scoring.simulators.fake import FakeSimulator


def test_registries_list_core_names():
    assert {"fake", "lexical"} <= set(SIMULATORS)
    assert "simulation" in SCORERS


def test_seed_example_scores_with_fake(seed_records):
    result = score_explanation("fox leopard sprints", seed_records, simulator="fake", cache=False)
    assert result.error is None
    assert 0.5 < result.score <= 1.0
    assert [s.simulated for s in result.sequences] == [[0, 0, 0, 10], [0, 10, 10, 0]]
    assert result.sequences[0].real == [0.0, 0.0, 0.0, 80 / 9]
    assert result.metrics["n_tokens"] == 8
    low, high = result.interval
    assert low <= result.score <= high


def test_repeated_score_makes_no_simulator_call(seed_records, tmp_path):
    simulator = FakeSimulator()
    cache = SimulationCache(tmp_path / "c")
    first = score_explanation("fox", seed_records, simulator=simulator, cache=cache)
    assert simulator.sequences_simulated == 2
    assert first.usage.cache_misses == 2 and not first.cached
    second = score_explanation("fox", seed_records, simulator=simulator, cache=cache)
    assert simulator.sequences_simulated == 2  # nothing new simulated
    assert second.usage.cache_hits == 2 and second.usage.requests == 0 and second.cached
    assert second.score == first.score
    third = score_explanation("leopard", seed_records, simulator=simulator, cache=cache)
    assert simulator.sequences_simulated == 4  # another explanation is another key
    assert not third.cached


def test_cache_key_changes_with_everything_that_changes_a_simulation():
    simulator = FakeSimulator()
    base = simulation_key(simulator, "fox", ["a", "b"])
    assert base == simulation_key(FakeSimulator(), "fox", ["a", "b"])
    assert base != simulation_key(simulator, "fox ", ["a", "b"])
    assert base != simulation_key(simulator, "fox", ["a", " b"])
    assert base != simulation_key(FakeSimulator("garbage"), "fox", ["a", "b"])
    bumped = FakeSimulator()
    bumped.prompt_version = "fake-2"
    assert base != simulation_key(bumped, "fox", ["a", "b"])


def test_corrupt_cache_entries_are_misses(seed_records, tmp_path):
    import diskcache

    simulator = FakeSimulator()
    cache = SimulationCache(tmp_path / "c")
    score_explanation("fox", seed_records, simulator=simulator, cache=cache)
    with diskcache.Cache(str(tmp_path / "c")) as other_writer:  # e.g. an older version sharing the directory
        for tokens in [r.tokens for r in seed_records]:
            other_writer.set(simulation_key(simulator, "fox", tokens), {"activations": ["junk"]})
    again = score_explanation("fox", seed_records, simulator=simulator, cache=cache)
    assert again.error is None and again.usage.cache_misses == 2
    assert simulator.sequences_simulated == 4


def test_unreadable_cache_store_does_not_stop_a_score(seed_records, tmp_path, caplog):
    cache = SimulationCache(tmp_path / "c")
    (tmp_path / "c" / "cache.db").write_bytes(b"not a database" * 1000)  # the store's file, overwritten
    with caplog.at_level(logging.WARNING, logger="scoring.cache"):
        result = score_explanation("fox", seed_records, simulator="fake", cache=cache)
    uncached = score_explanation("fox", seed_records, simulator="fake", cache=False)
    assert result.error is None and result.score == pytest.approx(uncached.score)
    assert result.usage.cache_misses == 2
    logged = caplog.text
    assert "unreadable, simulating again" in logged and "could not write cache entry" in logged


def test_failed_simulation_is_nan_with_reason_and_never_cached(seed_records, tmp_path):
    cache = SimulationCache(tmp_path / "c")
    result = score_explanation("fox", seed_records, simulator="fake:fail", cache=cache)
    assert math.isnan(result.score)
    assert "2 of 2 sequences could not be simulated" in result.error
    assert "fake:fail always fails" in result.error
    assert all(s.simulated is None and s.error for s in result.sequences)
    assert len(cache) == 0


def test_wrong_length_output_is_caught(seed_records):
    result = score_explanation("fox", seed_records, simulator="fake:garbage", cache=False)
    assert math.isnan(result.score)
    assert "returned 5 values for 4 tokens" in result.error


def test_simulator_exception_becomes_nan_with_reason(seed_records):
    class Exploding(FakeSimulator):
        async def simulate(self, explanation, sequences):
            raise ConnectionError("server went away")

    result = score_explanation("fox", seed_records, simulator=Exploding(), cache=False)
    assert math.isnan(result.score)
    assert "ConnectionError: server went away" in result.error


def test_all_zero_activations_is_nan_with_reason_and_simulates_nothing():
    simulator = FakeSimulator()
    records = [ActivationRecord(["a", "b"], [0.0, 0.0])]
    result = score_explanation("a", records, simulator=simulator, cache=False)
    assert math.isnan(result.score)
    assert "every real activation is zero" in result.error
    assert simulator.calls == 0


def test_constant_prediction_is_nan_not_zero(seed_records):
    result = score_explanation("zebra", seed_records, simulator="fake", cache=False)
    assert math.isnan(result.score)
    assert "same value for every token" in result.error


@pytest.mark.parametrize(
    ("explanation", "message"),
    [("", "empty"), ("   ", "empty"), (None, "must be text"), (3, "must be text"), ("x" * 3000, "under 2000")],
)
def test_bad_explanations(seed_records, explanation, message):
    with pytest.raises(ScoringInputError, match=message):
        score_explanation(explanation, seed_records, simulator="fake")


def test_bad_options(seed_records):
    with pytest.raises(ScoringInputError, match="unknown simulator 'gpt5'"):
        score_explanation("fox", seed_records, simulator="gpt5")
    with pytest.raises(ScoringInputError, match="unknown scorer"):
        score_explanation("fox", seed_records, simulator="fake", scorer="vibes")
    with pytest.raises(ScoringInputError, match="unknown normalization"):
        score_explanation("fox", seed_records, simulator="fake", normalization="max")
    with pytest.raises(ScoringInputError, match="unknown fake mode"):
        get_simulator("fake:banana")
    with pytest.raises(ScoringInputError, match="cache must be"):
        score_explanation("fox", seed_records, simulator="fake", cache=3.5)


def test_rank_puts_best_first_and_nan_last(seed_records):
    ranked = rank_explanations(["zebra", "fox", "fox leopard sprints"], seed_records, simulator="fake", cache=False)
    assert [r.explanation for r in ranked] == ["fox leopard sprints", "fox", "zebra"]
    assert math.isnan(ranked[-1].score)
    with pytest.raises(ScoringInputError, match="at least one explanation"):
        rank_explanations([], seed_records)
    with pytest.raises(ScoringInputError, match="list of strings"):
        rank_explanations("fox", seed_records)


def test_rank_reports_progress_up_to_the_total(seed_records):
    seen = []
    rank_explanations(
        ["fox", "leopard"], seed_records, simulator="fake", cache=False, progress=lambda d, t, m: seen.append((d, t))
    )
    assert seen[-1] == (4, 4)


def test_sampling_and_normalisation_are_recorded(seed_records):
    records = seed_records + [ActivationRecord(["a", " snail"], [0.0, 1.0])]
    result = score_explanation(
        "fox leopard snail", records, simulator="fake", sampling="top", n_sequences=2,
        normalization="per_record", cache=False,
    )
    assert result.sampling == {"strategy": "top", "n": 2, "seed": 0, "indices": [1, 0]}
    assert result.normalization == "per_record"
    assert [s.index for s in result.sequences] == [1, 0]
    assert result.sequences[0].real == [0.0, 10.0, 40 / 9, 0.0]


def test_to_dict_is_strict_json_even_with_nan(seed_records):
    result = score_explanation("zebra", seed_records, simulator="fake", cache=False)
    text = json.dumps(result.to_dict(), allow_nan=False)
    data = json.loads(text)
    assert data["score"] is None and data["error"]
    assert data["sequences"][0]["tokens"] == ["the", " quick", " brown", " fox"]


def test_sync_api_works_inside_a_running_event_loop(seed_records):
    async def inside():
        sync_result = score_explanation("fox", seed_records, simulator="fake", cache=False)
        async_result = await ascore_explanation("fox", seed_records, simulator="fake", cache=False)
        return sync_result.score, async_result.score

    first, second = asyncio.run(inside())
    assert first == second


def test_default_cache_directory_comes_from_the_environment(seed_records, isolated_cache):
    score_explanation("fox", seed_records, simulator="fake")
    assert isolated_cache.exists()
    assert len(SimulationCache(isolated_cache)) == 2


def test_rank_with_scorers_simulates_once_for_all_scorers(seed_records):
    from scoring import rank_with_scorers

    simulator = FakeSimulator()
    progress = []
    ranked = rank_with_scorers(
        ["fox leopard", "spotted"], seed_records, ["simulation", "detection", "simulation"], simulator=simulator,
        cache=False, progress=lambda done, total, message: progress.append((done, total, message)),
    )
    assert list(ranked) == ["simulation", "detection"]  # in the order given, once each
    assert [r.explanation for r in ranked["simulation"]] == ["fox leopard", "spotted"]
    assert all(r.scorer == "detection" for r in ranked["detection"])
    assert simulator.sequences_simulated == 4  # 2 explanations x 2 sequences, shared by both scorers
    assert all(r.cached for r in ranked["detection"])
    assert progress[-1][0] == progress[-1][1] and progress[-1][2].startswith("scorer detection:")
    again = rank_with_scorers(["fox leopard"], seed_records, ["fuzzing"], simulator=simulator, cache=False)
    assert simulator.sequences_simulated == 6 and not again["fuzzing"][0].cached  # no cache across calls


def test_run_cache_is_temporary_only_when_several_scorers_run_without_one(tmp_path):
    from scoring.api import run_cache

    with run_cache(False, 1) as cache:
        assert cache is None  # one scorer, no cache asked for: nothing to share
    with run_cache(tmp_path / "mine", 3) as cache:
        assert cache is not None and cache.directory == tmp_path / "mine"  # the one asked for, kept
    assert (tmp_path / "mine").exists()
    with run_cache(False, 2) as cache:
        assert cache is not None
        scratch = cache.directory
        cache.set("key", [1.0, 2.0])
        assert cache.get("key", 2) == [1.0, 2.0]
    assert not scratch.exists()  # the run's cache is gone with the run
    with pytest.raises(RuntimeError), run_cache(False, 2) as cache:
        scratch = cache.directory
        raise RuntimeError("a scorer failed")
    assert not scratch.exists()  # also when the run fails


JUDGED_RECORDS = [
    ActivationRecord(["the", " fox", " ran"], [0.0, 8.0, 0.0]),
    ActivationRecord(["a", " dog", " sat"], [0.0, 0.0, 0.0]),
    ActivationRecord(["one", " fox", " here"], [0.0, 0.0, 0.0]),
    ActivationRecord(["big", " cat"], [0.0, 6.0]),
]


def test_rank_with_scorers_runs_judge_scorers_and_gives_each_its_options():
    from scoring import rank_with_scorers

    simulator = FakeSimulator()
    ranked = rank_with_scorers(
        ["fox cat", "dog"], JUDGED_RECORDS, ["simulation", "detection-judge", "binary-condition"],
        simulator=simulator, cache=False, scorer_options={"window": 2},
    )
    assert list(ranked) == ["simulation", "detection-judge", "binary-condition"]
    best = {name: results[0] for name, results in ranked.items()}
    assert all(result.explanation == "fox cat" for result in best.values())
    assert best["simulation"].judgments == [] and best["detection-judge"].judgments
    # the window went to binary-condition only (detection-judge takes no options and would refuse it)
    assert best["binary-condition"].metrics["window_tokens"] == 2
    assert len(best["binary-condition"].judgments) == 7  # windows of 2 tokens: 2 + 2 + 2 + 1
    # detection-judge records each sequence's P(yes) as its prediction, as detection does with simulations
    detection = best["detection-judge"]
    assert detection.metrics["sequence_predictions"] == [0.5, 0.0, 0.5, 0.5]
    assert detection.metrics["threshold"] == 0.5
    assert all("p_value_holm" in result.metrics for result in ranked["binary-condition"])  # corrected as ranked


def test_rank_with_scorers_refuses_attention_head_and_options_no_chosen_scorer_takes():
    from scoring import rank_with_scorers

    simulator = FakeSimulator()
    with pytest.raises(ScoringInputError, match="attention-head scorer reads attention records"):
        rank_with_scorers(["fox"], JUDGED_RECORDS, ["simulation", "attention-head"], simulator=simulator)
    assert simulator.calls == 0  # refused before the first scorer ran
    with pytest.raises(ScoringInputError, match="no chosen scorer .* has the option window"):
        rank_with_scorers(["fox"], JUDGED_RECORDS, ["simulation", "detection"], simulator=simulator,
                          scorer_options={"window": 2})


def test_rank_with_scorers_rejects_unknown_or_no_scorers(seed_records):
    from scoring import rank_with_scorers

    with pytest.raises(ScoringInputError, match="unknown scorer 'best'"):
        rank_with_scorers(["fox"], seed_records, ["simulation", "best"], simulator="fake")
    with pytest.raises(ScoringInputError, match="at least one scorer"):
        rank_with_scorers(["fox"], seed_records, [], simulator="fake")


def test_the_default_simulator_follows_the_hardware_and_the_judge_is_local(monkeypatch: pytest.MonkeyPatch) -> None:
    from scoring import models
    from scoring.api import default_simulator_spec, resolve_simulator
    from scoring.simulators import DEFAULT_JUDGE, default_simulator
    from scoring.simulators.local import DEFAULT_MODEL

    # Chosen by benchmark (docs/local-simulator.md): local where it runs in bfloat16 or on a GPU, else embedding.
    # On the llama.cpp path (q4_k_m) local is faster but still over the 30 s budget: embedding, saying so.
    for dtype, expected in (("bfloat16", "local"), ("float32", "embedding"), ("q4_k_m", "embedding")):
        monkeypatch.setenv("SCORING_DEVICE", "cpu")
        monkeypatch.setenv("SCORING_DTYPE", dtype)
        default_simulator.cache_clear()
        spec, reason = default_simulator()
        assert spec == expected and f"The default simulator is `{expected}`" in reason
        assert "{" not in reason
        if expected == "embedding":
            assert ("llama.cpp" in reason) == (models.device_dtype_for(DEFAULT_MODEL)[1] == "q4_k_m")
        assert default_simulator_spec() == expected
        assert resolve_simulator(None).name == expected  # nothing is loaded until a simulation runs
    default_simulator.cache_clear()
    assert DEFAULT_JUDGE == "local" and default_simulator_spec(judge=True) == "local"
    judge = resolve_simulator(None, judge=True)
    assert judge.name == "local" and judge.capabilities.can_judge


def test_failed_requests_are_not_counted_as_simulated_nor_as_prompt_tokens(seed_records):
    messages = []
    result = score_explanation(
        "fox", seed_records, simulator="fake:fail", cache=False, progress=lambda d, t, m: messages.append(m)
    )
    assert messages[-1] == "simulated 0 of 2 sequences (2 failed)"
    assert result.usage.prompt_tokens == 0
    assert result.usage.requests >= 1
