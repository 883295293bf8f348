"""The recorded teacher's public source: Kojima et al.'s zero-shot-CoT log files (text-davinci-002), parsed into
the teacher records ftcot replays (`teacher/text-davinci-002__zs_cot/<task>.jsonl`), following the shared data
README: each log record is `Q: {question}\\nA: Let's think step by step.{rationale} \\n{trigger}{answer}` then
`pred_before`, `pred_after`, `pred_list`, `pred_mode` and `GT` lines; the log's order is that of Kojima's torch
DataLoader (seed 1), which gives each record its row in the raw file and so its sample_index."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np

from ftcot.errors import UserError
from ftcot.files import read_text, write_text
from ftcot.tasks import load_task

COT_TRIGGER = "Let's think step by step."
_BLOCK = re.compile(
    r"\*{25}\n(\d+)st data\n1_th_sampling\nQ: (.*?)\nA: "
    + re.escape(COT_TRIGGER)
    + r"(.*?)\npred_before : (.*?)\npred_after : (.*?)\npred_list : .*?\npred_mode : .*?\nGT : (.*?)\n"
    r"\*{25}\n",
    re.DOTALL,
)
_TRIGGER = re.compile(r"direct_answer_trigger='\\n([^']*)'")


def loader_order(n: int) -> list[int]:
    """The order of Kojima's shuffled DataLoader over n records: torch's CPU randperm (Fisher-Yates on
    mt19937 seeded 1, after the two draws the DataLoader takes for its base seed)."""
    bits = np.random.MT19937()
    bits._legacy_seeding(1)
    draws = bits.random_raw(2 + max(n - 1, 0))[2:]
    order = list(range(n))
    for i in range(n - 1):
        j = i + int(draws[i]) % (n - i)
        order[i], order[j] = order[j], order[i]
    return order


def _split_answer(body: str, trigger: str, pred_before: str) -> tuple[str, str]:
    """(rationale, answer completion) of the text after the CoT trigger: cut at the ` \\n{trigger}` after which
    the completion is what the log calls pred_before (verbatim, or with colons removed and stripped in the
    older logs); one record (gsm8k 201) matches neither, and is cut where the trigger occurs once."""
    marker = f" \n{trigger}"
    cuts = [m.start() for m in re.finditer(re.escape(marker), body)]
    for rule in (lambda c: c, lambda c: c.replace(":", "").strip()):
        for at in cuts:
            completion = body[at + len(marker) :]
            if rule(completion) == pred_before:
                return body[:at], completion
    if len(cuts) == 1:
        return body[: cuts[0]], body[cuts[0] + len(marker) :]
    raise UserError(f"cannot tell rationale from answer in a log record (trigger {trigger!r} found {len(cuts)} times)")


def parse_log(text: str, task: str, data_root: Path) -> list[dict]:
    """The teacher records of one log, in log order, as the shared JSONL files hold them."""
    found = _TRIGGER.search(text)
    if not found:
        raise UserError(f"not a zero-shot-CoT log of Kojima et al. (no direct_answer_trigger) for {task}")
    trigger = found.group(1)
    blocks = _BLOCK.findall(text)
    if not blocks or [int(b[0]) for b in blocks] != list(range(1, len(blocks) + 1)):
        raise UserError(f"the {task} log's records are not numbered 1..n: is the file complete?")
    order = loader_order(len(blocks))
    spec = load_task(task, data_root)
    split = spec.split()
    offset = spec.decl.test_offset or 0  # Kojima read the test file, numbered after train
    sides = {i: side for side in ("train", "test") for i in split[side]}
    records = []
    for k, (_, question, body, pred_before, pred_after, gold) in enumerate(blocks):
        rationale, completion = _split_answer(body, trigger, pred_before)
        sample_index = order[k] + offset
        records.append(
            {
                "task": task,
                "sample_index": sample_index,
                "split": sides.get(sample_index),
                "question": question,
                "reasoning_prompt": f"Q: {question}\nA: {COT_TRIGGER}",
                "reasoning_completion": rationale.rstrip(),
                "answer_prompt": trigger,
                "answer_completion": completion,
                "gold": gold,
                "log_prediction": pred_after,
            }
        )
    return records


def derive_teacher_file(log: Path, task: str, data_root: Path, target: Path) -> None:
    """Write the task's teacher JSONL parsed from its log (atomically, as the shared file is laid out)."""
    records = parse_log(read_text(log, "log"), task, data_root)
    write_text(target, "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records))
