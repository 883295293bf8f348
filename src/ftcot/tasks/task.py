"""One task system: every task, the paper's twelve and a user's own, is a declaration in one form (`TaskDecl`:
its files, fields, answer format and trigger), read by one loader into one shape (`Task`).

The paper's tasks are declared in src/ftcot/tasks/builtin/<task>.yaml, their paths relative to the data folder;
what their raw files need beyond fields (BIG-bench's target_scores, the paper's Date option order, Kojima's) is a
named reader (ftcot.tasks.readers). A user's task is the same mapping in the run config (or a task YAML it
names), its paths relative to the config; its data is read from JSONL, JSON, CSV, parquet or a `datasets`
folder. Train rows get sample indices 0..n-1 and test rows n.. (GSM8K's train-then-test numbering); a split
file, where declared, picks each side's indices (the paper's splits).
"""

from __future__ import annotations

import csv
import hashlib
import json
import re
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import NamedTuple

import numpy as np
import yaml
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from ftcot.data import data_dir, data_path
from ftcot.errors import UserError
from ftcot.files import read_json
from ftcot.tasks import answers
from ftcot.tasks.answers import ALPHABET, AnswerFormat
from ftcot.tasks.prompts import verbalize
from ftcot.tasks.readers import READERS, TEACHER_QUESTIONS


class TaskDecl(BaseModel):
    """A task as declared: a built-in one's YAML, or a user's in the run config (ftcot.config)."""

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False, use_attribute_docstrings=True)

    name: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
    """The task's name; it names files and folders."""
    title: str | None = None
    """The name in tables; default: the name."""
    train: str
    """The train rows: .jsonl, .json, .csv, .parquet, or a datasets save_to_disk folder (or a named reader's
    file)."""
    test: str | None = None
    """The test rows; or test_fraction of train, split with a seeded permutation."""
    test_fraction: float | None = Field(None, gt=0, lt=1)
    """The share of the train rows taken as test, with a seeded permutation, where there is no test file."""
    splits: dict[str, str] | None = None
    """Split files by name, each {"train": [sample_index, ...], "test": [...]}; default: one split, "default", of
    the train and test rows."""
    test_offset: int | None = Field(None, ge=0)
    """The sample_index of test's first row (default: the number of train rows): test rows load without train."""
    reader: str | None = None
    """A named reader for a raw file's own layout (ftcot.tasks.readers)."""
    question_field: str = "question"
    """The field holding the question."""
    answer_field: str = "answer"
    """The field holding the gold answer."""
    choices_field: str | list[str] | None = None
    """The choices, verbalized "Answer choices: (A) ...": a field holding a list of texts, a mapping of label to
    text or datasets' {label: [...], text: [...]}; or a list of columns, one per choice (MMLU's A, B, C, D)."""
    answer_index: bool = False
    """The answer is a 0-based index into the choices (an integer column is read so)."""
    id_field: str | None = None
    """A field of ids; if set, ids must not repeat."""
    answer_format: str = "text"
    """A named answer format (ftcot.tasks.answers), or regex:<pattern>."""
    answer_trigger: str | None = None
    """Zero-shot-CoT's answer trigger (step 2); default: the paper's trigger for the format."""
    num_choices: int | None = Field(None, ge=2, le=26)
    """A choice format's letters; default: the most any row has."""
    teacher_question: str | None = None
    """The recorded teacher's question in the task's format (named)."""
    few_shot_prompt: str | None = None
    """Its few-shot-CoT prompt in the paper's prompt file, for few_shot_cot."""

    @field_validator("answer_format")
    @classmethod
    def _known_format(cls, value: str) -> str:
        if value.startswith("regex:"):
            try:
                re.compile(value.removeprefix("regex:"))
            except re.error as exc:
                raise ValueError(f"not a regular expression: {exc}") from None
        elif value not in answers.FORMAT_NAMES:
            raise ValueError(f"one of {', '.join(answers.FORMAT_NAMES)} or regex:<pattern>, not {value!r}")
        return value

    @field_validator("reader")
    @classmethod
    def _known_reader(cls, value: str | None) -> str | None:
        if value is not None and value not in READERS:
            raise ValueError(f"one of {', '.join(READERS)}, not {value!r}")
        return value

    @field_validator("teacher_question")
    @classmethod
    def _known_teacher_question(cls, value: str | None) -> str | None:
        if value is not None and value not in TEACHER_QUESTIONS:
            raise ValueError(f"one of {', '.join(TEACHER_QUESTIONS)}, not {value!r}")
        return value

    @model_validator(mode="after")
    def _index_needs_choices(self) -> TaskDecl:
        if self.answer_index and (self.answer_format != "choice" or not self.choices_field):
            raise ValueError("answer_index: an index needs choices (answer_format: choice and a choices_field)")
        return self

    @model_validator(mode="after")
    def _one_test_side(self) -> TaskDecl:
        if self.splits is not None:
            if self.test_fraction is not None:
                raise ValueError("test_fraction: the split files name each side's rows")
            if not self.splits:
                raise ValueError("splits: name at least one split file")
        elif (self.test is None) == (self.test_fraction is None):
            raise ValueError("give either test (a file) or test_fraction (a share of train)")
        return self

    def resolved(self, base: Path) -> TaskDecl:
        """The same task with its paths made absolute from base."""
        absolute = {
            key: str((base / value).resolve()) for key in ("train", "test") if (value := getattr(self, key)) is not None
        }
        if self.splits:
            absolute["splits"] = {name: str((base / path).resolve()) for name, path in self.splits.items()}
        return self.model_copy(update=absolute)


# The paper's tasks, in its Table 1 order; each declared in builtin/<name>.yaml.
PAPER_TASKS = (
    "single_eq",
    "addsub",
    "multiarith",
    "gsm8k",
    "aqua",
    "svamp",
    "date_understanding",
    "tracking_shuffled_objects",
    "last_letter_concatenation",
    "coin_flip",
    "commonsense_qa",
    "strategy_qa",
)
BUILTIN: dict[str, TaskDecl] = {
    name: TaskDecl.model_validate(yaml.safe_load((Path(__file__).parent / "builtin" / f"{name}.yaml").read_text()))
    for name in PAPER_TASKS
}


@dataclass(frozen=True)
class Sample:
    task: str
    sample_index: int
    question: str
    answer: str


class Row(NamedTuple):
    question: str
    answer: str  # as text
    choices: tuple[list[str], list[str]] | None  # (labels, texts)
    where: str  # its file and row, for messages
    integer: bool  # the answer is an integer in a typed file: maybe a 0-based index into the choices


@dataclass(frozen=True)
class Task:
    """A declared task over a data folder: its answer format and trigger, and its samples and splits, read on
    demand (each file once)."""

    decl: TaskDecl
    root: Path  # the data folder, against which relative paths are read
    shipped: bool  # one of the paper's: its files are pinned by checksum (`ftcot data verify`)
    _rows: dict[str, list[Row]] = field(default_factory=dict, compare=False, repr=False)

    @property
    def key(self) -> str:
        return self.decl.name

    @property
    def name(self) -> str:
        return self.decl.title or self.decl.name

    @property
    def splits(self) -> tuple[str, ...]:
        return tuple(self.decl.splits or ("default",))

    @property
    def teacher_question(self) -> Callable[[str], str] | None:
        return TEACHER_QUESTIONS.get(self.decl.teacher_question or "")

    @cached_property
    def answer_format(self) -> AnswerFormat:
        return self._format[0]

    @cached_property
    def answer_trigger(self) -> str:
        return self.decl.answer_trigger or self._format[1]

    @cached_property
    def _format(self) -> tuple[AnswerFormat, str]:
        count = self.decl.num_choices
        if self.decl.answer_format == "choice" and count is None:  # as many letters as the most options a row has
            rows = self._read("train") + (self._read("test") if self.decl.test else [])
            if self.decl.choices_field:
                count = max(len(r.choices[1]) for r in rows)
            else:  # the letters are in the questions' text: at least A-E, more where an answer names one
                letters = [r.answer.strip("() .").upper() for r in rows]
                count = max([5, *(ALPHABET.index(x) + 1 for x in letters if len(x) == 1 and x in ALPHABET)])
        return answers.named_format(self.decl.answer_format, count or 5)

    @cached_property
    def digest(self) -> str:
        """What the stages' fingerprints hold of a user's data: a changed, added or reordered row reruns them
        (the paper's files are pinned by checksum instead)."""
        if self.shipped:
            return ""
        samples = self.samples()
        splits = [self.split(name) for name in self.splits]
        return hashlib.sha256(
            json.dumps([[s.question, s.answer] for s in samples.values()] + splits).encode("utf-8", "surrogatepass")
        ).hexdigest()[:16]

    def available(self) -> bool:
        """Whether its data is here (a built-in task's files come with `ftcot data fetch`)."""
        return (self.root / (self.decl.splits[self.splits[0]] if self.decl.splits else self.decl.train)).exists()

    # --- rows: each file read once, every field checked ----------------------------------------------------

    def _read(self, side: str) -> list[Row]:
        if side not in self._rows:
            relpath = self.decl.train if side == "train" else self.decl.test
            if self.decl.reader:
                path = data_path(relpath, self.root)
                rows = READERS[self.decl.reader].read(path)
            else:
                path = self.root / relpath
                rows = read_table(path)
            if not rows:
                raise UserError(f"{path}: no rows")
            self._rows[side] = _checked(self.decl, rows, path, self._ids)
        return self._rows[side]

    @cached_property
    def _ids(self) -> dict:
        """Ids seen so far, by where: they may not repeat within or across the two files."""
        return {}

    def _numbered(self, wanted: list[int] | None) -> dict[int, Row]:
        """Rows by sample_index: train's, then test's (only the files the wanted indices fall in)."""
        if self.decl.test_fraction is not None:  # the paper's way of splitting a task without a test file
            rows = self._read("train")
            order = np.random.RandomState(0).permutation(len(rows))
            cut = len(rows) - round(self.decl.test_fraction * len(rows))
            return dict(enumerate([rows[i] for i in sorted(order[:cut])] + [rows[i] for i in sorted(order[cut:])]))
        n = self.decl.test_offset
        out: dict[int, Row] = {}
        if n is None or wanted is None or any(i < n for i in wanted):
            out = dict(enumerate(self._read("train")))
            if n is not None and n < len(out):
                raise UserError(
                    f"task {self.key}: test_offset {n} is less than train's {len(out)} rows: test's "
                    "sample indices would repeat train's"
                )
            n = len(out) if n is None else n
        if self.decl.test and (wanted is None or any(i >= n for i in wanted)):
            out.update({n + k: row for k, row in enumerate(self._read("test"))})
        return out

    # --- samples and splits --------------------------------------------------------------------------------

    def samples(self, indices=None) -> dict[int, Sample]:
        """Samples by sample_index; with `indices`, only those (and only the files they fall in are read)."""
        wanted = None if indices is None else sorted(set(indices))
        rows = self._numbered(wanted)
        missing = [i for i in wanted or [] if i not in rows]
        if missing:
            raise UserError(
                f"sample index {missing[0]} out of range for task {self.key} "
                f"({len(missing)} of {len(wanted)} requested indices do not exist)"
            )
        keep = set(rows if wanted is None else wanted)
        return {
            i: Sample(
                self.key,
                i,
                verbalize(r.question, r.choices[1]) if r.choices else r.question,
                _gold(r, self.decl, self.answer_format),
            )
            for i, r in rows.items()
            if i in keep
        }

    def split(self, name: str = "default") -> dict[str, list[int]]:
        """{"train": [sample_index...], "test": [...]}: the declared split file's, or train's rows and test's."""
        if name not in self.splits:
            raise UserError(f"task {self.key} has no split {name!r}; it has: {', '.join(self.splits)}")
        if self.decl.splits is None:
            indices = sorted(self._numbered(None))
            train = (
                len(self._read("train"))
                if self.decl.test
                else len(indices) - round(self.decl.test_fraction * len(indices))
            )
            return {"train": indices[:train], "test": indices[train:]}
        path = data_path(self.decl.splits[name], self.root)
        split = read_json(path)
        if not isinstance(split, dict) or not all(
            isinstance(split.get(s), list) and all(type(i) is int for i in split[s]) for s in ("train", "test")
        ):
            raise UserError(f'{path}: a split file must be {{"train": [sample_index, ...], "test": [...]}}')
        return {"train": split["train"], "test": split["test"]}

    def split_samples(self, part: str, split: str = "default") -> list[Sample]:
        """The samples of one side ("train" or "test") of a split, in split order."""
        indices = self.split(split)[part]
        samples = self.samples(indices)
        return [samples[i] for i in indices]


def load_task(task: str | TaskDecl, root: Path | None = None) -> Task:
    """A task by its built-in name or its declaration, over the data folder (default: ftcot.data.data_dir). A
    user's data is read and checked now, so a bad row stops a run before anything is spent."""
    if isinstance(task, str):
        if task not in BUILTIN:
            raise UserError(
                f"unknown task {task!r}; known tasks: {', '.join(BUILTIN)}, or a custom task "
                "(a mapping, or a task YAML file)"
            )
        task = BUILTIN[task]
    shipped = BUILTIN.get(task.name) == task
    if task.name in BUILTIN and not shipped:
        raise UserError(f"task name {task.name!r} is a built-in task's: choose another name")
    loaded = Task(task, data_dir() if root is None else Path(root), shipped)
    if not shipped:
        loaded.samples()
        for name in loaded.splits:
            loaded.split(name)
    return loaded


# --- a file's rows, checked ------------------------------------------------------------------------------------

TABLES = {".jsonl": "json", ".json": "json", ".csv": "csv", ".parquet": "parquet"}


def read_table(path: Path) -> list[dict]:
    """Every row of a data file or a `datasets` save_to_disk folder, as dicts."""
    import datasets  # deferred: pyarrow takes a second to import, and only users' files need it

    datasets.disable_progress_bars()
    datasets.logging.set_verbosity(datasets.logging.CRITICAL)  # a file it cannot read is our one line, not its log
    try:
        if path.is_dir():
            data = datasets.load_from_disk(str(path))
            if isinstance(data, datasets.DatasetDict):
                raise UserError(
                    f"{path} holds several splits ({', '.join(data)}): name one of them, e.g. {path / next(iter(data))}"
                )
        elif path.suffix in TABLES and path.is_file() and path.stat().st_size < 4096 and not path.read_bytes().strip():
            raise UserError(f"{path}: no rows (the file is empty)")
        elif path.suffix in TABLES:
            # Read afresh into memory each time (a cache keyed by path and mtime can return a file's old rows
            # after `cp -p`), and CSV cells as text: "01234" stays "01234".
            text_columns = (
                {"features": datasets.Features({name: datasets.Value("string") for name in _header(path)})}
                if path.suffix == ".csv"
                else {}
            )
            with tempfile.TemporaryDirectory() as cache:
                data = datasets.load_dataset(
                    TABLES[path.suffix],
                    data_files=str(path),
                    split="train",
                    keep_in_memory=True,
                    cache_dir=cache,
                    download_mode="force_redownload",
                    **text_columns,
                )
        elif path.exists():
            raise UserError(f"{path}: a table is .jsonl, .json, .csv, .parquet or a datasets folder")
        else:
            raise UserError(f"{path} does not exist")
        return data.to_list()
    except UserError:
        raise
    except Exception as exc:  # datasets and pyarrow raise many types for a file they cannot read
        cause = exc.__cause__ or exc.__context__ or exc  # datasets wraps the reader's own error
        if "corresponds to no data" in str(exc):  # a JSON list or CSV of no rows
            raise UserError(f"{path}: no rows") from None
        raise UserError(
            f"{path}: cannot read it as a table ({type(cause).__name__}: "
            f"{str(cause).splitlines()[0] if str(cause) else ''})"
        ) from None


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
            raise UserError(
                f"{where}: {len(labels) if isinstance(labels, list) else 'no list of'} labels for "
                f"{len(value['text'])} texts"
            )
        labels, texts = labels, value["text"]
    elif isinstance(value, dict):
        labels, texts = list(value), list(value.values())
    else:
        labels, texts = [], value
    if (
        not isinstance(texts, list)
        or not texts
        or not all(isinstance(c, (str, int, float)) and not isinstance(c, bool) for c in [*texts, *labels])
    ):
        raise UserError(f"{where}: choices must be a non-empty list (or mapping) of texts")
    if len(texts) > len(ALPHABET):
        raise UserError(f"{where}: {len(texts)} choices; at most {len(ALPHABET)} (A-Z)")
    labels, texts = [_text(x) for x in labels], [_text(c) for c in texts]
    if not all(texts):
        raise UserError(f"{where}: choice {texts.index('') + 1} is empty")
    if len(set(labels)) < len(labels):
        raise UserError(f"{where}: label {next(x for x in labels if labels.count(x) > 1)!r} repeats")
    return labels, texts


def _row_choices(decl: TaskDecl, row: dict, where: str) -> tuple[list[str], list[str]] | None:
    """The row's choices: from its choices field, or from one column per choice (labelled by the columns)."""
    if decl.choices_field is None:
        return None
    if isinstance(decl.choices_field, list):
        return _choices({"label": decl.choices_field, "text": [row[c] for c in decl.choices_field]}, where)
    return _choices(row[decl.choices_field], f"{where}: {decl.choices_field!r}")


def _checked(decl: TaskDecl, rows: list[dict], path: Path, seen_ids: dict) -> list[Row]:
    """Each row, every field checked; one line naming file, row and field."""
    out = []
    columns = decl.choices_field if isinstance(decl.choices_field, list) else [decl.choices_field]
    for i, row in enumerate(rows, 1):
        where = f"{path}: row {i}"
        for name in (decl.question_field, decl.answer_field, *columns, decl.id_field):
            if name and row.get(name) is None:
                raise UserError(f"{where}: no {name!r}")
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


def choice_letter(answer: str, labels: list[str], texts: list[str]) -> str | None:
    """The letter of the choice an answer names: by its label or its text exactly, else as a letter in range
    ("b", "(B)"); None when it names none."""
    for known in (labels, texts):
        if answer in known:
            return ALPHABET[known.index(answer)]
    letter = answer.strip("() .").upper()
    return letter if len(letter) == 1 and letter in ALPHABET[: len(texts) or 26] else None


def _gold(row: Row, decl: TaskDecl, fmt: AnswerFormat) -> str:
    """The gold answer in the form the parser compares: for choices, the letter of its position (the answer
    given as a choice's label, its text, a letter, or a 0-based index: with answer_index, or an integer that
    names no label or text); yes/no as its word ("Yes." -> "Yes"); otherwise the answer itself, which must
    parse in the declared format (an integer task's answers are whole numbers)."""
    answer, where = row.answer, row.where
    if decl.answer_format == "choice":
        labels, texts = row.choices or ([], [])
        if (decl.answer_index or row.integer) and texts:
            known = [] if decl.answer_index else [i for i, x in enumerate(labels or texts) if x == answer]
            index = known[0] if known else int(answer) if re.fullmatch(r"\d+", answer) else -1
            if not 0 <= index < len(texts):
                raise UserError(
                    f"{where}: {decl.answer_field!r} {answer!r} is not an index of its {len(texts)} "
                    f"choices (0-{len(texts) - 1})"
                )
            return ALPHABET[index]
        letter = choice_letter(answer, labels, texts)
        if letter is None:
            named = f"one of the labels ({', '.join(labels)})" if labels else "a choice's text"
            raise UserError(
                f"{where}: {decl.answer_field!r} {answer!r} is not {named} nor a letter in range "
                f"(A-{ALPHABET[len(texts) - 1] if texts else 'Z'})"
            )
        return letter
    if decl.answer_format == "yes_no":  # "Yes", "no.", "YES!" are all fine
        word = answer.strip(" .!\"'")
        if word.lower() not in ("yes", "no"):
            raise UserError(f"{where}: {decl.answer_field!r} {answer!r} is not a valid yes_no answer")
        return word
    parsed = answers.parse_prediction(fmt, answer)
    try:
        valid = parsed is not None and fmt.matches(parsed, answer)
    except UserError:  # the format cannot read it as a gold answer either
        valid = False
    if decl.answer_format == "integer":
        valid = valid and re.fullmatch(r"-?\d+", answer.replace(",", "")) is not None
    if not valid:
        raise UserError(f"{where}: {decl.answer_field!r} {answer!r} is not a valid {decl.answer_format} answer")
    return answer
