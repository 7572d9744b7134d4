"""The sidebar every page shares (API key, base URL, other specs) and the simulator list and loader."""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import streamlit as st
from streamlit.errors import StreamlitAPIException

from scoring import (
    SIMULATORS,
    Credentials,
    Explainer,
    SimulationCache,
    Simulator,
    configure_process,
    default_cache_directory,
    default_simulator_choice,
    default_simulator_spec,
    get_simulator,
    open_cache,
    preparation_needed,
)

logger = logging.getLogger(__name__)

REPO_ROOT = Path(__file__).resolve().parent.parent
EXAMPLES_DIR = REPO_ROOT / "examples"
BUNDLED_PUZZLES = REPO_ROOT / "benchmarks" / "openai-puzzles" / "puzzles.json"

DEFAULT_OPENAI_MODEL = "gpt-4o-mini"
API_KEY_STATE = "sidebar_api_key"
BASE_URL_STATE = "sidebar_base_url"
API_MODEL_STATE = "sidebar_api_model"
EXTRA_SPEC_STATE = "sidebar_extra_spec"

SIMULATOR_LABELS = {
    "local": "local — embedded language model, offline, slow on CPU",
    "lexical": "lexical — word matcher baseline (fast)",
    "embedding": "embedding — similarity baseline",
}

HIDDEN_SIMULATORS = frozenset({"fake"})
"""Registered for tests and demos of the plumbing, not offered in the list (type it as another spec)."""

DEFAULT_TIME_LIMIT_SECONDS = 600


PAGES = (
    ("app.py", "Score", ":material/leaderboard:"),
    ("pages/2_Spot_check.py", "Spot-check", ":material/fact_check:"),
    ("pages/3_Benchmark.py", "Benchmark", ":material/extension:"),
    ("pages/4_Explore.py", "Explore", ":material/neurology:"),
)
"""The sidebar's page list: (script, label, icon). Streamlit's own list is switched off in
.streamlit/config.toml because it can only name the entry script after its file ("app")."""


def page_setup(title: str, icon: str = "🔬", state: Mapping[str, Any] | None = None) -> None:
    """Page config and the sidebar shared by all pages (page list, API settings, cache info), then the
    page's own session-state defaults `state`. Sets the dashboard process's settings first
    (`scoring.configure_process`): whichever page a browser opens is this process's entry point."""
    configure_process()
    st.set_page_config(page_title=f"{title} · explanation scorer", page_icon=icon, layout="wide")
    page_links()
    sidebar_settings()
    state_defaults(state or {})


def state_defaults(defaults: Mapping[str, Any]) -> None:
    """Each key of `defaults` in session state, unless the session already holds a value for it."""
    for key, value in defaults.items():
        st.session_state.setdefault(key, value)


def keep_valid(key: str, options: Sequence[Any], *, many: bool = False) -> None:
    """Before a selectbox, radio (or, with `many`, a multiselect) `key` is drawn: drop a value that is no
    longer among `options`.

    A widget's options change with the data (a new search, another SAE); the browser
    may still send the label of an option an earlier run offered, and Streamlit then
    hands that label back as the value. Whatever the widget held is checked here, so
    the page never reads a stale or foreign value.
    """
    if key not in st.session_state:
        return
    value = st.session_state[key]
    if many:
        listed = list(value) if isinstance(value, (list, tuple)) else []
        kept = [item for item in listed if item in options]
        if kept != listed or not isinstance(value, (list, tuple)):
            st.session_state[key] = kept
    elif value not in options:
        del st.session_state[key]


def page_links() -> None:
    """The page list at the top of the sidebar (nothing when a page runs alone, as under AppTest)."""
    with st.sidebar:
        for script, label, page_icon in PAGES:
            try:
                st.page_link(script, label=label, icon=page_icon)
            except StreamlitAPIException:
                return
        st.divider()


def sidebar_settings() -> None:
    """API key / base URL / model in the sidebar; values live in session state across pages."""
    state_defaults({API_KEY_STATE: "", BASE_URL_STATE: "", API_MODEL_STATE: DEFAULT_OPENAI_MODEL, EXTRA_SPEC_STATE: ""})
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


def simulator_options() -> list[str]:
    """Spec strings to offer: the default first, then the other offline ones, then configured APIs."""
    default = default_simulator_spec()
    offline: list[str] = [name for name in ("local", "lexical", "embedding") if name in SIMULATORS and name != default]
    listed = {"openai", "openai-compatible", "local", "lexical", "embedding"}
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
    if spec == default_simulator_spec():
        st.caption(default_simulator_choice().reason)
    elif spec.split(":", 1)[0] == "local":
        st.caption(LOCAL_CAVEAT)
    first_use = first_use_note(spec)
    st.session_state.pop(FIRST_USE_NOTE_STATE, None)
    if first_use:
        # Kept so that the preparation, later in this same run, can take the note away once it is done.
        st.session_state[FIRST_USE_NOTE_STATE] = st.empty()
        st.session_state[FIRST_USE_NOTE_STATE].warning(first_use, icon="⏳")
    return spec


FIRST_USE_NOTE_STATE = "_first_use_note"


WRITERS = "local, or an API model (openai:<model>, openai-compatible:<model>@<url>)"
"""The simulators that write explanations, in words."""


def can_write_explanations(spec: str) -> bool:
    """Whether the simulator of `spec` writes explanations (`scoring.simulators.Explainer`); False when it
    cannot be built (the page says why when it is used)."""
    try:
        return isinstance(load_simulator(spec), Explainer)
    except Exception:  # noqa: BLE001 - a simulator that cannot load says why when it is used
        logger.debug("could not build %s", spec, exc_info=True)
        return False


def first_use_note(spec: str) -> str | None:
    """What the first score with `spec` will do first (e.g. convert a model, with its time), or None when the
    simulator is ready; said before the user commits to it."""
    try:
        needed = preparation_needed(load_simulator(spec))
    except Exception:  # noqa: BLE001 - a simulator that cannot load says why when it is used
        logger.debug("no preparation note for %s", spec, exc_info=True)
        return None
    if needed is None:
        return None
    return f"Before its first score, `{spec}` {needed}, with a progress bar; this happens once."


LOCAL_CAVEAT = (
    "The embedded language model (Qwen2.5-Coder-1.5B by default) reads the explanation and lists the words "
    'that fit. It tells category explanations apart ("colors" vs "smells") better than the baselines, but it '
    'is weak on structural or conditional ones ("the word after *of*", "wrong sums"), where a decoy naming '
    "the firing words can win. For scores you rely on, use an API model; the measurements are in "
    "docs/local-simulator.md."
)


@st.cache_resource(show_spinner="Loading the simulator…")
def _cached_simulator(spec: str, api_key: str) -> Simulator:
    # A spec typed in a browser is not the operator's: the key typed in the sidebar belongs to this browser
    # session, it may not name the machine's environment variables, and a key of this machine's goes only to
    # the address its operator set (OPENAI_BASE_URL).
    return get_simulator(spec, credentials=Credentials(api_key=api_key or None, from_operator=False))


def load_simulator(spec: str) -> Simulator:
    """The simulator for a spec, built once per process (models load once)."""
    return _cached_simulator(spec, _session_value(API_KEY_STATE))


@st.cache_resource
def _cached_cache(directory: str) -> SimulationCache:
    return open_cache(directory)


def simulation_cache() -> SimulationCache:
    """The on-disk simulation cache (SCORING_CACHE_DIR, else the user cache folder's), opened once per directory."""
    return _cached_cache(str(default_cache_directory()))
