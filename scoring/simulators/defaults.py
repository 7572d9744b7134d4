"""Which simulator is used when none is given, and why: the user's choice first, else the built-in one.

Two defaults: the simulator of simulation scores, and the judge (judge
scorers, attention heads, written explanations), which must be a model that
answers yes/no questions and writes. Each is, in order:

1. the environment variable (``SCORING_SIMULATOR``, ``SCORING_JUDGE``);
2. the key in the user's settings file (``simulator``, ``judge``; see `scoring.userconfig`);
3. the built-in choice: `default_simulator` (by benchmark, for this hardware) or `DEFAULT_JUDGE`.
"""

from __future__ import annotations

from dataclasses import dataclass

from scoring import userconfig
from scoring.simulators import DEFAULT_JUDGE, default_simulator

_JUDGE_REASON = (
    "The default judge is `local`: judge scorers, attention heads and written explanations need a model that "
    "answers yes/no questions and writes text, which the `embedding` and `lexical` baselines cannot; `local` is "
    "the one that runs offline with no key."
)


@dataclass(frozen=True)
class DefaultChoice:
    """The spec used when none is given, where it comes from and why."""

    spec: str
    source: str
    """``environment``, ``settings file`` or ``built-in``."""
    reason: str
    """One or more sentences for people: who chose it and on what grounds."""


def default_choice(judge: bool = False) -> DefaultChoice:
    """The default simulator (with `judge`, the default judge): the user's choice, else the built-in one.

    Raises ScoringInputError when the user's settings file is unusable.
    """
    key = "judge" if judge else "simulator"
    chosen = userconfig.configured(key)
    if chosen is not None:
        spec, where = chosen
        source = "environment" if where.startswith("the environment") else "settings file"
        return DefaultChoice(spec, source, f"The default {key} `{spec}` is set by {where}.")
    if judge:
        return DefaultChoice(DEFAULT_JUDGE, "built-in", _JUDGE_REASON)
    spec, reason = default_simulator()
    return DefaultChoice(spec, "built-in", reason)
