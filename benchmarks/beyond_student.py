"""Beyond the paper on a real student (SmolLM2-135M, float32, the CPU): distilling step-by-step (dss) against
Fine-tune-CoT and vanilla fine-tuning trained on the same curated split and budget, and self-consistency
(k in {1, 4, 8}, temperature 0.7) against greedy decoding of the same Fine-tune-CoT student, side by side in
one run. Runs `configs/beyond_coin_flip.yaml` first (each stage skipped when done). Writes
docs/results/beyond_student.md.

    FTCOT_DATA_DIR=../shared/data .venv/bin/python benchmarks/beyond_student.py

With `--config` a tiny student's config, `--max-test` and `--out` it is CI's smoke run (tests/test_benchmarks.py).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from ftcot.artifacts import TrainSummary, parse_summary
from ftcot.config import load_config
from ftcot.engines.hf import HFEngine
from ftcot.evaluate import evaluate, self_consistency
from ftcot.methods import label
from ftcot.pipeline import context, run
from ftcot.stages.generation import eval_batch_size, generation_budget
from ftcot.students.load import load_student

ROOT = Path(__file__).resolve().parents[1]
CONFIG = ROOT / "configs" / "beyond_coin_flip.yaml"
KS = (1, 4, 8)
TEMPERATURE = 0.7


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--config", type=Path, default=CONFIG, help="another run config (a tiny student: a smoke run)")
    parser.add_argument("--max-test", type=int, default=None, help="first N test questions")
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "results" / "beyond_student.md")
    args = parser.parse_args()
    ctx = context(load_config(args.config))
    run(ctx)
    test = ctx.task.split_samples("test", ctx.cfg.split)[: args.max_test]
    batch = eval_batch_size(ctx)
    lines = [
        "| method | test accuracy (95% CI) | trained on | tokens an epoch | best epoch (validation %) "
        "| questions/s at test (greedy, measured here) |",
        "|---|---|---|---|---|---|",
    ]
    measured = {}
    for method in ctx.cfg.train.methods:  # each student evaluated again here, one after another, for its speed
        model, tokenizer, kind = load_student(ctx.cfg.student, str(ctx.run.best(method)))
        budget = generation_budget(ctx, tokenizer, kind)
        _, measured[method] = evaluate(ctx.task, HFEngine(model, tokenizer, kind, batch), test, method, budget)
        m, t = measured[method], parse_summary(ctx.run.summary("train", method), TrainSummary)
        lines.append(
            f"| {label(method)} | {m.accuracy:.2f} ({m.ci95[0]}-{m.ci95[1]}) | {t.examples} pairs "
            f"| {t.tokens_per_epoch:,} | {t.best_epoch} ({t.best_val_accuracy}) "
            f"| {m.questions_per_s} |"
        )
        print(lines[-1], flush=True)
    methods_table = "\n".join(lines)

    model, tokenizer, kind = load_student(ctx.cfg.student, str(ctx.run.best("ft_cot")))
    budget, greedy = generation_budget(ctx, tokenizer, kind), measured["ft_cot"]
    lines = [
        "| decoding | test accuracy (95% CI) | samples agree with the vote | any sample right | questions/s "
        "| time vs greedy |",
        "|---|---|---|---|---|---|",
        f"| greedy | {greedy.accuracy:.2f} ({greedy.ci95[0]}-{greedy.ci95[1]}) | | | {greedy.questions_per_s} | 1.00 |",
    ]
    print(lines[-1], flush=True)
    for k in KS:
        _, sc = self_consistency(
            ctx.task, HFEngine(model, tokenizer, kind, batch), test, "ft_cot", budget, k, TEMPERATURE, seed=0
        )
        lines.append(
            f"| self-consistency k={k}, T={TEMPERATURE} | {sc.accuracy:.2f} ({sc.ci95[0]}-"
            f"{sc.ci95[1]}) | {sc.agreement}% | {sc.any_correct}% | {sc.questions_per_s} "
            f"| {sc.wall_s / greedy.wall_s:.2f} |"
        )
        print(lines[-1], flush=True)
    text = (
        f"Command: `FTCOT_DATA_DIR=../shared/data .venv/bin/python benchmarks/beyond_student.py` (config "
        f"`configs/beyond_coin_flip.yaml`: Coin Flip, recorded text-davinci-002 teacher at D=1, "
        f"SmolLM2-135M-Instruct in float32 on the 2-core CPU, {ctx.cfg.train.max_examples} curated examples, "
        f"{ctx.cfg.train.epochs} epochs at lr {ctx.cfg.train.learning_rate:g}, epoch chosen on validation; "
        f"{len(test)} test questions, batch {batch}, up to {budget} new tokens). One run, one seed.\n\n"
        f"Methods trained on the same curated split and budget (dss: alpha {ctx.cfg.train.dss_alpha:g}; its "
        "pairs are twice as many as the examples, one label and one rationale pair each):\n\n"
        + methods_table
        + "\n\nThe Fine-tune-CoT student decoded greedily and with self-consistency (each prompt computed once, "
        "its cache shared by its k samples):\n\n" + "\n".join(lines) + "\n"
    )
    args.out.write_text(text)
    print(text)


if __name__ == "__main__":
    sys.exit(main())
