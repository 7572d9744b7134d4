"""The embedded `local` model as the offline judge of the protocols (loads the model: marked `model`)."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from scoring.protocols.neuronpedia import read_feature
from scoring.spotcheck import spot_check

pytestmark = pytest.mark.model

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "neuronpedia_spot_check.json"


def test_local_rescores_the_first_explanations_claims_with_replies_in_the_protocols_layout() -> None:
    data = json.loads(EXAMPLE.read_text(encoding="utf-8"))
    data["explanations"] = data["explanations"][:1]  # coffee: recall_alt, eleuther_fuzz, eleuther_embedding
    check = spot_check(read_feature(data, "example"), rescore=True, judge="local", runs=2, cache=False)
    by_type = {claim.type: claim for claim in check.claims}
    recall = by_type["recall_alt"].rescore
    assert recall is not None and recall.error is None and 0 <= recall.value <= 1
    assert recall.outcome is not None
    judged = recall.outcome.runs[0].judged
    assert len(judged) == 30 and not any(item.failed for item in judged)  # every reply is {"match": ...}
    fuzz = by_type["eleuther_fuzz"].rescore
    assert fuzz is not None and fuzz.runs == 2 and fuzz.error is None and 0 <= fuzz.value <= 1
    assert fuzz.outcome is not None
    dropped = [item for run in fuzz.outcome.runs for item in run.judged if not item.counted]
    assert not dropped  # the list is written for the model, five entries, so no batch is lost to its layout
    assert all(math.isfinite(value) for value in fuzz.outcome.values)
    assert "local" in recall.judge and by_type["recall_alt"].verdict.endswith("(methods differ: model)")
