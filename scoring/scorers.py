"""Every scoring method, registered by name in one table (`SCORER_TABLE`).

``simulation``, ``detection`` and ``fuzzing`` simulate activations
(`scoring.simulated`); ``detection-judge``, ``fuzzing-judge``,
``binary-condition`` and ``attention-head`` ask a judge yes/no questions
(`scoring.judged`); ``recall-alt``, ``eleuther-fuzz``, ``eleuther-recall``,
``eleuther-embedding`` (Neuronpedia's score types) and ``saebench`` reproduce other
tools' protocols (`scoring.protocols`). A new scorer is an async function of a `ScoringJob`
returning a `ScoreResult`, added as a row of the table.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from scoring import judged, simulated
from scoring.errors import ScoringInputError
from scoring.job import Scorer, ScoringJob, new_result, simulator_id
from scoring.protocols import scorers as protocols
from scoring.shared_types import ACTIVE_THRESHOLD, DECISION_THRESHOLD
from scoring.simulated import fuzzing_markings

__all__ = [
    "ACTIVE_THRESHOLD",
    "ATTENTION_SCORERS",
    "DECISION_THRESHOLD",
    "JUDGE_SCORERS",
    "P_VALUE_SCORERS",
    "SCORERS",
    "SCORER_OPTIONS",
    "SCORER_TABLE",
    "Scorer",
    "ScorerEntry",
    "ScoringJob",
    "check_scorer_options",
    "index_scorers",
    "fuzzing_markings",
    "new_result",
    "simulator_id",
]


@dataclass(frozen=True)
class ScorerEntry:
    """One registered scoring method."""

    name: str
    """What `score_explanation(scorer=...)`, ``--scorer`` and the server's ``scorer`` take."""
    scorer: Scorer
    options: tuple[str, ...] = ()
    """The `scorer_options` names it accepts."""
    reads_attention: bool = False
    """It scores attention records (`score_attention_explanation`) instead of activation records."""
    asks_judge: bool = False
    """Its results carry `judgments` (questions and P(yes)) and no simulated activations."""
    reports_p_value: bool = False
    """Its metrics hold a ``p_value``, corrected when several explanations are tested."""
    summary: str = ""
    """One line for people: what the score measures (``scoring list`` shows it)."""


SCORER_TABLE: tuple[ScorerEntry, ...] = (
    ScorerEntry(
        "simulation",
        simulated.simulation_scorer,
        summary="correlation of simulated and real activations over all tokens (the headline score)",
    ),
    ScorerEntry(
        "detection",
        simulated.detection_scorer,
        summary="correlation of each text's predicted chance of firing with whether it fires: which texts fire?",
    ),
    ScorerEntry(
        "fuzzing",
        simulated.fuzzing_scorer,
        summary="ROC-AUC: does the simulation put its activity on the right tokens?",
    ),
    ScorerEntry(
        "detection-judge",
        judged.detection_judge_scorer,
        asks_judge=True,
        summary="detection, asked of a judge as yes/no questions",
    ),
    ScorerEntry(
        "fuzzing-judge",
        judged.fuzzing_judge_scorer,
        asks_judge=True,
        summary="fuzzing, asked of a judge as yes/no questions about marked tokens",
    ),
    ScorerEntry(
        "binary-condition",
        judged.binary_condition_scorer,
        options=("window",),
        asks_judge=True,
        reports_p_value=True,
        summary="does the explanation's condition hold in each text or window? (correlation, p-value)",
    ),
    ScorerEntry(
        "attention-head",
        judged.attention_head_scorer,
        reads_attention=True,
        asks_judge=True,
        summary="explanations of attention heads, on attention records (`scoring attention`)",
    ),
    ScorerEntry(
        "recall-alt",
        protocols.recall_alt_scorer,
        options=("prompt",),
        asks_judge=True,
        summary="Neuronpedia's recall_alt: a judge picks the texts the explanation fits (AUC-like, as stored)",
    ),
    ScorerEntry(
        "eleuther-fuzz",
        protocols.eleuther_fuzz_scorer,
        options=("runs", "prompt"),
        asks_judge=True,
        summary="EleutherAI's fuzz protocol: a judge says whether marked tokens fit (balanced accuracy)",
    ),
    ScorerEntry(
        "eleuther-recall",
        protocols.eleuther_recall_scorer,
        options=("runs", "prompt"),
        asks_judge=True,
        summary="EleutherAI's detection protocol: a judge says whether each text activates (balanced accuracy)",
    ),
    ScorerEntry(
        "eleuther-embedding",
        protocols.eleuther_embedding_scorer,
        summary="EleutherAI's embedding protocol: does the explanation embed nearer activating texts? (AUC)",
    ),
    ScorerEntry(
        "saebench",
        protocols.saebench_scorer,
        options=("runs", "prompt"),
        asks_judge=True,
        summary="SAEBench's autointerp: a judge picks the activating texts from a shuffled set (accuracy)",
    ),
)


def index_scorers(entries: Sequence[ScorerEntry]) -> dict[str, ScorerEntry]:
    """The entries by name, in order; raises ValueError when two share a name."""
    table: dict[str, ScorerEntry] = {}
    for entry in entries:
        if entry.name in table:
            raise ValueError(f"two scorers are named {entry.name!r}")
        table[entry.name] = entry
    return table


_ENTRIES = index_scorers(SCORER_TABLE)

SCORERS: dict[str, Scorer] = {name: entry.scorer for name, entry in _ENTRIES.items()}
"""Registered scorer names (`scoring.SCORERS`), in the order of the table."""

SCORER_OPTIONS: dict[str, tuple[str, ...]] = {name: entry.options for name, entry in _ENTRIES.items()}
"""The option names each scorer accepts (`scorer_options=` of the API)."""

ATTENTION_SCORERS: frozenset[str] = frozenset(name for name, entry in _ENTRIES.items() if entry.reads_attention)
"""Scorers that read attention records (`score_attention_explanation`) instead of activation records."""

JUDGE_SCORERS: tuple[str, ...] = tuple(name for name, entry in _ENTRIES.items() if entry.asks_judge)
"""Scorers whose results carry `judgments` and no simulated activations."""

P_VALUE_SCORERS: tuple[str, ...] = tuple(name for name, entry in _ENTRIES.items() if entry.reports_p_value)
"""Scorers whose metrics hold a ``p_value``, to be corrected when several explanations are tested."""


def check_scorer_options(name: str, options: dict[str, Any] | None) -> dict[str, Any]:
    """A copy of `options` when `name` accepts every key; raises ScoringInputError otherwise."""
    if options is None:
        return {}
    if not isinstance(options, dict):
        raise ScoringInputError(f"scorer_options must be a dict, got {type(options).__name__}")
    unknown = sorted(set(options) - set(SCORER_OPTIONS.get(name, ())))
    if unknown:
        accepted = ", ".join(SCORER_OPTIONS.get(name, ())) or "none"
        raise ScoringInputError(f"the {name} scorer has no option {', '.join(unknown)}; its options: {accepted}")
    return dict(options)
