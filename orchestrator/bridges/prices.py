"""What tokens cost: a price table for the models agents use, and a meter that turns
the token counts Codex reports (it reports no dollars) into costs, once per update.

Prices are US dollars per million tokens at the standard tier (not batch, flex or
priority) for prompts under the long-context threshold (272K input tokens for the
GPT-5.4+ and GPT-6 models, above which OpenAI charges more), as OpenAI lists them at
developers.openai.com/api/docs/pricing and on each model's page; collected 2026-11
from those pages as quoted by public price tables, each group's comment giving when
its prices took effect. Where a cached-input price was not found it is taken as a
tenth of the input price (OpenAI's rule since GPT-5), marked "10%". Anthropic models
are priced by :func:`orchestrator.bridges.claude_events.price_for` (cache reads at a
tenth of input).

Token counting follows the OpenAI Responses API (and Codex's ``tokenUsage``):
``input_tokens`` *includes* the ``cached_input_tokens`` (billed at the cached rate
instead), and ``output_tokens`` includes the reasoning tokens.

A model is found by its exact id, else by the longest id in the table that it
extends with ``-`` (``gpt-5-codex-2025-09-15`` -> ``gpt-5-codex``, ``o4-mini-high`` ->
``o4-mini``); ``gpt-5.5`` does not match ``gpt-5``. A model found nowhere is priced
at :data:`DEFAULT_PRICE`, a current flagship's rate, so that a budget errs on the side
of stopping early rather than late.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import attrs

from .claude_events import price_for as claude_price_for

__all__ = [
    "DEFAULT_PRICE",
    "PRICES",
    "Price",
    "TokenMeter",
    "TokenUsage",
    "cost_usd",
    "price_for",
]


@attrs.frozen
class Price:
    """US dollars per million tokens."""

    input: float
    cached_input: float
    output: float

    def cost(self, usage: TokenUsage) -> float:
        cached = min(usage.cached_input_tokens, usage.input_tokens)
        return (
            (usage.input_tokens - cached) * self.input
            + cached * self.cached_input
            + usage.output_tokens * self.output
        ) / 1_000_000


def _count(value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return 0
    if not math.isfinite(value) or value <= 0:
        return 0
    return int(value)


@attrs.frozen
class TokenUsage:
    """Token counts (OpenAI convention: input includes cached, output includes
    reasoning). Negative or non-numeric counts read as 0."""

    input_tokens: int = attrs.field(default=0, converter=_count)
    cached_input_tokens: int = attrs.field(default=0, converter=_count)
    output_tokens: int = attrs.field(default=0, converter=_count)

    @classmethod
    def from_wire(cls, data: object) -> TokenUsage:
        """From Codex's app-server (``inputTokens``, ``cachedInputTokens``,
        ``outputTokens``) or ``exec --json`` / Responses API (``input_tokens``,
        ``cached_input_tokens`` or ``input_tokens_details.cached_tokens``,
        ``output_tokens``) form; anything else counts nothing."""
        if not isinstance(data, Mapping):
            return cls()
        details = data.get("input_tokens_details")
        cached = data.get("cachedInputTokens", data.get("cached_input_tokens"))
        if cached is None and isinstance(details, Mapping):
            cached = details.get("cached_tokens")
        return cls(
            input_tokens=data.get("inputTokens", data.get("input_tokens", 0)),
            cached_input_tokens=cached or 0,
            output_tokens=data.get("outputTokens", data.get("output_tokens", 0)),
        )

    def minus(self, other: TokenUsage) -> TokenUsage | None:
        """``self - other`` field by field, or None when a count went down (not the
        same running total)."""
        fields = ("input_tokens", "cached_input_tokens", "output_tokens")
        if any(getattr(self, f) < getattr(other, f) for f in fields):
            return None
        return TokenUsage(*(getattr(self, f) - getattr(other, f) for f in fields))

    def plus(self, other: TokenUsage) -> TokenUsage:
        return TokenUsage(
            self.input_tokens + other.input_tokens,
            self.cached_input_tokens + other.cached_input_tokens,
            self.output_tokens + other.output_tokens,
        )

    def to_json(self) -> dict[str, int]:
        return attrs.asdict(self)


# fmt: off
PRICES: Mapping[str, Price] = {
    # GPT-6 (2026-09/10)
    "gpt-6-astra": Price(10.00, 1.00, 50.00),
    "gpt-6.1-sol": Price(2.00, 0.10, 10.00),   # the pinned Codex CLI's default model
    "gpt-6-sol": Price(2.00, 0.20, 10.00),
    "gpt-6-luna": Price(0.10, 0.01, 0.50),
    # GPT-5.6 (2026-07/09)
    "gpt-5.6-sol": Price(4.00, 0.40, 20.00),  # 10%; $5/$30 until 2026-07
    "gpt-5.6-terra": Price(2.00, 0.20, 12.00),
    "gpt-5.6-luna": Price(0.20, 0.02, 1.20),
    # GPT-5.5, 5.4 (2026-06)
    "gpt-5.5": Price(5.00, 0.50, 30.00),
    "gpt-5.4": Price(2.50, 0.25, 15.00),
    "gpt-5.4-mini": Price(0.75, 0.075, 4.50),
    "gpt-5.4-nano": Price(0.20, 0.02, 1.25),
    # GPT-5.2, 5.3 (2025-12 .. 2026-06)
    "gpt-5.3-codex": Price(1.75, 0.175, 14.00),
    "gpt-5.2-codex": Price(1.75, 0.175, 14.00),
    "gpt-5.2": Price(1.75, 0.175, 14.00),
    # GPT-5, 5.1 (2025-08 .. 2025-11)
    "gpt-5.1-codex-mini": Price(0.25, 0.025, 2.00),
    "gpt-5.1-codex": Price(1.25, 0.125, 10.00),
    "gpt-5.1": Price(1.25, 0.125, 10.00),
    "gpt-5-codex": Price(1.25, 0.125, 10.00),
    "gpt-5": Price(1.25, 0.125, 10.00),
    "gpt-5-mini": Price(0.25, 0.025, 2.00),
    "gpt-5-nano": Price(0.05, 0.005, 0.40),
    # earlier models Codex has run on (2025)
    "codex-mini-latest": Price(1.50, 0.375, 6.00),
    "o4-mini": Price(1.10, 0.275, 4.40),
    "o3": Price(2.00, 0.50, 8.00),
    "gpt-4.1": Price(2.00, 0.50, 8.00),
    "gpt-4.1-mini": Price(0.40, 0.10, 1.60),
    "gpt-4.1-nano": Price(0.10, 0.025, 0.40),
    "gpt-4o": Price(2.50, 1.25, 10.00),
    "gpt-4o-mini": Price(0.15, 0.075, 0.60),
}
# fmt: on
DEFAULT_PRICE = Price(5.00, 0.50, 30.00)  # gpt-5.5's: a current flagship


def price_for(model: str) -> Price:
    """The price of ``model`` (see the module's notes for the matching rule)."""
    lowered = model.strip().lower()
    if "/" in lowered:  # a provider prefix: openai/gpt-5
        lowered = lowered.rsplit("/", 1)[1]
    if "claude" in lowered:
        claude = claude_price_for(lowered)
        return Price(claude.input, claude.cache_read, claude.output)
    found = PRICES.get(lowered)
    if found is not None:
        return found
    best = ""
    for name in PRICES:
        if lowered.startswith(name + "-") and len(name) > len(best):
            best = name
    return PRICES[best] if best else DEFAULT_PRICE


def cost_usd(
    model: str, input_tokens: int, cached_input_tokens: int = 0, output_tokens: int = 0
) -> float:
    """Dollars for one use of ``model``; ``input_tokens`` includes the cached ones."""
    return price_for(model).cost(TokenUsage(input_tokens, cached_input_tokens, output_tokens))


class TokenMeter:
    """A session's cost, from the token counts an agent reports.

    Codex reports a running total per thread (``thread/tokenUsage/updated``, again
    after a resume: the total so far). :meth:`on_total` charges what a total adds to the
    last one seen for the same thread, so an update seen twice, or replayed by a
    resumed process sharing this meter, costs nothing more; :meth:`baseline` records a
    total without charging it (what an earlier process already paid for).
    :meth:`on_usage` charges one call's counts (``exec --json``'s ``turn.completed``).
    :meth:`take_turn` hands back what was charged since it was last called.
    """

    def __init__(self, total: float = 0.0) -> None:
        self.total = total
        self._turn = 0.0
        self._seen: dict[str, TokenUsage] = {}

    def seen(self, key: str) -> TokenUsage | None:
        return self._seen.get(key)

    def baseline(self, key: str, usage: TokenUsage | Mapping[str, Any]) -> None:
        """``usage`` is the running total of ``key`` that is already paid for."""
        self._seen[key] = _usage(usage)

    def on_total(self, key: str, model: str, usage: TokenUsage | Mapping[str, Any]) -> float:
        """A new running total of ``key`` (a thread); charges the growth. A total
        that went down starts a new count: it becomes the baseline, charged nothing
        (never counted twice). Returns the increment in dollars."""
        current = _usage(usage)
        previous = self._seen.get(key, TokenUsage())
        self._seen[key] = current
        added = current.minus(previous)
        if added is None:
            return 0.0
        return self._charge(price_for(model).cost(added))

    def on_usage(self, model: str, usage: TokenUsage | Mapping[str, Any]) -> float:
        """One call's counts (not a running total); returns the increment."""
        return self._charge(price_for(model).cost(_usage(usage)))

    def _charge(self, cost: float) -> float:
        self._turn += cost
        self.total += cost
        return cost

    def take_turn(self) -> float:
        """What was charged since the last call (the turn's cost)."""
        turn, self._turn = self._turn, 0.0
        return turn


def _usage(usage: TokenUsage | Mapping[str, Any]) -> TokenUsage:
    return usage if isinstance(usage, TokenUsage) else TokenUsage.from_wire(usage)
