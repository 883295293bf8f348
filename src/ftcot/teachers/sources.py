"""The recorded teacher's sources: completions someone already has, read into teacher records.

`teacher.records` lists one source or several: a named one (text-davinci-002, every task: Kojima et al.'s
zero-shot-CoT logs; gpt-3.5-turbo-instruct, four tasks: the rationales released with Mentor-KD), a file of
teacher records (what `ftcot teach` writes, the paper's CompletionDataset JSON), or a user's own table of
rationales (a RationaleSource). A rationale table's rows are matched to the task's questions by text, exactly
and then with whitespace normalised; a row that matches none, several, or a test question is counted and left
out. A rationale without an answer of its own gets the one its conclusion states (`concluded_answer`), and its
record says where its answer came from; an answer given in the table is read as a choice's letter in either case
or its option's text, and true/false as yes/no. A question's completions from a later source follow the earlier
ones' (k = n, n + 1, ...), so `num_samples: D` takes the first D in the order the sources are listed.
"""

from __future__ import annotations

import hashlib
from collections import Counter, defaultdict
from functools import lru_cache
from pathlib import Path

from ftcot.config import RationaleSource, TeacherConfig
from ftcot.data import data_path, sha256_of
from ftcot.errors import UserError
from ftcot.judge import teacher_answer
from ftcot.tasks import Sample, Task
from ftcot.tasks.answers import ALPHABET, YES_NO, AnswerFormat
from ftcot.tasks.prompts import zero_shot_cot_step1
from ftcot.tasks.rationales import concluded_answer, parse_choices
from ftcot.tasks.task import _text, choice_letter, read_table
from ftcot.teachers.records import RECORDED_MODEL, TeacherCompletion, read_records, recorded_teacher_path

# Mentor-KD's release (Lee, Kim, Lee, EMNLP 2024; Apache-2.0), at its paths in the data folder: gpt-3.5-turbo-instruct
# prompted on the paper's train splits. Six unfiltered samples a question for three tasks; for StrategyQA three
# rationales a question that its authors kept because they reach the gold answer.
MENTOR_KD_MODEL = "gpt-3.5-turbo-instruct"
MENTOR_KD = {
    "date_understanding": RationaleSource(
        path="mentor_kd/data/prompt/date_understanding_6.json", question="instruction", rationale="output"
    ),
    "last_letter_concatenation": RationaleSource(
        path="mentor_kd/data/prompt/last_letter_concatenation_6.json", question="instruction", rationale="output"
    ),
    "tracking_shuffled_objects": RationaleSource(
        path="mentor_kd/data/prompt/tracking_shuffled_objects_6.json", question="instruction", rationale="output"
    ),
    "strategy_qa": RationaleSource(
        path="mentor_kd/data/main/strategy_qa_3_train.json",
        question="input",
        rationale="chain",
        correct="initial_correct",
    ),
}
NAMED = (RECORDED_MODEL, MENTOR_KD_MODEL)


def recorded_completions(
    cfg: TeacherConfig, task: Task, split: str, root: Path
) -> tuple[list[TeacherCompletion], list[dict]]:
    """Every configured source's records, a later source's completions of a question numbered after the earlier
    ones', and one report a source (what it held, what matched, what was left out and why)."""
    entries = cfg.records if isinstance(cfg.records, list) else [cfg.model if cfg.records is None else cfg.records]
    out: list[TeacherCompletion] = []
    reports = []
    taken: dict[tuple[str, int], int] = defaultdict(int)  # completions per question so far
    for entry in entries:
        records, report = _read(entry, cfg, task, split, root)
        for r in sorted(records, key=lambda r: (r.task, r.sample_index, r.completion_index)):
            key = (r.task, r.sample_index)
            if reports:  # the first source keeps its own numbering
                r = r.model_copy(update={"completion_index": taken[key]})
            taken[key] = max(taken[key], r.completion_index + 1)
            out.append(r)
        reports.append(report)
    return out, reports


def source_files(cfg: TeacherConfig) -> list[Path]:
    """The user's files among the configured sources (a rationale table, a file of teacher records); the named
    sources' files are pinned by checksum instead (`ftcot data verify`)."""
    entries = cfg.records if isinstance(cfg.records, list) else [] if cfg.records is None else [cfg.records]
    return [
        Path(e.path) if isinstance(e, RationaleSource) else Path(e)
        for e in entries
        if isinstance(e, RationaleSource) or e not in NAMED
    ]


def source_digests(cfg: TeacherConfig) -> dict[str, str]:
    """Each user source file's sha256 (a datasets folder's: over its files), for the stages' fingerprints: a
    source whose rows change reruns the teacher, as a changed config does. A file that is not there is `missing`."""
    return {str(path): _digest(path) for path in source_files(cfg)}


def _digest(path: Path) -> str:
    try:
        if path.is_dir():
            files = sorted(p for p in path.rglob("*") if p.is_file())
            return hashlib.sha256(
                "\n".join(f"{p.relative_to(path).as_posix()} {_file_digest(p)}" for p in files).encode(
                    "utf-8", "surrogatepass"
                )
            ).hexdigest()
        return _file_digest(path)
    except OSError:
        return "missing"


def _file_digest(path: Path) -> str:
    stat = path.stat()
    return _hashed(str(path.resolve()), stat.st_size, stat.st_mtime_ns, stat.st_ino)


@lru_cache(maxsize=256)
def _hashed(path: str, size: int, mtime_ns: int, inode: int) -> str:
    """A file's sha256, read once per version of it (every stage's fingerprint asks for it)."""
    return sha256_of(Path(path))


def _read(
    entry: str | RationaleSource, cfg: TeacherConfig, task: Task, split: str, root: Path
) -> tuple[list[TeacherCompletion], dict]:
    if isinstance(entry, RationaleSource):
        # Unnamed, a user's rationales are not the default teacher's (text-davinci-002): they keep their file's name
        teacher = entry.teacher or (cfg.model if "model" in cfg.model_fields_set else Path(entry.path).name)
        return read_rationales(entry, teacher, task, split, Path(entry.path))
    if entry == RECORDED_MODEL:
        records = read_records(recorded_teacher_path(task.key, root))
        return records, {"source": entry, "teacher": entry, "records": len(records)}
    if entry == MENTOR_KD_MODEL:
        source = MENTOR_KD.get(task.key)
        if source is None:
            raise UserError(
                f"the named source {MENTOR_KD_MODEL} has rationales for {', '.join(MENTOR_KD)}, not {task.key}"
            )
        return read_rationales(source, MENTOR_KD_MODEL, task, split, data_path(source.path, root))
    path = Path(entry)
    if not path.exists():
        raise UserError(f"teacher.records: {entry!r} is neither a named source ({', '.join(NAMED)}) nor a file")
    records = read_records(path)
    return records, {
        "source": str(path),
        "sha256": _digest(path),
        "teacher": ", ".join(sorted({r.model for r in records})),
        "records": len(records),
    }


def _ws(text: str) -> str:
    return " ".join(text.split())


def read_rationales(
    source: RationaleSource, teacher: str, task: Task, split: str, path: Path
) -> tuple[list[TeacherCompletion], dict]:
    """A rationale table's records for the train questions of a split, and its report."""
    train, test = task.split_samples("train", split), task.split_samples("test", split)
    on_test = {s.sample_index for s in test}
    exact: dict[str, list[Sample]] = defaultdict(list)
    loose: dict[str, list[Sample]] = defaultdict(list)
    for s in train + test:
        exact[s.question].append(s)
        loose[_ws(s.question)].append(s)
    fmt = task.answer_format
    counts: Counter = Counter()
    taken: dict[int, int] = defaultdict(int)
    records = []
    rows = read_table(path)
    for number, row in enumerate(rows, 1):
        where = f"{path}: row {number}"
        if not isinstance(row, dict):
            raise UserError(f"{where}: not an object with fields")
        question = row.get(source.question)
        if not isinstance(question, str) or not question.strip():
            raise UserError(f"{where}: no {source.question!r} (the question's text)")
        rationales = _texts(row, source.rationale, where)
        answers = _beside(row, source.answer, len(rationales), where, "answer")
        flags = _beside(row, source.correct, len(rationales), where, "flag")
        if not rationales:
            counts["rows_without_rationales"] += 1  # an empty list: nothing to match
            continue
        found, how = exact.get(question), "exact"
        if not found:
            found, how = loose.get(_ws(question)), "whitespace"
        if not found:
            counts["unmatched_rows"] += 1
            continue
        if len({s.sample_index for s in found}) > 1:
            counts["ambiguous_rows"] += 1  # the same text under several questions: which one is unknown
            continue
        sample = found[0]
        if sample.sample_index in on_test:
            counts["test_rows_refused"] += 1  # never trained on, never shown as the teacher's test answer
            continue
        counts[f"matched_{how}"] += 1
        for text, answer, flag in zip(rationales, answers, flags):
            if answer is not None:
                given, origin = _given(answer, fmt, sample.question), "source"
            elif flag is not None:
                given, origin = (sample.answer if flag else None), "flag"
            else:
                given, origin = concluded_answer(text, fmt, sample.question), "rationale"
            completion = "" if given is None else f" {given}."
            counts[f"answers_from_{origin}"] += 1
            counts["answers_none"] += teacher_answer(fmt, completion) is None  # none, or none a parser reads
            k = taken[sample.sample_index]
            taken[sample.sample_index] += 1
            prompt = zero_shot_cot_step1(sample.question)
            records.append(
                TeacherCompletion(
                    task=task.key,
                    sample_index=sample.sample_index,
                    completion_index=k,
                    question=sample.question,
                    answer=sample.answer,
                    reasoning_prompt=prompt,
                    reasoning_completion=f" {text.strip()}",
                    answer_prompt="",
                    answer_completion=completion,
                    model=teacher,
                    params={"source": str(path), "matched": how},
                    answer_from=origin,
                )
            )
    report = {
        "source": str(path),
        "sha256": _digest(path),
        "teacher": teacher,
        "rows": len(rows),
        "rationales": len(records),
        "questions": len(taken),
        **{
            k: counts[k]
            for k in (
                "matched_exact",
                "matched_whitespace",
                "unmatched_rows",
                "ambiguous_rows",
                "test_rows_refused",
                "rows_without_rationales",
                "answers_from_source",
                "answers_from_flag",
                "answers_from_rationale",
                "answers_none",
            )
        },
    }
    return records, report


def _given(answer: str, fmt: AnswerFormat, question: str) -> str:
    """An answer the table gives, in the form the task's parser reads: a choice's letter (also from "b", "(b)"
    or the option's text), yes or no (also from true or false)."""
    if fmt.choice:  # as gold answers are read (an option's exact text, else a letter), else the text in any case
        parsed = parse_choices(question)
        options = list(parsed.options) if parsed else []
        folded = [o.casefold() for o in options]
        letter = choice_letter(answer, [], options)
        if letter is None and answer.casefold() in folded:
            letter = ALPHABET[folded.index(answer.casefold())]
        return letter or answer
    if fmt is YES_NO and answer.lower() in ("true", "false"):  # StrategyQA's answers are booleans
        return "yes" if answer.lower() == "true" else "no"
    return answer


def _texts(row: dict, field: str, where: str) -> list[str]:
    value = row.get(field)
    if isinstance(value, str):
        return [value]
    if isinstance(value, list) and all(isinstance(v, str) for v in value):
        return value
    if value is None and field not in row:
        raise UserError(f"{where}: no {field!r} (the rationale, or a list of rationales)")
    raise UserError(f"{where}: {field!r} is neither a text nor a list of texts")


_FLAGS = {"true": True, "1": True, "yes": True, "false": False, "0": False, "no": False}


def _one(value, where: str, kind: str):
    if value is None:
        return None
    if kind == "flag":
        if isinstance(value, bool):
            return value
        if isinstance(value, (str, int)) and str(value).strip().lower() in _FLAGS:  # a CSV cell is text
            return _FLAGS[str(value).strip().lower()]
        raise UserError(f"{where}: {value!r} is not a true/false flag")
    if isinstance(value, bool):
        return str(value).lower()  # true/false: a yes/no task reads it (_given)
    if not isinstance(value, (str, int, float)) or value != value:  # JSON's NaN (an empty cell is None)
        raise UserError(f"{where}: {value!r} is not an answer (a text or a number)")
    return _text(value) or None  # a number as the task's files give it (18.0 -> "18"); an empty cell: none


def _beside(row: dict, field: str | None, n: int, where: str, kind: str) -> list:
    """A field's value for each of a row's n rationales: one for all, or a list of n."""
    if field is None:
        return [None] * n
    if field not in row:
        raise UserError(f"{where}: no {field!r}")
    value = row[field]
    if isinstance(value, list):
        if len(value) != n:
            raise UserError(f"{where}: {field!r} has {len(value)} values for {n} rationales")
        return [_one(v, f"{where}: {field}", kind) for v in value]
    return [_one(value, f"{where}: {field}", kind)] * n
