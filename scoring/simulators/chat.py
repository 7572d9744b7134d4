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

from scoring.shared_types import REPLY_SHAPES, Capabilities, ChatBatch, ChatJudge, ChatReply, ChatRequest

__all__ = ["REPLY_SHAPES", "ChatBatch", "ChatJudge", "ChatReply", "ChatRequest", "can_chat"]


def can_chat(simulator: object) -> bool:
    """True when `simulator` answers protocol chat requests."""
    return callable(getattr(simulator, "chat", None)) and isinstance(
        getattr(simulator, "capabilities", None), Capabilities
    )
