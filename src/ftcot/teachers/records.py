"""The teacher-completion record, and conversion from/to the recorded formats we read.

Formats:
- our shared JSONL records (`teacher/text-davinci-002__zs_cot/<task>.jsonl`, parsed from Kojima et al.'s logs);
- the paper's released CompletionDataset JSON:
  {"metadata": {...}, "data": {"<sample_index>": [{"sample_index", "completion_index", "question", "answer",
   "prompt", "completion", "finish_reason", "reasoning_prompt", "reasoning_completion", ...}]}}
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ValidationError

from ftcot.data import TEACHER_DIR, data_path
from ftcot.errors import UserError
from ftcot.files import jsonl_lines, read_json, write_json, write_jsonl
from ftcot.tasks.prompts import zero_shot_cot_step2


class TeacherCompletion(BaseModel):
    """One zero-shot-CoT teacher sample: step 1 (rationale) and step 2 (answer) for one question and k."""

    task: str
    sample_index: int
    completion_index: int = 0
    question: str  # as the teacher saw it
    answer: str  # the gold answer, in the same frame as the question (e.g. its choice letters)
    reasoning_prompt: str
    reasoning_completion: str  # the rationale: step 1's text, or the reasoning returned beside it
    reasoning_finish_reason: str | None = None
    step1_reasoning: str | None = None  # what a reasoning model returned beside step 1's text, if anything
    answer_prompt: str  # the whole step-2 prompt
    answer_completion: str
    answer_finish_reason: str | None = None
    model: str
    params: dict = {}
    usage: dict = {}
    latency_s: float | None = None
    rationalized: bool = False  # asked with the gold answer as a hint (STaR), after no sample was correct
    # where the answer came from: the teacher's step 2, or for imported rationales (no step 2) the source's own
    # answer field, its "already correct" flag, or the rationale's conclusion as read by ftcot
    answer_from: Literal["step2", "source", "flag", "rationale"] = "step2"


RECORDED_MODEL = "text-davinci-002"
# Kojima et al.'s settings for every logged run (greedy, 128 rationale tokens, 32 answer tokens).
RECORDED_PARAMS = {"temperature": 0.0, "max_tokens_reasoning": 128, "max_tokens_answer": 32}


def _field_error(where: str, exc: ValidationError) -> UserError:
    first = exc.errors()[0]
    loc = ".".join(str(p) for p in first["loc"]) or "record"
    return UserError(f"{where}: malformed record: {loc}: {first['msg']}")


def read_shared_jsonl(path: Path) -> list[TeacherCompletion]:
    """Records in the shared text-davinci-002 JSONL format (one zero-shot-CoT completion a line)."""
    out = []
    for lineno, raw in jsonl_lines(path):
        try:
            step2 = zero_shot_cot_step2(raw["reasoning_prompt"], raw["reasoning_completion"], raw["answer_prompt"])
            out.append(
                TeacherCompletion(
                    task=raw["task"],
                    sample_index=raw["sample_index"],
                    question=raw["question"],
                    answer=raw["gold"],
                    reasoning_prompt=raw["reasoning_prompt"],
                    reasoning_completion=raw["reasoning_completion"],
                    answer_prompt=step2,
                    answer_completion=raw["answer_completion"],
                    model=RECORDED_MODEL,
                    params=RECORDED_PARAMS,
                )
            )
        except KeyError as exc:
            raise UserError(f"{path}:{lineno}: malformed record: missing field {exc.args[0]!r}") from None
        except (ValidationError, TypeError) as exc:
            if isinstance(exc, ValidationError):
                raise _field_error(f"{path}:{lineno}", exc) from None
            raise UserError(f"{path}:{lineno}: malformed record: {exc}") from None
    return out


def recorded_teacher_path(task: str, root: Path) -> Path:
    return data_path(f"{TEACHER_DIR}/{task}.jsonl", root)


def read_completion_dataset(path: Path) -> list[TeacherCompletion]:
    """Records from the paper's released CompletionDataset JSON."""
    raw = read_json(path)
    if not isinstance(raw, dict) or not isinstance(raw.get("data"), dict):
        raise UserError(f'{path}: not a CompletionDataset (expected {{"metadata": ..., "data": {{...}}}})')
    meta = raw.get("metadata") or {}
    if not isinstance(meta, dict):
        raise UserError(f"{path}: malformed CompletionDataset: metadata is not an object")
    out = []
    for key, completions in raw["data"].items():
        if not isinstance(completions, list):
            raise UserError(f"{path}: data[{key}]: malformed: not a list of completions")
        for i, c in enumerate(completions):
            where = f"{path}: data[{key}][{i}]"
            if not isinstance(c, dict):
                raise UserError(f"{where}: malformed record: not an object")
            try:
                out.append(
                    TeacherCompletion(
                        task=c.get("task", meta.get("dataset_key")),
                        sample_index=c.get("sample_index", key),
                        completion_index=c.get("completion_index", i),
                        question=c.get("question"),
                        answer=c.get("answer"),
                        reasoning_prompt=c.get("reasoning_prompt"),
                        reasoning_completion=c.get("reasoning_completion"),
                        reasoning_finish_reason=c.get("reasoning_finish_reason"),
                        answer_prompt=c.get("prompt"),
                        answer_completion=c.get("completion"),
                        answer_finish_reason=c.get("finish_reason"),
                        model=c.get("model", meta.get("base_model")),
                        params=c.get("params", {}),
                        usage=c.get("usage", {}),
                        latency_s=c.get("latency_s"),
                        rationalized=c.get("rationalized", False),
                    )
                )
            except ValidationError as exc:
                raise _field_error(where, exc) from None
    return out


def write_completion_dataset(records: list[TeacherCompletion], path: Path) -> None:
    """Write records in the paper's CompletionDataset format (one task and model per file), atomically."""
    tasks = {r.task for r in records}
    models = {r.model for r in records}
    if len(tasks) > 1 or len(models) > 1:
        raise UserError(
            f"a CompletionDataset holds one task and model; got tasks {sorted(tasks)}, models {sorted(models)}"
        )
    data: dict[str, list[dict]] = {}
    for r in sorted(records, key=lambda r: (r.sample_index, r.completion_index)):
        data.setdefault(str(r.sample_index), []).append(
            {
                "sample_index": r.sample_index,
                "completion_index": r.completion_index,
                "question": r.question,
                "answer": r.answer,
                "prompt": r.answer_prompt,
                "completion": r.answer_completion,
                "finish_reason": r.answer_finish_reason,
                "reasoning_prompt": r.reasoning_prompt,
                "reasoning_completion": r.reasoning_completion,
                "reasoning_finish_reason": r.reasoning_finish_reason,
                "task": r.task,
                "model": r.model,
                "params": r.params,
                "usage": r.usage,
                "latency_s": r.latency_s,
                **({"rationalized": True} if r.rationalized else {}),  # ours: asked with the answer as a hint
            }
        )
    metadata = {
        "base_model": next(iter(models), None),
        "dataset_key": next(iter(tasks), None),
        "completion_key": "zs_cot",
        "finetune_key": None,
        "train_key": None,
        "epoch": None,
        "prediction_template": "zs_cot",
    }
    write_json({"metadata": metadata, "data": data}, path)


def read_records(path: Path) -> list[TeacherCompletion]:
    """Teacher records from any format we know: the paper's CompletionDataset (.json), the shared recorded
    JSONL (records with `gold`), or our own TeacherCompletion JSONL (what `ftcot teach` writes)."""
    if path.suffix == ".json":
        return read_completion_dataset(path)
    lines = jsonl_lines(path)
    if lines and "gold" in lines[0][1]:
        return read_shared_jsonl(path)
    out = []
    for lineno, raw in lines:
        try:
            out.append(TeacherCompletion.model_validate(raw))
        except ValidationError as exc:
            raise _field_error(f"{path}:{lineno}", exc) from None
    return out


def write_records(records: list[TeacherCompletion], path: Path) -> None:
    """Write records as JSONL (one TeacherCompletion a line), sorted, atomically."""
    write_jsonl((r.model_dump() for r in sorted(records, key=lambda r: (r.sample_index, r.completion_index))), path)
