"""Bad `local` specs are refused with what to fix, before any model loads (so no `model` marker)."""

from __future__ import annotations

import re

import pytest

from scoring.errors import ScoringInputError
from scoring.simulators import get_simulator

FLOOR_RANGE = "a floor (log-probability in nats, e.g. -5, between -100 and 0) applies to method=pointer"


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("local:method=guess", "unknown local method 'guess'; choose one of: "),
        ("local:model=nothing", "unknown local model 'nothing'; choose one of: gemma-3-270m"),
        ("local:speed=fast", "unknown local simulator option(s) ['speed']; use model=..., method=..."),
        ("local:threads=two", "threads must be a positive integer, got 'two'"),
        ("local-large:speed=fast", "unknown local simulator option(s) ['speed']"),
        ("local:model=gemma-3-270m&method=pointer-chat", "pointer-chat writes ChatML turns, which gemma-3-270m"),
        ("local:floor=five", "floor must be a negative number of nats (e.g. floor=-5), got 'five'"),
        ("local:floor=5", f"floor=5.0: {FLOOR_RANGE}"),
        ("local:floor=nan", f"floor=nan: {FLOOR_RANGE}"),
        ("local:floor=-500", f"floor=-500.0: {FLOOR_RANGE}"),
        ("local:method=contrastive&floor=-5", f"floor=-5.0: {FLOOR_RANGE}"),
        ("local:model=gemma-3-270m&method=list-chat", "list-chat writes ChatML turns, which gemma-3-270m"),
    ],
)
def test_bad_specs_say_what_to_fix(spec: str, message: str) -> None:
    with pytest.raises(ScoringInputError, match=re.escape(message)):
        get_simulator(spec)
