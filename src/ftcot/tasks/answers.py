"""Answer extraction and comparison, following the paper's evaluator rule for rule.

A prediction is parsed from generated text in two steps: find the method's answer prefix (`-->` for
Fine-tune-CoT, `The answer is` for few-shot-CoT; see ftcot.methods); if it is there, take the *first* answer
candidate after it, otherwise the *last* candidate anywhere in the text. With no prefix (zero-shot, vanilla fine-tuning,
zero-shot-CoT step 2) the first candidate is taken.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from dataclasses import dataclass

from ftcot.errors import UserError

ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"  # choice letters
_NUMBER = re.compile(r"-?\d+(?:\.\d+)?")
_YES_NO_SEPARATORS = re.compile(r"\"|'|\n|\.|\s|:|,")
_LAST_LETTER_NOISE = re.compile(r"\"|'|\n|\.|\s")


@dataclass(frozen=True)
class AnswerFormat:
    """How answer candidates are found in text and how a prediction is compared with the gold answer."""

    name: str
    candidates: Callable[[str], list[str]]
    normalize: Callable[[str], object] = str  # applied to prediction and gold before comparing
    tolerance: float | None = None  # numeric comparison within this absolute tolerance
    choice: bool = False  # the answer is the letter of an option listed in the question
    numeric: bool = False  # the answer is a number

    def matches(self, prediction: str | None, gold: str) -> bool:
        try:
            expected = self.normalize(gold)
        except (ValueError, TypeError, AttributeError):
            raise UserError(f"gold answer {gold!r} is not a valid {self.name} answer") from None
        if prediction is None:
            return False
        try:
            got = self.normalize(prediction)
        except (ValueError, TypeError, AttributeError):
            return False
        if self.tolerance is not None:
            return abs(got - expected) <= self.tolerance
        return got == expected


def _numbers(text: str) -> list[str]:
    return _NUMBER.findall(text.replace(",", ""))


def choice_letters(letters: str) -> AnswerFormat:
    """A multiple-choice answer: the first of these letters."""
    return AnswerFormat(f"letter A-{letters[-1]}", re.compile(f"[{letters}]").findall, choice=True)


def _yes_no(text: str) -> list[str]:
    return [w for w in _YES_NO_SEPARATORS.sub(" ", text.lower()).split(" ") if w in ("yes", "no")]


def _concatenated_letters(text: str) -> list[str]:
    return [_LAST_LETTER_NOISE.sub("", text)]


def _strip_commas(answer: str) -> str:
    return answer.replace(",", "")


INTEGER = AnswerFormat("integer", _numbers, _strip_commas, numeric=True)  # compared as strings, like the paper
FLOAT = AnswerFormat("float", _numbers, lambda answer: float(_strip_commas(answer)), tolerance=1e-6, numeric=True)
LETTER_A_TO_C = choice_letters("ABC")
LETTER_A_TO_E = choice_letters("ABCDE")
LETTER_A_TO_F = choice_letters("ABCDEF")
YES_NO = AnswerFormat("yes/no", _yes_no, str.lower)
LETTERS = AnswerFormat("letter string", _concatenated_letters)
# A free-text answer: the first line after the prefix, compared without case, spacing or a final period.
TEXT = AnswerFormat(
    "text",
    lambda text: [line] if (line := text.strip().split("\n")[0].strip()) else [],
    lambda answer: " ".join(answer.lower().split()).rstrip("."),
)


# The zero-shot-CoT answer triggers of the recorded teacher (Kojima et al.), per format.
NUMERIC_TRIGGER = "Therefore, the answer (arabic numerals) is"
YES_NO_TRIGGER = "Therefore, the answer (Yes or No) is"
PLAIN_TRIGGER = "Therefore, the answer is"


def choice_trigger(letters: str) -> str:
    return f"Therefore, among A through {letters[-1]}, the answer is"


def regex_format(name: str) -> AnswerFormat:
    """`regex:<pattern>`: the pattern's matches (its first group where it has one; never an empty one). A gold
    answer may be written whole ("ID-42") or as its group ("42"): both compare as the group."""
    pattern = re.compile(name.removeprefix("regex:"))

    def found(text: str) -> list[str]:
        matches = (m.group(1) if pattern.groups else m.group(0) for m in pattern.finditer(text))
        return [m for m in matches if m]

    return AnswerFormat(name, found, lambda answer: (found(answer) or [answer])[0])


# The formats a task declares by name (a custom task's `answer_format`), with their answer triggers; besides
# these, `choice` (its letters sized by the task's choices) and `regex:<pattern>`. A format is added here alone.
NAMED = {
    "number": (FLOAT, NUMERIC_TRIGGER),
    "integer": (INTEGER, NUMERIC_TRIGGER),
    "yes_no": (YES_NO, YES_NO_TRIGGER),
    "letters": (LETTERS, PLAIN_TRIGGER),
    "text": (TEXT, PLAIN_TRIGGER),
}
FORMAT_NAMES = (*NAMED, "choice")


def named_format(name: str, choices: int = 5) -> tuple[AnswerFormat, str]:
    """The format a task declares by name and its answer trigger; `choice` with letters for `choices` options."""
    if name.startswith("regex:"):
        return regex_format(name), PLAIN_TRIGGER
    if name == "choice":
        letters = ALPHABET[:choices]
        return choice_letters(letters), choice_trigger(letters)
    return NAMED[name]


def parse_prediction(fmt: AnswerFormat, text: str, prefix: str | None = None) -> str | None:
    """The predicted answer in `text`, or None when it holds no candidate."""
    first = True
    if prefix is not None:
        at = text.find(prefix)
        if at == -1:
            first = False
        else:
            text = text[at + len(prefix) :]
    found = fmt.candidates(text)
    if not found:
        return None
    return found[0] if first else found[-1]


def accuracy(correct: list[bool]) -> dict:
    """n, correct, accuracy and its 95% Wilson interval, in percent."""
    right = sum(correct)
    low, high = wilson_interval(right, len(correct))
    return {
        "n": len(correct),
        "correct": right,
        "accuracy": round(100 * right / max(len(correct), 1), 2),
        "ci95": [round(low, 2), round(high, 2)],
    }


def wilson_interval(correct: int, n: int, z: float = 1.96) -> tuple[float, float]:
    """95% Wilson score interval for a proportion, in percent."""
    if n == 0:
        return 0.0, 0.0
    p = correct / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return 100 * max(0.0, centre - half), 100 * min(1.0, centre + half)
