"""The stages of a run (teach → curate → train → evaluate → report) and the run folder they share; the
README's "The run folder" lists every file. Each stage's summary carries a fingerprint of the config
sections it depends on, so a rerun skips what is complete and redoes what a config change touched."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

from rich.console import Console

from ftcot.config import RunConfig
from ftcot.data import data_dir
from ftcot.errors import UserError
from ftcot.files import hold_folder, write_json, write_jsonl
from ftcot.tasks import Sample, get_task, split_samples
from ftcot.tasks.registry import read_jsonl

console = Console(stderr=True)


def teach_samples(cfg: RunConfig) -> list[Sample]:
    root = data_dir(cfg.data_dir)
    samples = []
    for side in cfg.teacher.teach_on:
        part = split_samples(cfg.task, side, root, cfg.split)
        samples.extend(part[: cfg.teacher.max_samples] if cfg.teacher.max_samples else part)
    return samples


def teach(cfg: RunConfig, dry_run: bool = False, max_cost: float | None = None) -> dict:
    """Collect zero-shot-CoT teacher completions for the configured questions into the run folder."""
    from ftcot.teachers import make_live_teacher, make_recorded_teacher, teacher_identity
    from ftcot.teachers.collect import collect, plan, write_records
    from ftcot.teachers.cost import Spending, price_of
    from ftcot.teachers.store import CompletionStore

    tcfg = cfg.teacher
    run = Path(cfg.run_dir) / "teacher"
    samples = teach_samples(cfg)
    trigger = tcfg.answer_trigger or get_task(cfg.task).answer_trigger
    start = time.perf_counter()
    if tcfg.backend == "recorded":
        teacher = make_recorded_teacher(tcfg, cfg.task, data_dir(cfg.data_dir))
        if dry_run:
            console.print(f"dry run: recorded teacher, {len(samples)} questions, 0 requests, $0")
            return {"requests": 0}
        hold_folder(run)
        records, missing = teacher.replay(samples, tcfg.num_samples)
        summary = {"teacher": teacher.identity, "questions": len(samples), "expected": len(samples) * tcfg.num_samples,
                   "collected": len(records), "questions_without_record": len(missing), "requests": 0,
                   "prompt_tokens": 0, "completion_tokens": 0, "cost_usd": 0.0, "stopped_by_budget": False}
    else:
        price = price_of(tcfg.model, tcfg.prices)
        budget = max_cost if max_cost is not None else tcfg.max_cost
        if budget is not None and tcfg.batch and not dry_run:
            raise UserError("a budget cannot be held with teacher.batch: true (the Batch API bills a whole batch "
                            "after the fact); collect without batch, or without a budget")
        if budget is not None and price is None and not dry_run:
            raise UserError(f"a budget is set but the price of {tcfg.model} is unknown: add it under teacher.prices "
                            f"({tcfg.model}: {{input: USD per million prompt tokens, output: ...}})")
        if dry_run:  # reads the store if there is one, creates nothing
            store = CompletionStore(run / "store.sqlite", read_only=True)
        else:
            live = make_live_teacher(tcfg)  # a missing key stops here, before the store exists
            hold_folder(run)
            store = CompletionStore(run / "store.sqlite")
        try:
            if dry_run:
                p = plan(store, teacher_identity(tcfg.backend, tcfg.model, tcfg.endpoint), tcfg, trigger, samples,
                         price)
                note = "" if price else f" (no price known for {tcfg.model}: set teacher.prices)"
                console.print(f"dry run: {len(samples)} questions x D={tcfg.num_samples}: {p.requests} requests, "
                              f"~{p.prompt_tokens:,} prompt tokens, <= {p.completion_tokens:,} completion tokens, "
                              f"<= ${p.cost:.4f}{note}", markup=False)
                return {"requests": p.requests, "prompt_tokens": p.prompt_tokens,
                        "completion_tokens": p.completion_tokens, "cost_usd": p.cost}
            spending = Spending(price, budget)
            outcome = collect(live, store, tcfg, trigger, samples, spending, console)
        finally:
            store.close()
        records = outcome.records
        summary = {"teacher": f"{tcfg.backend}:{tcfg.model}", "questions": len(samples), "expected": outcome.expected,
                   "collected": len(records), "questions_without_record": 0, "requests": outcome.requests,
                   "prompt_tokens": spending.prompt_tokens, "completion_tokens": spending.completion_tokens,
                   "cost_usd": round(spending.cost, 6), "unconfirmed_usd": round(spending.unconfirmed, 6),
                   "budget_usd": budget, "stopped_by_budget": outcome.stopped_by_budget}
    summary["wall_s"] = round(time.perf_counter() - start, 3)
    write_records(records, run / "completions.jsonl")
    write_json(summary, run / "summary.json")
    return summary


# --- stage bookkeeping --------------------------------------------------------------------------------------

def fingerprint(cfg: RunConfig, *sections: str) -> str:
    """A hash of the config sections a stage depends on: a stage reruns when they change."""
    import hashlib

    data = cfg.model_dump(include={"task", "split", *sections}, exclude=OPERATIONAL)
    return hashlib.sha256(json.dumps(data, sort_keys=True).encode()).hexdigest()[:16]


# Keys that change how a stage runs, not what it produces: changing them reruns nothing.
OPERATIONAL = {"train": {"checkpoint"}, "evaluate": {"batch_size"}}


def is_done(summary_path: Path, cfg: RunConfig, *sections: str) -> bool:
    if not summary_path.is_file():
        return False
    return json.loads(summary_path.read_text()).get("fingerprint") == fingerprint(cfg, *sections)


TEACH_SECTIONS = ("teacher",)
CURATE_SECTIONS = TEACH_SECTIONS + ("curate",)
TRAIN_SECTIONS = CURATE_SECTIONS + ("student", "train")
EVAL_SECTIONS = TRAIN_SECTIONS + ("evaluate",)


# --- curate -------------------------------------------------------------------------------------------------

def curate_stage(cfg: RunConfig) -> dict:
    """Teacher records → curate/train_ft_cot.jsonl, curate/train_vanilla.jsonl, curate/val.jsonl."""
    from ftcot.curate import curate, split_validation, vanilla_examples
    from ftcot.teachers.records import read_records

    root = data_dir(cfg.data_dir)
    out = Path(cfg.run_dir) / "curate"
    hold_folder(out)
    teacher_summary = Path(cfg.run_dir) / "teacher" / "summary.json"
    if teacher_summary.is_file() and json.loads(teacher_summary.read_text()).get("stopped_by_budget"):
        raise UserError("the teacher stopped at its budget, so its completions are partial: rerun `ftcot teach` "
                        "with a new or raised --max-cost before curating")
    records = read_records(Path(cfg.run_dir) / "teacher" / "completions.jsonl")
    train, val = split_validation(split_samples(cfg.task, "train", root, cfg.split), cfg.curate.val_fraction,
                                  cfg.curate.seed)
    examples, removed = curate(records, train, cfg.curate, cfg.teacher.num_samples)
    write_jsonl([e.model_dump() for e in examples], out / "train_ft_cot.jsonl")
    write_jsonl([e.model_dump() for e in vanilla_examples(train)], out / "train_vanilla.jsonl")
    write_jsonl([{"task": s.task, "sample_index": s.sample_index, "question": s.question, "answer": s.answer}
                 for s in val], out / "val.jsonl")
    summary = {"fingerprint": fingerprint(cfg, *CURATE_SECTIONS), "train_questions": len(train),
               "val_questions": len(val), "kept": len(examples), "removed": dict(removed),
               "questions_with_examples": len({e.sample_index for e in examples})}
    write_json(summary, out / "summary.json")
    console.print(f"curate: kept {len(examples)} Fine-tune-CoT examples for {summary['questions_with_examples']}"
                  f"/{len(train)} train questions; removed {dict(removed) or 'nothing'}; "
                  f"{len(val)} validation questions", markup=False)
    return summary


def _samples(rows: list[dict]) -> list[Sample]:
    return [Sample(r["task"], r["sample_index"], r["question"], r["answer"]) for r in rows]


# --- generation settings shared by validation and evaluation ----------------------------------------------

FALLBACK_MAX_NEW_TOKENS = 128  # the recorded teacher's own rationale limit, when nothing was curated
MAX_NEW_TOKENS_MARGIN = 16


def generation_budget(cfg: RunConfig, tokenizer, kind: str, quiet: bool = True) -> int:
    """`evaluate.max_new_tokens`, else enough for the curated Fine-tune-CoT completions: their 99th percentile
    in the student's tokens (EOS included) plus a margin, so a student that imitates a long rationale is not cut
    off before its answer."""
    import numpy as np

    from ftcot.tasks.prompts import ft_cot_pair

    if cfg.evaluate.max_new_tokens:
        return cfg.evaluate.max_new_tokens
    path = Path(cfg.run_dir) / "curate" / "train_ft_cot.jsonl"
    rows = read_jsonl(path) if path.is_file() else []
    if not rows:
        return FALLBACK_MAX_NEW_TOKENS
    completions = [ft_cot_pair(r["question"], r["rationale"], r["answer"], kind)[1] for r in rows]
    lengths = [len(ids) + 1 for ids in tokenizer(completions, add_special_tokens=False)["input_ids"]]
    p99 = int(np.percentile(lengths, 99, method="higher"))
    if not quiet:
        console.print(f"generation: up to {p99 + MAX_NEW_TOKENS_MARGIN} new tokens (99th percentile of "
                      f"{len(lengths)} curated completions, {p99}, plus {MAX_NEW_TOKENS_MARGIN})")
    return p99 + MAX_NEW_TOKENS_MARGIN


def eval_batch_size(cfg: RunConfig) -> int:
    """`evaluate.batch_size`, else 256 on a GPU (a small student leaves it idle at less) and 64 on the CPU."""
    import torch

    return cfg.evaluate.batch_size or (256 if torch.cuda.is_available() else 64)


# --- train --------------------------------------------------------------------------------------------------

def train_stage(cfg: RunConfig, methods: list[str] | None = None, resume: bool = True) -> dict:
    """Fine-tune the student with each method; the best epoch by validation accuracy goes to
    students/<method>/best/. Under torchrun every rank trains; rank 0 alone validates, writes and prints."""
    from ftcot.curate import Example
    from ftcot.students.load import load_tokenizer
    from ftcot.students.train import is_main_process, train, validation_accuracy

    run = Path(cfg.run_dir)
    say = console.print if is_main_process() else (lambda *a, **k: None)
    unknown = [m for m in methods or [] if m not in ("ft_cot", "vanilla")]
    if unknown:
        raise UserError(f"unknown method to train {unknown[0]!r}; trained methods: ft_cot, vanilla")
    val = _samples(read_jsonl(run / "curate" / "val.jsonl"))
    summaries = {}
    for method in methods or cfg.train.methods:
        out = run / "students" / method
        if is_main_process():  # under torchrun, the other ranks train beside rank 0
            hold_folder(out)
        if is_done(out / "summary.json", cfg, *TRAIN_SECTIONS):
            summaries[method] = json.loads((out / "summary.json").read_text())
            say(f"train {method}: done already (best epoch {summaries[method]['best_epoch']})")
            continue
        rows = read_jsonl(run / "curate" / f"train_{method}.jsonl")
        examples = [Example(**r) for r in rows][: cfg.train.max_examples]
        tokenizer, kind = load_tokenizer(cfg.student)
        validate = validation_accuracy(method, kind, tokenizer, val, generation_budget(cfg, tokenizer, kind),
                                       eval_batch_size(cfg))
        t = cfg.train
        say(f"train {method}: {len(examples)} examples, up to {t.epochs} epochs ({t.protocol} protocol: lr "
            f"{t.learning_rate:g} {t.lr_schedule}, batch {t.batch_size}x{t.grad_accum}, weight decay {t.weight_decay:g}"
            f"{f', patience {t.patience}' if t.patience else ''}{f', {t.max_minutes:g} min' if t.max_minutes else ''})"
            f", {len(val)} validation questions", markup=False)
        summary = train(examples, method, cfg.student, cfg.train, out, validate, resume=resume)
        summary["fingerprint"] = fingerprint(cfg, *TRAIN_SECTIONS)
        if is_main_process():
            write_json(summary, out / "summary.json")
        say(f"train {method}: best epoch {summary['best_epoch']} of {summary['epochs_trained']} "
            f"({summary['stop_reason']}; validation accuracy {summary['best_val_accuracy']}), "
            f"{summary['tokens_per_s']} tokens/s")
        summaries[method] = summary
    return summaries


# --- evaluate -----------------------------------------------------------------------------------------------

def evaluate_stage(cfg: RunConfig, methods: list[str] | None = None) -> dict:
    """Accuracy on the test split: the teacher (from its records), the prompting baselines on the base student,
    and each fine-tuned student. Writes eval/<method>/{predictions.jsonl,metrics.json}."""
    from ftcot.evaluate import METHODS, evaluate, wilson_interval
    from ftcot.students.load import load_student
    from ftcot.tasks import get_task
    from ftcot.tasks.answers import PREDICTION_PREFIXES, parse_prediction
    from ftcot.tasks.prompts import load_few_shot_prompts
    from ftcot.teachers.records import read_records

    root = data_dir(cfg.data_dir)
    run = Path(cfg.run_dir)
    test = split_samples(cfg.task, "test", root, cfg.split)[: cfg.evaluate.max_samples]
    wanted = methods or ["teacher", *cfg.evaluate.baselines, *cfg.train.methods]
    known = ("teacher", "zero_shot_cot", *METHODS)
    unknown = [m for m in wanted if m not in known]
    if unknown:
        raise UserError(f"unknown method {unknown[0]!r}; methods: {', '.join(known)}")
    hold_folder(run / "eval")
    results = {}
    base = None
    budget = None
    for method in wanted:
        out = run / "eval" / method
        if is_done(out / "metrics.json", cfg, *EVAL_SECTIONS):
            results[method] = json.loads((out / "metrics.json").read_text())
            continue
        if method == "teacher":
            spec = get_task(cfg.task)
            ids = {s.sample_index for s in test}
            records = [r for r in read_records(run / "teacher" / "completions.jsonl")
                       if r.sample_index in ids and r.completion_index == 0]
            if not records:
                continue  # the teacher was not run on the test questions
            correct = sum(spec.answer_format.matches(parse_prediction(spec.answer_format, r.answer_completion,
                                                                      PREDICTION_PREFIXES["zero_shot_cot"]), r.answer)
                          for r in records)
            low, high = wilson_interval(correct, len(records))
            metrics = {"task": cfg.task, "method": "teacher", "model": records[0].model, "n": len(records),
                       "correct": correct, "accuracy": round(100 * correct / len(records), 2),
                       "ci95": [round(low, 2), round(high, 2)]}
            predictions = []
        else:
            fine_tuned = method in ("ft_cot", "vanilla")
            if fine_tuned:
                best = run / "students" / method / "best"
                if not best.is_dir():
                    raise UserError(f"no trained {method} student in {best}: run `ftcot train` first")
                model, tokenizer, kind = load_student(cfg.student, str(best))
            else:
                base = base or load_student(cfg.student)
                model, tokenizer, kind = base
            few_shot = load_few_shot_prompts(root) if method == "few_shot_cot" else None
            budget = budget or generation_budget(cfg, tokenizer, kind, quiet=False)
            predictions, metrics = evaluate(model, tokenizer, test, method, kind, budget, eval_batch_size(cfg),
                                            few_shot)
            metrics["model"] = cfg.student.model
            metrics["parameters"] = sum(p.numel() for p in model.parameters())
        metrics["fingerprint"] = fingerprint(cfg, *EVAL_SECTIONS)
        write_jsonl(predictions, out / "predictions.jsonl")
        write_json(metrics, out / "metrics.json")
        d, why = metrics.get("diagnostics"), ""
        if d:
            cut = f"{d['no_answer_marker']}% without '{d['marker']}', " if d["marker"] else ""
            why = (f"; {cut}{d['unparsed']}% unparsed, most frequent answer {d['most_frequent_prediction']!r} "
                   f"({d['most_frequent_share']}%)")
        console.print(f"evaluate {method}: {metrics['accuracy']}% ({metrics['correct']}/{metrics['n']}, "
                      f"95% CI {metrics['ci95'][0]}-{metrics['ci95'][1]}){why}", markup=False)
        results[method] = metrics
    return results


# --- the whole run ------------------------------------------------------------------------------------------

def environment() -> dict:
    import platform
    from importlib.metadata import PackageNotFoundError, version

    versions = {}
    for package in ("ftcot", "torch", "transformers", "peft", "accelerate", "openai", "pydantic"):
        try:
            versions[package] = version(package)
        except PackageNotFoundError:
            versions[package] = None
    import torch

    return {"python": platform.python_version(), "platform": platform.platform(), "cpus": os.cpu_count(),
            "cuda": torch.cuda.is_available(),
            "gpu": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None, "packages": versions}


def run(cfg: RunConfig) -> dict:
    """teach → curate → train → evaluate → report, skipping each stage whose outputs are complete."""
    import yaml

    from ftcot.report import report

    run_dir = Path(cfg.run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    (run_dir / "config.yaml").write_text(yaml.safe_dump(cfg.model_dump(), sort_keys=False))
    write_json(environment(), run_dir / "environment.json")
    timings = json.loads((run_dir / "timings.json").read_text()) if (run_dir / "timings.json").exists() else {}
    stages = [("teach", TEACH_SECTIONS, lambda: teach(cfg), run_dir / "teacher" / "summary.json"),
              ("curate", CURATE_SECTIONS, lambda: curate_stage(cfg), run_dir / "curate" / "summary.json")]
    for name, sections, stage, summary_path in stages:
        if is_done(summary_path, cfg, *sections):
            console.print(f"{name}: done already")
            continue
        start = time.perf_counter()
        summary = stage()
        if name == "teach":  # teach() writes its own summary; a complete one is marked with this config
            if summary["stopped_by_budget"]:
                raise UserError("teacher stopped at its budget; everything collected is stored: rerun to go on")
            summary["fingerprint"] = fingerprint(cfg, *sections)
            write_json(summary, summary_path)
        timings[name] = round(time.perf_counter() - start, 2)
        write_json(timings, run_dir / "timings.json")
    for name, stage in (("train", lambda: train_stage(cfg)), ("evaluate", lambda: evaluate_stage(cfg))):
        start = time.perf_counter()
        stage()
        timings[name] = round(time.perf_counter() - start, 2)
        write_json(timings, run_dir / "timings.json")
    return report(run_dir)
