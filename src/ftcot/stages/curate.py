"""curate: the teacher's completions to training pairs for each trained method (the correct,
consistent, uncut ones), a validation split carved from train, and per question what was kept and why the rest was dropped."""

from __future__ import annotations

from collections import Counter

from ftcot.artifacts import CurateSummary, PermutedCopies, TeacherCount, TeachSummary, read_summary
from ftcot.curate import curate, permuted_copies, split_validation, vanilla_examples
from ftcot.errors import UserError
from ftcot.files import hold_folder, write_jsonl
from ftcot.log import log
from ftcot.methods import METHODS, TRAINED
from ftcot.pipeline import RunContext, finish
from ftcot.tasks import Sample
from ftcot.teachers.collect import samples_per
from ftcot.teachers.records import read_records


def run(ctx: RunContext) -> CurateSummary:
    """Teacher records → curate/train_<method>.jsonl for each trained method, and curate/val.jsonl."""
    out = ctx.run.curate
    hold_folder(out)
    teacher_summary = read_summary(ctx.run.summary("teach"), TeachSummary)
    if teacher_summary is not None and teacher_summary.stopped_by_budget:
        raise UserError(
            "the teacher stopped at its budget, so its completions are partial: rerun `ftcot teach` "
            "with a new or raised --max-cost before curating"
        )
    records = read_records(ctx.run.completions)
    train, val = split_validation(
        ctx.task.split_samples("train", ctx.cfg.split), ctx.cfg.curate.val_fraction, ctx.cfg.curate.seed
    )
    c = ctx.cfg.curate
    examples, fates = curate(ctx.task, records, train, c, samples_per(ctx.cfg.teacher))
    # Shuffled copies of choice examples (seeded per question, so every method's copies match).
    with_rationales, not_permuted = permuted_copies(examples, c.permute_choices, c.permute_seed)
    with_answers, _ = permuted_copies(vanilla_examples(train), c.permute_choices, c.permute_seed)
    for name in TRAINED:  # files for the methods trained (an earlier config's others would be stale)
        chosen = with_rationales if METHODS[name].trains_on == "rationales" else with_answers
        if name in ctx.cfg.train.methods:
            write_jsonl([e.model_dump() for e in chosen], ctx.run.curated(name))
        else:
            (ctx.run.curated(name)).unlink(missing_ok=True)
    write_jsonl(
        [{"task": s.task, "sample_index": s.sample_index, "question": s.question, "answer": s.answer} for s in val],
        ctx.run.validation,
    )
    # Per train question: what the teacher drew, how many were correct, kept, and why the others were dropped.
    per_question = {
        s.sample_index: {
            "sample_index": s.sample_index,
            "drawn": 0,
            "correct": 0,
            "rationalized": False,
            "kept": 0,
            "kept_by_teacher": Counter(),
            "dropped": Counter(),
            "fates": {},
        }
        for s in train
    }
    for r, fate in fates:
        row = per_question[r.sample_index]
        row["fates"][r.completion_index] = fate  # each sample's, by completion_index
        row["drawn"] += 1
        row["correct"] += fate not in ("incorrect", "question_mismatch")
        row["rationalized"] |= r.rationalized
        if fate == "kept":
            row["kept"] += 1
            row["kept_by_teacher"][r.model] += 1
        else:
            row["dropped"][fate] += 1
    write_jsonl(
        [
            {**row, "dropped": dict(row["dropped"]), "kept_by_teacher": dict(row["kept_by_teacher"])}
            for row in per_question.values()
        ],
        ctx.run.per_question,
    )
    removed = Counter(fate for _, fate in fates if fate != "kept")
    summary = CurateSummary(
        train_questions=len(train),
        val_questions=len(val),
        kept=len(examples),
        removed=dict(removed),
        questions_with_examples=sum(bool(r["kept"]) for r in per_question.values()),
        samples_drawn=len(fates),
        rationalized_kept=sum(e.rationalized for e in examples),
        # each teacher's samples and kept rationales (several sources: teacher.records as a list)
        by_teacher={
            model: TeacherCount(
                samples=sum(r.model == model for r, _ in fates),
                kept=sum(r.model == model and f == "kept" for r, f in fates),
            )
            for model in dict.fromkeys(r.model for r, _ in fates)
        },
        # how the kept ones are framed: the task's question, moved to its option order, the teacher's
        frames=dict(Counter(e.frame for e in examples)),
        permuted_copies=PermutedCopies(per_example=c.permute_choices, examples_without_copies=not_permuted),
    )
    log.info(
        f"curate: kept {len(examples)} Fine-tune-CoT examples for {summary.questions_with_examples}"
        f"/{len(train)} train questions; removed {dict(removed) or 'nothing'}; "
        f"{len(val)} validation questions",
    )
    return finish(ctx, "curate", summary)


def _samples(rows: list[dict]) -> list[Sample]:
    return [Sample(r["task"], r["sample_index"], r["question"], r["answer"]) for r in rows]
