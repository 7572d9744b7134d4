"""Simulators on the OpenAI API and on any server that speaks it.

Spec strings::

    openai:<model>[?options]                       e.g. openai:gpt-4o-mini
    openai-compatible:<model>@<base_url>[?options] e.g. openai-compatible:qwen@http://127.0.0.1:8000/v1

Options (a query string after the spec, e.g. ``openai:gpt-4o-mini?concurrency=4&timeout=30``):

``mode``
    ``auto`` (default), ``prompt-logprobs``, ``generated-logprobs`` or ``json``; see below.
``concurrency``
    Requests in flight at once (default 8; the runner enforces it).
``batch``
    Sequences per request (default 10).
``timeout``
    Seconds per HTTP request (default 60).
``retries``
    Retries of the official SDK on 429, 5xx, timeouts and dropped connections,
    with its own exponential backoff (default 3).
``json_retries``
    Times an unusable reply is sent back to the model with what was wrong
    (default 2); sequences still unusable after that fail with the reason.
``top_logprobs``
    Alternatives read per position in the logprob modes (default 20).
``key_env``
    Environment variable holding the key (default ``OPENAI_API_KEY`` for
    ``openai``, ``OPENAI_COMPATIBLE_API_KEY`` for ``openai-compatible``, so an
    OpenAI key is never sent to another host unless asked). The variable may
    also sit in a ``.env`` file in the working directory or above it. For
    ``openai-compatible`` a key is optional.

Modes, chosen by what the server can do, never by model name. With
``mode=auto`` the backend tries them in this order on the first real request
and remembers the first that works:

``prompt-logprobs``
    One pass over a prompt that lists each token followed by a slot
    (`scoring.prompts.api_echo_prompt`), sent to the legacy completions
    endpoint with ``echo=True, logprobs=k``; the prediction at a slot is the
    expected value of the model's distribution over the tokens "0".."10" at
    that position. vLLM and llama.cpp-python (started with ``logits_all``)
    serve this; OpenAI's chat models do not.
``generated-logprobs``
    The chat layout (`scoring.prompts.API_CHAT_SYSTEM`): the model writes a
    JSON object of integer lists, and each written integer is replaced by the
    expected value over the digit tokens among its ``top_logprobs``.
``json``
    The same chat layout without logprobs: the integers as written, checked
    for count and range.

Judging (the judge scorers' yes/no questions) always uses chat: the question
after `scoring.prompts.JUDGE_CHAT_SYSTEM`, ``max_tokens=1``, and, unless
``mode=json``, ``top_logprobs``, so that P(yes) = p(Yes) / (p(Yes) + p(No)) at
the first generated token. A server that gives no logprobs is read from the
reply text (Yes = 1, No = 0); a reply that is neither is asked again up to
``json_retries`` times, then fails with the reason.

Failures are never values: a sequence that cannot be simulated (or a question
that cannot be answered) comes back as None with the reason, and the runner
does not cache it.

The backend also writes explanations (`OpenAISimulator.explain`): one chat
request per candidate (`scoring.prompts.EXPLAIN_CHAT_SYSTEM`), the first at
temperature 0, later ones at `EXPLAIN_TEMPERATURE` with a seed per attempt;
usage and cost are counted as for simulations.
"""

from __future__ import annotations

import asyncio
import bisect
import json
import logging
import math
import os
import re
import sys
import threading
import time
import weakref
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from typing import Any
from urllib.parse import parse_qsl

import openai

from scoring import pricing
from scoring.errors import ScoringInputError
from scoring.prompts import (
    API_CHAT_PROMPT_VERSION,
    API_CHAT_RETRY,
    API_CHAT_SYSTEM,
    API_ECHO_PROMPT_VERSION,
    EXPLAIN_CHAT_PROMPT_VERSION,
    EXPLAIN_CHAT_SYSTEM,
    JUDGE_CHAT_RETRY,
    JUDGE_CHAT_SYSTEM,
    api_chat_user_message,
    api_echo_prompt,
    explain_chat_user_message,
)
from scoring.simulators.base import (
    Capabilities,
    ExplanationAttempt,
    ExplanationExample,
    SequenceSimulation,
    SimulationBatch,
    Usage,
    check_simulation,
)
from scoring.simulators.judge import JudgeQuestion, Judgment, JudgmentBatch

logger = logging.getLogger(__name__)

PROMPT_LOGPROBS = "prompt-logprobs"
GENERATED_LOGPROBS = "generated-logprobs"
JSON_MODE = "json"
MODES = (PROMPT_LOGPROBS, GENERATED_LOGPROBS, JSON_MODE)
"""Modes in the order `mode=auto` tries them."""

MAX_ACTIVATION = 10

EXPLAIN_TEMPERATURE = 1.0
"""Sampling temperature of explain attempts after the first (which asks for temperature 0)."""

EXPLAIN_MAX_TOKENS = 60
"""Completion budget of one explanation (a phrase of at most 12 words, with room to spare)."""


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
    """SDK retries (with backoff) on 429, 5xx, timeouts and connection errors."""
    json_retries: int = 2
    """Re-asks after an unusable reply."""
    top_logprobs: int = 20
    """Alternatives read per position in the logprob modes."""
    key_env: str = "OPENAI_API_KEY"
    """Environment variable (or .env entry) that holds the key."""


_INT_OPTIONS = {"concurrency": 1, "batch": 1, "retries": 0, "json_retries": 0, "top_logprobs": 1}
_FLOAT_OPTIONS = {"timeout": 0.001}
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


def resolve_api_key(explicit: str | None, env_name: str, *, required: bool) -> str | None:
    """The key from the argument, the environment, or a .env file, in that order."""
    if explicit:
        return explicit
    value = os.environ.get(env_name)
    if not value:
        from dotenv import dotenv_values, find_dotenv

        dotenv_path = find_dotenv(usecwd=True)
        if dotenv_path:
            value = dotenv_values(dotenv_path).get(env_name)
    if not value and required:
        raise ScoringInputError(
            f"no API key: set the environment variable {env_name} (or put {env_name}=... in a .env "
            "file in the working directory), or pass api_key=..."
        )
    return value or None


# ---------------------------------------------------------------------------
# Reading replies (pure functions, tested against fixed replies)
# ---------------------------------------------------------------------------


def digit_expectation(alternatives: dict[str, float], prefix: str = "") -> float | None:
    """Expected activation over the alternatives that spell a value 0..10.

    `alternatives` maps token text to logprob at one position. `prefix` is text
    that the token at this position carries before the value (a tokenizer may
    glue a separator to the digit); alternatives not starting with it are
    ignored. None when no alternative is a value.
    """
    mass = 0.0
    weighted = 0.0
    for token, logprob in alternatives.items():
        if not token.startswith(prefix) or logprob is None or not math.isfinite(logprob):
            continue
        match = re.match(r"\s*(\d+)(?!\d)", token[len(prefix):])
        if not match:
            continue
        value = int(match[1])
        if value > MAX_ACTIVATION:
            continue
        probability = math.exp(logprob)
        mass += probability
        weighted += probability * value
    if mass <= 0.0:
        return None
    return weighted / mass


def token_starts(tokens: Sequence[str]) -> list[int]:
    """Character offset of each token when the tokens are concatenated."""
    starts = []
    position = 0
    for token in tokens:
        starts.append(position)
        position += len(token)
    return starts


def _rank(alternatives: dict[str, float] | None, token: str) -> int:
    if not alternatives or token not in alternatives:
        return sys.maxsize
    value = alternatives[token]
    return sum(1 for other in alternatives.values() if other > value)


def echo_shift(tokens: Sequence[str], top_logprobs: Sequence[dict[str, float] | None]) -> int:
    """0 when ``top_logprobs[i]`` is the distribution of token i (the OpenAI convention), 1 when of token i + 1.

    llama.cpp-python (0.3.x) reports the distribution one position late when
    the model adds no BOS token. Which convention holds shows in the reply: in
    a prompt as regular as ours, the echoed tokens are most often the top choice
    of the distribution that really predicts them.
    """
    aligned = sum(1 for i in range(1, len(tokens)) if _rank(top_logprobs[i], tokens[i]) == 0)
    shifted = sum(1 for i in range(1, len(tokens) - 1) if _rank(top_logprobs[i], tokens[i + 1]) == 0)
    return 1 if shifted > aligned else 0


def read_prompt_logprobs(
    prompt: str,
    slots: Sequence[Sequence[int]],
    tokens: Sequence[str],
    top_logprobs: Sequence[dict[str, float] | None],
    text_offset: Sequence[int] | None = None,
) -> list[list[float] | str]:
    """Per sequence, the expected value at each slot, or the reason it cannot be read.

    `tokens`, `top_logprobs` and `text_offset` are the echoed prompt as the
    legacy completions endpoint returns them (``echo=True, logprobs=k``).
    """
    starts = list(text_offset) if text_offset and len(text_offset) == len(tokens) else token_starts(tokens)
    shift = echo_shift(tokens, top_logprobs)
    results: list[list[float] | str] = []
    for sequence_slots in slots:
        values: list[float] = []
        problem = None
        for position, offset in enumerate(sequence_slots):
            index = bisect.bisect_right(starts, offset) - 1
            alternatives = top_logprobs[index - shift] if 0 <= index - shift < len(top_logprobs) else None
            if not alternatives:
                problem = f"the server returned no logprobs at token {position + 1}"
                break
            value = digit_expectation(alternatives, prompt[starts[index]:offset])
            if value is None:
                problem = (
                    f"no value 0..10 among the top {len(alternatives)} tokens at token {position + 1}"
                )
                break
            values.append(value)
        results.append(problem if problem is not None else values)
    return results


@dataclass
class ParsedReply:
    """A chat reply read against the token counts of the sequences it answers."""

    values: list[list[float] | None]
    """Per sequence, the integers as written, or None when unusable."""
    problems: list[str | None]
    """Per sequence, what was wrong (None when usable)."""
    spans: list[list[tuple[int, int]] | None] = field(default_factory=list)
    """Per sequence, the character span of each written number in the reply."""


_FENCE = re.compile(r"^\s*```(?:json)?\s*|\s*```\s*$")
_NUMBER = re.compile(r"-?\d+(?:\.\d+)?(?:[eE][-+]?\d+)?")


def _number_spans(text: str, key: str) -> list[tuple[int, int]] | None:
    match = re.search(r'"' + re.escape(key) + r'"\s*:\s*\[([^\]]*)\]', text)
    if not match:
        return None
    return [
        (match.start(1) + number.start(), match.start(1) + number.end())
        for number in _NUMBER.finditer(match[1])
    ]


def _check_values(raw: Any, count: int, number: int) -> tuple[list[float] | None, str | None]:
    if not isinstance(raw, list):
        return None, f"sequence {number} is not a list of numbers"
    if len(raw) != count:
        return None, f"sequence {number} has {len(raw)} values for {count} tokens"
    values: list[float] = []
    for item in raw:
        if isinstance(item, bool) or not isinstance(item, (int, float)):
            return None, f"sequence {number} holds {item!r}, not a number"
        if not 0 <= item <= MAX_ACTIVATION:
            return None, f"sequence {number} holds {item}, outside 0..{MAX_ACTIVATION}"
        values.append(float(item))
    return values, None


def parse_chat_reply(text: str | None, token_counts: Sequence[int]) -> ParsedReply:
    """Read a reply of the chat layout: ``{"1": [..], "2": [..]}`` (a list of lists is accepted)."""
    n = len(token_counts)
    body = _FENCE.sub("", text or "")
    start, end = body.find("{"), body.rfind("}")
    candidate = body[start:end + 1] if 0 <= start < end else body.strip()
    try:
        parsed = json.loads(candidate)
    except (json.JSONDecodeError, ValueError):
        snippet = (text or "").strip()[:80]
        return ParsedReply([None] * n, [f"the reply is not JSON: {snippet!r}"] * n, [None] * n)
    if isinstance(parsed, list) and len(parsed) == n and all(isinstance(item, list) for item in parsed):
        by_number: dict[str, Any] = {str(i + 1): item for i, item in enumerate(parsed)}
        from_dict = False
    elif isinstance(parsed, dict):
        by_number = {str(key).strip(): value for key, value in parsed.items()}
        from_dict = True
    else:
        return ParsedReply([None] * n, ["the reply is JSON but not an object of lists"] * n, [None] * n)
    values: list[list[float] | None] = []
    problems: list[str | None] = []
    spans: list[list[tuple[int, int]] | None] = []
    offset = (text or "").find(candidate) if from_dict else -1
    for number, count in enumerate(token_counts, start=1):
        if str(number) not in by_number:
            values.append(None)
            problems.append(f"sequence {number} is missing")
            spans.append(None)
            continue
        checked, problem = _check_values(by_number[str(number)], count, number)
        values.append(checked)
        problems.append(problem)
        number_spans = _number_spans(candidate, str(number)) if checked is not None and offset >= 0 else None
        if number_spans is not None and len(number_spans) == count:
            spans.append([(offset + a, offset + b) for a, b in number_spans])
        else:
            spans.append(None)
    return ParsedReply(values, problems, spans)


def refine_with_logprobs(
    text: str,
    values: list[float],
    spans: Sequence[tuple[int, int]],
    tokens: Sequence[str],
    top_logprobs: Sequence[dict[str, float]],
) -> list[float]:
    """Replace each written integer by the expected value over digit tokens where it was generated.

    A number whose first token does not cover it whole (digits split across
    tokens), or whose alternatives hold no value, keeps the written integer.
    """
    if "".join(tokens) != text:
        return values
    starts = token_starts(tokens)
    refined = list(values)
    for position, (begin, end) in enumerate(spans):
        index = bisect.bisect_right(starts, begin) - 1
        if index < 0 or starts[index] + len(tokens[index]) < end:
            continue
        expected = digit_expectation(top_logprobs[index], text[starts[index]:begin])
        if expected is not None:
            refined[position] = expected
    return refined


_ANSWER = re.compile(r"^\W*(yes|no)\b", re.IGNORECASE)


def read_yes_no(text: str | None, alternatives: dict[str, float] | None) -> tuple[float | None, str | None]:
    """P(yes) of a judge's reply, or None and what was wrong.

    `alternatives` maps each token the server offered at the first generated
    position to its logprob. When "Yes" or "No" (any case or spacing) is among
    them, P(yes) = p(yes) / (p(yes) + p(no)). Otherwise the text must start
    with Yes or No, read as 1 or 0.
    """
    yes_mass = no_mass = 0.0
    for token, logprob in (alternatives or {}).items():
        if logprob is None or not math.isfinite(logprob):
            continue
        word = token.strip().strip(".,!*:\"'").lower()
        if word == "yes":
            yes_mass += math.exp(logprob)
        elif word == "no":
            no_mass += math.exp(logprob)
    if yes_mass + no_mass > 0.0:
        return yes_mass / (yes_mass + no_mass), None
    match = _ANSWER.match(text or "")
    if match:
        return (1.0 if match[1].lower() == "yes" else 0.0), None
    return None, f"the reply is neither Yes nor No: {(text or '').strip()[:80]!r}"


# ---------------------------------------------------------------------------
# The backend
# ---------------------------------------------------------------------------


class _Unsupported(Exception):
    """The server cannot serve a mode (so `auto` moves on to the next)."""


# Parameters a server may reject by name; the chat call drops them (and remembers) rather than fail.
_DROPPABLE = {"temperature", "seed"}

RESPONSE_FORMATS = ("json_schema", "json_object+schema", "json_object", "none")
"""Ways to ask for the reply's shape, tried in this order until the server accepts one: OpenAI's
structured outputs (also vLLM, Ollama), the schema inside json_object (llama.cpp-python), plain JSON
mode, nothing."""


def activation_schema(token_counts: Sequence[int]) -> dict[str, Any]:
    """JSON schema of a reply: one list per sequence, exactly as long as the sequence, integers 0..10."""
    value = {"type": "integer", "minimum": 0, "maximum": MAX_ACTIVATION}
    properties = {
        str(number): {"type": "array", "items": value, "minItems": count, "maxItems": count}
        for number, count in enumerate(token_counts, start=1)
    }
    return {
        "type": "object",
        "properties": properties,
        "required": list(properties),
        "additionalProperties": False,
    }


def response_format(kind: str, schema: dict[str, Any]) -> dict[str, Any] | None:
    if kind == "json_schema":
        return {"type": "json_schema", "json_schema": {"name": "activations", "schema": schema}}
    if kind == "json_object+schema":
        return {"type": "json_object", "schema": schema}
    if kind == "json_object":
        return {"type": "json_object"}
    return None


def _mentions_response_format(exc: openai.APIStatusError) -> bool:
    return "response_format" in f"{exc.message} {exc.body}"


@dataclass
class _LoopState:
    client: openai.AsyncOpenAI
    detect_lock: asyncio.Lock


class OpenAISimulator:
    """Predicts activations with a model behind the OpenAI API (see the module docstring)."""

    def __init__(
        self,
        config: OpenAIBackendConfig,
        *,
        name: str = "openai",
        api_key: str | None = None,
        key_required: bool = True,
    ) -> None:
        self.config = config
        self.name = name
        self.model = config.model
        self._api_key = resolve_api_key(api_key, config.key_env, required=key_required)
        prices = pricing.price_per_million(config.model)
        self.capabilities = Capabilities(
            max_sequences_per_call=config.batch,
            max_concurrency=config.concurrency,
            deterministic=True,
            needs_network=True,
            cost_per_million_prompt_tokens=prices[0] if prices else None,
            cost_per_million_completion_tokens=prices[1] if prices else None,
            can_judge=True,
            max_questions_per_call=1,
        )
        if config.mode == PROMPT_LOGPROBS:
            self.prompt_version = API_ECHO_PROMPT_VERSION
        elif config.mode in (GENERATED_LOGPROBS, JSON_MODE):
            self.prompt_version = API_CHAT_PROMPT_VERSION
        else:
            self.prompt_version = f"{API_ECHO_PROMPT_VERSION}+{API_CHAT_PROMPT_VERSION}"
        self._resolved_mode: str | None = None if config.mode == "auto" else config.mode
        self._dropped: set[str] = set()
        self._token_limit_name = "max_tokens"
        self._format_level = 0
        self._judge_logprobs = config.mode != JSON_MODE
        self._states: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, _LoopState] = (
            weakref.WeakKeyDictionary()
        )
        self._states_lock = threading.Lock()

    explain_prompt_version = EXPLAIN_CHAT_PROMPT_VERSION

    @property
    def mode(self) -> str | None:
        """The mode in use: the forced one, the detected one, or None before the first request."""
        return self._resolved_mode

    def options(self) -> dict[str, Any]:
        return {
            "base_url": self.config.base_url,
            "mode": self.config.mode,
            "batch": self.config.batch,
            "top_logprobs": self.config.top_logprobs,
            "temperature": 0,
        }

    def explain_options(self) -> dict[str, Any]:
        return {
            "base_url": self.config.base_url,
            "temperature": EXPLAIN_TEMPERATURE,
            "max_tokens": EXPLAIN_MAX_TOKENS,
        }

    async def explain(self, examples: Sequence[ExplanationExample], attempt: int, seed: int) -> ExplanationAttempt:
        """One candidate explanation from a chat request; failures come back as the reason."""
        usage = Usage()
        params: dict[str, Any] = {
            "model": self.model,
            "messages": [
                {"role": "system", "content": EXPLAIN_CHAT_SYSTEM},
                {"role": "user", "content": explain_chat_user_message([example.as_lists() for example in examples])},
            ],
            "temperature": 0 if attempt == 0 else EXPLAIN_TEMPERATURE,
            "seed": seed + attempt,
            "max_tokens": EXPLAIN_MAX_TOKENS,
        }
        try:
            response = await self._chat(self._state().client, params, None, usage)
        except _Unsupported as exc:
            return ExplanationAttempt(None, f"the server cannot answer the request: {exc}", usage)
        except openai.APIError as exc:
            return ExplanationAttempt(None, self._describe(exc), usage)
        finally:
            usage.cost_usd = pricing.cost_usd(self.model, usage.prompt_tokens, usage.completion_tokens)
        choice = response.choices[0] if response.choices else None
        text = choice.message.content if choice is not None and choice.message else None
        if not text or not text.strip():
            reason = getattr(choice, "finish_reason", None)
            return ExplanationAttempt(None, f"the model returned no text (finish reason: {reason})", usage)
        return ExplanationAttempt(text, usage=usage)

    def _state(self) -> _LoopState:
        # An httpx pool belongs to one event loop; each loop (asyncio.run call, thread) gets its own client.
        loop = asyncio.get_running_loop()
        with self._states_lock:
            state = self._states.get(loop)
            if state is None:
                client = openai.AsyncOpenAI(
                    api_key=self._api_key or "no-key",
                    base_url=self.config.base_url,
                    timeout=self.config.timeout,
                    max_retries=self.config.retries,
                )
                state = _LoopState(client, asyncio.Lock())
                self._states[loop] = state
            return state

    async def simulate(self, explanation: str, sequences: Sequence[Sequence[str]]) -> SimulationBatch:
        started = time.perf_counter()
        usage = Usage()
        token_lists = [list(tokens) for tokens in sequences]
        state = self._state()
        try:
            if self._resolved_mode is not None:
                results = await self._run(self._resolved_mode, state.client, explanation, token_lists, usage)
            else:
                async with state.detect_lock:
                    results = await self._detect_and_run(state.client, explanation, token_lists, usage)
        except _Unsupported as exc:
            results = [SequenceSimulation(None, f"mode {self.config.mode} is not served: {exc}") for _ in token_lists]
        except openai.APIError as exc:
            results = [SequenceSimulation(None, self._describe(exc)) for _ in token_lists]
        usage.cost_usd = pricing.cost_usd(self.model, usage.prompt_tokens, usage.completion_tokens)
        usage.seconds = time.perf_counter() - started
        return SimulationBatch(list(results), usage)

    async def _detect_and_run(
        self, client: openai.AsyncOpenAI, explanation: str, sequences: list[list[str]], usage: Usage
    ) -> list[SequenceSimulation]:
        if self._resolved_mode is not None:
            return await self._run(self._resolved_mode, client, explanation, sequences, usage)
        reasons = []
        for mode in MODES:
            try:
                results = await self._run(mode, client, explanation, sequences, usage)
            except _Unsupported as exc:
                logger.info("%s: mode %s not available (%s)", self.config.base_url or "openai", mode, exc)
                reasons.append(f"{mode}: {exc}")
                continue
            if self._resolved_mode is None:
                self._resolved_mode = mode
            logger.info("%s %s: using mode %s", self.name, self.model, self._resolved_mode)
            return results
        raise _Unsupported("; ".join(reasons))

    def _describe(self, exc: openai.APIError) -> str:
        where = self.config.base_url or "the OpenAI API"
        if isinstance(exc, openai.APITimeoutError):
            return f"request to {where} timed out after {self.config.timeout:g}s ({self.config.retries} retries)"
        if isinstance(exc, openai.APIConnectionError):
            return f"could not reach {where}: {exc}"
        if isinstance(exc, openai.APIStatusError):
            retried = f" after {self.config.retries} retries" if exc.status_code in (408, 409, 429) or (
                exc.status_code >= 500
            ) else ""
            return f"{where} answered HTTP {exc.status_code}{retried}: {exc.message}"
        return f"{where}: {exc}"

    async def _run(
        self,
        mode: str,
        client: openai.AsyncOpenAI,
        explanation: str,
        sequences: list[list[str]],
        usage: Usage,
    ) -> list[SequenceSimulation]:
        if mode == PROMPT_LOGPROBS:
            return await self._run_prompt_logprobs(client, explanation, sequences, usage)
        return await self._run_chat(mode, client, explanation, sequences, usage)

    async def _run_prompt_logprobs(
        self, client: openai.AsyncOpenAI, explanation: str, sequences: list[list[str]], usage: Usage
    ) -> list[SequenceSimulation]:
        prompt, slots = api_echo_prompt(explanation, sequences)
        try:
            response = await client.completions.create(
                model=self.model,
                prompt=prompt,
                max_tokens=1,
                temperature=0,
                echo=True,
                logprobs=self.config.top_logprobs,
            )
        except (openai.BadRequestError, openai.NotFoundError, openai.UnprocessableEntityError) as exc:
            raise _Unsupported(f"HTTP {exc.status_code}: {exc.message}") from exc
        except openai.InternalServerError as exc:
            if self._resolved_mode == PROMPT_LOGPROBS:
                raise
            # Some servers answer 500 to echo+logprobs they cannot compute (llama.cpp without logits_all).
            raise _Unsupported(f"HTTP {exc.status_code}: {exc.message}") from exc
        _count(usage, response)
        choice = response.choices[0] if response.choices else None
        logprobs = getattr(choice, "logprobs", None)
        tokens = getattr(logprobs, "tokens", None)
        top = getattr(logprobs, "top_logprobs", None)
        if not tokens or not top or not any(top[1:]):
            raise _Unsupported("the server returned no prompt-token logprobs")
        read = read_prompt_logprobs(prompt, slots, tokens, top, getattr(logprobs, "text_offset", None))
        return [
            SequenceSimulation(None, value) if isinstance(value, str) else check_simulation(value, len(tokens_))
            for value, tokens_ in zip(read, sequences, strict=True)
        ]

    async def _chat(
        self, client: openai.AsyncOpenAI, params: dict[str, Any], schema: dict[str, Any] | None, usage: Usage
    ) -> Any:
        """One chat request; what the server rejects by name is dropped or stepped down, and remembered.

        With a `schema` the reply's shape is asked for in the first form the server accepts; without, it is
        free text (no response_format is sent): judge questions and explanations.
        """
        for _ in range(len(_DROPPABLE) + len(RESPONSE_FORMATS) + 2):
            request = {key: value for key, value in params.items() if key not in self._dropped}
            level = self._format_level
            shape = response_format(RESPONSE_FORMATS[level], schema) if schema is not None else None
            if shape is not None:
                request["response_format"] = shape
            if self._token_limit_name != "max_tokens" and "max_tokens" in request:
                # Newer OpenAI models count reasoning tokens in this budget: leave room for them.
                request[self._token_limit_name] = request.pop("max_tokens") + 4096
            try:
                response = await client.chat.completions.create(**request)
            except openai.APIStatusError as exc:
                if exc.status_code not in (400, 422, 500):
                    raise
                rejected = _rejected_parameter(exc)
                # llama.cpp-python answers a request it cannot validate with 500, so 500 counts here too
                if shape is not None and (rejected == "response_format" or _mentions_response_format(exc)):
                    # concurrent requests may all be refused: step down once per level, not once per request
                    self._format_level = max(self._format_level, level + 1)
                    logger.info("%s rejects that response_format; trying %s", self.model,
                                RESPONSE_FORMATS[self._format_level])
                    continue
                if exc.status_code == 500:
                    raise
                if rejected in _DROPPABLE and rejected not in self._dropped:
                    logger.info("%s rejects %r; sending requests without it", self.model, rejected)
                    self._dropped.add(rejected)
                    continue
                if rejected == "max_tokens" and self._token_limit_name == "max_tokens":
                    self._token_limit_name = "max_completion_tokens"
                    continue
                if rejected in ("logprobs", "top_logprobs"):
                    raise _Unsupported(f"HTTP {exc.status_code}: {exc.message}") from exc
                raise
            _count(usage, response)
            return response
        raise _Unsupported("the server rejected every form of the chat request")

    async def _run_chat(
        self,
        mode: str,
        client: openai.AsyncOpenAI,
        explanation: str,
        sequences: list[list[str]],
        usage: Usage,
    ) -> list[SequenceSimulation]:
        counts = [len(tokens) for tokens in sequences]
        messages: list[dict[str, str]] = [
            {"role": "system", "content": API_CHAT_SYSTEM},
            {"role": "user", "content": api_chat_user_message(explanation, sequences)},
        ]
        params: dict[str, Any] = {
            "model": self.model,
            "temperature": 0,
            "seed": 0,
            # about two tokens per value plus keys and brackets, with room to spare
            "max_tokens": 4 * sum(counts) + 16 * len(counts) + 32,
        }
        if mode == GENERATED_LOGPROBS:
            params["logprobs"] = True
            params["top_logprobs"] = self.config.top_logprobs
        schema = activation_schema(counts)
        final: list[SequenceSimulation | None] = [None] * len(sequences)
        problems: list[str | None] = [None] * len(sequences)
        for attempt in range(self.config.json_retries + 1):
            response = await self._chat(client, {**params, "messages": messages}, schema, usage)
            choice = response.choices[0] if response.choices else None
            text = choice.message.content if choice is not None and choice.message else None
            parsed = parse_chat_reply(text, counts)
            content_logprobs = getattr(getattr(choice, "logprobs", None), "content", None)
            if mode == GENERATED_LOGPROBS and not content_logprobs:
                if self._resolved_mode == GENERATED_LOGPROBS:
                    raise _Unsupported("the server stopped returning logprobs")
                # The reply is still a usable JSON-mode reply; remember that this server gives no logprobs.
                logger.info("%s returns no logprobs for generated tokens; using json mode", self.model)
                self._resolved_mode = JSON_MODE
                mode = JSON_MODE
            for index, values in enumerate(parsed.values):
                if final[index] is not None:
                    continue
                if values is None:
                    problems[index] = parsed.problems[index]
                    continue
                number_spans = parsed.spans[index]
                if mode == GENERATED_LOGPROBS and content_logprobs and number_spans and text:
                    values = refine_with_logprobs(
                        text,
                        values,
                        number_spans,
                        [item.token for item in content_logprobs],
                        [{alt.token: alt.logprob for alt in item.top_logprobs or []} for item in content_logprobs],
                    )
                final[index] = check_simulation(values, counts[index])
            pending = [problems[i] for i, result in enumerate(final) if result is None]
            if not pending:
                break
            if attempt < self.config.json_retries:
                logger.info("unusable reply (attempt %d): %s", attempt + 1, "; ".join(map(str, pending)))
                messages = [
                    *messages,
                    {"role": "assistant", "content": text or ""},
                    {"role": "user", "content": API_CHAT_RETRY.format(problems="; ".join(map(str, pending)))},
                ]
        tries = self.config.json_retries + 1
        return [
            result
            if result is not None
            else SequenceSimulation(None, f"no usable reply after {tries} attempts: {problems[i]}")
            for i, result in enumerate(final)
        ]


    async def judge(self, questions: Sequence[JudgeQuestion]) -> JudgmentBatch:
        """Answer each question with one chat request (max_tokens=1), read through logprobs when served."""
        started = time.perf_counter()
        usage = Usage()
        state = self._state()
        judgments: list[Judgment] = []
        for question in questions:
            try:
                judgments.append(await self._judge_one(state.client, question, usage))
            except _Unsupported as exc:
                judgments.append(Judgment(None, f"the server cannot answer: {exc}"))
            except openai.APIError as exc:
                judgments.append(Judgment(None, self._describe(exc)))
        usage.cost_usd = pricing.cost_usd(self.model, usage.prompt_tokens, usage.completion_tokens)
        usage.seconds = time.perf_counter() - started
        return JudgmentBatch(judgments, usage)

    async def _judge_one(self, client: openai.AsyncOpenAI, question: JudgeQuestion, usage: Usage) -> Judgment:
        messages: list[dict[str, str]] = [
            {"role": "system", "content": JUDGE_CHAT_SYSTEM},
            {"role": "user", "content": question.prompt},
        ]
        params: dict[str, Any] = {"model": self.model, "temperature": 0, "seed": 0, "max_tokens": 1}
        problem = "no reply"
        attempt = 0
        while attempt <= self.config.json_retries:
            if self._judge_logprobs:
                params.update(logprobs=True, top_logprobs=self.config.top_logprobs)
            else:
                params.pop("logprobs", None)
                params.pop("top_logprobs", None)
            try:
                response = await self._chat(client, {**params, "messages": messages}, None, usage)
            except _Unsupported:
                if not self._judge_logprobs:
                    raise
                logger.info("%s rejects logprobs; judging from the reply text", self.model)
                self._judge_logprobs = False
                continue
            choice = response.choices[0] if response.choices else None
            text = choice.message.content if choice is not None and choice.message else None
            content_logprobs = getattr(getattr(choice, "logprobs", None), "content", None)
            first = content_logprobs[0] if content_logprobs else None
            alternatives = {item.token: item.logprob for item in (first.top_logprobs or [])} if first else None
            p_yes, problem_found = read_yes_no(text, alternatives)
            if p_yes is not None:
                return Judgment(p_yes)
            problem = problem_found or problem
            attempt += 1
            if attempt <= self.config.json_retries:
                logger.info("unusable judge reply (attempt %d): %s", attempt, problem)
                messages = [
                    *messages,
                    {"role": "assistant", "content": text or ""},
                    {"role": "user", "content": JUDGE_CHAT_RETRY},
                ]
        return Judgment(None, f"no usable answer after {self.config.json_retries + 1} attempts: {problem}")


def _rejected_parameter(exc: openai.APIStatusError) -> str | None:
    body = exc.body if isinstance(exc.body, dict) else {}
    error = body.get("error", body) if isinstance(body.get("error", body), dict) else body
    param = error.get("param") if isinstance(error, dict) else None
    return param if isinstance(param, str) else None


def _count(usage: Usage, response: Any) -> None:
    usage.requests += 1
    counted = getattr(response, "usage", None)
    if counted is not None:
        usage.prompt_tokens += counted.prompt_tokens or 0
        usage.completion_tokens += counted.completion_tokens or 0


def openai_simulator(argument: str | None, *, api_key: str | None = None) -> OpenAISimulator:
    """Factory of ``openai:<model>[?options]``."""
    return OpenAISimulator(parse_openai_spec(argument), name="openai", api_key=api_key)


def compatible_simulator(argument: str | None, *, api_key: str | None = None) -> OpenAISimulator:
    """Factory of ``openai-compatible:<model>@<base_url>[?options]``."""
    return OpenAISimulator(
        parse_compatible_spec(argument), name="openai-compatible", api_key=api_key, key_required=False
    )
