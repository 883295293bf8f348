"""Adaptive diverse reasoning against a fixed D, on a loopback teacher whose correctness is controlled.

The teacher (ftcot.loopback's ChanceAdder) answers "What is A plus B?" correctly with probability p
per sample. For each p, the same 200 train questions are collected with fixed D=8 and adaptively (first round
1 sample, then one at a time until a correct rationale or 8 samples: `adaptive: {max_samples: 8,
want_correct: 1}`), both through ftcot's own collector and store, side by side in one run. Both give every
question 8 chances at most, so both reach >=1 correct rationale for the same share of questions in
expectation; the table counts what each paid for it. Writes docs/results/adaptive.md.

    .venv/bin/python benchmarks/adaptive.py

`--questions 6 --out FILE` is CI's smoke run (tests/test_benchmarks.py).
"""

from __future__ import annotations

import argparse
import json
import random
import tempfile
from pathlib import Path

from ftcot.config import RunConfig
from ftcot.judge import solved
from ftcot.loopback import ChanceAdder, OpenAIServer
from ftcot.pipeline import context
from ftcot.stages.teach import run as teach

ROOT = Path(__file__).resolve().parents[1]

QUESTIONS = 200  # train questions (--questions)
PRICE = {"input": 0.15, "output": 0.60}  # USD per million tokens (gpt-4o-mini's), for a sense of scale


def write_task(folder: Path, questions: int) -> dict:
    rng = random.Random(11)
    for name, n in (("train", questions), ("test", 1)):
        rows = []
        for _ in range(n):
            a, b = rng.randint(1, 900), rng.randint(1, 900)
            rows.append({"question": f"What is {a} plus {b}?", "answer": str(a + b)})
        (folder / f"{name}.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    return {
        "name": "sums",
        "train": str(folder / "train.jsonl"),
        "test": str(folder / "test.jsonl"),
        "answer_format": "integer",
    }


def collect_once(folder: Path, task: dict, p: float, teacher: dict, questions: int) -> dict:
    server = OpenAIServer(responder=ChanceAdder(p, seed=1)).start()
    try:
        cfg = RunConfig.model_validate(
            {
                "task": task,
                "run_dir": str(folder),
                "data_dir": str(folder),
                "teacher": {
                    "backend": "openai",
                    "model": "adder",
                    "base_url": server.base_url,
                    "api_key_env": None,
                    "rationale": {"temperature": 0.7},
                    "prices": {"adder": PRICE},
                    **teacher,
                },
            }
        )
        ctx = context(cfg)
        summary = teach(ctx)
    finally:
        server.stop()
    fmt = ctx.task.answer_format
    by_question: dict[int, list[bool]] = {}
    for line in (folder / "teacher" / "completions.jsonl").open():
        r = json.loads(line)
        if r["sample_index"] >= questions:
            continue  # the test question a custom task needs (not asked: teach_on is train)
        by_question.setdefault(r["sample_index"], []).append(solved(fmt, r["answer_completion"], r["answer"]))
    return {
        "requests": summary.requests,
        "samples": summary.collected,
        "tokens": summary.prompt_tokens + summary.completion_tokens,
        "cost": summary.cost_usd,
        "covered": sum(any(v) for v in by_question.values()),
        "correct": sum(sum(v) for v in by_question.values()),
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--questions", type=int, default=QUESTIONS, help="train questions (a few: a smoke run)")
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "results" / "adaptive.md")
    args = parser.parse_args()
    lines = [
        "| p (teacher right per sample) | collection | requests | samples drawn | tokens | cost (USD) "
        "| questions with >=1 correct | correct rationales | requests vs fixed |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    with tempfile.TemporaryDirectory() as tmp:
        task = write_task(Path(tmp), args.questions)
        for p in (0.2, 0.5, 0.8):
            runs = {}
            for name, teacher in (
                ("fixed D=8", {"num_samples": 8}),
                (
                    "adaptive (1 at a time, up to 8, until 1 correct)",
                    {"num_samples": 1, "adaptive": {"max_samples": 8, "want_correct": 1}},
                ),
            ):
                runs[name] = collect_once(Path(tmp) / f"{p}-{len(runs)}", task, p, teacher, args.questions)
            fixed = runs["fixed D=8"]["requests"]
            for name, r in runs.items():
                lines.append(
                    f"| {p} | {name} | {r['requests']} | {r['samples']} | {r['tokens']:,} | {r['cost']:.4f} "
                    f"| {r['covered']} of {args.questions} | {r['correct']} | {r['requests'] / fixed:.2f} |"
                )
            print(lines[-2], lines[-1], sep="\n", flush=True)
    text = (
        "Command: `.venv/bin/python benchmarks/adaptive.py` (loopback server, ChanceAdder teacher, one run; "
        f"{args.questions} train questions; n per request on, so fixed D=8 asks step 1 once per question and step 2 "
        "once per sample; prices $0.15/$0.60 per million tokens for scale)."
        " The teacher is asked the train questions only.\n\n" + "\n".join(lines) + "\n"
    )
    args.out.write_text(text)
    print(text)


if __name__ == "__main__":
    main()
