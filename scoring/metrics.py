"""Metrics comparing real with simulated activations.

Every function returns NaN (never raises, never 0) when the metric is
undefined; `compute_metrics` also says why in ``metric_errors``.

Definitions (real r, simulated s, over all tokens of all sequences concatenated):
- correlation: Pearson r of (r, s), the headline score as in OpenAI's paper and the Neuronpedia scorer.
- r_squared: 1 - sum((r - s)^2) / sum((r - mean r)^2), with both on the 0..10 scale.
- absolute_dev_explained: 1 - sum|r - s| / sum|r - mean r|.
- spearman: rank correlation of (r, s).
- roc_auc: probability that a random active token (r > 0) gets a higher s than a random inactive one (ties 1/2).
- per_sequence_correlation: Pearson r within each sequence.
- ci_low, ci_high: 95% percentile bootstrap interval of the correlation, resampling whole sequences.

For comparing scorers: `kendall_tau` (tau-b) between two scorings of the same
explanations, and `best_first_ranks` (competition ranks, 1 = best).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from types import ModuleType
from typing import Any

import numpy as np

BOOTSTRAP_SAMPLES = 1000


def _stats() -> ModuleType:
    """scipy.stats, imported on first use: it takes a second or two to import, which
    `import scoring` (the CLI, every test process) should not pay until a metric needs it."""
    from scipy import stats

    return stats


def kendall_tau(first: Sequence[float] | np.ndarray, second: Sequence[float] | np.ndarray) -> float:
    """Kendall's tau-b between two scorings of the same items; NaN counts as the lowest score.

    NaN (undefined) when fewer than two items, or when either scoring ties every item.
    """
    x = np.asarray(first, dtype=float)
    y = np.asarray(second, dtype=float)
    if x.shape != y.shape or x.ndim != 1:
        raise ValueError(f"kendall_tau needs two flat scorings of the same items, got shapes {x.shape} and {y.shape}")
    x = np.where(np.isnan(x), -np.inf, x)
    y = np.where(np.isnan(y), -np.inf, y)
    if x.size < 2 or np.all(x == x[0]) or np.all(y == y[0]):
        return math.nan
    return float(_stats().kendalltau(x, y, variant="b").statistic)


def best_first_ranks(scores: Sequence[float] | np.ndarray) -> list[int | None]:
    """Competition ranks, 1 for the highest score, equal scores sharing a rank (1, 1, 3); None for NaN."""
    values = np.asarray(scores, dtype=float)
    finite = ~np.isnan(values)
    ranks = np.zeros(values.size, dtype=int)
    if finite.any():
        ranks[finite] = _stats().rankdata(-values[finite], method="min")
    return [int(rank) if defined else None for rank, defined in zip(ranks, finite, strict=True)]


def pearson(real: Sequence[float] | np.ndarray, simulated: Sequence[float] | np.ndarray) -> float:
    """Pearson correlation; NaN when fewer than 2 values or either side is constant."""
    x = np.asarray(real, dtype=float)
    y = np.asarray(simulated, dtype=float)
    if x.size < 2 or x.size != y.size:
        return math.nan
    x = x - x.mean()
    y = y - y.mean()
    denominator = math.sqrt(float(np.dot(x, x)) * float(np.dot(y, y)))
    if denominator == 0.0 or not math.isfinite(denominator):
        return math.nan
    return float(np.clip(np.dot(x, y) / denominator, -1.0, 1.0))


def r_squared(real: Sequence[float] | np.ndarray, simulated: Sequence[float] | np.ndarray) -> float:
    x = np.asarray(real, dtype=float)
    y = np.asarray(simulated, dtype=float)
    total = float(np.sum((x - x.mean()) ** 2)) if x.size else 0.0
    if total == 0.0:
        return math.nan
    return 1.0 - float(np.sum((x - y) ** 2)) / total


def absolute_dev_explained(real: Sequence[float] | np.ndarray, simulated: Sequence[float] | np.ndarray) -> float:
    x = np.asarray(real, dtype=float)
    y = np.asarray(simulated, dtype=float)
    total = float(np.sum(np.abs(x - x.mean()))) if x.size else 0.0
    if total == 0.0:
        return math.nan
    return 1.0 - float(np.sum(np.abs(x - y))) / total


def sequence_fit(real: Sequence[float] | np.ndarray, simulated: Sequence[float] | np.ndarray) -> dict[str, float]:
    """How well one sequence's simulation fits: the per-sequence figures neuron-explainer reports."""
    return {
        "correlation": pearson(real, simulated),
        "r_squared": r_squared(real, simulated),
        "absolute_dev_explained": absolute_dev_explained(real, simulated),
    }


def spearman(real: Sequence[float] | np.ndarray, simulated: Sequence[float] | np.ndarray) -> float:
    x = np.asarray(real, dtype=float)
    y = np.asarray(simulated, dtype=float)
    if x.size < 2 or x.size != y.size or np.all(x == x[0]) or np.all(y == y[0]):
        return math.nan
    return float(_stats().spearmanr(x, y).statistic)


def roc_auc(active: Sequence[bool] | np.ndarray, simulated: Sequence[float] | np.ndarray) -> float:
    """Area under the ROC curve of `simulated` separating active from inactive tokens."""
    labels = np.asarray(active, dtype=bool)
    scores = np.asarray(simulated, dtype=float)
    n_pos = int(labels.sum())
    n_neg = int(labels.size - n_pos)
    if n_pos == 0 or n_neg == 0:
        return math.nan
    ranks = _stats().rankdata(scores)
    return float((ranks[labels].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


def bootstrap_interval(
    real_sequences: Sequence[Sequence[float]],
    simulated_sequences: Sequence[Sequence[float]],
    samples: int = BOOTSTRAP_SAMPLES,
    seed: int = 0,
    confidence: float = 0.95,
) -> tuple[float, float]:
    """Percentile bootstrap interval of the all-token correlation, resampling sequences.

    Uses per-sequence sufficient statistics so each resample costs O(sequences).
    """
    n = len(real_sequences)
    if n < 2:
        return math.nan, math.nan
    sums = np.zeros((n, 6))
    for i, (real, simulated) in enumerate(zip(real_sequences, simulated_sequences, strict=True)):
        x = np.asarray(real, dtype=float)
        y = np.asarray(simulated, dtype=float)
        sums[i] = (x.size, x.sum(), y.sum(), (x * x).sum(), (y * y).sum(), (x * y).sum())
    rng = np.random.default_rng(seed)
    picks = rng.integers(0, n, size=(samples, n))
    counts = np.zeros((samples, n))
    np.add.at(counts, (np.repeat(np.arange(samples), n), picks.ravel()), 1.0)
    total = counts @ sums
    count, sx, sy, sxx, syy, sxy = total.T
    with np.errstate(invalid="ignore", divide="ignore"):
        covariance = sxy - sx * sy / count
        variance_x = sxx - sx * sx / count
        variance_y = syy - sy * sy / count
        draws = covariance / np.sqrt(variance_x * variance_y)
    valid = draws[np.isfinite(draws) & (variance_x > 1e-12) & (variance_y > 1e-12)]
    if valid.size < samples // 2:
        return math.nan, math.nan
    tail = (1.0 - confidence) / 2 * 100
    low, high = np.percentile(np.clip(valid, -1, 1), [tail, 100 - tail])
    return float(low), float(high)


def compute_metrics(
    real_sequences: Sequence[Sequence[float]],
    simulated_sequences: Sequence[Sequence[float]],
    seed: int = 0,
    bootstrap_samples: int = BOOTSTRAP_SAMPLES,
) -> dict[str, Any]:
    """Every metric of the module for aligned lists of sequences (all simulations present)."""
    errors: dict[str, str] = {}
    per_sequence = [pearson(r, s) for r, s in zip(real_sequences, simulated_sequences, strict=True)]
    real = np.concatenate([np.asarray(r, dtype=float) for r in real_sequences]) if real_sequences else np.zeros(0)
    simulated = (
        np.concatenate([np.asarray(s, dtype=float) for s in simulated_sequences])
        if simulated_sequences
        else np.zeros(0)
    )
    constant_real = real.size == 0 or bool(np.all(real == real[0]))
    constant_simulated = simulated.size == 0 or bool(np.all(simulated == simulated[0]))
    if constant_real:
        reason = "the real activations are constant (all zero?), so no correlation is defined"
        for name in ("correlation", "r_squared", "absolute_dev_explained", "spearman", "roc_auc"):
            errors[name] = reason
    elif constant_simulated:
        reason = (
            "the simulator predicted the same value for every token, so no correlation is defined "
            "(the explanation matched nothing)"
        )
        for name in ("correlation", "spearman"):
            errors[name] = reason
    metrics: dict[str, Any] = {
        "correlation": pearson(real, simulated),
        "r_squared": r_squared(real, simulated),
        "absolute_dev_explained": absolute_dev_explained(real, simulated),
        "spearman": spearman(real, simulated),
        "roc_auc": roc_auc(real > 0, simulated),
        "per_sequence_correlation": per_sequence,
        "mean_sequence_correlation": _nanmean(per_sequence),
        "n_sequences": len(real_sequences),
        "n_tokens": int(real.size),
    }
    if "roc_auc" not in errors and math.isnan(metrics["roc_auc"]):
        errors["roc_auc"] = "ROC-AUC needs both active (> 0) and inactive tokens"
    if errors.get("correlation"):
        metrics["ci_low"], metrics["ci_high"] = math.nan, math.nan
    else:
        metrics["ci_low"], metrics["ci_high"] = bootstrap_interval(
            real_sequences, simulated_sequences, samples=bootstrap_samples, seed=seed
        )
        if math.isnan(metrics["ci_low"]):
            errors["ci"] = "the bootstrap interval needs at least 2 sequences with varying activations"
    metrics["calibration"] = (
        calibrated_metrics(real_sequences, simulated_sequences, seed=seed)
        if not errors.get("correlation")
        else {"error": errors["correlation"]}
    )
    metrics["metric_errors"] = errors
    return metrics


def _split_metrics(real: np.ndarray, predicted: np.ndarray) -> dict[str, float]:
    return {
        "correlation": pearson(real, predicted),
        "r_squared": r_squared(real, predicted),
        "absolute_dev_explained": absolute_dev_explained(real, predicted),
    }


def calibrated_metrics(
    real_sequences: Sequence[Sequence[float]],
    simulated_sequences: Sequence[Sequence[float]],
    seed: int = 0,
) -> dict[str, Any]:
    """Uncalibrated, linear- and percentile-calibrated metrics on a held-out half.

    Sequences are split (seeded) into a calibration half and a test half, as
    OpenAI's neuron records keep calibration and test records apart. Linear:
    least-squares fit real ~ a * simulated + b on the calibration half.
    Percentile: each test value is mapped to the real activation at the same
    quantile of the calibration half. Correlation is unchanged by a linear map
    with positive slope; r_squared and absolute_dev_explained are what move.
    Needs at least 4 sequences; NaN entries with a reason otherwise.
    """
    n = len(real_sequences)
    if n < 4:
        return {"error": "calibration needs at least 4 sequences (half to fit, half to test)"}
    order = np.random.default_rng(seed).permutation(n)
    calibration, test = order[: n // 2], order[n // 2 :]

    def joined(sequences: Sequence[Sequence[float]], picks: np.ndarray) -> np.ndarray:
        return np.concatenate([np.asarray(sequences[i], dtype=float) for i in picks])

    real_cal, sim_cal = joined(real_sequences, calibration), joined(simulated_sequences, calibration)
    real_test, sim_test = joined(real_sequences, test), joined(simulated_sequences, test)
    result: dict[str, Any] = {
        "calibration_sequences": len(calibration),
        "test_sequences": len(test),
        "uncalibrated": _split_metrics(real_test, sim_test),
    }
    if np.all(sim_cal == sim_cal[0]):
        result["error"] = "the simulation is constant on the calibration half, so no calibration can be fitted"
        return result
    slope, intercept = np.polyfit(sim_cal, real_cal, 1)
    result["linear"] = {**_split_metrics(real_test, slope * sim_test + intercept), "slope": float(slope),
                        "intercept": float(intercept)}
    positions = np.searchsorted(np.sort(sim_cal), sim_test, side="right") / sim_cal.size
    percentile_mapped = np.quantile(real_cal, np.clip(positions, 0.0, 1.0))
    result["percentile"] = _split_metrics(real_test, percentile_mapped)
    return result


def _nanmean(values: Sequence[float]) -> float:
    finite = [value for value in values if math.isfinite(value)]
    return float(sum(finite) / len(finite)) if finite else math.nan


def classification_metrics(labels: Sequence[bool], predicted: Sequence[float], threshold: float) -> dict[str, Any]:
    """ROC-AUC of `predicted` for `labels`, plus balanced accuracy, precision, recall and F1
    counting a prediction >= `threshold` as a "yes". Undefined figures are NaN."""
    positives = [p for p, label in zip(predicted, labels, strict=True) if label]
    negatives = [p for p, label in zip(predicted, labels, strict=True) if not label]
    true_positive = sum(p >= threshold for p in positives)
    false_positive = sum(p >= threshold for p in negatives)
    recall = true_positive / len(positives) if positives else math.nan
    specificity = 1 - false_positive / len(negatives) if negatives else math.nan
    precision = true_positive / (true_positive + false_positive) if true_positive + false_positive else math.nan
    f1 = 2 * precision * recall / (precision + recall) if precision + recall > 0 else math.nan
    return {
        "roc_auc": roc_auc(labels, predicted),
        "balanced_accuracy": (recall + specificity) / 2,
        "precision": precision,
        "recall": recall,
        "f1": f1,
        "positives": len(positives),
        "negatives": len(negatives),
        "threshold": threshold,
    }


def pearson_p_value(r: float, n: int) -> float:
    """Two-sided p-value of a Pearson correlation `r` over `n` pairs under no correlation.

    t = r * sqrt((n - 2) / (1 - r^2)) has Student's t distribution with n - 2
    degrees of freedom, and P(|T| >= |t|) = I_(df / (df + t^2))(df / 2, 1 / 2).
    NaN when r is NaN or n < 3.
    """
    if math.isnan(r) or n < 3:
        return math.nan
    if abs(r) >= 1.0:
        return 0.0
    freedom = n - 2
    t_squared = r * r * freedom / (1.0 - r * r)
    from scipy.special import betainc  # on first use, as scipy.stats (see `_stats`)

    return float(betainc(freedom / 2.0, 0.5, freedom / (freedom + t_squared)))


def holm_bonferroni(pvalues: Sequence[float]) -> list[float]:
    """Holm's step-down adjusted p-values (family-wise error rate), in the input order.

    With the m finite p-values sorted ascending, the i-th (from 1) becomes
    max over j <= i of min(1, (m - j + 1) * p_(j)). NaN stays NaN and does not count in m.
    """
    order, values = _finite_sorted(pvalues)
    adjusted = [math.nan] * len(pvalues)
    running = 0.0
    for rank, (index, value) in enumerate(zip(order, values, strict=True)):
        running = max(running, min(1.0, (len(values) - rank) * value))
        adjusted[index] = running
    return adjusted


def benjamini_hochberg(pvalues: Sequence[float]) -> list[float]:
    """Benjamini-Hochberg adjusted p-values (false discovery rate), in the input order.

    With the m finite p-values sorted ascending, the i-th (from 1) becomes
    min over j >= i of min(1, m * p_(j) / j). NaN stays NaN and does not count in m.
    """
    values = np.asarray(pvalues, dtype=float)
    adjusted = np.full(values.size, math.nan)
    finite = np.isfinite(values)
    if finite.any():
        adjusted[finite] = _stats().false_discovery_control(values[finite], method="bh")
    return [float(value) for value in adjusted]


def _finite_sorted(pvalues: Sequence[float]) -> tuple[list[int], list[float]]:
    finite = [(float(value), index) for index, value in enumerate(pvalues) if math.isfinite(value)]
    finite.sort()
    return [index for _, index in finite], [value for value, _ in finite]
