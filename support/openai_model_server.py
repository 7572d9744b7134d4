"""A real OpenAI-compatible server over a transformers model, for the backend's loopback tests.

    python support/openai_model_server.py --model FOLDER --port 8000 [--name NAME]

Why this and not only ``transformers serve``: that server (transformers 5) answers chat and legacy
completions but ignores ``logprobs``, ``top_logprobs``, ``echo`` and ``response_format`` (it logs
"Ignoring unsupported fields"), so the backend's two logprob modes cannot run against it. This one runs
the same model with transformers and implements those fields as the OpenAI API defines them:

- ``GET /v1/models``.
- ``POST /v1/completions``: ``prompt``, ``max_tokens``, ``temperature``, ``seed``, ``echo``, ``logprobs``
  (k). With ``echo`` the prompt's tokens come first; ``logprobs`` has ``tokens``, ``token_logprobs``,
  ``top_logprobs`` (entry i is the distribution that predicted token i, None for the first token) and
  ``text_offset`` (character offsets into the returned text).
- ``POST /v1/chat/completions``: ``messages`` through the model's chat template, ``max_tokens``,
  ``temperature``, ``seed``, and ``logprobs`` with ``top_logprobs`` in the chat format
  (``choices[0].logprobs.content[i]``: ``token``, ``logprob``, ``top_logprobs``).
  ``response_format`` is refused with HTTP 400 naming the parameter: this server cannot constrain
  decoding, and says so as servers without structured output do.

Greedy decoding at temperature 0, else sampling seeded by ``seed``. One request runs at a time (CPU).
Listens on 127.0.0.1 only. Unknown models are 404, malformed requests 400, with OpenAI's error shape.
"""

from __future__ import annotations

import argparse
import asyncio
import threading
import time
from typing import Any

import torch
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route
from transformers import AutoModelForCausalLM, AutoTokenizer


def error(status: int, message: str, param: str | None = None) -> JSONResponse:
    return JSONResponse(
        {"error": {"message": message, "type": "invalid_request_error", "param": param, "code": None}},
        status_code=status,
    )


class ModelServer:
    """One loaded model and the endpoints that run it."""

    def __init__(self, folder: str, name: str) -> None:
        self.name = name
        self.tokenizer = AutoTokenizer.from_pretrained(folder)
        self.model = AutoModelForCausalLM.from_pretrained(folder, dtype=torch.float32)
        self.model.eval()
        self.lock = threading.Lock()
        stops = {self.tokenizer.eos_token_id}
        end_of_turn = self.tokenizer.convert_tokens_to_ids("<end_of_turn>")
        if isinstance(end_of_turn, int) and end_of_turn != self.tokenizer.unk_token_id:
            stops.add(end_of_turn)
        self.stop_ids = {token for token in stops if token is not None}

    # ------------------------------------------------------------------ helpers

    def piece(self, token_id: int) -> str:
        """A token's text as an alternative in top_logprobs (SentencePiece's word marker as a space)."""
        text = self.tokenizer.convert_ids_to_tokens(int(token_id))
        if text.startswith("<0x") and text.endswith(">") and len(text) == 6:
            return bytes([int(text[3:5], 16)]).decode("utf-8", errors="replace")
        return text.replace("\u2581", " ")

    def top(self, logprobs: torch.Tensor, k: int) -> dict[str, float]:
        values, indices = torch.topk(logprobs, k)
        alternatives: dict[str, float] = {}
        for value, index in zip(values.tolist(), indices.tolist(), strict=True):
            alternatives.setdefault(self.piece(index), float(value))
        return alternatives

    def generate(
        self, input_ids: list[int], max_tokens: int, temperature: float, seed: int | None
    ) -> tuple[list[int], list[torch.Tensor]]:
        """Generated token ids and, per generated token, the log-distribution it was drawn from."""
        generator = torch.Generator().manual_seed(seed if seed is not None else 0)
        ids = torch.tensor([input_ids])
        past = None
        generated: list[int] = []
        distributions: list[torch.Tensor] = []
        with torch.no_grad():
            for _ in range(max_tokens):
                output = self.model(input_ids=ids, past_key_values=past, use_cache=True)
                past = output.past_key_values
                logprobs = torch.log_softmax(output.logits[0, -1].float(), dim=-1)
                if temperature <= 0:
                    token = int(torch.argmax(logprobs))
                else:
                    probabilities = torch.softmax(output.logits[0, -1].float() / temperature, dim=-1)
                    token = int(torch.multinomial(probabilities, 1, generator=generator))
                generated.append(token)
                distributions.append(logprobs)
                if token in self.stop_ids:
                    break
                ids = torch.tensor([[token]])
        return generated, distributions

    # ------------------------------------------------------------------ endpoints

    async def models(self, request: Request) -> JSONResponse:
        return JSONResponse({"object": "list", "data": [{"id": self.name, "object": "model", "owned_by": "local"}]})

    async def completions(self, request: Request) -> JSONResponse:
        body = await request.json()
        problem = self._check(body)
        if problem is not None:
            return problem
        prompt = body.get("prompt")
        if not isinstance(prompt, str):
            return error(400, "prompt must be a string", "prompt")
        return await asyncio.to_thread(self._complete, body, prompt)

    def _complete(self, body: dict[str, Any], prompt: str) -> JSONResponse:
        k = body.get("logprobs")
        echo = bool(body.get("echo"))
        encoded = self.tokenizer(prompt, add_special_tokens=False, return_offsets_mapping=True)
        prompt_ids = list(encoded["input_ids"])
        offsets = [tuple(pair) for pair in encoded["offset_mapping"]]
        bos = [self.tokenizer.bos_token_id] if self.tokenizer.bos_token_id is not None else []
        max_tokens = int(body.get("max_tokens") or 16)
        with self.lock:
            generated, distributions = self.generate(
                bos + prompt_ids, max_tokens, float(body.get("temperature", 1.0)), body.get("seed")
            )
            prompt_distributions: list[torch.Tensor] = []
            if echo and k:
                with torch.no_grad():
                    logits = self.model(input_ids=torch.tensor([bos + prompt_ids])).logits[0].float()
                # logits[j] predicts model input j + 1, which is prompt token j (after the BOS)
                prompt_distributions = [torch.log_softmax(logits[j], dim=-1) for j in range(len(prompt_ids))]
        text = self.tokenizer.decode([token for token in generated if token not in self.stop_ids])
        finish = "stop" if generated and generated[-1] in self.stop_ids else "length"
        choice: dict[str, Any] = {"index": 0, "text": (prompt if echo else "") + text, "finish_reason": finish}
        if k:
            tokens: list[str] = []
            token_logprobs: list[float | None] = []
            top_logprobs: list[dict[str, float] | None] = []
            text_offset: list[int] = []
            if echo:
                for index, (start, end) in enumerate(offsets):
                    tokens.append(prompt[start:end])
                    text_offset.append(start)
                    if index == 0:
                        # OpenAI reports no distribution for the first prompt token
                        token_logprobs.append(None)
                        top_logprobs.append(None)
                        continue
                    distribution = prompt_distributions[index]
                    token_logprobs.append(float(distribution[prompt_ids[index]]))
                    top_logprobs.append(self.top(distribution, int(k)))
            position = len(prompt) if echo else 0
            decoded_so_far = ""
            for count, (token, distribution) in enumerate(zip(generated, distributions, strict=True), start=1):
                decoded = self.tokenizer.decode([t for t in generated[:count] if t not in self.stop_ids])
                piece = decoded[len(decoded_so_far):]
                decoded_so_far = decoded
                tokens.append(piece)
                text_offset.append(position)
                position += len(piece)
                token_logprobs.append(float(distribution[token]))
                top_logprobs.append(self.top(distribution, int(k)))
            choice["logprobs"] = {
                "tokens": tokens,
                "token_logprobs": token_logprobs,
                "top_logprobs": top_logprobs,
                "text_offset": text_offset,
            }
        usage = {"prompt_tokens": len(prompt_ids), "completion_tokens": len(generated)}
        return JSONResponse(self._envelope("text_completion", choice, usage))

    async def chat(self, request: Request) -> JSONResponse:
        body = await request.json()
        problem = self._check(body)
        if problem is not None:
            return problem
        if body.get("response_format") is not None:
            return error(400, "response_format is not supported by this server", "response_format")
        messages = body.get("messages")
        if not isinstance(messages, list) or not messages:
            return error(400, "messages must be a non-empty list", "messages")
        return await asyncio.to_thread(self._chat, body, messages)

    def _chat(self, body: dict[str, Any], messages: list[dict[str, Any]]) -> JSONResponse:
        prompt = self.tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
        input_ids = self.tokenizer(prompt, add_special_tokens=False)["input_ids"]
        max_tokens = int(body.get("max_tokens") or body.get("max_completion_tokens") or 64)
        with self.lock:
            generated, distributions = self.generate(
                list(input_ids), max_tokens, float(body.get("temperature", 1.0)), body.get("seed")
            )
        kept = [token for token in generated if token not in self.stop_ids]
        text = self.tokenizer.decode(kept)
        choice: dict[str, Any] = {
            "index": 0,
            "message": {"role": "assistant", "content": text},
            "finish_reason": "stop" if len(kept) < len(generated) else "length",
            "logprobs": None,
        }
        if body.get("logprobs"):
            k = int(body.get("top_logprobs") or 0)
            content = []
            decoded_so_far = ""
            for count in range(1, len(kept) + 1):
                decoded = self.tokenizer.decode(kept[:count])
                piece = decoded[len(decoded_so_far):]
                decoded_so_far = decoded
                distribution = distributions[count - 1]
                alternatives = self.top(distribution, k) if k else {}
                content.append(
                    {
                        "token": piece,
                        "logprob": float(distribution[kept[count - 1]]),
                        "bytes": list(piece.encode("utf-8")),
                        "top_logprobs": [
                            {"token": token, "logprob": value, "bytes": list(token.encode("utf-8"))}
                            for token, value in alternatives.items()
                        ],
                    }
                )
            choice["logprobs"] = {"content": content}
        usage = {"prompt_tokens": len(input_ids), "completion_tokens": len(generated)}
        return JSONResponse(self._envelope("chat.completion", choice, usage))

    def _check(self, body: Any) -> JSONResponse | None:
        if not isinstance(body, dict):
            return error(400, "the body must be a JSON object")
        if body.get("model") != self.name:
            return error(404, f"model {body.get('model')!r} not found; this server serves {self.name!r}", "model")
        return None

    def _envelope(self, kind: str, choice: dict[str, Any], usage: dict[str, int]) -> dict[str, Any]:
        usage = {**usage, "total_tokens": usage["prompt_tokens"] + usage["completion_tokens"]}
        return {"id": f"{kind}-{time.time_ns()}", "object": kind, "created": int(time.time()),
                "model": self.name, "choices": [choice], "usage": usage}


def build_app(folder: str, name: str) -> Starlette:
    server = ModelServer(folder, name)
    return Starlette(
        routes=[
            Route("/v1/models", server.models, methods=["GET"]),
            Route("/v1/completions", server.completions, methods=["POST"]),
            Route("/v1/chat/completions", server.chat, methods=["POST"]),
        ]
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", required=True, help="a transformers model folder")
    parser.add_argument("--name", default="local", help="the model name clients must send")
    parser.add_argument("--port", type=int, default=8000)
    args = parser.parse_args()
    torch.set_num_threads(2)
    uvicorn.run(build_app(args.model, args.name), host="127.0.0.1", port=args.port, log_level="warning")


if __name__ == "__main__":
    main()
