import json
import shutil
from pathlib import Path

import minidata
import pytest
import yaml
from helpers import invoke_cli, run_cli, run_config


def _one_line_error(result, pattern):
    import re

    assert result.returncode == 2, result
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert re.search(pattern, lines[0]), lines[0]
    assert "Traceback" not in result.stderr


def test_tasks_lists_every_task_with_its_counts_and_teacher_coverage(data_dir):
    result = invoke_cli("tasks", "--data-dir", data_dir)
    assert result.returncode == 0, result.stderr
    rows = {
        line.split()[1]: [c.strip() for c in line.split("│")[1:-1]]
        for line in result.stdout.splitlines()
        if line.startswith("│")
    }
    assert list(rows) == list(minidata.SIZES)
    for task, cells in rows.items():
        _, train, test = minidata.counts(task)
        covered = [str(train), str(test)] if task in minidata.TEACHER_TASKS else ["0", "0"]
        assert cells[3:] == [f"{train}" + (" (raw file missing)" if task == "aqua" else ""), str(test), *covered]


def test_tasks_lists_the_real_counts_and_teacher_coverage(shared_data):
    result = invoke_cli("tasks", "--data-dir", shared_data)
    assert result.returncode == 0, result.stderr
    rows = {line.split()[1]: line for line in result.stdout.splitlines() if line.startswith("│")}
    assert len(rows) == 12
    assert "│ 420 " in rows["multiarith"] and "│ 180 " in rows["multiarith"]
    assert "raw file missing" in rows["aqua"]
    # gsm8k: teacher records cover only the test side.
    cells = [c.strip() for c in rows["gsm8k"].split("│")[1:-1]]
    assert cells[3:] == ["7473", "1319", "0", "1319"]


def test_show_prints_teacher_and_student_views(data_dir):
    from ftcot.tasks import load_task

    result = invoke_cli("show", "multiarith", "0", "--data-dir", data_dir)
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert "A: Let's think step by step." in out
    assert "teach: text-davinci-002's completion 0 (recorded; steps 1 and 2)" in out
    assert " ###" in out and f"--> {load_task('multiarith', data_dir).samples([0])[0].answer}<eos>" in out


def test_show_walks_a_sample_through_every_stage_and_method(data_dir):
    """What `ftcot show` prints for each method comes from the method table alone: its label, its prompt, the
    pair a trained method learns, and how its answer is read back."""
    from ftcot.curate import training_frame
    from ftcot.methods import METHODS, PromptContext
    from ftcot.tasks import load_task
    from ftcot.tasks.prompts import load_few_shot_prompts
    from ftcot.teachers.records import read_shared_jsonl

    out = invoke_cli("show", "coin_flip", "3", "--data-dir", data_dir).stdout
    task = load_task("coin_flip", data_dir)
    sample = task.samples([3])[3]
    record = next(
        r
        for r in read_shared_jsonl(data_dir / "teacher" / "text-davinci-002__zs_cot" / "coin_flip.jsonl")
        if r.sample_index == 3
    )
    question, rationale, answer, _ = training_frame(task, sample, record)
    context = PromptContext("decoder", "coin_flip", load_few_shot_prompts(data_dir))
    assert "curate\ncompletion 0: parsed " in out
    for name, method in METHODS.items():
        assert f"evaluate {name}: {method.label}" in out
        assert method.prompt(question, context)[-200:] in out.replace("\n... ", "\n")
        if method.pair:
            prompt, completion = method.pair(question, rationale, answer, "decoder")
            assert f"train {name}: {method.label}" in out and f"{prompt}\n{completion}<eos>" in out
    assert out.count("its training completion reads") == sum(m.pair is not None for m in METHODS.values())


def test_an_invocation_in_this_process_is_a_process_of_its_own(data_dir, tmp_path):
    """invoke_cli, which most of these tests use: the command line and env are the invocation's alone, and what a
    process gives up as it ends (the run folder's lock) is free for the next process."""
    import os

    from ftcot import files

    elsewhere = invoke_cli("show", "coin_flip", "1", env={"FTCOT_DATA_DIR": str(tmp_path / "none")})
    assert elsewhere.returncode == 2 and str(tmp_path / "none") in elsewhere.stderr, elsewhere.stderr
    assert os.environ["FTCOT_DATA_DIR"] == str(data_dir)
    config = run_config(tmp_path, data_dir, as_file=True, teacher={"backend": "recorded", "max_questions": 2})
    held = dict(files._held)  # what earlier tests in this process hold (their stages ran in it)
    result = invoke_cli("teach", config)
    assert result.returncode == 0 and files._held == held, result.stderr
    assert f"(`ftcot teach {config}`" in (tmp_path / "run" / "teacher" / ".lock").read_text()
    again = run_cli("teach", config)
    assert again.returncode == 0, again.stderr


def test_unknown_task(data_dir):
    _one_line_error(invoke_cli("show", "no_such_task", "1", "--data-dir", data_dir), r"^error: unknown task")


def test_a_mistake_in_a_process_of_its_own_is_one_line_and_exit_2(data_dir):
    """The entry point end to end, as a user runs it (the other tests invoke ftcot.cli.main in this process)."""
    _one_line_error(run_cli("show", "no_such_task", "1", "--data-dir", data_dir), r"^error: unknown task")


def test_index_out_of_range(data_dir):
    past = minidata.SIZES["coin_flip"]
    _one_line_error(
        invoke_cli("show", "coin_flip", past, "--data-dir", data_dir),
        rf"^error: sample index {past} out of range for task coin_flip",
    )


def test_missing_file(tmp_path):
    _one_line_error(
        invoke_cli("show", "coin_flip", "1", "--data-dir", tmp_path),
        r"^error: missing data file .*raw/coin_flip/coin_flip\.json: .*https://",
    )


def test_malformed_json_line_names_file_and_line(data_dir, tmp_path):
    for part in ("raw", "splits"):
        shutil.copytree(data_dir / part, tmp_path / part)
    teacher = tmp_path / "teacher" / "text-davinci-002__zs_cot"
    teacher.mkdir(parents=True)
    lines = (data_dir / "teacher/text-davinci-002__zs_cot/coin_flip.jsonl").read_text().splitlines()
    lines[4] = lines[4][:50]
    (teacher / "coin_flip.jsonl").write_text("\n".join(lines) + "\n")
    _one_line_error(
        invoke_cli("show", "coin_flip", "1", "--data-dir", tmp_path),
        r"^error: .*coin_flip\.jsonl:5: malformed JSON line",
    )


def test_config_errors(tmp_path):
    _one_line_error(invoke_cli("config", tmp_path / "absent.yaml"), r"^error: config file .* does not exist")
    bad_yaml = tmp_path / "bad.yaml"
    bad_yaml.write_text("task: coin_flip\n  split: [\n")
    _one_line_error(invoke_cli("config", bad_yaml), r"^error: .*bad\.yaml:\d+: not valid YAML")
    unreadable = tmp_path / "dir.yaml"
    unreadable.mkdir()
    _one_line_error(invoke_cli("config", unreadable), r"^error: cannot read config file")
    unknown_key = tmp_path / "unknown.yaml"
    unknown_key.write_text("task: coin_flip\nepochz: 3\n")
    _one_line_error(invoke_cli("config", unknown_key), r"^error: .*unknown\.yaml: epochz: unknown key$")
    bad_task = tmp_path / "task.yaml"
    bad_task.write_text("task: coin_flipp\n")
    _one_line_error(invoke_cli("config", bad_task), r"^error: .*task\.yaml: task: .*unknown task 'coin_flipp'")
    good = tmp_path / "good.yaml"
    good.write_text("task: coin_flip\n")
    result = invoke_cli("config", good)
    assert result.returncode == 0 and "split: default" in result.stdout


def test_data_fetch_and_verify_from_local_folder(shared_data, tmp_path):
    dest = tmp_path / "data"
    result = invoke_cli("data", "fetch", "--to", dest, "--source", shared_data)
    assert "58/59 files present and verified" in result.stdout
    _one_line_error(result, r"^error: 1 file\(s\) could not be fetched .* raw/AQuA/train\.json: missing at source")
    assert invoke_cli("data", "verify", "--data-dir", dest).returncode == 0
    corrupt = dest / "splits" / "coin_flip__default.json"
    corrupt.write_text("{}")
    _one_line_error(
        invoke_cli("data", "verify", "--data-dir", dest), r"^error: 1 data file\(s\) .* fail their checksum"
    )


def _copy_data(data_dir, dest):
    """The coin_flip files of the synthetic data, to break one of them."""
    for part in ("raw/coin_flip", "splits"):
        shutil.copytree(data_dir / part, dest / part)
    return dest


MISTAKES = {  # what the user did -> (config overrides, command, files to break, expected line)
    "run_dir is a file": ({"run_dir": "{tmp}/afile"}, ["teach"], {"afile": "x"}, r"cannot use .*afile/teacher"),
    "store holds junk": ({}, ["teach"], {"run/teacher/store.sqlite": "junk" * 300}, r"store\.sqlite is not a readable"),
    "records is a folder": (
        {"teacher": {"backend": "recorded", "records": "{tmp}"}},
        ["teach"],
        {},
        r"cannot read .*: Is a directory",
    ),
    "split of strings": (
        {"data_dir": "{tmp}/data"},
        ["teach"],
        {"data/splits/coin_flip__default.json": '{"train": ["a"], "test": []}'},
        r"coin_flip__default\.json: a split file must be",
    ),
    "raw record without its question": (
        {"data_dir": "{tmp}/data"},
        ["teach"],
        {"data/raw/coin_flip/coin_flip.json": '{"examples": [{"answer": "yes"}]}'},
        r"coin_flip\.json: row 1: no 'question'",
    ),
    "student is an empty folder": (
        {"student": {"model": "{tmp}/empty"}},
        ["evaluate", "--method", "zero_shot"],
        {"empty/.keep": ""},
        r"cannot load model .*empty",
    ),
    "unknown method": ({}, ["evaluate", "--method", "bogus"], {}, r"unknown method 'bogus'"),
    "budget on a local teacher": (
        {"teacher": {"backend": "hf", "model": "x", "max_cost": 1.0}},
        ["teach"],
        {},
        r"a budget is for a paid API",
    ),
    "untrained student": ({}, ["evaluate", "--method", "ft_cot"], {}, r"no trained ft_cot student"),
    "nothing curated to train on": (
        {},
        ["train", "--method", "ft_cot"],
        {"run/curate/train_ft_cot.jsonl": "", "run/curate/val.jsonl": ""},
        r"no training examples for ft_cot in .*train_ft_cot\.jsonl",
    ),
    "few-shot-CoT on a task without its prompt": (
        {"task": "tracking_shuffled_objects"},
        ["evaluate", "--method", "few_shot_cot"],
        {},
        r"evaluate few_shot_cot on task tracking_shuffled_objects: the "
        r"task names no few-shot-CoT prompt",
    ),
    "a method the server does not serve": (
        {"evaluate": {"engine": "openai", "base_url": "http://127.0.0.1:9/v1", "models": {"vanilla": "v"}}},
        ["evaluate", "--method", "zero_shot"],
        {},
        r"evaluate\.models names no served model for zero_shot",
    ),
    "the served student's key unset": (
        {
            "evaluate": {
                "engine": "openai",
                "base_url": "http://127.0.0.1:9/v1",
                "models": {"zero_shot": "z"},
                "api_key_env": "FTCOT_NO_SUCH_KEY",
            }
        },
        ["evaluate", "--method", "zero_shot"],
        {},
        r"FTCOT_NO_SUCH_KEY \(evaluate\.api_key_env\) is not set",
    ),
}


@pytest.mark.parametrize("mistake", MISTAKES)
def test_every_mistake_is_one_line_and_exit_2(mistake, data_dir, tmp_path):
    overrides, command, files, pattern = MISTAKES[mistake]
    _copy_data(data_dir, tmp_path / "data")
    for name, text in files.items():
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text(text)
    cfg = {
        "task": "coin_flip",
        "run_dir": str(tmp_path / "run"),
        "data_dir": str(data_dir),
        "teacher": {
            "backend": "openai",
            "model": "m",
            "base_url": "http://127.0.0.1:9/v1",
            "api_key_env": None,
            "max_questions": 2,
        },
    }
    for key, value in overrides.items():
        value = yaml.safe_load(yaml.safe_dump(value).replace("{tmp}", str(tmp_path)))
        cfg[key] = {**cfg.get(key, {}), **value} if isinstance(value, dict) else value
    (tmp_path / "c.yaml").write_text(yaml.safe_dump(cfg))
    # A cold model cache, as on a new machine: a check that needs no model comes before any model is converted.
    cache = tmp_path / "cache"
    _one_line_error(
        invoke_cli(command[0], tmp_path / "c.yaml", *command[1:], env={"FTCOT_CACHE_DIR": str(cache)}), pattern
    )
    assert not (cache / "models").exists()


def test_a_dry_run_writes_nothing(data_dir, tmp_path):
    cfg = tmp_path / "c.yaml"
    cfg.write_text(
        yaml.safe_dump(
            {
                "task": "coin_flip",
                "run_dir": str(tmp_path / "run"),
                "data_dir": str(data_dir),
                "teacher": {"backend": "openai", "model": "m", "api_key_env": None},
            }
        )
    )
    result = invoke_cli("teach", "--dry-run", cfg)
    assert result.returncode == 0 and "dry run" in result.stderr
    assert not (tmp_path / "run").exists()


METRICS = {"task": "coin_flip", "method": "ft_cot", "n": 2, "correct": 1, "accuracy": 50.0, "ci95": [10.0, 90.0]}


@pytest.mark.parametrize(
    "metrics,pattern",
    [
        ("{bad", ""),
        ('"a string"', "not an ftcot evaluate summary"),
        (json.dumps(METRICS), "made by an earlier ftcot .*: rerun `ftcot evaluate`$"),
        (json.dumps(METRICS | {"schema_version": 99}), "made by ftcot schema_version 99; .*: rerun `ftcot evaluate`$"),
        (json.dumps(METRICS | {"schema_version": 1, "accuracy": "high"}), "accuracy: "),
        (json.dumps(METRICS | {"schema_version": 1, "failures": {"kinds": [1]}}), "failures.kinds: "),
        (json.dumps(METRICS | {"schema_version": 1, "choice_by_content": {"n": 2}}), "choice_by_content.correct: "),
    ],
    ids=["bad json", "a string", "no schema_version", "another schema_version", "text", "kinds", "by content"],
)
def test_report_on_a_broken_metrics_file_is_one_line(metrics, pattern, tmp_path):
    run = tmp_path / "runs" / "a"
    (run / "eval" / "ft_cot").mkdir(parents=True)
    (run / "config.yaml").write_text(yaml.safe_dump({"task": "coin_flip", "teacher": {"num_samples": 1}}))
    (run / "eval" / "ft_cot" / "metrics.json").write_text(metrics)
    _one_line_error(invoke_cli("report", tmp_path / "runs"), r"^error: .*metrics\.json(:1)?: .*" + pattern)


@pytest.mark.parametrize(
    "text,pattern",
    [
        ("teacher: {prices: {m: {input: .inf, output: 1}}}", r"input: Input should be a finite number"),
        ("teacher: {timeout_s: .nan}", r"timeout_s: Input should be a finite number"),
        ("teacher: {requests_per_minute: 0.5}", r"requests_per_minute: Input should be greater than or equal to 1"),
        ("run_dir: ''", r"run_dir: String should have at least 1 character"),
        ('teacher: {answer_trigger: "\\ud800"}', r"lone surrogate"),
        ("teacher: " + "[" * 2000 + "]" * 2000, r"(nested too deeply|not valid YAML)"),
    ],
    ids=["infinite price", "nan timeout", "rate below 1", "empty run_dir", "lone surrogate", "deep nesting"],
)
def test_config_values_nobody_planned_for(tmp_path, text, pattern):
    path = tmp_path / "c.yaml"
    path.write_text("task: coin_flip\n" + text + "\n")
    _one_line_error(invoke_cli("config", path), pattern)


@pytest.mark.parametrize(
    "case",
    [
        "only a lock",
        "short ci",
        "diagnostics not a mapping",
        "history of numbers",
        "history without epochs",
        "unknown student",
    ],
)
def test_report_on_odd_run_folders_is_one_line_or_skips_what_is_not_a_method(case, tmp_path):
    run = tmp_path / "runs" / "a"
    (run / "eval").mkdir(parents=True)
    (run / "config.yaml").write_text(yaml.safe_dump({"task": "coin_flip", "teacher": {"num_samples": 1}}))
    (run / "eval" / ".lock").write_text("")
    metrics = METRICS | {"schema_version": 1}
    summary = json.loads((Path(__file__).parent / "artifacts" / "train_summary.json").read_text())
    summary["history"] = [summary["history"][0] | {"epoch": 1, "val_accuracy": 50.0}]
    if case != "only a lock":
        metrics |= {"short ci": {"ci95": []}, "diagnostics not a mapping": {"diagnostics": "x"}}.get(case, {})
        summary |= {
            "history of numbers": {"history": [1]},
            "history without epochs": {"history": [{"val_accuracy": 1}]},
        }.get(case, {})
        (run / "eval" / "ft_cot").mkdir()
        (run / "eval" / "ft_cot" / "metrics.json").write_text(json.dumps(metrics))
        student = run / "students" / ("other" if case == "unknown student" else "ft_cot")
        student.mkdir(parents=True)
        (student / "summary.json").write_text(json.dumps(summary))
    result = invoke_cli("report", tmp_path / "runs")
    if case == "unknown student":
        assert result.returncode == 0, result.stderr
    else:
        _one_line_error(result, r"^error: .*(no evaluation results|metrics\.json|summary\.json)")


def test_verify_without_a_data_folder_is_one_line(tmp_path):
    _one_line_error(invoke_cli("data", "verify", "--data-dir", tmp_path / "none"), r"no data folder at")
