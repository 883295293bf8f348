import inspect
import json
import os
import re
import signal
import subprocess
import time
from pathlib import Path

import psutil
import pytest
import torch
from helpers import cli_command, run_cli, run_config
from safetensors.torch import load_file
from transformers import (
    AutoModelForCausalLM,
    AutoModelForSeq2SeqLM,
    AutoTokenizer,
    DataCollatorForSeq2Seq,
    T5Config,
    T5ForConditionalGeneration,
    TrainingArguments,
)

from ftcot.config import LoraConfig, StudentConfig, TrainConfig
from ftcot.curate import Example
from ftcot.engines.hf import HFEngine
from ftcot.evaluate import evaluate
from ftcot.methods import Stop
from ftcot.students.load import load_student
from ftcot.students.train import EPOCH_CLOCK, StudentTrainer, tokenize, train
from ftcot.tasks import load_task
from ftcot.tasks.answers import wilson_interval
from ftcot.teachers.records import read_shared_jsonl, recorded_teacher_path


def generate(model, tokenizer, texts, max_new_tokens, batch_size, done=None):
    """Greedy continuations through the hf engine, ended by the rule `done` where one is given."""
    engine = HFEngine(model, tokenizer, "decoder", batch_size)
    return [o[0] for o in engine.generate(texts, max_new_tokens, Stop(done))]


def _examples(data_dir, n=24):
    records = read_shared_jsonl(recorded_teacher_path("coin_flip", data_dir))[:n]
    return [
        Example(
            task="coin_flip",
            sample_index=r.sample_index,
            question=r.question,
            rationale=r.reasoning_completion.strip(),
            answer=r.answer,
        )
        for r in records
    ]


def test_labels_mask_the_prompt_by_position_even_when_pad_is_eos(tiny_lm, data_dir):
    tokenizer = AutoTokenizer.from_pretrained(tiny_lm)
    assert tokenizer.pad_token_id == tokenizer.eos_token_id
    example = _examples(data_dir, 1)[0]
    (feature,) = tokenize([example], "ft_cot", "decoder", tokenizer, 512)
    prompt_ids = tokenizer(example.question + " ###")["input_ids"]
    completion = " " + example.rationale + " --> " + example.answer
    completion_ids = tokenizer(completion, add_special_tokens=False)["input_ids"]
    assert feature["input_ids"] == prompt_ids + completion_ids + [tokenizer.eos_token_id]
    assert feature["labels"] == [-100] * len(prompt_ids) + completion_ids + [tokenizer.eos_token_id]
    (vanilla,) = tokenize([example], "vanilla", "decoder", tokenizer, 512)
    assert tokenizer.decode([t for t in vanilla["labels"] if t != -100]) == f" {example.answer}<|endoftext|>"
    (short,) = tokenize([example], "ft_cot", "decoder", tokenizer, 20)
    assert len(short["input_ids"]) == len(short["labels"]) == 20


@pytest.mark.parametrize("lora", [False, True])
def test_the_loss_skips_the_prompts_logits_with_the_same_value_and_gradients(tiny_lm, data_dir, tmp_path, lora):
    model = AutoModelForCausalLM.from_pretrained(tiny_lm)
    if lora:
        from peft import LoraConfig as PeftLoraConfig
        from peft import get_peft_model

        model = get_peft_model(model, PeftLoraConfig(r=4, target_modules="all-linear", task_type="CAUSAL_LM"))
    model.train()  # the Trainer's own evaluation (model.eval()) keeps every logit
    tokenizer = AutoTokenizer.from_pretrained(tiny_lm)
    features = tokenize(_examples(data_dir, 4), "ft_cot", "decoder", tokenizer, 512)
    batch = DataCollatorForSeq2Seq(tokenizer, padding=True, label_pad_token_id=-100)(features)
    first = min(next(i for i, t in enumerate(f["labels"]) if t != -100) for f in features)
    trainer = StudentTrainer(model=model, args=TrainingArguments(output_dir=str(tmp_path), use_cpu=True, report_to=[]))
    loss, outputs = trainer.compute_loss(model, dict(batch), return_outputs=True)
    # logits from one before the first completion token on: the prompts' others are never computed
    assert first > 2 and outputs.logits.shape[1] == batch["labels"].shape[1] - (first - 1)
    with torch.no_grad():
        assert trainer.compute_loss(model.eval(), dict(batch), return_outputs=True)[1].logits.shape == (
            *batch["labels"].shape,
            model.config.vocab_size,
        )
    model.train()
    loss.backward()
    grads = {name: p.grad.clone() for name, p in model.named_parameters() if p.requires_grad}
    model.zero_grad()
    full = model(**batch)  # the model's own loss, over every position's logits
    full.loss.backward()
    assert full.logits.shape[1] == batch["labels"].shape[1]
    assert loss.item() == pytest.approx(full.loss.item(), rel=1e-6)
    for name, p in model.named_parameters():
        if p.requires_grad:
            assert torch.allclose(p.grad, grads[name], rtol=1e-4, atol=1e-7), name


def test_forward_parameters_see_the_students_own_forward_through_lora_and_torch_compile(tiny_lm):
    from peft import LoraConfig as PeftLoraConfig
    from peft import get_peft_model

    from ftcot.engines.hf import forward_parameters

    model = AutoModelForCausalLM.from_pretrained(tiny_lm)
    lora = get_peft_model(model, PeftLoraConfig(r=4, target_modules="all-linear", task_type="CAUSAL_LM"))
    for wrapped in (model, lora, torch.compile(model), torch.compile(lora)):  # compiled on the first call only
        assert {"logits_to_keep", "position_ids"} <= set(forward_parameters(wrapped))
    assert "logits_to_keep" not in inspect.signature(torch.compile(model).forward).parameters


def test_batched_generation_equals_one_at_a_time_and_stops_early(tiny_lm, data_dir):
    model = AutoModelForCausalLM.from_pretrained(tiny_lm)
    tokenizer = AutoTokenizer.from_pretrained(tiny_lm)
    questions = [s.question for s in load_task("coin_flip", data_dir).split_samples("test")[:6]]
    texts = [questions[0][:40], *questions[1:]]  # different lengths: left padding must not change outputs
    batched = generate(model, tokenizer, texts, 12, batch_size=6)
    single = [generate(model, tokenizer, [t], 12, batch_size=1)[0] for t in texts]
    assert batched == single
    assert tokenizer.padding_side == "right"  # restored for training
    stopped = generate(model, tokenizer, texts, 12, batch_size=6, done=lambda t: len(t) >= 3)
    assert all(len(s) < len(b) for s, b in zip(stopped, batched) if len(b) > 6)


def test_pruned_greedy_decoding_equals_transformers_generate_and_drops_finished_rows(tiny_lm, data_dir):
    from transformers import LlamaForCausalLM, StoppingCriteriaList

    from ftcot.engines.hf import StopCriteria

    # Larger random weights than the fixture's make every token depend on position and cache: a wrong position
    # id or a row mixed up in the pruned cache changes the text.
    config = AutoModelForCausalLM.from_pretrained(tiny_lm).config
    config.initializer_range = 0.2
    torch.manual_seed(0)
    model = LlamaForCausalLM(config).eval()
    tokenizer = AutoTokenizer.from_pretrained(tiny_lm)
    questions = [s.question for s in load_task("coin_flip", data_dir).split_samples("test")[:8]]
    texts = [q[: 20 + 15 * i] for i, q in enumerate(questions)]  # different lengths: left padding
    for done in (None, lambda t: len(t) >= 10 + 7 * (len(t.split()) % 4)):  # rows finish at different steps
        sizes = []
        hook = model.register_forward_pre_hook(
            lambda module, args, kw: sizes.append(kw["input_ids"].shape[0]),  # noqa: B023 (removed below)
            with_kwargs=True,
        )
        ours = generate(model, tokenizer, texts, 30, batch_size=8, done=done)
        hook.remove()
        tokenizer.padding_side = "left"
        batch = tokenizer(texts, return_tensors="pt", padding=True)
        width = batch["input_ids"].shape[1]
        with torch.inference_mode():
            reference = model.generate(
                **batch,
                max_new_tokens=30,
                do_sample=False,
                pad_token_id=tokenizer.pad_token_id,
                stopping_criteria=StoppingCriteriaList([StopCriteria(tokenizer, width, Stop(done))] if done else []),
            )
        assert ours == [tokenizer.decode(row[width:], skip_special_tokens=True) for row in reference]
        assert sizes[0] == 8 and sizes == sorted(sizes, reverse=True)
    assert sizes[-1] < 8 and len(set(len(o) for o in ours)) > 2  # finished rows left the batch

    # A cache that cannot drop rows (a hybrid model's) keeps them in the batch, with the same outputs.
    import ftcot.engines.hf as evaluation

    kept = evaluation._prunable
    evaluation._prunable = lambda cache: False
    try:
        assert generate(model, tokenizer, texts, 30, batch_size=8, done=done) == ours
    finally:
        evaluation._prunable = kept
    # A generation config that changes the greedy choice is left to generate, which applies it.
    model.generation_config.repetition_penalty = 1.5
    penalised = generate(model, tokenizer, texts, 30, batch_size=8)
    tokenizer.padding_side = "left"
    with torch.inference_mode():
        reference = model.generate(**batch, max_new_tokens=30, do_sample=False, pad_token_id=tokenizer.pad_token_id)
    assert penalised == [tokenizer.decode(row[width:], skip_special_tokens=True) for row in reference]


def test_wilson_interval():
    low, high = wilson_interval(8, 10)
    assert (round(low, 1), round(high, 1)) == (49.0, 94.3)
    assert wilson_interval(0, 0) == (0.0, 0.0)


def test_training_keeps_the_best_epoch_and_saves_a_plain_hf_model(tiny_lm, data_dir, tmp_path, monkeypatch):
    scores = iter([10.0, 30.0, 20.0])  # validation accuracy after epochs 1, 2, 3
    saved = {}
    steps = []  # (logits kept, positions) of each training step
    skip = StudentTrainer._skip_prompt_logits

    def spy(self, model, inputs):
        width = inputs["input_ids"].shape[1]
        skip(self, model, inputs)
        steps.append((inputs.get("logits_to_keep", width), width))

    monkeypatch.setattr(StudentTrainer, "_skip_prompt_logits", spy)

    def validate(model):
        accuracy = next(scores)
        saved[accuracy] = {k: v.detach().cpu().clone() for k, v in model.state_dict().items()}
        return accuracy

    summary = train(
        _examples(data_dir),
        "ft_cot",
        StudentConfig(model=str(tiny_lm)),
        TrainConfig(epochs=3, batch_size=4, learning_rate=1e-3),
        tmp_path / "ft_cot",
        validate,
    )
    assert [h.epoch for h in summary.history] == [1, 2, 3]
    assert summary.best_epoch == 2 and summary.best_val_accuracy == 30.0
    assert summary.tokens_per_s > 0 and summary.examples == 24
    assert len(steps) == 18 and all(kept < width for kept, width in steps)  # no step computed the prompts' logits
    best = AutoModelForCausalLM.from_pretrained(tmp_path / "ft_cot" / "best")
    assert (tmp_path / "ft_cot" / "best" / "model.safetensors").exists()
    for name, value in best.state_dict().items():
        assert torch.equal(value, saved[30.0][name]), name
    assert not (tmp_path / "ft_cot" / "checkpoints").exists()


@pytest.mark.parametrize("save", ["merged", "adapter"])
def test_lora_saves_merged_or_adapter(tiny_lm, data_dir, tmp_path, save):
    train(
        _examples(data_dir, 8),
        "ft_cot",
        StudentConfig(model=str(tiny_lm)),
        TrainConfig(epochs=1, batch_size=4, learning_rate=1e-3, lora=LoraConfig(r=4, alpha=8, save=save)),
        tmp_path / "lora",
    )
    best = tmp_path / "lora" / "best"
    if save == "merged":
        model = AutoModelForCausalLM.from_pretrained(best)
        assert not any("lora" in name for name in model.state_dict())
    else:
        from peft import AutoPeftModelForCausalLM

        assert (best / "adapter_config.json").exists() and (best / "adapter_model.safetensors").exists()
        peft_model = AutoPeftModelForCausalLM.from_pretrained(best).eval()
        # ftcot evaluate loads it too: the base model with the adapter merged, the same logits
        model, _, kind = load_student(StudentConfig(model=str(tiny_lm)), str(best))
        ids = torch.tensor([[5, 6, 7, 8]])
        with torch.no_grad():
            assert torch.allclose(model(ids).logits, peft_model(ids).logits, atol=1e-5) and kind == "decoder"


def test_encoder_decoder_student_trains_and_evaluates(tiny_lm, data_dir, tmp_path):
    tokenizer = AutoTokenizer.from_pretrained(tiny_lm)
    config = T5Config(
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
    torch.manual_seed(0)
    T5ForConditionalGeneration(config).save_pretrained(tmp_path / "t5")
    tokenizer.save_pretrained(tmp_path / "t5")
    student = StudentConfig(model=str(tmp_path / "t5"))
    summary = train(_examples(data_dir, 8), "ft_cot", student, TrainConfig(epochs=1, batch_size=4), tmp_path / "out")
    assert summary.kind == "encoder_decoder"
    model, tok, kind = load_student(student, str(tmp_path / "out" / "best"))
    assert isinstance(model, T5ForConditionalGeneration) and kind == "encoder_decoder"
    task = load_task("coin_flip", data_dir)
    predictions, metrics = evaluate(task, HFEngine(model, tok, kind, 4), task.split_samples("test")[:4], "ft_cot", 8)
    assert metrics.n == 4 and predictions[0].prompt == predictions[0].prompt.strip()
    assert AutoModelForSeq2SeqLM.from_pretrained(tmp_path / "out" / "best") is not None


def _coin_flip_run(tmp_path: Path, name: str, tiny_lm, data_dir, questions: int, **sections) -> Path:
    """The YAML config of the tiny student on Coin Flip's recorded teacher, its run folder tmp_path/name."""
    return run_config(
        tmp_path,
        data_dir,
        as_file=f"{name}.yaml",
        run_dir=str(tmp_path / name),
        teacher={"max_questions": questions},
        student={"model": str(tiny_lm)},
        evaluate={"max_new_tokens": 4, "batch_size": 32},
        **sections,
    )


def _ftcot(data_dir, *args, processes: int = 1):
    """The CLI in a process of its own (under torchrun with several processes), asserting exit 0."""
    result = run_cli(*args, env={"FTCOT_DATA_DIR": str(data_dir)}, processes=processes)
    assert result.returncode == 0, result.stderr[-2000:]
    return result


def _start_ftcot(data_dir, *args, processes: int = 1) -> subprocess.Popen:
    """The CLI started in a process of its own (under torchrun with several processes), to be killed."""
    env = {**os.environ, "FTCOT_DATA_DIR": str(data_dir)}
    out = subprocess.DEVNULL
    return subprocess.Popen(cli_command(*args, processes=processes), env=env, stdout=out, stderr=out)


def test_train_resumes_after_a_kill(tiny_lm, data_dir, tmp_path):
    train = {"methods": ["ft_cot"], "epochs": 3, "batch_size": 2}
    config = _coin_flip_run(tmp_path, "run", tiny_lm, data_dir, 200, train=train)
    for stage in ("teach", "curate"):
        _ftcot(data_dir, stage, config)
    out = tmp_path / "run" / "students" / "ft_cot"
    proc = _start_ftcot(data_dir, "train", config)
    deadline = time.time() + 120
    while not list((out / "checkpoints").glob("checkpoint-*/trainer_state.json")) and time.time() < deadline:
        time.sleep(0.05)
    time.sleep(0.3)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    first = json.loads((out / "history.json").read_text())
    assert [h["epoch"] for h in first] in ([1], [1, 2])
    _ftcot(data_dir, "train", config)
    summary = json.loads((out / "summary.json").read_text())
    assert [h["epoch"] for h in summary["history"]] == [1, 2, 3]
    assert summary["history"][0] == first[0]  # epoch 1 was not trained again
    assert AutoModelForCausalLM.from_pretrained(out / "best") is not None


@pytest.mark.parametrize("processes", [1, 2])
def test_a_kill_mid_epoch_resumes_from_the_last_checkpoint_as_if_never_stopped(tiny_lm, data_dir, tmp_path, processes):
    """Checkpoints as often as they come (every 10 steps), a SIGKILL to every process of the run a moment after
    one within epoch 2 (often during the next save), alone or under torchrun: the resumed run ends with the very
    weights of a run never stopped."""
    runs = {}
    for name, every in (("never", {}), ("killed", {"checkpoint_minutes": 1e-6})):
        train = {"methods": ["ft_cot"], "epochs": 2, "batch_size": 2, **every}
        no_validation = {"val_fraction": 0}  # best/ holds the last epoch's weights
        runs[name] = _coin_flip_run(tmp_path, name, tiny_lm, data_dir, 120, train=train, curate=no_validation)
        for stage in ("teach", "curate"):
            _ftcot(data_dir, stage, runs[name])
    _ftcot(data_dir, "train", runs["never"], processes=processes)
    out = tmp_path / "killed" / "students" / "ft_cot"
    proc = _start_ftcot(data_dir, "train", runs["killed"], processes=processes)
    steps = None  # an epoch's
    deadline = time.time() + 300
    while time.time() < deadline and proc.poll() is None and not (steps and _last_step(out, complete=True) > steps):
        if steps is None and (states := list((out / "checkpoints").glob("checkpoint-*/trainer_state.json"))):
            steps = json.loads(states[0].read_text())["max_steps"] // 2
        time.sleep(0.01)
    time.sleep(0.05)
    for pid in [proc.pid, *(child.pid for child in psutil.Process(proc.pid).children(recursive=True))]:
        os.kill(pid, signal.SIGKILL)  # torchrun's workers too, which are not in its process group
    proc.wait()
    resumed_from = _last_step(out, complete=True)
    assert steps < resumed_from < 2 * steps, (steps, resumed_from)
    before = json.loads((out / "checkpoints" / f"checkpoint-{resumed_from}" / EPOCH_CLOCK).read_text())
    result = _ftcot(data_dir, "train", runs["killed"], processes=processes)
    assert f"ft_cot: resuming at step {resumed_from} of {2 * steps} (epoch 2 of 2)" in result.stdout + result.stderr
    summary = json.loads((out / "summary.json").read_text())
    # the resumed epoch's time counts from its start
    assert before["epoch_train_s"] > 0 and summary["history"][1]["train_s"] > before["epoch_train_s"]
    never_stopped, resumed = (
        load_file(tmp_path / run / "students" / "ft_cot" / "best" / "model.safetensors") for run in runs
    )
    assert resumed.keys() == never_stopped.keys()
    for name in resumed:
        assert torch.equal(resumed[name], never_stopped[name]), name


def _last_step(out: Path, complete: bool = False) -> int:
    """The step of the newest checkpoint; with complete, of the newest one written to its end (ftcot's clock is
    its last file)."""
    folders = [p.parent for p in (out / "checkpoints").glob(f"checkpoint-*/{EPOCH_CLOCK if complete else '*'}")]
    return max((int(folder.name.split("-")[-1]) for folder in folders), default=0)


def test_the_bundled_student_converts_on_a_cold_cache_saying_one_line(bundled_student):
    """On a machine that never converted it, the first command that needs the student converts it and says so in
    one line (what, where to, about how long): none of the libraries' progress bars or logging reach a log."""
    cache, result = bundled_student
    assert result.returncode == 0, result.stderr[-2000:]
    lines = result.stderr.strip().splitlines()
    assert re.fullmatch(
        r"converting smollm2-135m \(SmolLM2-135M-Instruct\.Q4_1\.gguf\) to float32 safetensors in "
        rf"{re.escape(str(cache / 'models' / 'smollm2-135m'))}, once \(about \d+ s\)",
        lines[0],
    )
    assert lines[1].startswith("evaluate zero_shot: ")  # max_new_tokens is set: no generation line
    assert not re.search(r"it/s\]|%\||Converting|Loading weights|Writing model", result.stderr), result.stderr
    assert (cache / "models" / "smollm2-135m" / "model.safetensors").is_file()
    assert not [p for p in (cache / "models").iterdir() if p.name.endswith(".part")]  # nothing half-written


@pytest.mark.slow
def test_real_smollm2_loads_and_generates(bundled_student, monkeypatch):
    monkeypatch.setenv("FTCOT_CACHE_DIR", str(bundled_student[0]))
    model, tokenizer, kind = load_student(StudentConfig(model="smollm2-135m"))
    assert kind == "decoder"
    assert model.num_parameters() > 100e6 and model.dtype == torch.float32
    (text,) = generate(model, tokenizer, ["Q: What is 2 plus 3?\nA: Let's think step by step."], 24, 1)
    assert len(text.strip()) > 0
