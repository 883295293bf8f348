"""The benchmarks in a smoke mode (a tiny student, a few questions), so that a refactor cannot break one unseen."""

import os
from pathlib import Path

from helpers import run_benchmark

BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"


def test_throughput_runs_in_its_smoke_mode(tmp_path, data_dir, tiny_lm):
    out = tmp_path / "benchmarks.md"
    run_benchmark(
        "throughput.py",
        "--model",
        tiny_lm,
        "--train-examples",
        8,
        "--eval-questions",
        4,
        "--max-new-tokens",
        8,
        "--out",
        out,
        env={"FTCOT_DATA_DIR": str(data_dir)},
    )
    section = out.read_text()
    assert "## Training and evaluation throughput" in section and "(a) training, useful tokens/s (8 " in section
    engines = ["| hf |", "| openai (loopback transformers server) |"] + (
        [
            "| ctranslate2 float32 |",
            "| ctranslate2 int8 |",
            "| openai (llama.cpp server, GGUF f16) |",
            "| openai (llama.cpp server, GGUF q8_0) |",
        ]
        if os.environ.get("CI") == "true"
        else []
    )
    assert all(row in section for row in engines), section  # the engine table (CI installs both extras)


def test_teacher_throughput_runs_in_its_smoke_mode(tmp_path):
    out = tmp_path / "benchmarks.md"
    run_benchmark("teacher_throughput.py", "--concurrency", 2, "--seconds", 1, "--sequential", 3, "--out", out)
    assert "| 2 | " in out.read_text() and "## Teacher throughput" in out.read_text()


def test_adaptive_runs_in_its_smoke_mode(tmp_path):
    out = tmp_path / "adaptive.md"
    run_benchmark("adaptive.py", "--questions", 6, "--out", out)
    rows = [line for line in out.read_text().splitlines() if line.startswith("| 0.")]
    assert len(rows) == 6 and all(" of 6 |" in row for row in rows)


def test_beyond_student_runs_in_its_smoke_mode(tmp_path, data_dir, tiny_lm):
    import yaml

    config = yaml.safe_load((BENCHMARKS.parent / "configs" / "beyond_coin_flip.yaml").read_text())
    config |= {"run_dir": str(tmp_path / "run"), "data_dir": str(data_dir), "student": {"model": str(tiny_lm)}}
    config["train"] |= {"epochs": 1, "max_examples": 8, "learning_rate": 0.001}
    config["evaluate"] |= {"max_new_tokens": 8, "max_questions": 4}
    (tmp_path / "beyond.yaml").write_text(yaml.safe_dump(config))
    out = tmp_path / "beyond.md"
    run_benchmark("beyond_student.py", "--config", tmp_path / "beyond.yaml", "--max-test", 4, "--out", out)
    text = out.read_text()
    assert "| Distilling step-by-step |" in text and "| self-consistency k=8, T=0.7 |" in text


def test_local_teacher_runs_in_its_smoke_mode(tmp_path, data_dir, tiny_lm):
    out = tmp_path / "benchmarks.md"
    run_benchmark(
        "local_teacher.py",
        "--model",
        tiny_lm,
        "--questions",
        3,
        "--max-tokens",
        8,
        "--out",
        out,
        env={"FTCOT_DATA_DIR": str(data_dir)},
    )
    assert "| batched through the hf engine | 12 |" in out.read_text()


def test_split_overlap_scores_the_shared_questions_apart(tmp_path, data_dir):
    """minidata's StrategyQA repeats one train question in its test split: a prediction file right on that one
    only reads 100% there and 0% on the rest."""
    import json

    from ftcot.tasks import load_task

    test = load_task("strategy_qa", data_dir).split_samples("test")
    train = {s.question for s in load_task("strategy_qa", data_dir).split_samples("train")}
    folder = tmp_path / "results" / "strategy_qa" / "s.predictions"
    folder.mkdir(parents=True)
    rows = [{"sample_index": s.sample_index, "correct": s.question in train} for s in test]
    (folder / "ft_cot.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    out = tmp_path / "overlap.md"
    run_benchmark(
        "split_overlap.py", "--results", tmp_path / "results", "--out", out, env={"FTCOT_DATA_DIR": str(data_dir)}
    )
    text = out.read_text()
    assert f"| strategy_qa | {len(test)} | 1 | 1 |" in text
    assert (
        f"| strategy_qa | s | ft_cot | {100 / len(test):.2f} (1 of {len(test)}) | 100.00 (1 of 1) | 0.00 (0 of" in text
    )
