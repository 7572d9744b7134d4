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
    Retries on 429, 5xx, timeouts and dropped connections (the official SDK's,
    with its backoff, honouring ``Retry-After``) and on 200 replies that are
    not a completion (an HTML page, broken or empty JSON, logprobs cut short;
    backoff from 0.5 s) (default 3).
``deadline``
    Seconds one call (a chunk of sequences, a judge question, an explanation)
    may take in all, its retries and their waits included (default
    ``timeout * (retries + 1)``). A server that trickles its reply, or asks
    to wait longer than that, fails the call with the reason when it passes.
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

Protocol requests (`chat`: Neuronpedia's score types and SAEBench's autointerp, built
by `scoring.protocols`) go out as the protocol sets them, and the reply text comes back
for the protocol to parse; a server that rejects a parameter by name is handled as for
every chat request (``temperature``, ``seed`` and ``reasoning_effort`` are dropped and
remembered, ``max_tokens`` renamed).

The module is split by concern: `openai_config` (spec strings and options),
`openai_replies` (pure reply parsers), `openai_requests` (what a server accepts,
what counts as an answer) and this one (the simulator).

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
import logging
import threading
import time
import weakref
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from functools import partial
from typing import Any, TypeVar

import openai

from scoring import pricing
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
from scoring.shared_types import Credentials
from scoring.simulators.base import (
    Capabilities,
    ExplanationAttempt,
    ExplanationExample,
    SequenceSimulation,
    SimulationBatch,
    Usage,
    check_simulation,
)
from scoring.simulators.chat import ChatBatch, ChatReply, ChatRequest
from scoring.simulators.judge import JudgeQuestion, Judgment, JudgmentBatch
from scoring.simulators.openai_config import (
    GENERATED_LOGPROBS,
    JSON_MODE,
    MODES,
    PROMPT_LOGPROBS,
    OpenAIBackendConfig,
    call_deadline,
    is_operator_address,
    parse_compatible_spec,
    parse_openai_spec,
    refuse_key_env,
    resolve_api_key,
)
from scoring.simulators.openai_replies import (
    activation_schema,
    parse_chat_reply,
    read_prompt_logprobs,
    read_yes_no,
    refine_with_logprobs,
)
from scoring.simulators.openai_requests import (
    RESPONSE_FORMATS,
    BadReply,
    Negotiator,
    Unsupported,
    describe_error,
)

__all__ = [
    "GENERATED_LOGPROBS",
    "JSON_MODE",
    "PROMPT_LOGPROBS",
    "RESPONSE_FORMATS",
    "OpenAIBackendConfig",
    "OpenAISimulator",
    "compatible_simulator",
    "openai_simulator",
    "parse_compatible_spec",
    "parse_openai_spec",
    "read_yes_no",
]

logger = logging.getLogger(__name__)

EXPLAIN_TEMPERATURE = 1.0
"""Sampling temperature of explain attempts after the first (which asks for temperature 0)."""

EXPLAIN_MAX_TOKENS = 60
"""Completion budget of one explanation (a phrase of at most 12 words, with room to spare)."""


@dataclass
class _LoopState:
    client: openai.AsyncOpenAI
    detection: asyncio.Future[Unsupported | None] | None = None
    """While one request finds out which mode the server serves (``mode=auto``), the others of this loop
    wait on it; it ends with None, or with the Unsupported that every mode raised."""


class OpenAISimulator:
    """Predicts activations with a model behind the OpenAI API (see the module docstring)."""

    def __init__(
        self,
        config: OpenAIBackendConfig,
        *,
        name: str = "openai",
        api_key: str | None = None,
        key_required: bool = True,
        key_from_environment: bool = True,
    ) -> None:
        self.config = config
        self.name = name
        self.model = config.model
        self._api_key = resolve_api_key(
            api_key, config.key_env, required=key_required, from_environment=key_from_environment
        )
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
        self.negotiator = Negotiator(config.model, config)
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

    @property
    def response_format(self) -> str:
        """The form of ``response_format`` the server accepted (one of `RESPONSE_FORMATS`)."""
        return self.negotiator.response_format

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
        client = self._state().client
        try:
            response = await self._within_deadline(lambda: self.negotiator.chat(client, params, None, usage))
        except Unsupported as exc:
            return ExplanationAttempt(None, f"the server cannot answer the request: {exc}", usage)
        except _Failed as exc:
            return ExplanationAttempt(None, str(exc), usage)
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
                state = _LoopState(client)
                self._states[loop] = state
            return state

    async def simulate(self, explanation: str, sequences: Sequence[Sequence[str]]) -> SimulationBatch:
        started = time.perf_counter()
        usage = Usage()
        token_lists = [list(tokens) for tokens in sequences]
        state = self._state()

        async def run() -> list[SequenceSimulation]:
            while self._resolved_mode is None:
                if state.detection is None:
                    return await self._detect(state, explanation, token_lists, usage)
                # Another request is finding the mode: wait for its answer, not for each other.
                unsupported = await asyncio.shield(state.detection)
                if unsupported is not None:
                    raise Unsupported(str(unsupported))
            return await self._run(self._resolved_mode, state.client, explanation, token_lists, usage)

        try:
            results = await self._within_deadline(run)
        except Unsupported as exc:
            results = [SequenceSimulation(None, f"mode {self.config.mode} is not served: {exc}") for _ in token_lists]
        except _Failed as exc:
            results = [SequenceSimulation(None, str(exc)) for _ in token_lists]
        usage.seconds = time.perf_counter() - started
        return SimulationBatch(list(results), usage)

    async def _detect(
        self, state: _LoopState, explanation: str, sequences: list[list[str]], usage: Usage
    ) -> list[SequenceSimulation]:
        """Run this request as the one that finds the mode; requests arriving meanwhile wait for the answer.

        A detection that fails for another reason than the server serving no mode (a timeout, a 500 after
        the retries) answers the waiters with None: one of them then detects in turn.
        """
        detection: asyncio.Future[Unsupported | None] = asyncio.get_running_loop().create_future()
        state.detection = detection
        outcome: Unsupported | None = None
        try:
            return await self._detect_and_run(state.client, explanation, sequences, usage)
        except Unsupported as exc:
            outcome = exc
            raise
        finally:
            state.detection = None
            detection.set_result(outcome)

    async def _detect_and_run(
        self, client: openai.AsyncOpenAI, explanation: str, sequences: list[list[str]], usage: Usage
    ) -> list[SequenceSimulation]:
        reasons = []
        for mode in MODES:
            try:
                results = await self._run(mode, client, explanation, sequences, usage)
            except Unsupported as exc:
                logger.info("%s: mode %s not available (%s)", self.config.base_url or "openai", mode, exc)
                reasons.append(f"{mode}: {exc}")
                continue
            if self._resolved_mode is None:
                self._resolved_mode = mode
            logger.info("%s %s: using mode %s", self.name, self.model, self._resolved_mode)
            return results
        raise Unsupported("; ".join(reasons))

    async def _within_deadline(self, work: Callable[[], Awaitable[Result]]) -> Result:
        """`work()` within the call deadline; every way it can fail upstream becomes `_Failed` with the reason."""
        deadline = call_deadline(self.config)
        try:
            async with asyncio.timeout(deadline):
                return await work()
        except TimeoutError:
            raise _Failed(
                f"no answer from {self.negotiator.where} within the deadline of {deadline:g}s (the deadline "
                "option; by default timeout x (retries + 1))"
            ) from None
        except openai.APIError as exc:
            raise _Failed(describe_error(exc, self.negotiator.where, self.config)) from exc
        except BadReply as exc:
            raise _Failed(str(exc)) from exc

    async def _run(
        self, mode: str, client: openai.AsyncOpenAI, explanation: str, sequences: list[list[str]], usage: Usage
    ) -> list[SequenceSimulation]:
        if mode == PROMPT_LOGPROBS:
            return await self._run_prompt_logprobs(client, explanation, sequences, usage)
        return await self._run_chat(mode, client, explanation, sequences, usage)

    async def _run_prompt_logprobs(
        self, client: openai.AsyncOpenAI, explanation: str, sequences: list[list[str]], usage: Usage
    ) -> list[SequenceSimulation]:
        prompt, slots = api_echo_prompt(explanation, sequences)
        params = {
            "model": self.model,
            "prompt": prompt,
            "max_tokens": 1,
            "temperature": 0,
            "echo": True,
            "logprobs": self.config.top_logprobs,
        }

        def read(response: Any) -> list[list[float] | str]:
            logprobs = getattr(response.choices[0], "logprobs", None)
            tokens = getattr(logprobs, "tokens", None)
            top = getattr(logprobs, "top_logprobs", None)
            if not tokens or not top or not any(top[1:]):
                raise Unsupported("the server returned no prompt-token logprobs")
            return read_prompt_logprobs(prompt, slots, tokens, top, getattr(logprobs, "text_offset", None))

        try:
            values = await self.negotiator.complete(client, params, usage, read)
        except (openai.BadRequestError, openai.NotFoundError, openai.UnprocessableEntityError) as exc:
            raise Unsupported(f"HTTP {exc.status_code}: {exc.message}") from exc
        except openai.InternalServerError as exc:
            if self._resolved_mode == PROMPT_LOGPROBS:
                raise
            # Some servers answer 500 to echo+logprobs they cannot compute (llama.cpp without logits_all).
            raise Unsupported(f"HTTP {exc.status_code}: {exc.message}") from exc
        return [
            SequenceSimulation(None, value) if isinstance(value, str) else check_simulation(value, len(tokens_))
            for value, tokens_ in zip(values, sequences, strict=True)
        ]

    async def _run_chat(
        self, mode: str, client: openai.AsyncOpenAI, explanation: str, sequences: list[list[str]], usage: Usage
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
            response = await self.negotiator.chat(client, {**params, "messages": messages}, schema, usage)
            choice = response.choices[0] if response.choices else None
            text = choice.message.content if choice is not None and choice.message else None
            parsed = parse_chat_reply(text, counts)
            content_logprobs = getattr(getattr(choice, "logprobs", None), "content", None)
            if mode == GENERATED_LOGPROBS and not content_logprobs:
                if self._resolved_mode == GENERATED_LOGPROBS:
                    raise Unsupported("the server stopped returning logprobs")
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
                judgments.append(await self._within_deadline(partial(self._judge_one, state.client, question, usage)))
            except Unsupported as exc:
                judgments.append(Judgment(None, f"the server cannot answer: {exc}"))
            except _Failed as exc:
                judgments.append(Judgment(None, str(exc)))
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
                response = await self.negotiator.chat(client, {**params, "messages": messages}, None, usage)
            except Unsupported:
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


    async def chat(self, requests: Sequence[ChatRequest]) -> ChatBatch:
        """Send each protocol request as it is (messages, temperature, max_tokens, response_format and the
        protocol's extra parameters); the reply text comes back unparsed, a failed call as its reason."""
        started = time.perf_counter()
        usage = Usage()
        state = self._state()
        replies: list[ChatReply] = []
        for request in requests:
            params: dict[str, Any] = {
                "model": self.model,
                "messages": request.message_dicts(),
                "temperature": request.temperature,
                "max_tokens": request.max_tokens,
                **dict(request.extra),
            }
            if request.response_format is not None:
                params["response_format"] = {"type": request.response_format}
            try:
                response = await self._within_deadline(
                    partial(self.negotiator.chat, state.client, params, None, usage)
                )
            except Unsupported as exc:
                replies.append(ChatReply(None, f"the server cannot answer the request: {exc}"))
                continue
            except _Failed as exc:
                replies.append(ChatReply(None, str(exc)))
                continue
            choice = response.choices[0] if response.choices else None
            text = choice.message.content if choice is not None and choice.message else None
            replies.append(ChatReply(text or ""))
        usage.seconds = time.perf_counter() - started
        return ChatBatch(replies, usage)


class _Failed(Exception):
    """A call that failed upstream (status, connection, deadline, unusable replies); the message says why."""


Result = TypeVar("Result")


def openai_simulator(
    argument: str | None, *, api_key: str | None = None, credentials: Credentials | None = None
) -> OpenAISimulator:
    """Factory of ``openai:<model>[?options]``.

    ``credentials`` (else ``Credentials(api_key)``): a spec not from this machine's operator may not name an
    environment variable as its key; its caller's key is sent, else the machine's ``OPENAI_API_KEY``, the one
    address that key is for.
    """
    credentials = credentials or Credentials(api_key=api_key)
    if not credentials.from_operator:
        refuse_key_env(argument)
    return OpenAISimulator(parse_openai_spec(argument), name="openai", api_key=credentials.api_key)


def compatible_simulator(
    argument: str | None,
    *,
    api_key: str | None = None,
    key_from_environment: bool = True,
    credentials: Credentials | None = None,
) -> OpenAISimulator:
    """Factory of ``openai-compatible:<model>@<base_url>[?options]``.

    ``key_from_environment=False``: send only ``api_key`` (or none), never a key of this machine's.
    ``credentials`` (else ``Credentials(api_key)``): a spec not from this machine's operator may not name an
    environment variable as its key, and gets a key of this machine's only for the address the operator set
    (``OPENAI_BASE_URL``); any other address gets its caller's key, or none.
    """
    credentials = credentials or Credentials(api_key=api_key)
    if not credentials.from_operator:
        refuse_key_env(argument)
        key_from_environment = key_from_environment and is_operator_address(argument)
    return OpenAISimulator(
        parse_compatible_spec(argument),
        name="openai-compatible",
        api_key=credentials.api_key,
        key_required=False,
        key_from_environment=key_from_environment,
    )
