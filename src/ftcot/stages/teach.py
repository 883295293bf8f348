"""teach: zero-shot-CoT completions of the configured questions from the teacher (live, recorded or a rationale
table) into teacher/completions.jsonl, each paid request stored as it arrives and counted against the budget."""

from __future__ import annotations

import time
from dataclasses import asdict

from ftcot.artifacts import SettledHolds, TeachSummary
from ftcot.errors import BudgetStop, UserError
from ftcot.files import folder_holder, hold_folder
from ftcot.log import console, log
from ftcot.pipeline import RunContext, finish
from ftcot.tasks import Sample
from ftcot.teachers import check_teacher, make_live_teacher, make_recorded_teacher, teacher_identity
from ftcot.teachers.collect import collect, plan, show_plans
from ftcot.teachers.cost import Holds, Spending, cost_of, dead_holds, price_of
from ftcot.teachers.records import write_records
from ftcot.teachers.store import CompletionStore


def teach_samples(ctx: RunContext) -> list[Sample]:
    samples = []
    for side in ctx.cfg.teacher.teach_on:
        part = ctx.task.split_samples(side, ctx.cfg.split)
        samples.extend(part[: ctx.cfg.teacher.max_questions] if ctx.cfg.teacher.max_questions else part)
    return samples


def grown_questions(ctx: RunContext) -> frozenset[int]:
    """The questions adaptive rounds and rationalization apply to: the train split's (they need its gold)."""
    if not (ctx.cfg.teacher.adaptive or ctx.cfg.teacher.rationalize):
        return frozenset()
    return frozenset(s.sample_index for s in ctx.task.split_samples("train", ctx.cfg.split))


def run(
    ctx: RunContext, dry_run: bool = False, max_cost: float | None = None, settle_holds: bool = False
) -> TeachSummary | dict:
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
                    f"unmatched, {s['ambiguous_rows']} ambiguous, {s['test_rows_refused']} test questions refused, "
                    f"{s['rows_without_rationales']} without rationales)"
                    for s in tables
                )
                + ("; a rationale table's test questions are never taken (teach_on: [train])" if refused else "")
            ) from None
        for source in tables:
            log.info(
                f"teach: {source['teacher']} from {source['source']}: {source['rationales']} rationales "
                f"for {source['questions']} train questions from {source['rows']} rows ("
                f"{source['matched_exact']} matched exactly, {source['matched_whitespace']} with whitespace "
                f"normalised; left out: {source['unmatched_rows']} unmatched, {source['ambiguous_rows']} "
                f"ambiguous, {source['test_rows_refused']} test questions, {source['rows_without_rationales']} without "
                f"rationales); answers: "
                f"{source['answers_from_source']} given, {source['answers_from_flag']} flagged, "
                f"{source['answers_from_rationale']} read from the rationale ({source['answers_none']} "
                "without one)"
            )
        if dry_run:
            console.print(f"dry run: recorded teacher, {len(samples)} questions, 0 requests, $0")
            return {"requests": 0}
        hold_folder(out)
        summary = dict(
            teacher=teacher.identity,
            questions=len(samples),
            expected=len(samples) * tcfg.num_samples,
            collected=len(records),
            questions_without_record=len(missing),
            requests=0,
            prompt_tokens=0,
            completion_tokens=0,
            cost_usd=0.0,
            stopped_by_budget=False,
            sources=sources,
        )
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
                    before -= settled.may_exceed_usd
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
                return show_plans(plans, tcfg, len(samples), price, before, budget, note) | {
                    "dead_holds": asdict(holds) if holds else None
                }
            spending = Spending(price, budget, before, store)
            outcome = collect(
                live, store, tcfg, trigger, samples, spending, grown_questions(ctx), ctx.task.answer_format
            )
        finally:
            store.close()
        records = outcome.records
        summary = dict(
            teacher=f"{tcfg.backend}:{tcfg.model}",
            questions=len(samples),
            expected=outcome.expected,
            collected=len(records),
            questions_without_record=0,
            requests=outcome.requests,
            prompt_tokens=spending.prompt_tokens,
            completion_tokens=spending.completion_tokens,
            cost_usd=round(spending.cost, 6),
            unconfirmed_usd=round(spending.unconfirmed, 6),
            folder_spent_usd=round(before + spending.cost, 6),
            budget_usd=budget,
            stopped_by_budget=outcome.stopped_by_budget,
            rounds=bool(tcfg.adaptive or tcfg.rationalize),
            # holds a killed run left, at their worst case (unless settled by this run)
            dead_holds=holds if holds and not settled else None,
            settled_holds=settled,
        )
    write_records(records, ctx.run.completions)
    return finish(ctx, "teach", TeachSummary(**summary, wall_s=round(time.perf_counter() - start, 3)))


def _settle(store: CompletionStore, holds: Holds | None, dry_run: bool) -> SettledHolds | None:
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
    log.warning(
        f"{'dry run: --settle-holds would count' if dry_run else 'settled (--settle-holds):'} "
        f"{holds.requests} request(s) a killed run left in flight (held since "
        f"{time.strftime('%Y-%m-%d %H:%M:%S', time.localtime(holds.since))}) at the mean of the {arrived} "
        f"answered, {mean[0]} prompt + {mean[1]} completion tokens each: ${holds.settle_usd:.4f} instead of "
        f"${holds.held_usd:.4f}; what the provider billed for them is unknown, so the cap could be exceeded "
        f"by at most ${exceed:.4f}"
    )
    return SettledHolds(
        requests=holds.requests,
        since=holds.since,
        prompt_tokens_each=mean[0],
        completion_tokens_each=mean[1],
        held_usd=holds.held_usd,
        settled_usd=holds.settle_usd,
        may_exceed_usd=exceed,
    )


def budget_stop(summary: TeachSummary) -> BudgetStop:
    more = " (and the rounds that questions short of correct rationales will ask for)" if summary.rounds else ""
    holds = f"; of what it has spent, {summary.dead_holds.describe()}" if summary.dead_holds else ""
    return BudgetStop(
        f"stopped at the budget: this run folder has spent ${summary.folder_spent_usd:.4f} of its "
        f"cap ${summary.budget_usd:g} (${summary.cost_usd:.4f} in this run), "
        f"{summary.expected - summary.collected} of {summary.expected} completions still to "
        f"get{more}; everything collected is stored: raise teacher.max_cost (or --max-cost), which "
        f"bounds the folder's spending in all, to go on{holds}"
    )
