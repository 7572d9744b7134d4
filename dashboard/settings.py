"""The scoring settings form (scorers, sampling, normalization, cache, time limit) and staleness checks."""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Sequence
from typing import Any

import streamlit as st

from dashboard.inputs import LoadedInput
from dashboard.sidebar import DEFAULT_TIME_LIMIT_SECONDS, load_simulator, simulator_select
from scoring import (
    ATTENTION_SCORERS,
    NORMALIZATIONS,
    SAMPLING_STRATEGIES,
    SCORERS,
    ActivationRecord,
    ScoringInputError,
    estimate_api_usage,
)

logger = logging.getLogger(__name__)

NORMALIZATION_HELP = (
    "How real activations are put on the 0..10 scale the simulator predicts. "
    "global: negative values become 0, then everything is divided by the largest activation over all "
    "sequences (OpenAI, original Neuronpedia scorer). per_record: each sequence divided by its own max. "
    "none: raw values. Correlation does not change under one global scale, so global and none differ "
    "only when activations are negative."
)

SAMPLING_HELP = (
    "Which sequences enter the score. all: every sequence in order; top: the n with the highest max "
    "activation; top+random: half top, half random; quantile: the same number from each activation "
    "stratum; diverse: top sequences whose strongest token differs."
)

SCORERS_HELP = (
    "How an explanation is judged. simulation: correlation of simulated and real activations. detection: "
    "does the simulation tell activating sequences from the others. fuzzing: does it put its activity on "
    "the right tokens. detection-judge, fuzzing-judge and binary-condition ask the simulator yes/no "
    "questions instead (local, openai or fake can answer; lexical and embedding cannot). With several, the "
    "ranking shows each scorer's score and rank and marks (⚠) the explanations they rank differently; the "
    "simulations are shared, so extra simulation-based scorers cost little. attention-head is not offered "
    "here: it reads attention records (python -m scoring attention)."
)


def dashboard_scorers() -> list[str]:
    """The registered scorers that read activation records (attention-head and the like are left out)."""
    return [name for name in SCORERS if name not in ATTENTION_SCORERS]


def scorer_multiselect(key: str) -> list[str]:
    """A multiselect of the scorers that read activation records, "simulation" alone by default."""
    names = dashboard_scorers()
    if key not in st.session_state:
        st.session_state[key] = ["simulation"] if "simulation" in names else names[:1]
    else:  # keep only scorers that are still registered (and offered)
        st.session_state[key] = [name for name in st.session_state[key] if name in names]
    return list(st.multiselect("Scorers", names, key=key, help=SCORERS_HELP))


def normalization_select(key: str) -> str:
    """The normalization selectbox. Drawn outside a form where the page describes the records by it (the
    negative-activation note), so that the description follows the choice at once."""
    return str(st.selectbox("Normalization", list(NORMALIZATIONS), key=key, help=NORMALIZATION_HELP))


def scoring_settings(
    prefix: str,
    n_records: int,
    include_simulator: bool = True,
    several_scorers: bool = False,
    include_normalization: bool = True,
) -> dict[str, Any]:
    """Simulator, scorer(s), sampling, number of sequences, normalization and cache widgets (inside a form).

    With `several_scorers` the scorers are a multiselect; ``settings["scorers"]``
    lists the chosen ones and ``settings["scorer"]`` is the first (the one whose
    details are drawn). Without `include_normalization` the page draws `normalization_select`
    itself (outside the form) and sets ``settings["normalization"]``.
    """
    spec = simulator_select(f"{prefix}_simulator") if include_simulator else ""
    left, middle, right = st.columns(3)
    with left:
        sampling = st.selectbox("Sampling", list(SAMPLING_STRATEGIES), key=f"{prefix}_sampling", help=SAMPLING_HELP)
    with middle:
        count_key = f"{prefix}_n_sequences"
        # A smaller data set than the last one must not leave the widget above its new maximum.
        if not 0 <= int(st.session_state.get(count_key, 0)) <= max(n_records, 1):
            st.session_state[count_key] = 0
        n_sequences = st.number_input(
            "Sequences (0 = all)",
            min_value=0,
            max_value=max(n_records, 1),
            step=1,
            key=count_key,
            help="How many sequences the sampling strategy picks.",
        )
    normalization = ""
    if include_normalization:
        with right:
            normalization = normalization_select(f"{prefix}_normalization")
    scorer_names = dashboard_scorers()
    if several_scorers:
        scorers = scorer_multiselect(f"{prefix}_scorers")
    else:
        scorers = scorer_names[:1]
        if len(scorer_names) > 1:
            scorers = [st.selectbox("Scorer", scorer_names, key=f"{prefix}_scorer")]
    use_cache = st.checkbox(
        "Use the cache (instant for explanations already scored)", value=True, key=f"{prefix}_use_cache"
    )
    st.session_state.setdefault(f"{prefix}_time_limit", DEFAULT_TIME_LIMIT_SECONDS)
    time_limit = st.number_input(
        "Time limit (seconds)",
        min_value=1,
        max_value=24 * 3600,
        step=60,
        key=f"{prefix}_time_limit",
        help="A simulator that has not finished by then is given up on, and the page says so.",
    )
    return {
        "simulator": spec,
        "scorer": scorers[0] if scorers else "",
        "scorers": scorers,
        "sampling": sampling,
        "n_sequences": int(n_sequences) or None,
        "normalization": normalization,
        "use_cache": bool(use_cache),
        "time_limit": float(time_limit),
    }


STALE_PARTS = {
    "records": "the activations",
    "settings": "the simulator or settings",
    "explanations": "the explanations",
}


def run_fingerprint(
    loaded: LoadedInput | None, settings: dict[str, Any], explanations: Sequence[str]
) -> dict[str, str]:
    """Hashes of what a score depends on: the exact records, the settings that change numbers, the explanations."""
    relevant = {
        name: settings.get(name) for name in ("simulator", "scorers", "sampling", "n_sequences", "normalization")
    }
    return {
        "records": loaded.fingerprint if loaded is not None else "",
        "settings": _hash(relevant),
        "explanations": _hash(list(explanations)),
    }


def _hash(value: Any) -> str:
    return hashlib.sha256(json.dumps(value, sort_keys=True, default=str).encode("utf-8")).hexdigest()


def stale_parts(scored: dict[str, str] | None, current: dict[str, str]) -> list[str]:
    """What changed since the results were scored, in words ([] when they still match)."""
    if not scored:
        return []
    return [words for part, words in STALE_PARTS.items() if scored.get(part) != current.get(part)]


def warn_if_stale(changed: Sequence[str], scored_on: str, action: str = "Score") -> None:
    """A plain warning above results that no longer match what is on the page."""
    if not changed:
        return
    st.warning(
        f"Stale results: {' and '.join(changed)} changed since these results were scored (on {scored_on}). "
        f"They do not describe what is loaded now; press {action} to update them.",
        icon="⚠️",
    )


def show_estimate(
    spec: str, explanations: Sequence[str], records: Sequence[ActivationRecord], settings: dict[str, Any]
) -> None:
    """Before scoring with an API simulator: rough tokens and cost (cache hits make it cheaper)."""
    if not spec.startswith(("openai:", "openai-compatible:")):
        return
    try:
        simulator = load_simulator(spec)
    except ScoringInputError as exc:
        st.warning(f"Simulator {spec}: {exc}")
        return
    except Exception as exc:  # noqa: BLE001 - the page must stay up; the log keeps the traceback
        logger.exception("could not build simulator %s", spec)
        st.warning(f"Simulator {spec} could not be built: {type(exc).__name__}: {exc}")
        return
    n_sequences = settings.get("n_sequences") or len(records)
    chosen = sorted(records, key=lambda record: -record.max_activation)[:n_sequences]
    capabilities = simulator.capabilities
    estimate = estimate_api_usage(
        list(explanations),
        [record.tokens for record in chosen],
        sequences_per_call=capabilities.max_sequences_per_call,
        prompt_price=capabilities.cost_per_million_prompt_tokens,
        completion_price=capabilities.cost_per_million_completion_tokens,
    )
    cost = "unknown price" if estimate["cost_usd"] is None else f"≈ ${estimate['cost_usd']:.4f}"
    st.info(
        f"Estimate before scoring with {spec}: ≈ {estimate['requests']} requests, "
        f"≈ {estimate['prompt_tokens']:,} prompt + {estimate['completion_tokens']:,} completion tokens, "
        f"{cost} (cached sequences cost nothing)."
    )
