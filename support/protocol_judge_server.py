"""An OpenAI-compatible chat server that records every request, for loopback tests of the protocol judges.

    python support/protocol_judge_server.py --port 8000

``POST /v1/chat/completions`` keeps the request body as it arrived and answers it in the
shape its protocol parses, by the ``fake`` judge's word rule (`scoring.simulators.fake.
fake_chat_reply`), read from the messages themselves:

- a final user message that is recall_alt's JSON (``activations`` and ``explanation``):
  ``{"match": ..., "reason": ...}``;
- ``Example 0: ...`` lines after an ``Explanation: ...`` line (our delphi layout): a list
  of 1/0, one entry per example;
- ``1. ...`` lines after ``The neuron responds to: ...`` (our SAEBench layout): the
  numbers that fit, comma-separated, or None.

``POST /v1/embeddings`` keeps the body too and embeds each input as counts of its
lower-case words hashed into 64 dimensions (so texts that share words are similar).

The model name steers faults: ``fail-503`` answers HTTP 503; ``no-list`` answers text with
no list in it; ``reject-reasoning`` answers 400 naming ``reasoning_effort`` when the
request carries it (as servers that do not know the parameter do). ``GET /requests``
returns the recorded bodies in order; ``POST /requests/reset`` forgets them. Listens on
127.0.0.1 only.
"""

from __future__ import annotations

import argparse
import json
import re
import time
import zlib
from typing import Any

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from scoring.simulators.chat import ChatRequest
from scoring.simulators.fake import fake_chat_reply

_EXAMPLE = re.compile(r"^Example (\d+): (.*)$")
_NUMBERED = re.compile(r"^(\d+)\. (.*)$")


def reply_to(messages: list[dict[str, Any]]) -> str:
    """The fake judge's reply to a protocol conversation, read from its final user message."""
    final = str(messages[-1].get("content", "")) if messages else ""
    pairs = tuple((str(message.get("role")), str(message.get("content"))) for message in messages)
    try:
        shown = json.loads(final)
    except json.JSONDecodeError:
        shown = None
    if isinstance(shown, dict) and "activations" in shown:
        return fake_chat_reply(ChatRequest(pairs, 0.0, 1, reply_shape="match-json"))
    lines = final.splitlines()
    explanation = next((line.split(":", 1)[1].strip() for line in lines if line.startswith("Explanation:")), None)
    if explanation is not None:
        items = tuple(match[2] for match in map(_EXAMPLE.match, lines) if match)
        request = ChatRequest(pairs, 1.0, 1, reply_shape="binary-list", explanation=explanation, items=items)
        return fake_chat_reply(request)
    explanation = next(
        (line.split(":", 1)[1].strip() for line in lines if line.startswith("The neuron responds to:")), ""
    )
    items = tuple(match[2] for match in map(_NUMBERED.match, lines) if match)
    return fake_chat_reply(ChatRequest(pairs, 1.0, 1, reply_shape="index-list", explanation=explanation, items=items))


def word_vector(text: str, size: int = 64) -> list[float]:
    """Counts of the text's lower-case words, hashed into `size` dimensions (a 1 in the last as a floor)."""
    vector = [0.0] * size
    for word in re.findall(r"[a-z]+", text.lower()):
        vector[zlib.crc32(word.encode()) % (size - 1)] += 1.0
    vector[-1] = 1.0
    return vector


class RecordingServer:
    def __init__(self) -> None:
        self.received: list[dict[str, Any]] = []

    async def chat(self, request: Request) -> JSONResponse:
        body = await request.json()
        self.received.append(body)
        model = body.get("model")
        if model == "fail-503":
            return JSONResponse({"error": {"message": "overloaded", "type": "server_error"}}, status_code=503)
        if model == "reject-reasoning" and "reasoning_effort" in body:
            error = {"message": "Unrecognized request argument: reasoning_effort", "param": "reasoning_effort"}
            return JSONResponse({"error": {**error, "type": "invalid_request_error"}}, status_code=400)
        content = "I would rather not say." if model == "no-list" else reply_to(body.get("messages") or [])
        choice = {"index": 0, "message": {"role": "assistant", "content": content}, "finish_reason": "stop"}
        return JSONResponse(
            {
                "id": f"chatcmpl-{len(self.received)}",
                "object": "chat.completion",
                "created": int(time.time()),
                "model": model or "fake",
                "choices": [choice],
                "usage": {"prompt_tokens": 10, "completion_tokens": 5, "total_tokens": 15},
            }
        )

    async def embeddings(self, request: Request) -> JSONResponse:
        body = await request.json()
        self.received.append(body)
        if body.get("model") == "fail-503":
            return JSONResponse({"error": {"message": "overloaded", "type": "server_error"}}, status_code=503)
        inputs = body.get("input")
        texts = [inputs] if isinstance(inputs, str) else list(inputs or [])
        data = [{"object": "embedding", "index": index, "embedding": word_vector(text)} for index, text in
                enumerate(texts)]
        usage = {"prompt_tokens": len(texts), "total_tokens": len(texts)}
        return JSONResponse({"object": "list", "data": data, "model": body.get("model"), "usage": usage})

    async def requests(self, request: Request) -> JSONResponse:
        if request.method == "POST":
            self.received.clear()
        return JSONResponse(self.received)

    async def models(self, request: Request) -> JSONResponse:
        return JSONResponse({"object": "list", "data": [{"id": "fake", "object": "model"}]})


def build_app() -> Starlette:
    server = RecordingServer()
    return Starlette(
        routes=[
            Route("/v1/chat/completions", server.chat, methods=["POST"]),
            Route("/v1/embeddings", server.embeddings, methods=["POST"]),
            Route("/v1/models", server.models, methods=["GET"]),
            Route("/requests", server.requests, methods=["GET"]),
            Route("/requests/reset", server.requests, methods=["POST"]),
        ]
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args()
    uvicorn.run(build_app(), host="127.0.0.1", port=args.port, log_level="warning", access_log=False)


if __name__ == "__main__":
    main()
