"""Bring your own rationales: rationale tables of every shape as a recorded teacher, matched to the task's questions,
answers read from the rationales, D taken in order, several sources at once, Mentor-KD's release as a named
source, one-line errors for bad files, and a whole run from such a file on a tiny student."""

import json
import shutil

import pytest
import yaml
from helpers import invoke_cli, run_cli, write_table

from ftcot.config import RationaleSource, TeacherConfig
from ftcot.judge import solved
from ftcot.tasks import TaskDecl, load_task
from ftcot.tasks.answers import INTEGER, LETTER_A_TO_C, LETTERS, TEXT, YES_NO
from ftcot.tasks.rationales import concluded_answer, parse_choices
from ftcot.teachers import make_recorded_teacher


def _teacher(task, source, **cfg):
    teacher, reports = make_recorded_teacher(
        TeacherConfig(backend="recorded", model="my-teacher", records=source, **cfg), task, "default", task.root
    )
    return [r for rs in teacher.by_sample.values() for r in rs], reports


def _coin_flip(data_dir):
    task = load_task("coin_flip", data_dir)
    return task, task.split_samples("train"), task.split_samples("test")


@pytest.mark.parametrize("shape", ["json list", "jsonl one", "csv flag", "parquet list", "folder flags"])
def test_every_shape_of_a_rationale_file_is_read(shape, data_dir, tmp_path):
    task, train, _ = _coin_flip(data_dir)
    q = [s for s in train[:4]]
    right = {s.sample_index: s.answer for s in q}
    wrong = {s.sample_index: "no" if s.answer == "yes" else "yes" for s in q}
    if shape == "json list":  # a list of rationales with a list of their answers
        rows = [
            {"q": s.question, "r": ["First.", "Second."], "a": [right[s.sample_index], wrong[s.sample_index]]}
            for s in q
        ]
        source = RationaleSource(
            path=str(write_table(rows, tmp_path / "r.json")), question="q", rationale="r", answer="a"
        )
        expected = [("source", True), ("source", False)]
    elif shape == "jsonl one":  # one rationale, no answer: read from its conclusion
        rows = [
            {"question": s.question, "rationale": f"It is heads. So the answer is {right[s.sample_index]}."} for s in q
        ]
        source = RationaleSource(path=str(write_table(rows, tmp_path / "r.jsonl")))
        expected = [("rationale", True)]
    elif shape == "csv flag":  # a CSV cell is text: "true"/"false"
        rows = [
            {"question": s.question, "rationale": "Thinking.", "ok": "true" if i % 2 == 0 else "false"}
            for i, s in enumerate(q)
        ]
        source = RationaleSource(path=str(write_table(rows, tmp_path / "r.csv")), correct="ok")
        expected = None
    elif shape == "parquet list":
        rows = [
            {
                "question": s.question,
                "rationale": [
                    f"Yes. The answer is {right[s.sample_index]}.",
                    f"The answer is {wrong[s.sample_index]}.",
                    "Hard to say.",
                ],
            }
            for s in q
        ]
        source = RationaleSource(path=str(write_table(rows, tmp_path / "r.parquet")))
        expected = [("rationale", True), ("rationale", False), ("rationale", False)]
    else:  # a datasets folder, one flag a rationale
        rows = [{"question": s.question, "rationale": ["a", "b"], "ok": [True, False]} for s in q]
        source = RationaleSource(path=str(write_table(rows, tmp_path / "r")), correct="ok")
        expected = [("flag", True), ("flag", False)]
    records, (report,) = _teacher(task, source)
    assert report["rows"] == 4 and report["matched_exact"] == 4 and report["questions"] == 4
    assert {r.sample_index for r in records} == set(right) and all(r.model == "my-teacher" for r in records)
    for s in q:
        mine = sorted((r for r in records if r.sample_index == s.sample_index), key=lambda r: r.completion_index)
        assert [r.completion_index for r in mine] == list(range(len(mine)))
        assert all(r.question == s.question and r.answer == s.answer for r in mine)
        got = [(r.answer_from, solved(task.answer_format, r.answer_completion, r.answer)) for r in mine]
        if expected is None:  # the flag alternates by row
            i = q.index(s)
            assert got == [("flag", i % 2 == 0)]
        else:
            assert got == expected
    assert records[0].reasoning_completion.startswith(" ") and records[0].answer_prompt == ""


def test_questions_match_exactly_then_by_whitespace_and_the_rest_is_counted(tmp_path):
    """Unmatched rows, rows whose text two questions share and test questions are left out and counted."""
    rows = [
        {"question": q, "answer": a}
        for q, a in [
            ("What is 1 plus 1?", "2"),
            ("What is 2 plus 2?", "4"),
            ("Same words here?", "5"),
            ("Same words here?", "5"),
            ("What is 3 plus 3?", "6"),
        ]
    ]
    train = write_table(rows[:4], tmp_path / "train.jsonl")
    test = write_table(rows[4:], tmp_path / "test.jsonl")
    task = load_task(TaskDecl(name="sums", train=str(train), test=str(test), answer_format="number"))
    given = [
        {"question": "What is 1 plus 1?", "rationale": "1 + 1 = 2."},  # exact
        {"question": "  What is 2\n plus   2? ", "rationale": "2 + 2 = 4."},  # whitespace
        {"question": "What is 9 plus 9?", "rationale": "18."},  # no such question
        {"question": "Same words here?", "rationale": "5."},  # two questions have this text
        {"question": "What is 3 plus 3?", "rationale": "6."},  # a test question
        {"question": "What is 1 plus 1?", "rationale": "It is 3."},
    ]  # a second row of the first question
    records, (report,) = _teacher(task, RationaleSource(path=str(write_table(given, tmp_path / "r.json"))))
    assert {
        k: report[k]
        for k in (
            "matched_exact",
            "matched_whitespace",
            "unmatched_rows",
            "ambiguous_rows",
            "test_rows_refused",
            "rationales",
            "questions",
        )
    } == {
        "matched_exact": 2,
        "matched_whitespace": 1,
        "unmatched_rows": 1,
        "ambiguous_rows": 1,
        "test_rows_refused": 1,
        "rationales": 3,
        "questions": 2,
    }
    by_k = {(r.sample_index, r.completion_index): r for r in records}
    assert set(by_k) == {(0, 0), (0, 1), (1, 0)}  # rows of one question add up in file order
    assert by_k[(0, 1)].reasoning_completion == " It is 3." and by_k[(0, 1)].answer_completion == " 3."
    assert by_k[(1, 0)].params["matched"] == "whitespace" and by_k[(1, 0)].question == "What is 2 plus 2?"
    assert [solved(task.answer_format, by_k[k].answer_completion, by_k[k].answer) for k in sorted(by_k)] == [
        True,
        False,
        True,
    ]


@pytest.mark.parametrize(
    "fmt,question,text,answer",
    [
        (
            LETTER_A_TO_C,
            "Who? Answer choices: (A) red ball, (B) blue ball, (C) pink ball.",
            "Alice has the blue ball. So the correct answer is (B) blue ball.",
            "B",
        ),
        (
            LETTER_A_TO_C,
            "Who? Answer choices: (A) red ball, (B) blue ball, (C) pink ball.",
            "In the end Alice holds the pink ball.",
            "C",
        ),  # by content where no letter is named
        (LETTER_A_TO_C, "Who? Answer choices: (A) red ball, (B) blue ball, (C) pink ball.", "Hard to say.", None),
        (INTEGER, "How many?", "She has 3 + 4 = 7 apples. The answer is 7.", "7"),
        (INTEGER, "How many?", "We need 13 rooms for all 390 students.", "390"),  # the last number stated
        (YES_NO, "Is it?", "Paris is in France. So the answer is yes.", "yes"),
        (YES_NO, "Is it?", "The statement is false.", None),  # no explicit yes or no
        (YES_NO, "Is it?", "Yes, the answer is no.", "no"),  # the last stated, whatever the gold
        (LETTERS, "Take the last letters.", 'Concatenating them gives "yajo".', "yajo"),
        (LETTERS, "Take the last letters.", "Now concatenate them: 'ann' + 't' = 'annt'", "annt"),
        (LETTERS, "Take the last letters.", "Concatenating the last letters, we get: tsla", "tsla"),
        (LETTERS, "Take the last letters.", '"Lucky" ends in "y".\nPutting them together, we get: l o d a.', "loda"),
        (LETTERS, "Take the last letters.", 'So the letters of "Chantal Ines" make lsaa.', "lsaa"),
        (LETTERS, "Take the last letters.", 'The candidates are "yajc" and "yakc", and the answer is "yakc".', "yakc"),
        (TEXT, "Why?", "Because it is.", None),  # free text: nothing to read safely
    ],
)
def test_the_answer_is_read_from_the_rationale_in_every_format(fmt, question, text, answer):
    assert concluded_answer(text, fmt, question) == answer


def test_a_given_answer_is_read_as_gold_answers_are_and_an_unreadable_one_is_counted(data_dir, tmp_path):
    """A choice answered by a lowercase letter, in brackets, or by its option's text; a yes/no answer as a JSON
    boolean or its text: each is the task's gold where it means it. An answer no parser reads counts among
    those without one; a row with an empty list of rationales counts apart, not as matched."""
    date = load_task("date_understanding", data_dir)
    [first, second, third, fourth] = date.split_samples("train")[:4]
    option = parse_choices(second.question).options["ABCDEF".index(second.answer)]
    rows = [
        {"question": first.question, "rationale": "r", "answer": f"({first.answer.lower()})"},
        {"question": second.question, "rationale": "r", "answer": option.upper()},
        {"question": third.question, "rationale": "r", "answer": "no option"},
        {"question": fourth.question, "rationale": [], "answer": []},
    ]
    records, (report,) = _teacher(
        date, RationaleSource(path=str(write_table(rows, tmp_path / "d.json")), answer="answer")
    )
    fmt = date.answer_format
    assert [solved(fmt, r.answer_completion, r.answer) for r in records] == [True, True, False]
    assert (report["answers_from_source"], report["answers_none"]) == (3, 1)
    assert (report["matched_exact"], report["rows_without_rationales"], report["questions"]) == (3, 1, 3)

    # an option's exact text first, then a letter, then an option's text in another case: as gold answers are read
    quiz_rows = [
        {"question": "Which?", "choices": ["b", "a", "c"], "answer": "a"},
        {"question": "Next?", "choices": ["B", "x", "y"], "answer": "y"},
    ]
    test_rows = [{"question": "Other?", "choices": ["p", "q"], "answer": "p"}]
    quiz = load_task(
        TaskDecl(
            name="quiz",
            train=str(write_table(quiz_rows, tmp_path / "train.jsonl")),
            test=str(write_table(test_rows, tmp_path / "test.jsonl")),
            choices_field="choices",
            answer_format="choice",
        )
    )
    first, second = quiz.split_samples("train")
    table = [
        {"question": first.question, "rationale": ["r"] * 3, "answer": ["a", "B", "A"]},
        {"question": second.question, "rationale": ["r"] * 2, "answer": ["b", "Y"]},
    ]
    records, _ = _teacher(quiz, RationaleSource(path=str(write_table(table, tmp_path / "q.json")), answer="answer"))
    assert [r.answer_completion for r in records] == [" B.", " B.", " A.", " B.", " C."]

    task, train, _ = _coin_flip(data_dir)
    rows = [
        {"question": s.question, "rationale": "r", "answer": value}
        for s, value in zip(
            train, [s.answer == "yes" for s in train[:2]] + ["True" if train[2].answer == "yes" else "False"]
        )
    ]
    records, _ = _teacher(task, RationaleSource(path=str(write_table(rows, tmp_path / "c.json")), answer="answer"))
    assert len(records) == 3 and all(solved(task.answer_format, r.answer_completion, r.answer) for r in records)


def test_show_walks_the_configured_sources_completions_through_curation(data_dir, tmp_path):
    """`ftcot show --config` shows the config's teacher: each of the question's rationales from a user's table,
    where its answer came from, and each one's fate under the config's curation."""
    task, train, _ = _coin_flip(data_dir)
    s = train[0]
    other = "no" if s.answer == "yes" else "yes"
    rows = [{"question": s.question, "rationale": [f"Flipped twice. So the answer is {x}." for x in (s.answer, other)]}]
    config = tmp_path / "c.yaml"
    config.write_text(
        yaml.safe_dump(
            {
                "task": "coin_flip",
                "data_dir": str(data_dir),
                "run_dir": str(tmp_path / "run"),
                "teacher": {
                    "backend": "recorded",
                    "model": "my-teacher",
                    "records": {"path": str(write_table(rows, tmp_path / "r.jsonl"))},
                    "num_samples": 2,
                    "on_missing": "skip",
                },
            }
        )
    )
    out = invoke_cli("show", "coin_flip", s.sample_index, "--config", config)
    assert out.returncode == 0, out.stderr
    for k, answer in enumerate((s.answer, other)):
        assert (
            f"teach: my-teacher's completion {k} (the config's recorded sources; its answer from the rationale)\n"
            f"Flipped twice. So the answer is {answer}." in out.stdout
        )
    assert f"completion 0: parsed {s.answer!r} against gold {s.answer!r}: kept" in out.stdout
    assert f"completion 1: parsed {other!r} against gold {s.answer!r}: removed: incorrect" in out.stdout
    assert f"###\n Flipped twice. So the answer is {s.answer}. --> {s.answer}<eos>" in out.stdout
    assert invoke_cli("teach", config).returncode == 0  # then the run's own completions
    out = invoke_cli("show", "coin_flip", s.sample_index, "--config", config)
    assert "teach: my-teacher's completion 1 (this run's teacher; its answer from the rationale)" in out.stdout
    # another task than the config's: that task's shared records, never the run's
    out = invoke_cli("show", "multiarith", s.sample_index, "--config", config).stdout
    assert "teach: text-davinci-002's completion 0 (recorded; steps 1 and 2)" in out and "my-teacher" not in out
    # the config changed since teach ran (D = 1): its sources' first D, not the run's stale completions
    settings = yaml.safe_load(config.read_text())
    settings["teacher"]["num_samples"] = 1
    config.write_text(yaml.safe_dump(settings))
    out = invoke_cli("show", "coin_flip", s.sample_index, "--config", config).stdout
    assert "my-teacher's completion 0 (the config's recorded sources;" in out and "completion 1" not in out


def test_num_samples_takes_the_first_D_and_sources_add_up_in_order(data_dir, tmp_path):
    """D = 2 of a file with three rationales a question takes its first two; listed after text-davinci-002's
    records, a table's completions of a question come after that teacher's one, and curation counts each
    teacher's kept rationales."""
    task, train, _ = _coin_flip(data_dir)
    first = train[:6]
    rows = [
        {
            "question": s.question,
            "rationale": [
                f"One: the answer is {s.answer}.",
                f"Two: the answer is {s.answer}.",
                f"Three: the answer is {s.answer}.",
            ],
        }
        for s in first
    ]
    table = RationaleSource(path=str(write_table(rows, tmp_path / "r.json")), teacher="other-teacher")
    config = {
        "task": "coin_flip",
        "data_dir": str(data_dir),
        "run_dir": str(tmp_path / "run"),
        "teacher": {
            "backend": "recorded",
            "records": [table.model_dump(exclude_defaults=True)],
            "num_samples": 2,
            "max_questions": 6,
            "on_missing": "skip",
        },
        "curate": {"val_fraction": 0.0},
    }
    (tmp_path / "c.yaml").write_text(yaml.safe_dump(config))
    result = run_cli("teach", tmp_path / "c.yaml")
    assert result.returncode == 0, result.stderr
    assert "teach: other-teacher from " in result.stderr and "6 matched exactly" in result.stderr
    completions = [json.loads(line) for line in (tmp_path / "run" / "teacher" / "completions.jsonl").open()]
    assert [(c["completion_index"], c["reasoning_completion"].split(":")[0]) for c in completions] == [
        (0, " One"),
        (1, " Two"),
    ] * 6

    config["run_dir"] = str(tmp_path / "run2")
    config["teacher"] |= {"records": ["text-davinci-002", table.model_dump(exclude_defaults=True)], "num_samples": 3}
    (tmp_path / "c.yaml").write_text(yaml.safe_dump(config))
    for stage in ("teach", "curate"):
        result = run_cli(stage, tmp_path / "c.yaml")
        assert result.returncode == 0, result.stderr
    run = tmp_path / "run2"
    completions = [json.loads(line) for line in (run / "teacher" / "completions.jsonl").open()]
    assert [(c["completion_index"], c["model"]) for c in completions] == [
        (0, "text-davinci-002"),
        (1, "other-teacher"),
        (2, "other-teacher"),
    ] * 6
    assert (
        json.loads((run / "teacher" / "summary.json").read_text())["teacher"]
        == "recorded:text-davinci-002+other-teacher"
    )
    summary = json.loads((run / "curate" / "summary.json").read_text())
    assert summary["by_teacher"]["other-teacher"] == {"samples": 12, "kept": 12}
    assert summary["by_teacher"]["text-davinci-002"]["samples"] == 6
    per_question = [json.loads(line) for line in (run / "curate" / "per_question.jsonl").open()]
    kept = [q for q in per_question if q["drawn"]]
    assert len(kept) == 6 and all(q["kept_by_teacher"]["other-teacher"] == 2 for q in kept)
    assert (
        sum(q["kept_by_teacher"].get("text-davinci-002", 0) for q in kept)
        == summary["by_teacher"]["text-davinci-002"]["kept"]
    )


BAD = {  # what the file holds -> the line expected (the file and the row named)
    "no question field": ([{"text": "Q?", "rationale": "r"}], {}, r"r\.json: row 1: no 'question'"),
    "rationale a number": ([{"question": "Q?", "rationale": 3}], {}, r"row 1: 'rationale' is neither a text"),
    "rationale missing": ([{"question": "Q?"}], {}, r"row 1: no 'rationale'"),
    "answers not beside": (
        [{"question": "Q?", "rationale": ["a", "b"], "a": ["x"]}],
        {"answer": "a"},
        r"row 1: 'a' has 1 values for 2 rationales",
    ),
    "answer an object": (
        [{"question": "Q?", "rationale": "r", "a": {"x": 1}}],
        {"answer": "a"},
        r"row 1: a: \{'x': 1\} is not an answer",
    ),
    "flag not a flag": (
        [{"question": "Q?", "rationale": "r", "ok": "maybe"}],
        {"correct": "ok"},
        r"row 1: ok: 'maybe' is not a true/false flag",
    ),
    "answer field missing": ([{"question": "Q?", "rationale": "r"}], {"answer": "a"}, r"row 1: no 'a'"),
    "not a table": ('{"a": ', {}, r"r\.json: cannot read it as a table"),
}


@pytest.mark.parametrize("case", BAD)
def test_a_bad_rationale_file_is_one_line_naming_file_row_and_field(case, data_dir, tmp_path):
    content, fields, pattern = BAD[case]
    path = tmp_path / "r.json"
    path.write_text(content if isinstance(content, str) else json.dumps(content))
    config = {
        "task": "coin_flip",
        "data_dir": str(data_dir),
        "run_dir": str(tmp_path / "run"),
        "teacher": {"backend": "recorded", "records": {"path": str(path), **fields}},
    }
    (tmp_path / "c.yaml").write_text(yaml.safe_dump(config))
    result = invoke_cli("teach", tmp_path / "c.yaml")
    assert result.returncode == 2 and "Traceback" not in result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ")
    import re

    assert re.search(pattern, lines[0]), lines[0]
    assert not (tmp_path / "run" / "teacher" / "completions.jsonl").exists()


@pytest.mark.parametrize(
    "records,pattern",
    [
        (
            "no-such-teacher",
            r"'no-such-teacher' is neither a named source \(text-davinci-002, gpt-3.5-turbo-instruct\)",
        ),
        ("gpt-3.5-turbo-instruct", r"gpt-3.5-turbo-instruct has rationales for date_understanding, .*not coin_flip"),
    ],
)
def test_an_unknown_or_uncovered_named_source_is_one_line(records, pattern, data_dir, tmp_path):
    (tmp_path / "c.yaml").write_text(
        yaml.safe_dump(
            {
                "task": "coin_flip",
                "data_dir": str(data_dir),
                "run_dir": str(tmp_path / "run"),
                "teacher": {"backend": "recorded", "records": records},
            }
        )
    )
    result = invoke_cli("teach", tmp_path / "c.yaml")
    import re

    assert result.returncode == 2 and len(result.stderr.strip().splitlines()) == 1, result.stderr
    assert re.search(pattern, result.stderr), result.stderr


def test_a_whole_run_from_a_rationale_file_on_a_tiny_student(data_dir, tiny_lm, tmp_path):
    """Without the shared data: a user's JSONL of two rationales a question (one of them wrong) trains a tiny
    student end to end; the report and the export read the run."""
    task, train, _ = _coin_flip(data_dir)
    rows = []
    for s in train[:40]:
        other = "no" if s.answer == "yes" else "yes"
        rows.append(
            {
                "question": s.question,
                "rationale": [
                    f"The coin ends {s.answer}. So the answer is {s.answer}.",
                    f"I think so. So the answer is {other}.",
                ],
            }
        )
    path = write_table(rows, tmp_path / "mine.jsonl")
    config = tmp_path / "c.yaml"
    config.write_text(
        yaml.safe_dump(
            {
                "task": "coin_flip",
                "data_dir": str(data_dir),
                "run_dir": str(tmp_path / "runs" / "mine"),
                "teacher": {
                    "backend": "recorded",
                    "model": "my-teacher",
                    "records": {"path": str(path)},
                    "num_samples": 2,
                    "max_questions": 40,
                },
                "student": {"model": str(tiny_lm)},
                "train": {"epochs": 1, "learning_rate": 0.001},
                "evaluate": {"baselines": [], "max_questions": 4, "max_new_tokens": 8},
            }
        )
    )
    result = run_cli("run", config)
    assert result.returncode == 0, result.stderr[-3000:]
    run = tmp_path / "runs" / "mine"
    curated = json.loads((run / "curate" / "summary.json").read_text())
    assert curated["removed"]["incorrect"] == curated["samples_drawn"] // 2  # every second rationale is wrong
    assert curated["by_teacher"] == {"my-teacher": {"samples": curated["samples_drawn"], "kept": curated["kept"]}}
    assert (run / "eval" / "ft_cot" / "metrics.json").is_file()
    report = run_cli("report", tmp_path / "runs")
    assert report.returncode == 0, report.stderr
    assert (
        f"| my-teacher {curated['kept']} of {curated['samples_drawn']} |"
        in (tmp_path / "runs" / "report.md").read_text()
    )
    exported = run_cli("export", run, "--to", tmp_path / "out", "--format", "messages")
    assert exported.returncode == 0, exported.stderr
    assert len((tmp_path / "out" / "ft_cot.messages.jsonl").read_text().splitlines()) == curated["kept"]


def test_mentor_kd_matches_the_paper_train_splits(shared_data):
    """The named source on the real release: every row matched to a train question (Tracking's after whitespace),
    none a test question, but Tracking's 10 rows of no rationales; StrategyQA's one question that is also a test
    question's text is left out."""
    expected = {
        "date_understanding": (258, 258, 0, 0, 0),
        "last_letter_concatenation": (350, 350, 0, 0, 0),
        "tracking_shuffled_objects": (525, 0, 515, 0, 10),
        "strategy_qa": (4488, 4485, 0, 3, 0),
    }
    for key, (rows, exact, loose, ambiguous, empty) in expected.items():
        task = load_task(key, shared_data)
        teacher, (report,) = make_recorded_teacher(
            TeacherConfig(backend="recorded", model="gpt-3.5-turbo-instruct", on_missing="skip"),
            task,
            "default",
            shared_data,
        )
        assert (report["rows"], report["matched_exact"], report["matched_whitespace"], report["ambiguous_rows"]) == (
            rows,
            exact,
            loose,
            ambiguous,
        ), key
        assert report["rows_without_rationales"] == empty, key
        assert report["unmatched_rows"] == report["test_rows_refused"] == 0
        train = {s.sample_index for s in task.split_samples("train")}
        assert {i for _, i in teacher.by_sample} <= train
        records = [r for rs in teacher.by_sample.values() for r in rs]
        right = sum(solved(task.answer_format, r.answer_completion, r.answer) for r in records)
        # measured: Date 1525 of 1542, Last Letter 1831 of 2100 (1750 while unquoted endings went unread),
        # Tracking 3051 of 3078, StrategyQA all
        assert right > (0.85 if key == "last_letter_concatenation" else 0.98) * len(records), key


def test_the_named_source_fetches_from_a_mirror_and_a_corrupted_file_is_refused(shared_data, tmp_path):
    from ftcot import data
    from ftcot.fetch import fetch

    mine = tuple(f for f in data.DATA_FILES if f.path.startswith("mentor_kd/"))
    assert len(mine) == 5  # the four rationale files and the licence
    mirror = tmp_path / "mirror"
    for f in mine:
        (mirror / f.path).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(shared_data / f.path, mirror / f.path)
    broken = mirror / "mentor_kd/data/prompt/date_understanding_6.json"
    broken.write_bytes(broken.read_bytes()[:-10] + b"0000000000")
    dest = tmp_path / "data"
    outcomes = fetch(dest, str(mirror), mine)
    assert outcomes.pop("mentor_kd/data/prompt/date_understanding_6.json").startswith("failed: ")
    assert set(outcomes.values()) == {"fetched"}
    assert not (dest / "mentor_kd/data/prompt/date_understanding_6.json").exists()
    assert not list(dest.rglob("*.part"))
    assert all(data.is_verified(f, dest) for f in mine if "date_understanding" not in f.path)


@pytest.mark.parametrize("kind", ["table", "datasets folder", "records file"])
def test_a_changed_source_file_reruns_the_teacher_and_all_after_it(kind, data_dir, tmp_path):
    """The stages' fingerprints hold what a user's source files hold, not only their paths: a file edited in
    place between two runs is read again (and so is everything made from it); an untouched one is not."""
    from ftcot.config import load_config
    from ftcot.pipeline import context, fingerprint, is_done
    from ftcot.stages.teach import run as teach

    task, train, _ = _coin_flip(data_dir)
    rows = [{"question": s.question, "rationale": f"So the answer is {s.answer}."} for s in train[:3]]
    if kind == "records file":  # what a previous `ftcot teach` wrote, given by its path
        source = tmp_path / "given.jsonl"
        records, _ = _teacher(task, RationaleSource(path=str(write_table(rows, tmp_path / "r.json"))))
        from ftcot.teachers.records import write_records

        write_records(records, source)
        records_cfg = str(source)
    else:
        source = write_table(rows, tmp_path / ("r.json" if kind == "table" else "folder"))
        records_cfg = {"path": str(source)}
    (tmp_path / "c.yaml").write_text(
        yaml.safe_dump(
            {
                "task": "coin_flip",
                "data_dir": str(data_dir),
                "run_dir": str(tmp_path / "run"),
                "teacher": {"backend": "recorded", "model": "mine", "records": records_cfg, "max_questions": 3},
            }
        )
    )
    ctx = context(load_config(tmp_path / "c.yaml"))
    summary = teach(ctx)
    assert is_done(ctx, "teach") and summary.sources[0]["sha256"]
    curate_before = fingerprint(ctx, "curate")
    # The same rows again, one rationale changed.
    if kind == "records file":
        text = source.read_text().replace("So the answer is", "Hence the answer is", 1)
        source.write_text(text)
    else:
        rows[0]["rationale"] = "Changed. " + rows[0]["rationale"]
        if kind == "datasets folder":
            shutil.rmtree(source)
        write_table(rows, source)
    ctx = context(load_config(tmp_path / "c.yaml"))
    assert not is_done(ctx, "teach")
    assert fingerprint(ctx, "curate") != curate_before
    teach(ctx)
    assert is_done(ctx, "teach")
    completions = (tmp_path / "run" / "teacher" / "completions.jsonl").read_text()
    assert ("Hence" if kind == "records file" else "Changed.") in completions
    if kind == "table":  # gone: the teacher is not done, and teaching again says the file is missing
        source.unlink()
        ctx = context(load_config(tmp_path / "c.yaml"))
        assert not is_done(ctx, "teach")
        from ftcot.errors import UserError

        with pytest.raises(UserError, match=r"r\.json"):
            teach(ctx)


def test_a_question_a_table_does_not_cover_is_one_line_saying_what_it_matched(data_dir, tmp_path):
    """on_missing: error with a rationale table: the one line names the question, and what the table matched
    (no report line before it); with teach_on test, that a table's test questions are never taken."""
    task, train, test = _coin_flip(data_dir)
    rows = [{"question": s.question, "rationale": "So the answer is yes."} for s in train[:2] + test[:1]]
    path = write_table(rows, tmp_path / "r.json")
    for teach_on, pattern in (
        (
            ["train"],
            r"^error: no recorded teacher completion for coin_flip sample \d+ .*"
            r"r\.json has rationales for 2 train questions \(0 rows unmatched, 0 "
            r"ambiguous, 1 test questions refused, 0 without rationales\)$",
        ),
        (["train", "test"], r"a rationale table's test questions are never taken"),
    ):
        (tmp_path / "c.yaml").write_text(
            yaml.safe_dump(
                {
                    "task": "coin_flip",
                    "data_dir": str(data_dir),
                    "run_dir": str(tmp_path / "run"),
                    "teacher": {"backend": "recorded", "records": {"path": str(path)}, "teach_on": teach_on},
                }
            )
        )
        result = invoke_cli("teach", tmp_path / "c.yaml")
        lines = result.stderr.strip().splitlines()
        assert result.returncode == 2 and len(lines) == 1 and "Traceback" not in result.stderr, result.stderr
        import re

        assert re.search(pattern, lines[0]), lines[0]
        assert not (tmp_path / "run" / "teacher" / "completions.jsonl").exists()


def test_an_unnamed_table_is_not_the_default_teacher(data_dir, tmp_path):
    """A table without `teacher:` under a config that names no teacher.model keeps its file's name, not
    text-davinci-002's (beside whose records it would be counted); a named teacher.model is kept."""
    task, train, _ = _coin_flip(data_dir)
    path = write_table([{"question": train[0].question, "rationale": "So the answer is yes."}], tmp_path / "mine.jsonl")
    source = RationaleSource(path=str(path))
    teacher, _ = make_recorded_teacher(
        TeacherConfig(backend="recorded", records=["text-davinci-002", source], on_missing="skip"),
        task,
        "default",
        task.root,
    )
    models = [r.model for r in teacher.by_sample[(task.key, train[0].sample_index)]]
    assert models == ["text-davinci-002", "mine.jsonl"]
    records, _ = _teacher(task, source, on_missing="skip")  # teacher.model: my-teacher
    assert {r.model for r in records} == {"my-teacher"}


def test_answers_given_as_numbers_or_empty_cells(tmp_path):
    """An answer 18.0 (a JSON float) is the task's 18; an empty answer is no answer: read from the rationale."""
    train = write_table(
        [{"question": "What is 9 plus 9?", "answer": "18"}, {"question": "What is 2 plus 2?", "answer": "4"}],
        tmp_path / "train.jsonl",
    )
    test = write_table([{"question": "What is 3 plus 3?", "answer": "6"}], tmp_path / "test.jsonl")
    task = load_task(TaskDecl(name="sums", train=str(train), test=str(test), answer_format="number"))
    given = [
        {"question": "What is 9 plus 9?", "rationale": "9 + 9 = 18.", "a": 18.0},
        {"question": "What is 2 plus 2?", "rationale": "2 + 2 = 4. The answer is 4.", "a": ""},
    ]
    records, (report,) = _teacher(task, RationaleSource(path=str(write_table(given, tmp_path / "r.json")), answer="a"))
    assert [r.answer_completion for r in sorted(records, key=lambda r: r.sample_index)] == [" 18.", " 4."]
    assert all(solved(task.answer_format, r.answer_completion, r.answer) for r in records)
    assert (report["answers_from_source"], report["answers_from_rationale"]) == (1, 1)


def test_an_empty_list_of_sources_is_a_config_error(tmp_path):
    (tmp_path / "c.yaml").write_text("task: coin_flip\nteacher: {backend: recorded, records: []}\n")
    result = invoke_cli("config", tmp_path / "c.yaml")
    assert result.returncode == 2 and "records: an empty list names no source" in result.stderr, result.stderr


@pytest.mark.parametrize(
    "name,content,pattern",
    [
        ("r.json", "", r"r\.json: no rows \(the file is empty\)$"),
        ("r.jsonl", "\n", r"r\.jsonl: no rows"),
        ("r.json", "[]", r"r\.json: no rows$"),
        ("r.csv", "question,rationale\n", r"r\.csv: no rows$"),
    ],
)
def test_an_empty_rationale_file_is_one_line(name, content, pattern, data_dir, tmp_path):
    (tmp_path / name).write_text(content)
    (tmp_path / "c.yaml").write_text(
        yaml.safe_dump(
            {
                "task": "coin_flip",
                "data_dir": str(data_dir),
                "run_dir": str(tmp_path / "run"),
                "teacher": {"backend": "recorded", "records": {"path": str(tmp_path / name)}},
            }
        )
    )
    result = invoke_cli("teach", tmp_path / "c.yaml")
    lines = result.stderr.strip().splitlines()
    assert result.returncode == 2 and len(lines) == 1 and "Traceback" not in result.stderr, result.stderr
    import re

    assert re.search(pattern, lines[0]), lines[0]
