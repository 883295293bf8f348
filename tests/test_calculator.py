"""The calculator (#29): the evaluator on hand-written expressions, malicious and huge ones refused; the wrapper
over the engine protocol on a scripted engine (outputs without `=` the plain engine's, values written where one
is, several in an output, every unfinished output of a round in one call, the token budget across rounds,
samples kept apart); the three engines giving the same calculator outputs on a tiny model that writes sums; the
config and the fingerprints; `ftcot evaluate` and `ftcot report` with the calculator beside the plain row."""

import json
import os
from fractions import Fraction
from pathlib import Path

import pytest
import yaml
from helpers import invoke_cli, run_cli

from ftcot import calculator as calc
from ftcot.methods import Stop, get_method


@pytest.mark.parametrize(
    "expression, value",
    [
        ("1 + 2 * 3", 7),
        ("(1 + 2) * 3", 9),
        ("10 - 4 - 3", 3),
        ("2 * (3 + 4) - 1", 13),
        ("12 / 4 / 3", 1),
        ("3.5 + 1.25", Fraction(19, 4)),
        ("0.1 + 0.2", Fraction(3, 10)),
        ("1,000 + 7", 1007),
        ("1,234,567.5 - 0.5", 1234567),
        ("3 x 4", 12),
        ("3x4", 12),
        ("6 × 7", 42),
        ("9 ÷ 2", Fraction(9, 2)),
        ("-3 + 5", 2),
        ("5 - -3", 8),
        ("-(2 + 3) * 2", -10),
        ("4 − 1", 3),
        ("10 / 3", Fraction(10, 3)),
        ("$4.50 + $2", Fraction(13, 2)),
        ("((((7))))", 7),
    ],
)
def test_the_evaluator_computes_arithmetic_exactly(expression, value):
    assert calc.compute(expression) == value


@pytest.mark.parametrize(
    "expression",
    [
        "9**9**9",
        "2 ** 10",
        "__import__('os').system('ls')",
        "1 / 0",
        "5 / (3 - 3)",
        "1 +",
        "(1 + 2",
        "1 + 2)",
        "",
        "  ",
        "12,34 + 5",
        "1,0000 + 1",
        "3 4",
        "1e9 * 2",
        "99999999999999999 + 1",
        "1 + " * 5000 + "1",
        "1000000000 * 1000000000",
        "abs(-3)",
        "3 + four",
        "1_000 + 1",
        "2 ^ 3",
        "7 % 2",
    ],
)
def test_anything_else_is_refused(expression):
    assert calc.compute(expression) is None


@pytest.mark.parametrize(
    "value, written",
    [
        (Fraction(49), "49"),
        (Fraction(-7), "-7"),
        (Fraction(5, 2), "2.5"),
        (Fraction(10, 3), "3.333333"),
        (Fraction(2, 3), "0.666667"),
        (Fraction(-1, 8), "-0.125"),
        (Fraction(1234567), "1234567"),
        (Fraction(-1, 10**9), "0"),
    ],
)
def test_values_are_written_as_the_teacher_writes_numbers(value, written):
    assert calc.format_value(value) == written


@pytest.mark.parametrize(
    "text, expression",
    [
        ("He has 42 + 7 ", "42 + 7"),
        ("so (3 + 4) * 2", "(3 + 4) * 2"),
        ("Total: 1,000 + 7 ", "1,000 + 7"),
        ("In all there are 6 x 4 ", "6 x 4"),
        ("He had 42 + 7 = 49. Then 49 - 5 ", "49 - 5"),  # an earlier equation is not part of the expression
        ("3 + 4 = 7 + 1 ", "7 + 1"),  # a chain: 3 + 4 = 7 + 1 = 8
        ("It costs $4.50 + $2 ", "$4.50 + $2"),
        ("Tom has 5 ", None),  # a number alone: nothing to compute
        ("", None),
        ("Tom has ", None),
        ("the box x 3 ", None),
        ("abc42 + 7 ", None),
        ("2 ** 3 ", None),
        ("He pays 12,34 + 5 ", None),
        ("1 + " * 100 + "1 ", None),  # longer than the calculator reads
    ],
)
def test_the_longest_expression_a_text_ends_in(text, expression):
    found = calc.trailing_expression(text)
    assert (found and found[0]) == expression


def test_equations_are_read_and_checked():
    assert calc.equations(" 3 + 4 = 8. Then 8 * 2 = 16, and 2 / 3 = 0.67 and x = 5. So 2 + 2 =") == [
        ("3 + 4", "8", False),
        ("8 * 2", "16", True),
        ("2 / 3", "0.67", True),
    ]


# --- the wrapper over the engine protocol, on a scripted engine -------------------------------------------


class CharTokenizer:
    """One token per character (offsets included), as the calculator counts tokens."""

    def __call__(self, text, add_special_tokens=False, return_offsets_mapping=False):
        out = {"input_ids": [ord(c) for c in text]}
        if return_offsets_mapping:
            out["offset_mapping"] = [(i, i + 1) for i in range(len(text))]
        return out


class ScriptedEngine:
    """An engine whose student writes `student(context, sample)` one character a token: each continuation ends
    where the script ends (EOS), where `stop` ends it, or after max_new_tokens. It logs each
    call's prompts, budget and k."""

    kind, parameters, tokenizer = "decoder", None, CharTokenizer()

    def __init__(self, student):
        self.student, self.tokens, self.log = student, 0, []

    def generate(self, prompts, max_new_tokens, stop=Stop(), k=1, temperature=0.0, seed=0, progress=None):
        self.log.append((list(prompts), max_new_tokens, k))
        out = []
        for prompt in prompts:
            row = []
            for j in range(k):
                script, text = self.student(prompt, j if temperature > 0 else 0), ""
                for c in script[:max_new_tokens]:
                    text += c
                    if stop(text):
                        break
                self.tokens += len(text)
                row.append(text)
            out.append(row)
        return out

    def close(self):
        pass


def bad_at_sums(context: str, sample: int = 0) -> str:
    """A student that sets sums up and gets them wrong by one: after `a + b =` it writes a + b + 1, and goes on
    from the number written there (its own or the calculator's) as if it were right."""
    text = context.split("###", 1)[1] if "###" in context else ""
    question = context.split("###")[0]
    numbers = [int(n) for n in question.split() if n.isdigit()]
    if not numbers:
        return " We count nothing. --> 0\n"
    a, b = numbers[:2]
    if "=" not in text:
        return f" He has {a} + {b} = {a + b + 1} in all. --> {a + b + 1}\n"
    said = text.rsplit("=", 1)[1].split()[0]
    return f" in all. --> {said}\n"


def test_without_an_equals_sign_the_outputs_are_the_plain_engines():
    engine = ScriptedEngine(lambda context, j: " 3 apples and x = 5 apples. --> 3\n")  # x = 5: nothing computed
    m = get_method("ft_cot")
    plain = engine.generate(["Q ###", "R ###"], 64, m.stop)
    written = calc.generate(engine, ["Q ###", "R ###"], 64, m.stop)
    assert [[w.text for w in row] for row in written] == plain and all(not w.calls for row in written for w in row)
    assert len(engine.log) == 2  # one call, no second round


def test_the_value_is_written_where_an_expression_meets_an_equals_sign():
    engine = ScriptedEngine(bad_at_sums)
    m = get_method("ft_cot")
    prompts = ["Ada has 42 and 7 ###", "Bo has 3 and 4 ###", "Cy has none ###"]
    written = [row[0] for row in calc.generate(engine, prompts, 64, m.stop)]
    assert written[0].text == " He has 42 + 7 = 49 in all. --> 49\n"
    assert written[1].text == " He has 3 + 4 = 7 in all. --> 7\n"
    assert written[2].text == " We count nothing. --> 0\n" and not written[2].calls
    assert [c.record() for c in written[0].calls] == [
        {"expression": "42 + 7", "value": "49", "own": "50", "own_right": False}
    ]
    assert written[0].calls[0].at == written[0].text.index("=")
    # Round one: all three prompts; round two: the two outputs that met a `=`, in one call.
    assert [(len(prompts), k) for prompts, _, k in engine.log] == [(3, 1), (2, 1)]
    assert engine.log[1][0] == [prompts[0] + " He has 42 + 7 = 49", prompts[1] + " He has 3 + 4 = 7"]


def test_several_equals_signs_in_one_output_and_a_chain():
    def student(context, j):
        text = context.split("###")[1]
        return {
            "": " 2 + 3 = 6 then",
            "5": " then 5 x 2 = 11 then",
            "10": " + 1 = 12. So = 1. --> 12\n",
            "11": ". So = 1. --> 11\n",
        }[text.rsplit("= ", 1)[-1] if text else ""]  # a chain: 10 + 1

    engine = ScriptedEngine(student)
    m = get_method("ft_cot")
    ((w,),) = calc.generate(engine, ["Q ###"], 128, m.stop)
    assert w.text == " 2 + 3 = 5 then 5 x 2 = 10 + 1 = 11. So = 1. --> 11\n"  # So = 1: nothing to compute
    assert [(c.expression, c.value, c.own, c.own_right) for c in w.calls] == [
        ("2 + 3", "5", "6", False),
        ("5 x 2", "10", "11", False),
        ("10 + 1", "11", "12.", False),
    ]


def test_the_rounds_share_the_token_budget():
    engine = ScriptedEngine(lambda context, j: " 1 + 1 = 3 and" if "=" not in context else " more words go on")
    ((w,),) = calc.generate(engine, ["Q ###"], 20)
    assert w.text == " 1 + 1 = 2 more word" and len(w.text) == 20  # 20 tokens in all, the value's among them
    assert [budget for _, budget, _ in engine.log] == [20, 10]


def test_each_output_keeps_its_own_share_of_a_rounds_budget():
    long = " 1 + 1 = 3 " + "word " * 20
    engine = ScriptedEngine(lambda context, j: long if context.startswith("long") else " 12 + 30 = 40 ok " * 3)
    outputs = calc.generate(engine, ["long ###", "short ###"], 30)
    assert [len(row[0].text) for row in outputs] == [30, 30]


def test_samples_that_reach_the_same_text_go_on_as_distinct_samples():
    def student(context, j):
        return " 2 + 2 = 5 and" if "=" not in context else f" sample {j} --> 4\n"

    engine = ScriptedEngine(student)
    m = get_method("ft_cot")
    rows = calc.generate(engine, ["Q ###", "R ###"], 64, m.stop, k=3, temperature=0.7, seed=1)
    assert [[w.text for w in row] for row in rows] == [[f" 2 + 2 = 4 sample {j} --> 4\n" for j in range(3)]] * 2
    assert [(len(prompts), k) for prompts, _, k in engine.log] == [(2, 3), (2, 3)]


def test_the_methods_own_stop_rule_ends_an_output_after_a_value_was_written():
    # After the value, the engine sees the new text alone: the marker before it must still end the output.
    engine = ScriptedEngine(lambda context, j: " so --> 2 + 2 = 5\nQ: next" if "=" not in context else "\nQ: next")
    m = get_method("ft_cot")
    ((w,),) = calc.generate(engine, ["Q ###"], 64, m.stop)
    assert w.text == " so --> 2 + 2 = 4\n"


# --- the config and the fingerprints -----------------------------------------------------------------------


@pytest.mark.parametrize("section, key", [("evaluate", "calculator"), ("train", "validate_with_calculator")])
def test_a_calculator_on_a_task_whose_answers_are_not_numbers_is_one_line(tmp_path, section, key):
    config = tmp_path / "c.yaml"
    config.write_text(yaml.safe_dump({"task": "coin_flip", section: {key: True}}))
    result = invoke_cli("config", config)
    assert result.returncode == 2 and result.stderr.count("\n") == 1, result.stderr
    assert f"{section}.{key}: task coin_flip's answers are not numbers (answer format yes_no)" in result.stderr
    config.write_text(yaml.safe_dump({"task": "multiarith", section: {key: True}}))
    assert invoke_cli("config", config).returncode == 0


def test_the_calculator_reruns_what_it_changes_and_nothing_else(data_dir, tmp_path):
    from ftcot.config import RunConfig
    from ftcot.pipeline import STAGES, context, fingerprint

    base = {"task": "multiarith", "run_dir": str(tmp_path / "run"), "data_dir": str(data_dir)}
    before = context(RunConfig.model_validate(base))
    off = context(
        RunConfig.model_validate(
            base | {"evaluate": {"calculator": False}, "train": {"validate_with_calculator": False}}
        )
    )
    on = context(RunConfig.model_validate(base | {"evaluate": {"calculator": True}}))
    kept = context(
        RunConfig.model_validate(
            base | {"evaluate": {"calculator": True}, "train": {"validate_with_calculator": False}}
        )
    )
    assert on.cfg.train.validate_with_calculator and not before.cfg.train.validate_with_calculator
    for method in ("", "ft_cot", "vanilla", "teacher", "zero_shot", "zero_shot_cot"):
        assert all(fingerprint(before, stage, method) == fingerprint(off, stage, method) for stage in STAGES)
    for method in ("vanilla", "teacher", "zero_shot"):  # no rationale to write into
        assert all(fingerprint(before, stage, method) == fingerprint(on, stage, method) for stage in STAGES)
    assert fingerprint(before, "train", "ft_cot") != fingerprint(on, "train", "ft_cot")  # its epoch so chosen
    assert fingerprint(before, "train", "ft_cot") == fingerprint(kept, "train", "ft_cot")
    assert fingerprint(before, "evaluate", "ft_cot") != fingerprint(kept, "evaluate", "ft_cot")
    assert fingerprint(before, "evaluate", "zero_shot_cot") != fingerprint(kept, "evaluate", "zero_shot_cot")


# --- on a tiny model, through the three engines -----------------------------------------------------------


def _sums_rationale(i: int, a: int, b: int) -> tuple[str, str]:
    """A rationale that sets the sum up right and gets it wrong (two steps for one question, none for one)."""
    if i == 6:
        return f"Ada has {a} + {b} = {a + b + 3} apples. Then {a + b + 3} x 2 = {a + b}.", str(a + b)
    if i == 7:
        return f"Ada keeps her {a} apples.", str(a)
    return f"Ada has {a} + {b} = {a + b + 1} apples.", str(a + b + 1)


@pytest.fixture(scope="module")
def counting(tmp_path_factory):
    """(a tiny student that has learnt eight questions' rationales by heart, wrong sums included, the task of
    those questions): its outputs are sharp, so engines whose arithmetic differs in the last digits agree."""
    import random

    import torch
    from helpers import train_tokenizer
    from transformers import LlamaConfig, LlamaForCausalLM

    from ftcot.tasks import TaskDecl, load_task, prompts

    rng = random.Random(0)
    rows = []
    for i in range(8):
        a, b = rng.randint(2, 60), rng.randint(2, 60)
        question = f"Ada has {a} apples and buys {b} more. How many apples does Ada have?"
        rows.append((question, *_sums_rationale(i, a, b), str(a + b)))
    pairs = [prompts.ft_cot_pair(q, rationale, said) for q, rationale, said, _ in rows]
    tokenizer = train_tokenizer([p + c for p, c in pairs])
    config = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=4,
        max_position_embeddings=256,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
        bos_token_id=tokenizer.eos_token_id,
        tie_word_embeddings=True,
    )
    torch.manual_seed(0)
    model = LlamaForCausalLM(config)
    batch = tokenizer([p + c + tokenizer.eos_token for p, c in pairs], return_tensors="pt", padding=True)
    labels = batch["input_ids"].masked_fill(batch["attention_mask"] == 0, -100)
    optimizer = torch.optim.AdamW(model.parameters(), lr=6e-3)
    for _ in range(80):
        model(**batch, labels=labels).loss.backward()
        optimizer.step()
        optimizer.zero_grad()
    path = tmp_path_factory.mktemp("counting")
    model.save_pretrained(path)
    tokenizer.save_pretrained(path)
    data = path / "sums.jsonl"
    data.write_text("".join(json.dumps({"question": q, "answer": gold}) + "\n" for q, _, _, gold in rows))
    return path, load_task(TaskDecl(name="sums", train=str(data), test=str(data), answer_format="number"))


def test_the_three_engines_write_the_same_outputs_with_the_calculator(counting, tmp_path):
    from ftcot.config import RunConfig, StudentConfig
    from ftcot.engines import open_engine
    from ftcot.engines.hf import HFEngine
    from ftcot.evaluate import evaluate
    from ftcot.loopback import OpenAIServer, TransformersStudent
    from ftcot.students.load import load_student

    path, task = counting
    samples = task.split_samples("test")
    model, tokenizer, kind = load_student(StudentConfig(model=str(path)))
    hf = HFEngine(model, tokenizer, kind, 4)
    plain, _ = evaluate(task, hf, samples, "ft_cot", 48)
    written, metrics = evaluate(task, hf, samples, "ft_cot", 48, calculator=True)
    calls = [p.calculator for p in written]
    assert sum(map(len, calls)) >= 6 and metrics.calls.calls == sum(map(len, calls))
    for p, w, made in zip(plain, written, calls):
        if not made:  # no `=` after an expression: the plain engine's output
            assert w.output == p.output
        else:  # the student's own text up to its first `=`, then the value
            first = p.output.index("=") + 1
            assert w.output[:first] == p.output[:first]
            assert all(c.value == calc.format_value(calc.compute(c.expression)) for c in made)
            assert made[0].own == p.output[first:].split()[0]
    assert metrics.calls.own_wrong >= 6  # the student's own sums are wrong
    server = OpenAIServer()
    server.student, server.models = TransformersStudent(model, tokenizer), {"counting"}
    server.start()
    try:
        base = {"task": "coin_flip", "run_dir": str(tmp_path / "run"), "student": {"model": str(path)}}
        engines = {
            "openai": open_engine(
                RunConfig.model_validate(
                    base
                    | {"evaluate": {"engine": "openai", "base_url": server.base_url, "models": {"ft_cot": "counting"}}}
                ),
                "ft_cot",
                None,
                tmp_path / "eval",
                4,
            )
        }
        if __import__("importlib").util.find_spec("ctranslate2") or os.environ.get("CI") == "true":  # CI has it
            engines["ctranslate2"] = open_engine(
                RunConfig.model_validate(base | {"evaluate": {"engine": "ctranslate2"}}),
                "ft_cot",
                str(path),
                tmp_path / "eval",
                4,
            )
        for name, engine in engines.items():
            theirs, _ = evaluate(task, engine, samples, "ft_cot", 48, calculator=True)
            assert [(t.output, t.calculator) for t in theirs] == [(w.output, c) for w, c in zip(written, calls)], name
    finally:
        server.stop()


def test_validation_chooses_the_epoch_with_the_calculator_where_asked(counting, tmp_path):
    from ftcot.config import StudentConfig
    from ftcot.engines.hf import HFEngine
    from ftcot.evaluate import evaluate
    from ftcot.students.load import load_student
    from ftcot.students.train import validation_accuracy
    from ftcot.tasks import TaskDecl, load_task

    path, task = counting
    model, tokenizer, kind = load_student(StudentConfig(model=str(path)))
    written, _ = evaluate(
        task, HFEngine(model, tokenizer, kind, 4), task.split_samples("test"), "ft_cot", 48, calculator=True
    )
    data = tmp_path / "as_written.jsonl"  # a task whose gold answers are what the student says with the calculator
    data.write_text(
        "".join(
            json.dumps({"question": s.question, "answer": w.prediction or "-1"}) + "\n"
            for s, w in zip(task.split_samples("test"), written)
        )
    )
    as_written = load_task(TaskDecl(name="w", train=str(data), test=str(data), answer_format="number"))
    val = as_written.split_samples("test")
    right = 100 * sum(w.prediction is not None for w in written) / len(written)
    assert validation_accuracy(as_written, "ft_cot", kind, tokenizer, val, 48, 4, True)(model) == right
    assert validation_accuracy(as_written, "ft_cot", kind, tokenizer, val, 48, 4)(model) < right


def test_ftcot_evaluate_scores_a_student_with_and_without_the_calculator_and_the_report_shows_both(counting, tmp_path):
    import shutil

    path, task = counting
    run = tmp_path / "run"
    shutil.copytree(path, run / "students" / "ft_cot" / "best")
    summary = json.loads((Path(__file__).parent / "artifacts" / "train_summary.json").read_text())  # as train writes
    (run / "students" / "ft_cot" / "summary.json").write_text(json.dumps(summary | {"student": str(path)}))
    config = tmp_path / "c.yaml"
    settings = {
        "task": {
            "name": "sums",
            "train": str(path / "sums.jsonl"),
            "test": str(path / "sums.jsonl"),
            "answer_format": "number",
        },
        "run_dir": str(run),
        "student": {"model": str(path)},
        "evaluate": {"max_new_tokens": 48, "calculator": True, "self_consistency": {"k": 2}},
    }
    config.write_text(yaml.safe_dump(settings))
    result = run_cli("evaluate", config, "--method", "ft_cot")
    assert result.returncode == 0, result.stderr[-3000:]
    assert "evaluate ft_cot + calculator:" in result.stderr and "calls per output" in result.stderr
    metrics = json.loads((run / "eval" / "ft_cot" / "metrics.json").read_text())
    calculated = metrics["calculator"]
    assert calculated["n"] == metrics["n"] == 8 and calculated["calls"]["calls"] >= 6
    assert calculated["self_consistency"]["k"] == 2 and calculated["self_consistency"]["calls"]["calls"] >= 6
    assert sum(calculated["failures"]["kinds"].values()) == calculated["n"] - calculated["correct"]
    plain = [json.loads(line) for line in (run / "eval" / "ft_cot" / "predictions.jsonl").open()]
    written = [json.loads(line) for line in (run / "eval" / "ft_cot" / "calculator.jsonl").open()]
    assert all("calculator" not in p for p in plain) and sum(len(w["calculator"]) for w in written) >= 6
    votes = [json.loads(line) for line in (run / "eval" / "ft_cot" / "calculator_self_consistency.jsonl").open()]
    assert all(len(v["outputs"]) == len(v["calculator"]) == 2 for v in votes)

    report = run_cli("report", run)
    assert report.returncode == 0, report.stderr
    md = (run / "report.md").read_text()
    rows = {line.split(" | ")[0].removeprefix("| "): line for line in md.splitlines() if line.startswith("| ")}
    student = f"{path} ({metrics['parameters'] / 1e6:.0f}M)"
    assert f"Fine-tune-CoT: {student}" in rows and f"Fine-tune-CoT: {student}, self-consistency k=2" in rows
    assert f"Fine-tune-CoT + calculator: {student}, self-consistency k=2" in rows
    assert f"{calculated['accuracy']:.2f}" in rows[f"Fine-tune-CoT + calculator: {student}"]
    assert "## The calculator" in md and f"| {calculated['calls']['per_output']:g} |" in md

    settings["evaluate"]["calculator"] = False  # the calculator's outputs of the earlier config go
    config.write_text(yaml.safe_dump(settings))
    assert run_cli("evaluate", config, "--method", "ft_cot").returncode == 0
    assert "calculator" not in json.loads((run / "eval" / "ft_cot" / "metrics.json").read_text())
    assert not list((run / "eval" / "ft_cot").glob("calculator*"))
