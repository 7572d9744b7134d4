"""Choosing which sequences a score uses.

Every strategy returns indices into the records, is seeded, and returns the
same indices for the same records, strategy, n and seed.

- all: every sequence, in order.
- top: the n sequences with the highest max activation (the Neuronpedia default).
- top+random: half the n from the top, the rest drawn at random from the others
  (as OpenAI's explanation scoring mixes top-activating and random records).
- quantile: sequences split into equal-size strata by max activation, the same
  number drawn from each stratum (covers weak as well as strong activations).
- diverse: top sequences, preferring ones whose max-activating token has not
  been seen yet, so one repeated token does not fill the whole sample.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np

from scoring.errors import ScoringInputError
from scoring.records import ActivationRecord

SamplingFunction = Callable[[Sequence[ActivationRecord], int, np.random.Generator], list[int]]

QUANTILE_STRATA = 5


def _by_max_descending(records: Sequence[ActivationRecord]) -> list[int]:
    # Stable: ties keep input order, so results are reproducible.
    return sorted(range(len(records)), key=lambda i: -records[i].max_activation)


def _all(records: Sequence[ActivationRecord], n: int, rng: np.random.Generator) -> list[int]:
    return list(range(min(n, len(records))))


def _top(records: Sequence[ActivationRecord], n: int, rng: np.random.Generator) -> list[int]:
    return _by_max_descending(records)[:n]


def _top_random(records: Sequence[ActivationRecord], n: int, rng: np.random.Generator) -> list[int]:
    n_top = (n + 1) // 2
    ordered = _by_max_descending(records)
    chosen = ordered[:n_top]
    rest = ordered[n_top:]
    n_random = min(n - len(chosen), len(rest))
    if n_random > 0:
        picks = rng.choice(len(rest), size=n_random, replace=False)
        chosen += [rest[int(i)] for i in sorted(picks)]
    return chosen


def _quantile(records: Sequence[ActivationRecord], n: int, rng: np.random.Generator) -> list[int]:
    ordered = _by_max_descending(records)
    strata = [list(part) for part in np.array_split(np.array(ordered), min(QUANTILE_STRATA, len(ordered)))]
    per_stratum = [len(part) for part in np.array_split(np.arange(n), len(strata))]
    chosen: list[int] = []
    leftovers: list[int] = []
    for stratum, want in zip(strata, per_stratum, strict=True):
        take = min(want, len(stratum))
        picks = set(int(i) for i in rng.choice(len(stratum), size=take, replace=False)) if take else set()
        chosen += [int(stratum[i]) for i in sorted(picks)]
        leftovers += [int(stratum[i]) for i in range(len(stratum)) if i not in picks]
    if len(chosen) < n and leftovers:
        extra = rng.choice(len(leftovers), size=min(n - len(chosen), len(leftovers)), replace=False)
        chosen += [leftovers[int(i)] for i in sorted(extra)]
    return chosen


def _top_token(record: ActivationRecord) -> str:
    if not record.activations:
        return ""
    position = int(np.argmax(record.activations))
    return record.tokens[position].strip().lower()


def _diverse(records: Sequence[ActivationRecord], n: int, rng: np.random.Generator) -> list[int]:
    ordered = _by_max_descending(records)
    seen: set[str] = set()
    chosen: list[int] = []
    repeats: list[int] = []
    for index in ordered:
        token = _top_token(records[index])
        if token in seen:
            repeats.append(index)
            continue
        seen.add(token)
        chosen.append(index)
        if len(chosen) == n:
            return chosen
    return chosen + repeats[: n - len(chosen)]


STRATEGIES: dict[str, SamplingFunction] = {
    "all": _all,
    "top": _top,
    "top+random": _top_random,
    "quantile": _quantile,
    "diverse": _diverse,
}


MAX_SEED = 2**63 - 1


def check_seed(seed: object) -> int:
    """`seed` when it is a whole number numpy can seed with (0..2**63-1), else ScoringInputError."""
    if isinstance(seed, bool) or not isinstance(seed, int) or not 0 <= seed <= MAX_SEED:
        raise ScoringInputError(f"seed must be a whole number from 0 to {MAX_SEED}, got {seed!r}")
    return seed


def seed_argument(text: str) -> int:
    """An argparse type for ``--seed``: a whole number from 0 to `MAX_SEED` (argparse exits 2 otherwise)."""
    import argparse

    try:
        return check_seed(int(text))
    except (ValueError, ScoringInputError):
        raise argparse.ArgumentTypeError(f"must be a whole number from 0 to {MAX_SEED}, got {text!r}") from None


def sample_records(
    records: Sequence[ActivationRecord], strategy: str = "all", n: int | None = None, seed: int = 0
) -> list[int]:
    """Indices of the records to score (at most n; all of them when n is None)."""
    if strategy not in STRATEGIES:
        raise ScoringInputError(f"unknown sampling {strategy!r}; choose one of: {', '.join(STRATEGIES)}")
    if n is not None and (isinstance(n, bool) or not isinstance(n, int) or n < 1):
        raise ScoringInputError(f"number of sequences must be a positive whole number, got {n!r}")
    check_seed(seed)
    count = len(records) if n is None else min(n, len(records))
    rng = np.random.default_rng(seed)
    return STRATEGIES[strategy](records, count, rng)
