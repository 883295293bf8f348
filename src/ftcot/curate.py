"""Curation: turn teacher completions into Fine-tune-CoT training examples, and carve a validation split.

Kept: completions whose parsed answer is correct, up to D per question. Dropped by default: rationales cut
off by the token limit, empty rationales, and repeats of a rationale already kept for the same question.
Every filter's count is reported. Validation questions come from the train split only (never the test
split), seeded and stratified by task, and none of their completions is trained on.
"""

from __future__ import annotations

import random
from collections import Counter, defaultdict

from pydantic import BaseModel

from ftcot.config import CurateConfig
from ftcot.tasks import Sample, get_task
from ftcot.methods import TEACHER_ANSWER_PREFIX
from ftcot.tasks.answers import parse_prediction
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


def training_frame(sample: Sample, record: TeacherCompletion, question_source: str = "task") -> tuple[str, str]:
    """The (question, answer) a rationale is trained beside: the task's question and gold answer, but in the
    teacher's choice order where that differs (a rationale names its letters); or the teacher's own text."""
    if question_source == "teacher":
        return record.question, record.answer
    spec = get_task(sample.task)
    if spec.from_teacher and record.question and record.question != sample.question:
        return spec.from_teacher(record.question), record.answer
    return sample.question, sample.answer


def solved(task: str, answer_completion: str, gold: str) -> bool:
    """Whether a teacher's step-2 answer is the gold answer, parsed as the task parses the teacher's."""
    fmt = get_task(task).answer_format
    return fmt.matches(parse_prediction(fmt, answer_completion, TEACHER_ANSWER_PREFIX), gold)


def curate(records: list[TeacherCompletion], train: list[Sample], cfg: CurateConfig,
           num_samples: int) -> tuple[list[Example], Counter]:
    """Fine-tune-CoT examples from the records of the given train questions, and what each filter removed."""
    by_index = {(s.task, s.sample_index): s for s in train}
    cap = cfg.max_per_question or num_samples
    removed: Counter = Counter()
    kept: list[Example] = []
    seen: dict[tuple[str, int], set[str]] = defaultdict(set)
    for r in sorted(records, key=lambda r: (r.task, r.sample_index, r.completion_index)):
        sample = by_index.get((r.task, r.sample_index))
        if sample is None:
            continue  # a validation or test question, or another split's
        if get_task(r.task).custom is not None and r.question != sample.question:
            removed["question_mismatch"] += 1  # a record of other data under the same index: never trained on
            continue
        rationale = r.reasoning_completion.strip()
        if not solved(r.task, r.answer_completion, r.answer):
            removed["incorrect"] += 1
        elif r.rationalized and cfg.rationalized == "drop":
            removed["rationalized"] += 1
        elif cfg.drop_truncated and r.reasoning_finish_reason == "length":
            removed["truncated"] += 1
        elif cfg.drop_empty and not rationale:
            removed["empty"] += 1
        elif cfg.dedupe and rationale in seen[(r.task, r.sample_index)]:
            removed["duplicate"] += 1
        elif len(seen[(r.task, r.sample_index)]) >= cap:
            removed["over_cap"] += 1
        else:
            seen[(r.task, r.sample_index)].add(rationale)
            question, answer = training_frame(sample, r, cfg.question_source)
            kept.append(Example(task=r.task, sample_index=r.sample_index, completion_index=r.completion_index,
                                question=question, rationale=rationale, answer=answer, rationalized=r.rationalized))
    return kept, removed


def vanilla_examples(train: list[Sample]) -> list[Example]:
    """Vanilla fine-tuning: every train question with its gold answer, no teacher needed."""
    return [Example(task=s.task, sample_index=s.sample_index, question=s.question, answer=s.answer) for s in train]
