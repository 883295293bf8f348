"""The one judge: how an answer is read from a text and judged against the gold answer, for the teacher's step-2
answers (curation, the collector's adaptive rounds, the teacher's metrics, `show`) and for the students'
outputs (evaluation, self-consistency's vote, validation, the report): cut at a made-up next question, parse
after the method's answer prefix, compare in the task's answer format.
"""

from __future__ import annotations

from ftcot.methods import TEACHER_ANSWER_PREFIX, Method
from ftcot.tasks.answers import AnswerFormat, parse_prediction


def read(fmt: AnswerFormat, text: str, method: Method) -> str | None:
    """The answer a method's output gives: cut where the model makes up the next question, then the first
    candidate after the method's prefix (else the last one anywhere)."""
    return parse_prediction(fmt, method.stop.before_strings(text), method.answer_prefix)


def teacher_answer(fmt: AnswerFormat, answer_completion: str) -> str | None:
    """The answer of a teacher's zero-shot-CoT step 2."""
    return parse_prediction(fmt, answer_completion, TEACHER_ANSWER_PREFIX)


def solved(fmt: AnswerFormat, answer_completion: str, gold: str) -> bool:
    """Whether a teacher's step-2 answer is the gold answer."""
    return fmt.matches(teacher_answer(fmt, answer_completion), gold)


def vote(parsed: list[str | None], fmt: AnswerFormat) -> tuple[str | None, int]:
    """The most frequent answer among parsed ones, as the format compares them (5 and 5.0 agree), in the form
    first sampled; ties go to the one sampled first. With the number of votes it got."""
    counts: dict[object, int] = {}
    first: dict[object, str] = {}
    for p in parsed:
        if p is None:
            continue
        try:
            key = fmt.normalize(p)
        except (ValueError, TypeError, AttributeError):
            key = p  # not a valid answer in the format: it can only agree with itself
        counts[key] = counts.get(key, 0) + 1
        first.setdefault(key, p)
    if not counts:
        return None, 0
    best = max(counts, key=lambda key: counts[key])  # max keeps the first of equal counts, in sampled order
    return first[best], counts[best]
