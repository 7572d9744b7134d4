"""A tiny OpenAI-compatible chat server for loopback tests and benchmarks of scale-out.

    python support/fake_openai_server.py --port 8000 [--latency 0.05] [--capacity 16]

It answers ``POST /v1/chat/completions`` in the chat layout of
`scoring.prompts.api_chat_user_message`: it reads the explanation and the numbered
token lists from the user message and replies ``{"1": [...], "2": [...]}`` with 10 for
every token whose lowercased, stripped text is a word of the explanation, else 0 (the
rule of the ``fake`` simulator, so scores can be compared exactly). A judge question (the
layout of `scoring.prompts.judge_question`) is answered "Yes" or "No" by the fake judge's rule,
P(yes) = 1 - 0.5**k for k explanation words inside the << >> marks (or the whole text when nothing
is marked), with that probability in ``top_logprobs`` when the request asks for logprobs. ``--latency`` holds
each request that long, as a model would; ``--capacity`` caps the requests processed at
once, as a GPU's batch does (more wait in a queue). ``GET /stats`` reports requests,
sequences and the most requests seen in flight; ``POST /stats/reset`` zeroes them.
Listens on 127.0.0.1 only.

It also answers the explain layout (`scoring.prompts.explain_chat_user_message`):
the tokens marked ``[[...]]`` in the excerpts are ranked by how often they occur,
then by first appearance, and the reply is ``Explanation: "the token X".`` for the
one at position ``seed`` (wrapping around), so each attempt's seed picks another.
A request for the model ``fail-503`` is answered with HTTP 503.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import re
import time
from typing import Any

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

_SEQUENCE_LINE = re.compile(r"^(\d+) \((\d+) tokens?\): (.*)$")
_MARKED = re.compile(r"\[\[(.+?)\]\]")
_EXCERPT_LINE = re.compile(r"^\d+\. ")


def predict(user_message: str) -> tuple[dict[str, list[int]], int]:
    """The reply object for a chat-layout user message, and how many sequences it held."""
    lines = user_message.splitlines()
    explanation = lines[0].removeprefix("Explanation:").strip() if lines else ""
    words = set(re.findall(r"[a-z0-9]+", explanation.lower()))
    reply: dict[str, list[int]] = {}
    for line in lines[1:]:
        match = _SEQUENCE_LINE.match(line)
        if not match:
            continue
        count = int(match[2])
        tokens = match[3].split("|")
        if len(tokens) != count:
            tokens = (tokens + [""] * count)[:count]
        reply[match[1]] = [10 if token.strip().lower() in words else 0 for token in tokens]
    return reply, len(reply)


def _words(text: str) -> list[str]:
    return re.findall(r"[a-z0-9]+", text.lower())


def judge_p_yes(user_message: str) -> float | None:
    """The fake judge's P(yes) for a judge question, or None when the message is not one."""
    explanation = re.search(r"^Explanation: (.*)$", user_message, re.MULTILINE)
    content = re.search(r"\nText: (.*)\nQuestion: ", user_message, re.DOTALL)
    if not explanation or not content:
        return None
    wanted = set(_words(explanation[1]))
    marked = re.findall(r"<<(.*?)>>", content[1], re.DOTALL)
    focus = " ".join(marked) if marked else content[1]
    return 1.0 - 0.5 ** sum(word in wanted for word in _words(focus))


def judge_logprobs(p_yes: float, answer: str) -> dict[str, Any]:
    """Chat logprobs of a one-token answer whose alternatives are Yes (p_yes) and No (1 - p_yes)."""
    alternatives = [{"token": token, "logprob": math.log(p), "bytes": None}
                    for token, p in (("Yes", p_yes), ("No", 1.0 - p_yes)) if p > 0.0]
    chosen = next(item["logprob"] for item in alternatives if item["token"] == answer)
    return {"content": [{"token": answer, "logprob": chosen, "bytes": None, "top_logprobs": alternatives}]}


def explain(user_message: str, seed: int) -> str:
    """The reply to an explain-layout message: the marked token at position `seed` of the ranking."""
    counts: dict[str, int] = {}
    for line in user_message.splitlines():
        if _EXCERPT_LINE.match(line):
            for token in _MARKED.findall(line):
                counts[token] = counts.get(token, 0) + 1
    ranked = sorted(counts, key=lambda token: -counts[token])  # stable: first appearance breaks ties
    if not ranked:
        return "I see no marked tokens."
    return f'Explanation: "the token {ranked[seed % len(ranked)]}".'


class FakeOpenAIServer:
    """State of one server: its latency, capacity and counters."""

    def __init__(self, latency: float, capacity: int) -> None:
        self.latency = latency
        self.capacity = asyncio.Semaphore(capacity) if capacity > 0 else None
        self.requests = 0
        self.sequences = 0
        self.questions = 0
        self.in_flight = 0
        self.most_in_flight = 0

    async def chat(self, request: Request) -> JSONResponse:
        body = await request.json()
        self.requests += 1
        self.in_flight += 1
        self.most_in_flight = max(self.most_in_flight, self.in_flight)
        try:
            if self.capacity is not None:
                async with self.capacity:
                    return await self._answer(body)
            return await self._answer(body)
        finally:
            self.in_flight -= 1

    async def _answer(self, body: dict[str, Any]) -> JSONResponse:
        if self.latency:
            await asyncio.sleep(self.latency)
        messages = body.get("messages") or []
        user = next((m.get("content", "") for m in reversed(messages) if m.get("role") == "user"), "")
        first_user = next((m.get("content", "") for m in messages if m.get("role") == "user"), user)
        if body.get("model") == "fail-503":
            return JSONResponse({"error": {"message": "overloaded", "type": "server_error"}}, status_code=503)
        p_yes = judge_p_yes(first_user)
        logprobs = None
        if p_yes is not None:
            self.questions += 1
            content = "Yes" if p_yes >= 0.5 else "No"
            if body.get("logprobs"):
                logprobs = judge_logprobs(p_yes, content)
        elif first_user.startswith("Excerpts where"):
            content = explain(first_user, int(body.get("seed") or 0))
        else:
            reply, sequences = predict(first_user)
            self.sequences += sequences
            content = json.dumps(reply)
        prompt_tokens = sum(len(str(m.get("content", "")).split()) for m in messages)
        return JSONResponse(
            {
                "id": f"chatcmpl-{self.requests}",
                "object": "chat.completion",
                "created": int(time.time()),
                "model": body.get("model", "fake"),
                "choices": [
                    {
                        "index": 0,
                        "message": {"role": "assistant", "content": content},
                        "finish_reason": "stop",
                        "logprobs": logprobs,
                    }
                ],
                "usage": {
                    "prompt_tokens": prompt_tokens,
                    "completion_tokens": len(content) // 2,
                    "total_tokens": prompt_tokens + len(content) // 2,
                },
            }
        )

    async def stats(self, request: Request) -> JSONResponse:
        if request.method == "POST":
            self.requests = self.sequences = self.questions = self.most_in_flight = 0
        return JSONResponse(
            {
                "requests": self.requests,
                "sequences": self.sequences,
                "questions": self.questions,
                "most_in_flight": self.most_in_flight,
            }
        )

    async def models(self, request: Request) -> JSONResponse:
        return JSONResponse({"object": "list", "data": [{"id": "fake", "object": "model"}]})


def build_app(latency: float = 0.0, capacity: int = 0) -> Starlette:
    server = FakeOpenAIServer(latency, capacity)
    return Starlette(
        routes=[
            Route("/v1/chat/completions", server.chat, methods=["POST"]),
            Route("/v1/models", server.models, methods=["GET"]),
            Route("/stats", server.stats, methods=["GET"]),
            Route("/stats/reset", server.stats, methods=["POST"]),
        ]
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--latency", type=float, default=0.0, help="seconds each request takes")
    parser.add_argument("--capacity", type=int, default=0, help="requests processed at once (0: no cap)")
    args = parser.parse_args()
    app = build_app(args.latency, args.capacity)
    uvicorn.run(app, host="127.0.0.1", port=args.port, log_level="warning", access_log=False)


if __name__ == "__main__":
    main()
