import json
import re
import shutil

import minidata
import pytest

from ftcot.errors import UserError
from ftcot.tasks import PAPER_TASKS, load_task
from ftcot.tasks.prompts import verbalize

# (all samples, train, test) per task; aqua's train file is absent from the shared copy.
COUNTS = {
    "single_eq": (508, 356, 152),
    "addsub": (395, 276, 119),
    "multiarith": (600, 420, 180),
    "gsm8k": (8792, 7473, 1319),
    "svamp": (1000, 700, 300),
    "date_understanding": (369, 258, 111),
    "tracking_shuffled_objects": (750, 525, 225),
    "last_letter_concatenation": (500, 350, 150),
    "coin_flip": (500, 350, 150),
    "commonsense_qa": (10962, 9741, 1221),
    "strategy_qa": (2290, 1603, 687),
}


@pytest.mark.parametrize("task", [t for t in minidata.SIZES if t != "aqua"])
def test_every_raw_format_loads_with_its_split(data_dir, task):
    """Each task's reader on a synthetic file in its upstream format: every record becomes a sample, at its
    sample_index (a second file's records after its offset), and the split's indices all load."""
    total, train, test = minidata.counts(task)
    samples = load_task(task, data_dir).samples()
    split = load_task(task, data_dir).split()
    assert (len(samples), len(split["train"]), len(split["test"])) == (total, train, test)
    assert set(split["train"]) | set(split["test"]) == set(samples)
    assert all(s.question and s.answer for s in samples.values())


def test_sample_formats_follow_the_papers_conventions(data_dir):
    """The conventions, on synthetic records made to show them (tests/minidata.py)."""
    single_eq = load_task("single_eq", data_dir).samples([0, 1])
    assert (single_eq[0].answer, single_eq[1].answer) == ("43.0", "0.6666666666666666")  # str() of a float
    addsub = load_task("addsub", data_dir).samples([0])[0]
    assert addsub.answer == "43" and addsub.question == addsub.question.strip()  # the file's string, stripped
    multiarith = load_task("multiarith", data_dir).samples()
    assert all(s.answer.isdigit() and s.question == s.question.strip() for s in multiarith.values())
    gsm = load_task("gsm8k", data_dir).samples()
    assert gsm[0].answer == "1,000"  # commas kept, as in the paper
    first_test = json.loads((data_dir / "raw/grade-school-math/test.jsonl").read_text().splitlines()[0])
    assert gsm[7473].question == first_test["question"]  # the test file follows the 7,473 train lines
    svamp = load_task("svamp", data_dir).samples([0])[0]
    assert re.fullmatch(r"Each box holds \d+ \w+\. \w+ has \d+ boxes\. How many \w+ does \w+ have\?", svamp.question)
    assert svamp.answer.endswith(".0")
    for task, letters in (("tracking_shuffled_objects", "ABC"), ("date_understanding", "ABCDEF")):
        records = json.loads((data_dir / load_task(task).decl.train).read_text())["examples"]
        for k, sample in load_task(task, data_dir).samples().items():
            right = next(c for c, score in records[k]["target_scores"].items() if score).removesuffix(".")
            assert sample.answer in letters
            assert re.search(rf"\({sample.answer}\) {re.escape(right)}[,.]", sample.question)  # the right choice
            assert "\nWhich choice is true? Answer choices: (A) " in sample.question and ".," not in sample.question
    csqa = load_task("commonsense_qa", data_dir).samples([minidata.OFFSETS["commonsense_qa"]])
    first_dev = csqa[minidata.OFFSETS["commonsense_qa"]]
    assert re.fullmatch(
        r"Which of these numbers is the largest\? Answer choices: \(A\) \d+, \(B\) \d+, \(C\) \d+, "
        r"\(D\) \d+, \(E\) \d+\.",
        first_dev.question,
    )
    assert first_dev.answer == max("ABCDE", key=lambda x: int(re.search(rf"\({x}\) (\d+)", first_dev.question)[1]))
    assert {s.answer for s in load_task("strategy_qa", data_dir).samples().values()} == {"Yes", "No"}
    aqua = load_task("aqua", data_dir).split_samples("test")[0]
    assert aqua.sample_index == minidata.OFFSETS["aqua"]
    assert re.fullmatch(
        r"What is \d+ times \d+\? Answer choices: \(A\) \d+, \(B\) \d+, \(C\) \d+, \(D\) \d+, "
        r"\(E\) \d+\.",
        aqua.question,
    )


@pytest.mark.parametrize("task", list(COUNTS))
def test_every_split_index_loads(shared_data, task):
    total, train, test = COUNTS[task]
    samples = load_task(task, shared_data).samples()
    split = load_task(task, shared_data).split()
    assert (len(samples), len(split["train"]), len(split["test"])) == (total, train, test)
    assert sorted(samples) == list(range(total))
    assert set(split["train"]) | set(split["test"]) <= set(samples)
    assert all(s.question and s.answer for s in samples.values())


def test_real_samples_follow_the_papers_conventions(shared_data):
    assert load_task("single_eq", shared_data).samples([0])[0].answer == "43.0"
    assert load_task("addsub", shared_data).samples([0])[0].answer == "43"
    multiarith = load_task("multiarith", shared_data).samples([0])[0]
    assert multiarith.answer == "39" and multiarith.question.startswith("For Halloween")
    gsm = load_task("gsm8k", shared_data).samples()
    assert gsm[7473].question.startswith("Janet’s ducks")  # test file follows the 7,473 train lines
    assert sum("," in s.answer for i, s in gsm.items() if i < 7473) == 79  # commas kept, as in the paper
    assert gsm[0].question.startswith("Natalia sold clips") and gsm[0].answer == "72"
    svamp = load_task("svamp", shared_data).samples([0])[0]
    assert (
        svamp.question
        == (
            "Each pack of dvds costs 76 dollars. If there is a discount of 25 dollars on each "
            "pack How much do you have to pay to buy each pack?"
        )
        and svamp.answer == "51.0"
    )
    tracking = load_task("tracking_shuffled_objects", shared_data).samples([0])[0]
    assert tracking.question.endswith(
        "Alice has the\nWhich choice is true? Answer choices: (A) orange ball, (B) white ball, (C) blue ball."
    )
    assert tracking.answer == "C"
    csqa = load_task("commonsense_qa", shared_data).samples([9741])[9741]  # first dev record
    assert (
        csqa.question.endswith(
            "at a what? Answer choices: (A) bank, (B) library, (C) department store, (D) mall, (E) new york."
        )
        and csqa.answer == "A"
    )
    strategy = load_task("strategy_qa", shared_data).samples([0])[0]
    assert (
        strategy.answer == "Yes" and strategy.question == "Is it common to see frost during some college commencements?"
    )
    aqua = load_task("aqua", shared_data).samples([97467])[97467]
    assert aqua.question.endswith(
        "Answer choices: (A) 5(√3 + 1), (B) 6(√3 + √2), (C) 7(√3 – 1), (D) 8(√3 – 2), (E) None of these."
    )


def _few_shot_questions(shared_data, task):
    prompts = json.loads((shared_data / "few_shot_cot_prompts.json").read_text())
    return prompts[task]["sample_indices"], re.findall(r"Q: (.*?)\nA:", prompts[task]["prompt"], re.S)


def test_date_choice_permutation_reproduces_the_papers_few_shot_prompt(shared_data):
    indices, questions = _few_shot_questions(shared_data, "date_understanding")
    samples = load_task("date_understanding", shared_data).samples(indices)
    for index, question in zip(indices, questions):
        # The paper's prompt puts a space where the dataset has "\n" before "Which choice is true?".
        assert samples[index].question.replace("\nWhich choice", " Which choice") == question


@pytest.mark.parametrize("task", ["coin_flip", "last_letter_concatenation"])
def test_sample_index_order_matches_few_shot_prompt_indices(shared_data, task):
    indices, questions = _few_shot_questions(shared_data, task)
    samples = load_task(task, shared_data).samples(indices)
    assert [samples[i].question for i in indices] == questions


def test_verbalize():
    assert verbalize("Q?", [" x ", "y"]) == "Q? Answer choices: (A) x, (B) y."


def test_missing_raw_file_names_it_and_its_source_but_test_split_loads(data_dir):
    with pytest.raises(UserError, match=r"raw/AQuA/train\.json.*github.*AQuA"):
        load_task("aqua", data_dir).split_samples("train")
    test = load_task("aqua", data_dir).split_samples("test")
    assert len(test) == minidata.SIZES["aqua"] and test[0].sample_index == 97467


def test_unknown_task_and_out_of_range_indices(data_dir, tmp_path):
    with pytest.raises(UserError, match="unknown task 'nope'"):
        load_task("nope")
    past = minidata.SIZES["coin_flip"]
    with pytest.raises(UserError, match=f"sample index {past} out of range"):
        load_task("coin_flip", data_dir).samples([3, past])
    # A split file that points past the data is a clear error too.
    shutil.copytree(data_dir / "raw" / "coin_flip", tmp_path / "raw" / "coin_flip")
    (tmp_path / "splits").mkdir()
    (tmp_path / "splits" / "coin_flip__default.json").write_text('{"train": [0, 1, 9999], "test": [2]}')
    with pytest.raises(UserError, match="sample index 9999 out of range"):
        load_task("coin_flip", tmp_path).split_samples("train")
    with pytest.raises(UserError, match="has no split 'template'"):
        load_task("coin_flip", tmp_path).split("template")


def test_malformed_raw_file_reports_file_and_line(tmp_path):
    path = tmp_path / "raw" / "CommonsenseQA" / "train_rand_split.jsonl"
    path.parent.mkdir(parents=True)
    path.write_text('{"answerKey": "A"}\n{broken\n')
    with pytest.raises(UserError, match=r"train_rand_split\.jsonl:2: malformed JSON line"):
        load_task("commonsense_qa", tmp_path).samples([0])


def test_registry_has_the_twelve_paper_tasks():
    assert list(PAPER_TASKS) == [
        "single_eq",
        "addsub",
        "multiarith",
        "gsm8k",
        "aqua",
        "svamp",
        "date_understanding",
        "tracking_shuffled_objects",
        "last_letter_concatenation",
        "coin_flip",
        "commonsense_qa",
        "strategy_qa",
    ]


@pytest.mark.parametrize("task", ["coin_flip", "gsm8k", "date_understanding", "commonsense_qa"])
def test_a_built_in_declaration_is_a_task_a_user_could_write(data_dir, task):
    """The paper's tasks are declared in the user's form: a copy of one under another name, its paths absolute,
    is a user's task in a run config with the same samples, split and answer format; and loading it leaves no
    name behind for others to find (no global filled on the side)."""
    from ftcot.config import RunConfig
    from ftcot.tasks import BUILTIN

    declared = BUILTIN[task].model_dump(exclude_none=True)
    declared |= {
        "name": f"my_{task}",
        "train": str(data_dir / declared["train"]),
        "splits": {"default": str(data_dir / declared["splits"]["default"])},
    }  # the one minidata has
    if "test" in declared:
        declared["test"] = str(data_dir / declared["test"])
    mine = load_task(RunConfig(task=declared).task, data_dir)
    ours = load_task(task, data_dir)
    assert not mine.shipped and mine.digest and ours.shipped and not ours.digest
    assert [(s.sample_index, s.question, s.answer) for s in mine.samples().values()] == [
        (s.sample_index, s.question, s.answer) for s in ours.samples().values()
    ]
    assert mine.split() == ours.split() and mine.answer_format == ours.answer_format
    assert mine.answer_trigger == ours.answer_trigger
    with pytest.raises(UserError, match=f"unknown task 'my_{task}'"):
        load_task(f"my_{task}", data_dir)
