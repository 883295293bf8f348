"""evaluate: test accuracy of the teacher (from its records), the prompting baselines on the base student and each
trained student, through the configured engine (with self-consistency and the calculator where configured)."""

from __future__ import annotations

from ftcot.artifacts import Metrics, TrainSummary, parse_summary, read_summary
from ftcot.errors import UserError
from ftcot.export import model_card
from ftcot.files import hold_folder, write_jsonl
from ftcot.judge import solved
from ftcot.log import log
from ftcot.methods import METHODS, TEACHER, TRAINED
from ftcot.pipeline import RunContext, finish, is_done
from ftcot.stages.generation import eval_batch_size, generation_budget
from ftcot.tasks import Sample
from ftcot.tasks.answers import accuracy
from ftcot.tasks.prompts import few_shot_cot, load_few_shot_prompts
from ftcot.teachers.records import read_records


def _teacher_metrics(ctx: RunContext, test: list[Sample]) -> Metrics | None:
    """The teacher's own accuracy on the test questions it was run on (its first completion of each)."""
    ids = {s.sample_index for s in test}
    records = [r for r in read_records(ctx.run.completions) if r.sample_index in ids and r.completion_index == 0]
    if not records:
        return None  # the teacher was not run on the test questions
    return Metrics(
        task=ctx.task.key,
        method=TEACHER,
        model=records[0].model,
        **accuracy([solved(ctx.task.answer_format, r.answer_completion, r.answer) for r in records]),
    )


def run(ctx: RunContext, methods: list[str] | None = None) -> dict[str, Metrics]:
    """Accuracy on the test split: the teacher (from its records), the prompting baselines on the base student,
    and each fine-tuned student. Writes eval/<method>/{predictions.jsonl,metrics.json}."""
    from ftcot.engines import check_engine, open_engine  # deferred, like the students
    from ftcot.evaluate import evaluate, self_consistency
    from ftcot.students.load import load_tokenizer

    e = ctx.cfg.evaluate
    wanted = list(dict.fromkeys(methods or [TEACHER, *e.baselines, *ctx.cfg.train.methods]))  # each once
    if not methods and e.engine == "openai":  # a server serves the methods evaluate.models names
        for method in (m for m in wanted if m != TEACHER and m not in e.models):
            log.info(f"evaluate {method}: skipped, evaluate.models names no served model for it")
        wanted = [m for m in wanted if m == TEACHER or m in e.models]
    prompts_file = ctx.data / "few_shot_cot_prompts.json"
    few_shot = load_few_shot_prompts(ctx.data) if prompts_file.is_file() else {}
    if not methods:  # the configured baselines: one that needs a few-shot prompt the task lacks is left out
        lacking = [
            m for m in wanted if m in METHODS and METHODS[m].few_shot and ctx.task.decl.few_shot_prompt not in few_shot
        ]
        for method in lacking:
            log.info(f"evaluate {method}: skipped, task {ctx.task.key} has no few-shot-CoT prompt")
        wanted = [m for m in wanted if m not in lacking]
    known = (TEACHER, *METHODS)
    unknown = [m for m in wanted if m not in known]
    if unknown:
        raise UserError(f"unknown method {unknown[0]!r}; methods: {', '.join(known)}")
    # Checks that need no model come before any model is loaded (or, on a new machine, converted).
    done = {m for m in wanted if is_done(ctx, "evaluate", m)}  # asked once: --verbose says why once
    todo = [m for m in wanted if m != TEACHER and m not in done]
    if e.engine != "openai":  # a server may serve a student from elsewhere
        for method in (m for m in todo if m in TRAINED):
            if not ctx.run.best(method).is_dir():
                raise UserError(f"no trained {method} student in {ctx.run.best(method)}: run `ftcot train` first")
            # its summary (the model card's): one an earlier ftcot made is one line here, before any model loads
            read_summary(ctx.run.summary("train", method), TrainSummary)
    for method in todo:
        if METHODS[method].few_shot:  # asked for by name (the configured ones were left out above)
            try:
                few_shot_cot("", ctx.task.decl.few_shot_prompt, few_shot)
            except UserError as exc:
                raise UserError(f"evaluate {method} on task {ctx.task.key}: {exc}") from None
        check_engine(ctx.cfg, method)
    hold_folder(ctx.run.eval)
    test = ctx.task.split_samples("test", ctx.cfg.split)[: ctx.cfg.evaluate.max_questions]
    results = {}
    base = None  # the base student's engine, shared by the baselines
    budget = None
    for method in wanted:
        if method in done:
            results[method] = parse_summary(ctx.run.summary("evaluate", method), Metrics)
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
                predictions, greedy = evaluate(
                    ctx.task, engine, test, method, budget, few_shot, choice_by_content=e.choice_by_content
                )
                metrics = Metrics.of(greedy, model=ctx.cfg.student.model, parameters=engine.parameters, engine=e.engine)
                if sc:
                    votes, metrics.self_consistency = self_consistency(
                        ctx.task, engine, test, method, budget, sc.k, sc.temperature, sc.seed, few_shot
                    )
                if calculator:
                    counted, metrics.calculator = evaluate(
                        ctx.task, engine, test, method, budget, few_shot, calculator=True
                    )
                if calculator and sc:
                    counted_votes, metrics.calculator.self_consistency = self_consistency(
                        ctx.task, engine, test, method, budget, sc.k, sc.temperature, sc.seed, few_shot, True
                    )
            finally:
                if engine is not base:
                    engine.close()
            written = {
                ctx.run.votes(method): sc and votes,
                ctx.run.calculated(method): calculator and [p.dump() for p in counted],
                ctx.run.calculated_votes(method): calculator and sc and counted_votes,
            }
            for path, rows in written.items():
                if rows:
                    write_jsonl(rows, path)
                else:
                    path.unlink(missing_ok=True)  # of an earlier config
            if sc:
                v = metrics.self_consistency
                log.info(
                    f"evaluate {method}: self-consistency k={sc.k}: {v.accuracy}% (greedy "
                    f"{metrics.accuracy}%), samples agree with the vote {v.agreement}%, "
                    f"{v.questions_per_s} questions/s",
                )
            if calculator:
                c = metrics.calculator
                own = c.calls.own_wrong_pct
                own = f", the student's own number wrong at {own}% of them" if own is not None else ""
                voted = f"; self-consistency k={sc.k}: {c.self_consistency.accuracy}%" if sc else ""
                log.info(
                    f"evaluate {method} + calculator: {c.accuracy}% ({c.correct}/{c.n}, 95% CI "
                    f"{c.ci95[0]}-{c.ci95[1]}; without it {metrics.accuracy}%), "
                    f"{c.calls.per_output} calls per output{own}{voted}",
                )
        write_jsonl([p.dump() for p in predictions], ctx.run.predictions(method))
        metrics = finish(ctx, "evaluate", metrics, method)
        if method in TRAINED:
            model_card(ctx.run, method)  # now with its test accuracy
        d, why = metrics.diagnostics, ""
        if d:
            cut = f"{d.no_answer_marker}% without '{d.marker}', " if d.marker else ""
            why = (
                f"; {cut}{d.unparsed}% unparsed, most frequent answer {d.most_frequent_prediction!r} "
                f"({d.most_frequent_share}%)"
            )
        by_content = metrics.choice_by_content
        if by_content:
            why += f"; by the option its rationale names: {by_content.accuracy}%"
        log.info(
            f"evaluate {method}: {metrics.accuracy}% ({metrics.correct}/{metrics.n}, "
            f"95% CI {metrics.ci95[0]}-{metrics.ci95[1]}){why}",
        )
        results[method] = metrics
    if base is not None:
        base.close()
    return results
