"""The stages of a run (teach → curate → train → evaluate → report) and the run folder they share (the
README's "The run folder" lists its files; ftcot.run_folder names them). Each stage is one record in STAGES: its
name, the config sections its outputs depend on and its function. `finish` alone writes a stage's summary, stamped
with the fingerprint of those sections, so a rerun skips what is complete and redoes what a config change
touched, whichever command ran the stage."""

from __future__ import annotations

import hashlib
import json
import os
import platform
import sys
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import asdict, dataclass
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

import numpy as np
import yaml
from rich.console import Console

from ftcot.config import RunConfig
from ftcot.curate import Example, curate, permuted_copies, split_validation, vanilla_examples
from ftcot.data import data_dir
from ftcot.errors import BudgetStop, UserError
from ftcot.export import model_card
from ftcot.files import folder_holder, hold_folder, read_json, read_jsonl, write_json, write_jsonl, write_text
from ftcot.judge import solved
from ftcot.methods import METHODS, TEACHER, TRAINED
from ftcot.report import report
from ftcot.run_folder import RunFolder
from ftcot.tasks import Sample, Task, load_task
from ftcot.tasks.answers import accuracy
from ftcot.tasks.prompts import few_shot_cot, load_few_shot_prompts
from ftcot.teachers import check_teacher, make_live_teacher, make_recorded_teacher, teacher_identity
from ftcot.teachers.collect import collect, plan, samples_per, show_plans
from ftcot.teachers.cost import Holds, Spending, cost_of, dead_holds, price_of
from ftcot.teachers.records import read_records, write_records
from ftcot.teachers.sources import source_digests
from ftcot.teachers.store import CompletionStore

console = Console(stderr=True, soft_wrap=True)  # a log line stays one line


@dataclass(frozen=True)
class RunContext:
    """What every stage needs, resolved once: the config, the data folder, the run folder and the task."""

    cfg: RunConfig
    data: Path
    run: RunFolder
    task: Task


def context(cfg: RunConfig) -> RunContext:
    """Resolve the data folder, the run folder and the task (a user's data is read and checked)."""
    data = data_dir(cfg.data_dir)
    return RunContext(cfg, data, RunFolder(Path(cfg.run_dir)), load_task(cfg.task, data))


# --- stage bookkeeping --------------------------------------------------------------------------------------

# Keys that change how a stage runs, not what it produces: changing them reruns nothing. (Which methods and
# baselines run is not part of any one method's output either: adding one runs only it.)
OPERATIONAL = {
    "teacher": {
        "concurrency",
        "requests_per_minute",
        "tokens_per_minute",
        "timeout_s",
        "max_attempts",
        "batch_poll_s",
        "prices",
        "max_cost",
    },
    "train": {"checkpoint", "report_to", "methods"},
    # a served student's address and names, and the client's manners
    "evaluate": {
        "batch_size",
        "baselines",
        "base_url",
        "api_key_env",
        "models",
        "concurrency",
        "timeout_s",
        "max_attempts",
    },
}


# Keys added after run folders were made: out of the hash at the value that does what those folders did, so
# they stay complete (and a value that does something else reruns their stage).
ADDED_KEYS = {
    "teacher": {"adaptive": None, "rationalize": False},
    "curate": {
        "rationalized": "keep",
        "consistency": False,
        "choice_order": "teacher",
        "permute_choices": 0,
        "permute_seed": 0,
    },
    "train": {"validate_with_calculator": False},
    "evaluate": {
        "self_consistency": None,
        "choice_by_content": False,
        "engine": "hf",
        "compute_type": "float32",
        "calculator": False,
    },
}


def fingerprint(ctx: RunContext, stage: str, method: str = "") -> str:
    """A hash of the config sections a stage depends on (and of a custom task's data): a stage reruns when
    they change. Keys that only some methods read count for those methods alone."""
    data = ctx.cfg.model_dump(include={"task", "split", *STAGES[stage].sections}, exclude=OPERATIONAL)
    for section, keys in ADDED_KEYS.items():
        for key, default in keys.items():
            if section in data and data[section][key] == default:
                del data[section][key]
    c = data.get("curate")
    if c is not None:  # keys that change nothing for this task are out of the hash
        if not ctx.task.answer_format.choice:
            for key in ("choice_order", "permute_choices", "permute_seed"):
                c.pop(key, None)
        if not c.get("permute_choices"):
            c.pop("permute_seed", None)
        if c["drop_truncated"] and ctx.cfg.teacher.backend == "recorded":
            c["cut_when"] = "mid-sentence near the limit"  # how records without a finish reason are read (#18)
    m = METHODS.get(method)
    if "train" in data and not (m and m.aux_pair):
        del data["train"]["dss_alpha"]
    if not (m and m.reasoning):  # the calculator writes into rationales only
        data.get("train", {}).pop("validate_with_calculator", None)
        data.get("evaluate", {}).pop("calculator", None)
    if "evaluate" in data and method and ctx.cfg.evaluate.engine == "openai":  # which served model answered
        data["evaluate"]["served"] = ctx.cfg.evaluate.models.get(method)
    if "evaluate" in data and data["evaluate"].get("engine") != "ctranslate2":
        data["evaluate"].pop("compute_type", None)
    if "evaluate" in data and not (m and m.votes):  # what only outputs with their rationale inside are read for
        data["evaluate"].pop("self_consistency", None)
        data["evaluate"].pop("choice_by_content", None)
    if ctx.task.digest:
        data["data"] = ctx.task.digest
    if "teacher" in data and ctx.cfg.teacher.backend == "recorded":  # what a user's source files hold
        digests = source_digests(ctx.cfg.teacher)
        if digests:
            data["teacher"]["source_files"] = digests
    return hashlib.sha256(json.dumps(data, sort_keys=True).encode()).hexdigest()[:16]


def is_done(ctx: RunContext, stage: str, method: str = "") -> bool:
    """Whether the stage's summary is there, made under the same config sections, and complete."""
    path = ctx.run.summary(stage, method)
    if not path.is_file():
        return False
    summary = read_json(path)
    return (
        isinstance(summary, dict)
        and summary.get("fingerprint") == fingerprint(ctx, stage, method)
        and not summary.get("stopped_by_budget")
    )


def finish(ctx: RunContext, stage: str, summary: dict, method: str = "") -> dict:
    """The one place a stage's summary is written, with its fingerprint; the run's config.yaml beside it, so a
    folder made stage by stage is a run folder too (for the report and export)."""
    summary["fingerprint"] = fingerprint(ctx, stage, method)
    write_json(summary, ctx.run.summary(stage, method))
    write_text(ctx.run.config, yaml.safe_dump(ctx.cfg.model_dump(), sort_keys=False))
    return summary


# --- teach --------------------------------------------------------------------------------------------------


def teach_samples(ctx: RunContext) -> list[Sample]:
    samples = []
    for side in ctx.cfg.teacher.teach_on:
        part = ctx.task.split_samples(side, ctx.cfg.split)
        samples.extend(part[: ctx.cfg.teacher.max_samples] if ctx.cfg.teacher.max_samples else part)
    return samples


def grown_questions(ctx: RunContext) -> frozenset[int]:
    """The questions adaptive rounds and rationalization apply to: the train split's (they need its gold)."""
    if not (ctx.cfg.teacher.adaptive or ctx.cfg.teacher.rationalize):
        return frozenset()
    return frozenset(s.sample_index for s in ctx.task.split_samples("train", ctx.cfg.split))


def teach(ctx: RunContext, dry_run: bool = False, max_cost: float | None = None, settle_holds: bool = False) -> dict:
    """Collect zero-shot-CoT teacher completions for the configured questions into the run folder; with
    settle_holds, the holds a killed run left count at the mean cost of the requests that were answered."""
    tcfg = ctx.cfg.teacher
    out = ctx.run.teacher
    samples = teach_samples(ctx)
    trigger = tcfg.answer_trigger or ctx.task.answer_trigger
    start = time.perf_counter()
    budget = max_cost if max_cost is not None else tcfg.max_cost
    price = price_of(tcfg.model, tcfg.prices) if tcfg.backend != "recorded" else None
    check_teacher(tcfg, budget, price, dry_run)
    if tcfg.backend == "recorded":
        teacher, sources = make_recorded_teacher(tcfg, ctx.task, ctx.cfg.split, ctx.data)
        tables = [s for s in sources if "rows" in s]  # rationale tables: what matched, what was left out
        try:  # a question without a record is one line (that says what the tables matched), before any other
            records, missing = teacher.replay(samples, tcfg.num_samples)
        except UserError as exc:
            if not tables:
                raise
            refused = any(s["test_rows_refused"] for s in tables) and "test" in tcfg.teach_on
            raise UserError(
                f"{exc}; "
                + "; ".join(
                    f"{s['source']} has rationales for {s['questions']} train questions ({s['unmatched_rows']} rows "
                    f"unmatched, {s['ambiguous_rows']} ambiguous, {s['test_rows_refused']} test questions refused)"
                    for s in tables
                )
                + ("; a rationale table's test questions are never taken (teach_on: [train])" if refused else "")
            ) from None
        for source in tables:
            console.print(
                f"teach: {source['teacher']} from {source['source']}: {source['rationales']} rationales "
                f"for {source['questions']} train questions from {source['rows']} rows ("
                f"{source['matched_exact']} matched exactly, {source['matched_whitespace']} with whitespace "
                f"normalised; left out: {source['unmatched_rows']} unmatched, {source['ambiguous_rows']} "
                f"ambiguous, {source['test_rows_refused']} test questions); answers: "
                f"{source['answers_from_source']} given, {source['answers_from_flag']} flagged, "
                f"{source['answers_from_rationale']} read from the rationale ({source['answers_none']} "
                "without one)",
                markup=False,
                highlight=False,
            )
        if dry_run:
            console.print(f"dry run: recorded teacher, {len(samples)} questions, 0 requests, $0")
            return {"requests": 0}
        hold_folder(out)
        summary = {
            "teacher": teacher.identity,
            "questions": len(samples),
            "expected": len(samples) * tcfg.num_samples,
            "collected": len(records),
            "questions_without_record": len(missing),
            "requests": 0,
            "prompt_tokens": 0,
            "completion_tokens": 0,
            "cost_usd": 0.0,
            "stopped_by_budget": False,
            "sources": sources,
        }
    else:
        if dry_run:  # reads the store if there is one, creates nothing
            store = CompletionStore(ctx.run.store, read_only=True)
        else:
            live = make_live_teacher(tcfg)  # a missing key stops here, before the store exists
            hold_folder(out)
            store = CompletionStore(ctx.run.store)
        try:
            # Only the process holding the teacher folder writes holds: while another holds it, its holds are in
            # flight; else (this one holds it now) every hold left is of a process killed with it in flight.
            holder = folder_holder(out) if dry_run else None
            holds = None if holder else dead_holds(store, price)
            settled = _settle(store, holds, dry_run) if settle_holds and not holder else None
            before = cost_of(price, *store.spent())  # what earlier invocations spent in this folder
            if dry_run:
                if settled:  # as it would be: the ledger is not written
                    before -= settled["may_exceed_usd"]
                note = (
                    f"the requests in flight of {holder} (it holds {out}) count at their worst case"
                    if holder
                    else holds.describe()
                    if holds and not settled
                    else None
                )
                plans = plan(
                    store,
                    teacher_identity(tcfg.backend, tcfg.model, tcfg.endpoint),
                    tcfg,
                    trigger,
                    samples,
                    price,
                    grown_questions(ctx),
                    ctx.task.answer_format,
                )
                return show_plans(plans, tcfg, len(samples), price, before, budget, console, note) | {
                    "dead_holds": asdict(holds) if holds else None
                }
            spending = Spending(price, budget, before, store)
            outcome = collect(
                live, store, tcfg, trigger, samples, spending, console, grown_questions(ctx), ctx.task.answer_format
            )
        finally:
            store.close()
        records = outcome.records
        summary = {
            "teacher": f"{tcfg.backend}:{tcfg.model}",
            "questions": len(samples),
            "expected": outcome.expected,
            "collected": len(records),
            "questions_without_record": 0,
            "requests": outcome.requests,
            "prompt_tokens": spending.prompt_tokens,
            "completion_tokens": spending.completion_tokens,
            "cost_usd": round(spending.cost, 6),
            "unconfirmed_usd": round(spending.unconfirmed, 6),
            "folder_spent_usd": round(before + spending.cost, 6),
            "budget_usd": budget,
            "stopped_by_budget": outcome.stopped_by_budget,
            "rounds": bool(tcfg.adaptive or tcfg.rationalize),
            # holds a killed run left, at their worst case (unless settled by this run)
            "dead_holds": asdict(holds) if holds and not settled else None,
            "settled_holds": settled,
        }
    summary["wall_s"] = round(time.perf_counter() - start, 3)
    write_records(records, ctx.run.completions)
    return finish(ctx, "teach", summary)


def _settle(store: CompletionStore, holds: Holds | None, dry_run: bool) -> dict | None:
    """teach --settle-holds: a killed run's holds counted at the mean cost of the requests that were answered,
    said in one line (the ledger is written unless this is a dry run)."""
    if holds is None:
        console.print("--settle-holds: no holds of a killed run to settle", markup=False)
        return None
    if holds.settle_usd is None:
        raise UserError(f"--settle-holds: {holds.describe()}: raise teacher.max_cost (or --max-cost) to go on")
    arrived, mean = store.mean_request()
    if not dry_run:
        store.settle_holds(*mean)
    exceed = holds.held_usd - holds.settle_usd
    console.print(
        f"{'dry run: --settle-holds would count' if dry_run else 'settled (--settle-holds):'} "
        f"{holds.requests} request(s) a killed run left in flight (held since "
        f"{time.strftime('%Y-%m-%d %H:%M:%S', time.localtime(holds.since))}) at the mean of the {arrived} "
        f"answered, {mean[0]} prompt + {mean[1]} completion tokens each: ${holds.settle_usd:.4f} instead of "
        f"${holds.held_usd:.4f}; what the provider billed for them is unknown, so the cap could be exceeded "
        f"by at most ${exceed:.4f}",
        markup=False,
    )
    return {
        "requests": holds.requests,
        "since": holds.since,
        "prompt_tokens_each": mean[0],
        "completion_tokens_each": mean[1],
        "held_usd": holds.held_usd,
        "settled_usd": holds.settle_usd,
        "may_exceed_usd": exceed,
    }


def budget_stop(summary: dict) -> BudgetStop:
    more = " (and the rounds that questions short of correct rationales will ask for)" if summary.get("rounds") else ""
    holds = f"; of what it has spent, {Holds(**summary['dead_holds']).describe()}" if summary.get("dead_holds") else ""
    return BudgetStop(
        f"stopped at the budget: this run folder has spent ${summary['folder_spent_usd']:.4f} of its "
        f"cap ${summary['budget_usd']:g} (${summary['cost_usd']:.4f} in this run), "
        f"{summary['expected'] - summary['collected']} of {summary['expected']} completions still to "
        f"get{more}; everything collected is stored: raise teacher.max_cost (or --max-cost), which "
        f"bounds the folder's spending in all, to go on{holds}"
    )


# --- curate -------------------------------------------------------------------------------------------------


def curate_stage(ctx: RunContext) -> dict:
    """Teacher records → curate/train_<method>.jsonl for each trained method, and curate/val.jsonl."""
    out = ctx.run.curate
    hold_folder(out)
    teacher_summary = ctx.run.summary("teach")
    if teacher_summary.is_file() and read_json(teacher_summary).get("stopped_by_budget"):
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
    summary = {
        "train_questions": len(train),
        "val_questions": len(val),
        "kept": len(examples),
        "removed": dict(removed),
        "questions_with_examples": sum(bool(r["kept"]) for r in per_question.values()),
        "samples_drawn": len(fates),
        "rationalized_kept": sum(e.rationalized for e in examples),
        # each teacher's samples and kept rationales (several sources: teacher.records as a list)
        "by_teacher": {
            model: {
                "samples": sum(r.model == model for r, _ in fates),
                "kept": sum(r.model == model and f == "kept" for r, f in fates),
            }
            for model in dict.fromkeys(r.model for r, _ in fates)
        },
        # how the kept ones are framed: the task's question, moved to its option order, the teacher's
        "frames": dict(Counter(e.frame for e in examples)),
        "permuted_copies": {"per_example": c.permute_choices, "examples_without_copies": not_permuted},
    }
    console.print(
        f"curate: kept {len(examples)} Fine-tune-CoT examples for {summary['questions_with_examples']}"
        f"/{len(train)} train questions; removed {dict(removed) or 'nothing'}; "
        f"{len(val)} validation questions",
        markup=False,
    )
    return finish(ctx, "curate", summary)


def _samples(rows: list[dict]) -> list[Sample]:
    return [Sample(r["task"], r["sample_index"], r["question"], r["answer"]) for r in rows]


# --- generation settings shared by validation and evaluation ----------------------------------------------

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
        console.print(
            f"generation: up to {p99 + MAX_NEW_TOKENS_MARGIN} new tokens (99th percentile of "
            f"{len(lengths)} curated completions, {p99}, plus {MAX_NEW_TOKENS_MARGIN})"
        )
    return p99 + MAX_NEW_TOKENS_MARGIN


def eval_batch_size(ctx: RunContext) -> int:
    """`evaluate.batch_size`, else 256 on a GPU (a small student leaves it idle at less) and 64 on the CPU."""
    import torch  # deferred: the teacher's commands do not need it

    return ctx.cfg.evaluate.batch_size or (256 if torch.cuda.is_available() else 64)


# --- train --------------------------------------------------------------------------------------------------


def train_stage(ctx: RunContext, methods: list[str] | None = None, resume: bool = True) -> dict:
    """Fine-tune the student with each method; the best epoch by validation accuracy goes to
    students/<method>/best/. Under torchrun every rank trains; rank 0 alone validates, writes and prints."""
    # deferred: torch and transformers take seconds to import, and only these stages need them
    from ftcot.students.load import load_tokenizer
    from ftcot.students.train import end_processes, is_main_process, train, validation_accuracy

    unknown = [m for m in methods or [] if m not in TRAINED]
    if unknown:
        raise UserError(f"unknown method to train {unknown[0]!r}; trained methods: {', '.join(TRAINED)}")
    main = is_main_process()
    say = console.print if main else (lambda *a, **k: None)
    val = _samples(read_jsonl(ctx.run.validation))
    summaries = {}
    for method in methods or ctx.cfg.train.methods:
        out = ctx.run.student(method)
        if main:  # under torchrun, the other ranks train beside rank 0
            hold_folder(out)
        if is_done(ctx, "train", method):
            summaries[method] = read_json(ctx.run.summary("train", method))
            say(f"train {method}: done already (best epoch {summaries[method]['best_epoch']})")
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
            f", {len(val)} validation questions{' (with the calculator)' if calculator else ''}",
            markup=False,
        )
        summary = train(examples, method, ctx.cfg.student, ctx.cfg.train, out, validate, resume=resume)
        summary["command"] = " ".join(["ftcot", *sys.argv[1:]])  # for the model card
        summary["validated_with_calculator"] = bool(calculator)
        if main:
            finish(ctx, "train", summary, method)
            model_card(ctx.run, method)
        say(
            f"train {method}: best epoch {summary['best_epoch']} of {summary['epochs_trained']} "
            f"({summary['stop_reason']}; validation accuracy {summary['best_val_accuracy']}), "
            f"{summary['tokens_per_s']} tokens/s"
        )
        summaries[method] = summary
    end_processes()
    return summaries


# --- evaluate -----------------------------------------------------------------------------------------------


def _teacher_metrics(ctx: RunContext, test: list[Sample]) -> dict | None:
    """The teacher's own accuracy on the test questions it was run on (its first completion of each)."""
    ids = {s.sample_index for s in test}
    records = [r for r in read_records(ctx.run.completions) if r.sample_index in ids and r.completion_index == 0]
    if not records:
        return None  # the teacher was not run on the test questions
    return {
        "task": ctx.task.key,
        "method": TEACHER,
        "model": records[0].model,
        **accuracy([solved(ctx.task.answer_format, r.answer_completion, r.answer) for r in records]),
    }


def evaluate_stage(ctx: RunContext, methods: list[str] | None = None) -> dict:
    """Accuracy on the test split: the teacher (from its records), the prompting baselines on the base student,
    and each fine-tuned student. Writes eval/<method>/{predictions.jsonl,metrics.json}."""
    from ftcot.engines import check_engine, open_engine  # deferred, like the students
    from ftcot.evaluate import evaluate, self_consistency
    from ftcot.students.load import load_tokenizer

    e = ctx.cfg.evaluate
    wanted = methods or [TEACHER, *e.baselines, *ctx.cfg.train.methods]
    if not methods and e.engine == "openai":  # a server serves the methods evaluate.models names
        for method in (m for m in wanted if m != TEACHER and m not in e.models):
            console.print(f"evaluate {method}: skipped, evaluate.models names no served model for it")
        wanted = [m for m in wanted if m == TEACHER or m in e.models]
    prompts_file = ctx.data / "few_shot_cot_prompts.json"
    few_shot = load_few_shot_prompts(ctx.data) if prompts_file.is_file() else {}
    if not methods:  # the configured baselines: one that needs a few-shot prompt the task lacks is left out
        lacking = [
            m for m in wanted if m in METHODS and METHODS[m].few_shot and ctx.task.decl.few_shot_prompt not in few_shot
        ]
        for method in lacking:
            console.print(f"evaluate {method}: skipped, task {ctx.task.key} has no few-shot-CoT prompt")
        wanted = [m for m in wanted if m not in lacking]
    known = (TEACHER, *METHODS)
    unknown = [m for m in wanted if m not in known]
    if unknown:
        raise UserError(f"unknown method {unknown[0]!r}; methods: {', '.join(known)}")
    # Checks that need no model come before any model is loaded (or, on a new machine, converted).
    todo = [m for m in wanted if m != TEACHER and not is_done(ctx, "evaluate", m)]
    if e.engine != "openai":  # a server may serve a student from elsewhere
        for method in (m for m in todo if m in TRAINED):
            if not ctx.run.best(method).is_dir():
                raise UserError(f"no trained {method} student in {ctx.run.best(method)}: run `ftcot train` first")
    for method in todo:
        if METHODS[method].few_shot:  # asked for by name (the configured ones were left out above)
            try:
                few_shot_cot("", ctx.task.decl.few_shot_prompt, few_shot)
            except UserError as exc:
                raise UserError(f"evaluate {method} on task {ctx.task.key}: {exc}") from None
        check_engine(ctx.cfg, method)
    hold_folder(ctx.run.eval)
    test = ctx.task.split_samples("test", ctx.cfg.split)[: ctx.cfg.evaluate.max_samples]
    results = {}
    base = None  # the base student's engine, shared by the baselines
    budget = None
    for method in wanted:
        if is_done(ctx, "evaluate", method):
            results[method] = read_json(ctx.run.summary("evaluate", method))
            continue
        if method == TEACHER:
            metrics, predictions = _teacher_metrics(ctx, test), []
            if metrics is None:
                continue
        else:
            if budget is None:
                tokenizer, kind = load_tokenizer(ctx.cfg.student)
                budget = generation_budget(ctx, tokenizer, kind, quiet=False)
            weights = str(ctx.run.best(method)) if method in TRAINED else None
            shared = method not in TRAINED and e.engine != "openai"  # the baselines share the base student
            engine = (
                base
                if shared and base is not None
                else open_engine(ctx.cfg, method, weights, ctx.run.eval, eval_batch_size(ctx))
            )
            base = engine if shared else base
            sc = e.self_consistency if METHODS[method].votes else None
            calculator = e.calculator and METHODS[method].reasoning  # the plain row, and one with the calculator
            try:
                predictions, metrics = evaluate(
                    ctx.task, engine, test, method, budget, few_shot, choice_by_content=e.choice_by_content
                )
                metrics |= {"model": ctx.cfg.student.model, "parameters": engine.parameters, "engine": e.engine}
                if sc:
                    votes, metrics["self_consistency"] = self_consistency(
                        ctx.task, engine, test, method, budget, sc.k, sc.temperature, sc.seed, few_shot
                    )
                if calculator:
                    counted, metrics["calculator"] = evaluate(
                        ctx.task, engine, test, method, budget, few_shot, calculator=True
                    )
                if calculator and sc:
                    counted_votes, metrics["calculator"]["self_consistency"] = self_consistency(
                        ctx.task, engine, test, method, budget, sc.k, sc.temperature, sc.seed, few_shot, True
                    )
            finally:
                if engine is not base:
                    engine.close()
            written = {
                ctx.run.votes(method): sc and votes,
                ctx.run.calculated(method): calculator and counted,
                ctx.run.calculated_votes(method): calculator and sc and counted_votes,
            }
            for path, rows in written.items():
                if rows:
                    write_jsonl(rows, path)
                else:
                    path.unlink(missing_ok=True)  # of an earlier config
            if sc:
                v = metrics["self_consistency"]
                console.print(
                    f"evaluate {method}: self-consistency k={sc.k}: {v['accuracy']}% (greedy "
                    f"{metrics['accuracy']}%), samples agree with the vote {v['agreement']}%, "
                    f"{v['questions_per_s']} questions/s",
                    markup=False,
                )
            if calculator:
                c = metrics["calculator"]
                own = c["calls"]["own_wrong_pct"]
                own = f", the student's own number wrong at {own}% of them" if own is not None else ""
                voted = f"; self-consistency k={sc.k}: {c['self_consistency']['accuracy']}%" if sc else ""
                console.print(
                    f"evaluate {method} + calculator: {c['accuracy']}% ({c['correct']}/{c['n']}, 95% CI "
                    f"{c['ci95'][0]}-{c['ci95'][1]}; without it {metrics['accuracy']}%), "
                    f"{c['calls']['per_output']} calls per output{own}{voted}",
                    markup=False,
                )
        write_jsonl(predictions, ctx.run.predictions(method))
        finish(ctx, "evaluate", metrics, method)
        if method in TRAINED:
            model_card(ctx.run, method)  # now with its test accuracy
        d, why = metrics.get("diagnostics"), ""
        if d:
            cut = f"{d['no_answer_marker']}% without '{d['marker']}', " if d["marker"] else ""
            why = (
                f"; {cut}{d['unparsed']}% unparsed, most frequent answer {d['most_frequent_prediction']!r} "
                f"({d['most_frequent_share']}%)"
            )
        by_content = metrics.get("choice_by_content")
        if by_content:
            why += f"; by the option its rationale names: {by_content['accuracy']}%"
        console.print(
            f"evaluate {method}: {metrics['accuracy']}% ({metrics['correct']}/{metrics['n']}, "
            f"95% CI {metrics['ci95'][0]}-{metrics['ci95'][1]}){why}",
            markup=False,
        )
        results[method] = metrics
    if base is not None:
        base.close()
    return results


# --- the whole run ------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Stage:
    name: str
    sections: tuple[str, ...]  # the config sections its outputs depend on (with task and split)
    run: Callable[[RunContext], object]


STAGES: dict[str, Stage] = {
    s.name: s
    for s in (
        Stage("teach", ("teacher",), teach),
        Stage("curate", ("teacher", "curate"), curate_stage),
        Stage("train", ("teacher", "curate", "student", "train"), train_stage),
        Stage("evaluate", ("teacher", "curate", "student", "train", "evaluate"), evaluate_stage),
    )
}


def environment() -> dict:
    import torch  # deferred, like the students

    versions = {}
    for package in ("ftcot", "torch", "transformers", "peft", "accelerate", "openai", "pydantic"):
        try:
            versions[package] = version(package)
        except PackageNotFoundError:
            versions[package] = None
    return {
        "python": platform.python_version(),
        "platform": platform.platform(),
        "cpus": os.cpu_count(),
        "cuda": torch.cuda.is_available(),
        "gpu": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
        "packages": versions,
    }


def start_run(ctx: RunContext) -> None:
    """The run folder's config.yaml and environment.json, written by whoever starts a whole run (every stage
    writes config.yaml again when it finishes)."""
    ctx.run.root.mkdir(parents=True, exist_ok=True)
    write_text(ctx.run.config, yaml.safe_dump(ctx.cfg.model_dump(), sort_keys=False))
    write_json(environment(), ctx.run.environment)


def run(ctx: RunContext) -> dict:
    """teach → curate → train → evaluate → report, skipping each stage whose outputs are complete."""
    # Every stage's folder is held before anything is written: a second run on this folder changes nothing.
    for folder in (ctx.run.teacher, ctx.run.curate, ctx.run.eval, *map(ctx.run.student, ctx.cfg.train.methods)):
        hold_folder(folder)
    start_run(ctx)
    timings_path = ctx.run.timings
    timings = read_json(timings_path) if timings_path.exists() else {}
    for stage in STAGES.values():
        if (
            stage.name in ("teach", "curate")
            and is_done(ctx, stage.name)
            and (stage.name == "teach" or all(ctx.run.curated(m).is_file() for m in ctx.cfg.train.methods))
        ):
            console.print(f"{stage.name}: done already")
            continue
        start = time.perf_counter()
        summary = stage.run(ctx)
        if stage.name == "teach" and summary["stopped_by_budget"]:
            raise budget_stop(summary)
        timings[stage.name] = round(time.perf_counter() - start, 2)
        write_json(timings, timings_path)
    return report(ctx.run.root)
