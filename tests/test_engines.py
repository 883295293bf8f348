"""The engine seam: the same student through `hf` (in process), `openai` (served by a loopback server that runs
it with transformers' own generate) and `ctranslate2` gives the same greedy predictions; self-consistency goes
through each; a failing server during evaluation is one line, and what it answered before is kept."""

import os

import pytest
import yaml
from helpers import run_cli, run_config

from ftcot.config import RunConfig, StudentConfig
from ftcot.engines import open_engine
from ftcot.engines.hf import HFEngine
from ftcot.evaluate import evaluate, self_consistency
from ftcot.loopback import OpenAIServer, TransformersStudent
from ftcot.students.load import load_student
from ftcot.tasks import load_task

METHODS = ("ft_cot", "vanilla", "zero_shot", "zero_shot_cot")


@pytest.fixture(scope="module")
def student(wide_lm):
    return wide_lm


@pytest.fixture
def served(student):
    model, tokenizer, _ = load_student(StudentConfig(model=str(student)))
    server = OpenAIServer()
    server.student, server.models = TransformersStudent(model, tokenizer), {"tiny"}
    yield server.start()
    server.stop()


def _config(tmp_path, data_dir, student, **evaluate) -> RunConfig:
    return run_config(
        tmp_path,
        data_dir,
        student={"model": str(student)},
        evaluate={"max_questions": 8, "max_new_tokens": 24, **evaluate},
    )


def test_the_engines_give_the_same_greedy_predictions_and_sample_for_self_consistency(
    student, served, data_dir, tmp_path
):
    task = load_task("coin_flip", data_dir)
    samples = task.split_samples("test")[:8]
    model, tokenizer, kind = load_student(StudentConfig(model=str(student)))
    hf = HFEngine(model, tokenizer, kind, 4)
    server = _config(
        tmp_path, data_dir, student, engine="openai", base_url=served.base_url, models={m: "tiny" for m in METHODS}
    )
    engines = {"openai": lambda m: open_engine(server, m, None, tmp_path / "eval", 4)}
    if __import__("importlib").util.find_spec("ctranslate2") or os.environ.get("CI") == "true":  # CI installs it
        ct2 = _config(tmp_path, data_dir, student, engine="ctranslate2")
        engines["ctranslate2"] = lambda m: open_engine(ct2, m, str(student), tmp_path / "eval", 4)
    for method in METHODS:
        ours, metrics = evaluate(task, hf, samples, method, 24)
        assert metrics.tokens_generated > 0
        for name, make in engines.items():
            theirs, _ = evaluate(task, make(method), samples, method, 24)
            assert [p.prediction for p in theirs] == [p.prediction for p in ours], (name, method)
            # Each engine stops where the method's rule holds: the hf engine at a token's end, the others at
            # the character, so theirs is ours or a prefix of it.
            assert all(o.output.startswith(t.output.rstrip()) for o, t in zip(ours, theirs)), (name, method)
    assert (tmp_path / "eval" / "ctranslate2" / "ft_cot" / "model.bin").is_file() or "ctranslate2" not in engines
    # Self-consistency through each: k samples a question, and at a temperature near 0 the vote is greedy's.
    greedy, _ = evaluate(task, hf, samples, "ft_cot", 24)
    for name, engine in {"hf": hf, **{n: make("ft_cot") for n, make in engines.items()}}.items():
        rows, sc = self_consistency(task, engine, samples, "ft_cot", 24, 3, 0.7, seed=1)
        assert len(rows) == 8 and all(len(r["outputs"]) == 3 for r in rows) and sc.k == 3, name
        cold, _ = self_consistency(task, engine, samples, "ft_cot", 24, 2, 1e-4, seed=1)
        assert [r["prediction"] for r in cold] == [g.prediction for g in greedy], name
    requests = served.completion_requests()
    assert {tuple(r["stop"]) for r in requests if "stop" in r} == {("\nQ:",)}  # zero-shot-CoT's made-up question
    assert any(r.get("n") == 3 and r["temperature"] == 0.7 and r["seed"] == 1 for r in requests)


def test_another_server_under_the_same_name_is_asked_not_answered_from_the_first(student, served, data_dir, tmp_path):
    task = load_task("coin_flip", data_dir)
    samples = task.split_samples("test")[:4]
    model, tokenizer, _ = load_student(StudentConfig(model=str(student)))
    other = OpenAIServer()
    other.student, other.models = TransformersStudent(model, tokenizer), {"tiny"}
    other.start()
    try:
        for server in (served, other, served):
            config = _config(
                tmp_path, data_dir, student, engine="openai", base_url=server.base_url, models={"ft_cot": "tiny"}
            )
            evaluate(task, open_engine(config, "ft_cot", None, tmp_path / "eval", 4), samples, "ft_cot", 8)
        # the second server answered for itself, and the first was not asked again
        assert len(other.completion_requests()) == 4 and len(served.completion_requests()) == 4
    finally:
        other.stop()


def test_ftcot_evaluate_runs_on_a_served_student_and_a_failing_server_is_one_line_that_keeps_what_came(
    student, served, data_dir, tmp_path
):
    config = tmp_path / "c.yaml"

    def write(**evaluate):
        config.write_text(
            yaml.safe_dump(
                _config(
                    tmp_path,
                    data_dir,
                    student,
                    engine="openai",
                    base_url=served.base_url,
                    models={"zero_shot": "tiny"},
                    concurrency=1,
                    max_attempts=2,
                    timeout_s=2,
                    **evaluate,
                ).model_dump(mode="json")
            )
        )

    write()
    served.faults.extend([("ok",)] * 3 + [("status", 500)] * 16)  # three answers, then a server that fails
    failed = run_cli("evaluate", config, "--method", "zero_shot")
    assert failed.returncode == 2 and failed.stderr.count("\n") == 1, failed.stderr
    assert "student server" in failed.stderr and "failed after 2 attempts" in failed.stderr
    served.faults.clear()
    asked = len(served.completion_requests())
    done = run_cli("evaluate", config, "--method", "zero_shot")
    assert done.returncode == 0, done.stderr
    assert len(served.completion_requests()) == asked + 5  # only the 5 questions it had no answer for
    metrics = yaml.safe_load((tmp_path / "run" / "eval" / "zero_shot" / "metrics.json").read_text())
    assert metrics["n"] == 8 and metrics["engine"] == "openai"
    # The whole run's evaluate stage: the methods the server serves, and the teacher from its records.
    assert run_cli("teach", config).returncode == 0  # the recorded teacher
    whole = run_cli("evaluate", config)
    assert whole.returncode == 0, whole.stderr
    evaluated = {p.name for p in (tmp_path / "run" / "eval").iterdir() if p.is_dir()}
    assert "zero_shot" in evaluated and "vanilla" not in evaluated and "ft_cot" not in evaluated


@pytest.mark.parametrize(
    "fault, expected",
    [
        ("down", "failed after 2 attempts: Connect"),
        ("slow", "failed after 2 attempts: .*Timeout"),
        ("malformed", "failed after 2 attempts"),
        ("html", "failed after 2 attempts"),
        ("wrong model", "evaluate request rejected by .*HTTP 404: .*does not exist"),
        ("no key", r"MY_KEY \(evaluate.api_key_env\) is not set"),
        ("unserved method", "evaluate.models names no served model for vanilla"),
    ],
)
def test_a_server_fault_during_evaluation_is_one_line(student, served, data_dir, tmp_path, fault, expected):
    import re

    evaluate = {
        "engine": "openai",
        "base_url": served.base_url,
        "models": {"zero_shot": "tiny"},
        "max_attempts": 2,
        "timeout_s": 1,
        "concurrency": 1,
    }
    method = "zero_shot"
    served.student = None  # canned answers: no generation left running in a server thread at exit
    if fault == "down":
        served.stop()
    elif fault == "slow":
        served.faults.extend([("delay", 3)] * 16)  # every attempt of the 8 questions
    elif fault in ("malformed", "html"):
        served.faults.extend(
            [("malformed",) if fault == "malformed" else ("body", b"<html>busy</html>", "text/html")] * 16
        )
    elif fault == "wrong model":
        evaluate["models"] = {"zero_shot": "nope"}
    elif fault == "no key":
        evaluate["api_key_env"] = "MY_KEY"
    else:
        method = "vanilla"
    config = tmp_path / "c.yaml"
    config.write_text(yaml.safe_dump(_config(tmp_path, data_dir, student, **evaluate).model_dump(mode="json")))
    result = run_cli("evaluate", config, "--method", method, env={"MY_KEY": ""})
    assert result.returncode == 2 and result.stderr.count("\n") == 1, result.stderr
    assert re.search(expected, result.stderr), result.stderr
    assert "Traceback" not in result.stderr


def test_an_openai_engine_needs_a_server_and_names(tmp_path):
    config = tmp_path / "c.yaml"
    config.write_text(yaml.safe_dump({"task": "coin_flip", "evaluate": {"engine": "openai"}}))
    result = run_cli("config", config)
    assert result.returncode == 2 and "give base_url and models" in result.stderr
    config.write_text(
        yaml.safe_dump(
            {
                "task": "coin_flip",
                "evaluate": {
                    "engine": "openai",
                    "base_url": "http://u:secret@127.0.0.1:1/v1",
                    "models": {"ft_cot": "x"},
                },
            }
        )
    )
    result = run_cli("config", config)
    assert result.returncode == 2 and "holds credentials" in result.stderr and "secret" not in result.stderr


def test_a_server_that_returns_one_choice_is_asked_again_with_the_seed_moved_on(student, served, data_dir, tmp_path):
    """llama.cpp answers one choice whatever n asks: each further sample of a question gets the next seed, not
    the same one (which would give the same text k times)."""
    served.honour_n = False
    task = load_task("coin_flip", data_dir)
    cfg = _config(tmp_path, data_dir, student, engine="openai", base_url=served.base_url, models={"ft_cot": "tiny"})
    engine = open_engine(cfg, "ft_cot", None, tmp_path / "eval", 4)
    rows, _ = self_consistency(task, engine, task.split_samples("test")[:2], "ft_cot", 8, 3, 0.9, seed=5)
    seeds = sorted(r["seed"] for r in served.completion_requests())
    assert seeds == [5, 5, 6, 6, 7, 7] and all(len(r["outputs"]) == 3 for r in rows)


def test_what_an_engine_keeps_is_remade_when_the_student_is_retrained_and_only_then(student, tmp_path):
    import shutil

    from ftcot.engines import weights_stamp

    copy = tmp_path / "best"
    shutil.copytree(student, copy)
    stamp = weights_stamp(str(copy))
    (copy / "README.md").write_text("the model card, rewritten after each evaluation")
    assert weights_stamp(str(copy)) == stamp
    weights = next(copy.glob("*.safetensors"))
    weights.write_bytes(weights.read_bytes())  # retrained: new weights (a new time)
    os.utime(weights, ns=(1, 1))
    assert weights_stamp(str(copy)) != stamp and weights_stamp(None) == "base"
