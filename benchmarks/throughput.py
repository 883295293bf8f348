"""Training and evaluation throughput of ftcot against plain baselines, side by side in one run on the same
model (SmolLM2-135M, float32, CPU) and data (coin_flip, recorded text-davinci-002 rationales).

(a) training: useful (non-padding) tokens per second of ftcot's trainer (length-grouped batches) against a
    plain PyTorch loop that pads every batch to the longest example;
(b) evaluation: questions per second of ftcot's batched greedy evaluation (length-sorted batches, KV cache,
    per-row stop, finished rows leave the batch) against a one-question-at-a-time `generate` loop, and of each
    evaluation engine on the same student (hf, ctranslate2 float32 and int8, openai against a loopback
    server, and against llama.cpp's server on the student exported as GGUF f16 and q8_0), with the accuracy
    of each.

    FTCOT_DATA_DIR=../shared/data .venv/bin/python benchmarks/throughput.py [--student runs/quickstart/students/ft_cot/best]

With `--model` a tiny student and small counts it is CI's smoke run (tests/test_benchmarks.py).

CTranslate2 and llama.cpp are optional (`pip install 'ftcot[bench,llamacpp]'`); without them their rows are left
out.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(Path(__file__).resolve().parent))
from teacher_throughput import write_section  # noqa: E402

from ftcot.config import CurateConfig, RunConfig, StudentConfig, TrainConfig  # noqa: E402
from ftcot.curate import curate  # noqa: E402
from ftcot.data import data_dir  # noqa: E402
from ftcot.engines import open_engine  # noqa: E402
from ftcot.errors import UserError  # noqa: E402
from ftcot.evaluate import evaluate  # noqa: E402
from ftcot.methods import METHODS  # noqa: E402
from ftcot.students.load import load_student  # noqa: E402
from ftcot.students.train import tokenize, train  # noqa: E402
from ftcot.tasks import load_task  # noqa: E402
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
        rows = features[i : i + batch_size]
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
            out = model.generate(
                **batch, max_new_tokens=max_new_tokens, do_sample=False, pad_token_id=tokenizer.pad_token_id
            )
        text = tokenizer.decode(out[0, batch["input_ids"].shape[1] :], skip_special_tokens=True)
        correct += spec.answer_format.matches(
            parse_prediction(spec.answer_format, text, METHODS["ft_cot"].answer_prefix), s.answer
        )
    wall = time.perf_counter() - start
    return len(samples) / wall, 100 * correct / len(samples)


def engine_rates(
    student: StudentConfig, student_dir: str, task, samples, max_new_tokens: int, folder: Path
) -> dict[str, tuple[float, float, float]]:
    """Questions per second, accuracy and set-up seconds (loading, converting) of each engine on the same
    student and questions, greedy, batches of 64: hf; ctranslate2 float32 and int8 (where installed); openai
    against a loopback server that runs the student with transformers' generate, one request at a time; openai
    against llama.cpp's server (`ftcot serve`, one slot, every core) on the student exported as GGUF f16 and
    q8_0 (where installed; the export counts as set-up)."""
    import importlib.util

    from ftcot.loopback import OpenAIServer, TransformersStudent
    from ftcot.serve import start
    from ftcot.students.gguf import write_gguf

    model, tokenizer, _ = load_student(student, student_dir)
    server = OpenAIServer()
    server.student = TransformersStudent(model, tokenizer)
    server.start()
    settings = {
        "hf": {},
        "ctranslate2 float32": {"engine": "ctranslate2"},
        "ctranslate2 int8": {"engine": "ctranslate2", "compute_type": "int8"},
        "openai (loopback transformers server)": {
            "engine": "openai",
            "base_url": server.base_url,
            "models": {"ft_cot": "student"},
        },
    }
    llama_cpp = importlib.util.find_spec("xllamacpp") is not None
    for quant in ("f16", "q8_0") if llama_cpp else ():
        settings[f"openai (llama.cpp server, GGUF {quant})"] = {"engine": "openai", "n_per_request": False}
    if not llama_cpp:
        print("(b) llama.cpp: left out (pip install 'ftcot[llamacpp]')", flush=True)
    rates = {}
    try:
        for i, (name, evaluate_cfg) in enumerate(settings.items()):
            began = time.perf_counter()
            served = None
            if "GGUF" in name:
                quant = name.split()[-1].rstrip(")")
                gguf = write_gguf(Path(student_dir), folder / f"student-{quant}.gguf", "ft_cot", quant)
                served = start(gguf, "student", port=0, threads=os.cpu_count())
                evaluate_cfg |= {"base_url": f"{served.listening_address}/v1", "models": {"ft_cot": "student"}}
            cfg = RunConfig(task="coin_flip", student=student, evaluate=evaluate_cfg)
            try:
                # A folder each: the openai engine's store would answer a second server's rows from the first's.
                engine = open_engine(cfg, "ft_cot", student_dir, folder / str(i), 64)
            except UserError as exc:  # ctranslate2 not installed
                print(f"(b) {name}: left out ({exc})", flush=True)
                continue
            set_up = time.perf_counter() - began
            _, metrics = evaluate(task, engine, samples, "ft_cot", max_new_tokens)
            engine.close()
            del served  # llama.cpp's server stops with its object
            rates[name] = (metrics.questions_per_s, metrics.accuracy, set_up)
            print(
                f"(b) engine {name}: {metrics.questions_per_s:.3f} questions/s, accuracy {metrics.accuracy}% "
                f"(set-up {set_up:.1f} s)",
                flush=True,
            )
    finally:
        server.stop()
    return rates


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
        summary = train(
            examples, "ft_cot", student, TrainConfig(epochs=1, batch_size=8, learning_rate=1e-4), Path(tmp) / "ft_cot"
        )
        trained = summary.tokens_per_s
        print(f"(a) ftcot train: {trained:.1f} useful tokens/s ({trained / plain:.0%} of the plain loop)", flush=True)
        student_dir = args.student or str(Path(tmp) / "ft_cot" / "best")
        task = load_task("coin_flip")
        samples = task.split_samples("test")[: args.eval_questions]
        rates = engine_rates(student, student_dir, task, samples, args.max_new_tokens, Path(tmp) / "engines")
        ours, accuracy, _ = rates["hf"]
        model, tokenizer, kind = load_student(student, student_dir)
        single_rate, single_accuracy = one_at_a_time(model, tokenizer, samples, args.max_new_tokens)
        print(f"(b) one-at-a-time generate: {single_rate:.3f} questions/s, accuracy {single_accuracy:.2f}%")
    command = "FTCOT_DATA_DIR=../shared/data .venv/bin/python benchmarks/throughput.py" + (
        f" --student {args.student}" if args.student else ""
    )
    section = (
        "## Training and evaluation throughput\n\n"
        f"`{command}` — SmolLM2-135M-Instruct (float32, CPU, 2 cores), coin_flip, recorded text-davinci-002 "
        f"rationales; measured side by side in one run.\n\n"
        "| measure | ftcot | plain baseline | ratio | target |\n|---|---|---|---|---|\n"
        f"| (a) training, useful tokens/s ({len(examples)} Fine-tune-CoT examples, batch 8, one epoch) | {trained:.1f} "
        f"| {plain:.1f} (fixed length {width}) | {trained / plain:.0%} | >= 90% |\n"
        f"| (b) evaluation, questions/s ({len(samples)} test questions, greedy, <= {args.max_new_tokens} new tokens) "
        f"| {ours:.3f} (accuracy {accuracy:.2f}%) | {single_rate:.3f} "
        f"(accuracy {single_accuracy:.2f}%) | {ours / single_rate:.1f}x | >= 10x |\n\n"
        "Evaluation engines (`evaluate.engine`), the same Fine-tune-CoT student and questions, greedy, batches of 64; "
        "set-up (loading, converting once into the run folder) not counted in questions/s:\n\n"
        "| engine | questions/s | accuracy | set-up | hf's speed over it |\n|---|---|---|---|---|\n"
        + "".join(
            f"| {name} | {rate:.3f} | {acc:.2f}% | {set_up:.1f} s | {ours / rate:.2f}x |\n"
            for name, (rate, acc, set_up) in rates.items()
        )
    )
    write_section(args.out, "Training and evaluation throughput", section)


if __name__ == "__main__":
    main()
