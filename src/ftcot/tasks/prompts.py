"""Prompt and fine-tuning formats as pure functions (the paper's formats, decoder and encoder-decoder).

Fine-tuning pairs are (prompt, completion); the student's tokenizer adds EOS after the completion and the
loss covers the completion only.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Literal

from ftcot.data import data_path
from ftcot.errors import UserError
from ftcot.files import read_json

ModelKind = Literal["decoder", "encoder_decoder"]

COT_TRIGGER = "Let's think step by step."
FT_QUESTION_END = " ###"  # decoder prompts end here; the completion starts with a space
ANSWER_MARKER = "-->"  # a Fine-tune-CoT completion's answer follows it
FT_ANSWER_SEPARATOR = f" {ANSWER_MARKER} "
NEXT_QUESTION = "\nQ:"  # a prompted model that starts a new question has finished its answer


def verbalize(question: str, choices: Iterable[str]) -> str:
    """The paper's multiple-choice question: `q Answer choices: (A) x, (B) y.`"""
    options = ", ".join(f"({chr(65 + i)}) {choice.strip()}" for i, choice in enumerate(choices))
    return f"{question} Answer choices: {options}."


def zero_shot(question: str, kind: ModelKind = "decoder") -> str:
    if kind == "encoder_decoder":
        return f"question: {question.strip()}"
    return f"Q: {question.strip()}\n\nA:"


def zero_shot_cot_step1(question: str) -> str:
    return f"Q: {question}\nA: {COT_TRIGGER}"


def rationalize_step1(question: str, answer: str) -> str:
    """STaR's rationalization: step 1 with the gold answer given as a hint, for a question the teacher never
    solved; the rationale is then trained beside the question alone."""
    return f"Q: {question}\n(Hint: the correct answer is {answer}.)\nA: {COT_TRIGGER}"


def zero_shot_cot_step2(step1_prompt: str, rationale: str, trigger: str) -> str:
    """Step 2 appends the rationale and the answer trigger (Kojima et al.: rationale + ' \\n' + trigger)."""
    return f"{step1_prompt}{rationale} \n{trigger}"


def load_few_shot_prompts(root: Path) -> dict:
    return read_json(data_path("few_shot_cot_prompts.json", root))


def few_shot_cot(question: str, key: str | None, prompts: dict) -> str:
    """The paper's few-shot-CoT prompt named by the task's `few_shot_prompt` (tracking_shuffled_objects has none in
    the paper's prompt file)."""
    if key not in prompts:
        raise UserError(
            f"no few-shot-CoT prompt {key!r} in the paper's prompt file"
            if key
            else "the task names no few-shot-CoT prompt (few_shot_prompt)"
        )
    return f"{prompts[key]['prompt']}{NEXT_QUESTION} {question.strip()}\nA:"


def vanilla_pair(question: str, answer: str, kind: ModelKind = "decoder") -> tuple[str, str]:
    """Vanilla fine-tuning: question → answer only."""
    if kind == "encoder_decoder":
        return question.strip(), answer.strip()
    return question.strip() + FT_QUESTION_END, " " + answer.strip()


def ft_cot_pair(question: str, rationale: str, answer: str, kind: ModelKind = "decoder") -> tuple[str, str]:
    """Fine-tune-CoT: question → rationale --> answer."""
    target = rationale.strip() + FT_ANSWER_SEPARATOR + answer.strip()
    if kind == "encoder_decoder":
        return question.strip(), target
    return question.strip() + FT_QUESTION_END, " " + target


DSS_LABEL, DSS_RATIONALE = "[label] ", "[rationale] "  # distilling step-by-step's task prefixes


def dss_label_pair(question: str, answer: str, kind: ModelKind = "decoder") -> tuple[str, str]:
    """Distilling step-by-step's label task: [label] question → answer."""
    return vanilla_pair(DSS_LABEL + question.strip(), answer, kind)


def dss_rationale_pair(question: str, rationale: str, kind: ModelKind = "decoder") -> tuple[str, str]:
    """Its rationale task: [rationale] question → rationale."""
    return vanilla_pair(DSS_RATIONALE + question.strip(), rationale, kind)
