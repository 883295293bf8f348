"""The methods, one frozen record each: how a method prompts the student, the pair it trains on (the trained
methods), when an output is complete, where its answer is, and its label in the report. Config validation,
curation, training, evaluation and the report read this table; a method is added here, with its tests.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

from ftcot.errors import UserError
from ftcot.tasks import prompts
from ftcot.tasks.prompts import ANSWER_MARKER, NEXT_QUESTION, ModelKind


@dataclass(frozen=True)
class PromptContext:
    """What a prompt may need besides the question."""

    kind: ModelKind = "decoder"
    few_shot_key: str | None = None  # the task's prompt in the paper's few-shot-CoT prompt file
    few_shot_prompts: dict | None = None  # the paper's few-shot-CoT prompt file, for few_shot_cot


def _after_marker(text: str) -> bool:
    """A Fine-tune-CoT output is complete at the first newline after the answer that follows the marker."""
    at = text.find(ANSWER_MARKER)
    return at != -1 and "\n" in text[at + len(ANSWER_MARKER) :].lstrip()


@dataclass(frozen=True)
class Stop:
    """Where an output ends, one type for every engine: once `rule` holds of its new text (a method's: its answer
    is complete), or once it holds one of `strings` (a made-up next question; sent to a server as its stop
    strings); else at EOS or the token budget. A rule that holds of a text holds of every longer one. A Stop
    that ends nothing early is false."""

    rule: Callable[[str], bool] | None = None
    strings: tuple[str, ...] = ()

    def __call__(self, text: str) -> bool:
        return (self.rule is not None and self.rule(text)) or any(s in text for s in self.strings)

    def __bool__(self) -> bool:
        return self.rule is not None or bool(self.strings)

    def end(self, text: str) -> str:
        """The text up to where it ends, as the hf engine stops there: an engine that generates past it (a
        server, CTranslate2) is cut back to the same text. The shortest such prefix, found by bisection."""
        if not self(text):
            return text
        low, high = 0, len(text)  # self(text[:low]) is false, self(text[:high]) true
        while high - low > 1:
            mid = (low + high) // 2
            low, high = (low, mid) if self(text[:mid]) else (mid, high)
        return text[:high]

    def before_strings(self, text: str) -> str:
        """The text before its first stop string: what its answer is read from (a made-up next question is
        not the model's answer)."""
        return min((text.split(s)[0] for s in self.strings), key=len, default=text)


@dataclass(frozen=True)
class Method:
    name: str
    label: str  # in the report
    prompt: Callable[[str, PromptContext], str]  # (question, context) -> the student's input
    stop: Stop  # where an output ends
    answer_prefix: str | None  # the answer follows the first occurrence of this; None: the first candidate
    reasoning: bool  # outputs a rationale (gets the generation budget) or only an answer (gets a few tokens)
    # The trained methods: their (prompt, completion) pair from (question, rationale, answer), and what they
    # are trained on: the teacher's correct rationales, or the gold answers of the train split.
    pair: Callable[[str, str, str, ModelKind], tuple[str, str]] | None = None
    trains_on: Literal["rationales", "answers"] | None = None
    answer_step: bool = False  # zero-shot-CoT: a second generation after the task's answer trigger
    few_shot: bool = False  # its prompt needs the paper's few-shot-CoT prompt file
    # A second training pair per example, its loss weighted by train.dss_alpha (distilling step-by-step's
    # rationale task beside the label task); never generated at inference.
    aux_pair: Callable[[str, str, str, ModelKind], tuple[str, str]] | None = None
    default: bool = True  # trained or evaluated when the config does not list methods

    def pairs(self, question: str, rationale: str, answer: str, kind: ModelKind) -> list[tuple[str, str]]:
        """The (prompt, completion) pairs one example trains a student on: its pair, then its second pair where it
        has one. Training, export, `show` and the generation budget all build them here."""
        return [make(question, rationale, answer, kind) for make in (self.pair, self.aux_pair) if make]

    @property
    def votes(self) -> bool:
        """Self-consistency applies: it samples rationales whose answer is in the output itself."""
        return self.reasoning and not self.answer_step


def _line_done(text: str) -> bool:
    return "\n" in text.lstrip()


ANSWER_LINE = Stop(_line_done)  # an answer alone is complete at its first newline
NEW_QUESTION = Stop(strings=(NEXT_QUESTION,))  # a prompted rationale, when the model makes up the next question

METHODS: dict[str, Method] = {
    m.name: m
    for m in (
        Method(
            "ft_cot",
            "Fine-tune-CoT",
            lambda q, c: prompts.ft_cot_pair(q, "", "", c.kind)[0],
            Stop(_after_marker),
            ANSWER_MARKER,
            True,
            prompts.ft_cot_pair,
            "rationales",
        ),
        Method(
            "vanilla",
            "Vanilla fine-tuning",
            lambda q, c: prompts.vanilla_pair(q, "", c.kind)[0],
            ANSWER_LINE,
            None,
            False,
            lambda q, rationale, a, kind: prompts.vanilla_pair(q, a, kind),
            "answers",
        ),
        Method("zero_shot", "Zero-shot", lambda q, c: prompts.zero_shot(q, c.kind), ANSWER_LINE, None, False),
        # Step 2's completion: the answer follows the trigger directly.
        Method(
            "zero_shot_cot",
            "Zero-shot-CoT",
            lambda q, c: prompts.zero_shot_cot_step1(q),
            NEW_QUESTION,
            None,
            True,
            answer_step=True,
        ),
        Method(
            "few_shot_cot",
            "Few-shot-CoT",
            lambda q, c: prompts.few_shot_cot(q, c.few_shot_key, c.few_shot_prompts),
            NEW_QUESTION,
            "The answer is",
            True,
            few_shot=True,
        ),
        # Distilling step-by-step (Hsieh et al., 2023): the label and the rationale as two tasks told apart by a
        # prefix; it answers from the label prompt alone, in a few tokens.
        Method(
            "dss",
            "Distilling step-by-step",
            lambda q, c: prompts.dss_label_pair(q, "", c.kind)[0],
            ANSWER_LINE,
            None,
            False,
            lambda q, rationale, a, kind: prompts.dss_label_pair(q, a, kind),
            "rationales",
            aux_pair=lambda q, rationale, a, kind: prompts.dss_rationale_pair(q, rationale, kind),
            default=False,
        ),
    )
}
TRAINED = tuple(name for name, m in METHODS.items() if m.pair is not None)
BASELINES = tuple(name for name, m in METHODS.items() if m.pair is None)
DEFAULT_TRAINED = tuple(name for name in TRAINED if METHODS[name].default)

# The teacher is scored like a method (eval/teacher/) from its own records; its answers are zero-shot-CoT's.
TEACHER = "teacher"
TEACHER_LABEL = "Teacher (zero-shot-CoT)"
TEACHER_ANSWER_PREFIX = METHODS["zero_shot_cot"].answer_prefix
# Rows in the paper's Table 1 order: the teacher, the prompting baselines, then the trained methods, reasoning last.
REPORT_ORDER = (TEACHER, *BASELINES, *sorted(TRAINED, key=lambda name: METHODS[name].reasoning))


def get_method(name: str) -> Method:
    try:
        return METHODS[name]
    except KeyError:
        raise UserError(f"unknown method {name!r}; methods: {', '.join(METHODS)}") from None


def label(name: str) -> str:
    return TEACHER_LABEL if name == TEACHER else METHODS[name].label
