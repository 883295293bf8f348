"""The stages of a run and the run folder they share.

run_dir/
  config.yaml               the resolved config
  environment.json          package versions and machine
  teacher/store.sqlite      every live teacher completion, committed as it arrives
  teacher/completions.jsonl the zero-shot-CoT records (TeacherCompletion, one a line)
  teacher/summary.json      counts, requests, tokens, cost, wall time
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

from rich.console import Console

from ftcot.config import RunConfig
from ftcot.data import data_dir
from ftcot.tasks import Sample, get_task, split_samples

console = Console(stderr=True)


def write_json(obj, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".part")
    tmp.write_text(json.dumps(obj, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
    os.replace(tmp, path)


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
        records, missing = teacher.replay(samples, tcfg.num_samples)
        summary = {"teacher": teacher.identity, "questions": len(samples), "expected": len(samples) * tcfg.num_samples,
                   "collected": len(records), "questions_without_record": len(missing), "requests": 0,
                   "prompt_tokens": 0, "completion_tokens": 0, "cost_usd": 0.0, "stopped_by_budget": False}
    else:
        price = price_of(tcfg.model, tcfg.prices)
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
            spending = Spending(price, max_cost if max_cost is not None else tcfg.max_cost)
            outcome = collect(make_live_teacher(tcfg), store, tcfg, trigger, samples, spending, console)
        finally:
            store.close()
        records = outcome.records
        summary = {"teacher": f"{tcfg.backend}:{tcfg.model}", "questions": len(samples), "expected": outcome.expected,
                   "collected": len(records), "questions_without_record": 0, "requests": outcome.requests,
                   "prompt_tokens": spending.prompt_tokens, "completion_tokens": spending.completion_tokens,
                   "cost_usd": round(spending.cost, 6), "stopped_by_budget": outcome.stopped_by_budget}
    summary["wall_s"] = round(time.perf_counter() - start, 3)
    write_records(records, run / "completions.jsonl")
    write_json(summary, run / "summary.json")
    return summary
