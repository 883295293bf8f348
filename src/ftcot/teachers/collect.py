"""Zero-shot-CoT collection: step 1 samples D rationales per question, step 2 extracts each one's answer;
with `adaptive`, a train question short of correct rationales gets further rounds, and with `rationalize`,
one that none solved is asked once more with its answer as a hint.

Every completion goes through the persistent store first, so a rerun (or a resume after a kill) sends
requests only for what is missing; spending is tracked against an optional budget.
"""

from __future__ import annotations

import asyncio
import json
import math
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING

import openai
from rich.progress import BarColumn, MofNCompleteColumn, Progress, ProgressColumn, TextColumn, TimeElapsedColumn
from rich.text import Text

from ftcot.config import Sampling, TeacherConfig
from ftcot.errors import UserError
from ftcot.judge import solved
from ftcot.log import console, show_progress
from ftcot.tasks import Sample
from ftcot.tasks.answers import AnswerFormat
from ftcot.tasks.prompts import rationalize_step1, zero_shot_cot_step1, zero_shot_cot_step2
from ftcot.teachers.batch import prefill
from ftcot.teachers.cost import BudgetReached, Spending, cost_of
from ftcot.teachers.openai_api import MalformedResponse
from ftcot.teachers.records import TeacherCompletion
from ftcot.teachers.store import CompletionStore, Generation, completion_key, rationale_of

if TYPE_CHECKING:
    from ftcot.teachers import Teacher


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
    def __init__(
        self,
        teacher: Teacher,
        store: CompletionStore,
        cfg: TeacherConfig,
        trigger: str,
        spending: Spending,
        grown: frozenset[int] = frozenset(),
        fmt: AnswerFormat | None = None,
    ):
        self.teacher = teacher
        self.grown = grown  # sample indices that adaptive rounds and rationalization apply to (train questions)
        self.fmt = fmt  # the task's answer format, in which their answers are judged
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

        def budget() -> None:
            self._show()
            if self.spending.exhausted:
                self.spending.stopped = True
                raise BudgetReached

        def arrived(k: int, generation: Generation) -> None:
            if not self.teacher.through_ledger:  # else charged as each request returned
                self.spending.add(generation.prompt_tokens, generation.completion_tokens)
            self.in_flight.pop(completion_key(identity, prompt, params, k)).set_result(generation)
            done_ks.add(k)

        try:
            await self.store.ask_missing(
                identity, prompt, params, missing, self.teacher.sample, self.cfg.n_per_request, budget, arrived
            )
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
        """The records of one question: num_samples of them; for a train question under `adaptive`, further
        rounds while it lacks correct ones; under `rationalize`, one more with the answer as a hint if none was
        correct."""
        cfg, records = self.cfg, []
        grows = sample.sample_index in self.grown
        correct = lambda: sum(solved(self.fmt, r.answer_completion, sample.answer) for r in records)  # noqa: E731
        try:
            # At most `concurrency` questions at once: a started question's step 2 goes before new step-1
            # requests, so money buys finished records, not a pile of rationales without answers.
            async with self.questions:
                step1 = zero_shot_cot_step1(sample.question)
                records = await self.round(sample, step1, range(cfg.num_samples))
                while (
                    cfg.adaptive
                    and grows
                    and (short := cfg.adaptive.want_correct - correct()) > 0
                    and len(records) < cfg.adaptive.max_samples
                ):
                    more = range(len(records), min(len(records) + short, cfg.adaptive.max_samples))
                    self._grow(len(more))
                    records += await self.round(sample, step1, more)
                if cfg.rationalize and grows and not correct():
                    self._grow(1)
                    hinted = await self.round(
                        sample,
                        rationalize_step1(sample.question, sample.answer),
                        range(len(records), len(records) + 1),
                        answer_from=step1,
                    )
                    records += [r.model_copy(update={"rationalized": True}) for r in hinted]
        except BudgetReached:
            return []
        if self.progress is not None:
            self.progress.advance(self.progress_task, len(records))
        return records

    async def round(
        self, sample: Sample, step1: str, ks: range, answer_from: str | None = None
    ) -> list[TeacherCompletion]:
        """Completions ks of step 1, then each one's step 2 (after `answer_from`, default step 1: a hinted
        rationale's answer is read without the hint in view), as records."""
        rationales = await self.sample_ks(step1, ks, self.rationale_params)
        texts = [rationale_of(r, self.cfg) for r in rationales]
        step2s = [zero_shot_cot_step2(answer_from or step1, text, self.trigger) for text in texts]
        answers = await asyncio.gather(
            *(self.sample_ks(p, range(k, k + 1), self.answer_params) for k, p in zip(ks, step2s))
        )
        return [
            TeacherCompletion(
                task=sample.task,
                sample_index=sample.sample_index,
                completion_index=k,
                question=sample.question,
                answer=sample.answer,
                reasoning_prompt=step1,
                reasoning_completion=text,
                reasoning_finish_reason=rationale.finish_reason,
                step1_reasoning=rationale.reasoning,
                answer_prompt=step2,
                answer_completion=answer.text,
                answer_finish_reason=answer.finish_reason,
                model=self.teacher.model,
                params={"rationale": self.rationale_params, "answer": self.answer_params},
                usage={
                    "prompt_tokens": (rationale.prompt_tokens or 0) + (answer.prompt_tokens or 0),
                    "completion_tokens": (rationale.completion_tokens or 0) + (answer.completion_tokens or 0),
                },
                latency_s=(rationale.latency_s or 0) + (answer.latency_s or 0),
            )
            for k, rationale, text, step2, (answer,) in zip(ks, rationales, texts, step2s, answers)
        ]

    def _grow(self, completions: int) -> None:
        """A further round: the progress bar's total grows by what it will collect."""
        if self.progress is not None:
            task = next(t for t in self.progress.tasks if t.id == self.progress_task)
            self.progress.update(self.progress_task, total=task.total + completions)

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
            await self.teacher.aclose()  # inside the loop that owns its connections
        return [r for task in tasks for r in task.result()]


class RateColumn(ProgressColumn):
    """Completions a second since the start (rich's own speed divides by the last moments' spread, which a batch
    that lands at once makes ~0)."""

    def render(self, task) -> Text:
        return Text(f"{task.completed / task.elapsed if task.elapsed else 0:.1f}/s")


def progress_bar() -> Progress:
    return Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        RateColumn(),
        TextColumn("{task.fields[tokens]:,} tok"),
        TextColumn("${task.fields[cost]:.4f}"),
        TimeElapsedColumn(),
        console=console,
        disable=not show_progress(),
    )


def collect(
    teacher: Teacher,
    store: CompletionStore,
    cfg: TeacherConfig,
    trigger: str,
    samples: list[Sample],
    spending: Spending,
    grown: frozenset[int] = frozenset(),
    fmt: AnswerFormat | None = None,
) -> Outcome:
    """Run the collection to the end (or to the budget) and return the complete records."""
    collector = Collector(teacher, store, cfg, trigger, spending, grown, fmt)
    if teacher.through_ledger:  # each request through the ledger (priced or not: tokens are recorded)
        teacher.spending = spending
    expected = len(samples) * cfg.num_samples  # the first round's; further rounds add to it as they start
    start = time.perf_counter()
    with progress_bar() as progress:
        collector.progress = progress
        collector.progress_task = progress.add_task("teacher", total=expected, tokens=0, cost=0.0)
        try:
            records = asyncio.run(collector.run(samples))
        except (openai.APIError, MalformedResponse, json.JSONDecodeError) as exc:  # retries exhausted
            # The SDK reports a refused connection as a timeout; its cause says what happened.
            why = exc.__cause__ if isinstance(exc, openai.APIConnectionError) and exc.__cause__ else exc
            raise UserError(
                f"teacher {teacher.identity} failed after {teacher.max_attempts} attempts: {type(why).__name__}: {why}"
            ) from None
        # Rounds started after the first grew the bar's total: what this run set out to collect.
        expected = int(next(t for t in progress.tasks if t.id == collector.progress_task).total)
    return Outcome(records, expected, spending.stopped, spending, teacher.requests, time.perf_counter() - start)


@dataclass
class Plan:
    requests: float
    prompt_tokens: float
    completion_tokens: float
    cost: float
    solve_rate: float | None = None  # adaptive runs: the per-sample solve rate the expected case assumes


def _rounds(cfg: TeacherConfig, n: int, c: int, p: float | None, memo: dict) -> tuple[float, float, float]:
    """(samples, step-1 requests, chance of ending with no correct sample) still to come for a question with n
    samples drawn and c correct, as Collector.one draws them: the first round completes num_samples, each later
    one asks for the shortfall of correct ones (adaptive) up to max_samples. Expected values when each sample
    is correct with probability p; with p None, the most each can be over every outcome (an upper bound:
    more rounds come from early successes, more samples from failures)."""
    a = cfg.adaptive
    if (n, c) in memo:
        return memo[(n, c)]
    if n >= cfg.num_samples and (a is None or c >= a.want_correct or n >= a.max_samples):
        return 0.0, 0.0, float(c == 0)
    r = cfg.num_samples - n if n < cfg.num_samples else min(a.want_correct - c, a.max_samples - n)
    outcomes = [_rounds(cfg, n + r, c + j, p, memo) for j in range(r + 1)]
    if p is None:
        later = [max(o[i] for o in outcomes) for i in range(3)]
    else:
        chances = [math.comb(r, j) * p**j * (1 - p) ** (r - j) for j in range(r + 1)]
        later = [sum(chance * o[i] for chance, o in zip(chances, outcomes)) for i in range(3)]
    memo[(n, c)] = r + later[0], (1 if cfg.n_per_request else r) + later[1], later[2]
    return memo[(n, c)]


def plan(
    store: CompletionStore,
    identity: str,
    cfg: TeacherConfig,
    trigger: str,
    samples: list[Sample],
    price,
    grown: frozenset[int] = frozenset(),
    fmt: AnswerFormat | None = None,
) -> list[Plan]:
    """What a run would still request: [the worst case] or, for adaptive runs whose first round is (partly)
    stored, [worst case, expected case at the first round's solve rate]. Token counts are estimates: ~4
    characters a prompt token, and every completion at its max_tokens (an upper bound)."""
    rationale_params, answer_params = request_params(cfg.rationale), request_params(cfg.answer)
    step2_extra = cfg.rationale.max_tokens + len(trigger) // 4 + 2  # a step-2 prompt beyond its step 1
    fixed = [0, 0, 0]  # requests, prompt tokens, completion tokens of the questions asked num_samples times
    states = []  # (step-1 prompt tokens, n drawn, c correct, hint stored) of the questions that may grow
    first_round = [0, 0]  # correct, drawn among the stored first-round samples of those questions
    for sample in samples:
        step1 = zero_shot_cot_step1(sample.question)
        drawn_at_most = samples_per(cfg) - cfg.rationalize  # the hint, if any, comes after these
        stored = [store.get(identity, step1, rationale_params, k) for k in range(drawn_at_most)]
        answers = [
            store.get(identity, zero_shot_cot_step2(step1, rationale_of(g, cfg), trigger), answer_params, k)
            if g is not None
            else None
            for k, g in enumerate(stored)
        ]
        if sample.sample_index in grown:
            n = next((k for k, a in enumerate(answers) if a is None), len(answers))
            right = [solved(fmt, a.text, sample.answer) for a in answers[:n]]
            first_round[0] += sum(right[: cfg.num_samples])
            first_round[1] += len(right[: cfg.num_samples])
            hint = rationalize_step1(sample.question, sample.answer)
            hinted = store.get(identity, hint, rationale_params, drawn_at_most)  # a question none solved drew all
            hint_stored = (
                hinted is not None
                and store.get(
                    identity,
                    zero_shot_cot_step2(step1, rationale_of(hinted, cfg), trigger),
                    answer_params,
                    drawn_at_most,
                )
                is not None
            )
            states.append((len(step1) // 4 + 1, n, sum(right), hint_stored))
            continue
        missing = sum(g is None for g in stored[: cfg.num_samples])
        if missing:
            calls = 1 if cfg.n_per_request else missing
            fixed[0] += calls
            fixed[1] += calls * (len(step1) // 4 + 1)
            fixed[2] += missing * cfg.rationale.max_tokens
        for rationale, answer in zip(stored[: cfg.num_samples], answers):
            if answer is None:
                fixed[0] += 1
                fixed[1] += (
                    len(step1) // 4 + step2_extra
                    if rationale is None
                    else len(zero_shot_cot_step2(step1, rationale_of(rationale, cfg), trigger)) // 4 + 1
                )
                fixed[2] += cfg.answer.max_tokens
    rates: list[float | None] = [None]  # the worst case
    if first_round[1]:
        rates.append(first_round[0] / first_round[1])
    plans = []
    for p in rates:
        requests, prompt_tokens, completion_tokens = fixed
        memo: dict = {}
        for step1_tokens, n, c, hint_stored in states:
            drawn, calls, unsolved = _rounds(cfg, n, c, p, memo)
            hinted = unsolved if cfg.rationalize and not hint_stored else 0.0
            requests += calls + drawn + 2 * hinted
            prompt_tokens += (
                calls * step1_tokens + hinted * (step1_tokens + 12) + (drawn + hinted) * (step1_tokens + step2_extra)
            )
            completion_tokens += (drawn + hinted) * (cfg.rationale.max_tokens + cfg.answer.max_tokens)
        plans.append(
            Plan(requests, prompt_tokens, completion_tokens, cost_of(price, prompt_tokens, completion_tokens), p)
        )
    return plans if cfg.adaptive else plans[:1]


def show_plans(
    plans: list[Plan],
    cfg: TeacherConfig,
    questions: int,
    price,
    before: float,
    budget: float | None,
    holds: str | None = None,
) -> dict:
    """`teach --dry-run`: what the folder has spent, its cap, what of it is held by requests whose answers have
    not come (`holds`), and what is left to ask in the worst (and, for adaptive runs, the expected) case; the last
    case's numbers, with the worst case's beside."""
    cap = f" of the cap ${budget:g} ({max(budget - before, 0.0):.4f} left)" if budget is not None else ""
    console.print(f"dry run: this run folder has spent ${before:.4f}{cap}", markup=False)
    if holds:
        console.print(f"dry run: of what it has spent, {holds}", markup=False)
    note = "" if price else f" (no price known for {cfg.model}: set teacher.prices)"
    for p, case in zip(plans, ("worst case" if cfg.adaptive or cfg.rationalize else "", "expected")):
        rate = (
            f" at a solve rate of {p.solve_rate:.2f} a sample (the stored first round's)" if case == "expected" else ""
        )
        console.print(
            f"dry run{f' ({case})' if case else ''}: {questions} questions x D={cfg.num_samples}{rate}: "
            f"{p.requests:,.0f} requests, ~{p.prompt_tokens:,.0f} prompt tokens, <= "
            f"{p.completion_tokens:,.0f} completion tokens, <= ${p.cost:.4f}{note}",
            markup=False,
        )
    if cfg.adaptive and len(plans) == 1:
        console.print("dry run (expected): known once the first round is stored (its solve rate)")
    p = plans[-1]
    return {
        "requests": p.requests,
        "prompt_tokens": p.prompt_tokens,
        "completion_tokens": p.completion_tokens,
        "cost_usd": p.cost,
        "worst_case_requests": plans[0].requests,
        "worst_case_cost_usd": plans[0].cost,
    }


def samples_per(cfg: TeacherConfig) -> int:
    """The most completions a question can have: D, or adaptive's cap, plus a rationalization."""
    return max(cfg.num_samples, cfg.adaptive.max_samples if cfg.adaptive else 0) + cfg.rationalize
