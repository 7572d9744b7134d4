"""Metric formulas against values computed by hand (see the comments)."""

import math

import numpy as np
import pytest

from scoring.metrics import (
    absolute_dev_explained,
    best_first_ranks,
    bootstrap_interval,
    compute_metrics,
    kendall_tau,
    pearson,
    r_squared,
    roc_auc,
    spearman,
)

REAL = [0.0, 10.0, 0.0, 5.0]
SIMULATED = [0.0, 8.0, 2.0, 4.0]
# means 3.75 and 3.5; deviations (-3.75, 6.25, -3.75, 1.25) and (-3.5, 4.5, -1.5, 0.5)
# cross 47.5, squares 68.75 and 35 -> r = 47.5 / sqrt(68.75 * 35)


def test_pearson_by_hand():
    assert pearson(REAL, SIMULATED) == pytest.approx(47.5 / math.sqrt(68.75 * 35))


def test_r_squared_by_hand():
    # squared errors 0 + 4 + 4 + 1 = 9 over total 68.75
    assert r_squared(REAL, SIMULATED) == pytest.approx(1 - 9 / 68.75)


def test_absolute_deviation_explained_by_hand():
    # absolute errors 0 + 2 + 2 + 1 = 5 over absolute deviations 15
    assert absolute_dev_explained(REAL, SIMULATED) == pytest.approx(1 - 5 / 15)


def test_spearman_by_hand():
    # ranks (1.5, 4, 1.5, 3) and (1, 4, 2, 3): cross 4.5, squares 4.5 and 5
    assert spearman(REAL, SIMULATED) == pytest.approx(4.5 / math.sqrt(4.5 * 5))


def test_roc_auc_by_hand_with_a_tie():
    # active scores (2, 8) vs inactive (2, 0): pairs 0.5 + 1 + 1 + 1 = 3.5 of 4
    assert roc_auc([True, True, False, False], [2.0, 8.0, 2.0, 0.0]) == pytest.approx(0.875)
    assert roc_auc([r > 0 for r in REAL], SIMULATED) == pytest.approx(1.0)


@pytest.mark.parametrize(
    "function", [pearson, r_squared, absolute_dev_explained, spearman]
)
def test_degenerate_inputs_are_nan_not_zero(function):
    assert math.isnan(function([1.0, 1.0, 1.0], [0.0, 1.0, 2.0]))
    assert math.isnan(function([], []))


def test_pearson_of_constant_prediction_and_single_value_is_nan():
    assert math.isnan(pearson([0.0, 1.0], [3.0, 3.0]))
    assert math.isnan(pearson([1.0], [1.0]))
    assert math.isnan(roc_auc([True, True], [1.0, 2.0]))


def test_compute_metrics_concatenates_sequences_for_the_headline():
    metrics = compute_metrics([REAL[:2], REAL[2:]], [SIMULATED[:2], SIMULATED[2:]])
    assert metrics["correlation"] == pytest.approx(pearson(REAL, SIMULATED))
    assert metrics["per_sequence_correlation"][0] == pytest.approx(1.0)
    assert metrics["per_sequence_correlation"][1] == pytest.approx(1.0)
    assert metrics["n_tokens"] == 4 and metrics["n_sequences"] == 2
    assert metrics["metric_errors"] == {}


def test_compute_metrics_explains_undefined_values():
    constant_real = compute_metrics([[0.0, 0.0]], [[1.0, 2.0]])
    assert math.isnan(constant_real["correlation"])
    assert "real activations are constant" in constant_real["metric_errors"]["correlation"]
    constant_simulated = compute_metrics([[0.0, 5.0]], [[3.0, 3.0]])
    assert math.isnan(constant_simulated["correlation"])
    assert "same value for every token" in constant_simulated["metric_errors"]["correlation"]
    assert math.isnan(constant_simulated["ci_low"])


def test_bootstrap_interval_is_reproducible_and_brackets_the_score():
    real = [[0, 5, 1], [8, 0, 0], [0, 0, 3], [2, 9, 0], [0, 1, 0]]
    simulated = [[1, 4, 0], [6, 1, 0], [0, 2, 2], [1, 7, 1], [3, 0, 0]]
    low, high = bootstrap_interval(real, simulated, seed=3)
    assert (low, high) == bootstrap_interval(real, simulated, seed=3)
    score = pearson(sum(real, []), sum(simulated, []))
    assert -1 <= low <= score <= high <= 1
    assert low < high


def test_bootstrap_of_a_perfect_prediction_is_one_and_needs_two_sequences():
    real = [[0, 5], [8, 0], [1, 2]]
    assert bootstrap_interval(real, real) == pytest.approx((1.0, 1.0))
    assert all(math.isnan(v) for v in bootstrap_interval([[0, 1]], [[0, 1]]))


def test_calibration_by_hand_on_a_fixed_split():
    from scoring.metrics import calibrated_metrics

    # simulated = real / 2 exactly: linear calibration (slope 2) recovers real perfectly
    real = [[0.0, 10.0], [0.0, 6.0], [2.0, 0.0], [4.0, 8.0]]
    simulated = [[v / 2 for v in seq] for seq in real]
    result = calibrated_metrics(real, simulated, seed=0)
    assert result["calibration_sequences"] == 2 and result["test_sequences"] == 2
    assert result["linear"]["slope"] == pytest.approx(2.0)
    assert result["linear"]["intercept"] == pytest.approx(0.0, abs=1e-9)
    assert result["linear"]["r_squared"] == pytest.approx(1.0)
    assert result["uncalibrated"]["r_squared"] < 1.0
    assert result["uncalibrated"]["correlation"] == pytest.approx(1.0)
    assert -1.0 <= result["percentile"]["correlation"] <= 1.0
    assert "error" in calibrated_metrics(real[:3], simulated[:3])


def test_pearson_p_value_by_hand():
    from scoring.metrics import pearson_p_value

    # r = 0.5, n = 12: t^2 = r^2 (n - 2) / (1 - r^2) = 10 / 3 with 10 degrees of freedom. With
    # cos^2 = 10 / (10 + t^2) = 0.75 and sin = 0.5, an even df gives P(|T| < t) = sin * (1 + c/2 + 3c^2/8
    # + 15c^3/48 + 105c^4/384), c = cos^2, so p = 1 - 0.5 * 1.804290771484375.
    assert pearson_p_value(0.5, 12) == pytest.approx(0.0978546142578125, rel=1e-12)
    assert pearson_p_value(-0.5, 12) == pytest.approx(0.0978546142578125, rel=1e-12)
    # n = 3, one degree of freedom (Cauchy): p = 1 - (2 / pi) atan(|t|); r = 0.5 gives t = 1 / sqrt(3), p = 2/3
    assert pearson_p_value(0.5, 3) == pytest.approx(2 / 3, rel=1e-12)
    assert pearson_p_value(0.0, 50) == pytest.approx(1.0)
    assert pearson_p_value(1.0, 10) == 0.0
    assert math.isnan(pearson_p_value(0.5, 2)) and math.isnan(pearson_p_value(math.nan, 10))


def test_holm_and_benjamini_hochberg_by_hand():
    from scoring.metrics import benjamini_hochberg, holm_bonferroni

    pvalues = [0.01, 0.04, 0.03, 0.005, math.nan]
    # sorted: 0.005, 0.01, 0.03, 0.04 (m = 4; NaN left out)
    # Holm: 4 x 0.005 = 0.02, 3 x 0.01 = 0.03, 2 x 0.03 = 0.06, max(0.06, 1 x 0.04) = 0.06
    holm = holm_bonferroni(pvalues)
    assert holm[:4] == pytest.approx([0.03, 0.06, 0.06, 0.02]) and math.isnan(holm[4])
    # BH from the largest: 4/4 x 0.04 = 0.04, min(0.04, 4/3 x 0.03) = 0.04, 4/2 x 0.01 = 0.02, min(0.02, 4 x 0.005)
    bh = benjamini_hochberg(pvalues)
    assert bh[:4] == pytest.approx([0.02, 0.04, 0.04, 0.02]) and math.isnan(bh[4])
    assert holm_bonferroni([0.5, 0.9]) == [1.0, 1.0]
    assert benjamini_hochberg([]) == [] and holm_bonferroni([]) == []


def test_classification_metrics_at_a_given_threshold():
    from scoring.metrics import classification_metrics

    metrics = classification_metrics([True, True, False, False], [0.9, 0.4, 0.6, 0.1], threshold=0.5)
    assert metrics["roc_auc"] == pytest.approx(0.75)
    assert metrics["recall"] == 0.5 and metrics["precision"] == 0.5 and metrics["balanced_accuracy"] == 0.5
    assert metrics["threshold"] == 0.5


def test_kendall_tau_b_with_ties_and_nan():
    assert kendall_tau([1, -1 / 3, -1 / 3], [1, 0, 1]) == pytest.approx(0.5)  # 1 concordant, one tie on each side
    assert kendall_tau([3, 2, 1], [1, 2, 3]) == pytest.approx(-1.0)
    assert kendall_tau([1, math.nan], [2, 1]) == 1.0  # NaN ranks lowest
    assert math.isnan(kendall_tau([1, 1], [2, 3]))  # one scoring ties everything: undefined
    assert math.isnan(kendall_tau([1], [1]))


def test_kendall_tau_takes_numpy_scores():
    # what bench and the dashboard hand it: numpy floats (float32 among them) and arrays, NaN included
    first = np.array([0.9, 0.1, np.nan, 0.5], dtype=np.float32)
    second = [np.float64(0.8), np.float64(0.3), np.float64(0.1), np.float64(0.2)]
    # NaN ranks lowest: the first orders a > d > b > c, the second a > b > d > c; of the 6 pairs only (b, d)
    # disagrees and none ties, so tau = (5 - 1) / 6
    assert kendall_tau(first, second) == pytest.approx((5 - 1) / 6)
    assert kendall_tau(np.arange(5.0), np.arange(5.0)[::-1]) == pytest.approx(-1.0)
    with pytest.raises(ValueError, match="same items"):
        kendall_tau([1.0, 2.0], [1.0])


def test_best_first_ranks_take_numpy_scores():
    assert best_first_ranks(np.array([0.5, np.nan, 0.9, 0.5], dtype=np.float32)) == [2, None, 1, 2]
    assert best_first_ranks([math.nan]) == [None] and best_first_ranks([]) == []


def test_best_first_ranks_share_ties_and_skip_nan():
    assert best_first_ranks([0.5, math.nan, 0.9, 0.5]) == [2, None, 1, 2]
