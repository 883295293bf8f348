"""Token prices and spending. Prices are list prices in USD per million tokens; a config's `prices` overrides."""

from __future__ import annotations

import time
from dataclasses import dataclass

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


class BudgetReached(Exception):
    """The next request's worst case no longer fits in what is left of the budget."""


PROMPT_TOKEN_OVERHEAD = 16  # a chat template's own tokens around the prompt


def worst_case_tokens(prompt: str, n: int, max_tokens: int) -> tuple[int, int]:
    """An upper bound on one request's (prompt, completion) tokens: no tokenizer makes more tokens than the
    prompt has bytes, and a server that honours max_tokens returns at most n * max_tokens."""
    return len(prompt.encode("utf-8", "surrogatepass")) + PROMPT_TOKEN_OVERHEAD, n * max_tokens


@dataclass
class Held:
    """One request's reservation: its worst case, and its ledger row once it is sent."""

    amount: float  # USD
    worst: tuple[int, int]  # (prompt, completion) tokens
    row: int | None = None


class Spending:
    """Tokens and dollars spent, against an optional budget that bounds the run folder's spending in all: what
    earlier invocations spent (`before`, from the store's ledger) counts against it. With a budget, each request
    holds its worst-case cost before it is sent (in the ledger too, so that a kill leaves it counted) and is
    charged what it used when it returns, so however many requests are in flight, what is spent never exceeds
    the budget (while the server honours max_tokens); a request waits while others hold the rest of the budget,
    and the run stops only when one would not fit on its own. The ledger holds a request only from the moment it
    is sent (`sent`): one killed while it waited for a rate window was never sent and holds nothing."""

    def __init__(self, price: Price | None, max_cost: float | None = None, before: float = 0.0, ledger=None):
        self.price = price
        self.max_cost = max_cost
        self.before = before  # USD spent by earlier invocations in this run folder
        self.ledger = ledger  # the CompletionStore whose ledger holds and settles each request
        self.prompt_tokens = 0
        self.completion_tokens = 0
        self.unconfirmed = 0.0  # worst cases of requests that got no usable answer but may have been billed
        self.reserved = 0.0
        self.outstanding = 0
        self.stopped = False
        self._changed = None  # an asyncio.Condition, made in the running loop

    def add(self, prompt_tokens: int | None, completion_tokens: int | None) -> None:
        self.prompt_tokens += prompt_tokens or 0
        self.completion_tokens += completion_tokens or 0

    @property
    def cost(self) -> float:
        """This invocation's."""
        return cost_of(self.price, self.prompt_tokens, self.completion_tokens) + self.unconfirmed

    @property
    def exhausted(self) -> bool:
        return self.stopped or (self.max_cost is not None and self.before + self.cost >= self.max_cost)

    async def reserve(self, prompt_tokens: int, completion_tokens: int) -> Held:
        """Hold a request's worst-case cost; BudgetReached when it cannot fit even with nothing else in flight."""
        import asyncio

        amount = cost_of(self.price, prompt_tokens, completion_tokens)
        if self._changed is None:
            self._changed = asyncio.Condition()
        async with self._changed:
            while self.max_cost is not None and self.before + self.cost + self.reserved + amount > self.max_cost:
                if self.outstanding == 0:
                    self.stopped = True
                    raise BudgetReached
                await self._changed.wait()
            self.reserved += amount
            self.outstanding += 1
        return Held(amount, (prompt_tokens, completion_tokens))

    def sent(self, held: Held) -> None:
        """The request goes out now: its worst case goes to the ledger first, so that a kill leaves it counted."""
        if self.ledger:
            held.row = self.ledger.hold(*held.worst)

    async def settle(
        self, held: Held, prompt_tokens: int | None, completion_tokens: int | None, answered: bool = True
    ) -> None:
        """Release a reservation and charge the request's reported usage; a request that got no usable answer
        (a timeout, a dropped connection, a malformed body, a gateway error) is charged its worst case, since it
        may be billed."""
        async with self._changed:
            self.reserved = max(0.0, self.reserved - held.amount)
            self.outstanding -= 1
            if answered:
                self.add(prompt_tokens, completion_tokens)
            else:
                self.unconfirmed += held.amount
            if held.row is not None:
                self.ledger.charge(
                    held.row, *((prompt_tokens or 0, completion_tokens or 0) if answered else held.worst)
                )
            self._changed.notify_all()


@dataclass(frozen=True)
class Holds:
    """Requests held at their worst case that no process will settle: their process was killed (or crashed)
    while they were in flight, and nobody knows what the provider billed for them."""

    requests: int
    held_usd: float  # at their worst case, as the ledger counts them
    since: float  # when the first of them was held (epoch seconds)
    arrived: int  # requests whose completions arrived in this folder
    settle_usd: float | None  # all of them at the mean cost of those (None: none arrived)

    def describe(self) -> str:
        when = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(self.since))
        what = (
            f"{self.requests} request(s) in flight when their run was killed hold ${self.held_usd:.4f} at their "
            f"worst case since {when}"
        )
        if self.settle_usd is None:
            return f"{what} (no completion has arrived yet to take a mean cost from)"
        return (
            f"{what}; `ftcot teach --settle-holds` counts them at the mean cost of the {self.arrived} requests "
            f"that were answered (${self.settle_usd:.4f} in all), after which the cap could be exceeded by at "
            f"most ${self.held_usd - self.settle_usd:.4f}"
        )


def dead_holds(store, price: Price | None) -> Holds | None:
    """The store's unsettled holds, for a caller that knows their process is gone (none holds the folder)."""
    requests, prompt_tokens, completion_tokens, since = store.unsettled()
    if not requests:
        return None
    arrived, mean = store.mean_request()
    return Holds(
        requests,
        cost_of(price, prompt_tokens, completion_tokens),
        since,
        arrived,
        requests * cost_of(price, *mean) if mean else None,
    )
