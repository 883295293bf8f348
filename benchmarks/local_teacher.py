"""The local transformers teacher (teacher.backend: hf), batched through the hf engine against one prompt at a
time (the same teacher with batches of one, as it was before), side by side in one run: completions per second
for the first coin_flip train questions, D samples each (step 1 sampled, step 2 greedy). Writes its section of
docs/benchmarks.md.

    FTCOT_DATA_DIR=../shared/data .venv/bin/python benchmarks/local_teacher.py [--model smollm2-135m]

With `--model` a tiny model and `--questions 3` it is CI's smoke run (tests/test_benchmarks.py).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(Path(__file__).resolve().parent))
from teacher_throughput import write_section  # noqa: E402

from ftcot.config import TeacherConfig  # noqa: E402
from ftcot.tasks import load_task  # noqa: E402
from ftcot.teachers.collect import collect  # noqa: E402
from ftcot.teachers.cost import Spending  # noqa: E402
from ftcot.teachers.hf import HFTeacher  # noqa: E402
from ftcot.teachers.store import CompletionStore  # noqa: E402


def rate(model: str, batch_size: int, samples, cfg: TeacherConfig) -> tuple[float, int, float]:
    """(completions per second, completions, seconds) of one collection into a fresh store."""
    teacher = HFTeacher(model, batch_size=batch_size)
    with tempfile.TemporaryDirectory() as tmp:
        store = CompletionStore(Path(tmp) / "store.sqlite")
        start = time.perf_counter()
        outcome = collect(teacher, store, cfg, "Therefore, the answer (Yes or No) is", samples, Spending(None))
        wall = time.perf_counter() - start
        completions = store.count()
        store.close()
    assert len(outcome.records) == len(samples) * cfg.num_samples
    return completions / wall, completions, wall


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--model", default="smollm2-135m")
    parser.add_argument("--questions", type=int, default=16)
    parser.add_argument("--samples", type=int, default=2, help="D, rationales per question")
    parser.add_argument("--max-tokens", type=int, default=64, help="of a rationale")
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "benchmarks.md")
    args = parser.parse_args()
    samples = load_task("coin_flip").split_samples("train")[: args.questions]
    cfg = TeacherConfig(
        backend="hf",
        model=args.model,
        num_samples=args.samples,
        rationale={"temperature": 0.7, "max_tokens": args.max_tokens, "seed": 0},
        answer={"max_tokens": 8},
    )
    batched = rate(args.model, 64, samples, cfg)
    print(f"batched: {batched[0]:.2f} completions/s ({batched[1]} in {batched[2]:.1f} s)", flush=True)
    single = rate(args.model, 1, samples, cfg)
    print(f"one prompt at a time: {single[0]:.2f} completions/s ({single[1]} in {single[2]:.1f} s)", flush=True)
    command = "FTCOT_DATA_DIR=../shared/data .venv/bin/python benchmarks/local_teacher.py" + (
        f" --model {args.model}" if args.model != "smollm2-135m" else ""
    )
    section = (
        "## Local teacher\n\n"
        f"`{command}` — {args.model} as a local teacher (float32, CPU), the first {args.questions} coin_flip train "
        f"questions, D={args.samples} rationales of up to {args.max_tokens} tokens at temperature 0.7, then greedy "
        "answers; measured side by side in one run.\n\n"
        "| teacher | completions (step 1 + step 2) | seconds | completions/s | ratio |\n|---|---|---|---|---|\n"
        f"| batched through the hf engine | {batched[1]} | {batched[2]:.1f} | {batched[0]:.2f} | "
        f"{batched[0] / single[0]:.1f}x |\n"
        f"| one prompt at a time | {single[1]} | {single[2]:.1f} | {single[0]:.2f} | 1x |\n"
    )
    write_section(args.out, "Local teacher", section)


if __name__ == "__main__":
    main()
