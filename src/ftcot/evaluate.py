"""Evaluation: a method's prompts for the test questions through an engine (ftcot.engines), each output read
and judged by the one judge (ftcot.judge) and, where wrong, told why; self-consistency's sampled rationales and
their vote. With the calculator (ftcot.calculator), a reasoning method's outputs are written with every
computable `=` followed by its value, and each output records its calls.
"""

from __future__ import annotations

import time
from collections import Counter

from ftcot import calculator as calc
from ftcot import judge
from ftcot.artifacts import Accuracy, Call, Calls, Diagnostics, Evaluation, Failures, Prediction, SelfConsistency
from ftcot.engines import Engine
from ftcot.errors import UserError
from ftcot.methods import ANSWER_LINE, PromptContext, get_method
from ftcot.tasks import Sample, Task, prompts
from ftcot.tasks.answers import accuracy
from ftcot.tasks.rationales import failure_kind, is_loop, option_by_content

ANSWER_TOKENS = 16  # for outputs that are an answer alone


def evaluate(
    task: Task,
    engine: Engine,
    samples: list[Sample],
    method: str,
    max_new_tokens: int,
    few_shot_prompts: dict | None = None,
    progress=None,
    choice_by_content: bool = False,
    calculator: bool = False,
) -> tuple[list[Prediction], Evaluation]:
    """Predictions (one row per sample, with why it is wrong) and metrics of one method on samples of one
    task; with choice_by_content, each output with its rationale inside is also read by the option it names;
    with calculator, a reasoning method's rationales are written with the calculator."""
    start, tokens = time.perf_counter(), engine.tokens
    m = get_method(method)
    context = PromptContext(engine.kind, task.decl.few_shot_prompt, few_shot_prompts)
    inputs = [m.prompt(s.question, context) for s in samples]
    calls = None
    if calculator and m.reasoning:
        written = [o[0] for o in calc.generate(engine, inputs, max_new_tokens, m.stop, progress=progress)]
        outputs, calls = [w.text for w in written], [w.calls for w in written]
    else:
        outputs = [
            o[0]
            for o in engine.generate(
                inputs, max_new_tokens if m.reasoning else ANSWER_TOKENS, m.stop, progress=progress
            )
        ]
    if m.stop.strings:  # the model's next made-up question is not its answer
        outputs = [m.stop.before_strings(o) for o in outputs]
        calls = calls and [[c for c in cs if c.at < len(o)] for cs, o in zip(calls, outputs)]
    if m.answer_step:  # the rationale, then the task's answer trigger
        inputs = [prompts.zero_shot_cot_step2(p, o.rstrip(), task.answer_trigger) for p, o in zip(inputs, outputs)]
        outputs = [o[0] for o in engine.generate(inputs, ANSWER_TOKENS, ANSWER_LINE)]
    fmt = task.answer_format
    wall = time.perf_counter() - start
    predictions = []
    for s, prompt, output in zip(samples, inputs, outputs):
        parsed = judge.read(fmt, output, m)
        right = fmt.matches(parsed, s.answer)
        row = Prediction(
            sample_index=s.sample_index,
            question=s.question,
            prompt=prompt,
            output=output,
            prediction=parsed,
            answer=s.answer,
            correct=right,
            failure=failure_kind(output, parsed, right, fmt, s.question, s.answer, m.answer_prefix, m.votes),
        )
        if choice_by_content and m.votes:  # the option its rationale names, where it names one by its text
            row.prediction_by_content = option_by_content(output, s.question, m.answer_prefix) or parsed
            row.correct_by_content = fmt.matches(row.prediction_by_content, s.answer)
        if calls is not None:
            row.calculator = [Call(**c.record()) for c in calls[len(predictions)]]
        predictions.append(row)
    metrics = Evaluation(
        task=task.key,
        method=method,
        **accuracy([p.correct for p in predictions]),
        max_new_tokens=max_new_tokens,
        wall_s=round(wall, 2),
        questions_per_s=round(len(samples) / wall, 3),
        tokens_generated=engine.tokens - tokens,
        diagnostics=diagnostics(predictions, m.answer_prefix, fmt),
        failures=Failures(
            kinds=dict(Counter(p.failure for p in predictions if p.failure)),
            loops=sum(is_loop(p.output) for p in predictions),
            n_wrong=sum(not p.correct for p in predictions),
        ),
    )
    if choice_by_content and m.votes and predictions:
        metrics.choice_by_content = Accuracy(**accuracy([p.correct_by_content for p in predictions]))
    if calls is not None:
        metrics.calls = calls_summary([p.calculator for p in predictions])
    return predictions, metrics


def calls_summary(calls: list[list[Call]]) -> Calls:
    """How often the calculator wrote a value (calls per output), and how often the student's own number at
    those `=` was wrong (in percent of the calls where it wrote one)."""
    made = [c for output in calls for c in output]
    own = [c.own_right for c in made if c.own_right is not None]
    return Calls(
        calls=len(made),
        per_output=round(len(made) / max(len(calls), 1), 3),
        outputs_with_calls=sum(bool(output) for output in calls),
        own_wrong=own.count(False),
        own_missing=len(made) - len(own),
        own_wrong_pct=round(100 * own.count(False) / len(own), 2) if own else None,
    )


def self_consistency(
    task: Task,
    engine: Engine,
    samples: list[Sample],
    method: str,
    max_new_tokens: int,
    k: int,
    temperature: float,
    seed: int = 0,
    few_shot_prompts: dict | None = None,
    calculator: bool = False,
) -> tuple[list[dict], SelfConsistency]:
    """Self-consistency (Wang et al., 2023): k sampled rationales per question (with calculator, written with
    it), a vote on their parsed answers (ties go to the answer sampled first); its accuracy, how much the
    samples agree with the vote, and how often any sample was right."""
    m = get_method(method)
    if not m.votes:
        raise UserError(
            f"self-consistency votes on answers in the output itself; {method} has "
            f"{'a second answer step' if m.answer_step else 'no rationale to sample'}"
        )
    start = time.perf_counter()
    context = PromptContext(engine.kind, task.decl.few_shot_prompt, few_shot_prompts)
    inputs = [m.prompt(s.question, context) for s in samples]
    if calculator:
        written = calc.generate(engine, inputs, max_new_tokens, m.stop, k, temperature, seed)
        outputs = [[w.text for w in row] for row in written]
    else:
        outputs = engine.generate(inputs, max_new_tokens, m.stop, k, temperature, seed)
    wall = time.perf_counter() - start
    fmt = task.answer_format
    rows = []
    for n, (s, texts) in enumerate(zip(samples, outputs)):
        parsed = [judge.read(fmt, t, m) for t in texts]
        voted, count = judge.vote(parsed, fmt)
        rows.append(
            {
                "sample_index": s.sample_index,
                "outputs": texts,
                "predictions": parsed,
                "prediction": voted,
                "agreement": count / k,
                "answer": s.answer,
                "correct": fmt.matches(voted, s.answer),
                "any_correct": any(fmt.matches(p, s.answer) for p in parsed),
            }
        )
        if calculator:
            rows[-1]["calculator"] = [[c.record() for c in w.calls] for w in written[n]]
    metrics = SelfConsistency(
        k=k,
        temperature=temperature,
        seed=seed,
        **accuracy([r["correct"] for r in rows]),
        agreement=round(100 * sum(r["agreement"] for r in rows) / len(rows), 2),
        any_correct=round(100 * sum(r["any_correct"] for r in rows) / len(rows), 2),
        wall_s=round(wall, 2),
        questions_per_s=round(len(rows) / wall, 3),
    )
    if calculator:
        metrics.calls = calls_summary([[Call(**c) for c in sample] for r in rows for sample in r["calculator"]])
    return rows, metrics


def diagnostics(predictions: list[Prediction], marker: str | None, fmt) -> Diagnostics:
    """Why answers are wrong, in percent of outputs: no answer marker (the output was cut off, or never
    answered), nothing parseable, and how often the student gives one answer (its most frequent, and the
    questions' majority answer) whatever the question."""
    n = len(predictions) or 1
    share = lambda count: round(100 * count / n, 2)  # noqa: E731
    given = Counter(p.prediction for p in predictions if p.prediction is not None)
    top, top_count = given.most_common(1)[0] if given else (None, 0)
    majority = Counter(p.answer for p in predictions).most_common(1)[0][0] if predictions else None
    return Diagnostics(
        marker=marker,
        no_answer_marker=share(sum(marker not in p.output for p in predictions)) if marker else None,
        unparsed=share(sum(p.prediction is None for p in predictions)),
        most_frequent_prediction=top,
        most_frequent_share=share(top_count),
        majority_answer=majority,
        majority_answer_share=share(sum(fmt.matches(p.prediction, majority) for p in predictions)),
    )
