"""Spot-check pictures: the claims table with its verdicts, and the per-example evidence drawn as tokens."""

from __future__ import annotations

import html
import math
from collections.abc import Sequence
from typing import Any

import pandas as pd

from scoring.protocols.common import Judged
from scoring.spotcheck import ClaimCheck, FeatureCheck, verdict_family
from scoring.viz.tables import numbers_as_text, tint_rows
from scoring.viz.tokens import tokens_html

CLAIM_COLUMNS = ("feature", "explanation", "type", "model", "claimed", "derived", "rescored", "sd", "verdict", "reason")

_VERDICT_STYLES = {
    "contradicts its details": "background-color: rgba(220,53,69,0.3); font-weight: 600",
    "disagrees": "background-color: rgba(220,53,69,0.25); font-weight: 600",
    "disagrees (methods differ)": "background-color: rgba(255,193,7,0.3)",
    "agrees": "background-color: rgba(40,167,69,0.2)",
    "agrees (methods differ)": "background-color: rgba(40,167,69,0.1)",
    "follows from its details": "background-color: rgba(40,167,69,0.15)",
    "details unreadable": "background-color: rgba(255,193,7,0.25)",
    "not a score type": "background-color: rgba(255,193,7,0.2)",
    "unknown score type": "background-color: rgba(255,193,7,0.2)",
}


def claims_frame(checks: Sequence[FeatureCheck]) -> pd.DataFrame:
    """One row per claim of every feature, in order."""
    rows = []
    for feature in checks:
        for claim in feature.claims:
            rescore = claim.rescore
            rows.append(
                {
                    "feature": feature.identity or feature.name,
                    "explanation": claim.explanation,
                    "type": claim.type,
                    "model": claim.model,
                    "claimed": math.nan if claim.claimed is None else claim.claimed,
                    "derived": math.nan if claim.derived is None else claim.derived,
                    "rescored": math.nan if rescore is None else rescore.value,
                    "sd": math.nan if rescore is None else rescore.sd,
                    "verdict": claim.verdict,
                    "reason": claim.reason,
                }
            )
    return pd.DataFrame(rows, columns=list(CLAIM_COLUMNS))


def claims_table(frame: pd.DataFrame) -> Any:
    """`claims_frame` for display: numbers as text; refuted claims red, across methods amber, agreements green."""
    shown = numbers_as_text(frame, ("claimed", "derived", "rescored", "sd"), digits=3)
    return tint_rows(shown, lambda row: _VERDICT_STYLES.get(verdict_family(str(row.get("verdict"))), ""))


def outcome_of(item: Judged) -> str:
    """'right', 'wrong', 'dropped' (a delphi batch left out) or 'failed (counted as no)' (recall_alt)."""
    if item.answer is None:
        return "dropped" if not item.counted else "no answer"
    if item.failed:
        return "failed (counted as no)"
    return "right" if item.correct else "wrong"


EVIDENCE_COLUMNS = ("example", "group", "text", "expected", "answer", "outcome", "batch", "runs wrong", "reason")


def evidence_frame(judged: Sequence[Judged]) -> pd.DataFrame:
    """One row per example (its runs folded together): what the judge should have said, what it said."""
    order: list[int] = []
    by_example: dict[int, list[Judged]] = {}
    for item in judged:
        key = id(item.example)
        if key not in by_example:
            order.append(key)
            by_example[key] = []
        by_example[key].append(item)
    rows = []
    for number, key in enumerate(order):
        items = by_example[key]
        first = items[0]
        answers = [item.answer for item in items]
        wrong = sum(item.correct is False for item in items)
        outcomes = sorted({outcome_of(item) for item in items})
        rows.append(
            {
                "example": number,
                "group": first.example.group,
                "text": first.example.text,
                "expected": "yes" if first.example.expected else "no",
                "answer": ", ".join("—" if answer is None else ("yes" if answer else "no") for answer in answers),
                "outcome": outcomes[0] if len(outcomes) == 1 else "mixed",
                "batch": "" if first.batch is None else str(first.batch),
                "runs wrong": f"{wrong} of {len(items)}",
                "reason": next((item.reason for item in items if item.reason), ""),
            }
        )
    return pd.DataFrame(rows, columns=list(EVIDENCE_COLUMNS))


_OUTCOME_STYLES = {
    "right": "background-color: rgba(40,167,69,0.12)",
    "wrong": "background-color: rgba(220,53,69,0.2)",
    "mixed": "background-color: rgba(255,193,7,0.25)",
    "dropped": "background-color: rgba(150,150,150,0.2)",
    "failed (counted as no)": "background-color: rgba(150,150,150,0.2)",
}


def evidence_table(frame: pd.DataFrame) -> Any:
    return tint_rows(frame, lambda row: _OUTCOME_STYLES.get(str(row.get("outcome")), ""))


def where_it_fails(judged: Sequence[Judged]) -> list[Judged]:
    """The examples judged wrongly in any run, or failed, once each (first occurrence), in order."""
    seen: set[int] = set()
    chosen = []
    for item in judged:
        key = id(item.example)
        if key in seen:
            continue
        related = [other for other in judged if other.example is item.example]
        if any(other.correct is False or other.failed for other in related):
            seen.add(key)
            chosen.append(item)
    return chosen


def evidence_html(judged: Sequence[Judged], limit: int = 40) -> str:
    """The examples where the explanation fails, each drawn as tokens coloured by activation, highlighted
    (outlined) tokens as the judge saw them marked, under a line saying what was expected and answered."""
    failing = where_it_fails(judged)
    if not failing:
        return "<p>Every example was judged right.</p>"
    parts = []
    for item in failing[:limit]:
        runs = [other for other in judged if other.example is item.example]
        wrong = sum(other.correct is False for other in runs)
        example = item.example
        said = ", ".join("—" if other.answer is None else ("yes" if other.answer else "no") for other in runs)
        where = f"batch {item.batch} · " if item.batch is not None else ""
        head = (
            f"{example.group} · {where}expected {'yes' if example.expected else 'no'} · judged {said}"
            + (f" · wrong in {wrong} of {len(runs)} runs" if len(runs) > 1 else "")
            + (f" · {item.reason}" if item.reason else "")
        )
        values = example.values if len(example.values) == len(example.tokens) else None
        peak = max((abs(value) for value in values), default=0.0) if values else 0.0
        parts.append(
            f"<div class='cmpseq' data-outcome='{html.escape(outcome_of(item))}'>{html.escape(head)}</div>"
            + tokens_html(example.tokens, values, vmax=peak or 10.0, outlined=example.marked, scroll=True)
        )
    if len(failing) > limit:
        parts.append(f"<p>… and {len(failing) - limit} more.</p>")
    return "".join(parts)


def claim_evidence(claim: ClaimCheck) -> dict[str, list[Judged]]:
    """The judgments behind a claim: 'stored' (from its details) and 're-score' (every run), when present."""
    found: dict[str, list[Judged]] = {}
    if claim.derivation is not None and claim.derivation.judged:
        found["stored"] = list(claim.derivation.judged)
    if claim.rescore is not None and claim.rescore.outcome is not None:
        judged = [item for run in claim.rescore.outcome.runs for item in run.judged]
        if judged:
            found["re-score"] = judged
    return found


def evidence_summary(judged: Sequence[Judged]) -> str:
    """'3 of 30 examples judged wrong (2 top, 1 decoy); 1 batch dropped' for one set of judgments."""
    wrong = where_it_fails(judged)
    groups: dict[str, int] = {}
    for item in wrong:
        groups[item.example.group] = groups.get(item.example.group, 0) + 1
    examples = len({id(item.example) for item in judged})
    text = f"{len(wrong)} of {examples} examples judged wrong or failed"
    if groups:
        text += " (" + ", ".join(f"{count} {group}" for group, count in groups.items()) + ")"
    dropped = sorted({(item.run, item.batch) for item in judged if not item.counted and item.batch is not None})
    if dropped:
        text += f"; {len(dropped)} batch{'es' if len(dropped) != 1 else ''} dropped"
    return text
