"""The run folder's typed artifacts (ftcot.artifacts): each model round-trips what its writer writes, a prediction
row carries its question, and a summary of another schema version is refused in one line by a reader and is not
done for `is_done` (the stage reruns)."""

import json
from pathlib import Path

import pytest

from ftcot.artifacts import (
    SCHEMA_VERSION,
    SUMMARIES,
    CurateSummary,
    Metrics,
    TeachSummary,
    TrainSummary,
    parse_summary,
    read_predictions,
    read_run_config,
)
from ftcot.config import RunConfig
from ftcot.errors import UserError
from ftcot.evaluate import evaluate, self_consistency
from ftcot.files import read_json, write_jsonl
from ftcot.pipeline import context, finish, is_done
from ftcot.stages.curate import run as curate_stage
from ftcot.stages.teach import run as teach

FIXTURES = Path(__file__).parent / "artifacts"


class EchoEngine:
    """A student that writes `<the question's first word> --> yes`, one character a token."""

    kind, parameters, tokenizer = "decoder", 7, None

    def __init__(self):
        self.tokens = 0

    def generate(self, prompts, max_new_tokens, stop=None, k=1, temperature=0.0, seed=0, progress=None):
        outputs = [[f" {p.split()[0]} --> yes"] * k for p in prompts]
        self.tokens += sum(len(o[0]) for o in outputs) * k
        return outputs

    def close(self):
        pass


@pytest.fixture
def ctx(tmp_path):
    return context(RunConfig(task="coin_flip", run_dir=str(tmp_path / "run")))


def _round_trips(path: Path, model) -> None:
    """The file as its model reads it and writes it again: the same keys and values."""
    written = read_json(path)
    assert parse_summary(path, model).dump() == written
    assert written["schema_version"] == SCHEMA_VERSION and written["fingerprint"]


def test_the_teach_and_curate_summaries_round_trip_and_are_done(ctx):
    teach(ctx)
    curate_stage(ctx)
    _round_trips(ctx.run.summary("teach"), TeachSummary)
    _round_trips(ctx.run.summary("curate"), CurateSummary)
    assert is_done(ctx, "teach") and is_done(ctx, "curate")
    teacher = parse_summary(ctx.run.summary("teach"), TeachSummary)
    assert teacher.sources and teacher.collected == teacher.expected  # a recorded teacher's keys
    assert "budget_usd" not in read_json(ctx.run.summary("teach"))  # a live one's keys are not written for it


def test_a_prediction_row_carries_its_question_and_the_metrics_round_trip(ctx):
    test = ctx.task.split_samples("test", ctx.cfg.split)[:6]
    engine = EchoEngine()
    predictions, greedy = evaluate(ctx.task, engine, test, "ft_cot", 32, choice_by_content=True)
    assert [p.question for p in predictions] == [s.question for s in test]
    write_jsonl([p.dump() for p in predictions], ctx.run.predictions("ft_cot"))
    assert read_predictions(ctx.run.predictions("ft_cot")) == predictions
    on_disk = [json.loads(line) for line in ctx.run.predictions("ft_cot").open()]
    plain = {"sample_index", "question", "prompt", "output", "prediction", "answer", "correct", "failure"}
    assert set(on_disk[0]) == plain | {"prediction_by_content", "correct_by_content"}  # evaluate.choice_by_content
    without, _ = evaluate(ctx.task, engine, test, "ft_cot", 32)
    assert set(without[0].dump()) == plain  # the by-content keys only with it, the calculator's only with it
    _, calculated = evaluate(ctx.task, engine, test, "ft_cot", 32, calculator=True)
    metrics = Metrics.of(greedy, model="tiny", parameters=engine.parameters, engine="hf")
    _, metrics.self_consistency = self_consistency(ctx.task, engine, test, "ft_cot", 32, 2, 0.7)
    metrics.calculator = calculated
    finish(ctx, "evaluate", metrics, "ft_cot")
    _round_trips(ctx.run.summary("evaluate", "ft_cot"), Metrics)
    written = read_json(ctx.run.summary("evaluate", "ft_cot"))
    assert {"diagnostics", "failures", "self_consistency", "calculator"} <= set(written)
    assert "choice_by_content" in written and "calls" in written["calculator"] and "calls" not in written
    assert is_done(ctx, "evaluate", "ft_cot")


def test_a_prediction_row_without_its_question_is_refused_in_one_line(tmp_path):
    """A row an earlier ftcot wrote, before rows kept their question: rerun evaluate (the committed predictions
    under results/ were given theirs from the tasks' data)."""
    row = {"sample_index": 0, "prompt": "Is the coin heads up? ###", "output": " yes", "prediction": "yes"}
    path = tmp_path / "predictions.jsonl"
    write_jsonl([row | {"answer": "yes", "correct": True, "failure": None}], path)
    with pytest.raises(UserError) as refused:
        read_predictions(path)
    assert str(refused.value) == f"{path}:1: not an ftcot prediction: question: Field required"


def test_the_train_summary_is_what_train_writes(tiny_lm, tmp_path):
    """students.train.train's summary (the stage adds command and validated_with_calculator), and the fixture
    other tests write as a train summary has its keys."""
    from ftcot.config import StudentConfig, TrainConfig
    from ftcot.curate import Example
    from ftcot.students.train import train

    examples = [
        Example(task="coin_flip", sample_index=i, question=f"Is coin {i} up?", rationale="It is.", answer="yes")
        for i in range(4)
    ]
    summary = train(
        examples,
        "ft_cot",
        StudentConfig(model=str(tiny_lm)),
        TrainConfig(epochs=1, batch_size=4, checkpoint=False),
        tmp_path / "out",
        lambda model: 50.0,
    )
    assert TrainSummary.model_validate(summary.dump()).dump() == summary.dump()
    fixture = json.loads((FIXTURES / "train_summary.json").read_text())
    assert set(fixture) == set(summary.dump()) | {
        "command",
        "validated_with_calculator",
        "fingerprint",
        "schema_version",
    }
    assert set(fixture["history"][0]) == set(summary.dump()["history"][0])
    assert parse_summary(FIXTURES / "train_summary.json", TrainSummary).dump() == fixture


@pytest.mark.parametrize("version", [None, SCHEMA_VERSION + 1])
def test_a_summary_of_another_schema_version_is_refused_in_one_line_and_is_not_done(ctx, version):
    teach(ctx)
    path = ctx.run.summary("teach")
    assert is_done(ctx, "teach")
    written = read_json(path)
    if version is None:
        del written["schema_version"]  # as every ftcot before typed artifacts wrote it
    else:
        written["schema_version"] = version
    path.write_text(json.dumps(written))
    assert not is_done(ctx, "teach")  # the stage reruns, and writes it anew
    with pytest.raises(UserError, match=r"summary\.json: made by .*: rerun `ftcot teach`$") as refused:
        parse_summary(path, TeachSummary)
    assert "\n" not in str(refused.value)
    with pytest.raises(UserError, match="rerun `ftcot teach`"):  # curate reads the teacher's summary
        curate_stage(ctx)
    teach(ctx)
    assert is_done(ctx, "teach") and read_json(path)["schema_version"] == SCHEMA_VERSION


def test_a_summary_that_is_not_the_model_is_one_line(tmp_path):
    path = tmp_path / "metrics.json"
    path.write_text(json.dumps({"schema_version": SCHEMA_VERSION, "task": "t", "method": "m", "n": 1}))
    with pytest.raises(UserError, match=r"metrics\.json: not an ftcot evaluate summary: correct: Field required"):
        parse_summary(path, Metrics)
    path.write_text("[1]")
    with pytest.raises(UserError, match="not an ftcot evaluate summary"):
        parse_summary(path, Metrics)


def test_every_stage_has_a_summary_model_and_the_config_is_read_one_way(ctx):
    assert set(SUMMARIES) == {"teach", "curate", "train", "evaluate"}
    teach(ctx)
    assert read_run_config(ctx.run.root) == ctx.cfg
    (ctx.run.config).write_text("task: coin_flip\nno_such_key: 1\n")
    with pytest.raises(UserError, match=r"config\.yaml: no_such_key: unknown key"):
        read_run_config(ctx.run.root)


def test_evaluate_refuses_a_students_summary_of_another_version_before_any_model_loads(ctx):
    from ftcot.stages.evaluate import run as evaluate_stage

    old = json.loads((FIXTURES / "train_summary.json").read_text())
    del old["schema_version"]
    for method in ctx.cfg.train.methods:
        ctx.run.best(method).mkdir(parents=True)
        ctx.run.summary("train", method).write_text(json.dumps(old))
    assert not is_done(ctx, "train", ctx.cfg.train.methods[0])
    with pytest.raises(UserError, match=r"summary\.json: made by an earlier ftcot .*: rerun `ftcot train`$"):
        evaluate_stage(ctx)
