"""Token prices and spending. Prices are list prices in USD per million tokens; a config's `prices` overrides."""

from __future__ import annotations

from ftcot.config import Price

PRICES: dict[str, Price] = {
    "text-davinci-002": Price(input=20.0, output=20.0),  # retired; was $0.02 per 1K tokens
    "davinci-002": Price(input=2.0, output=2.0),
    "gpt-3.5-turbo-instruct": Price(input=1.5, output=2.0),
    "gpt-4o-mini": Price(input=0.15, output=0.6),
    "gpt-4o": Price(input=2.5, output=10.0),
    "gpt-4.1-mini": Price(input=0.4, output=1.6),
    "gpt-4.1": Price(input=2.0, output=8.0),
}


def price_of(model: str, overrides: dict[str, Price]) -> Price | None:
    """The model's price, or None when unknown (a local server, say): cost is then reported as 0."""
    return overrides.get(model) or PRICES.get(model)


def cost_of(price: Price | None, prompt_tokens: int, completion_tokens: int) -> float:
    if price is None:
        return 0.0
    return (prompt_tokens * price.input + completion_tokens * price.output) / 1e6


class Spending:
    """Tokens and dollars spent in this run, against an optional budget."""

    def __init__(self, price: Price | None, max_cost: float | None = None):
        self.price = price
        self.max_cost = max_cost
        self.prompt_tokens = 0
        self.completion_tokens = 0

    def add(self, prompt_tokens: int | None, completion_tokens: int | None) -> None:
        self.prompt_tokens += prompt_tokens or 0
        self.completion_tokens += completion_tokens or 0

    @property
    def cost(self) -> float:
        return cost_of(self.price, self.prompt_tokens, self.completion_tokens)

    @property
    def exhausted(self) -> bool:
        return self.max_cost is not None and self.cost >= self.max_cost
