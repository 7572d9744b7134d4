"""The user's folders and settings file: where caches live, and the defaults a user chose.

Folders come from platformdirs, so they are where each platform keeps them
(``~/.cache/scoring`` on Linux, ``~/Library/Caches/scoring`` on macOS,
``%LOCALAPPDATA%\\scoring\\Cache`` on Windows); environment variables move each
one (`scoring.cache`, `scoring.models`). The settings file is TOML in the
user's config folder (``~/.config/scoring/config.toml`` on Linux), or
``$SCORING_CONFIG``; ``scoring config set KEY VALUE`` writes it. It holds
only the keys of `SETTINGS`.

Imports nothing of ours: every layer may read it.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import platformdirs

from scoring.errors import ScoringInputError

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.10
    import tomli as tomllib

APP_NAME = "scoring"

SETTINGS: dict[str, str] = {
    "simulator": "the simulator spec used when none is given (environment: SCORING_SIMULATOR)",
    "judge": "the spec used for judge scorers, attention heads and written explanations when none is given "
    "(environment: SCORING_JUDGE)",
}
"""The keys the settings file may hold, and what each sets."""

SETTING_VARIABLES: dict[str, str] = {"simulator": "SCORING_SIMULATOR", "judge": "SCORING_JUDGE"}
"""The environment variable that overrides each key of the settings file."""


def user_cache_root() -> Path:
    """The platform's user cache folder for this tool (``~/.cache/scoring`` on Linux)."""
    return platformdirs.user_cache_path(APP_NAME, appauthor=False)


def config_path() -> Path:
    """The settings file: ``$SCORING_CONFIG``, else ``config.toml`` in the platform's user config folder."""
    configured = os.environ.get("SCORING_CONFIG", "").strip()
    if configured:
        return Path(configured).expanduser()
    return platformdirs.user_config_path(APP_NAME, appauthor=False) / "config.toml"


def read_settings(path: Path | None = None) -> dict[str, str]:
    """The settings in the file (empty when there is none); raises ScoringInputError when it is unusable."""
    path = path or config_path()
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return {}
    except OSError as exc:
        raise ScoringInputError(f"cannot read the settings file {path}: {exc.strerror}") from None
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ScoringInputError(
            f"the settings file {path} is not valid TOML ({exc}); fix it, or remove it to use the defaults"
        ) from None
    unknown = sorted(set(data) - set(SETTINGS))
    if unknown:
        raise ScoringInputError(
            f"the settings file {path} has unknown key(s) {', '.join(unknown)}; known: {', '.join(SETTINGS)}"
        )
    for key, value in data.items():
        if not isinstance(value, str) or not value.strip():
            raise ScoringInputError(f"in the settings file {path}, {key} must be a non-empty string, got {value!r}")
    return {key: value.strip() for key, value in data.items()}


def write_settings(settings: dict[str, str], path: Path | None = None) -> Path:
    """Write `settings` as the whole file (removing it when empty); returns its path."""
    path = path or config_path()
    unknown = sorted(set(settings) - set(SETTINGS))
    if unknown:
        raise ScoringInputError(f"unknown setting(s) {', '.join(unknown)}; known: {', '.join(SETTINGS)}")
    if not settings:
        path.unlink(missing_ok=True)
        return path
    lines = ["# scoring's settings; `scoring config set KEY VALUE` writes this file, `scoring config list` reads it"]
    # A JSON string with ensure_ascii is a valid TOML basic string.
    lines += [f"{key} = {json.dumps(value)}" for key, value in sorted(settings.items())]
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(f"{path.name}.partial-{os.getpid()}")
    partial.write_text("\n".join(lines) + "\n", encoding="utf-8")
    os.replace(partial, path)
    return path


def configured(key: str) -> tuple[str, str] | None:
    """(value, where it comes from) of setting `key`: its environment variable, else the settings file."""
    variable = SETTING_VARIABLES[key]
    value = os.environ.get(variable, "").strip()
    if value:
        return value, f"the environment variable {variable}"
    path = config_path()
    stored = read_settings(path).get(key)
    if stored:
        return stored, f"the settings file {path}"
    return None
