"""Prices of API models, for the cost figures in `Usage`.

USD per million tokens, (input, output), standard (non-batch, uncached) tier.
Figures first written on 2025-08-15 from OpenAI's public API pricing page
(platform.openai.com/docs/pricing); checked on 2026-11-23 (no access to that
page from here) against third-party copies of it dated March-June 2026, which
agree with every figure below and add gpt-5.1 and gpt-5.4. Prices change:
update the table and this date together. A model not listed gets cost None
(tokens are still counted).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

PRICES_PER_MILLION: dict[str, tuple[float, float]] = {
    "gpt-5.4": (2.50, 15.00),
    "gpt-5.1": (1.25, 10.00),
    "gpt-5": (1.25, 10.00),
    "gpt-5-mini": (0.25, 2.00),
    "gpt-5-nano": (0.05, 0.40),
    "gpt-4.1": (2.00, 8.00),
    "gpt-4.1-mini": (0.40, 1.60),
    "gpt-4.1-nano": (0.10, 0.40),
    "gpt-4o": (2.50, 10.00),
    "gpt-4o-mini": (0.15, 0.60),
    "o4-mini": (1.10, 4.40),
    "o3": (2.00, 8.00),
    "gpt-4-turbo": (10.00, 30.00),
    "gpt-3.5-turbo": (0.50, 1.50),
    "gpt-3.5-turbo-instruct": (1.50, 2.00),
}
"""Model -> (input, output) USD per million tokens."""


def price_per_million(model: str) -> tuple[float, float] | None:
    """(input, output) USD per million tokens; a dated snapshot (``gpt-4o-2024-08-06``) uses its base price."""
    if model in PRICES_PER_MILLION:
        return PRICES_PER_MILLION[model]
    base = model
    while "-" in base:
        base = base.rsplit("-", 1)[0]
        suffix = model[len(base) + 1:]
        if suffix[:1].isdigit() and base in PRICES_PER_MILLION:
            return PRICES_PER_MILLION[base]
    return None


def cost_usd(model: str, prompt_tokens: int, completion_tokens: int) -> float | None:
    """Price of a call in USD, or None when the model's price is unknown."""
    prices = price_per_million(model)
    if prices is None:
        return None
    return (prompt_tokens * prices[0] + completion_tokens * prices[1]) / 1_000_000


def estimate_api_usage(
    explanations: Sequence[str],
    sequences: Sequence[Sequence[str]],
    *,
    sequences_per_call: int,
    prompt_price: float | None = None,
    completion_price: float | None = None,
) -> dict[str, Any]:
    """A rough count of requests, tokens and cost before scoring with an API simulator.

    Prompt size follows the chat layout of `scoring.prompts` (system text plus
    the explanation and the token list, about 4 characters per token); each
    token costs about 3 completion tokens (a number and a separator). Cache
    hits are not subtracted, so this is an upper bound for repeated scores.
    """
    from scoring.prompts import API_CHAT_SYSTEM, api_chat_user_message

    per_call = max(1, int(sequences_per_call))
    chunks = [
        [list(tokens) for tokens in sequences[start : start + per_call]]
        for start in range(0, len(sequences), per_call)
    ]
    prompt_tokens = completion_tokens = requests = 0
    for explanation in explanations:
        for chunk in chunks:
            characters = len(API_CHAT_SYSTEM) + len(api_chat_user_message(explanation, chunk))
            prompt_tokens += characters // 4 + 1
            completion_tokens += 3 * sum(len(tokens) for tokens in chunk) + 10
            requests += 1
    cost = None
    if prompt_price is not None and completion_price is not None:
        cost = (prompt_tokens * prompt_price + completion_tokens * completion_price) / 1_000_000
    return {
        "requests": requests,
        "prompt_tokens": prompt_tokens,
        "completion_tokens": completion_tokens,
        "cost_usd": cost,
    }

