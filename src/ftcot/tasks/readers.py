"""Named readers: what is irreducibly special about the paper's raw files, pointed to by a task declaration's
`reader` (src/ftcot/tasks/builtin/*.yaml). Each reads a file's records with the standard library and turns them
into plain rows (`question`, `answer` as the paper spells it, and `choices` as labels and texts where the task
has options), which the one loader (ftcot.tasks.task) then checks like any user's rows. A reader that reads the
records unchanged (`json`, `jsonl`, `examples`) leaves the fields to the declaration.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ftcot.errors import UserError
from ftcot.files import read_json, read_jsonl
from ftcot.tasks.answers import ALPHABET
from ftcot.tasks.prompts import verbalize

Rows = Callable[[list[dict]], list[dict]]


@dataclass(frozen=True)
class Reader:
    file: str  # json: a JSON list; examples: a JSON object's "examples" list (BIG-bench); jsonl: one object a line
    rows: Rows = list  # the file's records as rows

    def read(self, path: Path) -> list[dict]:
        """The file's rows; a record the reader cannot read is a one-line error naming the file and record."""
        data = read_jsonl(path) if self.file == "jsonl" else read_json(path)
        records = data.get("examples") if self.file == "examples" and isinstance(data, dict) else data
        if not isinstance(records, list):
            raise UserError(
                f"{path}: expected a list of records" + (' under "examples"' if self.file == "examples" else "")
            )
        try:
            return self.rows(records)
        except (KeyError, IndexError, TypeError, ValueError, AttributeError, StopIteration):
            pass
        for k, record in enumerate(records):  # find the first record it cannot read
            try:
                self.rows([record])
            except KeyError as exc:
                raise UserError(f"{path}: record {k}: no field {exc.args[0]!r}") from None
            except (IndexError, TypeError, ValueError, AttributeError, StopIteration) as exc:
                raise UserError(f"{path}: record {k}: unexpected content ({type(exc).__name__}: {exc})") from None
        raise UserError(f"{path}: its records cannot be read together")  # each alone can: not a layout we know


def _each(fn: Callable[[dict], dict]) -> Rows:
    return lambda records: [fn(r) for r in records]


def _lettered(texts: Iterable[str]) -> dict:
    """Options in order, labelled A, B, C...: the answer letter then names its option even where an option's
    text is itself a letter."""
    texts = list(texts)
    return {"label": list(ALPHABET[: len(texts)]), "text": texts}


def _correct_choice(target_scores: dict) -> int:
    return next(i for i, score in enumerate(target_scores.values()) if score == 1)


def _bigbench_stem(record: dict) -> str:
    """The paper's question for BIG-bench's multiple-choice tasks (Date, Tracking)."""
    return record["input"].strip() + "\nWhich choice is true?"


def _tracking(record: dict) -> dict:
    return {
        "question": _bigbench_stem(record),
        "answer": ALPHABET[_correct_choice(record["target_scores"])],
        "choices": _lettered(c.removesuffix(".") for c in record["target_scores"]),
    }


def _date(records: list[dict]) -> list[dict]:
    """The paper's Date: the options of each question shuffled by one generator over the whole file (choice j
    moves to slot perm[j])."""
    rng = np.random.RandomState(0)
    rows = []
    for record in records:
        choices = [c.removesuffix(".") for c in record["target_scores"]]
        perm = rng.permutation(range(len(choices)))
        slots = [""] * len(choices)
        for j, slot in enumerate(perm):
            slots[slot] = choices[j]
        rows.append(
            {
                "question": _bigbench_stem(record),
                "choices": _lettered(slots),
                "answer": ALPHABET[int(perm[_correct_choice(record["target_scores"])])],
            }
        )
    return rows


def _mawps(answer: Callable[[object], str]) -> Rows:
    """SingleEq, AddSub and MultiArith: `sQuestion`, and the first of `lSolutions` spelled as the paper does."""
    return _each(lambda r: {"question": r["sQuestion"], "answer": answer(r["lSolutions"][0])})


READERS: dict[str, Reader] = {
    "json": Reader("json"),
    "jsonl": Reader("jsonl"),
    "examples": Reader("examples"),
    "mawps": Reader("json", _mawps(str)),  # "43.0": str() of the file's float
    "mawps_integer": Reader("json", _mawps(lambda x: str(int(x)))),
    "gsm8k": Reader("jsonl", _each(lambda r: {"question": r["question"], "answer": r["answer"].split("#### ")[1]})),
    "aqua": Reader(
        "jsonl",
        _each(
            lambda r: {
                "question": r["question"],
                "answer": r["correct"],
                "choices": _lettered(o[2:] for o in r["options"]),
            }
        ),
    ),  # "A)5" -> "5"
    "svamp": Reader(
        "json",
        _each(lambda r: {"question": r["Body"].strip() + " " + r["Question"].strip(), "answer": str(r["Answer"])}),
    ),
    "bigbench_date": Reader("examples", _date),
    "bigbench_choice": Reader("examples", _each(_tracking)),
    "bigbench_yes_no": Reader(
        "examples",
        _each(lambda r: {"question": r["input"], "answer": next(k for k, v in r["target_scores"].items() if v == 1)}),
    ),
    "commonsense_qa": Reader(
        "jsonl",
        _each(
            lambda r: {
                "question": r["question"]["stem"],
                "answer": r["answerKey"],
                "choices": {
                    "label": [c["label"] for c in r["question"]["choices"]],
                    "text": [c["text"] for c in r["question"]["choices"]],
                },
            }
        ),
    ),
}


def _kojima_date(question: str) -> str:
    """Kojima's Date logs list the options in another order than the paper's: `input Answer Choices: (A) x
    (B) y`, rendered in the task's format, keeping that order (a rationale that ends "the answer is (D)" is
    trained beside the options it saw)."""
    stem, found, options = question.rpartition(" Answer Choices: ")
    if not found:
        raise UserError(f"unexpected Date teacher question (no 'Answer Choices:'): {question[:80]!r}")
    return verbalize(stem + "\nWhich choice is true?", re.split(r"\s*\([A-F]\)\s*", options)[1:])


# The recorded teacher's question text in the task's format, where its option order differs from the task's.
TEACHER_QUESTIONS: dict[str, Callable[[str], str]] = {"kojima_date": _kojima_date}
