"""A small synthetic data folder in the layout and raw file formats of the shared data (docs/data.md), so that
the tests that need *some* data run on a machine without it. Every question is generated here with its
answer computed; nothing is copied from a benchmark.

What it holds: the raw file(s) of all 12 tasks in their upstream formats (AQuA's train file left out, as in the
shared copy), a default split per task made the paper's way, few-shot-CoT prompts for coin_flip and
multiarith, recorded-teacher records for coin_flip, multiarith and date_understanding (in Kojima's question
format and log order, right except on TEACHER_WRONG), and coin_flip's Kojima-style log that those records
parse from.
"""

from __future__ import annotations

import datetime
import json
import random
from pathlib import Path

import numpy as np

TEACHER_DIR = "teacher/text-davinci-002__zs_cot"
COT_TRIGGER = "Let's think step by step."
# Kojima et al.'s step-2 triggers, which the recorded records and logs carry.
YES_NO_TRIGGER = "Therefore, the answer (Yes or No) is"
NUMERIC_TRIGGER = "Therefore, the answer (arabic numerals) is"
DATE_TRIGGER = "Therefore, among A through F, the answer is"

# Records per raw file; (train file, test file) where a task has two. AQuA's train file is absent.
SIZES = {
    "single_eq": 20,
    "addsub": 40,
    "multiarith": 60,
    "gsm8k": (8, 6),
    "aqua": 8,
    "svamp": 20,
    "date_understanding": 40,
    "tracking_shuffled_objects": 20,
    "last_letter_concatenation": 20,
    "coin_flip": 300,
    "commonsense_qa": (10, 6),
    "strategy_qa": 20,
}
# sample_index of a task's second file (as in ftcot.tasks.registry, so that the paper's indices hold).
OFFSETS = {"gsm8k": 7473, "commonsense_qa": 9741, "aqua": 97467}
AQUA_TRAIN_INDICES = list(range(10))  # the train side of aqua's split points into the absent file
FEW_SHOT = {"coin_flip": 4, "multiarith": 3}  # few-shot-CoT exemplars: the first train questions the teacher solved
# The tasks with recorded-teacher records (of every sample); the scripted teacher is wrong on TEACHER_WRONG.
TEACHER_TASKS = ("coin_flip", "multiarith", "date_understanding")
TEACHER_WRONG = {task: set(range(3, SIZES[task], 10)) for task in TEACHER_TASKS}
COIN_FLIP_TRIGGER_IN_RATIONALE = 5  # this record's rationale holds its own answer trigger, as a few real ones do

NAMES = [
    "Ada",
    "Bruno",
    "Cleo",
    "Dario",
    "Edda",
    "Felix",
    "Greta",
    "Hugo",
    "Ines",
    "Jonas",
    "Kira",
    "Lars",
    "Mila",
    "Nils",
    "Olga",
    "Pavel",
    "Quinn",
    "Rosa",
    "Sven",
    "Tilda",
    "Ugo",
    "Vera",
    "Wim",
    "Xenia",
    "Yusuf",
    "Zora",
]
THINGS = ["apples", "marbles", "stickers", "pencils", "shells", "cards", "coins", "books"]
COLOURS = ["red", "blue", "green", "yellow", "purple", "white", "black", "orange"]


def counts(task: str) -> tuple[int, int, int]:
    """(samples, train, test) of a task as written; aqua counts its test file only."""
    size = SIZES[task]
    if task == "aqua":
        return size, len(AQUA_TRAIN_INDICES), size
    if isinstance(size, tuple):
        return sum(size), size[0], size[1]
    return size, round(0.7 * size), size - round(0.7 * size)


def _paper_split(n: int) -> dict:
    """The paper's generate_split.py: a RandomState(0) permutation, the first 70% as train, both sides sorted."""
    perm = np.random.RandomState(0).permutation(range(n))
    cut = round(0.7 * n)
    return {"train": sorted(int(i) for i in perm[:cut]), "test": sorted(int(i) for i in perm[cut:])}


# --- raw files, in each upstream format ---------------------------------------------------------------------


def _single_eq(rng: random.Random) -> list[dict]:
    # The first two fix what tests check: lSolutions are floats, and the answer is their str().
    rows = [
        {
            "sQuestion": "Tom had 70 marbles. He gave some to Sam and has 27 left. How many did he give to Sam?",
            "lEquations": ["70-x=27"],
            "lSolutions": [43.0],
        },
        {
            "sQuestion": "A cake is cut into 3 equal slices and Ann eats 2. What part of the cake did she eat?",
            "lEquations": ["x=2/3"],
            "lSolutions": [2 / 3],
        },
    ]
    while len(rows) < SIZES["single_eq"]:
        name, thing, a, b = rng.choice(NAMES), rng.choice(THINGS), rng.randint(5, 90), rng.randint(2, 40)
        rows.append(
            {
                "sQuestion": f"{name} had {a} {thing} and found {b} more. How many {thing} does {name} have?",
                "lEquations": [f"x={a}+{b}"],
                "lSolutions": [float(a + b)],
            }
        )
    return [{**r, "grammarCheck": 0, "templateNumber": 0, "iIndex": i} for i, r in enumerate(rows)]


def _addsub(rng: random.Random) -> list[dict]:
    rows = []
    for i in range(SIZES["addsub"]):
        name, thing, a, b = rng.choice(NAMES), rng.choice(THINGS), rng.randint(30, 90), rng.randint(2, 29)
        if i == 0:
            a, b = 70, 27
        # Upstream questions carry stray spaces and string solutions.
        rows.append(
            {
                "iIndex": i + 1,
                "lEquations": [f"X = {a} - {b}"],
                "lSolutions": [str(a - b)],
                "sQuestion": f" {name} had {a} {thing} . {name} gave {b} away . How many {thing} are left ? ",
            }
        )
    return rows


def _multiarith_question(rng: random.Random) -> tuple[str, list[tuple[str, int]], int]:
    """A word problem, its reasoning steps as (text, value), and its answer."""
    name, thing = rng.choice(NAMES), rng.choice(THINGS)
    if rng.random() < 0.5:
        a, b = rng.randint(10, 60), rng.randint(2, 30)
        c = rng.randint(1, a + b - 1)
        question = (
            f"{name} had {a} {thing}. {name} bought {b} more and then gave {c} to a friend. "
            f"How many {thing} does {name} have now?"
        )
        return (
            question,
            [(f"After buying, {name} had {a} + {b}", a + b), (f"After giving some away, {a + b} - {c}", a + b - c)],
            a + b - c,
        )
    boxes, per_box = rng.randint(2, 9), rng.randint(2, 12)
    c = rng.randint(1, boxes * per_box - 1)
    question = (
        f"{name} has {boxes} boxes with {per_box} {thing} in each box. {name} gives away {c} {thing}. "
        f"How many {thing} are left?"
    )
    return (
        question,
        [
            (f"In all there are {boxes} x {per_box}", boxes * per_box),
            (f"After giving some away, {boxes * per_box} - {c}", boxes * per_box - c),
        ],
        boxes * per_box - c,
    )


def _multiarith(rng: random.Random) -> list[dict]:
    rows = []
    for i in range(SIZES["multiarith"]):
        question, steps, answer = _multiarith_question(rng)
        rows.append(
            {
                "iIndex": i,
                "lAlignments": [],
                "lEquations": [f"X={answer}.0"],
                "lSolutions": [float(answer)],
                "sQuestion": f" {question}",
                "_steps": steps,
            }
        )
    return rows


def _gsm8k(rng: random.Random, n: int, comma_first: bool) -> list[dict]:
    rows = []
    for i in range(n):
        name, thing = rng.choice(NAMES), rng.choice(THINGS)
        boxes, per_box = (4, 250) if comma_first and i == 0 else (rng.randint(2, 9), rng.randint(3, 40))
        total = boxes * per_box
        rows.append(
            {
                "question": f"{name} buys {boxes} packs of {per_box} {thing}. How many {thing} does {name} have?",
                "answer": f"{name} has {boxes} * {per_box} = <<{boxes}*{per_box}={total}>>{total} {thing}.\n"
                f"#### {total:,}",
            }
        )  # the upstream answer line keeps its thousands comma
    return rows


def _aqua(rng: random.Random) -> list[dict]:
    rows = []
    for _ in range(SIZES["aqua"]):
        a, b = rng.randint(3, 19), rng.randint(3, 19)
        options = sorted({a * b, a * b + a, a * b - b, a * b + 10, (a + 1) * b})
        while len(options) < 5:
            options.append(options[-1] + 1)
        rows.append(
            {
                "question": f"What is {a} times {b}?",
                "rationale": f"{a} * {b} = {a * b}",
                "options": [f"{chr(65 + k)}){v}" for k, v in enumerate(options)],
                "correct": chr(65 + options.index(a * b)),
            }
        )
    return rows


def _svamp(rng: random.Random) -> list[dict]:
    rows = []
    for i in range(SIZES["svamp"]):
        name, thing, per_box, boxes = rng.choice(NAMES), rng.choice(THINGS), rng.randint(2, 20), rng.randint(2, 9)
        rows.append(
            {
                "ID": f"syn-{i}",
                "Body": f" Each box holds {per_box} {thing}. {name} has {boxes} boxes. ",
                "Question": f"How many {thing} does {name} have? ",
                "Equation": f"( {per_box}.0 * {boxes}.0 )",
                "Answer": float(per_box * boxes),
                "Type": "Multiplication",
            }
        )
    return rows


def _date_choices(rng: random.Random, i: int) -> tuple[str, list[str], str]:
    start = datetime.date(2001, 1, 1) + datetime.timedelta(days=rng.randint(0, 8000))
    days = rng.choice([2, 3, 7, 10, 30])
    right = start + datetime.timedelta(days=days)
    wrong = [
        right - datetime.timedelta(days=1),
        right + datetime.timedelta(days=7),
        start,
        right.replace(year=right.year + 1, day=min(right.day, 28)),
        right - datetime.timedelta(days=31),
    ]
    choices = [right, *wrong[: 4 if i % 4 == 0 else 5]]  # 5 or 6 choices, as upstream
    rng.shuffle(choices)
    question = f"Today is {start:%m/%d/%Y}. What is the date {days} days from today in MM/DD/YYYY?"
    return question, [f"{d:%m/%d/%Y}" for d in choices], f"{right:%m/%d/%Y}"


def _date(rng: random.Random) -> list[dict]:
    rows = []
    for i in range(SIZES["date_understanding"]):
        question, choices, right = _date_choices(rng, i)
        rows.append({"input": question, "target_scores": {c: int(c == right) for c in choices}})
    return rows


def _tracking(rng: random.Random) -> list[dict]:
    rows = []
    people = ["Alice", "Bob", "Claire"]
    for _ in range(SIZES["tracking_shuffled_objects"]):
        balls = rng.sample(COLOURS, 3)
        holding = dict(zip(people, balls))
        swaps = [rng.sample(people, 2) for _ in range(3)]
        for x, y in swaps:
            holding[x], holding[y] = holding[y], holding[x]
        who = rng.choice(people)
        start = ", ".join(f"{p} has the {b} ball" for p, b in zip(people, balls))
        moves = " ".join(
            f"{word}, {x} and {y} swap balls." for word, (x, y) in zip(("First", "Then", "Finally"), swaps)
        )
        rows.append(
            {
                "input": f"Alice, Bob, and Claire are playing a game. At the start, {start}. \n\n{moves} "
                f"At the end of the game, {who} has the",
                "target_scores": {f"{b} ball.": int(b == holding[who]) for b in balls},
            }
        )
    return rows


def _last_letters(rng: random.Random) -> list[dict]:
    rows = []
    for _ in range(SIZES["last_letter_concatenation"]):
        words = rng.sample(NAMES, 4)
        rows.append(
            {
                "question": f'Take the last letters of each words in "{" ".join(words)}" and concatenate them.',
                "answer": "".join(w[-1] for w in words).lower(),
            }
        )
    return rows


def _coin_flip_people(rng: random.Random) -> list[tuple[str, bool]]:
    return [(name, rng.random() < 0.5) for name in rng.sample(NAMES, 4)]


def _coin_flip_question(people: list[tuple[str, bool]]) -> str:
    steps = " ".join(f"{p} flips the coin." if flips else f"{p} does not flip the coin." for p, flips in people)
    return f'A coin is heads up. {steps} Is the coin still heads up? Note that "flip" here means "reverse".'


def _csqa(rng: random.Random, n: int) -> list[dict]:
    rows = []
    for i in range(n):
        numbers = rng.sample(range(10, 99), 5)
        rows.append(
            {
                "answerKey": chr(65 + numbers.index(max(numbers))),
                "id": f"syn{n}-{i}",
                "question": {
                    "question_concept": "number",
                    "stem": " Which of these numbers is the largest? ",
                    "choices": [{"label": chr(65 + k), "text": str(v)} for k, v in enumerate(numbers)],
                },
            }
        )
    return rows


def _strategy_qa(rng: random.Random) -> list[dict]:
    rows = []
    for _ in range(SIZES["strategy_qa"]):
        n = rng.randint(10, 99)
        even = n % 2 == 0
        rows.append(
            {
                "input": f" Is {n} an even number? ",
                "target_scores": {"Yes": int(even), "No": int(not even)},
                "target": f"{'Yes' if even else 'No'}. {n} is{'' if even else ' not'} divisible by 2.",
            }
        )
    return rows


# --- the recorded teacher, scripted -------------------------------------------------------------------------


def _record(
    task: str,
    index: int,
    split: dict,
    question: str,
    rationale: str,
    trigger: str,
    completion: str,
    gold: str,
    prediction: str,
) -> dict:
    """A record with the shared teacher files' fields (shared data README, "Teacher records")."""
    side = "train" if index in split["train"] else "test"
    return {
        "task": task,
        "sample_index": index,
        "split": side,
        "question": question,
        "reasoning_prompt": f"Q: {question}\nA: {COT_TRIGGER}",
        "reasoning_completion": rationale,
        "answer_prompt": trigger,
        "answer_completion": completion,
        "gold": gold,
        "log_prediction": prediction,
    }


def _coin_flip_teacher(index: int, people: list[tuple[str, bool]], answer: str, split: dict) -> dict:
    heads, lines = True, []
    for name, flips in people:
        heads ^= flips
        side = "heads" if heads else "tails"
        lines.append(
            f"{name} flips the coin, so the coin is now {side} up."
            if flips
            else f"{name} does not flip the coin, so the coin stays {side} up."
        )
    if index == COIN_FLIP_TRIGGER_IN_RATIONALE:
        lines.insert(1, f"{YES_NO_TRIGGER} not known until every flip is counted.")
    wrong = index in TEACHER_WRONG["coin_flip"]
    said = (answer == "yes") != wrong
    rationale = " \n\n" + " \n".join(lines) + f" \n\nSo the coin ends {'heads' if said else 'tails'} up."
    word = "Yes" if said else "No"
    completion = [f" {word}.", f' "{word}".', f" {word.lower()}"][index % 3]
    return _record(
        "coin_flip",
        index,
        split,
        _coin_flip_question(people),
        rationale,
        YES_NO_TRIGGER,
        completion,
        answer,
        word.lower(),
    )


def _multiarith_teacher(index: int, row: dict, split: dict) -> dict:
    answer = int(row["lSolutions"][0])
    said = answer + 1 if index in TEACHER_WRONG["multiarith"] else answer
    steps = [f"{text} = {value}." for text, value in row["_steps"][:-1]]
    steps.append(f"{row['_steps'][-1][0]} = {said}.")
    return _record(
        "multiarith",
        index,
        split,
        row["sQuestion"].strip(),
        " \n\n" + " \n".join(steps),
        NUMERIC_TRIGGER,
        f" {said}.",
        str(answer),
        str(said),
    )


def _date_teacher(index: int, row: dict, split: dict) -> dict:
    """Kojima's Date question lists the choices in another order than the task's; its letters follow that order."""
    choices = list(row["target_scores"])
    random.Random(f"date {index}").shuffle(choices)
    right = next(c for c, score in row["target_scores"].items() if score)
    gold = chr(65 + choices.index(right))
    said = chr(65 + (choices.index(right) + 1) % len(choices)) if index in TEACHER_WRONG["date_understanding"] else gold
    options = " ".join(f"({chr(65 + k)}) {c}" for k, c in enumerate(choices))
    rationale = (
        f" \n\n{row['input'].split('. ')[0]}. Counting the days forward gives {choices[ord(said) - 65]}, "
        f"so the answer is ({said})."
    )
    return _record(
        "date_understanding",
        index,
        split,
        f"{row['input'].strip()} Answer Choices: {options}",
        rationale,
        DATE_TRIGGER,
        f" ({said}).",
        gold,
        said,
    )


def log_order(n: int) -> list[int]:
    """Kojima's log order: a torch DataLoader shuffled under seed 1 (two draws for its base seed, then randperm).
    Torch's own, not the parser's reimplementation, so that a log parsed back checks that too."""
    import torch

    generator = torch.Generator().manual_seed(1)
    torch.empty((), dtype=torch.int64).random_(generator=generator)
    return torch.randperm(n, generator=generator).tolist()


def _kojima_log(task: str, records: list[dict], trigger: str) -> str:
    """Kojima et al.'s zero-shot-CoT log of these records (in log order), in the layout of their log files."""
    stars = "*" * 25
    head = (
        f"{stars}**\nNamespace(cot_trigger=\"{COT_TRIGGER}\", dataset='{task}', decode_strategy='greedy', "
        f"direct_answer_trigger='\\n{trigger}', method='zero_shot_cot', model='gpt3-xl', random_seed=1)\n"
        f"{stars}**\nsetup data loader ...\ndata size : {len(records)}\n"
    )
    blocks = [
        f"{stars}\n{k}st data\n1_th_sampling\nQ: {r['question']}\nA: {COT_TRIGGER}{r['reasoning_completion']} \n"
        f"{trigger}{r['answer_completion']}\npred_before : {r['answer_completion']}\n"
        f"pred_after : {r['log_prediction']}\npred_list : ['{r['log_prediction']}']\n"
        f"pred_mode : {r['log_prediction']}\nGT : {r['gold']}\n{stars}\n"
        for k, r in enumerate(records, 1)
    ]
    correct = sum(r["gold"] == r["log_prediction"] for r in records)
    return head + "".join(blocks) + f"accuracy : {100 * correct / len(records)}\n"


# --- the folder ---------------------------------------------------------------------------------------------


def _json(root: Path, relpath: str, obj) -> None:
    path = root / relpath
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(obj, ensure_ascii=False, indent=1) + "\n", encoding="utf-8")


def _jsonl(root: Path, relpath: str, rows: list[dict]) -> None:
    path = root / relpath
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")


def write(root: Path) -> Path:
    """Write the synthetic data folder into root (deterministic: the same bytes every time)."""
    rng = random.Random(0)
    splits = {task: _paper_split(SIZES[task]) for task in SIZES if isinstance(SIZES[task], int) and task != "aqua"}
    splits["gsm8k"] = {
        "train": list(range(SIZES["gsm8k"][0])),
        "test": [OFFSETS["gsm8k"] + i for i in range(SIZES["gsm8k"][1])],
    }
    splits["commonsense_qa"] = {
        "train": list(range(SIZES["commonsense_qa"][0])),
        "test": [OFFSETS["commonsense_qa"] + i for i in range(SIZES["commonsense_qa"][1])],
    }
    splits["aqua"] = {"train": AQUA_TRAIN_INDICES, "test": [OFFSETS["aqua"] + i for i in range(SIZES["aqua"])]}
    for task, split in splits.items():
        _json(root, f"splits/{task}__default.json", split)

    _json(root, "raw/SingleEq/questions.json", _single_eq(rng))
    _json(root, "raw/AddSub/AddSub.json", _addsub(rng))
    multiarith = _multiarith(rng)
    _json(root, "raw/MultiArith/MultiArith.json", [{k: v for k, v in r.items() if k != "_steps"} for r in multiarith])
    _jsonl(root, "raw/grade-school-math/train.jsonl", _gsm8k(rng, SIZES["gsm8k"][0], comma_first=True))
    _jsonl(root, "raw/grade-school-math/test.jsonl", _gsm8k(rng, SIZES["gsm8k"][1], comma_first=False))
    _jsonl(root, "raw/AQuA/test.json", _aqua(rng))  # JSON lines despite its name, as upstream
    _json(root, "raw/SVAMP/SVAMP.json", _svamp(rng))
    date = _date(rng)
    _json(root, "raw/Bigbench_Date/task.json", {"name": "date_understanding", "examples": date})
    _json(
        root,
        "raw/Bigbench_object_tracking/task.json",
        {"name": "tracking_shuffled_objects", "examples": _tracking(rng)},
    )
    _json(root, "raw/last_letters/last_letters.json", {"examples": _last_letters(rng)})
    coin_people = [_coin_flip_people(rng) for _ in range(SIZES["coin_flip"])]
    coins = [
        {"question": _coin_flip_question(p), "answer": "no" if sum(f for _, f in p) % 2 else "yes"} for p in coin_people
    ]
    _json(root, "raw/coin_flip/coin_flip.json", {"examples": coins})
    _jsonl(root, "raw/CommonsenseQA/train_rand_split.jsonl", _csqa(rng, SIZES["commonsense_qa"][0]))
    _jsonl(root, "raw/CommonsenseQA/dev_rand_split.jsonl", _csqa(rng, SIZES["commonsense_qa"][1]))
    _json(root, "raw/StrategyQA/task.json", {"name": "strategyqa", "examples": _strategy_qa(rng)})

    teacher = {
        "coin_flip": [
            _coin_flip_teacher(i, coin_people[i], coins[i]["answer"], splits["coin_flip"])
            for i in range(SIZES["coin_flip"])
        ],
        "multiarith": [_multiarith_teacher(i, row, splits["multiarith"]) for i, row in enumerate(multiarith)],
        "date_understanding": [_date_teacher(i, row, splits["date_understanding"]) for i, row in enumerate(date)],
    }
    logged = {task: [records[i] for i in log_order(len(records))] for task, records in teacher.items()}
    for task, records in logged.items():  # the shared files keep the log's order
        _jsonl(root, f"{TEACHER_DIR}/{task}.jsonl", records)
    (root / "kojima_logs").mkdir()
    (root / "kojima_logs" / "coin_flip_zero_shot_cot.log").write_text(
        _kojima_log("coin_flip", logged["coin_flip"], YES_NO_TRIGGER), encoding="utf-8"
    )

    prompts = {}
    for task, k in FEW_SHOT.items():
        shown = [teacher[task][i] for i in splits[task]["train"] if i not in TEACHER_WRONG[task]][:k]
        prompts[task] = {
            "prompt": "\n".join(
                f"Q: {r['question']}\nA: {' '.join(r['reasoning_completion'].split())} The answer is {r['gold']}."
                for r in shown
            ),
            "sample_indices": [r["sample_index"] for r in shown],
            "comment": "synthetic (tests/minidata.py)",
        }
    _json(root, "few_shot_cot_prompts.json", prompts)
    return root
