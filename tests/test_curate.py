from collections import Counter

import minidata

from ftcot.config import CurateConfig
from ftcot.curate import curate, split_validation, vanilla_examples
from ftcot.tasks import Sample, load_task
from ftcot.teachers.records import TeacherCompletion, read_shared_jsonl, recorded_teacher_path


def _record(index, k, rationale, answer_text, gold="7", finish="stop"):
    return TeacherCompletion(
        task="multiarith",
        sample_index=index,
        completion_index=k,
        question=f"q{index}",
        answer=gold,
        reasoning_prompt="p",
        reasoning_completion=rationale,
        reasoning_finish_reason=finish,
        answer_prompt="p2",
        answer_completion=answer_text,
        model="m",
    )


def test_each_filter_is_applied_and_counted():
    train = [Sample("multiarith", i, f"Q{i}?", "7") for i in range(3)]
    records = [
        _record(0, 0, " 3 + 4 = 7.", " 7."),
        _record(0, 1, " 3 + 4 = 7. ", " 7"),  # same rationale once stripped
        _record(0, 2, " 2 + 5 = 7.", " 7."),
        _record(0, 3, " 1 + 6 = 7.", " 7."),  # over the cap of 3 per question
        _record(1, 0, " 3 + 3 = 6.", " 6."),  # wrong answer
        _record(1, 1, " 3 + 4 is", " 7.", finish="length"),  # cut off by the token limit
        _record(2, 0, "   ", " 7."),  # empty rationale
        _record(9, 0, " not a train question", " 7."),
    ]
    removed = lambda fates: Counter(f for _, f in fates if f != "kept")  # noqa: E731
    examples, fates = curate(load_task("multiarith"), records, train, CurateConfig(), num_samples=3)
    assert [(e.sample_index, e.completion_index) for e in examples] == [(0, 0), (0, 2), (0, 3)]
    assert removed(fates) == {"duplicate": 1, "incorrect": 1, "truncated": 1, "empty": 1}
    examples, fates = curate(load_task("multiarith"), records, train, CurateConfig(max_per_question=2), num_samples=3)
    assert len(examples) == 2 and removed(fates)["over_cap"] == 1
    assert examples[0].rationale == "3 + 4 = 7." and examples[0].question == "Q0?"  # task's own question
    kept_all, fates = curate(
        load_task("multiarith"),
        records,
        train,
        CurateConfig(drop_truncated=False, dedupe=False, drop_empty=False),
        num_samples=9,
    )
    assert len(kept_all) == 6 and removed(fates) == {"incorrect": 1}


def test_validation_split_is_seeded_stratified_and_from_train_only(data_dir):
    coin_flip, addsub = (
        load_task("coin_flip", data_dir).split_samples("train"),
        load_task("addsub", data_dir).split_samples("train"),
    )
    train = coin_flip + addsub
    rest, val = split_validation(train, 0.1, seed=0)
    expected = {"coin_flip": round(0.1 * len(coin_flip)), "addsub": round(0.1 * len(addsub))}
    assert len(val) == sum(expected.values()) and len(rest) + len(val) == len(train)
    assert all(sum(s.task == task for s in val) == n for task, n in expected.items())
    assert not {(s.task, s.sample_index) for s in val} & {(s.task, s.sample_index) for s in rest}
    assert [s.sample_index for s in split_validation(train, 0.1, seed=0)[1]] == [s.sample_index for s in val]
    assert [s.sample_index for s in split_validation(train, 0.1, seed=1)[1]] != [s.sample_index for s in val]
    test_ids = {s.sample_index for s in load_task("coin_flip", data_dir).split_samples("test")}
    assert not {s.sample_index for s in val if s.task == "coin_flip"} & test_ids
    assert [e.answer for e in vanilla_examples(rest[:2])] == [s.answer for s in rest[:2]]


def _date_records_train_in_the_tests_choice_order(root):
    # The recorded teacher saw Kojima et al.'s format and choice order, and its rationales name letters in that
    # order ("the answer is (D)"). By default they are trained in the test's order, their letters remapped; with
    # choice_order: teacher, in the task's format but the teacher's order and letter.
    import re

    def choice(question, letter):
        return re.search(rf"\({letter}\) ([^,]+?)(?:,|\.$)", question).group(1)

    records = read_shared_jsonl(recorded_teacher_path("date_understanding", root))
    train = load_task("date_understanding", root).split_samples("train")
    samples = load_task("date_understanding", root).samples()
    teacher_order, fates = curate(
        load_task("date_understanding", root),
        records,
        train,
        CurateConfig(choice_order="teacher", consistency=False),
        1,
    )
    examples, _ = curate(load_task("date_understanding", root), records, train, CurateConfig(consistency=False), 1)
    assert len(teacher_order) == len(examples) == sum(f == "kept" for _, f in fates)
    moved = 0
    for old, new in zip(teacher_order, examples):
        sample = samples[new.sample_index]
        assert (new.question, new.answer) == (sample.question, sample.answer)
        assert old.question.split("Answer choices:")[0] == sample.question.split("Answer choices:")[0]
        assert choice(old.question, old.answer) == choice(sample.question, sample.answer)  # the same date is right
        for e in (old, new):
            letters = re.findall(r"\(([A-F])\)", e.rationale)
            assert not letters or letters[-1] == e.answer  # the rationale's letter is the trained answer
        assert len(old.rationale) == len(new.rationale) and all(  # letters alone move
            a == b or {a, b} <= set("ABCDEF") for a, b in zip(old.rationale, new.rationale)
        )
        moved += old.answer != new.answer
        assert (new.frame, old.frame) == ("remapped", "teacher_order")
    assert moved > len(examples) // 2  # most right answers sit under another letter in the teacher's order
    teacher_frame, _ = curate(
        load_task("date_understanding", root), records, train, CurateConfig(question_source="teacher"), num_samples=1
    )
    assert teacher_frame[0].question != examples[0].question and "Answer Choices:" in teacher_frame[0].question
    return examples, fates


def test_recorded_date_records_train_in_the_tests_choice_order(data_dir):
    examples, fates = _date_records_train_in_the_tests_choice_order(data_dir)
    train = set(load_task("date_understanding", data_dir).split()["train"])
    wrong = minidata.TEACHER_WRONG["date_understanding"]
    assert {e.sample_index for e in examples} == train - wrong
    assert sum(f == "incorrect" for _, f in fates) == len(train & wrong)


def test_real_date_records_train_in_the_tests_choice_order(shared_data):
    examples, fates = _date_records_train_in_the_tests_choice_order(shared_data)
    assert len(fates) == 258
