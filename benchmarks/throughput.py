"""Training and evaluation throughput of ftcot against plain baselines, side by side in one run on the same
model (SmolLM2-135M, float32, CPU) and data (coin_flip, recorded text-davinci-002 rationales).

(a) training: useful (non-padding) tokens per second of ftcot's trainer (length-grouped batches) against a
    plain PyTorch loop that pads every batch to the longest example;
(b) evaluation: questions per second of ftcot's batched greedy evaluation (length-sorted batches, KV cache,
    per-row stop, finished rows leave the batch) against a one-question-at-a-time `generate` loop and against
    CTranslate2 (float32 and int8, same student converted, same batches), with the accuracy of each.

    FTCOT_DATA_DIR=../shared/data .venv/bin/python benchmarks/throughput.py [--student runs/quickstart/students/ft_cot/best]

With `--model` a tiny student and small counts it is CI's smoke run (tests/test_benchmarks.py).

CTranslate2 is optional (`pip install ctranslate2`); without it its rows are left out.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(Path(__file__).resolve().parent))
from teacher_throughput import write_section  # noqa: E402

from ftcot.config import CurateConfig, StudentConfig, TrainConfig  # noqa: E402
from ftcot.curate import curate  # noqa: E402
from ftcot.data import data_dir  # noqa: E402
from ftcot.evaluate import evaluate  # noqa: E402
from ftcot.students.load import load_student  # noqa: E402
from ftcot.students.train import tokenize, train  # noqa: E402
from ftcot.tasks import load_task  # noqa: E402
from ftcot.methods import METHODS  # noqa: E402
from ftcot.tasks.answers import parse_prediction  # noqa: E402
from ftcot.teachers.records import read_shared_jsonl, recorded_teacher_path  # noqa: E402


def training_examples(n: int):
    root = data_dir()
    records = read_shared_jsonl(recorded_teacher_path("coin_flip", root))
    task = load_task("coin_flip", root)
    examples, _ = curate(task, records, task.split_samples("train"), CurateConfig(), 1)
    return examples[:n]


def plain_loop_tokens_per_s(examples, student: StudentConfig, batch_size: int, lr: float) -> tuple[float, int]:
    """One epoch of a fixed-length loop: every batch padded to the longest example in the data."""
    model, tokenizer, kind = load_student(student)
    features = tokenize(examples, "ft_cot", kind, tokenizer, 512)
    width = max(len(f["input_ids"]) for f in features)
    pad = tokenizer.pad_token_id
    optimizer = torch.optim.AdamW(model.parameters(), lr=lr)
    model.train()
    useful = sum(len(f["input_ids"]) for f in features)
    start = time.perf_counter()
    for i in range(0, len(features), batch_size):
        rows = features[i:i + batch_size]
        ids = torch.tensor([f["input_ids"] + [pad] * (width - len(f["input_ids"])) for f in rows])
        mask = torch.tensor([[1] * len(f["input_ids"]) + [0] * (width - len(f["input_ids"])) for f in rows])
        labels = torch.tensor([f["labels"] + [-100] * (width - len(f["labels"])) for f in rows])
        loss = model(input_ids=ids, attention_mask=mask, labels=labels).loss
        loss.backward()
        optimizer.step()
        optimizer.zero_grad()
    return useful / (time.perf_counter() - start), width


def one_at_a_time(model, tokenizer, samples, max_new_tokens: int) -> tuple[float, float]:
    """Questions per second and accuracy of a plain loop: one question per generate call, stop at EOS only."""
    spec = load_task(samples[0].task)
    correct = 0
    start = time.perf_counter()
    for s in samples:
        batch = tokenizer(s.question + " ###", return_tensors="pt")
        with torch.inference_mode():
            out = model.generate(**batch, max_new_tokens=max_new_tokens, do_sample=False,
                                 pad_token_id=tokenizer.pad_token_id)
        text = tokenizer.decode(out[0, batch["input_ids"].shape[1]:], skip_special_tokens=True)
        correct += spec.answer_format.matches(parse_prediction(spec.answer_format, text, METHODS["ft_cot"].answer_prefix),
                                              s.answer)
    wall = time.perf_counter() - start
    return len(samples) / wall, 100 * correct / len(samples)


def ctranslate2_rate(student_dir: str, tokenizer, samples, max_new_tokens: int, batch_size: int,
                     compute_type: str) -> tuple[float, float, float] | None:
    """Questions per second, accuracy and conversion seconds of CTranslate2 on the same student and questions:
    greedy, the same length-sorted batches, stopping at EOS (it has no per-row text condition; the answer
    parser reads the same text either way)."""
    try:
        import ctranslate2
    except ImportError:
        return None
    spec = load_task(samples[0].task)
    with tempfile.TemporaryDirectory() as out:
        start = time.perf_counter()
        ctranslate2.converters.TransformersConverter(student_dir).convert(out, force=True)
        converted = time.perf_counter() - start
        generator = ctranslate2.Generator(out, device="cpu", compute_type=compute_type)
        prompts = [tokenizer.convert_ids_to_tokens(tokenizer(s.question + " ###")["input_ids"]) for s in samples]
        order = sorted(range(len(samples)), key=lambda i: -len(prompts[i]))
        texts = [""] * len(samples)
        start = time.perf_counter()
        for at in range(0, len(order), batch_size):
            rows = order[at:at + batch_size]
            results = generator.generate_batch([prompts[i] for i in rows], max_length=max_new_tokens,
                                               sampling_topk=1, include_prompt_in_result=False,
                                               end_token=tokenizer.eos_token)
            for i, result in zip(rows, results):
                texts[i] = tokenizer.decode(result.sequences_ids[0], skip_special_tokens=True)
        wall = time.perf_counter() - start
    correct = sum(spec.answer_format.matches(parse_prediction(spec.answer_format, text, METHODS["ft_cot"].answer_prefix),
                                             s.answer) for s, text in zip(samples, texts))
    return len(samples) / wall, 100 * correct / len(samples), converted


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--student", default=None, help="fine-tuned student folder for (b) [default: fine-tune one]")
    parser.add_argument("--train-examples", type=int, default=64)
    parser.add_argument("--eval-questions", type=int, default=150)
    parser.add_argument("--max-new-tokens", type=int, default=128)
    parser.add_argument("--model", default="smollm2-135m", help="the student to fine-tune (a tiny one: smoke mode)")
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "benchmarks.md")
    args = parser.parse_args()
    torch.manual_seed(0)
    student = StudentConfig(model=args.model)
    examples = training_examples(args.train_examples)

    plain, width = plain_loop_tokens_per_s(examples, student, 8, 1e-4)
    print(f"(a) plain fixed-length loop: {plain:.1f} useful tokens/s (every batch padded to {width})", flush=True)
    with tempfile.TemporaryDirectory() as tmp:
        summary = train(examples, "ft_cot", student, TrainConfig(epochs=1, batch_size=8, learning_rate=1e-4),
                        Path(tmp) / "ft_cot")
        ours = summary["tokens_per_s"]
        print(f"(a) ftcot train: {ours:.1f} useful tokens/s ({ours / plain:.0%} of the plain loop)", flush=True)
        student_dir = args.student or str(Path(tmp) / "ft_cot" / "best")
        model, tokenizer, kind = load_student(student, student_dir)
        task = load_task("coin_flip")
        samples = task.split_samples("test")[: args.eval_questions]
        _, metrics = evaluate(task, model, tokenizer, samples, "ft_cot", kind, args.max_new_tokens, 64)
        print(f"(b) ftcot evaluate: {metrics['questions_per_s']:.3f} questions/s, accuracy {metrics['accuracy']}%",
              flush=True)
        ct2 = {}
        for compute_type in ("float32", "int8"):
            ct2[compute_type] = ctranslate2_rate(student_dir, tokenizer, samples, args.max_new_tokens, 64, compute_type)
            if ct2[compute_type]:
                rate, accuracy, _ = ct2[compute_type]
                print(f"(b) CTranslate2 {compute_type}: {rate:.3f} questions/s, accuracy {accuracy:.2f}%", flush=True)
        single_rate, single_accuracy = one_at_a_time(model, tokenizer, samples, args.max_new_tokens)
        print(f"(b) one-at-a-time generate: {single_rate:.3f} questions/s, accuracy {single_accuracy:.2f}%")
    command = "FTCOT_DATA_DIR=../shared/data .venv/bin/python benchmarks/throughput.py" + (
        f" --student {args.student}" if args.student else "")
    section = (
        "## Training and evaluation throughput\n\n"
        f"`{command}` — SmolLM2-135M-Instruct (float32, CPU, 2 cores), coin_flip, recorded text-davinci-002 "
        f"rationales; measured side by side in one run.\n\n"
        "| measure | ftcot | plain baseline | ratio | target |\n|---|---|---|---|---|\n"
        f"| (a) training, useful tokens/s ({len(examples)} Fine-tune-CoT examples, batch 8, one epoch) | {ours:.1f} "
        f"| {plain:.1f} (fixed length {width}) | {ours / plain:.0%} | >= 90% |\n"
        f"| (b) evaluation, questions/s ({len(samples)} test questions, greedy, <= {args.max_new_tokens} new tokens) "
        f"| {metrics['questions_per_s']:.3f} (accuracy {metrics['accuracy']:.2f}%) | {single_rate:.3f} "
        f"(accuracy {single_accuracy:.2f}%) | {metrics['questions_per_s'] / single_rate:.1f}x | >= 10x |\n"
        + "".join(
            f"| (b) evaluation against CTranslate2 {ctype} (same student converted, same batches of 64; "
            f"conversion {c[2]:.0f} s not counted) | {metrics['questions_per_s']:.3f} (accuracy "
            f"{metrics['accuracy']:.2f}%) | {c[0]:.3f} (accuracy {c[1]:.2f}%) | {metrics['questions_per_s'] / c[0]:.2f}x "
            f"| {'>= 1x at equal accuracy' if ctype == 'float32' else 'none (a lossy format)'} |\n"
            for ctype, c in ct2.items() if c))
    write_section(args.out, "Training and evaluation throughput", section)


if __name__ == "__main__":
    main()
