"""A user's own task, declared in the run config (or in a task YAML it names) instead of a built-in key: its
questions and answers are read from JSONL, JSON, CSV, parquet or a `datasets` folder (with the `datasets`
library), checked row by row, and registered beside the built-in tasks, so every stage treats it like them.
Train rows get sample indices 0..n-1 and test rows n.. (like GSM8K's train-then-test numbering)."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np

from ftcot.config import CustomTask
from ftcot.errors import UserError
from ftcot.tasks import answers
from ftcot.tasks.registry import CUSTOM_TASKS, TASKS, Sample, TaskSpec, verbalize

LETTERS = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
READERS = {".jsonl": "json", ".json": "json", ".csv": "csv", ".parquet": "parquet"}


def _rows(path: Path) -> list[dict]:
    """Every row of a data file or a `datasets` save_to_disk folder, as dicts."""
    import datasets  # deferred: pyarrow takes a second to import, and only custom tasks need it

    datasets.disable_progress_bars()
    try:
        if path.is_dir():
            data = datasets.load_from_disk(str(path))
            if isinstance(data, datasets.DatasetDict):
                raise UserError(f"{path} holds several splits ({', '.join(data)}): name one of them, e.g. "
                                f"{path / next(iter(data))}")
        elif path.suffix in READERS:
            data = datasets.load_dataset(READERS[path.suffix], data_files=str(path), split="train",
                                         keep_in_memory=True)
        elif path.exists():
            raise UserError(f"{path}: a task's data is .jsonl, .json, .csv, .parquet or a datasets folder")
        else:
            raise UserError(f"{path} does not exist")
        return data.to_list()
    except UserError:
        raise
    except Exception as exc:  # datasets and pyarrow raise many types for a file they cannot read
        raise UserError(f"{path}: cannot read it as a table ({type(exc).__name__}: "
                        f"{str(exc).splitlines()[0] if str(exc) else ''})") from None


def answer_format(decl: CustomTask, max_choices: int) -> tuple[answers.AnswerFormat, str]:
    """The declared answer format and its zero-shot-CoT answer trigger (the paper's, per format)."""
    name = decl.answer_format
    if name.startswith("regex:"):
        pattern = re.compile(name.removeprefix("regex:"))
        return answers.AnswerFormat(name, pattern.findall), "Therefore, the answer is"
    if name == "choice":
        letters = LETTERS[: max_choices or 5]
        return answers.AnswerFormat(f"letter A-{letters[-1]}", re.compile(f"[{letters}]").findall), \
            f"Therefore, among A through {letters[-1]}, the answer is"
    return {"number": (answers.FLOAT, "Therefore, the answer (arabic numerals) is"),
            "integer": (answers.INTEGER, "Therefore, the answer (arabic numerals) is"),
            "yes_no": (answers.YES_NO, "Therefore, the answer (Yes or No) is"),
            "text": (answers.TEXT, "Therefore, the answer is")}[name]


def _choices(value, where: str) -> list[str]:
    if isinstance(value, dict):
        value = list(value.values())
    if not isinstance(value, list) or not value or not all(isinstance(c, (str, int, float)) for c in value):
        raise UserError(f"{where}: choices must be a non-empty list (or mapping) of texts")
    return [str(c) for c in value]


def _pairs(decl: CustomTask, rows: list[dict], path: Path, seen_ids: dict) -> list[tuple[str, str, list | None, str]]:
    """(question, answer, choices, where) of each row, every field checked; one line naming file, row and
    field."""
    out = []
    for i, row in enumerate(rows, 1):
        where = f"{path}: row {i}"
        for field in (decl.question_field, decl.answer_field, decl.choices_field, decl.id_field):
            if field and row.get(field) is None:
                raise UserError(f"{where}: no {field!r}")
        question, answer = row[decl.question_field], row[decl.answer_field]
        if not isinstance(question, str) or not question.strip():
            raise UserError(f"{where}: {decl.question_field!r} is empty or not text")
        if isinstance(answer, bool) or not isinstance(answer, (str, int, float)) or not str(answer).strip():
            raise UserError(f"{where}: {decl.answer_field!r} is empty or not a single value")
        choices = _choices(row[decl.choices_field], f"{where}: {decl.choices_field!r}") if decl.choices_field \
            else None
        if decl.id_field:
            key = str(row[decl.id_field])
            if key in seen_ids:
                raise UserError(f"{where}: {decl.id_field!r} {key!r} repeats {seen_ids[key]}")
            seen_ids[key] = where
        out.append((question.strip(), str(answer).strip(), choices, where))
    return out


def _gold(answer: str, choices: list[str] | None, fmt: answers.AnswerFormat, decl: CustomTask, where: str) -> str:
    """The gold answer in the form the parser compares: for choices, the letter (given as a letter or as the
    choice's text); otherwise the answer itself, which must parse in the declared format."""
    if decl.answer_format == "choice":
        if choices and answer in choices:
            return LETTERS[choices.index(answer)]
        letter = answer.strip("() .").upper()
        if len(letter) != 1 or letter not in LETTERS[: len(choices) if choices else 26]:
            raise UserError(f"{where}: {decl.answer_field!r} {answer!r} is not a choice letter in range "
                            f"(A-{LETTERS[len(choices) - 1] if choices else 'Z'}) nor one of the choices")
        return letter
    parsed = answers.parse_prediction(fmt, answer)
    if parsed is None or not fmt.matches(parsed, answer):
        raise UserError(f"{where}: {decl.answer_field!r} {answer!r} is not a {decl.answer_format} answer")
    return answer


def register(decl: CustomTask, seed: int = 0) -> TaskSpec:
    """Read, check and register a custom task under its name (registering it again replaces it)."""
    if decl.name in TASKS:
        raise UserError(f"task name {decl.name!r} is a built-in task's: choose another name")
    seen: dict = {}
    train = _pairs(decl, _rows(Path(decl.train)), Path(decl.train), seen)
    if decl.test:
        test = _pairs(decl, _rows(Path(decl.test)), Path(decl.test), seen)
    else:  # the paper's way of splitting a task without a test file: a seeded permutation
        order = np.random.RandomState(seed).permutation(len(train))
        cut = len(train) - round(decl.test_fraction * len(train))
        test = [train[i] for i in sorted(order[cut:])]
        train = [train[i] for i in sorted(order[:cut])]
    if not train or not test:
        raise UserError(f"task {decl.name}: {len(train)} train and {len(test)} test questions; both need some")
    max_choices = max((len(c) for _, _, c, _ in train + test if c), default=0)
    fmt, trigger = answer_format(decl, max_choices)
    samples = {}
    for index, (question, answer, choices, where) in enumerate(train + test):
        gold = _gold(answer, choices, fmt, decl, where)
        samples[index] = Sample(decl.name, index, verbalize(question, choices) if choices else question, gold)
    spec = TaskSpec(decl.name, decl.name, (), lambda records: [], fmt, decl.answer_trigger or trigger,
                    custom=samples, custom_split={"train": list(range(len(train))),
                                                  "test": list(range(len(train), len(train) + len(test)))})
    CUSTOM_TASKS[decl.name] = spec
    return spec
