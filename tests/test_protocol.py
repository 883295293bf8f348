"""Training protocols: the paper preset, early stopping, the time budget, precision, the generation budget,
failure diagnostics, and rank 0 alone validating and writing under torchrun."""

import json
import time

import numpy as np
import pytest
import torch
import yaml
from helpers import invoke_cli, run_cli, run_torchrun
from pydantic import ValidationError
from transformers import AutoModelForCausalLM, AutoTokenizer

from ftcot.artifacts import Prediction
from ftcot.config import TRACKERS, RunConfig, StudentConfig, TrainConfig
from ftcot.curate import Example
from ftcot.evaluate import diagnostics
from ftcot.files import write_jsonl
from ftcot.pipeline import context
from ftcot.stages.generation import FALLBACK_MAX_NEW_TOKENS, MAX_NEW_TOKENS_MARGIN, generation_budget
from ftcot.students.train import precision_args, train
from ftcot.tasks import load_task
from ftcot.teachers.records import read_shared_jsonl, recorded_teacher_path


def _examples(data_dir, n=16):
    records = read_shared_jsonl(recorded_teacher_path("coin_flip", data_dir))[:n]
    return [
        Example(
            task="coin_flip",
            sample_index=r.sample_index,
            question=r.question,
            rationale=r.reasoning_completion.strip(),
            answer=r.answer,
        )
        for r in records
    ]


def test_paper_protocol_fills_what_the_config_leaves_unset():
    paper = TrainConfig(protocol="paper")
    assert (
        paper.epochs,
        paper.learning_rate,
        paper.lr_schedule,
        paper.batch_size,
        paper.grad_accum,
        paper.warmup_ratio,
        paper.weight_decay,
    ) == (20, 3e-4, "constant", 8, 1, 0.0, 0.01)
    mine = TrainConfig(protocol="paper", epochs=5, learning_rate=1e-4)
    assert (mine.epochs, mine.learning_rate, mine.lr_schedule) == (5, 1e-4, "constant")
    custom = TrainConfig()
    assert (custom.epochs, custom.learning_rate, custom.lr_schedule) == (3, 1e-4, "linear")


def test_paper_protocol_from_yaml_and_bad_protocol_is_one_line(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("task: coin_flip\ntrain: {protocol: paper, patience: 3}\n")
    shown = invoke_cli("config", path)
    assert shown.returncode == 0, shown.stderr
    train_section = yaml.safe_load(shown.stdout)["train"]
    assert train_section["epochs"] == 20 and train_section["learning_rate"] == 3e-4 and train_section["patience"] == 3
    path.write_text("task: coin_flip\ntrain: {protocol: papper}\n")
    bad = invoke_cli("train", path)
    assert bad.returncode == 2 and len(bad.stderr.strip().splitlines()) == 1 and "train.protocol" in bad.stderr


def _scripted(scores, saved, delay=0.0):
    scores = iter(scores)

    def validate(model):
        time.sleep(delay)
        accuracy = next(scores)
        saved[accuracy] = {k: v.detach().cpu().clone() for k, v in model.state_dict().items()}
        return accuracy

    return validate


def test_patience_stops_training_and_keeps_the_best_epoch(tiny_lm, data_dir, tmp_path):
    saved = {}
    cfg = TrainConfig(protocol="paper", epochs=10, batch_size=4, learning_rate=1e-3, patience=2, checkpoint=False)
    summary = train(
        _examples(data_dir),
        "ft_cot",
        StudentConfig(model=str(tiny_lm)),
        cfg,
        tmp_path / "ft_cot",
        _scripted([10.0, 30.0, 20.0, 25.0, 90.0], saved),
    )
    # epochs 3 and 4 bring no gain over epoch 2: stop after epoch 4, never reaching the 90 of epoch 5
    assert [h.epoch for h in summary.history] == [1, 2, 3, 4]
    assert (summary.stop_reason, summary.epochs_trained, summary.epochs) == ("patience", 4, 10)
    assert summary.best_epoch == 2 and summary.protocol == "paper"
    best = AutoModelForCausalLM.from_pretrained(tmp_path / "ft_cot" / "best")
    for name, value in best.state_dict().items():
        assert torch.equal(value, saved[30.0][name]), name
    on_disk = json.loads((tmp_path / "ft_cot" / "history.json").read_text())  # the stage writes summary.json
    assert on_disk == [h.dump() for h in summary.history]


def test_time_budget_stops_before_an_epoch_that_would_overrun(tiny_lm, data_dir, tmp_path):
    # Each epoch validates for at least 0.5 s; a 0.6 s budget cannot hold a second epoch.
    cfg = TrainConfig(epochs=5, batch_size=4, learning_rate=1e-3, max_minutes=0.01, checkpoint=False)
    summary = train(
        _examples(data_dir),
        "ft_cot",
        StudentConfig(model=str(tiny_lm)),
        cfg,
        tmp_path / "out",
        _scripted([10.0] * 5, {}, delay=0.5),
    )
    assert (summary.stop_reason, summary.epochs_trained) == ("time budget", 1)
    assert (tmp_path / "out" / "best" / "model.safetensors").exists()
    assert summary.history[0].val_s >= 0.5


def test_a_fresh_start_forgets_the_history_of_an_unfinished_attempt(tiny_lm, data_dir, tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    (out / "history.json").write_text(
        json.dumps(
            [{"epoch": 1, "val_accuracy": 99.0, "train_s": 1.0, "val_s": 1.0, "tokens_per_s": 1.0, "loss": None}]
        )
    )
    summary = train(
        _examples(data_dir, 8),
        "ft_cot",
        StudentConfig(model=str(tiny_lm)),
        TrainConfig(epochs=1, batch_size=4, checkpoint=False),
        out,
        _scripted([5.0], {}),
    )
    assert [h.val_accuracy for h in summary.history] == [5.0]


def test_report_to_tensorboard_writes_event_files_into_the_students_folder(tiny_lm, data_dir, tmp_path):
    from tensorboardX.event_file_writer import EventFileWriter  # noqa: F401 (the writer the Trainer falls back to)

    cfg = TrainConfig(epochs=2, batch_size=4, learning_rate=1e-3, checkpoint=True, report_to=["tensorboard"])
    train(
        _examples(data_dir, 48),
        "ft_cot",
        StudentConfig(model=str(tiny_lm)),
        cfg,
        tmp_path / "out",
        _scripted([10.0, 20.0], {}),
    )
    events = list((tmp_path / "out" / "logs").glob("events.out.tfevents.*"))
    assert events and sum(e.stat().st_size for e in events) > 100  # losses and the learning rate, logged
    assert not (tmp_path / "out" / "checkpoints").exists()  # removed, and the logs were not in it
    from transformers.integrations.integration_utils import INTEGRATION_TO_CALLBACK

    assert set(TRACKERS) == set(INTEGRATION_TO_CALLBACK)  # the config's list is transformers' own
    with pytest.raises(ValidationError, match="tensorbord"):
        TrainConfig(report_to=["tensorbord"])


def test_precision(tiny_lm, data_dir, tmp_path):
    assert precision_args("fp32")["bf16"] is False
    if not torch.cuda.is_available():
        assert precision_args("auto") == {"bf16": False, "tf32": False}  # the CPU default stays float32
    summary = train(
        _examples(data_dir, 8),
        "ft_cot",
        StudentConfig(model=str(tiny_lm)),
        TrainConfig(epochs=1, batch_size=4, precision="bf16", checkpoint=False),
        tmp_path / "bf16",
    )
    assert summary.precision == "bf16"
    saved = AutoModelForCausalLM.from_pretrained(tmp_path / "bf16" / "best")
    assert all(p.dtype == torch.float32 for p in saved.parameters())  # autocast: weights stay float32


def test_bf16_on_a_gpu_without_it_is_a_one_line_error(monkeypatch):
    from ftcot.errors import UserError

    # No such GPU here: the question torch would answer on one is answered for it.
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: False)
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda *a, **k: "Tesla V100")
    with pytest.raises(UserError, match="bf16 is not supported by Tesla V100"):
        precision_args("bf16")


def test_generation_budget_covers_the_curated_completions(tiny_lm, data_dir, tmp_path):
    tokenizer = AutoTokenizer.from_pretrained(tiny_lm)
    cfg = RunConfig.model_validate({"task": "coin_flip", "run_dir": str(tmp_path)})
    assert generation_budget(context(cfg), tokenizer, "decoder") == FALLBACK_MAX_NEW_TOKENS  # nothing curated yet
    examples = _examples(data_dir, 200)
    write_jsonl([e.model_dump() for e in examples], tmp_path / "curate" / "train_ft_cot.jsonl")
    lengths = [
        len(tokenizer(" " + e.rationale + " --> " + e.answer, add_special_tokens=False)["input_ids"]) + 1
        for e in examples
    ]
    budget = generation_budget(context(cfg), tokenizer, "decoder")
    assert budget == int(np.percentile(lengths, 99, method="higher")) + MAX_NEW_TOKENS_MARGIN
    assert sum(n > budget for n in lengths) <= len(lengths) // 100  # at most 1% would be cut off
    fixed = RunConfig.model_validate({"task": "coin_flip", "run_dir": str(tmp_path), "evaluate": {"max_new_tokens": 7}})
    assert generation_budget(context(fixed), tokenizer, "decoder") == 7


def test_diagnostics_name_cut_offs_unparsed_outputs_and_one_answer_for_all():
    fmt = load_task("tracking_shuffled_objects").answer_format
    predictions = [
        Prediction(sample_index=i, question="", prompt="", correct=p["prediction"] == p["answer"], failure=None, **p)
        for i, p in enumerate(
            [
                {"output": "Alice swaps ... --> (B)", "prediction": "B", "answer": "C"},
                {"output": "Bob has the --> B", "prediction": "B", "answer": "C"},
                {"output": "Claire then swaps with", "prediction": None, "answer": "A"},  # cut off before -->
                {"output": "so --> (C)", "prediction": "C", "answer": "C"},
            ]
        )
    ]
    d = diagnostics(predictions, "-->", fmt).dump()
    assert d == {
        "marker": "-->",
        "no_answer_marker": 25.0,
        "unparsed": 25.0,
        "most_frequent_prediction": "B",
        "most_frequent_share": 50.0,
        "majority_answer": "C",
        "majority_answer_share": 25.0,
    }
    assert diagnostics(predictions, None, fmt).no_answer_marker is None


def test_torchrun_two_processes_validate_and_write_once(tiny_lm, data_dir, tmp_path):
    """Under torchrun (gloo on the CPU) both ranks train, but only rank 0 validates and writes best/, history.json
    and summary.json; the run's files are those of one validation per epoch."""
    config = tmp_path / "c.yaml"
    config.write_text(
        yaml.safe_dump(
            {
                "task": "coin_flip",
                "run_dir": str(tmp_path / "run"),
                "data_dir": str(data_dir),
                "teacher": {"max_questions": 60},
                "student": {"model": str(tiny_lm)},
                "train": {
                    "methods": ["ft_cot"],
                    "epochs": 3,
                    "batch_size": 4,
                    "learning_rate": 1e-3,
                    "checkpoint": False,
                },
                "evaluate": {"max_new_tokens": 8, "batch_size": 16},
            }
        )
    )
    for stage in ("teach", "curate"):
        assert run_cli(stage, config).returncode == 0
    result = run_torchrun(config, data_dir)
    assert result.returncode == 0, result.stderr[-3000:]
    out = tmp_path / "run" / "students" / "ft_cot"
    log = result.stdout + result.stderr
    assert [log.count(f"ft_cot epoch {e}: validation accuracy") for e in (1, 2, 3)] == [1, 1, 1]
    assert log.count("train ft_cot: best epoch") == 1
    history = json.loads((out / "history.json").read_text())
    summary = json.loads((out / "summary.json").read_text())
    assert [h["epoch"] for h in history] == [1, 2, 3] and summary["history"] == history
    assert summary["processes"] == 2 and summary["epochs_trained"] == 3
    assert summary["best_epoch"] in (1, 2, 3) and AutoModelForCausalLM.from_pretrained(out / "best") is not None
    assert not list(out.glob("*.part")) and not list(out.glob("best*.part"))
