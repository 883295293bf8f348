"""Zero-shot-CoT collection: step 1 samples D rationales per question, step 2 extracts each one's answer.

Every completion goes through the persistent store first, so a rerun (or a resume after a kill) sends
requests only for what is missing; spending is tracked against an optional budget.
"""

from __future__ import annotations

import asyncio
import json
import time
from dataclasses import dataclass

import openai
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, ProgressColumn, TextColumn, TimeElapsedColumn
from rich.text import Text

from ftcot.config import Sampling, TeacherConfig
from ftcot.errors import UserError
from ftcot.tasks import Sample
from ftcot.tasks.prompts import zero_shot_cot_step1, zero_shot_cot_step2
from ftcot.teachers.batch import prefill
from ftcot.teachers.cost import BudgetReached, Spending, cost_of
from ftcot.teachers.openai_api import MalformedResponse
from ftcot.teachers.records import TeacherCompletion
from ftcot.teachers.store import CompletionStore, Generation, completion_key, rationale_of


def request_params(sampling: Sampling) -> dict:
    """The parameters sent with a request, which are also part of each completion's store key."""
    return sampling.model_dump(exclude_none=True)


@dataclass
class Outcome:
    records: list[TeacherCompletion]
    expected: int
    stopped_by_budget: bool
    spending: Spending
    requests: int
    wall_s: float


class Collector:
    def __init__(self, teacher, store: CompletionStore, cfg: TeacherConfig, trigger: str, spending: Spending):
        self.teacher = teacher
        self.store = store
        self.cfg = cfg
        self.trigger = trigger
        self.spending = spending
        self.rationale_params = request_params(cfg.rationale)
        self.answer_params = request_params(cfg.answer)
        self.progress: Progress | None = None
        self.progress_task = None
        self.in_flight: dict[str, asyncio.Future] = {}  # store key -> the completion a running request will give

    def missing(self, prompt: str, ks: range, params: dict) -> list[int]:
        return [k for k in ks if self.store.get(self.teacher.identity, prompt, params, k) is None]

    async def sample_ks(self, prompt: str, ks: range, params: dict) -> list[Generation]:
        """Completions k in ks of prompt, from the store, from a request already in flight for the same key (a
        question that appears twice is paid once), or from the teacher (then stored at once). What is returned
        is always what the store holds."""
        identity = self.teacher.identity
        got: dict[int, Generation | asyncio.Future] = {}
        missing = []
        for k in ks:
            key = completion_key(identity, prompt, params, k)
            got[k] = self.store.get(identity, prompt, params, k) or self.in_flight.get(key)
            if got[k] is None:
                got[k] = self.in_flight[key] = asyncio.get_running_loop().create_future()
                missing.append(k)
        done_ks: set[int] = set()
        try:
            while missing:
                if self.spending.exhausted:
                    self.spending.stopped = True
                    raise BudgetReached
                sent = dict(params)
                if "seed" in sent and missing[0] > 0:
                    sent["seed"] += missing[0]  # a server that ignores n must not repeat sample 0 for sample k
                n = len(missing) if self.cfg.n_per_request else 1
                generations = await self.teacher.sample(prompt, n, sent)
                for k, generation in zip(missing, generations):
                    if getattr(self.teacher, "spending", None) is None:  # else charged as each request returned
                        self.spending.add(generation.prompt_tokens, generation.completion_tokens)
                    if not self.store.put(identity, prompt, params, k, generation):
                        generation = self.store.get(identity, prompt, params, k)  # the first one stored wins
                    self.in_flight.pop(completion_key(identity, prompt, params, k)).set_result(generation)
                    done_ks.add(k)
                missing = missing[len(generations):]
                self._show()
        except BaseException as exc:
            for k in (k for k in missing if k not in done_ks):  # whoever shares these learns why they will not come
                future = self.in_flight.pop(completion_key(identity, prompt, params, k))
                if isinstance(exc, asyncio.CancelledError):
                    future.cancel()
                else:
                    future.set_exception(exc)
                    future.exception()  # retrieved: this task raises it itself, sharers (if any) get it too
            raise
        return [await g if isinstance(g, asyncio.Future) else g for g in (got[k] for k in ks)]

    async def one(self, sample: Sample) -> list[TeacherCompletion]:
        step1 = zero_shot_cot_step1(sample.question)
        try:
            # At most `concurrency` questions at once: a started question's step 2 goes before new step-1
            # requests, so money buys finished records, not a pile of rationales without answers.
            async with self.questions:
                rationales = await self.sample_ks(step1, range(self.cfg.num_samples), self.rationale_params)
                texts = [rationale_of(r, self.cfg) for r in rationales]
                step2s = [zero_shot_cot_step2(step1, text, self.trigger) for text in texts]
                answers = await asyncio.gather(*(self.sample_ks(p, range(k, k + 1), self.answer_params)
                                                 for k, p in enumerate(step2s)))
        except BudgetReached:
            return []
        records = []
        for k, (rationale, text, step2, (answer,)) in enumerate(zip(rationales, texts, step2s, answers)):
            records.append(TeacherCompletion(
                task=sample.task, sample_index=sample.sample_index, completion_index=k, question=sample.question,
                answer=sample.answer, reasoning_prompt=step1, reasoning_completion=text,
                reasoning_finish_reason=rationale.finish_reason, step1_reasoning=rationale.reasoning, answer_prompt=step2,
                answer_completion=answer.text, answer_finish_reason=answer.finish_reason,
                model=self.teacher.model,
                params={"rationale": self.rationale_params, "answer": self.answer_params},
                usage={"prompt_tokens": (rationale.prompt_tokens or 0) + (answer.prompt_tokens or 0),
                       "completion_tokens": (rationale.completion_tokens or 0) + (answer.completion_tokens or 0)},
                latency_s=(rationale.latency_s or 0) + (answer.latency_s or 0)))
        if self.progress is not None:
            self.progress.advance(self.progress_task, len(records))
        return records

    def _show(self) -> None:
        if self.progress is not None:
            tokens = self.spending.prompt_tokens + self.spending.completion_tokens
            self.progress.update(self.progress_task, tokens=tokens, cost=self.spending.cost)

    async def run(self, samples: list[Sample]) -> list[TeacherCompletion]:
        self.questions = asyncio.Semaphore(self.cfg.concurrency)
        tasks = []
        try:
            if self.cfg.batch:
                await prefill(self, samples)
            tasks = [asyncio.ensure_future(self.one(s)) for s in samples]
            await asyncio.gather(*tasks)
        except BaseException:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            raise
        finally:
            if hasattr(self.teacher, "aclose"):
                await self.teacher.aclose()  # inside the loop that owns its connections
        return [r for task in tasks for r in task.result()]


class RateColumn(ProgressColumn):
    def render(self, task) -> Text:
        return Text(f"{task.speed or 0:.1f}/s")


def progress_bar(console: Console) -> Progress:
    return Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), RateColumn(), TextColumn("{task.fields[tokens]:,} tok"),
                    TextColumn("${task.fields[cost]:.4f}"), TimeElapsedColumn(), console=console)


def collect(teacher, store: CompletionStore, cfg: TeacherConfig, trigger: str, samples: list[Sample],
            spending: Spending, console: Console | None = None) -> Outcome:
    """Run the collection to the end (or to the budget) and return the complete records."""
    collector = Collector(teacher, store, cfg, trigger, spending)
    if hasattr(teacher, "spending") and spending.max_cost is not None and spending.price is not None:
        teacher.spending = spending
    console = console or Console(stderr=True)
    expected = len(samples) * cfg.num_samples
    start = time.perf_counter()
    with progress_bar(console) as progress:
        collector.progress = progress
        collector.progress_task = progress.add_task("teacher", total=expected, tokens=0, cost=0.0)
        try:
            records = asyncio.run(collector.run(samples))
        except (openai.APIError, MalformedResponse, json.JSONDecodeError) as exc:  # retries exhausted
            # The SDK reports a refused connection as a timeout; its cause says what happened.
            why = exc.__cause__ if isinstance(exc, openai.APIConnectionError) and exc.__cause__ else exc
            raise UserError(f"teacher {teacher.identity} failed after {teacher.max_attempts} attempts: "
                            f"{type(why).__name__}: {why}") from None
    return Outcome(records, expected, spending.stopped, spending, getattr(teacher, "requests", 0),
                   time.perf_counter() - start)


@dataclass
class Plan:
    requests: int
    prompt_tokens: int
    completion_tokens: int
    cost: float


def plan(store: CompletionStore, identity: str, cfg: TeacherConfig, trigger: str, samples: list[Sample],
         price) -> Plan:
    """What a run would still request. Token counts are estimates: ~4 characters a prompt token, and every
    completion at its max_tokens (an upper bound)."""
    rationale_params, answer_params = request_params(cfg.rationale), request_params(cfg.answer)
    requests = prompt_tokens = completion_tokens = 0
    for sample in samples:
        step1 = zero_shot_cot_step1(sample.question)
        stored = [store.get(identity, step1, rationale_params, k) for k in range(cfg.num_samples)]
        missing = sum(g is None for g in stored)
        if missing:
            calls = 1 if cfg.n_per_request else missing
            requests += calls
            prompt_tokens += calls * (len(step1) // 4 + 1)
            completion_tokens += missing * cfg.rationale.max_tokens
        for k, rationale in enumerate(stored):
            if rationale is not None:
                step2 = zero_shot_cot_step2(step1, rationale_of(rationale, cfg), trigger)
                if store.get(identity, step2, answer_params, k) is not None:
                    continue
                prompt_tokens += len(step2) // 4 + 1
            else:
                prompt_tokens += len(step1) // 4 + cfg.rationale.max_tokens + len(trigger) // 4 + 2
            requests += 1
            completion_tokens += cfg.answer.max_tokens
    return Plan(requests, prompt_tokens, completion_tokens, cost_of(price, prompt_tokens, completion_tokens))
