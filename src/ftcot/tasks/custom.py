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
from typing import NamedTuple

import numpy as np

from ftcot.config import CustomTask
from ftcot.errors import UserError
from ftcot.tasks import answers
from ftcot.tasks.answers import ALPHABET
from ftcot.tasks.registry import CUSTOM_TASKS, TASKS, Sample, TaskSpec, verbalize

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


def _text(value) -> str:
    """A cell as text: JSON numbers without a float's ".0" or exponent (18.0 -> "18", 1e-07 -> "0.0000001")."""
    if isinstance(value, float):
        return str(int(value)) if value.is_integer() else np.format_float_positional(value, trim="-")
    return str(value).strip()


def _choices(value, where: str) -> tuple[list[str], list[str]]:
    """A row's (labels, texts) of its choices, from a list of texts (no labels), a mapping of label to text, or
    datasets' {label: [...], text: [...]} (ARC, OpenBookQA, CommonsenseQA)."""
    if isinstance(value, dict) and ("text" in value or "label" in value):
        if not isinstance(value.get("text"), list):
            raise UserError(f"{where}: a choices mapping with 'label' needs 'text', a list of the choices' texts")
        labels = value.get("label", [])
        if not isinstance(labels, list) or labels and len(labels) != len(value["text"]):
            raise UserError(f"{where}: {len(labels) if isinstance(labels, list) else 'no list of'} labels for "
                            f"{len(value['text'])} texts")
        labels, texts = labels, value["text"]
    elif isinstance(value, dict):
        labels, texts = list(value), list(value.values())
    else:
        labels, texts = [], value
    if not isinstance(texts, list) or not texts or not all(
            isinstance(c, (str, int, float)) and not isinstance(c, bool) for c in [*texts, *labels]):
        raise UserError(f"{where}: choices must be a non-empty list (or mapping) of texts")
    if len(texts) > len(ALPHABET):
        raise UserError(f"{where}: {len(texts)} choices; at most {len(ALPHABET)} (A-Z)")
    labels, texts = [_text(x) for x in labels], [_text(c) for c in texts]
    if not all(texts):
        raise UserError(f"{where}: choice {texts.index('') + 1} is empty")
    if len(set(labels)) < len(labels):
        raise UserError(f"{where}: label {next(x for x in labels if labels.count(x) > 1)!r} repeats")
    return labels, texts


def _row_choices(decl: CustomTask, row: dict, where: str) -> tuple[list[str], list[str]] | None:
    """The row's choices: from its choices field, or from one column per choice (labelled by the columns)."""
    if decl.choices_field is None:
        return None
    if isinstance(decl.choices_field, list):
        return _choices({"label": decl.choices_field, "text": [row[c] for c in decl.choices_field]}, where)
    return _choices(row[decl.choices_field], f"{where}: {decl.choices_field!r}")


class Row(NamedTuple):
    question: str
    answer: str  # as text
    choices: tuple[list[str], list[str]] | None  # (labels, texts)
    where: str  # its file and row, for messages
    integer: bool  # the answer is an integer in a typed file: maybe a 0-based index into the choices


def _pairs(decl: CustomTask, rows: list[dict], path: Path, seen_ids: dict) -> list[Row]:
    """Each row, every field checked; one line naming file, row and field."""
    out = []
    for i, row in enumerate(rows, 1):
        where = f"{path}: row {i}"
        columns = decl.choices_field if isinstance(decl.choices_field, list) else [decl.choices_field]
        for field in (decl.question_field, decl.answer_field, *columns, decl.id_field):
            if field and row.get(field) is None:
                raise UserError(f"{where}: no {field!r}")
        question, answer = row[decl.question_field], row[decl.answer_field]
        if not isinstance(question, str) or not question.strip():
            raise UserError(f"{where}: {decl.question_field!r} is empty or not text")
        if isinstance(answer, bool) and decl.answer_format == "yes_no":
            answer = "yes" if answer else "no"  # StrategyQA-style booleans
        if isinstance(answer, bool) or not isinstance(answer, (str, int, float)) or not _text(answer):
            raise UserError(f"{where}: {decl.answer_field!r} is empty or not a single value")
        choices = _row_choices(decl, row, where)
        if decl.id_field:
            key = str(row[decl.id_field])
            if key in seen_ids:
                raise UserError(f"{where}: {decl.id_field!r} {key!r} repeats {seen_ids[key]}")
            seen_ids[key] = where
        out.append(Row(question.strip(), _text(answer), choices, where, type(answer) is int))
    return out


def _gold(row: Row, fmt: answers.AnswerFormat, decl: CustomTask) -> str:
    """The gold answer in the form the parser compares: for choices, the letter of its position (the answer
    given as a choice's label, its text, a letter, or a 0-based index: with answer_index, or an integer that
    names no label or text); yes/no as the word the parser finds ("Yes." -> "yes"); otherwise the answer
    itself, which must parse in the declared format (an integer task's answers are whole numbers)."""
    answer, where = row.answer, row.where
    if decl.answer_format == "choice":
        labels, texts = row.choices or ([], [])
        if (decl.answer_index or row.integer) and texts:
            known = [] if decl.answer_index else [i for i, x in enumerate(labels or texts) if x == answer]
            index = known[0] if known else int(answer) if re.fullmatch(r"\d+", answer) else -1
            if not 0 <= index < len(texts):
                raise UserError(f"{where}: {decl.answer_field!r} {answer!r} is not an index of its {len(texts)} "
                                f"choices (0-{len(texts) - 1})")
            return ALPHABET[index]
        for known in (labels, texts):
            if answer in known:
                return ALPHABET[known.index(answer)]
        letter = answer.strip("() .").upper()
        if len(letter) != 1 or letter not in ALPHABET[: len(texts) or 26]:
            named = f"one of the labels ({', '.join(labels)})" if labels else "a choice's text"
            raise UserError(f"{where}: {decl.answer_field!r} {answer!r} is not {named} nor a letter in range "
                            f"(A-{ALPHABET[len(texts) - 1] if texts else 'Z'})")
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
    max_choices = max((len(r.choices[1]) for r in train + test if r.choices), default=0)
    if decl.answer_format == "choice" and not decl.choices_field:  # the letters are in the questions' text
        letters = [r.answer.strip("() .").upper() for r in train + test]
        max_choices = max(5, *(ALPHABET.index(x) + 1 for x in letters if len(x) == 1 and x in ALPHABET))
    fmt, trigger = answers.named_format(decl.answer_format, max_choices or 5)
    samples = {}
    for index, row in enumerate(train + test):
        question = verbalize(row.question, row.choices[1]) if row.choices else row.question
        samples[index] = Sample(decl.name, index, question, _gold(row, fmt, decl))
    split = {"train": list(range(len(train))), "test": list(range(len(train), len(train) + len(test)))}
    # What the stages' fingerprints hold of the data: a changed, added or reordered row reruns them.
    digest = hashlib.sha256(json.dumps([[s.question, s.answer] for s in samples.values()] + [split]).encode(
        "utf-8", "surrogatepass")).hexdigest()[:16]
    spec = TaskSpec(decl.name, decl.name, (), lambda records: [], fmt, decl.answer_trigger or trigger,
                    custom=samples, custom_split=split, digest=digest)
    CUSTOM_TASKS[decl.name] = spec
    return spec
