"""Generation settings that validation (train) and evaluation share: how many new tokens, how many questions
a batch."""

from __future__ import annotations

import numpy as np

from ftcot.files import read_jsonl
from ftcot.judge import solved
from ftcot.log import log
from ftcot.methods import METHODS, TRAINED
from ftcot.pipeline import RunContext
from ftcot.teachers.records import read_records

FALLBACK_MAX_NEW_TOKENS = 128  # the recorded teacher's own rationale limit, when nothing was curated
MAX_NEW_TOKENS_MARGIN = 16


def generation_budget(ctx: RunContext, tokenizer, kind: str, quiet: bool = True) -> int:
    """`evaluate.max_new_tokens`, else enough for the curated rationale completions (the teacher's correct ones
    where no method trains on rationales): their 99th percentile in the student's tokens (EOS included) plus a
    margin, so a student that imitates a long rationale is not cut off before its answer."""
    if ctx.cfg.evaluate.max_new_tokens:
        return ctx.cfg.evaluate.max_new_tokens
    rows = []
    for name in TRAINED:
        path = ctx.run.curated(name)
        if METHODS[name].trains_on == "rationales" and path.is_file():
            rows = read_jsonl(path)
            break
    records = ctx.run.completions
    if not rows and records.is_file():  # no method trained on rationales: the teacher's correct ones
        rows = [
            {"question": r.question, "rationale": r.reasoning_completion.strip(), "answer": r.answer}
            for r in read_records(records)
            if solved(ctx.task.answer_format, r.answer_completion, r.answer)
        ]
    if not rows:
        return FALLBACK_MAX_NEW_TOKENS
    completions = [METHODS["ft_cot"].pairs(r["question"], r["rationale"], r["answer"], kind)[0][1] for r in rows]
    lengths = [len(ids) + 1 for ids in tokenizer(completions, add_special_tokens=False)["input_ids"]]
    p99 = int(np.percentile(lengths, 99, method="higher"))
    if not quiet:
        log.info(
            f"generation: up to {p99 + MAX_NEW_TOKENS_MARGIN} new tokens (99th percentile of "
            f"{len(lengths)} curated completions, {p99}, plus {MAX_NEW_TOKENS_MARGIN})"
        )
    return p99 + MAX_NEW_TOKENS_MARGIN


def eval_batch_size(ctx: RunContext) -> int:
    """`evaluate.batch_size`, else 256 on a GPU (a small student leaves it idle at less) and 64 on the CPU."""
    import torch  # deferred: the teacher's commands do not need it

    return ctx.cfg.evaluate.batch_size or (256 if torch.cuda.is_available() else 64)
