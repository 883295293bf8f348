"""Students that answer what they reasoned: what a rationale concludes on (the consistency filter), cut
rationales in recorded records, rationales moved to the test's option order and shuffled copies of choice
examples, answers read by content and the failure taxonomy; on hand-written rationales of every format, a
property test, and a custom choice task run end to end."""

import json
import random

import pytest
import yaml
from helpers import invoke_cli, run_cli
from hypothesis import given
from hypothesis import strategies as st
from test_properties import SETTINGS

from ftcot.config import CurateConfig
from ftcot.curate import Example, curate, permuted_copies
from ftcot.tasks import Sample, answers, load_task
from ftcot.tasks.prompts import verbalize
from ftcot.tasks.rationales import (
    failure_kind,
    is_loop,
    letter_mapping,
    letter_mentions,
    option_by_content,
    parse_choices,
    remap_letters,
    supports,
)
from ftcot.teachers.records import TeacherCompletion, read_records, write_completion_dataset

DATES = ["05/01/2021", "05/02/2021", "03/14/2021", "04/29/2021"]
DATE_Q = verbalize(
    "Yesterday was April 30, 2021. What is the date tomorrow in MM/DD/YYYY?\nWhich choice is true?", DATES
)  # gold: B
BALLS = ["pink ball", "white ball", "red ball"]
BALL_Q = verbalize("Alice, Bob and Claire swap balls. At the end of the game, Bob has the", BALLS)  # gold: C


def test_choice_questions_are_taken_apart_and_rebuilt_exactly():
    parsed = parse_choices(DATE_Q)
    assert parsed.options == tuple(DATES) and parsed.letters == "ABCD" and parsed.render() == DATE_Q
    kojima = "It was May 1. What is the date? Answer Choices: (A) 05/02/2021 (B) 06/01/2021 (C) 05/01/2020"
    assert parse_choices(kojima).options == ("05/02/2021", "06/01/2021", "05/01/2020")
    assert parse_choices(kojima).render() == kojima
    assert (
        parse_choices(DATE_Q)
        .permuted([3, 2, 1, 0])
        .render()
        .endswith("(A) 04/29/2021, (B) 03/14/2021, (C) 05/02/2021, (D) 05/01/2021.")
    )
    for not_choices in ("How many apples?", "Answer choices: (A) x", "Q Answer choices: (A) x, (C) y."):
        assert parse_choices(not_choices) is None


@pytest.mark.parametrize(
    "text, letters",
    [
        ("So the answer is (B).", ["B"]),
        ("B) is right.", ["B"]),
        ("It must be option C.", ["C"]),
        ("Choice (D) fits, then answer: A", ["D", "A"]),
        ("The answer is B.", ["B"]),
        ("The answer would be C", ["C"]),
        ("A week ago was May 1. Bob has a red ball.", []),  # the article is no letter
        ("Option A is right, A week later", ["A"]),
    ],
)
def test_letter_mentions_in_every_common_spelling(text, letters):
    assert [letter for _, _, letter in letter_mentions(text, "ABCDEF")] == letters


def test_a_lone_capital_makes_the_letters_ambiguous():
    assert letter_mentions("Let C be the day. So (B).", "ABCDEF") is None
    assert letter_mentions("I think A is correct, so (A).", "ABCDEF") is None  # not the article
    assert remap_letters("Let C be the day. So (B).", letter_mapping([1, 0, 2], "ABC"), "ABC") is None
    assert remap_letters("Vitamin Z is (B).", letter_mapping([1, 0, 2], "ABC"), "ABC") == "Vitamin Z is (A)."


mention = st.sampled_from(["({})", "{})", "option {}", "the answer is {}", "answer: {}", "choice ({})"])
plain = st.sampled_from(
    ["A week ago", "Bob has the red ball", ",", ".", "\n", "so", "05/01/2021", "(A1)", "B12", "ABC", "Let C be", "D is"]
)


@SETTINGS
@given(parts=st.lists(st.one_of(plain, st.tuples(mention, st.integers(0, 3))), max_size=12), seed=st.integers(0, 10**6))
def test_remapping_changes_every_letter_mention_and_nothing_else(parts, seed):
    letters = "ABCD"
    text = " ".join(p if isinstance(p, str) else p[0].format(letters[p[1]]) for p in parts)
    order = random.Random(seed).sample(range(4), 4)
    mapping = letter_mapping(order, letters)
    moved = remap_letters(text, mapping, letters)
    if moved is None:  # a lone capital of the range, outside any mention: nothing is moved
        assert letter_mentions(text, letters) is None and ("Let C be" in text or "D is" in text)
        return
    back = remap_letters(moved, {new: old for old, new in mapping.items()}, letters)
    assert back == text  # permuting and permuting back is the identity
    assert len(moved) == len(text)
    spans = letter_mentions(text, letters)
    for i, (a, b) in enumerate(zip(text, moved)):
        named = next((letter for start, _, letter in spans if start == i), None)
        assert b == (mapping[named] if named else a)


@pytest.mark.parametrize(
    "fmt, question, text, gold, verdict",
    [
        # choices: the letter named last (any spelling) and the option reached by content must both be gold
        (
            answers.LETTER_A_TO_F,
            DATE_Q,
            "Today is May 1, 2021. Tomorrow is May 2, 2021. So the answer is (B).",
            "B",
            True,
        ),
        (answers.LETTER_A_TO_F, DATE_Q, "Today is May 1, 2021. Tomorrow is 5/2/2021.", "B", True),
        (answers.LETTER_A_TO_F, DATE_Q, "Tomorrow is the 2nd of May, 2021, option B", "B", True),
        (answers.LETTER_A_TO_F, DATE_Q, "Today is May 1, 2021. So the answer is A.", "B", False),
        (answers.LETTER_A_TO_F, DATE_Q, "Tomorrow is May 3, 2021. Therefore, the answer is (B).", "B", False),
        (answers.LETTER_A_TO_F, DATE_Q, "Tomorrow is May 1, 2021 B) hmm", "B", False),  # text says A, letter B
        (answers.LETTER_A_TO_F, DATE_Q, "We count forward one day.", "B", None),
        (answers.LETTER_A_TO_C, BALL_Q, "Bob swaps with Claire. At the end, Bob has the red ball.", "C", True),
        (answers.LETTER_A_TO_C, BALL_Q, "At the end, Bob has the Red Ball.", "C", True),
        (answers.LETTER_A_TO_C, BALL_Q, "At the end, Bob has the white ball.", "C", False),
        (
            answers.LETTER_A_TO_C,
            BALL_Q,
            "Alice has the pink ball and Bob has the red ball. So the answer is C.",
            "C",
            True,
        ),
        (answers.LETTER_A_TO_C, BALL_Q, "Alice has the pink ball and Bob has the red ball.", "C", None),
        # numbers: the gold among the numbers of the last sentence stating any, within the format's tolerance
        (answers.FLOAT, "q", "3 + 4 = 7. So she has 7.0 apples.", "7", True),
        (answers.FLOAT, "q", "We need 13 rooms for all 390 students.", "13", True),
        (answers.FLOAT, "q", "3 + 4 = 7. Then she eats 2, so 5 are left.", "7", False),
        (answers.INTEGER, "q", "She has 1,200 apples.", "1200", True),
        (answers.FLOAT, "q", "We add them up.", "7", None),
        (answers.YES_NO, "q", "The coin was flipped twice. Yes, it is heads up.", "yes", True),
        (answers.YES_NO, "q", "So the answer is no.", "yes", False),
        (answers.YES_NO, "q", "The coin is still heads up.", "yes", None),
        (answers.YES_NO, "q", "If no one flips the coin, it stays heads up.", "yes", None),  # "no" as a determiner
        (answers.FLOAT, "q", "He runs 3 and 1/4 laps.", "3.25", True),
        (answers.FLOAT, "q", "That is 2/3 of a bag.", "0.667", True),
        (answers.FLOAT, "q", "That is 1/2 of a bag.", "0.667", False),
        (answers.LETTERS, "q", 'The last letters are "n" and "k". So the answer is "n-k".', "nk", True),
        (answers.LETTERS, "q", 'So we have "yar" concatenated.', "yare", False),
        # gpt-3.5 ends on the letters unquoted, or spaced; a word and its letter ("Kc - c") concludes nothing
        (answers.LETTERS, "q", 'The last letter of "Lloyd" is "d".\nConcatenating them, we get: ayac', "adec", False),
        (answers.LETTERS, "q", 'Of "Myriam Jose" it is lsaa.', "lsaa", True),
        (answers.LETTERS, "q", "Concatenating these last letters together we get: neh h", "nehh", True),
        (answers.LETTERS, "q", "Step 2: Concatenate the last letters\n\nyajc", "yajc", True),
        (answers.LETTERS, "q", "Step 3: Jj - j\nStep 4: Kc - c", "yajc", None),
        (
            answers.LETTERS,
            "q",
            "Jj: j\nKc: c\n\nTogether they spell the answer.",
            "jc",
            None,
        ),  # one letter is no string
        (answers.LETTERS, "q", "Jj: j\nKc: c\n\n=> jc", "jc", True),
        (answers.LETTERS, "q", "The answer is yajc. Done.", "yajc", True),  # "Done" is no string of letters
        (answers.LETTERS, "q", "So we get yajc in the end.", "yajc", True),
        (answers.LETTERS, "q", "Concatenating the last letters, we get: ne na.", "nena", True),
        (answers.LETTERS, "q", "Concatenating them gives us yajc.", "yajc", True),
        (answers.TEXT, "q", "The capital of France is Paris.", "paris", True),
        (answers.TEXT, "q", "It is a large city.", "paris", None),
    ],
)
def test_the_consistency_filter_reads_each_formats_conclusion(fmt, question, text, gold, verdict):
    assert supports(text, fmt, question, gold) is verdict


def _record(index, rationale, answer_text, question=DATE_Q, gold="B", finish=None, limit=16):
    return TeacherCompletion(
        task="date_understanding",
        sample_index=index,
        question=question,
        answer=gold,
        reasoning_prompt="p",
        reasoning_completion=rationale,
        reasoning_finish_reason=finish,
        answer_prompt="p2",
        answer_completion=answer_text,
        model="m",
        params={"max_tokens_reasoning": limit},
    )


def test_curation_drops_inconsistent_and_cut_rationales_and_counts_each(tmp_path):
    train = [Sample("date_understanding", i, DATE_Q, "B") for i in range(5)]
    records = [
        _record(0, " Tomorrow is May 2, 2021. So the answer is (B).", " (B)."),
        _record(1, " Tomorrow is May 3, 2021. So the answer is (B).", " (B)."),  # contradicts its label
        _record(2, " Today is May 1, 2021, and one day after it is May 2, 2021, so the answer is", " (B)."),
        # cut mid-sentence at about its limit, without a finish reason
        _record(3, " Tomorrow is May 2, 2021.", " (B).", finish="length"),  # the server said so
        _record(4, " We count one day forward.", " (B)."),
    ]  # states nothing: kept
    kept, fates = curate(load_task("date_understanding"), records, train, CurateConfig(consistency=True), 1)
    assert [f for _, f in fates] == ["kept", "inconsistent", "truncated", "truncated", "kept"]
    kept, fates = curate(
        load_task("date_understanding"), records, train, CurateConfig(consistency=False, drop_truncated=False), 1
    )
    assert len(kept) == 5
    # The recorded JSONL carries no finish reason (its limit is 128 tokens): a rationale cut there is found, a
    # short one that ends on an equation is complete.
    cut = " We count the days one by one from the first of May," + " and then one more day after that," * 12 + " so"
    lines = [
        {
            "task": "date_understanding",
            "sample_index": i,
            "question": DATE_Q,
            "reasoning_prompt": "p",
            "reasoning_completion": text,
            "answer_prompt": "T",
            "answer_completion": " B",
            "gold": "B",
        }
        for i, text in enumerate([cut, " 1 + 1 = 2 days, May 2, 2021"])
    ]
    (tmp_path / "r.jsonl").write_text("".join(json.dumps(line) + "\n" for line in lines))
    recorded = read_records(tmp_path / "r.jsonl")
    assert recorded[0].reasoning_finish_reason is None
    assert [f for _, f in curate(load_task("date_understanding"), recorded, train, CurateConfig(), 1)[1]] == [
        "truncated",
        "kept",
    ]


def test_rationales_move_to_the_tests_option_order_or_keep_the_teachers_when_ambiguous():
    seen = (
        "Yesterday was April 30, 2021. What is the date tomorrow? Answer Choices: (A) 04/29/2021 (B) 05/01/2021 "
        "(C) 05/02/2021 (D) 03/14/2021"
    )  # the teacher's order: gold C there, B in the test's
    train = [Sample("date_understanding", i, DATE_Q, "B") for i in range(2)]
    records = [
        _record(0, " Tomorrow is May 2, 2021, so (C).", " C", question=seen, gold="C"),
        _record(1, " Let C be tomorrow: May 2, 2021, so (C).", " C", question=seen, gold="C"),
    ]
    kept, _ = curate(load_task("date_understanding"), records, train, CurateConfig(), 1)
    assert (kept[0].question, kept[0].rationale, kept[0].answer, kept[0].frame) == (
        DATE_Q,
        "Tomorrow is May 2, 2021, so (B).",
        "B",
        "remapped",
    )
    assert kept[1].frame == "teacher_order" and kept[1].answer == "C" and "(C) 05/02/2021" in kept[1].question
    kept, _ = curate(load_task("date_understanding"), records, train, CurateConfig(choice_order="teacher"), 1)
    assert [e.frame for e in kept] == ["teacher_order", "teacher_order"]


def test_shuffled_copies_remap_question_rationale_and_answer():
    e = Example(
        task="date_understanding",
        sample_index=1,
        question=DATE_Q,
        answer="B",
        rationale="Tomorrow is May 2, 2021, not (A). So the answer is B.",
    )
    out, without = permuted_copies([e], 3, seed=0)
    assert out[0] == e and [c.variant for c in out] == [0, 1, 2, 3] and without == 0
    assert len({c.question for c in out}) == 4
    for c in out[1:]:
        options = parse_choices(c.question)
        assert options.options[options.letters.index(c.answer)] == "05/02/2021"  # the same option is right
        assert c.rationale.endswith(f"the answer is {c.answer}.")
        assert supports(c.rationale, answers.LETTER_A_TO_F, c.question, c.answer)
    assert permuted_copies([e], 3, seed=0)[0] == out and permuted_copies([e], 3, seed=1)[0] != out
    three = Example(task="t", sample_index=0, question=BALL_Q, answer="C", rationale="")
    assert len(permuted_copies([three], 9, 0)[0]) == 6  # 3 options have 5 other orders
    ambiguous = e.model_copy(update={"rationale": "Let C be May 2, 2021. So (B)."})
    assert permuted_copies([ambiguous], 3, 0) == ([ambiguous], 1)
    numbers = Example(task="multiarith", sample_index=0, question="How many?", answer="7", rationale="3 + 4 = 7.")
    assert permuted_copies([numbers], 3, 0) == ([numbers], 1)  # options it cannot read: counted, not copied


LL_Q = 'Take the last letters of each words in "Lloyd Jc" and concatenate them.'


@pytest.mark.parametrize(
    "output, prediction, fmt, question, gold, kind",
    [
        (" Tomorrow is May 2, 2021. --> A", "A", answers.LETTER_A_TO_F, DATE_Q, "B", "right_conclusion"),
        (" Tomorrow is May 1, 2021. --> A", "A", answers.LETTER_A_TO_F, DATE_Q, "B", "wrong_conclusion"),
        (" Tomorrow is May 9, 2021. --> A", "A", answers.LETTER_A_TO_F, DATE_Q, "B", "wrong_conclusion"),
        (" We count a day. --> A", "A", answers.LETTER_A_TO_F, DATE_Q, "B", "no_conclusion"),
        (" Tomorrow is" + " May 2, 2021 is" * 20, None, answers.LETTER_A_TO_F, DATE_Q, "B", "loop"),
        (" Tomorrow is May 2, 2021, which", None, answers.LETTER_A_TO_F, DATE_Q, "B", "cut_off"),
        (" Tomorrow is May 2, 2021. -->", None, answers.LETTER_A_TO_F, DATE_Q, "B", "unparsed"),
        (" 3 + 4 = 7. --> 8", "8", answers.FLOAT, "q", "7", "right_conclusion"),
        (" 3 + 4 = 8. --> 8", "8", answers.FLOAT, "q", "7", "wrong_arithmetic"),
        (" 3 + 4 = 7. 7 x 2 = 14. --> 14", "14", answers.FLOAT, "q", "10", "wrong_setup"),
        (" He has 8 now. --> 8", "8", answers.FLOAT, "q", "7", "wrong_conclusion"),
        (" We add. --> 8", "8", answers.FLOAT, "q", "7", "no_conclusion"),
        # a letter string: the letter it names for each quoted word, against the gold
        (
            " 1. Lloyd - y\n2. Jc - c\n\nConcatenating them, we get: yc --> yc",
            "yc",
            answers.LETTERS,
            LL_Q,
            "dc",
            "wrong_letter",
        ),
        (
            ' The last letter of "Lloyd" is "d". Of "Jc" it is "c". So we get: cd --> cd',
            "cd",
            answers.LETTERS,
            LL_Q,
            "dc",
            "wrong_join",
        ),
        (" 1. Lloyd - d\n2. Jack - k\n\nWe get: dk --> dk", "dk", answers.LETTERS, LL_Q, "dc", "wrong_conclusion"),
        (
            " Lloyd's last letter is d. Jc ends with a c. We get: cd --> cd",
            "cd",
            answers.LETTERS,
            LL_Q,
            "dc",
            "wrong_join",
        ),
        (
            " Juan - n\nManuel - l\nJc - c\n\nWe get: nlc --> nlc",
            "nlc",
            answers.LETTERS,
            LL_Q.replace("Lloyd", "Juan Manuel"),
            "lc",
            "wrong_conclusion",
        ),  # a name of two words: its letters are not counted
        (" Tomorrow is May 2, 2021. --> B", "B", answers.LETTER_A_TO_F, DATE_Q, "B", None),
    ],
)
def test_failure_kinds_on_hand_written_outputs(output, prediction, fmt, question, gold, kind):
    right = fmt.matches(prediction, gold)
    assert failure_kind(output, prediction, right, fmt, question, gold, "-->", True) == kind
    assert failure_kind(" 8", "8", False, fmt, question, "7", None, False) == "wrong_answer"


def test_answers_by_content_and_loops():
    assert option_by_content(" Tomorrow is May 2, 2021. --> A", DATE_Q) == "B"
    assert option_by_content(" Tomorrow is May 9, 2021. --> A", DATE_Q) is None  # no option holds that date
    assert option_by_content(" So (B). --> B", DATE_Q) is None  # a letter is not content
    assert is_loop("so x is 3. " * 4) and not is_loop("one two three four five six seven eight nine")
    assert is_loop("= 8 + 365.24 days " * 4 + "= 8 + 365.2")  # the last word cut by the token limit
    assert not is_loop("") and not is_loop("   ")


@pytest.mark.parametrize(
    "curate_keys, evaluate_keys, task, message",
    [
        ({"permute_choices": -1}, {}, "date_understanding", "curate.permute_choices: Input should be greater than"),
        ({"permute_choices": 2}, {}, "multiarith", "curate.permute_choices: task multiarith has no answer choices"),
        ({}, {"choice_by_content": True}, "coin_flip", "evaluate.choice_by_content: task coin_flip has no answer"),
    ],
)
def test_bad_values_are_one_line_naming_the_key(tmp_path, curate_keys, evaluate_keys, task, message):
    config = tmp_path / "c.yaml"
    config.write_text(yaml.safe_dump({"task": task, "curate": curate_keys, "evaluate": evaluate_keys}))
    result = invoke_cli("config", config)
    assert result.returncode == 2 and message in result.stderr and len(result.stderr.strip().splitlines()) == 1


def test_the_paper_protocol_keeps_the_papers_filter(tmp_path):
    from ftcot.config import RunConfig

    assert RunConfig(task="date_understanding").curate.consistency is True
    assert RunConfig(task="date_understanding", train={"protocol": "paper"}).curate.consistency is False
    assert (
        RunConfig(
            task="date_understanding", train={"protocol": "paper"}, curate={"consistency": True}
        ).curate.consistency
        is True
    )


COLORS = ["red", "blue", "green", "yellow"]


def _choice_task(tmp_path) -> tuple[list[dict], list[TeacherCompletion]]:
    """A custom choice task (choices as a list, answers as texts) and recorded teacher records: right and
    consistent, except every 7th (its rationale names another color) and every 11th (a wrong answer)."""
    rng = random.Random(3)
    rows, records = [], []
    for i in range(120):
        color, choices = rng.choice(COLORS), rng.sample(COLORS, 4)
        rows.append(
            {"question": f"Tom has a {color} ball. What color is Tom's ball?", "choices": choices, "answer": color}
        )
        question = verbalize(rows[-1]["question"], choices)
        gold = "ABCD"[choices.index(color)]
        said = next(c for c in COLORS if c != color) if i % 7 == 3 else color
        step1 = f"Q: {question}\nA: Let's think step by step."
        rationale = f" Tom's ball is {said}. So the answer is ({gold})."
        answer = "ABCD"[(choices.index(color) + 1) % 4] if i % 11 == 5 else gold
        records.append(
            TeacherCompletion(
                task="colors",
                sample_index=i,
                question=question,
                answer=gold,
                reasoning_prompt=step1,
                reasoning_completion=rationale,
                answer_prompt=f"{step1}{rationale} \nTherefore, the answer is",
                answer_completion=f" {answer}.",
                model="scripted",
            )
        )
    for name, part in (("train", rows[:100]), ("test", rows[100:])):
        (tmp_path / f"{name}.jsonl").write_text("".join(json.dumps(r) + "\n" for r in part))
    return rows, records


def test_a_custom_choice_task_gets_all_of_it_end_to_end(tmp_path, data_dir, tiny_lm):
    rows, records = _choice_task(tmp_path)
    write_completion_dataset(records, tmp_path / "colors.json")
    config = tmp_path / "run.yaml"
    config.write_text(
        yaml.safe_dump(
            {
                "task": {
                    "name": "colors",
                    "train": str(tmp_path / "train.jsonl"),
                    "test": str(tmp_path / "test.jsonl"),
                    "choices_field": "choices",
                    "answer_format": "choice",
                },
                "run_dir": str(tmp_path / "run"),
                "data_dir": str(data_dir),
                "teacher": {
                    "backend": "recorded",
                    "records": str(tmp_path / "colors.json"),
                    "teach_on": ["train", "test"],
                },
                "curate": {"consistency": True, "permute_choices": 2},
                "student": {"model": str(tiny_lm)},
                "train": {
                    "epochs": 1,
                    "batch_size": 8,
                    "learning_rate": 0.001,
                    "max_examples": 24,
                    "methods": ["ft_cot"],
                },
                "evaluate": {"baselines": [], "max_questions": 6, "max_new_tokens": 16, "choice_by_content": True},
            }
        )
    )
    result = run_cli("run", config)
    assert result.returncode == 0, result.stderr[-3000:]
    run = tmp_path / "run"
    summary = json.loads((run / "curate" / "summary.json").read_text())
    val = {json.loads(line)["sample_index"] for line in (run / "curate" / "val.jsonl").open()}
    assert len(val) == 10 and summary["removed"]["inconsistent"] == sum(
        i % 7 == 3 and i % 11 != 5 and i not in val for i in range(100)
    )
    per_question = [json.loads(line) for line in (run / "curate" / "per_question.jsonl").open()]
    assert sum(q["dropped"].get("inconsistent", 0) for q in per_question) == summary["removed"]["inconsistent"]
    assert not (run / "curate" / "train_vanilla.jsonl").exists()  # written for the methods trained alone
    for method in ("ft_cot",):
        trained = [json.loads(line) for line in (run / "curate" / f"train_{method}.jsonl").open()]
        assert not {e["sample_index"] for e in trained} & val  # validation is never trained on, nor shuffled
        originals = [e for e in trained if e["variant"] == 0]
        assert len(trained) == 3 * len(originals)
        for e in trained:  # each copy: the gold color under the letter it is trained to write
            parsed = parse_choices(e["question"])
            assert parsed.options[parsed.letters.index(e["answer"])] == rows[e["sample_index"]]["answer"]
            assert not e["rationale"] or e["rationale"].endswith(f"({e['answer']}).")
    assert not any(json.loads(line).get("variant") for line in (run / "curate" / "val.jsonl").open())
    metrics = json.loads((run / "eval" / "ft_cot" / "metrics.json").read_text())
    assert sum(metrics["failures"]["kinds"].values()) == metrics["failures"]["n_wrong"] == 6 - metrics["correct"]
    assert metrics["choice_by_content"]["n"] == 6
    predictions = [json.loads(line) for line in (run / "eval" / "ft_cot" / "predictions.jsonl").open()]
    assert all("prediction_by_content" in p and ("failure" in p) for p in predictions)
    report = (run / "report.md").read_text()
    assert "| Fine-tune-CoT: " in report and ", answer read by content |" in report
    assert "## Why answers are wrong" in report and "| colors | Fine-tune-CoT: " in report.split("Why answers")[1]


def test_the_curation_benchmark_runs_in_its_smoke_mode(data_dir, tmp_path):
    import subprocess
    import sys
    from pathlib import Path

    script = Path(__file__).resolve().parents[1] / "benchmarks" / "curation.py"
    out = tmp_path / "curation.md"
    result = subprocess.run(
        [
            sys.executable,
            str(script),
            "--data",
            str(data_dir),
            "--tasks",
            "multiarith",
            "date_understanding",
            "--out",
            str(out),
        ],
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    rows = [line for line in out.read_text().splitlines() if line.startswith(("| multiarith", "| date_"))]
    assert len(rows) == 2 and all(row.count("|") == 12 for row in rows)
    assert " / 0 | " in rows[1] and "(0) |" in rows[1]  # minidata's Date rationales all move to the test's order


def test_the_taxonomy_benchmark_runs_in_its_smoke_mode(tmp_path):
    import subprocess
    import sys
    from pathlib import Path

    folder = tmp_path / "date_understanding" / "s.predictions"
    folder.mkdir(parents=True)
    rows = [
        {
            "question": DATE_Q,
            "prompt": DATE_Q + " ###",
            "output": " Tomorrow is May 2, 2021. --> A",
            "prediction": "A",
            "answer": "B",
            "correct": False,
        },
        {
            "question": DATE_Q,
            "prompt": DATE_Q + " ###",
            "output": " So (B). --> B",
            "prediction": "B",
            "answer": "B",
            "correct": True,
        },
    ]
    (folder / "ft_cot.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    script = Path(__file__).resolve().parents[1] / "benchmarks" / "taxonomy.py"
    result = subprocess.run(
        [sys.executable, str(script), "--settings", "s", "--results", str(tmp_path), "--out", str(tmp_path / "t.md")],
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    row = next(line for line in (tmp_path / "t.md").read_text().splitlines() if line.startswith("| date_"))
    assert row.startswith("| date_understanding | s | ft_cot | 2 | 50.00 | 100.00 | 0 | 0 | 0 | 1 | 0 | 0 | 0 |")
