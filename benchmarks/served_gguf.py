"""A trained run's student as llama.cpp serves it, against the same student in the `hf` engine: the student
exported as GGUF (f16 and q8_0), served by llama.cpp's own server (`ftcot serve`'s, one slot, every core),
asked by the `openai` engine for every test question the run evaluated, side by side with the run's own `hf`
predictions and with the `ctranslate2` engine (float32, int8; where the `bench` extra is installed) on the same
student: accuracy, questions/s, and how many questions differ.

    FTCOT_DATA_DIR=../shared/data .venv/bin/python benchmarks/served_gguf.py --run runs/quickstart

The run is only read: the GGUFs, the served completions and their store go to a temporary folder. CI runs it on a
tiny trained run (tests/test_gguf.py).
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(Path(__file__).resolve().parent))
from teacher_throughput import write_section  # noqa: E402

from ftcot.artifacts import Metrics, Prediction, read_run_config, read_summary  # noqa: E402
from ftcot.engines import open_engine  # noqa: E402
from ftcot.evaluate import evaluate  # noqa: E402
from ftcot.files import read_jsonl  # noqa: E402
from ftcot.pipeline import context  # noqa: E402
from ftcot.serve import start  # noqa: E402
from ftcot.students.gguf import write_gguf  # noqa: E402


def _row(name: str, metrics, theirs: list, hf_rows: list) -> tuple:
    differ = sum(a.prediction != b.prediction for a, b in zip(theirs, hf_rows))
    flips = sum(a.correct != b.correct for a, b in zip(theirs, hf_rows))
    print(
        f"{name}: accuracy {metrics.accuracy}%, {metrics.questions_per_s:.3f} questions/s, {differ} predictions differ "
        f"from hf, {flips} change correctness",
        flush=True,
    )
    return name, metrics.accuracy, metrics.questions_per_s, f"{differ} of {len(hf_rows)}", f"{flips}"


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--run", type=Path, required=True, help="a run folder whose student was trained and evaluated")
    parser.add_argument("--method", default="ft_cot")
    parser.add_argument("--quant", nargs="+", default=["f16", "q8_0"])
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "benchmarks.md")
    args = parser.parse_args()
    ctx = context(read_run_config(args.run))
    best = ctx.run.best(args.method)
    hf_rows = [Prediction.model_validate(r) for r in read_jsonl(ctx.run.predictions(args.method))]
    hf = read_summary(ctx.run.summary("evaluate", args.method), Metrics)
    by_index = {s.sample_index: s for s in ctx.task.split_samples("test")}
    samples = [by_index[r.sample_index] for r in hf_rows]
    rows = [("hf (the run's own evaluation)", hf.accuracy, hf.questions_per_s, "-", "-")]
    with tempfile.TemporaryDirectory() as tmp:
        for compute_type in ("float32", "int8") if importlib.util.find_spec("ctranslate2") else ():
            cfg = ctx.cfg.model_copy(deep=True)
            cfg.evaluate = cfg.evaluate.model_copy(update={"engine": "ctranslate2", "compute_type": compute_type})
            began = time.perf_counter()
            engine = open_engine(cfg, args.method, str(best), Path(tmp) / compute_type, 64)
            converted = time.perf_counter() - began
            theirs, metrics = evaluate(ctx.task, engine, samples, args.method, hf.max_new_tokens)
            engine.close()
            rows.append(_row(f"ctranslate2 {compute_type} (converted in {converted:.0f} s)", metrics, theirs, hf_rows))
        for quant in args.quant:
            began = time.perf_counter()
            gguf = write_gguf(best, Path(tmp) / f"{args.method}-{quant}.gguf", args.method, quant)
            exported = time.perf_counter() - began
            server = start(gguf, args.method, port=0, threads=os.cpu_count())
            cfg = ctx.cfg.model_copy(deep=True)
            cfg.evaluate = cfg.evaluate.model_copy(
                update={
                    "engine": "openai",
                    "base_url": f"{server.listening_address}/v1",
                    "models": {args.method: args.method},
                    "api_key_env": None,
                    "n_per_request": False,
                }
            )
            engine = open_engine(cfg, args.method, str(best), Path(tmp) / quant, 1)
            served, metrics = evaluate(ctx.task, engine, samples, args.method, hf.max_new_tokens)
            engine.close()
            del server
            size = gguf.stat().st_size / 1e6
            name = f"llama.cpp server, GGUF {quant} ({size:.0f} MB, exported in {exported:.0f} s)"
            rows.append(_row(name, metrics, served, hf_rows))
    command = f"FTCOT_DATA_DIR=../shared/data .venv/bin/python benchmarks/served_gguf.py --run {args.run}"
    section = (
        "## The student served by llama.cpp\n\n"
        f"Measured {time.strftime('%Y-%m-%d')}: `{command}` — {ctx.cfg.student.model}'s {args.method} student of `{args.run}` ({ctx.task.name}, "
        f"{len(samples)} test questions, greedy, <= {hf.max_new_tokens} new tokens), exported with "
        "`ftcot export --format gguf` and served by llama.cpp's server (`ftcot serve`: the xllamacpp wheel, one "
        "slot, every core), beside the run's own hf-engine evaluation (float32, batches of the run's size) and the "
        "ctranslate2 engine (batches of 64); one run, 2-core CPU; questions/s excludes the conversion.\n\n"
        "| engine | accuracy | questions/s | predictions that differ from hf | right/wrong flips |\n"
        "|---|---|---|---|---|\n" + "".join(f"| {a} | {b:.2f}% | {c:.3f} | {d} | {e} |\n" for a, b, c, d, e in rows)
    )
    write_section(args.out, "The student served by llama.cpp", section)


if __name__ == "__main__":
    main()
