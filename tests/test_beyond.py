"""Beyond the paper: adaptive diverse reasoning, rationalization, self-consistency at inference, distilling
step-by-step (dss), on custom tasks written here, a loopback teacher whose correctness is controlled, and a
tiny student."""

import json
import random
import re

import pytest
import torch
import yaml
from helpers import invoke_cli, run_cli, run_config

from ftcot.config import RunConfig
from ftcot.curate import Example
from ftcot.errors import UserError
from ftcot.judge import solved
from ftcot.loopback import ChanceAdder, OpenAIServer
from ftcot.pipeline import context
from ftcot.stages.curate import run as curate_stage
from ftcot.stages.teach import run as teach
from ftcot.tasks import Sample


def _sums(tmp_path, train: int = 40, test: int = 10) -> dict:
    """A custom task of additions written as JSONL; its declaration for a config."""
    rng = random.Random(7)
    for name, n in (("train", train), ("test", test)):
        rows = [{"question": f"What is {rng.randint(1, 90)} plus {rng.randint(1, 90)}?"} for _ in range(n)]
        for row in rows:
            a, b = map(int, row["question"][8:-1].split(" plus "))
            row["answer"] = str(a + b)
        (tmp_path / f"{name}.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    return {
        "name": "sums",
        "train": str(tmp_path / "train.jsonl"),
        "test": str(tmp_path / "test.jsonl"),
        "answer_format": "integer",
    }


def _config(tmp_path, server, **teacher) -> RunConfig:
    return run_config(
        tmp_path,
        tmp_path,
        _sums(tmp_path),
        teacher={
            "backend": "openai",
            "model": "adder",
            "base_url": server.base_url,
            "api_key_env": None,
            "teach_on": ["train", "test"],
            "rationale": {"temperature": 0.7},
            "prices": {"adder": {"input": 1.0, "output": 2.0}},
            **teacher,
        },
    )


def _by_question(path) -> dict[int, list[dict]]:
    out: dict[int, list[dict]] = {}
    for line in path.read_text().splitlines():
        r = json.loads(line)
        out.setdefault(r["sample_index"], []).append(r)
    return {i: sorted(rs, key=lambda r: r["completion_index"]) for i, rs in out.items()}


@pytest.fixture
def chance_server():
    servers = []

    def start(p: float) -> OpenAIServer:
        servers.append(OpenAIServer(responder=ChanceAdder(p)).start())
        return servers[-1]

    yield start
    for server in servers:
        server.stop()


def test_adaptive_rounds_sample_until_enough_are_correct_and_a_rerun_pays_nothing(tmp_path, chance_server):
    server = chance_server(0.4)
    ctx = context(_config(tmp_path, server, num_samples=2, adaptive={"max_samples": 8, "want_correct": 2}))
    summary = teach(ctx)
    records = _by_question(tmp_path / "run" / "teacher" / "completions.jsonl")
    train = set(range(40))  # a custom task's test rows come after its train rows
    ok = lambda r: solved(ctx.task.answer_format, r["answer_completion"], r["answer"])  # noqa: E731
    grew = 0
    for index, rs in records.items():
        assert [r["completion_index"] for r in rs] == list(range(len(rs)))
        if index not in train:
            assert len(rs) == 2  # test questions are asked num_samples times only
            continue
        correct = sum(map(ok, rs))
        assert correct >= 2 or len(rs) == 8
        if len(rs) > 2:  # a further round only while short of correct rationales, and none drawn beyond need
            grew += 1
            assert sum(map(ok, rs[:-1])) < 2
    assert grew > 5 and len(records) == 50
    assert summary.requests == len(server.completion_requests())
    before = len(server.completion_requests())
    again = teach(context(_config(tmp_path, server, num_samples=2, adaptive={"max_samples": 8, "want_correct": 2})))
    assert len(server.completion_requests()) == before and again.collected == summary.collected
    curated = curate_stage(ctx)
    per_question = [json.loads(line) for line in (tmp_path / "run" / "curate" / "per_question.jsonl").open()]
    assert {q["sample_index"]: q["drawn"] for q in per_question} == {
        i: len(records[i]) for i in train if i in {q["sample_index"] for q in per_question}
    }
    assert sum(q["kept"] for q in per_question) == curated.kept
    assert all(q["kept"] <= q["correct"] for q in per_question)


def test_the_dry_run_gives_the_worst_case_then_the_expected_case_from_the_first_round(tmp_path, chance_server):
    server = chance_server(0.5)
    adaptive = {"max_samples": 8, "want_correct": 1}
    worst = teach(context(_config(tmp_path, server, num_samples=2, adaptive=adaptive)), dry_run=True)
    # nothing stored: every train question drawn 8 times (one request a round: 2, then 1 at a time), test twice
    assert worst["requests"] == 40 * (7 + 8) + 10 * (1 + 2)
    teach(context(_config(tmp_path, server, num_samples=2)))  # the first round, stored
    plan = teach(context(_config(tmp_path, server, num_samples=2, adaptive=adaptive)), dry_run=True)
    assert plan["worst_case_cost_usd"] > 0 and 0 < plan["requests"] < 40 * 6 * 2
    before = len(server.completion_requests())
    teach(context(_config(tmp_path, server, num_samples=2, adaptive=adaptive)))
    spent = len(server.completion_requests()) - before
    assert spent <= 40 * 6 * 2  # at most 6 more rounds of one step 1 and one step 2 each
    assert abs(spent - plan["requests"]) <= max(12, plan["requests"] / 2)  # the expectation is of the right size


def test_rationalization_asks_with_the_answer_as_a_hint_and_curation_keeps_or_drops_it(tmp_path, chance_server):
    server = chance_server(0.0)  # never right unaided
    ctx = context(_config(tmp_path, server, rationalize=True))
    teach(ctx)
    records = _by_question(tmp_path / "run" / "teacher" / "completions.jsonl")
    hinted = [r for rs in records.values() for r in rs if r["rationalized"]]
    assert len(hinted) == 40 and all("Hint: the correct answer is" in r["reasoning_prompt"] for r in hinted)
    assert all(len(records[i]) == 1 for i in range(40, 50))  # test questions are never given their answer
    assert not any("Hint" in r["answer_prompt"] for r in hinted)  # its answer is read without the hint in view
    rerun = teach(context(_config(tmp_path, server, rationalize=True)), dry_run=True)
    assert rerun["requests"] == 0  # the hints are stored: nothing is left to ask
    kept = curate_stage(ctx)
    assert kept.kept == kept.rationalized_kept == 36  # the train questions outside validation
    rows = [json.loads(line) for line in (tmp_path / "run" / "curate" / "train_ft_cot.jsonl").open()]
    assert all(r["rationalized"] and "Hint" not in r["question"] for r in rows)
    cfg = _config(tmp_path, server, rationalize=True).model_dump()
    dropped = context(RunConfig.model_validate({**cfg, "curate": {"rationalized": "drop"}}))
    summary = curate_stage(dropped)
    assert summary.kept == 0 and summary.removed["rationalized"] == 36


def test_after_a_budget_stop_in_the_first_round_the_worst_case_bounds_what_the_rerun_asks(tmp_path, chance_server):
    server = chance_server(0.3)
    adaptive = {
        "num_samples": 4,
        "adaptive": {"max_samples": 8, "want_correct": 2},
        "n_per_request": False,
        "concurrency": 2,
    }
    first = teach(context(_config(tmp_path, server, **adaptive)), max_cost=0.004)
    assert first.stopped_by_budget and "rounds" in first.model_fields_set
    plan = teach(context(_config(tmp_path, server, **adaptive)), dry_run=True)
    before = len(server.completion_requests())
    teach(context(_config(tmp_path, server, **adaptive)))
    # The worst case, not the expected one (plan["requests"] once a first round is stored): which sample gets
    # which of the teacher's draws depends on arrival order, so the expected case is no bound.
    assert len(server.completion_requests()) - before <= plan["worst_case_requests"]


@pytest.mark.parametrize(
    "teacher, message",
    [
        ({"adaptive": {"max_samples": 2, "want_correct": 3}}, "want_correct \\(3\\) is more than max_samples"),
        ({"num_samples": 4, "adaptive": {"max_samples": 2, "want_correct": 1}}, "first round"),
        ({"adaptive": {}, "rationale": {"temperature": 0.0}}, "repeat the same one"),
    ],
)
def test_adaptive_settings_that_cannot_work_are_one_line(tmp_path, teacher, message):
    config = tmp_path / "c.yaml"
    config.write_text(yaml.safe_dump({"task": "coin_flip", "teacher": {"backend": "openai", **teacher}}))
    result = invoke_cli("config", config)
    assert result.returncode == 2 and re.search(message, result.stderr) and "Traceback" not in result.stderr


def test_keys_one_method_reads_rerun_that_method_alone(tmp_path):
    from ftcot.pipeline import fingerprint

    one = context(run_config(tmp_path, None, _sums(tmp_path), run_dir=str(tmp_path / "r")))
    other = context(
        RunConfig.model_validate(
            {**one.cfg.model_dump(), "train": {"dss_alpha": 0.3}, "evaluate": {"self_consistency": {"k": 4}}}
        )
    )
    assert fingerprint(one, "train", "ft_cot") == fingerprint(other, "train", "ft_cot")
    assert fingerprint(one, "train", "dss") != fingerprint(other, "train", "dss")
    assert fingerprint(one, "evaluate", "vanilla") == fingerprint(other, "evaluate", "vanilla")
    assert fingerprint(one, "evaluate", "teacher") == fingerprint(other, "evaluate", "teacher")
    assert fingerprint(one, "evaluate", "ft_cot") != fingerprint(other, "evaluate", "ft_cot")


def test_adaptive_and_rationalize_are_refused_for_the_recorded_backend(tmp_path):
    cfg = run_config(tmp_path, None, _sums(tmp_path), teacher={"adaptive": {}})
    with pytest.raises(UserError, match="recorded backend can only replay"):
        teach(context(cfg))


# --- the student side ---------------------------------------------------------------------------------------


def _questions(n: int) -> list[Sample]:
    rng = random.Random(3)
    return [
        Sample("sums_sc", i, f"What is {a} plus {b}?", str(a + b))
        for i, (a, b) in enumerate((rng.randint(1, 9), rng.randint(1, 9)) for _ in range(n))
    ]


@pytest.fixture
def sums_sc(tmp_path):
    """The task of _questions: sums, answered by an integer."""
    from ftcot.tasks import TaskDecl, load_task

    path = tmp_path / "sc.jsonl"
    path.write_text("".join(json.dumps({"question": s.question, "answer": s.answer}) + "\n" for s in _questions(12)))
    return load_task(TaskDecl(name="sums_sc", train=str(path), test=str(path), answer_format="integer"))


@pytest.fixture
def tiny(tiny_lm):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    return AutoModelForCausalLM.from_pretrained(tiny_lm), AutoTokenizer.from_pretrained(tiny_lm)


def test_self_consistency_votes_over_samples_that_share_their_prompts_computation(tiny, sums_sc):
    from ftcot.engines.hf import HFEngine
    from ftcot.evaluate import evaluate, self_consistency

    model, tokenizer = tiny
    samples = _questions(12)
    prefill_rows = []
    hook = model.register_forward_hook(
        lambda m, args, kwargs, out: (
            prefill_rows.append(kwargs["input_ids"].shape) if kwargs["input_ids"].shape[1] > 1 else None
        ),
        with_kwargs=True,
    )
    rows, metrics = self_consistency(
        sums_sc, HFEngine(model, tokenizer, "decoder", 64), samples, "ft_cot", 20, 4, 1.0, seed=1
    )
    hook.remove()
    assert [shape[0] for shape in prefill_rows] == [12]  # one prefill of the 12 prompts for 48 samples
    assert all(len(r["outputs"]) == 4 for r in rows) and metrics.k == 4 and len(rows) == 12
    assert len({o for r in rows for o in r["outputs"]}) > 12  # sampled: not 4 copies of one text
    again, _ = self_consistency(
        sums_sc, HFEngine(model, tokenizer, "decoder", 64), samples, "ft_cot", 20, 4, 1.0, seed=1
    )
    assert [r["outputs"] for r in again] == [r["outputs"] for r in rows]  # seeded
    # Near temperature 0 every sample is the greedy output: the vote is greedy's answer, agreed on by all.
    greedy, greedy_metrics = evaluate(sums_sc, HFEngine(model, tokenizer, "decoder", 64), samples, "ft_cot", 20)
    cold, cold_metrics = self_consistency(
        sums_sc, HFEngine(model, tokenizer, "decoder", 5), samples, "ft_cot", 20, 3, 1e-4
    )
    assert [r["outputs"] for r in cold] == [[g.output] * 3 for g in greedy]
    assert cold_metrics.accuracy == greedy_metrics.accuracy
    assert all(r["agreement"] == (1.0 if r["prediction"] is not None else 0.0) for r in cold)
    with pytest.raises(UserError, match="second answer step"):
        self_consistency(sums_sc, HFEngine(model, tokenizer, "decoder", 64), samples, "zero_shot_cot", 20, 2, 0.7)


def test_the_vote_is_the_most_frequent_answer_as_the_format_compares_them_ties_to_the_first():
    from ftcot.judge import vote
    from ftcot.tasks import load_task

    numbers = load_task("svamp").answer_format  # numbers compared as floats
    assert vote(["7", "5.0", "5"], numbers) == ("5.0", 2)  # 5.0 and 5 are one answer
    assert vote(["8", "9", None], numbers) == ("8", 1)  # a tie goes to the answer sampled first
    assert vote([None, None], numbers) == (None, 0)
    assert vote(["A", "B", "B"], load_task("date_understanding").answer_format) == ("B", 2)


def test_dss_trains_label_and_rationale_pairs_with_the_rationale_loss_weighted(tiny, sums_sc):
    from transformers import DataCollatorForSeq2Seq, TrainingArguments

    from ftcot.students.train import StudentTrainer, tokenize

    model, tokenizer = tiny
    examples = [
        Example(task="sums_sc", sample_index=i, question=s.question, rationale=f"{s.answer} it is.", answer=s.answer)
        for i, s in enumerate(_questions(4))
    ]
    features = tokenize(examples, "dss", "decoder", tokenizer, 64, aux_weight=0.25)
    texts = [tokenizer.decode(f["input_ids"]) for f in features]
    assert len(features) == 8 and all(t.startswith("[label] ") for t in texts[:4])
    assert all(t.startswith("[rationale] ") and " it is." in t for t in texts[4:])
    assert [f["loss_weight"] for f in features] == [1.0] * 4 + [0.25] * 4
    collate = DataCollatorForSeq2Seq(tokenizer, padding=True, label_pad_token_id=-100)
    from ftcot.students.train import _Features

    # The weights reach the loss through the Trainer's own data loader (which drops unknown columns by default).
    trainer = StudentTrainer(
        model=model,
        train_dataset=_Features(features),
        data_collator=collate,
        args=TrainingArguments(
            output_dir="/tmp/unused",
            use_cpu=True,
            report_to=[],
            per_device_train_batch_size=8,
            remove_unused_columns=False,
        ),
    )
    batch = next(iter(trainer.get_train_dataloader()))
    assert sorted(batch["loss_weight"].tolist()) == [0.25] * 4 + [1.0] * 4
    ones = collate([f | {"loss_weight": 1.0} for f in features])
    plain = collate([{k: v for k, v in f.items() if k != "loss_weight"} for f in features])
    with torch.no_grad():
        same = trainer.compute_loss(model, dict(ones))  # weight 1 everywhere: the model's own loss
        own = model(**plain).loss
        weighted = trainer.compute_loss(model, dict(batch))
        label_only = trainer.compute_loss(
            model, dict(collate([f | {"loss_weight": 1.0 * (i < 4)} for i, f in enumerate(features)]))
        )
    assert same.item() == pytest.approx(own.item(), rel=1e-5)
    assert label_only.item() < weighted.item() < same.item()
    assert (weighted - label_only).item() == pytest.approx(0.25 * (same - label_only).item(), rel=1e-4)


def test_everything_beyond_the_paper_runs_end_to_end(tmp_path, tiny_lm, chance_server):
    server = chance_server(0.5)
    config = tmp_path / "run.yaml"
    config.write_text(
        yaml.safe_dump(
            {
                "task": _sums(tmp_path, 60, 12),
                "run_dir": str(tmp_path / "run"),
                "data_dir": str(tmp_path),
                "teacher": {
                    "backend": "openai",
                    "model": "adder",
                    "base_url": server.base_url,
                    "api_key_env": None,
                    "num_samples": 1,
                    "adaptive": {"max_samples": 4, "want_correct": 1},
                    "rationalize": True,
                    "rationale": {"temperature": 0.7},
                },
                "student": {"model": str(tiny_lm)},
                "train": {
                    "methods": ["ft_cot", "vanilla", "dss"],
                    "epochs": 1,
                    "learning_rate": 0.001,
                    "dss_alpha": 0.5,
                },
                "evaluate": {
                    "baselines": ["zero_shot"],
                    "max_new_tokens": 16,
                    "self_consistency": {"k": 3, "temperature": 0.7},
                },
            }
        )
    )
    result = run_cli("run", config)
    assert result.returncode == 0, result.stderr[-3000:]
    run = tmp_path / "run"
    ft_cot = json.loads((run / "eval" / "ft_cot" / "metrics.json").read_text())
    assert ft_cot["self_consistency"]["k"] == 3 and (run / "eval" / "ft_cot" / "self_consistency.jsonl").is_file()
    dss = json.loads((run / "eval" / "dss" / "metrics.json").read_text())
    assert "self_consistency" not in dss  # it answers in a few tokens, from the label prompt
    assert all(
        json.loads(line)["prompt"].startswith("[label] ")
        for line in (run / "eval" / "dss" / "predictions.jsonl").open()
    )
    assert json.loads((run / "students" / "dss" / "summary.json").read_text())["examples"] == 2 * len(
        (run / "curate" / "train_dss.jsonl").read_text().splitlines()
    )
    report = (run / "report.md").read_text()
    assert "Distilling step-by-step" in report and "self-consistency" in report.lower()


def test_dss_and_self_consistency_on_an_encoder_decoder_student(tiny, tiny_lm, tmp_path, sums_sc):
    from transformers import (
        AutoTokenizer,
        DataCollatorForSeq2Seq,
        T5Config,
        T5ForConditionalGeneration,
        TrainingArguments,
    )

    from ftcot.config import StudentConfig, TrainConfig
    from ftcot.engines.hf import HFEngine
    from ftcot.evaluate import evaluate, self_consistency
    from ftcot.students.load import load_student
    from ftcot.students.train import StudentTrainer, tokenize, train

    tokenizer = AutoTokenizer.from_pretrained(tiny_lm)
    torch.manual_seed(0)
    T5ForConditionalGeneration(
        T5Config(
            vocab_size=len(tokenizer),
            d_model=32,
            d_ff=64,
            num_layers=2,
            num_heads=2,
            d_kv=16,
            decoder_start_token_id=tokenizer.pad_token_id,
            pad_token_id=tokenizer.pad_token_id,
            eos_token_id=tokenizer.eos_token_id,
        )
    ).save_pretrained(tmp_path / "t5")
    tokenizer.save_pretrained(tmp_path / "t5")
    student = StudentConfig(model=str(tmp_path / "t5"))
    model, tok, kind = load_student(student)
    examples = [
        Example(task="sums_sc", sample_index=i, question=s.question, rationale=f"{s.answer} it is.", answer=s.answer)
        for i, s in enumerate(_questions(4))
    ]
    features = tokenize(examples, "dss", kind, tok, 64)
    assert kind == "encoder_decoder" and tok.decode(features[4]["input_ids"]).startswith("[rationale] ")
    collate = DataCollatorForSeq2Seq(tok, padding=True, label_pad_token_id=-100)
    trainer = StudentTrainer(
        model=model, args=TrainingArguments(output_dir=str(tmp_path / "x"), use_cpu=True, report_to=[])
    )
    with torch.no_grad():
        weighted = trainer.compute_loss(model, dict(collate(features)))
        own = model(**collate([{k: v for k, v in f.items() if k != "loss_weight"} for f in features])).loss
    assert weighted.item() == pytest.approx(own.item(), rel=1e-5)  # alpha 1: the model's own loss
    summary = train(examples, "dss", student, TrainConfig(epochs=1, batch_size=4), tmp_path / "out")
    assert summary.examples == 8
    model, tok, kind = load_student(student, str(tmp_path / "out" / "best"))
    _, metrics = evaluate(sums_sc, HFEngine(model, tok, kind, 4), _questions(4), "dss", 8)
    rows, sc = self_consistency(sums_sc, HFEngine(model, tok, kind, 8), _questions(4), "ft_cot", 8, 2, 0.7)
    assert metrics.n == 4 and sc.k == 2 and all(len(r["outputs"]) == 2 for r in rows)


def test_dss_alpha_reaches_the_loss_of_a_real_training_run(tiny, tiny_lm, tmp_path):
    from ftcot.config import StudentConfig, TrainConfig
    from ftcot.students.train import train

    examples = [
        Example(
            task="sums_sc", sample_index=i, question=s.question, rationale=f"{s.answer} it is, surely.", answer=s.answer
        )
        for i, s in enumerate(_questions(24))
    ]
    losses = {}
    for alpha in (0.0, 1.0):
        summary = train(
            examples,
            "dss",
            StudentConfig(model=str(tiny_lm)),
            TrainConfig(epochs=1, batch_size=4, dss_alpha=alpha, checkpoint=False),
            tmp_path / str(alpha),
        )
        losses[alpha] = summary.history[0].loss
    assert losses[0.0] is not None and losses[0.0] < losses[1.0]  # the rationale pairs' loss counts only with alpha


@pytest.mark.parametrize(
    "d, want, most, per_request", [(1, 2, 4, True), (2, 2, 8, True), (1, 4, 8, True), (3, 2, 6, False), (2, 1, 5, True)]
)
def test_the_worst_case_bounds_every_outcome_of_the_rounds(d, want, most, per_request):
    """Every sequence of right and wrong samples, drawn by Collector.one's rule, costs at most the plan's worst
    case in samples and in step-1 requests."""
    import itertools

    from ftcot.config import TeacherConfig
    from ftcot.teachers.collect import _rounds

    cfg = TeacherConfig(
        backend="openai",
        num_samples=d,
        n_per_request=per_request,
        rationale={"temperature": 0.7},
        adaptive={"max_samples": most, "want_correct": want},
    )
    worst_samples, worst_calls, _ = _rounds(cfg, 0, 0, None, {})
    for outcome in itertools.product([False, True], repeat=most):
        drawn, calls = d, 1 if per_request else d
        while sum(outcome[:drawn]) < want and drawn < most:
            more = min(want - sum(outcome[:drawn]), most - drawn)
            drawn, calls = drawn + more, calls + (1 if per_request else more)
        assert drawn <= worst_samples and calls <= worst_calls
