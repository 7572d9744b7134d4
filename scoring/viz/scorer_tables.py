"""How detection, fuzzing and the judge scorers judged: per-sequence verdicts, tokens and questions."""

from __future__ import annotations

import math
from typing import Any

import pandas as pd

from scoring.results import ScoreResult
from scoring.shared_types import ACTIVE_THRESHOLD, DECISION_THRESHOLD, JUDGE_THRESHOLD
from scoring.viz.tables import numbers_as_text, tint_rows
from scoring.viz.tokens import sequence_label


def _is_positive(prediction: Any, threshold: float) -> bool:
    if isinstance(prediction, bool):
        return prediction
    return math.isfinite(float(prediction)) and float(prediction) >= threshold


def detection_frame(result: ScoreResult) -> pd.DataFrame:
    """Per sequence: activating or not (real max >= ACTIVE_THRESHOLD), the prediction, and the verdict.

    The prediction is ``metrics["sequence_predictions"]`` when the scorer
    recorded it (one per sequence, in order), else the sequence's highest
    simulated activation; "fires" means at or above ``metrics["threshold"]``
    (default DECISION_THRESHOLD). Outcomes: hit, miss, false alarm, correct
    rejection, or "not simulated" ("not judged" for a judge scorer). For
    detection-judge the prediction is the judge's P(yes) and the threshold 0.5.
    When the scorer recorded ``metrics["sequence_applies"]`` with at least one
    value (the simulator's chance that the explanation applies to each text,
    which `detection` multiplies into its prediction), an ``applies`` column
    shows them (NaN where the simulator gave none).
    """
    threshold = float(result.metrics.get("threshold", DECISION_THRESHOLD))
    recorded = result.metrics.get("sequence_predictions")
    if not isinstance(recorded, list) or len(recorded) != len(result.sequences):
        recorded = None
    chances = result.metrics.get("sequence_applies")
    if (
        not isinstance(chances, list)
        or len(chances) != len(result.sequences)
        or all(chance is None for chance in chances)
    ):
        chances = None
    rows = []
    for position, sequence in enumerate(result.sequences):
        real_max = max(sequence.real, default=0.0)
        activating = real_max >= ACTIVE_THRESHOLD
        prediction: Any
        if recorded is not None:
            prediction = recorded[position]
        elif sequence.simulated:
            prediction = max(sequence.simulated)
        else:
            prediction = None
        if prediction is None:
            judged, outcome = "n/a", "not judged" if result.judgments else "not simulated"
        else:
            fires = _is_positive(prediction, threshold)
            judged = "fires" if fires else "silent"
            outcome = {
                (True, True): "hit",
                (True, False): "miss",
                (False, True): "false alarm",
                (False, False): "correct rejection",
            }[(activating, fires)]
        rows.append(
            {
                "sequence": sequence_label(sequence.tokens, sequence.index),
                "real_max": real_max,
                "activating": "yes" if activating else "no",
                "prediction": math.nan if prediction is None else float(prediction),
                "judged": judged,
                "outcome": outcome,
            }
        )
        if chances is not None:
            chance = chances[position]
            rows[-1]["applies"] = math.nan if chance is None else float(chance)
    return pd.DataFrame(rows)


_OUTCOME_STYLES = {
    "hit": "background-color: rgba(40,167,69,0.2)",
    "correct rejection": "background-color: rgba(40,167,69,0.1)",
    "miss": "background-color: rgba(220,53,69,0.2)",
    "false alarm": "background-color: rgba(220,53,69,0.2)",
}


def detection_table(result: ScoreResult) -> Any:
    """`detection_frame` for display: numbers as text, right verdicts green, wrong ones red."""
    shown = numbers_as_text(detection_frame(result), ("real_max", "prediction", "applies"), digits=2)
    return tint_rows(shown, lambda row: _OUTCOME_STYLES.get(str(row.get("outcome")), ""))


def fuzzing_frame(result: ScoreResult) -> pd.DataFrame:
    """Per activating sequence that also has inactive tokens: the simulation on the active vs the other tokens.

    A token is active at real >= ACTIVE_THRESHOLD. ``right_higher`` says whether
    the active tokens get a higher mean simulated activation than the inactive
    ones: a summary per sequence. The fuzzing scorer itself compares spans
    (`scoring.simulated.span_markings`): runs of tokens at >= 0.3 x the
    sequence's max against every run of as many inactive tokens, in this text
    and in the non-activating ones.
    """
    rows = []
    for sequence in result.sequences:
        active = [i for i, value in enumerate(sequence.real) if value >= ACTIVE_THRESHOLD]
        inactive = [i for i, value in enumerate(sequence.real) if value < ACTIVE_THRESHOLD]
        if not active or not inactive:
            continue
        simulated = sequence.simulated
        active_mean = sum(simulated[i] for i in active) / len(active) if simulated else math.nan
        inactive_mean = sum(simulated[i] for i in inactive) / len(inactive) if simulated else math.nan
        if not simulated:
            verdict = "not simulated"
        elif active_mean > inactive_mean:
            verdict = "yes"
        elif active_mean < inactive_mean:
            verdict = "no"
        else:
            verdict = "tie"
        rows.append(
            {
                "sequence": sequence_label(sequence.tokens, sequence.index),
                "active_tokens": ", ".join(sequence.tokens[i].strip() or repr(sequence.tokens[i]) for i in active),
                "active_mean": active_mean,
                "inactive_mean": inactive_mean,
                "right_higher": verdict,
            }
        )
    return pd.DataFrame(rows, columns=["sequence", "active_tokens", "active_mean", "inactive_mean", "right_higher"])


JUDGMENT_COLUMNS = ("sequence", "text", "target", "expected", "p_yes", "answer", "outcome")


def judgments_frame(result: ScoreResult) -> pd.DataFrame:
    """One row per question a judge scorer asked (`result.judgments`), in the order asked.

    ``text`` is what the judge was shown (marked tokens in << >>); ``target``
    what a perfect judge follows (1 or 0, or for binary-condition the window's
    highest real activation); ``expected`` the right answer ("yes" for target 1,
    or for binary-condition a window with an active token); ``answer`` the
    judge's, "yes" at P(yes) >= ``metrics["threshold"]`` (0.5); ``outcome``
    "right", "wrong", or the reason there is no answer. Empty (with these
    columns) for a scorer that asked nothing.
    """
    threshold = float(result.metrics.get("threshold", JUDGE_THRESHOLD))
    graded = result.scorer == "binary-condition"
    tokens_at = {sequence.index: sequence.tokens for sequence in result.sequences}
    rows = []
    for judgment in result.judgments:
        tokens = tokens_at.get(judgment.index)
        label = sequence_label(tokens, judgment.index) if tokens is not None else f"#{judgment.index}"
        expected = judgment.target >= (ACTIVE_THRESHOLD if graded else 0.5)
        if judgment.p_yes is None:
            answer, outcome = "n/a", f"no answer: {judgment.error or 'not judged'}"
        else:
            said_yes = judgment.p_yes >= threshold
            answer = "yes" if said_yes else "no"
            outcome = "right" if said_yes == expected else "wrong"
        rows.append(
            {
                "sequence": label,
                "text": judgment.content,
                "target": judgment.target,
                "expected": "yes" if expected else "no",
                "p_yes": math.nan if judgment.p_yes is None else judgment.p_yes,
                "answer": answer,
                "outcome": outcome,
            }
        )
    return pd.DataFrame(rows, columns=list(JUDGMENT_COLUMNS))


_JUDGMENT_STYLES = {
    "right": "background-color: rgba(40,167,69,0.15)",
    "wrong": "background-color: rgba(220,53,69,0.2)",
}


def judgments_table(result: ScoreResult) -> Any:
    """`judgments_frame` for display: numbers as text, right answers green, wrong ones red."""
    shown = numbers_as_text(numbers_as_text(judgments_frame(result), ("target",), digits=2), ("p_yes",), digits=3)
    return tint_rows(shown, lambda row: _JUDGMENT_STYLES.get(str(row.get("outcome")), ""))
