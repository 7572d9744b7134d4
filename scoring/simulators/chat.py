"""The optional third interface of a simulator: answering a whole chat request as a scoring protocol sends it.

Neuronpedia's score types and SAEBench's autointerp (`scoring.protocols`) send chat
messages with set parameters (temperature, ``response_format``, ``max_tokens``) and
parse the reply text themselves. A simulator that can answer them implements
`ChatJudge.chat`:

- API backends (``openai:``, ``openai-compatible:``) send the request as it is;
- the embedded ``local`` model answers in the shape the protocol parses
  (`ChatRequest.reply_shape`) by constrained decoding: its choices are its own
  (the most likely at temperature 0, sampled at temperature 1), the layout is fixed;
- ``fake`` answers by a word rule, for tests.

Caching, chunking, concurrency and usage run once, in `scoring.simulators.runner.run_chats`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

from scoring.simulators.base import Capabilities, Usage

REPLY_SHAPES = ("text", "match-json", "binary-list", "index-list")
"""What a protocol parses from the reply: free text; ``{"match": true|false, ...}`` (recall_alt);
a JSON list of `ChatRequest.answers` 1/0 entries (delphi's fuzz and detection); a comma-separated
list of example numbers from 1 to `ChatRequest.answers`, or "None" (SAEBench)."""


@dataclass(frozen=True)
class ChatRequest:
    """One chat completion request of a protocol, and what its reply is about."""

    messages: tuple[tuple[str, str], ...]
    """(role, content) in order: system, few-shot turns, the final user message."""
    temperature: float
    max_tokens: int
    response_format: str | None = None
    """``json_object`` when the protocol asks for JSON mode, else None (nothing sent)."""
    extra: tuple[tuple[str, Any], ...] = ()
    """Further request parameters the protocol sends as they are (e.g. ``reasoning_effort``)."""
    reply_shape: str = "text"
    """One of `REPLY_SHAPES`: what the protocol parses (the embedded judge answers in this shape)."""
    answers: int = 0
    """binary-list: entries expected; index-list: how many numbered examples there are."""
    run: int = 0
    """Which of the k runs of a sampled (temperature > 0) judge this is; enters the cache key."""
    protocol: str = ""
    """Which protocol sends it (``recall_alt``, ``eleuther_fuzz``, ...); enters the cache key."""
    explanation: str = ""
    """The explanation judged (read by judges that do not read prompts: ``fake``)."""
    items: tuple[str, ...] = ()
    """The texts judged, as shown (read by ``fake``)."""

    def message_dicts(self) -> list[dict[str, str]]:
        """The messages as the OpenAI API takes them."""
        return [{"role": role, "content": content} for role, content in self.messages]

    def key_fields(self) -> dict[str, Any]:
        """Everything of the request that changes the reply (the cache key's part)."""
        return {
            "messages": [list(message) for message in self.messages],
            "temperature": self.temperature,
            "max_tokens": self.max_tokens,
            "response_format": self.response_format,
            "extra": [list(item) for item in self.extra],
            "reply_shape": self.reply_shape,
            "answers": self.answers,
            "run": self.run,
            "protocol": self.protocol,
        }


@dataclass
class ChatReply:
    """The reply text of one request, or why there is none."""

    text: str | None
    """What the model wrote ('' for an empty reply); None when the call itself failed."""
    error: str | None = None
    """Why the call failed (None when there is a reply, even an unusable one: the protocol judges it)."""

    @property
    def ok(self) -> bool:
        return self.text is not None and self.error is None


@dataclass
class ChatBatch:
    """What one `chat` call returns: one reply per request, in order."""

    replies: list[ChatReply]
    usage: Usage = field(default_factory=Usage)


@runtime_checkable
class ChatJudge(Protocol):
    """Answers protocol chat requests. `name`, `model` and `options()` enter the cache key with the request."""

    name: str
    model: str
    capabilities: Capabilities

    def options(self) -> dict[str, Any]: ...

    async def chat(self, requests: Sequence[ChatRequest]) -> ChatBatch: ...


def can_chat(simulator: object) -> bool:
    """True when `simulator` answers protocol chat requests."""
    return callable(getattr(simulator, "chat", None)) and isinstance(
        getattr(simulator, "capabilities", None), Capabilities
    )
