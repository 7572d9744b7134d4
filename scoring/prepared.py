"""Records prepared once at the boundary: validated, sampled and normalised, then trusted by every inner layer.

`prepare_records` is the only way to make a `PreparedRecords`: it reads and validates the input with
`load_records` (every format it reads, the same errors), checks the limits, chooses the sequences to score
(`sample_records`) and scales their real activations to 0..10 (`normalize`). The public functions take raw
records or a `PreparedRecords`; given one, they use it as it is, so ranking E explanations with S scorers
validates the records once, not once per scorer and explanation. Asked for another sampling or
normalisation, they choose again from its records without validating them again.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, overload

from scoring.records import DEFAULT_LIMITS, ActivationRecord, Limits, check_limits, load_records, normalize
from scoring.sampling import sample_records

SELECTION_OPTIONS = ("sampling", "n_sequences", "seed", "normalization")
"""The scoring options that decide which sequences are scored and how their activations are scaled."""

_MADE_BY_PREPARE = object()


@dataclass(frozen=True)
class PreparedRecords(Sequence[ActivationRecord]):
    """Activation records validated once, with the sequences a score uses and their scaled activations.

    Made by `prepare_records` only (constructing one directly raises TypeError), so whoever holds one may
    trust it without checking again. Iterating, indexing and ``len`` give every record, chosen or not.
    """

    records: tuple[ActivationRecord, ...]
    """Every record read, validated, in input order (copies: the caller's objects are not kept)."""
    limits: Limits
    """The limits the records were checked against."""
    sampling: str
    """The sampling strategy that chose `indices` (`scoring.sampling.STRATEGIES`)."""
    n_sequences: int | None
    """How many sequences the strategy was asked for (None: all)."""
    seed: int
    """The seed of the sampling."""
    normalization: str
    """How `real` is scaled (`scoring.records.NORMALIZATIONS`)."""
    indices: tuple[int, ...]
    """Positions in `records` of the chosen sequences, in scoring order."""
    real: tuple[tuple[float, ...], ...]
    """The chosen sequences' real activations on the 0..10 scale, one tuple per entry of `indices`."""
    _made_by: object = field(default=None, repr=False, compare=False)
    """Proof of origin, set by `prepare_records` alone."""

    def __post_init__(self) -> None:
        if self._made_by is not _MADE_BY_PREPARE:
            raise TypeError("PreparedRecords are made by scoring.prepare_records(source, ...), which validates them")

    @property
    def chosen(self) -> tuple[ActivationRecord, ...]:
        """The records at `indices`, in scoring order."""
        return tuple(self.records[index] for index in self.indices)

    def sampling_summary(self) -> dict[str, object]:
        """How the sequences were chosen, as a result's ``sampling`` reports it."""
        return {"strategy": self.sampling, "n": self.n_sequences, "seed": self.seed, "indices": list(self.indices)}

    def __len__(self) -> int:
        return len(self.records)

    def __iter__(self) -> Iterator[ActivationRecord]:
        return iter(self.records)

    @overload
    def __getitem__(self, position: int) -> ActivationRecord: ...

    @overload
    def __getitem__(self, position: slice) -> tuple[ActivationRecord, ...]: ...

    def __getitem__(self, position: int | slice) -> ActivationRecord | tuple[ActivationRecord, ...]:
        return self.records[position]


def prepare_records(
    source: PreparedRecords | str | Path | dict[str, Any] | list[Any] | Sequence[ActivationRecord],
    *,
    limits: Limits | None = None,
    allowed_dirs: Sequence[str | Path] | None = None,
    sampling: str = "all",
    n_sequences: int | None = None,
    seed: int = 0,
    normalization: str = "global",
) -> PreparedRecords:
    """Read and validate records once (anything `load_records` reads), choose the sequences to score and scale
    their activations; raises ScoringInputError saying what to fix.

    Given a `PreparedRecords`, nothing is validated again: it comes back as it is when the options match, or
    with the sequences chosen again (from its trusted records) when they differ. Its count and lengths are
    checked against `limits` when another limit is given; None keeps the limits it was prepared with.
    ``allowed_dirs``: as for `load_records`.
    """
    if isinstance(source, PreparedRecords):
        if limits is not None and limits != source.limits:
            check_limits(source.records, limits, "sequences")
        else:
            limits = source.limits
        if (limits, sampling, n_sequences, seed, normalization) == (
            source.limits,
            source.sampling,
            source.n_sequences,
            source.seed,
            source.normalization,
        ):
            return source
        records = source.records
    else:
        limits = limits or DEFAULT_LIMITS
        records = tuple(load_records(source, limits=limits, allowed_dirs=allowed_dirs))
    indices = sample_records(records, sampling, n_sequences, seed)
    scaled = normalize(records, normalization)
    return PreparedRecords(
        records=records,
        limits=limits,
        sampling=sampling,
        n_sequences=n_sequences,
        seed=seed,
        normalization=normalization,
        indices=tuple(indices),
        real=tuple(tuple(scaled[index]) for index in indices),
        _made_by=_MADE_BY_PREPARE,
    )


def selection_options(options: dict[str, Any]) -> dict[str, Any]:
    """The entries of a call's scoring `options` that `prepare_records` takes (`SELECTION_OPTIONS`)."""
    return {name: options[name] for name in SELECTION_OPTIONS if name in options}
