"""A user's own task, declared in the run config (or in a task YAML it names) instead of a built-in key: its
questions and answers are read from JSONL, JSON, CSV, parquet or a `datasets` folder (with the `datasets`
library), checked row by row, and registered beside the built-in tasks, so every stage treats it like them.
Train rows get sample indices 0..n-1 and test rows n.. (like GSM8K's train-then-test numbering)."""

from __future__ import annotations

import csv
import hashlib
import json
import re
import tempfile
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
    datasets.logging.set_verbosity(datasets.logging.CRITICAL)  # a file it cannot read is our one line, not its log
    try:
        if path.is_dir():
            data = datasets.load_from_disk(str(path))
            if isinstance(data, datasets.DatasetDict):
                raise UserError(f"{path} holds several splits ({', '.join(data)}): name one of them, e.g. "
                                f"{path / next(iter(data))}")
        elif path.suffix in READERS:
            # Read afresh into memory each time (a cache keyed by path and mtime can return a file's old rows
            # after `cp -p`), and CSV cells as text: "01234" stays "01234".
            text_columns = {"features": datasets.Features({name: datasets.Value("string") for name in _header(path)})
                            } if path.suffix == ".csv" else {}
            with tempfile.TemporaryDirectory() as cache:
                data = datasets.load_dataset(READERS[path.suffix], data_files=str(path), split="train",
                                             keep_in_memory=True, cache_dir=cache, download_mode="force_redownload",
                                             **text_columns)
        elif path.exists():
            raise UserError(f"{path}: a task's data is .jsonl, .json, .csv, .parquet or a datasets folder")
        else:
            raise UserError(f"{path} does not exist")
        return data.to_list()
    except UserError:
        raise
    except Exception as exc:  # datasets and pyarrow raise many types for a file they cannot read
        cause = exc.__cause__ or exc.__context__ or exc  # datasets wraps the reader's own error
        raise UserError(f"{path}: cannot read it as a table ({type(cause).__name__}: "
                        f"{str(cause).splitlines()[0] if str(cause) else ''})") from None


def _header(path: Path) -> list[str]:
    try:
        with open(path, newline="", encoding="utf-8-sig") as f:
            return next(csv.reader(f), [])
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise UserError(f"{path}: cannot read its header ({exc})") from None


def answer_format(decl: CustomTask, max_choices: int) -> tuple[answers.AnswerFormat, str]:
    """The declared answer format and its zero-shot-CoT answer trigger (the paper's, per format)."""
    name = decl.answer_format
    if name.startswith("regex:"):
        pattern = re.compile(name.removeprefix("regex:"))

        def found(text: str) -> list[str]:  # the first group where the pattern has groups; never empty
            matches = (m.group(1) if pattern.groups else m.group(0) for m in pattern.finditer(text))
            return [m for m in matches if m]
        # A gold answer may be written whole ("ID-42") or as its group ("42"): both compare as the group.
        return answers.AnswerFormat(name, found, lambda answer: (found(answer) or [answer])[0]), \
            "Therefore, the answer is"
    if name == "choice":
        letters = LETTERS[: max_choices or 5]
        return answers.AnswerFormat(f"letter A-{letters[-1]}", re.compile(f"[{letters}]").findall), \
            f"Therefore, among A through {letters[-1]}, the answer is"
    return {"number": (answers.FLOAT, "Therefore, the answer (arabic numerals) is"),
            "integer": (answers.INTEGER, "Therefore, the answer (arabic numerals) is"),
            "yes_no": (answers.YES_NO, "Therefore, the answer (Yes or No) is"),
            "text": (answers.TEXT, "Therefore, the answer is")}[name]


def _text(value) -> str:
    """A cell as text: JSON numbers without a float's ".0" or exponent (18.0 -> "18", 1e-07 -> "0.0000001")."""
    if isinstance(value, float):
        return str(int(value)) if value.is_integer() else np.format_float_positional(value, trim="-")
    return str(value).strip()


def _choices(value, where: str) -> list[str]:
    if isinstance(value, dict):
        value = list(value.values())
    if not isinstance(value, list) or not value or not all(
            isinstance(c, (str, int, float)) and not isinstance(c, bool) for c in value):
        raise UserError(f"{where}: choices must be a non-empty list (or mapping) of texts")
    if len(value) > len(LETTERS):
        raise UserError(f"{where}: {len(value)} choices; at most {len(LETTERS)} (A-Z)")
    return [_text(c) for c in value]


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
        if isinstance(answer, bool) and decl.answer_format == "yes_no":
            answer = "yes" if answer else "no"  # StrategyQA-style booleans
        if isinstance(answer, bool) or not isinstance(answer, (str, int, float)) or not _text(answer):
            raise UserError(f"{where}: {decl.answer_field!r} is empty or not a single value")
        choices = _choices(row[decl.choices_field], f"{where}: {decl.choices_field!r}") if decl.choices_field \
            else None
        if decl.id_field:
            key = str(row[decl.id_field])
            if key in seen_ids:
                raise UserError(f"{where}: {decl.id_field!r} {key!r} repeats {seen_ids[key]}")
            seen_ids[key] = where
        out.append((question.strip(), _text(answer), choices, where))
    return out


def _gold(answer: str, choices: list[str] | None, fmt: answers.AnswerFormat, decl: CustomTask, where: str) -> str:
    """The gold answer in the form the parser compares: for choices, the letter (given as a letter or as the
    choice's text); yes/no as the word the parser finds ("Yes." -> "yes"); otherwise the answer itself,
    which must parse in the declared format (an integer task's answers are whole numbers)."""
    if decl.answer_format == "choice":
        if choices and answer in choices:
            return LETTERS[choices.index(answer)]
        letter = answer.strip("() .").upper()
        if len(letter) != 1 or letter not in LETTERS[: len(choices) if choices else 26]:
            raise UserError(f"{where}: {decl.answer_field!r} {answer!r} is not a choice letter in range "
                            f"(A-{LETTERS[len(choices) - 1] if choices else 'Z'}) nor one of the choices")
        return letter
    parsed = answers.parse_prediction(fmt, answer)
    try:
        valid = parsed is not None and fmt.matches(parsed, answer)
    except UserError:  # the format cannot read it as a gold answer either
        valid = False
    if decl.answer_format == "integer":
        valid = valid and re.fullmatch(r"-?\d+", answer.replace(",", "")) is not None
    if decl.answer_format == "yes_no":  # "Yes", "no.", "YES!" are all fine
        valid = answer.lower().strip(" .!\"'") in ("yes", "no")
    if not valid:
        raise UserError(f"{where}: {decl.answer_field!r} {answer!r} is not a valid {decl.answer_format} answer")
    return parsed if decl.answer_format == "yes_no" else answer


def register(decl: CustomTask) -> TaskSpec:
    """Read, check and register a custom task under its name (registering it again replaces it)."""
    if decl.name in TASKS:
        raise UserError(f"task name {decl.name!r} is a built-in task's: choose another name")
    seen: dict = {}
    train = _pairs(decl, _rows(Path(decl.train)), Path(decl.train), seen)
    if decl.test:
        test = _pairs(decl, _rows(Path(decl.test)), Path(decl.test), seen)
    else:  # the paper's way of splitting a task without a test file: a seeded permutation
        order = np.random.RandomState(0).permutation(len(train))
        cut = len(train) - round(decl.test_fraction * len(train))
        test = [train[i] for i in sorted(order[cut:])]
        train = [train[i] for i in sorted(order[:cut])]
    if not train or not test:
        raise UserError(f"task {decl.name}: {len(train)} train and {len(test)} test questions; both need some")
    max_choices = max((len(c) for _, _, c, _ in train + test if c), default=0)
    if decl.answer_format == "choice" and not decl.choices_field:  # the letters are in the questions' text
        letters = [a.strip("() .").upper() for _, a, _, _ in train + test]
        max_choices = max(5, *(LETTERS.index(x) + 1 for x in letters if len(x) == 1 and x in LETTERS))
    fmt, trigger = answer_format(decl, max_choices)
    samples = {}
    for index, (question, answer, choices, where) in enumerate(train + test):
        gold = _gold(answer, choices, fmt, decl, where)
        samples[index] = Sample(decl.name, index, verbalize(question, choices) if choices else question, gold)
    split = {"train": list(range(len(train))), "test": list(range(len(train), len(train) + len(test)))}
    # What the stages' fingerprints hold of the data: a changed, added or reordered row reruns them.
    digest = hashlib.sha256(json.dumps([[s.question, s.answer] for s in samples.values()] + [split]).encode(
        "utf-8", "surrogatepass")).hexdigest()[:16]
    spec = TaskSpec(decl.name, decl.name, (), lambda records: [], fmt, decl.answer_trigger or trigger,
                    custom=samples, custom_split=split, digest=digest)
    CUSTOM_TASKS[decl.name] = spec
    return spec
