"""Streamlit pieces shared by the dashboard pages (Streamlit never lists ``__init__.py`` as a page).

Everything here draws widgets or calls `scoring`; the pictures themselves come
from the pure functions of `scoring.viz`.
"""

from __future__ import annotations

import hashlib
import html
import json
import logging
import math
import os
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import pandas as pd
import streamlit as st
from streamlit.runtime.scriptrunner import add_script_run_ctx, get_script_run_ctx

from scoring import (
    SCORERS,
    SIMULATORS,
    ActivationRecord,
    GeneratedExplanation,
    Limits,
    ScoreResult,
    ScoringInputError,
    Simulator,
    default_simulator_spec,
    generate_explanations,
    get_simulator,
    normalize,
    open_cache,
    rank_with_scorers,
    viz,
)
from scoring.cache import SimulationCache, default_cache_directory
from scoring.judged import JUDGE_SCORERS
from scoring.records import NORMALIZATIONS
from scoring.sampling import STRATEGIES
from scoring.scorers import ATTENTION_SCORERS
from scoring.textformat import (
    CandidateExplanation,
    describe_records,
    explanations_from_object,
    feature_identity,
    load_pasted,
    records_to_token_text,
)

logger = logging.getLogger(__name__)

T = TypeVar("T")

REPO_ROOT = Path(__file__).resolve().parent.parent
EXAMPLES_DIR = REPO_ROOT / "examples"
BUNDLED_PUZZLES = REPO_ROOT.parent / "shared" / "benchmarks" / "openai-puzzles" / "puzzles.json"

DEFAULT_OPENAI_MODEL = "gpt-4o-mini"
API_KEY_STATE = "sidebar_api_key"
BASE_URL_STATE = "sidebar_base_url"
API_MODEL_STATE = "sidebar_api_model"
EXTRA_SPEC_STATE = "sidebar_extra_spec"

SIMULATOR_LABELS = {
    "local": "local — embedded model, offline",
    "local-large": "local-large — larger embedded model, offline, slower",
    "lexical": "lexical — word matcher baseline (fast)",
    "embedding": "embedding — similarity baseline",
}

HIDDEN_SIMULATORS = frozenset({"fake"})
"""Registered for tests and demos of the plumbing, not offered in the list (type it as another spec)."""

DEFAULT_TIME_LIMIT_SECONDS = 600

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

ABOUT_SCORE = """
**How the score is computed.** A *simulator* reads only the explanation and predicts, for every token,
how strongly the neuron should fire (0..10). The score is the **Pearson correlation** between the
simulated and the real activations over all tokens of the chosen sequences: 1 means the explanation
predicts the activations perfectly (up to scale), 0 means no linear relation, negative means it points
at the wrong tokens. This is the scoring method of OpenAI's *Language models can explain neurons in
language models* and of Neuronpedia's scorer.

- **Interval**: a 95% bootstrap interval over sequences. Two explanations whose intervals overlap
  widely are not reliably different on these sequences; add sequences to separate them.
- **r² (no fit)**: 1 − Σ(real − simulated)² / Σ(real − mean real)² on the 0..10 scale, with the
  simulation taken as it is (no rescaling): 1 is a perfect match, and it is negative when the simulation is
  further from the real values than a flat line at their mean would be. (After the best linear fit the
  share of variance explained would be the score squared.)
  **ROC-AUC**: how well the simulation separates active (> 0) from inactive tokens;
  **Spearman**: rank correlation; **mean seq. corr.**: the average of the per-sequence correlations.
- **n/a** means undefined, never zero: for example when the simulator predicts the same value for
  every token (the explanation matched nothing) or when a simulation failed. Hover the table or the
  per-sequence heatmap to see why. In the per-sequence heatmap a sequence where the neuron fires but
  the simulation stays flat is marked **missed**: that is where the explanation fails.
- **Normalization**: see the help next to the selector; the one used is shown with the results.
- Scores depend on the simulator: a small offline model or the lexical baseline scores differently
  from a large API model, so compare explanations with the same simulator.
"""


def page_setup(title: str, icon: str = "🔬") -> None:
    """Page config and the sidebar shared by all pages (API settings, cache info)."""
    st.set_page_config(page_title=f"{title} · explanation scorer", page_icon=icon, layout="wide")
    sidebar_settings()


def sidebar_settings() -> None:
    """API key / base URL / model in the sidebar; values live in session state across pages."""
    for name, default in (
        (API_KEY_STATE, ""),
        (BASE_URL_STATE, ""),
        (API_MODEL_STATE, DEFAULT_OPENAI_MODEL),
        (EXTRA_SPEC_STATE, ""),
    ):
        st.session_state.setdefault(name, default)
    with st.sidebar:
        with st.expander("API simulators", expanded=False):
            st.caption(
                "Optional. API models appear in the simulator list when a key is set here or in the "
                "environment (OPENAI_API_KEY), or when a base URL of an OpenAI-compatible server "
                "(vLLM, llama.cpp, Ollama, ...) is given. The key stays in this browser session."
            )
            st.text_input("OpenAI API key", type="password", key=API_KEY_STATE)
            st.text_input("Model", key=API_MODEL_STATE, help="e.g. gpt-4o-mini, or the server's model name")
            st.text_input(
                "OpenAI-compatible base URL",
                key=BASE_URL_STATE,
                placeholder="http://127.0.0.1:8000/v1",
            )
        st.text_input(
            "Other simulator spec",
            key=EXTRA_SPEC_STATE,
            placeholder="e.g. fake:fail or openai:gpt-4.1-mini?batch=5",
            help="Any spec string `scoring` understands; it is added to the simulator list.",
        )
        st.caption(f"Cache: `{default_cache_directory()}`")


def _session_value(name: str) -> str:
    value = st.session_state.get(name, "")
    return value.strip() if isinstance(value, str) else ""


def _large_model_installed() -> bool:
    """Whether `local-large` can run here (its model's packages are installed: requirements-large.txt)."""
    from scoring.simulators.local import LARGE_MODEL, model_installed

    return model_installed(LARGE_MODEL)


def simulator_options() -> list[str]:
    """Spec strings to offer: the default first, then the other offline ones, then configured APIs."""
    default = default_simulator_spec()
    offline: list[str] = [name for name in ("local", "lexical", "embedding") if name in SIMULATORS and name != default]
    if _large_model_installed():
        offline.insert(0, "local-large")
    listed = {"openai", "openai-compatible", "local", "local-large", "lexical", "embedding"}
    others = [name for name in SIMULATORS if name not in listed and name not in HIDDEN_SIMULATORS]
    options = [default, *offline, *others]
    model = _session_value(API_MODEL_STATE) or DEFAULT_OPENAI_MODEL
    if "openai" in SIMULATORS and (_session_value(API_KEY_STATE) or os.environ.get("OPENAI_API_KEY")):
        options.append(f"openai:{model}")
    base_url = _session_value(BASE_URL_STATE) or os.environ.get("OPENAI_BASE_URL", "").strip()
    if "openai-compatible" in SIMULATORS and base_url:
        options.append(f"openai-compatible:{model}@{base_url}")
    extra = _session_value(EXTRA_SPEC_STATE)
    if extra and extra not in options:
        options.append(extra)
    return options


def simulator_label(spec: str) -> str:
    label = SIMULATOR_LABELS.get(spec, spec)
    return f"{label} (default)" if spec == default_simulator_spec() else label


def simulator_select(key: str) -> str:
    """A selectbox of simulator specs; keeps the previous choice when it is still offered."""
    options = simulator_options()
    if st.session_state.get(key) not in options:
        st.session_state.pop(key, None)
    spec = str(
        st.selectbox(
            "Simulator",
            options,
            format_func=simulator_label,
            key=key,
            help="What predicts activations from the explanation. The offline ones run here on CPU; "
            "API models (set a key in the sidebar) are stronger but cost money.",
        )
    )
    if spec.split(":", 1)[0] in ("local", "local-large"):
        st.caption(LOCAL_CAVEAT)
    return spec


LOCAL_CAVEAT = (
    "The offline model is a rough first pass: it tells category explanations apart (\"colors\" vs "
    "\"smells\") but is near chance on structural or conditional ones (\"the word after *of*\", "
    "\"wrong sums\"), where a decoy naming the firing words often wins. For scores you rely on, use an "
    "API model; the measurements are in the README (Local simulator)."
)


@st.cache_resource(show_spinner="Loading the simulator…")
def _cached_simulator(spec: str, api_key: str) -> Simulator:
    name, _, argument = spec.partition(":")
    if api_key and name in ("openai", "openai-compatible"):
        # The key typed in the sidebar belongs to this browser session, never to the process environment.
        from scoring.simulators.openai_backend import compatible_simulator, openai_simulator

        factory = openai_simulator if name == "openai" else compatible_simulator
        return factory(argument or None, api_key=api_key)
    return get_simulator(spec)


def load_simulator(spec: str) -> Simulator:
    """The simulator for a spec, built once per process (models load once)."""
    return _cached_simulator(spec, _session_value(API_KEY_STATE))


@st.cache_resource
def _cached_cache(directory: str) -> SimulationCache:
    return open_cache(directory)


def simulation_cache() -> SimulationCache:
    """The on-disk simulation cache (SCORING_CACHE_DIR, else <repo>/cache), opened once per directory."""
    return _cached_cache(str(default_cache_directory()))


def list_examples() -> list[Path]:
    return sorted(EXAMPLES_DIR.glob("*.json"))


def example_label(path: Path) -> str:
    return path.stem.replace("_", " ")


@dataclass
class LoadedInput:
    """What a page read from the user: records and any explanations stored with them."""

    records: list[ActivationRecord]
    explanations: list[CandidateExplanation] = field(default_factory=list)
    name: str = ""
    groups: list[str] = field(default_factory=list)
    """Per record: "top", "random", "quantile" where the input says so, else ""."""
    feature: str = ""
    """Who the feature is (model / layer / index, or source / id) when the input names it."""

    @property
    def fingerprint(self) -> str:
        """A hash of the exact tokens and activations, so results can be tied to the input they came from."""
        return records_fingerprint(self.records)


LIMIT_MAX_TOKENS_STATE = "input_max_tokens"
LIMIT_MAX_SEQUENCES_STATE = "input_max_sequences"
_HARD_MAX_TOKENS = 200_000
_HARD_MAX_SEQUENCES = 100_000


def input_limits() -> Limits:
    """The input limits set on the page (defaults: `scoring.Limits`)."""
    defaults = Limits()
    return Limits(
        max_sequences=int(st.session_state.get(LIMIT_MAX_SEQUENCES_STATE, defaults.max_sequences)),
        max_tokens_per_sequence=int(st.session_state.get(LIMIT_MAX_TOKENS_STATE, defaults.max_tokens_per_sequence)),
    )


def input_limits_widgets() -> None:
    """Max tokens per sequence and max sequences, in an expander (shared by every page)."""
    defaults = Limits()
    st.session_state.setdefault(LIMIT_MAX_TOKENS_STATE, defaults.max_tokens_per_sequence)
    st.session_state.setdefault(LIMIT_MAX_SEQUENCES_STATE, defaults.max_sequences)
    with st.expander("Input limits"):
        st.caption(
            "Longer or more sequences are refused so that one paste cannot stall the page; raise the limits "
            "for large features (scoring time grows with the number of tokens)."
        )
        left, right = st.columns(2)
        left.number_input(
            "Max tokens per sequence", min_value=1, max_value=_HARD_MAX_TOKENS, step=512, key=LIMIT_MAX_TOKENS_STATE
        )
        right.number_input(
            "Max sequences", min_value=1, max_value=_HARD_MAX_SEQUENCES, step=100, key=LIMIT_MAX_SEQUENCES_STATE
        )


def check_input_limits(records: Sequence[ActivationRecord], limits: Limits) -> None:
    """Raise ScoringInputError naming the in-page setting to raise when `records` exceed `limits`."""
    if len(records) > limits.max_sequences:
        raise ScoringInputError(
            f"{len(records):,} sequences, more than the {limits.max_sequences:,} allowed: raise "
            "“Max sequences” under “Input limits” above, or load fewer sequences"
        )
    for index, record in enumerate(records):
        if len(record.tokens) > limits.max_tokens_per_sequence:
            where = record.source or f"sequence {index}"
            raise ScoringInputError(
                f"{where} has {len(record.tokens):,} tokens, more than the {limits.max_tokens_per_sequence:,} "
                "allowed: raise “Max tokens per sequence” under “Input limits” above, or split the sequence"
            )


def records_fingerprint(records: Sequence[ActivationRecord]) -> str:
    """sha256 of the canonical JSON of every record's tokens and raw activations."""
    payload = json.dumps([[record.tokens, record.activations] for record in records], separators=(",", ":"))
    return hashlib.sha256(payload.encode("utf-8")).hexdigest()


_GROUP_PREFIXES = (
    ("random_sample_by_quantile", "quantile"),
    ("most_positive_activation_records", "top"),
    ("top_activating_records", "top"),
    ("random_sample", "random"),
    ("random_records", "random"),
)


def record_group(record: ActivationRecord) -> str:
    """"top", "random" or "quantile" when the record's place in its file says so (OpenAI neuron records), else ""."""
    for prefix, group in _GROUP_PREFIXES:
        if record.source.startswith(prefix):
            return group
    return ""


@st.cache_data(show_spinner=False, max_entries=32)
def _parse_text(text: str) -> tuple[list[ActivationRecord], list[CandidateExplanation], list[str], str]:
    # The page checks its own, user-settable limits afterwards, with advice that names the setting.
    records = load_pasted(text, limits=Limits(_HARD_MAX_SEQUENCES, _HARD_MAX_TOKENS))
    explanations: list[CandidateExplanation] = []
    groups = [record_group(record) for record in records]
    feature = ""
    stripped = text.strip()
    if stripped[:1] in "[{":
        try:
            data = json.loads(stripped)
        except json.JSONDecodeError:
            data = None
        explanations = explanations_from_object(data)
        feature = feature_identity(data)
        items = data.get("activations") if isinstance(data, dict) else None
        if isinstance(items, list) and len(items) == len(records):
            # Feature exports (the Explore page's among them) label each excerpt in a "sample" field.
            groups = [
                str(item.get("sample", "")) if isinstance(item, dict) else "" for item in items
            ]
    return records, explanations, groups, feature


def read_input_text(text: str, name: str) -> LoadedInput:
    """Parse pasted/uploaded/bundled text; raises ScoringInputError saying what to fix."""
    records, explanations, groups, feature = _parse_text(text)
    check_input_limits(records, input_limits())
    return LoadedInput(list(records), list(explanations), name, list(groups), feature)


def read_upload(upload: Any) -> LoadedInput:
    data = upload.getvalue()
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ScoringInputError(
            f"{upload.name} is not UTF-8 text; save it as UTF-8 JSON, CSV or TSV"
        ) from exc
    return read_input_text(text, upload.name)


def records_summary(records: Sequence[ActivationRecord]) -> str:
    facts = describe_records(records)
    density = facts["active_tokens"] / facts["tokens"] if facts["tokens"] else 0.0
    return (
        f"{facts['sequences']} sequences · {facts['tokens']} tokens · "
        f"{facts['active_tokens']} active tokens (density {density:.1%}) · max activation {facts['max_activation']:g}"
    )


def negative_note(records: Sequence[ActivationRecord], normalization: str) -> str | None:
    """What the normalization does to negative activations, or None when there are none (or they are kept)."""
    negatives = [value for record in records for value in record.activations if value < 0]
    if not negatives:
        return None
    total = sum(len(record.activations) for record in records)
    counted = f"{len(negatives)} of {total} tokens have negative activations (lowest {min(negatives):g})"
    if normalization == "none":
        return f"{counted}; the `none` normalization keeps them (blue in the heatmaps)."
    return (
        f"{counted}. The `{normalization}` normalization sets them to 0 before scoring, so a simulator is not "
        "judged on them; choose `none` to keep them."
    )


def preview_records(
    loaded: LoadedInput, normalization: str, key: str, limit: int = 12
) -> None:
    """Density, a histogram, and the excerpts sorted by max activation as token heatmaps (top `limit`)."""
    records = loaded.records
    note = negative_note(records, normalization)
    if note:
        st.info(note)
    st.plotly_chart(viz.activation_histogram(records), key=f"{key}_histogram")
    scaled = normalize(records, normalization) if normalization in NORMALIZATIONS else normalize(records)
    groups = loaded.groups if len(loaded.groups) == len(records) else [""] * len(records)
    order = sorted(range(len(records)), key=lambda index: -records[index].max_activation)
    vmax = max((abs(value) for values in scaled for value in values), default=1.0) or 1.0
    vmax = viz.SCALE_MAX if normalization != "none" else vmax
    parts = [viz.color_legend_html()]
    for index in order[:limit]:
        record, values = records[index], scaled[index]
        hover = [f"raw {value:g}" for value in record.activations]
        label = viz.sequence_label(record.tokens, index)
        group = f" · {groups[index]}" if groups[index] else ""
        parts.append(
            f"<div class='cmpseq'>{html.escape(label)}{html.escape(group)} · max {record.max_activation:g}</div>"
            + viz.tokens_html(record.tokens, values, hover=hover, vmax=vmax)
        )
    if len(records) > limit:
        parts.append(f"<p>… and {len(records) - limit} more sequences (lower maxima).</p>")
    st.caption("Excerpts sorted by their highest activation, labelled top / random / quantile where the input says so.")
    st.html("".join(parts))
    st.download_button(
        "Download as token<TAB>activation text",
        records_to_token_text(records),
        "records.txt",
        "text/plain",
        on_click="ignore",
        key=key,
        help="The same records in the simple text format, to edit and paste back.",
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


def scoring_settings(
    prefix: str, n_records: int, include_simulator: bool = True, several_scorers: bool = False
) -> dict[str, Any]:
    """Simulator, scorer(s), sampling, number of sequences, normalization and cache widgets (inside a form).

    With `several_scorers` the scorers are a multiselect; ``settings["scorers"]``
    lists the chosen ones and ``settings["scorer"]`` is the first (the one whose
    details are drawn).
    """
    spec = simulator_select(f"{prefix}_simulator") if include_simulator else ""
    left, middle, right = st.columns(3)
    with left:
        sampling = st.selectbox("Sampling", list(STRATEGIES), key=f"{prefix}_sampling", help=SAMPLING_HELP)
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
    with right:
        normalization = st.selectbox(
            "Normalization", list(NORMALIZATIONS), key=f"{prefix}_normalization", help=NORMALIZATION_HELP
        )
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
    estimate = viz.estimate_api_usage(
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


def _simulator_or_error(spec: str) -> Simulator | None:
    """The simulator for `spec`, or None after telling the user why it cannot be loaded."""
    try:
        return load_simulator(spec)
    except ScoringInputError as exc:
        st.error(f"Simulator {spec!r}: {exc}")
    except Exception as exc:  # noqa: BLE001 - the page must stay up; the log keeps the traceback
        logger.exception("could not build simulator %s", spec)
        st.error(
            f"The simulator {spec!r} could not be loaded ({type(exc).__name__}: {exc}). "
            "Pick another simulator, or install what it needs."
        )
    return None


def run_scorers(
    explanations: Sequence[str], records: Sequence[ActivationRecord], settings: dict[str, Any]
) -> dict[str, list[ScoreResult]] | None:
    """Rank with every chosen scorer via `scoring.rank_with_scorers`, with a progress bar; None after an error."""
    if not explanations:
        st.error("Enter at least one explanation (one per line) before scoring.")
        return None
    scorers = list(settings.get("scorers") or [settings["scorer"]])
    if not scorers:
        st.error("Choose at least one scorer.")
        return None
    spec = settings["simulator"]
    simulator = _simulator_or_error(spec)
    if simulator is None:
        return None
    return _with_progress_bar(
        f"Scoring {len(explanations)} explanations with {spec}…",
        lambda progress: rank_with_scorers(
            list(explanations),
            list(records),
            scorers,
            simulator=simulator,
            sampling=settings["sampling"],
            n_sequences=settings["n_sequences"],
            normalization=settings["normalization"],
            cache=simulation_cache() if settings["use_cache"] else False,
            progress=progress,
            limits=settings.get("limits") or input_limits(),
        ),
        action="score",
        activity="Scoring",
        time_limit=float(settings.get("time_limit") or DEFAULT_TIME_LIMIT_SECONDS),
    )


def run_ranking(
    explanations: Sequence[str], records: Sequence[ActivationRecord], settings: dict[str, Any]
) -> list[ScoreResult] | None:
    """Rank with the one scorer of `settings` (see `run_scorers`); on failure show why, return None."""
    ranked = run_scorers(explanations, records, {**settings, "scorers": [settings["scorer"]]})
    return None if ranked is None else ranked[settings["scorer"]]


GENERATE_HELP = (
    "The chosen simulator reads the records where the neuron fires most and writes candidate explanations; "
    "they are added to the list below, marked as generated in the ranking. The first candidate is the "
    "model's first choice, the others are sampled (seeded, so the same each time). Type into the list "
    "after generating: text typed but not yet scored is replaced when the list is updated."
)


def generate_candidates(
    records: Sequence[ActivationRecord], spec: str, n: int, use_cache: bool = True
) -> list[GeneratedExplanation] | None:
    """Candidates from `scoring.generate_explanations` with a progress bar; None after an error (shown)."""
    simulator = _simulator_or_error(spec)
    if simulator is None:
        return None
    return _with_progress_bar(
        f"Writing {n} candidate explanations with {spec}…",
        lambda progress: generate_explanations(
            list(records),
            simulator=simulator,
            n=n,
            cache=simulation_cache() if use_cache else False,
            progress=progress,
        ),
        action="generate explanations",
        activity="Generating explanations",
    )


def show_generated(generated: Sequence[GeneratedExplanation], added: Sequence[str], key: str) -> None:
    """What the last generation wrote: what was added, what failed and why, and every attempt in a table."""
    if added:
        st.success(f"Added {len(added)} generated explanation(s): " + "; ".join(added))
    elif any(candidate.ok for candidate in generated):
        st.info("The generated explanations are already in the list.")
    failed = [candidate for candidate in generated if not candidate.ok]
    for candidate in failed:
        st.warning(f"Candidate {candidate.attempt + 1} could not be written: {candidate.error}")
    with st.expander(f"Generated candidates ({len(generated)})"):
        st.dataframe(viz.generated_frame(generated), hide_index=True, key=key)


def _with_progress_bar(
    text: str,
    work: Callable[[Callable[[int, int, str], None]], T],
    *,
    action: str,
    activity: str,
    time_limit: float = DEFAULT_TIME_LIMIT_SECONDS,
) -> T | None:
    """`work(progress)` under a progress bar, given up after `time_limit` seconds; None after an error, shown.

    Bad input reads "Cannot <action>: ..."; a stall reads "<activity> stopped";
    anything else is logged with its traceback and reads "<activity> failed (...)".
    """
    bar = st.progress(0.0, text=text)
    try:
        result = _within(time_limit, lambda: work(_progress_reporter(bar)))
    except TimeoutError:
        bar.empty()
        logger.warning("%s gave no result within %s s", activity, time_limit)
        st.error(
            f"{activity} stopped: no result within {time_limit:g} s (the time limit), so the simulator is stalled "
            "or too slow for this much text. Pick another simulator, score fewer sequences, or raise "
            "“Time limit (seconds)” in the settings."
        )
        return None
    except ScoringInputError as exc:
        bar.empty()
        st.error(f"Cannot {action}: {exc}")
        return None
    except Exception as exc:  # noqa: BLE001
        bar.empty()
        logger.exception("%s failed", activity.lower())
        st.error(f"{activity} failed ({type(exc).__name__}: {exc}). The server log has the details.")
        return None
    bar.progress(1.0, text="Done")
    return result


def _within(seconds: float, work: Callable[[], T]) -> T:
    """`work()` in a worker thread; TimeoutError when it has not finished after `seconds`.

    A stalled simulator cannot be interrupted from outside, so its thread is
    left behind (a daemon, holding no page state) and the page carries on.
    """
    outcome: dict[str, Any] = {}

    def target() -> None:
        try:
            outcome["value"] = work()
        except BaseException as exc:  # noqa: BLE001 - re-raised in the page's thread below
            outcome["error"] = exc

    thread = threading.Thread(target=target, name="dashboard-work", daemon=True)
    add_script_run_ctx(thread, get_script_run_ctx())
    thread.start()
    thread.join(seconds)
    if thread.is_alive():
        raise TimeoutError(f"no result within {seconds:g} s")
    if "error" in outcome:
        raise outcome["error"]
    return outcome["value"]  # type: ignore[no-any-return]


def _progress_reporter(bar: Any) -> Callable[[int, int, str], None]:
    def report(done: int, total: int, message: str) -> None:
        fraction = min(1.0, done / total) if total else 0.0
        try:
            bar.progress(fraction, text=message)
        except Exception:  # noqa: BLE001 - progress must never break scoring
            logger.debug("progress update failed", exc_info=True)

    return report


def render_scorer_comparison(
    results_by_scorer: dict[str, list[ScoreResult]], prefix: str, generated: Sequence[str] = ()
) -> None:
    """Scores and ranks of every explanation under each scorer, rank disagreements marked."""
    st.subheader("Ranking by scorer")
    frame = viz.scorer_ranking_frame(results_by_scorer, generated)
    disagreeing = int((frame["disagreement"] != "").sum()) if not frame.empty else 0
    st.caption(
        "One score and rank (1 = best) per scorer, rows in the order of the first scorer. "
        f"{viz.DISAGREEMENT_MARK} marks explanations the scorers rank differently, with the spread of their "
        f"ranks: {disagreeing} of {len(frame)} here."
    )
    st.dataframe(viz.scorer_ranking_table(results_by_scorer, generated), hide_index=True, key=f"{prefix}_by_scorer")


def render_judgements(results_by_scorer: dict[str, list[ScoreResult]], prefix: str) -> None:
    """For each scorer other than simulation: its metrics, and which sequences or tokens it judged and how."""
    judged = {name: results for name, results in results_by_scorer.items() if name != "simulation" and results}
    if not judged:
        return
    st.subheader("How the scorers judged")
    tabs = st.tabs(list(judged))
    for tab, (name, results) in zip(tabs, judged.items(), strict=True):
        with tab:
            st.dataframe(viz.metrics_table(results), hide_index=True, key=f"{prefix}_{name}_metrics")
            names = [result.explanation for result in results]
            state_key = f"{prefix}_{name}_explanation"
            if st.session_state.get(state_key) not in names:
                st.session_state.pop(state_key, None)
            chosen = st.selectbox("Explanation", names, key=state_key)
            result = next(result for result in results if result.explanation == chosen)
            if result.error:
                st.warning(result.error)
            if name == "detection" or "sequence_predictions" in result.metrics:
                if name in JUDGE_SCORERS:
                    how = "the judge is asked whether the sequence contains what the explanation describes, and "
                    how += "its P(yes) is the prediction"
                else:
                    how = "the scorer predicts it from the sequence's simulation"
                st.caption(
                    "Each sequence is activating when its real maximum is at least "
                    f"{viz.ACTIVE_THRESHOLD:g} of 10; {how}; the ROC-AUC of those predictions is the score. "
                    "Verdicts at the decision threshold."
                )
                st.dataframe(viz.detection_table(result), hide_index=True, key=f"{prefix}_{name}_seq")
                st.plotly_chart(viz.detection_figure(result), key=f"{prefix}_{name}_fig")
            if name in JUDGE_SCORERS:
                with st.expander(
                    f"The judge's questions and answers ({len(result.judgments)})", expanded=name != "detection-judge"
                ):
                    st.caption(
                        "Every yes/no question the judge was asked: the text shown (marked tokens in << >>), the "
                        "right answer, the judge's P(yes) and its answer at the threshold."
                    )
                    st.dataframe(viz.judgments_table(result), hide_index=True, key=f"{prefix}_{name}_judged")
            if name == "fuzzing":
                st.caption(
                    "Per activating sequence, the simulation on the really active tokens (outlined) against the "
                    "other tokens; the scorer compares with a seeded random sample of as many inactive tokens."
                )
                st.dataframe(
                    viz.fuzzing_frame(result).map(lambda value: viz.format_number(value, 2)),
                    hide_index=True,
                    key=f"{prefix}_{name}_tok",
                )
                st.html(viz.color_legend_html() + viz.fuzzing_html(result, max_sequences=30))


def render_results(
    results: Sequence[ScoreResult],
    prefix: str,
    settings: dict[str, Any] | None = None,
    generated: Sequence[str] = (),
) -> None:
    """Ranking, heatmaps, per-sequence correlation, scatter and downloads for scored explanations.

    `generated` names the explanations a simulator wrote (marked in the ranking).
    """
    if not results:
        return
    settings = settings or {}
    usage = viz.usage_summary(results)
    best = viz.best_index(results)
    if best is None:
        st.markdown("**Best explanation:** none could be scored (see the reasons below).")
    else:
        st.markdown(
            f"**Best explanation** (score {results[best].score:.3f}): {_markdown_text(results[best].explanation)}"
        )
    columns = st.columns(3)
    cost = usage["cost_usd"]
    columns[0].metric(
        "Tokens (prompt / completion)",
        f"{usage['prompt_tokens']:,} / {usage['completion_tokens']:,}",
        help=f"{usage['requests']} requests; cost {'unknown or free' if cost is None else f'${cost:.5f}'}",
    )
    columns[1].metric(
        "Cache hits",
        f"{usage['cache_hits']} / {usage['cache_hits'] + usage['cache_misses']}",
        help="Sequences whose simulation came from the cache",
    )
    wall = settings.get("wall_seconds")
    columns[2].metric(
        "Wall time",
        "n/a" if wall is None else f"{wall:.1f} s",
        help=f"From pressing the button to the results. The explanations run concurrently: their own times add up "
        f"to {usage['seconds']:.1f} s.",
    )
    first = results[0]
    timing = f"{usage['seconds']:.2f} s summed over explanations" if wall is None else f"wall time {wall:.1f} s"
    st.caption(
        f"Simulator `{first.simulator}` · scorer `{first.scorer}` · normalization `{first.normalization}` · "
        f"sampling `{first.sampling.get('strategy', '')}` on {len(first.sequences)} sequences · "
        f"{timing} · cost {'n/a' if cost is None else f'${cost:.5f}'}"
    )
    st.subheader("Ranking")
    st.dataframe(
        viz.ranking_table(results, generated),
        hide_index=True,
        key=f"{prefix}_ranking",
        column_config=RANKING_COLUMN_CONFIG,
    )
    failed = [result for result in results if result.error]
    for result in failed:
        st.warning(f"**{result.explanation}**: {result.error}")

    if first.scorer in JUDGE_SCORERS:
        st.info(
            f"`{first.scorer}` asks a judge yes/no questions instead of simulating activations, so there are no "
            "simulated activations to draw; its questions and answers are under “How the scorers judged”."
        )
    else:
        _render_simulations(results, prefix)

    st.subheader("Download")
    left, middle, right = st.columns(3)
    left.download_button(
        "Ranking (CSV)",
        viz.results_csv(results),
        "ranking.csv",
        "text/csv",
        key=f"{prefix}_dl_csv",
        on_click="ignore",
    )
    middle.download_button(
        "Every token (CSV)",
        viz.tokens_csv(results),
        "tokens.csv",
        "text/csv",
        key=f"{prefix}_dl_tokens",
        on_click="ignore",
    )
    right.download_button(
        "Everything (JSON)",
        viz.results_json(results, {"settings": _json_safe(settings)}),
        "results.json",
        "application/json",
        key=f"{prefix}_dl_json",
        on_click="ignore",
    )


RANKING_COLUMN_CONFIG = {
    "explanation": st.column_config.TextColumn("explanation", width="large"),
    "error": st.column_config.TextColumn("error", width="large"),
    "r_squared": st.column_config.TextColumn(
        "r² (no fit)", help="1 − SSE/SST of the simulation as it is, no rescaling: negative when worse than the mean"
    ),
}

SEQUENCES_PAGE = 10
"""Sequences drawn at first, and added by each "show more"."""


def _markdown_text(text: str) -> str:
    """User text shown in markdown literally (no formatting, no links)."""
    return "".join(f"\\{character}" if character in "\\`*_{}[]()#+-.!|<>~$" else character for character in text)


def _render_simulations(results: Sequence[ScoreResult], prefix: str) -> None:
    """Heatmaps, per-sequence correlations and the scatter of real against simulated activations."""
    st.subheader("Real vs simulated, token by token")
    names = [result.explanation for result in results]
    default = names[: min(3, len(names))]
    state_key = f"{prefix}_heatmap_explanations"
    if any(name not in names for name in st.session_state.get(state_key, [])):
        st.session_state.pop(state_key, None)
    chosen_names = st.multiselect(
        "Explanations to compare (one column each)", names, default=default, key=state_key
    )
    chosen = [result for result in results if result.explanation in chosen_names]
    n_sequences = max(len(result.sequences) for result in results)
    shown_key = f"{prefix}_shown"
    st.session_state.setdefault(shown_key, SEQUENCES_PAGE)
    limit = min(int(st.session_state[shown_key]), n_sequences)
    if chosen:
        st.caption(
            f"The {limit} of {n_sequences} sequences with the highest real activation, highest first; long "
            "sequences scroll inside their box."
        )
        st.html(viz.color_legend_html() + viz.comparison_html(chosen, max_sequences=limit, strongest_first=True))
        if limit < n_sequences:
            st.button(
                f"Show {min(SEQUENCES_PAGE, n_sequences - limit)} more sequences",
                key=f"{prefix}_show_more",
                on_click=_show_more,
                args=(shown_key,),
            )
    else:
        st.info("Choose at least one explanation to see its simulated activations.")

    st.subheader("Where each explanation fails")
    st.plotly_chart(viz.per_sequence_figure(results), key=f"{prefix}_per_sequence")
    errors = [
        (result.explanation, sequence.index, sequence.error)
        for result in results
        for sequence in result.sequences
        if sequence.error
    ]
    if errors:
        with st.expander(f"Errors per sequence ({len(errors)})", expanded=True):
            st.dataframe(
                pd.DataFrame(errors, columns=["explanation", "sequence", "error"]),
                hide_index=True,
                key=f"{prefix}_errors",
            )
    with st.expander("Per-sequence correlation table"):
        table = viz.per_sequence_table(results)
        st.dataframe(table, key=f"{prefix}_seqtab")

    st.subheader("Real vs simulated, all tokens")
    st.plotly_chart(viz.scatter_figure(chosen or results), key=f"{prefix}_scatter")


def _show_more(state_key: str) -> None:
    st.session_state[state_key] = int(st.session_state.get(state_key, SEQUENCES_PAGE)) + SEQUENCES_PAGE


def _json_safe(settings: dict[str, Any]) -> dict[str, Any]:
    return {
        key: value
        for key, value in settings.items()
        if value is None
        or isinstance(value, (str, int, bool))
        or (isinstance(value, float) and math.isfinite(value))
    }
