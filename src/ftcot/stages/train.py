"""train: the student fine-tuned with each method on its curated pairs; the epoch with the best validation accuracy
is kept in students/<method>/best/."""

from __future__ import annotations

import sys

from ftcot.artifacts import TrainSummary, parse_summary
from ftcot.curate import Example
from ftcot.errors import UserError
from ftcot.export import model_card
from ftcot.files import hold_folder, read_jsonl
from ftcot.log import log
from ftcot.methods import METHODS, TRAINED
from ftcot.pipeline import RunContext, finish, is_done
from ftcot.stages.generation import eval_batch_size, generation_budget
from ftcot.tasks import Sample


def _samples(rows: list[dict]) -> list[Sample]:
    return [Sample(r["task"], r["sample_index"], r["question"], r["answer"]) for r in rows]


def run(ctx: RunContext, methods: list[str] | None = None, resume: bool = True) -> dict[str, TrainSummary]:
    """Fine-tune the student with each method; the best epoch by validation accuracy goes to
    students/<method>/best/. Under torchrun every rank trains; rank 0 alone validates, writes and prints."""
    # deferred: torch and transformers take seconds to import, and only these stages need them
    from ftcot.students.load import load_tokenizer
    from ftcot.students.train import end_processes, is_main_process, train, validation_accuracy

    unknown = [m for m in methods or [] if m not in TRAINED]
    if unknown:
        raise UserError(f"unknown method to train {unknown[0]!r}; trained methods: {', '.join(TRAINED)}")
    main = is_main_process()
    say = log.info if main else (lambda *a: None)
    val = _samples(read_jsonl(ctx.run.validation))
    summaries = {}
    for method in methods or ctx.cfg.train.methods:
        out = ctx.run.student(method)
        if main:  # under torchrun, the other ranks train beside rank 0
            hold_folder(out)
        if is_done(ctx, "train", method):
            summaries[method] = parse_summary(ctx.run.summary("train", method), TrainSummary)
            say(f"train {method}: done already (best epoch {summaries[method].best_epoch})")
            continue
        curated = ctx.run.curated(method)
        if not curated.is_file():
            raise UserError(
                f"no curated examples for {method} ({curated}): list it in train.methods and run `ftcot curate` again"
            )
        examples = [Example(**r) for r in read_jsonl(curated)]
        if ctx.cfg.train.max_examples:  # the first N curated examples, each with its shuffled copies
            first = [(e.sample_index, e.completion_index) for e in examples if e.variant == 0]
            kept = set(first[: ctx.cfg.train.max_examples])
            examples = [e for e in examples if (e.sample_index, e.completion_index) in kept]
        if not examples:  # known before any model is loaded (or, on a new machine, converted)
            raise UserError(
                f"no training examples for {method} in {curated}: check the teacher records and curation filters"
            )
        tokenizer, kind = load_tokenizer(ctx.cfg.student)
        calculator = ctx.cfg.train.validate_with_calculator and METHODS[method].reasoning
        validate = validation_accuracy(
            ctx.task,
            method,
            kind,
            tokenizer,
            val,
            generation_budget(ctx, tokenizer, kind),
            eval_batch_size(ctx),
            calculator,
        )
        t = ctx.cfg.train
        say(
            f"train {method}: {len(examples)} examples, up to {t.epochs} epochs ({t.protocol} protocol: lr "
            f"{t.learning_rate:g} {t.lr_schedule}, batch {t.batch_size}x{t.grad_accum}, weight decay {t.weight_decay:g}"
            f"{f', patience {t.patience}' if t.patience else ''}{f', {t.max_minutes:g} min' if t.max_minutes else ''})"
            f", {len(val)} validation questions{' (with the calculator)' if calculator else ''}"
        )
        summary = train(examples, method, ctx.cfg.student, ctx.cfg.train, out, validate, resume=resume)
        summary.command = " ".join(["ftcot", *sys.argv[1:]])  # for the model card
        summary.validated_with_calculator = bool(calculator)
        if main:
            summary = finish(ctx, "train", summary, method)
            model_card(ctx.run, method)
        say(
            f"train {method}: best epoch {summary.best_epoch} of {summary.epochs_trained} "
            f"({summary.stop_reason}; validation accuracy {summary.best_val_accuracy}), "
            f"{summary.tokens_per_s} tokens/s"
        )
        summaries[method] = summary
    end_processes()
    return summaries
