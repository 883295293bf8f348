"""The twelve Fine-tune-CoT tasks as small declarative specs, loaded from the original raw files.

`sample_index` follows the paper's data preparation: records are numbered from 0 in file order, files
concatenated in the order given (GSM8K train then test, CommonsenseQA train then dev, AQuA train then test).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterable

import numpy as np

from ftcot.data import data_path
from ftcot.errors import UserError
from ftcot.files import read_json, read_jsonl
from ftcot.tasks import answers
from ftcot.tasks.answers import AnswerFormat


@dataclass(frozen=True)
class Sample:
    task: str
    sample_index: int
    question: str
    answer: str


@dataclass(frozen=True)
class Source:
    path: str  # relative to the data folder
    offset: int  # sample_index of its first record
    reader: str = "json"  # json: a JSON list; examples: a JSON object's "examples" list; jsonl: one object a line


# A converter turns a source file's records into (question, answer) pairs, in order.
Converter = Callable[[list[dict]], list[tuple[str, str]]]


@dataclass(frozen=True)
class TaskSpec:
    key: str
    name: str
    sources: tuple[Source, ...]
    convert: Converter
    answer_format: AnswerFormat
    # Zero-shot-CoT step-2 trigger, as used by the recorded text-davinci-002 teacher (Kojima et al.).
    answer_trigger: str
    splits: tuple[str, ...] = ("default",)
    labels: dict = field(default_factory=dict)
    # The recorded teacher's question text rendered in this task's format, keeping the teacher's choice order,
    # where its letters differ from ours (Kojima's Date logs shuffled the choices another way): a rationale
    # that ends "the answer is (D)" must be trained beside the choices it saw.
    from_teacher: Callable[[str], str] | None = None
    # A user's task (ftcot.tasks.custom): its samples and its one split, read from the user's files.
    custom: dict[int, Sample] | None = None
    custom_split: dict[str, list[int]] | None = None
    digest: str = ""  # a custom task's data, for the stages' fingerprints


def _each(fn: Callable[[dict], tuple[str, str]]) -> Converter:
    return lambda records: [fn(r) for r in records]


def verbalize(question: str, choices: Iterable[str]) -> str:
    """The paper's multiple-choice format: `q Answer choices: (A) x, (B) y.`"""
    options = ", ".join(f"({chr(65 + i)}) {choice.strip()}" for i, choice in enumerate(choices))
    return f"{question} Answer choices: {options}."


def _bigbench_choice_question(stem: str, choices: Iterable[str]) -> str:
    """The paper's format for BIG-bench's multiple-choice tasks (Date, Tracking)."""
    return verbalize(stem + "\nWhich choice is true?", choices)


def _correct_choice(target_scores: dict) -> int:
    return next(i for i, score in enumerate(target_scores.values()) if score == 1)


def _tracking(record: dict) -> tuple[str, str]:
    choices = [c.removesuffix(".") for c in record["target_scores"]]
    question = _bigbench_choice_question(record["input"].strip(), choices)
    return question, chr(65 + _correct_choice(record["target_scores"]))


def _date_from_teacher(question: str) -> str:
    """Kojima's `input Answer Choices: (A) x (B) y` in our `input\nWhich choice is true? Answer choices:
    (A) x, (B) y.`, same order."""
    stem, found, options = question.rpartition(" Answer Choices: ")
    if not found:
        raise UserError(f"unexpected Date teacher question (no 'Answer Choices:'): {question[:80]!r}")
    return _bigbench_choice_question(stem, re.split(r"\s*\([A-F]\)\s*", options)[1:])


def _date(records: list[dict]) -> list[tuple[str, str]]:
    # One generator over the whole file: choice j of each example moves to slot perm[j].
    rng = np.random.RandomState(0)
    out = []
    for record in records:
        choices = [c.removesuffix(".") for c in record["target_scores"]]
        perm = rng.permutation(range(len(choices)))
        slots = [""] * len(choices)
        for j, slot in enumerate(perm):
            slots[slot] = choices[j]
        question = _bigbench_choice_question(record["input"].strip(), slots)
        out.append((question, chr(65 + int(perm[_correct_choice(record["target_scores"])]))))
    return out


def _gsm8k(record: dict) -> tuple[str, str]:
    _, answer = record["answer"].split("#### ")
    return record["question"], answer


def _aqua(record: dict) -> tuple[str, str]:
    question = verbalize(record["question"].strip(), [o[2:] for o in record["options"]])
    return question, record["correct"]


def _strategy_qa(record: dict) -> tuple[str, str]:
    answer = next(k for k, v in record["target_scores"].items() if v == 1)
    return record["input"].strip(), answer


TASKS: dict[str, TaskSpec] = {spec.key: spec for spec in (
    TaskSpec("single_eq", "SingleEq", (Source("raw/SingleEq/questions.json", 0),),
             _each(lambda r: (r["sQuestion"], str(r["lSolutions"][0]))), answers.FLOAT, answers.NUMERIC_TRIGGER),
    TaskSpec("addsub", "AddSub", (Source("raw/AddSub/AddSub.json", 0),),
             _each(lambda r: (r["sQuestion"].strip(), str(r["lSolutions"][0]))), answers.FLOAT,
             answers.NUMERIC_TRIGGER),
    TaskSpec("multiarith", "MultiArith", (Source("raw/MultiArith/MultiArith.json", 0),),
             _each(lambda r: (r["sQuestion"].strip(), str(int(r["lSolutions"][0])))), answers.INTEGER,
             answers.NUMERIC_TRIGGER, splits=("default", "template")),
    TaskSpec("gsm8k", "GSM8K", (Source("raw/grade-school-math/train.jsonl", 0, "jsonl"),
                                Source("raw/grade-school-math/test.jsonl", 7473, "jsonl")),
             _each(_gsm8k), answers.INTEGER, answers.NUMERIC_TRIGGER),
    TaskSpec("aqua", "AQUA", (Source("raw/AQuA/train.json", 0, "jsonl"), Source("raw/AQuA/test.json", 97467, "jsonl")),
             _each(_aqua), answers.LETTER_A_TO_E, answers.choice_trigger("ABCDE")),
    TaskSpec("svamp", "SVAMP", (Source("raw/SVAMP/SVAMP.json", 0),),
             _each(lambda r: (r["Body"].strip() + " " + r["Question"].strip(), str(r["Answer"]))),
             answers.FLOAT, answers.NUMERIC_TRIGGER),
    TaskSpec("date_understanding", "Date Understanding", (Source("raw/Bigbench_Date/task.json", 0, "examples"),),
             _date, answers.LETTER_A_TO_F, answers.choice_trigger("ABCDEF"), splits=("default", "template"),
             from_teacher=_date_from_teacher),
    TaskSpec("tracking_shuffled_objects", "Tracking Shuffled Objects",
             (Source("raw/Bigbench_object_tracking/task.json", 0, "examples"),),
             _each(_tracking), answers.LETTER_A_TO_C, answers.choice_trigger("ABC")),
    TaskSpec("last_letter_concatenation", "Last Letter Concatenation",
             (Source("raw/last_letters/last_letters.json", 0, "examples"),),
             _each(lambda r: (r["question"], r["answer"])), answers.LETTERS, answers.PLAIN_TRIGGER),
    TaskSpec("coin_flip", "Coin Flip", (Source("raw/coin_flip/coin_flip.json", 0, "examples"),),
             _each(lambda r: (r["question"], r["answer"])), answers.YES_NO, answers.YES_NO_TRIGGER),
    TaskSpec("commonsense_qa", "CommonsenseQA",
             (Source("raw/CommonsenseQA/train_rand_split.jsonl", 0, "jsonl"),
              Source("raw/CommonsenseQA/dev_rand_split.jsonl", 9741, "jsonl")),
             _each(lambda r: (verbalize(r["question"]["stem"].strip(), [c["text"] for c in r["question"]["choices"]]),
                              r["answerKey"])),
             answers.LETTER_A_TO_E, answers.choice_trigger("ABCDE")),
    TaskSpec("strategy_qa", "StrategyQA", (Source("raw/StrategyQA/task.json", 0, "examples"),),
             _each(_strategy_qa), answers.YES_NO, answers.YES_NO_TRIGGER),
)}


# The user's tasks this process has read (ftcot.tasks.custom), beside the built-in ones.
CUSTOM_TASKS: dict[str, TaskSpec] = {}


def get_task(key: str) -> TaskSpec:
    try:
        return TASKS.get(key) or CUSTOM_TASKS[key]
    except KeyError:
        raise UserError(f"unknown task {key!r}; known tasks: {', '.join([*TASKS, *CUSTOM_TASKS])}") from None


def _read_source(source: Source, root: Path, convert: Converter) -> list[tuple[str, str]]:
    """A raw file's (question, answer) pairs; a record the task cannot read is a one-line error
    naming the file and the record."""
    path = data_path(source.path, root)
    data = read_jsonl(path) if source.reader == "jsonl" else read_json(path)
    records = data.get("examples") if source.reader == "examples" and isinstance(data, dict) else data
    if not isinstance(records, list):
        raise UserError(f"{path}: expected a list of records" + (' under "examples"' if source.reader == "examples"
                                                                   else ""))
    try:
        pairs = convert(records)
    except (KeyError, IndexError, TypeError, ValueError, AttributeError, StopIteration):
        pairs = None
    for k, record in enumerate(records if pairs is None else []):  # find the first record it cannot read
        try:
            convert([record])
        except KeyError as exc:
            raise UserError(f"{path}: record {k}: no field {exc.args[0]!r}") from None
        except (IndexError, TypeError, ValueError, AttributeError, StopIteration) as exc:
            raise UserError(f"{path}: record {k}: unexpected content ({type(exc).__name__}: {exc})") from None
    for k, (question, answer) in enumerate(pairs or []):
        if not isinstance(question, str) or not question.strip() or not isinstance(answer, str) or answer == "None":
            raise UserError(f"{path}: record {k}: an empty question or answer")
    return pairs or []


def load_samples(key: str, root: Path, indices: Iterable[int] | None = None) -> dict[int, Sample]:
    """Samples by sample_index. With `indices`, only the source files those indices fall in are read."""
    spec = get_task(key)
    wanted = None if indices is None else sorted(set(indices))
    if spec.custom is not None:
        if any(i not in spec.custom for i in wanted or []):
            raise UserError(f"sample index out of range for task {key} (0-{len(spec.custom) - 1})")
        return dict(spec.custom) if wanted is None else {i: spec.custom[i] for i in wanted}
    samples: dict[int, Sample] = {}
    bounds = [s.offset for s in spec.sources[1:]] + [None]
    for source, end in zip(spec.sources, bounds):
        if wanted is not None and not any(source.offset <= i and (end is None or i < end) for i in wanted):
            continue
        for k, (question, answer) in enumerate(_read_source(source, root, spec.convert)):
            index = source.offset + k
            samples[index] = Sample(key, index, question, answer)
    if wanted is not None:
        missing = [i for i in wanted if i not in samples]
        if missing:
            raise UserError(f"sample index {missing[0]} out of range for task {key} "
                            f"({len(missing)} of {len(wanted)} requested indices do not exist)")
    return samples


def load_split(key: str, root: Path, name: str = "default") -> dict[str, list[int]]:
    """The paper's split: {"train": [sample_index...], "test": [...]}."""
    spec = get_task(key)
    if name not in spec.splits:
        raise UserError(f"task {key} has no split {name!r}; it has: {', '.join(spec.splits)}")
    if spec.custom_split is not None:
        return spec.custom_split
    path = data_path(f"splits/{key}__{name}.json", root)
    split = read_json(path)
    if not isinstance(split, dict) or not all(
            isinstance(split.get(s), list) and all(type(i) is int for i in split[s]) for s in ("train", "test")):
        raise UserError(f"{path}: a split file must be {{\"train\": [sample_index, ...], \"test\": [...]}}")
    return {"train": split["train"], "test": split["test"]}


def split_samples(key: str, part: str, root: Path, split: str = "default") -> list[Sample]:
    """The samples of one side ("train" or "test") of a split, in split order."""
    indices = load_split(key, root, split)[part]
    samples = load_samples(key, root, indices)
    return [samples[i] for i in indices]
