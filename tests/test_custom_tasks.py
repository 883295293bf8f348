"""A user's own task, declared in the config: every reader, every stage, and one-line errors for bad data."""

import json
import random
import re

import pytest
import yaml
from helpers import invoke_cli, run_cli, run_config, write_table

from ftcot.errors import UserError
from ftcot.loopback import OpenAIServer
from ftcot.tasks import TaskDecl, load_task
from ftcot.tasks.answers import parse_prediction
from ftcot.teachers.records import TeacherCompletion, write_completion_dataset


def _questions(n: int, seed: int) -> list[dict]:
    rng = random.Random(seed)
    rows = []
    for i in range(n):
        a, b = rng.randint(1, 50), rng.randint(1, 50)
        rows.append({"id": f"q{seed}-{i}", "question": f"What is {a} plus {b}?", "answer": str(a + b)})
    return rows


def _sum_teacher(prompt: str, index: int) -> str:
    """A teacher that adds: step 1 reasons, step 2 answers."""
    a, b = map(int, re.search(r"What is (\d+) plus (\d+)\?", prompt).groups())
    if prompt.endswith("Let's think step by step."):
        return f" {a} plus {b} makes {a + b}."
    return f" {a + b}."


@pytest.mark.parametrize("suffix", [".jsonl", ".csv", ".parquet", "folder"])
def test_every_reader_gives_the_same_samples(tmp_path, suffix):
    train = write_table(_questions(20, 1), tmp_path / f"train{suffix if suffix != 'folder' else ''}")
    test = write_table(_questions(5, 2), tmp_path / f"test{suffix if suffix != 'folder' else ''}")
    spec = load_task(
        TaskDecl(
            name=f"sums_{suffix.strip('.')}", train=str(train), test=str(test), answer_format="number", id_field="id"
        )
    )
    samples = spec.samples()
    assert spec.split() == {"train": list(range(20)), "test": list(range(20, 25))}
    assert [(s.question, s.answer) for s in samples.values()] == [
        (r["question"], r["answer"]) for r in _questions(20, 1) + _questions(5, 2)
    ]
    assert spec.answer_trigger == "Therefore, the answer (arabic numerals) is"


def test_choices_are_verbalized_and_answers_become_letters(tmp_path):
    rows = [
        {"q": "Which is red?", "options": ["sky", "apple", "grass"], "gold": "apple"},
        {"q": "Which is green?", "options": {"a": "sky", "b": "apple", "c": "grass"}, "gold": "(C)"},
    ]
    path = tmp_path / "train.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows * 5))
    spec = load_task(
        TaskDecl(
            name="colours",
            train=str(path),
            test_fraction=0.2,
            question_field="q",
            answer_field="gold",
            choices_field="options",
            answer_format="choice",
        )
    )
    samples = spec.samples()
    assert {(s.question, s.answer) for s in samples.values()} == {
        ("Which is red? Answer choices: (A) sky, (B) apple, (C) grass.", "B"),
        ("Which is green? Answer choices: (A) sky, (B) apple, (C) grass.", "C"),
    }
    assert spec.answer_trigger == "Therefore, among A through C, the answer is"
    assert len(spec.split()["test"]) == 2


BAD = {  # the row that breaks it, and the one line that must name file, row and field
    "missing field": ({"question": "What is 1 plus 1?"}, r"train\.jsonl: row 3: no 'answer'"),
    "empty question": ({"question": "  ", "answer": "2"}, r"train\.jsonl: row 3: 'question' is empty"),
    "answer not a number": (
        {"question": "What is 1 plus 1?", "answer": "two"},
        r"train\.jsonl: row 3: 'answer' 'two' is not a valid number answer",
    ),
    "duplicate id": (
        {"id": "q1-0", "question": "What is 1 plus 1?", "answer": "2"},
        r"train\.jsonl: row 3: 'id' 'q1-0' repeats .*row 1",
    ),
}


@pytest.mark.parametrize("case", BAD)
def test_bad_custom_data_is_one_line_naming_file_row_and_field(tmp_path, data_dir, case):
    row, pattern = BAD[case]
    rows = _questions(2, 1) + [row]
    (tmp_path / "train.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    write_table(_questions(5, 2), tmp_path / "test.jsonl")
    config = tmp_path / "c.yaml"
    config.write_text(
        yaml.safe_dump(
            {
                "task": {
                    "name": "sums",
                    "train": str(tmp_path / "train.jsonl"),
                    "test": str(tmp_path / "test.jsonl"),
                    "answer_format": "number",
                    "id_field": "id" if case == "duplicate id" else None,
                },
                "run_dir": str(tmp_path / "run"),
                "data_dir": str(data_dir),
            }
        )
    )
    result = invoke_cli("teach", config)
    assert result.returncode == 2 and result.stderr.count("\n") == 1 and re.search(pattern, result.stderr), (
        result.stderr
    )
    assert not (tmp_path / "run").exists()


def test_a_choice_letter_out_of_range_is_named(tmp_path):
    path = tmp_path / "train.jsonl"
    path.write_text(json.dumps({"question": "Which?", "choices": ["x", "y"], "answer": "D"}) + "\n")
    with pytest.raises(
        UserError,
        match=r"train\.jsonl: row 1: 'answer' 'D' is not a choice's text nor a letter in "
        r"range \(A-B\)",
    ):
        load_task(
            TaskDecl(name="letters", train=str(path), test=str(path), choices_field="choices", answer_format="choice")
        )


def _run_config(tmp_path, data_dir, tiny_lm, teacher: dict):
    train = write_table(_questions(200, 1), tmp_path / "train.jsonl")
    test = write_table(_questions(50, 2), tmp_path / "test.jsonl")
    (tmp_path / "sums.yaml").write_text(
        yaml.safe_dump(
            {"name": "sums", "train": train.name, "test": test.name, "answer_format": "integer", "id_field": "id"}
        )
    )
    return run_config(
        tmp_path,
        data_dir,
        str(tmp_path / "sums.yaml"),
        as_file=True,
        teacher={"num_samples": 1, "teach_on": ["train", "test"], **teacher},
        student={"model": str(tiny_lm)},
        train={"epochs": 1, "batch_size": 8, "learning_rate": 0.001, "max_examples": 32},
        evaluate={"max_questions": 8, "max_new_tokens": 12},
    )


def _check_run(result, tmp_path):
    assert result.returncode == 0, result.stderr[-3000:]
    run = tmp_path / "run"
    curated = json.loads((run / "curate" / "summary.json").read_text())
    assert curated["kept"] == 180 and curated["val_questions"] == 20  # the teacher adds correctly
    for method in ("teacher", "zero_shot", "zero_shot_cot", "ft_cot", "vanilla"):
        assert json.loads((run / "eval" / method / "metrics.json").read_text())["task"] == "sums"
    assert json.loads((run / "eval" / "teacher" / "metrics.json").read_text())["accuracy"] == 100.0
    assert not (run / "eval" / "few_shot_cot").exists()  # the task has no few-shot prompt: left out
    assert "| method: student | sums |" in (run / "report.md").read_text()


def test_a_custom_task_runs_end_to_end_with_the_openai_backend(tmp_path, data_dir, tiny_lm):
    server = OpenAIServer(responder=_sum_teacher).start()
    try:
        config = _run_config(
            tmp_path,
            data_dir,
            tiny_lm,
            {"backend": "openai", "model": "adder", "base_url": server.base_url, "api_key_env": None},
        )
        result = run_cli("run", config)
    finally:
        server.stop()
    _check_run(result, tmp_path)
    unique = {r["question"] for r in _questions(200, 1) + _questions(50, 2)}
    assert len(server.completion_requests()) == 2 * len(unique)  # a question asked twice is paid once
    listed = run_cli("tasks", "--config", config, "--data-dir", data_dir).stdout
    assert re.search(r"sums +│ +sums +│ +integer +│ +200 +│ +50", listed), listed
    shown = run_cli("show", "sums", "0", "--config", config, "--data-dir", data_dir).stdout
    assert "What is" in shown and "evaluate ft_cot: Fine-tune-CoT" in shown


def test_a_custom_task_runs_end_to_end_with_recorded_completions(tmp_path, data_dir, tiny_lm):
    rows = _questions(200, 1) + _questions(50, 2)
    records = []
    for index, row in enumerate(rows):
        step1 = f"Q: {row['question']}\nA: Let's think step by step."
        rationale = _sum_teacher(step1, 0)
        trigger = "Therefore, the answer (arabic numerals) is"
        records.append(
            TeacherCompletion(
                task="sums",
                sample_index=index,
                completion_index=0,
                question=row["question"],
                answer=row["answer"],
                reasoning_prompt=step1,
                reasoning_completion=rationale,
                answer_prompt=f"{step1}{rationale} \n{trigger}",
                answer_completion=f" {row['answer']}.",
                model="adder",
                params={},
            )
        )
    write_completion_dataset(records, tmp_path / "sums_adder.json")
    config = _run_config(
        tmp_path, data_dir, tiny_lm, {"backend": "recorded", "records": str(tmp_path / "sums_adder.json")}
    )
    _check_run(run_cli("run", config), tmp_path)


def test_exports_load_where_users_go_next_and_students_carry_a_model_card(tmp_path, data_dir, tiny_lm):
    import datasets
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from trl import SFTConfig, SFTTrainer

    server = OpenAIServer(responder=_sum_teacher).start()
    try:
        config = _run_config(
            tmp_path,
            data_dir,
            tiny_lm,
            {"backend": "openai", "model": "adder", "base_url": server.base_url, "api_key_env": None},
        )
        assert run_cli("run", config).returncode == 0
    finally:
        server.stop()
    run = tmp_path / "run"
    for fmt in ("hf", "messages", "paper"):
        result = run_cli("export", run, "--to", tmp_path / "out", "--format", fmt)
        assert result.returncode == 0, result.stderr
    hf = datasets.load_from_disk(str(tmp_path / "out" / "hf"))
    assert hf["ft_cot"].num_rows == 180 and hf["vanilla"].num_rows == 180
    assert hf["ft_cot"][0]["completion"].endswith(f" --> {hf['ft_cot'][0]['answer']}")
    assert (
        datasets.load_dataset("parquet", data_files=str(tmp_path / "out" / "ft_cot.parquet"), split="train").num_rows
        == 180
    )
    # TRL reads the messages file as a conversational dataset and tokenizes it with the chat template.
    tokenizer = AutoTokenizer.from_pretrained(tiny_lm)
    tokenizer.chat_template = (
        "{% for m in messages %}{{ m['role'] }}: {{ m['content'] }}\n{% endfor %}"
        "{% if add_generation_prompt %}assistant:{% endif %}"
    )
    messages = datasets.load_dataset("json", data_files=str(tmp_path / "out" / "ft_cot.messages.jsonl"), split="train")
    trainer = SFTTrainer(
        model=AutoModelForCausalLM.from_pretrained(tiny_lm),
        processing_class=tokenizer,
        train_dataset=messages,
        args=SFTConfig(output_dir=str(tmp_path / "sft"), max_steps=1, report_to=[], use_cpu=True),
    )
    assert trainer.train_dataset.num_rows == 180 and "input_ids" in trainer.train_dataset.column_names
    paper = json.loads((tmp_path / "out" / "sums_adder.json").read_text())
    assert sum(len(v) for v in paper["data"].values()) == 250
    card = (run / "students" / "ft_cot" / "best" / "README.md").read_text()
    metrics = json.loads((run / "eval" / "ft_cot" / "metrics.json").read_text())
    assert f"{metrics['accuracy']}% on 8 test questions" in card and "base_model: " in card
    assert "| task | sums |" in card and "| made by | `ftcot run " in card and "openai:adder" in card
    assert "none: trained on the gold answers" in (run / "students" / "vanilla" / "best" / "README.md").read_text()
    assert AutoModelForCausalLM.from_pretrained(run / "students" / "ft_cot" / "best") is not None
    bad = run_cli("export", run, "--to", tmp_path / "out", "--format", "csv")
    assert bad.returncode == 2 and "unknown export format" in bad.stderr


def _register_rows(tmp_path, rows, name="t", suffix=".jsonl", **decl):
    path = tmp_path / f"{name}{suffix}"
    if suffix == ".csv":
        path.write_text(rows)
    else:
        path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return load_task(TaskDecl(name=name, train=str(path), test=str(path), **decl))


def test_gold_answers_take_the_form_the_parser_compares(tmp_path):
    spec = _register_rows(
        tmp_path,
        [{"question": "q?", "answer": 18.0}, {"question": "r?", "answer": 1e-7}],
        "floats",
        answer_format="number",
    )
    assert [s.answer for s in spec.samples().values()][:2] == ["18", "0.0000001"]
    assert spec.answer_format.matches("18", "18")
    ints = _register_rows(tmp_path, [{"question": "q?", "answer": 18.0}], "ints", answer_format="integer")
    assert ints.answer_format.matches("18", ints.samples()[0].answer)
    with pytest.raises(UserError, match=r"row 1: 'answer' '3.5' is not a valid integer answer"):
        _register_rows(tmp_path, [{"question": "q?", "answer": "3.5"}], "half", answer_format="integer")
    text = _register_rows(tmp_path, "question,answer\nzip?,01234\n", "zips", ".csv", answer_format="text")
    assert text.samples()[0].answer == "01234" and text.answer_format.name == "text"
    yes = _register_rows(
        tmp_path,
        [{"question": "q?", "answer": True}, {"question": "r?", "answer": "No."}],
        "yn",
        answer_format="yes_no",
    )
    assert [s.answer for s in yes.samples().values()] == ["yes", "No"] * 2  # as written, without its period


def test_regex_formats_read_the_group_and_never_an_empty_match(tmp_path):
    spec = _register_rows(tmp_path, [{"question": "q?", "answer": "ID-42"}], "ids", answer_format=r"regex:ID-(\d+)")
    parsed = parse_prediction(spec.answer_format, " The ticket is ID-42.")
    assert parsed == "42" and spec.answer_format.matches(parsed, "ID-42")
    digits = _register_rows(tmp_path, [{"question": "q?", "answer": "7"}], "digits", answer_format=r"regex:\d*")
    assert parse_prediction(digits.answer_format, "so it is 7") == "7"


@pytest.mark.parametrize(
    "case,rows,pattern",
    [
        ("dollars", [{"question": "q?", "answer": "$5"}], r"row 1: 'answer' '\$5' is not a valid number answer"),
        (
            "too many choices",
            [{"question": "q?", "choices": [str(i) for i in range(28)], "answer": "27"}],
            r"row 1: 'choices': 28 choices; at most 26",
        ),
    ],
)
def test_more_bad_rows_are_one_line_with_their_place(tmp_path, case, rows, pattern):
    decl = {"answer_format": "number"} if case == "dollars" else {"answer_format": "choice", "choices_field": "choices"}
    with pytest.raises(UserError, match=pattern):
        _register_rows(tmp_path, rows, "bad", **decl)


def test_a_malformed_file_is_one_line_with_the_readers_own_reason(tmp_path, data_dir):
    (tmp_path / "train.jsonl").write_text('{"question": "q?", "answer": "1"}\n{"question": \n')
    config = tmp_path / "c.yaml"
    config.write_text(
        yaml.safe_dump(
            {
                "task": {"name": "broken", "train": str(tmp_path / "train.jsonl"), "test_fraction": 0.5},
                "data_dir": str(data_dir),
            }
        )
    )
    result = invoke_cli("tasks", "--config", config, "--data-dir", data_dir)
    assert result.returncode == 2 and result.stderr.count("\n") == 1, result.stderr
    assert "train.jsonl: cannot read it as a table" in result.stderr and "DatasetGenerationError" not in result.stderr


def test_choice_letters_in_the_questions_text_size_the_format(tmp_path):
    spec = _register_rows(tmp_path, [{"question": "(A) x (G) y?", "answer": "G"}], "seven", answer_format="choice")
    assert spec.answer_format.name == "letter A-G" and "A through G" in spec.answer_trigger


def test_changed_or_reordered_data_reruns_the_stages_and_mismatched_records_are_never_trained(tmp_path):
    from ftcot.config import CurateConfig
    from ftcot.curate import curate

    rows = _questions(6, 1)
    first = _register_rows(tmp_path, rows, "sums", answer_format="integer").digest
    again = _register_rows(tmp_path, rows, "sums", answer_format="integer")
    reordered = _register_rows(tmp_path, rows[::-1], "sums", answer_format="integer").digest
    assert first == again.digest != reordered
    samples = list(again.samples().values())
    record = TeacherCompletion(
        task="sums",
        sample_index=0,
        question=samples[1].question,
        answer=samples[0].answer,
        reasoning_prompt="",
        reasoning_completion="it is",
        answer_prompt="",
        answer_completion=f" {samples[0].answer}.",
        model="m",
    )
    kept, fates = curate(again, [record], samples, CurateConfig(), 1)
    assert kept == [] and fates == [(record, "question_mismatch")]


def test_a_file_rewritten_under_its_old_mtime_is_read_afresh(tmp_path):
    import os

    path = tmp_path / "t.jsonl"
    path.write_text(json.dumps({"question": "old?", "answer": "1"}) + "\n")
    load_task(TaskDecl(name="fresh", train=str(path), test=str(path), answer_format="integer"))
    stat = path.stat()
    path.write_text(json.dumps({"question": "new?", "answer": "2"}) + "\n")
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns))  # as cp -p and rsync -a leave it
    fresh = load_task(TaskDecl(name="fresh", train=str(path), test=str(path), answer_format="integer"))
    assert fresh.samples()[0].question == "new?"


def test_export_works_on_a_run_made_stage_by_stage_and_refuses_an_empty_one(tmp_path, data_dir):
    config = run_config(tmp_path, data_dir, as_file="c.yaml", teacher={"max_questions": 12})
    for stage in ("teach", "curate"):
        assert run_cli(stage, config).returncode == 0
    result = run_cli("export", tmp_path / "run", "--to", tmp_path / "out", "--format", "messages")
    assert result.returncode == 0, result.stderr
    assert len((tmp_path / "out" / "ft_cot.messages.jsonl").read_text().splitlines()) > 0
    (tmp_path / "empty" / "curate").mkdir(parents=True)
    empty = run_cli("export", tmp_path / "empty", "--to", tmp_path / "out2", "--format", "hf")
    assert empty.returncode == 2 and "no curated examples" in empty.stderr and not (tmp_path / "out2").exists()


def test_a_declaration_with_split_files_offsets_and_no_default_split(tmp_path):
    rows = [{"question": f"q{i}?", "answer": str(i)} for i in range(4)]
    (tmp_path / "train.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    (tmp_path / "test.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows[:2]))
    (tmp_path / "mine.json").write_text(json.dumps({"train": [0, 1, 2], "test": [10, 11]}))
    decl = {
        "name": "offset",
        "train": str(tmp_path / "train.jsonl"),
        "test": str(tmp_path / "test.jsonl"),
        "answer_format": "integer",
    }
    task = load_task(TaskDecl(**decl, test_offset=10, splits={"mine": str(tmp_path / "mine.json")}))
    assert task.splits == ("mine",) and [s.question for s in task.split_samples("test", "mine")] == ["q0?", "q1?"]
    assert load_task(TaskDecl(**decl, test_offset=10)).split() == {"train": [0, 1, 2, 3], "test": [10, 11]}
    with pytest.raises(UserError, match="test_offset 2 is less than train's 4 rows"):
        load_task(TaskDecl(**decl, test_offset=2))
    (tmp_path / "empty.jsonl").write_text("")
    with pytest.raises(UserError, match=r"empty.jsonl: (no rows|cannot read it as a table)"):
        load_task(TaskDecl(**decl | {"train": str(tmp_path / "empty.jsonl")}))
