import math
from types import SimpleNamespace

import pytest

from scoring import ScoringInputError
from scoring.bench import load_puzzles, run_bench, scorer_names

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


def test_seconds_per_score_divides_the_run_time_by_the_scores(monkeypatch):
    # bench's clock, stepped by hand: the run starts at 100 s and ends at 102.5 s, over 5 scores
    readings = iter([100.0, 102.5])
    monkeypatch.setattr("scoring.bench.time", SimpleNamespace(perf_counter=lambda: next(readings)))
    summary = run_bench(PUZZLES, simulator="fake")
    assert summary["n_scores"] == 5
    assert summary["seconds"] == 2.5 and summary["seconds_per_score"] == pytest.approx(0.5)


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


# Worked by hand with the fake simulator (10 on a token named by the explanation, else 0).
# pets: real [10, 0 | 0, 0] over " cat", " sat" | "the", " dog".
#   cat: simulated [10, 0 | 0, 0]  -> simulation 1,    detection 1 (max 10 vs 0),  fuzzing 1 (cat 10 vs sat 0)
#   dog: simulated [0, 0 | 0, 10]  -> simulation -1/3, detection -1 (0 vs 10),     fuzzing 0.5 (0 vs 0)
#   sat: simulated [0, 10 | 0, 0]  -> simulation -1/3, detection 1 (10 vs 0),      fuzzing 0 (cat 0 vs sat 10)
# colors: red / blue behave as cat / dog.
# Kendall tau-b on pets: simulation~detection 1/sqrt(2*2) = 0.5, simulation~fuzzing 2/sqrt(2*3),
# detection~fuzzing (1 - 1)/2 = 0; on colors every pair agrees (tau 1, same top).
TINY = {
    "pets": {
        "name": "pets",
        "explanation": "cat",
        "false_explanations": ["dog", "sat"],
        "sentences": [[[" cat", 10], " sat"], ["the", " dog"]],
    },
    "colors": {
        "name": "colors",
        "explanation": "red",
        "false_explanations": ["blue"],
        "sentences": [[[" red", 10], " hat"], ["a", " blue"]],
    },
}


def test_several_scorers_report_each_and_their_agreement():
    report = run_bench(TINY, simulator="fake", scorer="simulation,detection,fuzzing")
    scorers = report["scorers"]
    assert list(scorers) == ["simulation", "detection", "fuzzing"]
    assert (scorers["simulation"]["accuracy"], scorers["simulation"]["pairwise_accuracy"]) == (1.0, 1.0)
    assert (scorers["detection"]["accuracy"], scorers["detection"]["pairwise_accuracy"]) == (0.5, pytest.approx(2 / 3))
    assert (scorers["fuzzing"]["accuracy"], scorers["fuzzing"]["pairwise_accuracy"]) == (1.0, 1.0)
    assert scorers["simulation"]["puzzles"]["pets"]["false_scores"] == {"dog": -0.3333, "sat": -0.3333}
    assert scorers["detection"]["puzzles"]["pets"]["false_scores"] == {"dog": -1.0, "sat": 1.0}
    # fuzzing: the mean of same-text and other-text ROC-AUCs ("dog" 0.5 and 0.25, "sat" 0 and 0.5)
    assert scorers["fuzzing"]["puzzles"]["pets"]["false_scores"] == {"dog": 0.375, "sat": 0.25}
    # without a cache, the later scorers read this run's simulations: no prompt tokens of their own
    assert [summary["prompt_tokens_per_score"] for summary in scorers.values()] == [4, 0, 0]
    assert [summary["cache_hits"] for summary in scorers.values()] == [0, 10, 10]
    assert all(summary["n_scores"] == 5 for summary in scorers.values())
    # the fake simulator's requests carry no price, and the later scorers only read them back: no cost is known
    assert [summary["cost_usd"] for summary in scorers.values()] == [None, None, None]
    pairs = {tuple(pair["scorers"]): pair for pair in report["agreement"]["pairs"]}
    assert pairs[("simulation", "detection")]["kendall_tau"] == pytest.approx((0.5 + 1) / 2)
    assert pairs[("simulation", "fuzzing")]["kendall_tau"] == pytest.approx((2 / math.sqrt(6) + 1) / 2)
    assert pairs[("detection", "fuzzing")]["kendall_tau"] == pytest.approx((0 + 1) / 2)
    # tops on pets: simulation {cat}, detection {cat, sat}, fuzzing {cat}
    assert [pairs[key]["top_agreement"] for key in pairs] == [0.5, 1.0, 0.5]
    assert all(pair["tau_puzzles"] == pair["top_puzzles"] == 2 for pair in pairs.values())
    assert report["agreement"]["mean_top_agreement"] == pytest.approx(2 / 3)
    # the top level stays the first scorer's, as with one scorer
    assert report["scorer"] == "simulation" and report["accuracy"] == 1.0
    assert report["puzzles"] == scorers["simulation"]["puzzles"]


def test_several_scorers_simulate_once_within_a_run_and_leave_no_cache(tmp_path, monkeypatch):
    from scoring.simulators.fake import FakeSimulator

    monkeypatch.setenv("SCORING_CACHE_DIR", str(tmp_path / "user-cache"))
    simulator = FakeSimulator()
    report = run_bench(TINY, simulator=simulator, scorer="simulation,detection,fuzzing", cache=False)
    # 2 puzzles x (1 true + 1 or 2 false explanations) x 2 sentences, each simulated once for three scorers
    assert simulator.sequences_simulated == 10
    assert report["scorers"]["fuzzing"]["cache_hits"] == 10
    assert not (tmp_path / "user-cache").exists()
    again = FakeSimulator()
    run_bench(TINY, simulator=again, scorer="simulation,fuzzing", cache=False)
    assert again.sequences_simulated == 10  # the run's cache did not outlive the run


# A context trap: the neuron fires on "shelled" and "peeled" (a shell coming off); the true explanation also
# names the context words "nuts" and "eggs", which occur in texts where it does not fire. The decoy predicts
# nothing: the fake simulation is 0 on every token.
CONTEXT_TRAP = {
    "shells": {
        "name": "shells",
        "explanation": "shelled nuts and eggs",
        "false_explanations": ["zebra stripes"],
        "sentences": [
            ["the", [" shelled", 8], " nuts"],
            ["they", [" peeled", 6], " the", " eggs"],
            [" nuts", " in", " a", " bowl"],
            ["eggs", " for", " breakfast"],
        ],
    }
}


def test_on_a_context_trap_a_flat_decoy_does_not_outrank_the_true_explanation():
    # Before issue 28 the flat decoy scored 0.5 (ties everywhere) in detection and fuzzing, as did the true
    # explanation (detection: 10 in the trap text as in both activating ones; fuzzing: random wrong markings on
    # " nuts" and " eggs"), and a tie is a lost pair.
    report = run_bench(CONTEXT_TRAP, simulator="fake", scorer="simulation,detection,fuzzing", cache=False)
    for name in ("simulation", "detection", "fuzzing"):
        puzzle = report["scorers"][name]["puzzles"]["shells"]
        assert puzzle["won"] is True, name
        assert puzzle["false_scores"] == {"zebra stripes": None}, name  # no evidence: NaN, never chance
        assert any(words in puzzle["errors"]["zebra stripes"] for words in ("on every token", "same value"))
    # detection reads whole texts: the fake names a word of every text for the true explanation, so its predictions
    # are alike (0, chance), still above the decoy that says nothing
    assert report["scorers"]["detection"]["puzzles"]["shells"]["true_score"] == 0.0
    assert report["scorers"]["fuzzing"]["puzzles"]["shells"]["true_score"] > 0.5


def test_one_scorer_keeps_the_single_scorer_report():
    report = run_bench(TINY, simulator="fake", scorer=["detection"])
    assert report["scorer"] == "detection" and "scorers" not in report and "agreement" not in report


def test_scorer_lists_are_checked():
    assert scorer_names(["simulation, fuzzing", "simulation"]) == ["simulation", "fuzzing"]
    with pytest.raises(ScoringInputError, match="unknown scorer 'nope'"):
        run_bench(TINY, simulator="fake", scorer="simulation,nope")
    with pytest.raises(ScoringInputError, match="at least one scorer"):
        scorer_names(" , ")


def test_lexical_runs_several_scorers():
    report = run_bench(PUZZLES, simulator="lexical", scorer=["simulation", "fuzzing"])
    assert set(report["scorers"]) == {"simulation", "fuzzing"}
    assert len(report["agreement"]["pairs"]) == 1


def test_progress_after_each_puzzle_of_each_scorer():
    seen = []
    run_bench(TINY, simulator="fake", scorer="simulation,fuzzing", progress=lambda *update: seen.append(update))
    assert [(done, total) for done, total, _ in seen] == [(1, 4), (2, 4), (3, 4), (4, 4)]
    assert seen[-1][2] == "scorer fuzzing: puzzle colors done"


def test_judge_scorers_run_beside_simulation_and_are_compared():
    report = run_bench(TINY, simulator="fake", scorer="simulation,detection-judge")
    judge = report["scorers"]["detection-judge"]
    # the fake judge: P(yes) 0.5 for a text holding the explanation's word, else 0; one activating and one
    # silent sentence per puzzle, so 'cat' and 'sat' both separate them perfectly (a tie loses the puzzle)
    assert judge["puzzles"]["pets"]["false_scores"] == {"dog": 0.0, "sat": 1.0}
    assert (judge["accuracy"], judge["pairwise_accuracy"]) == (0.5, pytest.approx(2 / 3))
    assert judge["n_scores"] == 5 and judge["prompt_tokens_per_score"] > 0
    (pair,) = report["agreement"]["pairs"]
    assert pair["scorers"] == ["simulation", "detection-judge"] and pair["tau_puzzles"] == 2


def test_attention_head_is_refused_before_anything_runs():
    with pytest.raises(ScoringInputError, match="attention-head scorer reads attention records"):
        scorer_names("simulation,attention-head")


def test_a_run_without_prices_has_no_cost_even_when_everything_is_cached(tmp_path):
    first = run_bench(TINY, simulator="fake", cache=tmp_path / "cache")
    again = run_bench(TINY, simulator="fake", cache=tmp_path / "cache")
    assert again["cache_hits"] > 0 and first["cost_usd"] is None
    assert again["cost_usd"] is None  # n/a, as on the Score page, not $0


def test_the_report_states_chance():
    report = run_bench(TINY, simulator="fake")
    # pets has 2 decoys (chance 1/3), colors 1 (chance 1/2).
    assert report["chance_accuracy"] == pytest.approx((1 / 3 + 1 / 2) / 2)
    assert report["chance_pairwise_accuracy"] == 0.5
