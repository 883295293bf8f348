"""The calculator (#29): the evaluator on hand-written expressions, malicious and huge ones refused; the wrapper
over the engine protocol on a scripted engine (outputs without `=` the plain engine's, values written where one
is, several in an output, every unfinished output of a round in one call, the token budget across rounds,
samples kept apart)."""

from fractions import Fraction

import pytest

from ftcot import calculator as calc
from ftcot.methods import get_method


@pytest.mark.parametrize("expression, value", [
    ("1 + 2 * 3", 7), ("(1 + 2) * 3", 9), ("10 - 4 - 3", 3), ("2 * (3 + 4) - 1", 13), ("12 / 4 / 3", 1),
    ("3.5 + 1.25", Fraction(19, 4)), ("0.1 + 0.2", Fraction(3, 10)), ("1,000 + 7", 1007),
    ("1,234,567.5 - 0.5", 1234567), ("3 x 4", 12), ("3x4", 12), ("6 × 7", 42), ("9 ÷ 2", Fraction(9, 2)),
    ("-3 + 5", 2), ("5 - -3", 8), ("-(2 + 3) * 2", -10), ("4 − 1", 3), ("10 / 3", Fraction(10, 3)),
    ("$4.50 + $2", Fraction(13, 2)), ("((((7))))", 7),
])
def test_the_evaluator_computes_arithmetic_exactly(expression, value):
    assert calc.compute(expression) == value


@pytest.mark.parametrize("expression", [
    "9**9**9", "2 ** 10", "__import__('os').system('ls')", "1 / 0", "5 / (3 - 3)", "1 +", "(1 + 2", "1 + 2)",
    "", "  ", "12,34 + 5", "1,0000 + 1", "3 4", "1e9 * 2", "99999999999999999 + 1", "1 + " * 5000 + "1",
    "1000000000 * 1000000000", "abs(-3)", "3 + four", "1_000 + 1", "2 ^ 3", "7 % 2",
])
def test_anything_else_is_refused(expression):
    assert calc.compute(expression) is None


@pytest.mark.parametrize("value, written", [
    (Fraction(49), "49"), (Fraction(-7), "-7"), (Fraction(5, 2), "2.5"), (Fraction(10, 3), "3.333333"),
    (Fraction(2, 3), "0.666667"), (Fraction(-1, 8), "-0.125"), (Fraction(1234567), "1234567"),
    (Fraction(-1, 10 ** 9), "0"),
])
def test_values_are_written_as_the_teacher_writes_numbers(value, written):
    assert calc.format_value(value) == written


@pytest.mark.parametrize("text, expression", [
    ("He has 42 + 7 ", "42 + 7"),
    ("so (3 + 4) * 2", "(3 + 4) * 2"),
    ("Total: 1,000 + 7 ", "1,000 + 7"),
    ("In all there are 6 x 4 ", "6 x 4"),
    ("He had 42 + 7 = 49. Then 49 - 5 ", "49 - 5"),  # an earlier equation is not part of the expression
    ("3 + 4 = 7 + 1 ", "7 + 1"),  # a chain: 3 + 4 = 7 + 1 = 8
    ("It costs $4.50 + $2 ", "$4.50 + $2"),
    ("Tom has 5 ", None),  # a number alone: nothing to compute
    ("", None), ("Tom has ", None), ("the box x 3 ", None), ("abc42 + 7 ", None), ("2 ** 3 ", None),
    ("He pays 12,34 + 5 ", None), ("1 + " * 100 + "1 ", None),  # longer than the calculator reads
])
def test_the_longest_expression_a_text_ends_in(text, expression):
    found = calc.trailing_expression(text)
    assert (found and found[0]) == expression


def test_equations_are_read_and_checked():
    assert calc.equations(" 3 + 4 = 8. Then 8 * 2 = 16, and 2 / 3 = 0.67 and x = 5. So 2 + 2 =") == [
        ("3 + 4", "8", False), ("8 * 2", "16", True), ("2 / 3", "0.67", True)]


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
    where the script ends (EOS), once `done` holds, at a stop string, or after max_new_tokens. It logs each
    call's prompts, budget and k."""

    kind, parameters, tokenizer = "decoder", None, CharTokenizer()

    def __init__(self, student):
        self.student, self.tokens, self.log = student, 0, []

    def generate(self, prompts, max_new_tokens, done, stop=(), k=1, temperature=0.0, seed=0, progress=None):
        self.log.append((list(prompts), max_new_tokens, k))
        out = []
        for prompt in prompts:
            row = []
            for j in range(k):
                script, text = self.student(prompt, j if temperature > 0 else 0), ""
                for c in script[:max_new_tokens]:
                    text += c
                    if (done and done(text)) or any(s in text for s in stop):
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
    plain = engine.generate(["Q ###", "R ###"], 64, m.done, m.stop)
    written = calc.generate(engine, ["Q ###", "R ###"], 64, m.done, m.stop)
    assert [[w.text for w in row] for row in written] == plain and all(not w.calls for row in written for w in row)
    assert len(engine.log) == 2  # one call, no second round


def test_the_value_is_written_where_an_expression_meets_an_equals_sign():
    engine = ScriptedEngine(bad_at_sums)
    m = get_method("ft_cot")
    prompts = ["Ada has 42 and 7 ###", "Bo has 3 and 4 ###", "Cy has none ###"]
    written = [row[0] for row in calc.generate(engine, prompts, 64, m.done, m.stop)]
    assert written[0].text == " He has 42 + 7 = 49 in all. --> 49\n"
    assert written[1].text == " He has 3 + 4 = 7 in all. --> 7\n"
    assert written[2].text == " We count nothing. --> 0\n" and not written[2].calls
    assert [c.record() for c in written[0].calls] == [
        {"expression": "42 + 7", "value": "49", "own": "50", "own_right": False}]
    assert written[0].calls[0].at == written[0].text.index("=")
    # Round one: all three prompts; round two: the two outputs that met a `=`, in one call.
    assert [(len(prompts), k) for prompts, _, k in engine.log] == [(3, 1), (2, 1)]
    assert engine.log[1][0] == [prompts[0] + " He has 42 + 7 = 49", prompts[1] + " He has 3 + 4 = 7"]


def test_several_equals_signs_in_one_output_and_a_chain():
    def student(context, j):
        text = context.split("###")[1]
        return {"": " 2 + 3 = 6 then", "5": " then 5 x 2 = 11 then", "10": " + 1 = 12. So = 1. --> 12\n",
                "11": ". So = 1. --> 11\n"}[text.rsplit("= ", 1)[-1] if text else ""]  # a chain: 10 + 1
    engine = ScriptedEngine(student)
    m = get_method("ft_cot")
    (w,), = calc.generate(engine, ["Q ###"], 128, m.done, m.stop)
    assert w.text == " 2 + 3 = 5 then 5 x 2 = 10 + 1 = 11. So = 1. --> 11\n"  # So = 1: nothing to compute
    assert [(c.expression, c.value, c.own, c.own_right) for c in w.calls] == [
        ("2 + 3", "5", "6", False), ("5 x 2", "10", "11", False), ("10 + 1", "11", "12.", False)]


def test_the_rounds_share_the_token_budget():
    engine = ScriptedEngine(lambda context, j: " 1 + 1 = 3 and" if "=" not in context else " more words go on")
    (w,), = calc.generate(engine, ["Q ###"], 20, None)
    assert w.text == " 1 + 1 = 2 more word" and len(w.text) == 20  # 20 tokens in all, the value's among them
    assert [budget for _, budget, _ in engine.log] == [20, 10]


def test_each_output_keeps_its_own_share_of_a_rounds_budget():
    long = " 1 + 1 = 3 " + "word " * 20
    engine = ScriptedEngine(lambda context, j: long if context.startswith("long") else " 12 + 30 = 40 ok " * 3)
    outputs = calc.generate(engine, ["long ###", "short ###"], 30, None)
    assert [len(row[0].text) for row in outputs] == [30, 30]


def test_samples_that_reach_the_same_text_go_on_as_distinct_samples():
    def student(context, j):
        return " 2 + 2 = 5 and" if "=" not in context else f" sample {j} --> 4\n"
    engine = ScriptedEngine(student)
    m = get_method("ft_cot")
    rows = calc.generate(engine, ["Q ###", "R ###"], 64, m.done, m.stop, k=3, temperature=0.7, seed=1)
    assert [[w.text for w in row] for row in rows] == [[f" 2 + 2 = 4 sample {j} --> 4\n" for j in range(3)]] * 2
    assert [(len(prompts), k) for prompts, _, k in engine.log] == [(2, 3), (2, 3)]


def test_the_methods_own_stop_rule_ends_an_output_after_a_value_was_written():
    # After the value, the engine sees the new text alone: the marker before it must still end the output.
    engine = ScriptedEngine(lambda context, j: " so --> 2 + 2 = 5\nQ: next" if "=" not in context else "\nQ: next")
    m = get_method("ft_cot")
    (w,), = calc.generate(engine, ["Q ###"], 64, m.done, m.stop)
    assert w.text == " so --> 2 + 2 = 4\n"
