"""A calculator in decoding (#29): whenever a student's text reaches an arithmetic expression followed by `=`,
the expression's value is written for it and it goes on from there, as GSM8K's authors let their models do.

The arithmetic is read by a small recursive-descent parser over exact fractions (never Python's eval): numbers
(decimals, thousands separators, a `$` before one), `+ - * / × x ÷`, parentheses and unary minus, bounded in
length and magnitude; anything else, and a division by zero, is left to the student. `generate` wraps any
engine (ftcot.engines): it generates until a computable `=` (and the student's own next word after it, kept to
record what it would have written), writes the value, and continues every unfinished output of a round in one
batch, within the token budget. `equations` reads the `a op b = c` a rationale states, for the failure taxonomy.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from fractions import Fraction
from functools import lru_cache

from ftcot.engines import Engine
from ftcot.methods import Stop

MAX_CHARS = 200  # an expression longer than this is left to the student
MAX_MAGNITUDE = 10**15  # a number (or a value's numerator or denominator) past this is left to the student
DECIMALS = 6  # a value that is not whole is written to this many decimals: within the float format's 1e-6
OWN_CHARS = 16  # what the student writes after an `=` is read this far (its first word) before the value is written
MAX_ROUNDS = 32  # rounds of generation after the first; an output still going after them ends there

_ALPHABET = set("0123456789.,$+-*/×x÷−() \t")
_DIGITS = r"\d{1,3}(?:,\d{3})+(?:\.\d+)?|\d+(?:\.\d+)?"  # 1,000.5 or 1000.5
_TOKEN = re.compile(rf"[ \t]*(?:(\$?)({_DIGITS})(?![\d,]\d)|([-+*/×x÷−()]))")
_TIMES, _DIVIDE, _MINUS = set("*×x"), set("/÷"), set("-−")
_OWN_DONE = re.compile(r"[ \t]*(?:\S+\s|\n)")  # the student's own word after `=` is complete
_OWN = re.compile(rf"[ \t]*(\S{{1,{OWN_CHARS}}})")
_NUMBER = re.compile(rf"[ \t]*\$?(-?(?:{_DIGITS}))")


class _Refused(Exception):
    """Not an expression the calculator computes."""


class _Parser:
    """expression := term (('+' | '-') term)*; term := factor (('*' | 'x' | '×' | '/' | '÷') factor)*;
    factor := ('-' | '+') factor | number | '(' expression ')'."""

    def __init__(self, tokens: list[tuple[str, str]]):
        self.tokens, self.at, self.operators, self.money = tokens, 0, 0, False

    def peek(self) -> str | None:
        return self.tokens[self.at][1] if self.at < len(self.tokens) and self.tokens[self.at][0] == "op" else None

    def take(self) -> tuple[str, str]:
        if self.at >= len(self.tokens):
            raise _Refused
        self.at += 1
        return self.tokens[self.at - 1]

    def expression(self) -> Fraction:
        value = self.term()
        while self.peek() in ("+", *_MINUS):
            op = self.take()[1]
            self.operators += 1
            value = _bounded(value + self.term() if op == "+" else value - self.term())
        return value

    def term(self) -> Fraction:
        value = self.factor()
        while self.peek() in (*_TIMES, *_DIVIDE):
            op = self.take()[1]
            self.operators += 1
            right = self.factor()
            if op in _DIVIDE and right == 0:
                raise _Refused
            value = _bounded(value * right if op in _TIMES else value / right)
        return value

    def factor(self) -> Fraction:
        kind, text = self.take()
        if kind == "number":
            return _bounded(Fraction(text.replace(",", "")))
        if text in _MINUS:
            return -self.factor()
        if text == "+":
            return self.factor()
        if text == "(":
            value = self.expression()
            if self.take() != ("op", ")"):
                raise _Refused
            return value
        raise _Refused


def _bounded(value: Fraction) -> Fraction:
    if abs(value.numerator) > MAX_MAGNITUDE or value.denominator > MAX_MAGNITUDE:
        raise _Refused
    return value


def _tokens(text: str) -> tuple[list[tuple[str, str]], bool] | None:
    """The expression's tokens, and whether a number in it is money ($), or None where it holds anything else."""
    tokens, at, money = [], 0, False
    while at < len(text):
        m = _TOKEN.match(text, at)
        if m is None:
            return None if text[at:].strip() else (tokens, money)
        money |= bool(m.group(1))
        tokens.append(("number", m.group(2)) if m.group(2) else ("op", m.group(3)))
        at = m.end()
    return tokens, money


def _parse(text: str) -> tuple[Fraction, int, bool] | None:
    """(value, binary operators, money) of an arithmetic expression, or None."""
    if len(text) > MAX_CHARS:
        return None
    found = _tokens(text)
    if not found or not found[0]:
        return None
    parser = _Parser(found[0])
    try:
        value = parser.expression()
    except (_Refused, RecursionError):
        return None
    return (value, parser.operators, found[1]) if parser.at == len(parser.tokens) else None


def compute(expression: str) -> Fraction | None:
    """The exact value of an arithmetic expression, or None where it is none (or too long or too large, or
    divides by zero)."""
    parsed = _parse(expression)
    return parsed[0] if parsed else None


def format_value(value: Fraction, money: bool = False) -> str:
    """A value as the teacher writes numbers: a whole one bare, another to DECIMALS decimals without trailing
    zeros."""
    scaled = round(abs(value) * 10**DECIMALS)
    whole, part = divmod(scaled, 10**DECIMALS)
    digits = f"{whole}.{part:0{DECIMALS}d}".rstrip("0").rstrip(".")
    return ("-" if value < 0 and scaled else "") + ("$" if money else "") + digits


@lru_cache(maxsize=4096)
def _trailing(run: str, after_word: bool) -> tuple[str, Fraction, bool] | None:
    """The longest computable expression that ends `run` (a text's last characters that arithmetic may hold),
    with at least one operator; `after_word`: run follows a letter, so it cannot start at run's start."""
    for start in range(len(run)):
        before = run[start - 1] if start else ""
        if run[start].isspace() or (before in "0123456789.,$" if start else after_word):
            continue  # not inside a number, nor glued to a word ("box x 3")
        parsed = _parse(run[start:])
        if parsed and parsed[1]:
            return run[start:].strip(), parsed[0], parsed[2]
    return None


def trailing_expression(text: str) -> tuple[str, Fraction, bool] | None:
    """(expression, value, money) of the longest arithmetic expression that `text` ends in, or None."""
    start = len(text)
    while start > 0 and text[start - 1] in _ALPHABET:
        start -= 1
        if len(text) - start > MAX_CHARS:
            return None
    run = text[start:]
    if not run.strip():
        return None
    return _trailing(run, start > 0 and (text[start - 1].isalnum() or text[start - 1] == "_"))


@dataclass(frozen=True)
class Call:
    """One use of the calculator in an output: the `=` at `at`, the expression before it, the value written
    after it, and what the student itself wrote there (its first word; None where it wrote none)."""

    at: int
    expression: str
    value: str
    own: str | None

    @property
    def own_right(self) -> bool | None:
        """Whether the student's own number was the value (to the decimals it wrote); None: it wrote none."""
        number = _NUMBER.match(self.own or "")
        return None if number is None else written_right(number.group(1), compute(self.expression))

    def record(self) -> dict:
        return {"expression": self.expression, "value": self.value, "own": self.own, "own_right": self.own_right}


def written_right(written: str, value: Fraction) -> bool:
    """A written number is the value, or the value rounded to the decimals written (2/3 as 0.67)."""
    number = Fraction(written.replace(",", ""))
    decimals = len(written.partition(".")[2])
    return number == value or (decimals > 0 and number == Fraction(round(value, decimals)))


def calls_in(text: str, start: int = 0) -> list[tuple[int, str, Fraction, bool]]:
    """(position of the `=`, expression, value, money) of each computable `=` in text from start on."""
    found, at = [], text.find("=", start)
    while at != -1:
        expression = trailing_expression(text[:at])
        if expression:
            found.append((at, *expression))
        at = text.find("=", at + 1)
    return found


def equations(text: str) -> list[tuple[str, str, bool]]:
    """(expression, the number written after its `=`, whether it is right) of each equation the text states."""
    out = []
    for at, expression, value, _ in calls_in(text):
        number = _NUMBER.match(text, at + 1)
        if number:
            out.append((expression, number.group(1), written_right(number.group(1), value)))
    return out


def _ready(text: str) -> bool:
    """Generation may stop: a computable `=` whose own next word the student has written."""
    return any(_OWN_DONE.match(text, at + 1) or len(text) - at > OWN_CHARS for at, *_ in calls_in(text))


@dataclass
class Calculated:
    """An output written with the calculator, and its calls."""

    text: str = ""
    calls: list[Call] = field(default_factory=list)


def generate(
    engine: Engine,
    prompts: list[str],
    max_new_tokens: int,
    stop: Stop = Stop(),
    k: int = 1,
    temperature: float = 0.0,
    seed: int = 0,
    progress: Callable[[int], None] | None = None,
) -> list[list[Calculated]]:
    """The engine's k continuations of each prompt, with every computable `=` followed by its value: the first
    round is the engine's own generation (so an output without one is the plain engine's, token for token),
    stopped where the student has written its own word after a computable `=`; that word gives way to the
    value, and every output still going continues in the next round, all of them in one call. The rounds share
    the token budget (counted in the student's tokens of the text so far, the written values included)."""
    tokenizer = engine.tokenizer
    # The engines see a round's new text only: the method's rule on it stops no later than on the whole text,
    # which is checked here after each round.
    rounds = Stop(lambda text: stop(text) or _ready(text), stop.strings)
    count = lambda text: len(tokenizer(text, add_special_tokens=False)["input_ids"])  # noqa: E731
    outputs = [[Calculated() for _ in range(k)] for _ in prompts]
    rows = engine.generate(prompts, max_new_tokens, rounds, k, temperature, seed, progress)
    going = [
        (i, o)
        for i, row in enumerate(rows)
        for o, text in zip(outputs[i], row)
        if _step(o, text, max_new_tokens, count, stop, first=True)
    ]
    for round_ in range(1, MAX_ROUNDS + 1):
        if not going:
            break
        left = [max_new_tokens - count(o.text) for _, o in going]
        budget = max(left)
        # Sampled outputs that reached the same text continue as distinct samples of it (a served student's
        # store would give one continuation of one prompt twice).
        groups: dict[str, list[int]] = {}
        for n, (i, o) in enumerate(going):
            groups.setdefault(prompts[i] + o.text if temperature > 0 else str(n), []).append(n)
        by_size: dict[int, list[list[int]]] = {}
        for members in groups.values():
            by_size.setdefault(len(members), []).append(members)
        still = []
        for size, sets in by_size.items():
            texts = [prompts[going[s[0]][0]] + going[s[0]][1].text for s in sets]
            for members, row in zip(sets, engine.generate(texts, budget, rounds, size, temperature, seed + round_)):
                for n, text in zip(members, row):
                    if left[n] < budget:  # cut to this output's own share of the budget
                        text = _within(tokenizer, text, left[n])
                    if _step(going[n][1], text, max_new_tokens, count, stop):
                        still.append(going[n])
        going = still
    return outputs


def _within(tokenizer, text: str, tokens: int) -> str:
    """The text's first `tokens` tokens."""
    offsets = tokenizer(text, add_special_tokens=False, return_offsets_mapping=True)["offset_mapping"]
    return text if len(offsets) <= tokens else text[: offsets[tokens - 1][1]] if tokens > 0 else ""


def _step(o: Calculated, new: str, max_new_tokens: int, count, stop: Stop, first: bool = False) -> bool:
    """Add a round's new text to an output: up to its first call, with the value written after it (True: it
    goes on, while budget is left), or where it makes none, up to where its method's rule holds (False: it is
    finished). The first round's text is kept as the engine stopped it."""
    text = o.text + new
    calls = calls_in(text, len(o.text))
    end = len(stop.end(text))
    if not calls or calls[0][0] >= end:
        o.text = text if first else text[:end]
        return False
    at, expression, value, money = calls[0]
    own = _OWN.match(text, at + 1)
    space = " " if text[at - 1 : at].isspace() else ""
    written = format_value(value, money)
    o.calls.append(Call(at, expression, written, own.group(1) if own else None))
    o.text = text[: at + 1] + space + written
    return count(o.text) < max_new_tokens
