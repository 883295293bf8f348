"""Multiple-choice data as people hold it: datasets' {label, text} mappings (ARC), one column per choice (MMLU's
CSV), answers as labels, texts, letters or 0-based indices, in every file type; bad rows as one line; an
ARC-shaped parquet and an MMLU-shaped CSV run end to end; a custom task needs no built-in data."""

import csv
import json

import pytest
import yaml
from helpers import invoke_cli, run_cli, write_table

from ftcot.tasks import TaskDecl, load_task
from ftcot.tasks.prompts import verbalize
from ftcot.teachers.records import TeacherCompletion, write_completion_dataset

COLORS = ["red", "green", "blue", "yellow"]


def _row(i: int) -> tuple[str, list[str], int]:
    """Question i, its choices and the index of the right one."""
    choices = COLORS[i % 4 :] + COLORS[: i % 4]
    right = (i * 3) % 4
    return f"Tom {i} has a {choices[right]} ball. What color is it?", choices, right


SHAPES = {  # name: (the row as the file holds it, the declaration's keys)
    "list, answer text": (lambda q, c, r: {"question": q, "choices": c, "answer": c[r]}, {"choices_field": "choices"}),
    "ARC mapping, number labels": (
        lambda q, c, r: {
            "question": q,
            "choices": {"label": [str(k + 1) for k in range(4)], "text": c},
            "answerKey": str(r + 1),
        },
        {"choices_field": "choices", "answer_field": "answerKey"},
    ),
    "ARC mapping, letter labels": (
        lambda q, c, r: {"question": q, "choices": {"label": list("ABCD"), "text": c}, "answerKey": "ABCD"[r]},
        {"choices_field": "choices", "answer_field": "answerKey"},
    ),
    "label to text": (
        lambda q, c, r: {"question": q, "options": dict(zip("wxyz", c)), "answer": "wxyz"[r]},
        {"choices_field": "options"},
    ),
    "index": (
        lambda q, c, r: {"question": q, "choices": c, "label": r},
        {"choices_field": "choices", "answer_field": "label"},
    ),
    "columns, letter": (
        lambda q, c, r: {"question": q, **dict(zip("ABCD", c)), "answer": "ABCD"[r]},
        {"choices_field": ["A", "B", "C", "D"]},
    ),
    "columns, index": (
        lambda q, c, r: {"question": q, **dict(zip("ABCD", c)), "answer": r},
        {"choices_field": ["A", "B", "C", "D"], "answer_index": True},
    ),
}
FLAT = ("columns, letter", "columns, index")  # the shapes a CSV can hold


@pytest.mark.parametrize(
    "shape, suffix",
    [
        (shape, suffix)
        for shape in SHAPES
        for suffix in (".jsonl", ".csv", ".parquet", "folder")
        if suffix != ".csv" or shape in FLAT
    ],
)  # a CSV cell holds no list
def test_every_choice_shape_in_every_file_type(tmp_path, shape, suffix):
    make, keys = SHAPES[shape]
    rows = [make(*_row(i)) for i in range(6)]
    path = write_table(rows, tmp_path / f"data{suffix if suffix != 'folder' else ''}")
    name = f"c{abs(hash((shape, suffix))) % 10**6}"
    spec = load_task(TaskDecl(name=name, train=str(path), test=str(path), answer_format="choice", **keys))
    samples = spec.samples()
    for i in range(6):
        question, choices, right = _row(i)
        assert (samples[i].question, samples[i].answer) == (verbalize(question, choices), "ABCD"[right])
    assert spec.answer_format.name == "letter A-D"


BAD = {  # the row that breaks it, and the one line naming the file, the row and the field
    "mapping without text": (
        {"choices": {"label": ["1", "2"]}, "answer": "1"},
        r"row 2: 'choices': a choices "
        r"mapping with 'label' needs 'text'",
    ),
    "labels and texts differ": (
        {"choices": {"label": ["1", "2", "3"], "text": ["x", "y"]}, "answer": "1"},
        r"row 2: 'choices': 3 labels for 2 texts",
    ),
    "answer not a label": (
        {"choices": {"label": ["1", "2"], "text": ["x", "y"]}, "answer": "7"},
        r"row 2: 'answer' '7' is not one of the labels \(1, 2\)",
    ),
    "index out of range": (
        {"choices": ["x", "y"], "answer": 2},
        r"row 2: 'answer' '2' is not an index of its 2 "
        r"choices \(0-1\)",
    ),
    "duplicate labels": (
        {"choices": {"label": ["1", "1"], "text": ["x", "y"]}, "answer": "1"},
        r"row 2: 'choices': label '1' repeats",
    ),
    "empty choice": ({"choices": ["x", " "], "answer": "x"}, r"row 2: 'choices': choice 2 is empty"),
}


@pytest.mark.parametrize("case", BAD)
def test_bad_choice_rows_are_one_line_naming_file_row_and_field(tmp_path, data_dir, case):
    row, pattern = BAD[case]
    first = {"question": "Which?", "choices": ["x", "y"], "answer": 0 if isinstance(row["answer"], int) else "x"}
    rows = [first, {"question": "Which?", **row}]  # a column of one type, as a file holds it
    (tmp_path / "train.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    config = tmp_path / "c.yaml"
    config.write_text(
        yaml.safe_dump(
            {
                "task": {
                    "name": "bad",
                    "train": str(tmp_path / "train.jsonl"),
                    "test_fraction": 0.5,
                    "choices_field": "choices",
                    "answer_format": "choice",
                },
                "run_dir": str(tmp_path / "run"),
                "data_dir": str(data_dir),
            }
        )
    )
    result = invoke_cli("teach", config)
    assert result.returncode == 2 and result.stderr.count("\n") == 1, result.stderr
    assert "train.jsonl: " in result.stderr and __import__("re").search(pattern, result.stderr), result.stderr
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize(
    "choices, answer, gold",
    [
        (["1", "2", "3", "4"], 2, "B"),  # an integer that is a choice's text is that choice
        ({"label": [1, 2, 3, 4], "text": ["w", "x", "y", "z"]}, 1, "A"),  # ... or its label
        ({"label": ["1", "2", "3", "4"], "text": ["w", "x", "y", "z"]}, 2, "B"),
        (["w", "x", "y", "z"], 2, "C"),  # else a 0-based index
        (["B", "C", "A"], "A", "C"),  # a list's text comes before the letters of its positions
    ],
)
def test_integers_and_letters_that_name_a_choice_are_read_as_that_choice(tmp_path, choices, answer, gold):
    path = tmp_path / "t.jsonl"
    path.write_text(json.dumps({"question": "Which?", "choices": choices, "answer": answer}) + "\n")
    spec = load_task(
        TaskDecl(name="ints", train=str(path), test=str(path), choices_field="choices", answer_format="choice")
    )
    assert spec.samples()[0].answer == gold


def test_an_integer_answer_of_another_format_stays_itself(tmp_path):
    path = tmp_path / "t.jsonl"
    path.write_text(json.dumps({"question": "How many?", "choices": ["1", "2", "3"], "answer": 2}) + "\n")
    spec = load_task(
        TaskDecl(name="count", train=str(path), test=str(path), choices_field="choices", answer_format="number")
    )
    assert spec.samples()[0].answer == "2"


def test_a_missing_choice_column_is_one_line(tmp_path, data_dir):
    with open(tmp_path / "mmlu.csv", "w", newline="") as f:
        csv.writer(f).writerows([["question", "A", "B", "C", "answer"], ["Which?", "x", "y", "z", "B"]])
    config = tmp_path / "c.yaml"
    config.write_text(
        yaml.safe_dump(
            {
                "task": {
                    "name": "mmlu",
                    "train": str(tmp_path / "mmlu.csv"),
                    "test": str(tmp_path / "mmlu.csv"),
                    "choices_field": ["A", "B", "C", "D"],
                    "answer_format": "choice",
                },
                "run_dir": str(tmp_path / "run"),
                "data_dir": str(data_dir),
            }
        )
    )
    result = invoke_cli("teach", config)
    assert result.returncode == 2 and result.stderr.count("\n") == 1
    assert "mmlu.csv: row 1: no 'D'" in result.stderr


def test_an_index_needs_choices(tmp_path):
    config = tmp_path / "c.yaml"
    config.write_text(
        yaml.safe_dump(
            {
                "task": {
                    "name": "x",
                    "train": "t.jsonl",
                    "test_fraction": 0.5,
                    "answer_format": "number",
                    "answer_index": True,
                }
            }
        )
    )
    result = invoke_cli("config", config)
    assert result.returncode == 2 and "answer_index: an index needs choices" in result.stderr


def _recorded(tmp_path, decl: dict) -> str:
    """Recorded teacher completions for the task's questions (right, and saying so), as a CompletionDataset."""
    spec = load_task(TaskDecl(**decl))
    records = []
    for s in spec.samples().values():
        step1 = f"Q: {s.question}\nA: Let's think step by step."
        rationale = f" The ball's color is given. So the answer is ({s.answer})."
        records.append(
            TeacherCompletion(
                task=spec.key,
                sample_index=s.sample_index,
                question=s.question,
                answer=s.answer,
                reasoning_prompt=step1,
                reasoning_completion=rationale,
                answer_prompt=f"{step1}{rationale} \n{spec.answer_trigger}",
                answer_completion=f" {s.answer}.",
                model="scripted",
            )
        )
    path = tmp_path / f"{spec.key}.json"
    write_completion_dataset(records, path)
    return str(path)


@pytest.mark.parametrize("shape", ["arc parquet", "mmlu csv"])
def test_arc_parquet_and_mmlu_csv_run_end_to_end(tmp_path, tiny_lm, shape):
    empty = tmp_path / "no-data"
    empty.mkdir()  # no built-in task data at all
    if shape == "arc parquet":
        make, keys = SHAPES["ARC mapping, number labels"]
        paths = [
            write_table([make(*_row(i)) for i in range(k, k + n)], tmp_path / f"{part}.parquet")
            for part, k, n in (("train", 0, 40), ("test", 40, 8))
        ]
    else:
        make, keys = SHAPES["columns, letter"]
        paths = []
        for part, k, n in (("train", 0, 40), ("test", 40, 8)):
            with open(tmp_path / f"{part}.csv", "w", newline="") as f:
                writer = csv.DictWriter(f, ["question", "A", "B", "C", "D", "answer"])
                writer.writeheader()
                writer.writerows(make(*_row(i)) for i in range(k, k + n))
            paths.append(tmp_path / f"{part}.csv")
    decl = {"name": shape.split()[0], "train": str(paths[0]), "test": str(paths[1]), "answer_format": "choice", **keys}
    config = tmp_path / "run.yaml"
    config.write_text(
        yaml.safe_dump(
            {
                "task": decl,
                "run_dir": str(tmp_path / "run"),
                "data_dir": str(empty),
                "teacher": {"backend": "recorded", "records": _recorded(tmp_path, decl), "teach_on": ["train", "test"]},
                "curate": {"permute_choices": 1},
                "student": {"model": str(tiny_lm)},
                "train": {"epochs": 1, "batch_size": 8, "max_examples": 8, "methods": ["ft_cot"]},
                "evaluate": {"baselines": ["zero_shot"], "max_questions": 4, "max_new_tokens": 12},
            }
        )
    )
    result = run_cli("run", config)
    assert result.returncode == 0, result.stderr[-3000:]
    metrics = json.loads((tmp_path / "run" / "eval" / "teacher" / "metrics.json").read_text())
    assert metrics["accuracy"] == 100.0 and metrics["n"] == 4
    trained = [json.loads(line) for line in (tmp_path / "run" / "curate" / "train_ft_cot.jsonl").open()]
    assert len(trained) == 72 and not (tmp_path / "run" / "curate" / "train_vanilla.jsonl").exists()
    listed = run_cli("tasks", "--config", config, "--data-dir", empty)
    assert listed.returncode == 0 and "not fetched" in listed.stdout and decl["name"] in listed.stdout
    shown = run_cli("show", decl["name"], "0", "--config", config, "--data-dir", empty)
    assert shown.returncode == 0 and "Answer choices: (A)" in shown.stdout
    missing = run_cli("train", config, "--method", "vanilla")
    assert missing.returncode == 2 and "no curated examples for vanilla" in missing.stderr
