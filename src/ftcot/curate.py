"""Curation: turn teacher completions into Fine-tune-CoT training examples, and carve a validation split.

Kept: completions whose parsed answer is correct, up to D per question. Dropped by default: rationales cut
off by the token limit (for records that carry no finish reason, one that ends mid-sentence near the recorded
limit), empty rationales, rationales whose own conclusion is not the gold answer (`curate.consistency`), and
repeats of a rationale already kept for the same question. Every drop is counted by reason. A choice question
the teacher saw in another option order is trained in the test's, its rationale's letters remapped, and each
choice example can be added again with its options shuffled (`curate.permute_choices`). Validation questions
come from the train split only (never the test split), seeded and stratified by task, and none of their
completions is trained on.
"""

from __future__ import annotations

import itertools
import math
import random
import re
from collections import defaultdict

from pydantic import BaseModel

from ftcot.config import CurateConfig
from ftcot.judge import solved
from ftcot.tasks import Sample, Task
from ftcot.tasks.rationales import letter_mapping, letter_mentions, normalized, parse_choices, remap_letters, supports
from ftcot.teachers.records import TeacherCompletion


class Example(BaseModel):
    """One fine-tuning example: question, the teacher's rationale (empty for vanilla) and the answer."""

    task: str
    sample_index: int
    completion_index: int = 0
    question: str
    rationale: str = ""
    answer: str
    rationalized: bool = False  # the teacher was given the answer as a hint
    frame: str = "task"  # which question it is trained beside (see training_frame)
    variant: int = 0  # 0: as curated; k: its k-th copy with the options shuffled


def split_validation(samples: list[Sample], fraction: float, seed: int) -> tuple[list[Sample], list[Sample]]:
    """(train, validation) from the train-side samples: a seeded share of each task's questions."""
    by_task: dict[str, list[Sample]] = defaultdict(list)
    for s in samples:
        by_task[s.task].append(s)
    val_ids: set[tuple[str, int]] = set()
    for task, items in by_task.items():
        ids = sorted(s.sample_index for s in items)
        random.Random(f"{seed}:{task}").shuffle(ids)
        val_ids.update((task, i) for i in ids[: round(fraction * len(ids))])
    train = [s for s in samples if (s.task, s.sample_index) not in val_ids]
    val = [s for s in samples if (s.task, s.sample_index) in val_ids]
    return train, val


_SENTENCE_DONE = re.compile(r"[.!?][\"'”’)\]]*$")
# A BPE tokenizer's pre-tokens (GPT-2's rule, roughly): a word or number with its leading space, a run of
# punctuation, whitespace.
_PRE_TOKENS = re.compile(r"'(?:s|t|re|ve|m|ll|d)| ?[A-Za-z]+| ?\d+| ?[^\sA-Za-z\d]+|\s+")


def _token_estimate(text: str) -> int:
    """About how many BPE tokens a text takes (long numbers and words count a token per few characters): within
    a few percent of GPT-3's count on the recorded rationales."""
    count = 0
    for piece in _PRE_TOKENS.findall(text):
        digits = sum(c.isdigit() for c in piece)
        count += 1 + ((digits - 1) // 3 if digits else (len(piece.strip()) - 1) // 8)
    return count


def truncated(record: TeacherCompletion) -> bool:
    """Whether the rationale was cut off by the token limit: as the server said, or, for records that carry no
    finish reason (the recorded logs), when it ends mid-sentence at about the recorded limit (a short one that
    ends on "51 + 23 = 74" is complete)."""
    if record.reasoning_finish_reason is not None:
        return record.reasoning_finish_reason == "length"
    limit = record.params.get("max_tokens_reasoning")
    rationale = record.reasoning_completion.strip()
    return (
        bool(rationale)
        and isinstance(limit, int)
        and not _SENTENCE_DONE.search(rationale)
        and _token_estimate(rationale) >= 0.75 * limit
    )


def training_frame(
    task: Task, sample: Sample, record: TeacherCompletion, cfg: CurateConfig = CurateConfig()
) -> tuple[str, str, str, str]:
    """The (question, rationale, answer) a rationale is trained on, and its frame: "task" (the task's own
    question and gold answer), "remapped" (the same, the rationale's letters moved from the teacher's option
    order to the test's), "teacher_order" (the task's format in the teacher's option order, where the
    rationale's letters cannot be moved safely, or `choice_order: teacher`), or "teacher" (the teacher's own
    text, `question_source: teacher`)."""
    rationale = record.reasoning_completion.strip()
    if cfg.question_source == "teacher":
        return record.question, rationale, record.answer, "teacher"
    if not record.question or record.question == sample.question:
        return sample.question, rationale, sample.answer, "task"
    seen, ours = parse_choices(record.question), parse_choices(sample.question)
    if cfg.choice_order == "test" and seen and ours:
        slot = {normalized(option): i for i, option in enumerate(ours.options)}
        if sorted(slot) == sorted(map(normalized, seen.options)) and len(slot) == len(seen.options):
            mapping = {seen.letters[j]: ours.letters[slot[normalized(option)]] for j, option in enumerate(seen.options)}
            remapped = remap_letters(rationale, mapping, seen.letters)
            if remapped is not None and mapping.get(record.answer) == sample.answer:
                return sample.question, remapped, sample.answer, "remapped"
    if task.teacher_question:
        return task.teacher_question(record.question), rationale, record.answer, "teacher_order"
    return sample.question, rationale, sample.answer, "task"


def curate(
    task: Task, records: list[TeacherCompletion], train: list[Sample], cfg: CurateConfig, num_samples: int
) -> tuple[list[Example], list[tuple[TeacherCompletion, str]]]:
    """Fine-tune-CoT examples from the records of the given train questions, and each of those records with
    its fate: "kept", or why it was dropped (incorrect, rationalized, truncated, empty, inconsistent,
    duplicate, over_cap, question_mismatch)."""
    by_index = {(s.task, s.sample_index): s for s in train}
    cap = cfg.max_per_question or num_samples
    fates: list[tuple[TeacherCompletion, str]] = []
    kept: list[Example] = []
    seen: dict[tuple[str, int], set[str]] = defaultdict(set)
    for r in sorted(records, key=lambda r: (r.task, r.sample_index, r.completion_index)):
        sample = by_index.get((r.task, r.sample_index))
        if sample is None:
            continue  # a validation or test question, or another split's
        rationale = r.reasoning_completion.strip()
        fate = "kept"
        if not task.shipped and r.question != sample.question:
            fate = "question_mismatch"  # a record of other data under the same index: never trained on
        elif not solved(task.answer_format, r.answer_completion, r.answer):
            fate = "incorrect"
        elif r.rationalized and cfg.rationalized == "drop":
            fate = "rationalized"
        elif cfg.drop_truncated and truncated(r):
            fate = "truncated"
        elif cfg.drop_empty and not rationale:
            fate = "empty"
        elif cfg.consistency and supports(rationale, task.answer_format, r.question, r.answer) is False:
            fate = "inconsistent"  # its own conclusion is another answer: it contradicts its label
        elif cfg.dedupe and rationale in seen[(r.task, r.sample_index)]:
            fate = "duplicate"
        elif len(seen[(r.task, r.sample_index)]) >= cap:
            fate = "over_cap"
        else:
            seen[(r.task, r.sample_index)].add(rationale)
            question, trained, answer, frame = training_frame(task, sample, r, cfg)
            kept.append(
                Example(
                    task=r.task,
                    sample_index=r.sample_index,
                    completion_index=r.completion_index,
                    question=question,
                    rationale=trained,
                    answer=answer,
                    rationalized=r.rationalized,
                    frame=frame,
                )
            )
        fates.append((r, fate))
    return kept, fates


def permuted_copies(examples: list[Example], k: int, seed: int) -> tuple[list[Example], int]:
    """Each multiple-choice example followed by k copies with its options shuffled (seeded by the example, so
    every method's copies of one question match): the question's options reordered, the letters named in the
    rationale and the answer remapped (k at most the n! - 1 other orders of n options). A choice example whose
    options cannot be rebuilt or whose rationale's letter mentions are ambiguous gets no copy; how many got none
    is returned beside (only with k > 0)."""
    out, skipped = [], 0
    for e in examples:
        out.append(e)
        if not k:
            continue
        question = parse_choices(e.question)
        if (
            question is None
            or e.answer not in question.letters
            or letter_mentions(e.rationale, question.letters) is None
        ):
            skipped += 1  # options it cannot rebuild, or "Let C be ...": which capitals are letters is unclear
            continue
        rng = random.Random(f"{seed}:{e.task}:{e.sample_index}:{e.completion_index}")
        for variant, order in enumerate(_orders(len(question.letters), k, rng), 1):
            mapping = letter_mapping(order, question.letters)
            out.append(
                e.model_copy(
                    update={
                        "question": question.permuted(order).render(),
                        "answer": mapping[e.answer],
                        "variant": variant,
                        "rationale": remap_letters(e.rationale, mapping, question.letters),
                    }
                )
            )
    return out, skipped


def _orders(n: int, k: int, rng: random.Random) -> list[list[int]]:
    """k distinct orders of n options other than their own (all of them where there are fewer)."""
    if math.factorial(n) <= 120:
        others = [list(order) for order in itertools.permutations(range(n))][1:]
        return rng.sample(others, min(k, len(others)))
    orders: dict[tuple[int, ...], None] = {}
    while len(orders) < min(k, math.factorial(n) - 1):
        order = tuple(rng.sample(range(n), n))
        if order != tuple(range(n)):
            orders[order] = None
    return [list(order) for order in orders]


def vanilla_examples(train: list[Sample]) -> list[Example]:
    """Vanilla fine-tuning: every train question with its gold answer, no teacher needed."""
    return [Example(task=s.task, sample_index=s.sample_index, question=s.question, answer=s.answer) for s in train]
