import pytest

from scoring import ActivationRecord, ScoringInputError
from scoring.sampling import STRATEGIES, sample_records


def make_records():
    # max activations 0..19; top token alternates between two words for even/odd maxima
    return [ActivationRecord(["x", "cat" if i % 2 else "dog"], [0.0, float(i)]) for i in range(20)]


@pytest.mark.parametrize("strategy", list(STRATEGIES))
def test_every_strategy_is_reproducible_and_returns_distinct_valid_indices(strategy):
    records = make_records()
    first = sample_records(records, strategy, n=6, seed=7)
    assert first == sample_records(records, strategy, n=6, seed=7)
    assert len(first) == len(set(first)) == 6
    assert all(0 <= i < 20 for i in first)


def test_top_takes_highest_max_activation():
    assert sample_records(make_records(), "top", n=3) == [19, 18, 17]


def test_top_plus_random_mixes_top_half_with_seeded_random_rest():
    chosen = sample_records(make_records(), "top+random", n=6, seed=1)
    assert chosen[:3] == [19, 18, 17]
    assert all(i < 17 for i in chosen[3:])
    others = {tuple(sample_records(make_records(), "top+random", n=6, seed=s)[3:]) for s in range(5)}
    assert len(others) > 1


def test_quantile_draws_from_every_stratum():
    chosen = sample_records(make_records(), "quantile", n=5, seed=0)
    strata = {i // 4 for i in chosen}  # five strata of four records each
    assert strata == {0, 1, 2, 3, 4}


def test_diverse_prefers_new_top_tokens():
    records = [ActivationRecord(["a", "dog"], [0.0, 10.0 - i]) for i in range(5)]
    records.append(ActivationRecord(["a", "cat"], [0.0, 1.0]))
    assert sample_records(records, "diverse", n=2) == [0, 5]


def test_all_and_n_larger_than_records():
    assert sample_records(make_records()[:3], "all") == [0, 1, 2]
    assert sample_records(make_records()[:3], "top", n=10) == [2, 1, 0]


@pytest.mark.parametrize("n", [0, -1, 2.5, True])
def test_bad_n_and_strategy(n):
    with pytest.raises(ScoringInputError, match="positive whole number"):
        sample_records(make_records(), "top", n=n)


def test_unknown_strategy():
    with pytest.raises(ScoringInputError, match="unknown sampling"):
        sample_records(make_records(), "best")
