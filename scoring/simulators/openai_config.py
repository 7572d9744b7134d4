"""Spec strings and options of the OpenAI backends, and where their key comes from.

See `scoring.simulators.openai_backend` for the options and modes.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, replace
from typing import Any
from urllib.parse import parse_qsl

from scoring.errors import MissingKeyError, ScoringInputError

PROMPT_LOGPROBS = "prompt-logprobs"
GENERATED_LOGPROBS = "generated-logprobs"
JSON_MODE = "json"
MODES = (PROMPT_LOGPROBS, GENERATED_LOGPROBS, JSON_MODE)
"""Modes in the order `mode=auto` tries them."""

MAX_ACTIVATION = 10

@dataclass(frozen=True)
class OpenAIBackendConfig:
    """Everything that configures one API backend."""

    model: str
    """Model name as the server knows it."""
    base_url: str | None = None
    """Server address (``.../v1``); None means OpenAI's."""
    mode: str = "auto"
    """``auto`` or one of `MODES`."""
    concurrency: int = 8
    """Requests in flight at once."""
    batch: int = 10
    """Sequences per request."""
    timeout: float = 60.0
    """Seconds per HTTP request."""
    retries: int = 3
    """Retries (with backoff) on 429, 5xx, timeouts, dropped connections and replies that are not a completion."""
    deadline: float | None = None
    """Seconds one call (a chunk of sequences, a question, an explanation) may take in all, retries and their
    waits included; None: ``timeout * (retries + 1)``."""
    json_retries: int = 2
    """Re-asks after an unusable reply."""
    top_logprobs: int = 20
    """Alternatives read per position in the logprob modes."""
    key_env: str = "OPENAI_API_KEY"
    """Environment variable (or .env entry) that holds the key."""


_INT_OPTIONS = {"concurrency": 1, "batch": 1, "retries": 0, "json_retries": 0, "top_logprobs": 1}
_FLOAT_OPTIONS = {"timeout": 0.001, "deadline": 0.001}
_KNOWN_OPTIONS = sorted(["mode", "key_env", *_INT_OPTIONS, *_FLOAT_OPTIONS])


def parse_options(query: str, config: OpenAIBackendConfig) -> OpenAIBackendConfig:
    """Apply ``key=value&...`` options to a config; raises ScoringInputError on a bad one."""
    changes: dict[str, Any] = {}
    for key, raw in parse_qsl(query, keep_blank_values=True):
        if key in _INT_OPTIONS or key in _FLOAT_OPTIONS:
            try:
                value: Any = int(raw) if key in _INT_OPTIONS else float(raw)
            except ValueError:
                raise ScoringInputError(f"option {key}={raw!r} must be a number") from None
            minimum = _INT_OPTIONS.get(key, _FLOAT_OPTIONS.get(key, 0))
            if value < minimum:
                raise ScoringInputError(f"option {key}={raw} must be at least {minimum}")
            changes[key] = value
        elif key == "mode":
            if raw not in ("auto", *MODES):
                raise ScoringInputError(f"option mode={raw!r}: choose auto, {', '.join(MODES)}")
            changes[key] = raw
        elif key == "key_env":
            if not raw:
                raise ScoringInputError("option key_env needs the name of an environment variable")
            changes[key] = raw
        else:
            raise ScoringInputError(f"unknown option {key!r}; known options: {', '.join(_KNOWN_OPTIONS)}")
    return replace(config, **changes)


def call_deadline(config: OpenAIBackendConfig) -> float:
    """Seconds one call may take in all (the ``deadline`` option, else ``timeout * (retries + 1)``)."""
    return config.deadline if config.deadline is not None else config.timeout * (config.retries + 1)


def parse_openai_spec(argument: str | None) -> OpenAIBackendConfig:
    """``<model>[?options]`` (the part after ``openai:``)."""
    model, _, query = (argument or "").partition("?")
    if not model.strip():
        raise ScoringInputError("name a model after 'openai:', for example 'openai:gpt-4o-mini'")
    return parse_options(query, OpenAIBackendConfig(model=model.strip()))


_COMPATIBLE_SPEC = re.compile(r"^(?P<model>[^@]+)@(?P<url>https?://[^?]+)(?:\?(?P<query>.*))?$")


def parse_compatible_spec(argument: str | None) -> OpenAIBackendConfig:
    """``<model>@<base_url>[?options]`` (the part after ``openai-compatible:``)."""
    match = _COMPATIBLE_SPEC.match((argument or "").strip())
    if not match:
        raise ScoringInputError(
            "write 'openai-compatible:<model>@<base_url>', for example "
            f"'openai-compatible:llama3@http://127.0.0.1:8000/v1'; got {argument!r}"
        )
    config = OpenAIBackendConfig(
        model=match["model"].strip(),
        base_url=match["url"].rstrip("/"),
        key_env="OPENAI_COMPATIBLE_API_KEY",
    )
    return parse_options(match["query"] or "", config)


def refuse_key_env(argument: str | None) -> None:
    """A spec that does not come from this machine's operator may not name an environment variable to send as
    its key (option ``key_env``): it would read any of the machine's secrets."""
    _, _, query = (argument or "").partition("?")
    if any(key == "key_env" for key, _ in parse_qsl(query, keep_blank_values=True)):
        raise ScoringInputError(
            "a simulator spec typed in the dashboard may not name an environment variable of this machine to send "
            "as its key (option key_env); type the key in the sidebar's API key box instead"
        )


def is_operator_address(argument: str | None) -> bool:
    """True when an ``openai-compatible`` spec's address is the one set by whoever runs this process
    (``OPENAI_BASE_URL``)."""
    operator = os.environ.get("OPENAI_BASE_URL", "").strip().rstrip("/")
    _, _, address = (argument or "").partition("@")
    return bool(operator) and address.partition("?")[0].strip().rstrip("/") == operator


def resolve_api_key(
    explicit: str | None, env_name: str, *, required: bool, from_environment: bool = True
) -> str | None:
    """The key from the argument, the environment, or a .env file, in that order.

    ``from_environment=False``: only the argument (an address a stranger typed gets no key of this machine's).
    """
    if explicit or not from_environment:
        return explicit or None
    value = os.environ.get(env_name)
    if not value:
        from dotenv import dotenv_values, find_dotenv

        dotenv_path = find_dotenv(usecwd=True)
        if dotenv_path:
            value = dotenv_values(dotenv_path).get(env_name)
    if not value and required:
        raise MissingKeyError(
            f"no API key: set the environment variable {env_name} (export {env_name}=... in the shell, or a line "
            f"{env_name}=... in a .env file in the working directory or a folder above it); to read the key from "
            "another variable, add ?key_env=NAME to the simulator spec. From Python, openai_simulator(model, "
            "api_key=...) in scoring.simulators.openai_backend also takes it"
        )
    return value or None
