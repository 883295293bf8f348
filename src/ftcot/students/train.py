"""Fine-tuning a student with transformers' Trainer: completion-only loss (prompt tokens masked by
position, and no logits computed for them), length-grouped batches, a checkpoint each epoch and every
`checkpoint_minutes` within one (a killed run resumes from the batch after the last), validation accuracy by
generation each epoch, and the best epoch's weights exported as a plain HF folder (safetensors).

Trainer brings accelerate: the same code runs on several GPUs under `accelerate launch` or `torchrun`.
"""

from __future__ import annotations

import copy
import json
import os
import shutil
import time
from pathlib import Path
from typing import NamedTuple

import torch
from transformers import DataCollatorForSeq2Seq, PrinterCallback, Trainer, TrainerCallback, TrainingArguments
from transformers.trainer_pt_utils import LengthGroupedSampler

from ftcot.artifacts import TrainSummary
from ftcot.config import StudentConfig, TrainConfig
from ftcot.curate import Example
from ftcot.engines.hf import HFEngine, forward_parameters
from ftcot.errors import UserError
from ftcot.evaluate import evaluate
from ftcot.files import write_json
from ftcot.log import launched_as_rank_0, log, show_progress
from ftcot.methods import METHODS
from ftcot.students.load import libraries_quiet, load_student
from ftcot.tasks import Sample, Task

EPOCH_CLOCK = "ftcot_epoch.json"  # in each checkpoint: how long its epoch had trained when it was saved


def tokenize(
    examples: list[Example], method: str, kind: str, tokenizer, max_length: int, aux_weight: float = 1.0
) -> list[dict]:
    """Token ids and labels: the loss covers the completion and EOS only. Masking is by position, since a
    tokenizer's pad token may equal its EOS (SmolLM2's does). A method with a second pair per example (dss)
    gets both, each with the weight of its loss."""
    m = METHODS[method]
    built = [m.pairs(e.question, e.rationale, e.answer, kind) for e in examples]
    pairs = [(b[0], 1.0) for b in built] + [(b[1], aux_weight) for b in built if len(b) > 1]
    features = []
    for (prompt, completion), weight in pairs:
        if kind == "encoder_decoder":
            source = tokenizer(prompt, truncation=True, max_length=max_length)
            target = tokenizer(text_target=completion, truncation=True, max_length=max_length)
            feature = {
                "input_ids": source["input_ids"],
                "attention_mask": source["attention_mask"],
                "labels": target["input_ids"],
            }
        else:
            prompt_ids = tokenizer(prompt, add_special_tokens=True)["input_ids"]
            completion_ids = tokenizer(completion, add_special_tokens=False)["input_ids"] + [tokenizer.eos_token_id]
            ids = (prompt_ids + completion_ids)[:max_length]
            labels = ([-100] * len(prompt_ids) + completion_ids)[:max_length]
            feature = {"input_ids": ids, "attention_mask": [1] * len(ids), "labels": labels}
        features.append(feature | ({"loss_weight": weight} if m.aux_pair else {}))
    return features


class StudentTrainer(Trainer):
    """The Trainer, with two changes to its loss. A decoder computes logits only from the token before the batch's
    first completion token on: the prompt's are masked out of the loss, and the vocabulary projection and its
    cross-entropy over them are a large share of a small student's step (the loss is the same sum over the same
    tokens). And each example's token losses are scaled by its `loss_weight` where features carry one (dss:
    L = L_label + alpha * L_rationale, over the same token count the model's own loss divides by, and scaled for
    gradient accumulation and several processes as the Trainer scales that loss)."""

    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
        weight = inputs.pop("loss_weight", None)
        self._skip_prompt_logits(model, inputs)
        if weight is None:
            return super().compute_loss(model, inputs, return_outputs, num_items_in_batch)
        outputs = model(**inputs)
        logits, labels = outputs.logits, inputs["labels"]
        if not self.accelerator.unwrap_model(model).config.is_encoder_decoder:  # a decoder predicts the next token
            logits, labels = logits[:, :-1], labels[:, 1:]
        losses = torch.nn.functional.cross_entropy(
            logits.float().transpose(1, 2), labels, ignore_index=-100, reduction="none"
        )
        # The Trainer treats a loss as normalized over the accumulated batch (its token count on every process)
        # when the model takes that count; otherwise it divides a per-batch mean by the accumulation steps.
        global_count = num_items_in_batch is not None and self.model_accepts_loss_kwargs
        loss = (losses * weight[:, None].to(losses.dtype)).sum() / (
            num_items_in_batch if global_count else (labels != -100).sum().clamp(min=1)
        )
        if global_count and self.args.average_tokens_across_devices:
            loss = loss * self.accelerator.num_processes
        return (loss, outputs) if return_outputs else loss

    def _get_train_sampler(self, train_dataset=None):
        dataset = train_dataset if train_dataset is not None else self.train_dataset
        size = self.args.train_batch_size * self.args.gradient_accumulation_steps
        return _EpochSeededSampler(size, dataset, self.args.seed, lambda: int(self.state.epoch or 0))

    def _skip_prompt_logits(self, model, inputs: dict) -> None:
        labels = inputs.get("labels")
        # Training steps only: the Trainer's own evaluation compares logits with the labels it kept.
        if labels is None or not model.training or "shift_labels" in inputs:
            return
        student = self.accelerator.unwrap_model(model)
        if student.config.is_encoder_decoder:
            return
        if "logits_to_keep" not in forward_parameters(student):  # a model of the user's own
            return
        labelled = labels != -100
        rows = labelled.any(dim=1)
        if not rows.any():
            return
        # The logit at position i predicts token i + 1: keep from one before the first labelled token.
        skip = max(int(labelled.int().argmax(dim=1)[rows].min()) - 1, 0)
        if skip:
            inputs["labels"] = labels[:, skip:]
            inputs["logits_to_keep"] = labels.shape[1] - skip  # the last n positions


class _EpochSeededSampler(LengthGroupedSampler):
    """Length-grouped batches in an order drawn from the seed and the epoch alone. transformers' own draws it from
    the global generator, whose state a run resumed mid-epoch does not have: it would skip other batches than
    those it trained before the kill. The epoch is read from the Trainer's state when an epoch's batches are
    drawn (a resumed one's too), not passed by set_epoch, which accelerate does not forward through the wrappers
    of a resumed multi-process loader."""

    def __init__(self, batch_size: int, dataset, seed: int, epoch):
        super().__init__(batch_size, dataset=dataset, generator=torch.Generator())
        self.seed, self.epoch = seed, epoch

    def __iter__(self):
        self.generator.manual_seed(self.seed + self.epoch())
        return super().__iter__()


class _Features(torch.utils.data.Dataset):
    def __init__(self, features: list[dict]):
        self.features = features

    def __len__(self) -> int:
        return len(self.features)

    def __getitem__(self, i: int) -> dict:
        return self.features[i]


def save_student(model, tokenizer, target: Path, lora_save: str | None) -> None:
    """Save weights (safetensors) and tokenizer so plain `from_pretrained` loads them; atomically."""
    tmp = target.with_name(target.name + ".part")
    shutil.rmtree(tmp, ignore_errors=True)
    if lora_save == "merged":
        model = copy.deepcopy(model).merge_and_unload()
    model.save_pretrained(tmp, safe_serialization=True)
    tokenizer.save_pretrained(tmp)
    shutil.rmtree(target, ignore_errors=True)
    os.replace(tmp, target)


def is_main_process() -> bool:
    """Rank 0 of a torchrun/accelerate job, or the only process: the one that validates and writes files.
    Before the process group exists (torchrun starts every rank with RANK set), the environment tells."""
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        return dist.get_rank() == 0
    return launched_as_rank_0()


def _wait_for_main(value=None):
    """Every rank waits here for rank 0, and gets rank 0's value (e.g. its decision to stop)."""
    import torch.distributed as dist

    if not (dist.is_available() and dist.is_initialized()):
        return value
    box = [value]
    dist.broadcast_object_list(box, src=0)
    return box[0]


def end_processes() -> None:
    """After the last student: every rank meets rank 0 (done writing), then leaves the process group, so no
    rank exits with gloo's threads still running (which aborted a rank at exit)."""
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        dist.barrier()
        dist.destroy_process_group()


class ValidationCallback(TrainerCallback):
    """After each epoch, on rank 0 only: accuracy on the validation questions, the best epoch's weights to
    `best/`, the history; then stop on patience or on the time budget. The other ranks wait for its verdict.
    Within an epoch, a checkpoint every `checkpoint_minutes`, which records how long the epoch has trained so far
    (`resumed_s` when resuming from it): a resumed epoch's time counts from its start, not from the resume."""

    def __init__(
        self,
        out: Path,
        validate,
        tokenizer,
        lora_save: str | None,
        tokens_per_epoch: int,
        cfg: TrainConfig,
        resumed_s: float = 0.0,
    ):
        self.out, self.validate, self.tokenizer, self.lora_save = out, validate, tokenizer, lora_save
        self.tokens_per_epoch, self.cfg, self.resumed_s = tokens_per_epoch, cfg, resumed_s
        self.history_path = out / "history.json"
        self.history = json.loads(self.history_path.read_text()) if self.history_path.exists() else []
        self.stop_reason = "completed"
        self.epoch_start = self.last_save = time.perf_counter()
        self.in_epoch = False

    def on_epoch_begin(self, args, state, control, model=None, **kwargs):
        self.epoch_start = time.perf_counter() - self.resumed_s
        self.resumed_s, self.in_epoch = 0.0, True

    def on_step_end(self, args, state, control, **kwargs):
        # Every rank asks at the same steps (a broadcast every logging_steps, not every step); none at an epoch's
        # last step, which the epoch's own checkpoint saves after validation.
        if not self.cfg.checkpoint or self.cfg.checkpoint_minutes is None or state.global_step % args.logging_steps:
            return
        due = state.is_world_process_zero and time.perf_counter() - self.last_save >= 60 * self.cfg.checkpoint_minutes
        if _wait_for_main(due) and state.epoch != int(state.epoch):  # every rank saves, or none
            control.should_save = True

    def on_save(self, args, state, control, **kwargs):
        self.last_save = time.perf_counter()
        if state.is_world_process_zero:
            train_s = time.perf_counter() - self.epoch_start if self.in_epoch else 0.0
            write_json(
                {"epoch_train_s": round(train_s, 2)},
                Path(args.output_dir) / f"checkpoint-{state.global_step}" / EPOCH_CLOCK,
            )

    def on_epoch_end(self, args, state, control, model=None, **kwargs):
        self.in_epoch = False
        stop = None
        if state.is_world_process_zero:
            self._record(round(state.epoch), state, model)
            stop = self._should_stop(round(state.epoch), args.num_train_epochs)
        stop = _wait_for_main(stop)
        if stop:
            self.stop_reason = stop
            control.should_training_stop = True
        model.train()

    def _record(self, epoch: int, state, model) -> None:
        train_s = time.perf_counter() - self.epoch_start
        start = time.perf_counter()
        accuracy = self.validate(model) if self.validate else None
        val_s = time.perf_counter() - start
        best = max(
            (h["val_accuracy"] for h in self.history if h["epoch"] != epoch and h["val_accuracy"] is not None),
            default=-1.0,
        )
        self.history = [h for h in self.history if h["epoch"] != epoch] + [
            {
                "epoch": epoch,
                "val_accuracy": accuracy,
                "train_s": round(train_s, 2),
                "val_s": round(val_s, 2),
                "tokens_per_s": round(self.tokens_per_epoch / train_s, 2),
                "loss": next((log["loss"] for log in reversed(state.log_history) if "loss" in log), None),
            }
        ]
        if accuracy is None or accuracy > best or not (self.out / "best").exists():
            save_student(model, self.tokenizer, self.out / "best", self.lora_save)
        write_json(self.history, self.history_path)
        log.info(
            f"{self.out.name} epoch {epoch}: validation accuracy {accuracy}, {train_s:.0f} s training, "
            f"{val_s:.0f} s validating"
        )

    def _should_stop(self, epoch: int, epochs: int) -> str | None:
        """'patience': no validation gain for `patience` epochs; 'time budget': the next epoch, as long as the
        longest so far, would end past `max_minutes` (time spent before a resume counts)."""
        scored = [h for h in self.history if h["val_accuracy"] is not None]
        if epoch >= epochs:
            return None
        if self.cfg.patience and scored:
            best = max(scored, key=lambda h: (h["val_accuracy"], -h["epoch"]))
            if epoch - best["epoch"] >= self.cfg.patience:
                return "patience"
        if self.cfg.max_minutes:
            spent = [h["train_s"] + h.get("val_s", 0.0) for h in self.history]
            if sum(spent) + max(spent) > 60 * self.cfg.max_minutes:
                return "time budget"
        return None


def precision_args(precision: str) -> dict:
    """TrainingArguments for `train.precision`: bf16 autocast (weights stay float32) where asked, or by default
    on a GPU that supports it; TF32 matmuls on any CUDA GPU that has them."""
    cuda = torch.cuda.is_available()
    if precision == "bf16" and cuda and not torch.cuda.is_bf16_supported():
        raise UserError(f"train.precision: bf16 is not supported by {torch.cuda.get_device_name()}: use fp32 or auto")
    bf16 = precision == "bf16" or (precision == "auto" and cuda and torch.cuda.is_bf16_supported())
    return {"bf16": bf16, "tf32": cuda and torch.cuda.get_device_capability()[0] >= 8}


def train(
    examples: list[Example],
    method: str,
    student: StudentConfig,
    cfg: TrainConfig,
    out: Path,
    validate=None,
    resume: bool = True,
) -> TrainSummary:
    """Fine-tune on examples; `validate(model) -> accuracy` runs after each epoch. Returns the summary."""
    out.mkdir(parents=True, exist_ok=True)
    model, tokenizer, kind = load_student(student)
    if cfg.lora is not None:
        from peft import LoraConfig, get_peft_model

        model = get_peft_model(
            model,
            LoraConfig(
                r=cfg.lora.r,
                lora_alpha=cfg.lora.alpha,
                lora_dropout=cfg.lora.dropout,
                target_modules="all-linear",
                task_type="SEQ_2_SEQ_LM" if kind == "encoder_decoder" else "CAUSAL_LM",
            ),
        )
    tokenizer.padding_side = "right"
    features = tokenize(examples, method, kind, tokenizer, cfg.max_length, cfg.dss_alpha)
    if not features:
        raise UserError(f"no training examples for {method}: check the teacher records and curation filters")
    tokens_per_epoch = sum(
        len(f["input_ids"]) + (len(f["labels"]) if kind == "encoder_decoder" else 0) for f in features
    )
    # A fractional warmup_steps (a share of all steps) is transformers 5.2's.
    args = TrainingArguments(
        output_dir=str(out / "checkpoints"),
        num_train_epochs=cfg.epochs,
        learning_rate=cfg.learning_rate,
        per_device_train_batch_size=cfg.batch_size,
        gradient_accumulation_steps=cfg.grad_accum,
        warmup_steps=cfg.warmup_ratio,
        weight_decay=cfg.weight_decay,
        lr_scheduler_type=cfg.lr_schedule,
        save_strategy="epoch" if cfg.checkpoint else "no",
        remove_unused_columns=False,  # the features are the model's inputs, and dss's loss_weight must get through
        save_total_limit=1,
        logging_steps=10,
        seed=cfg.seed,
        dataloader_num_workers=0,
        report_to=[name for name in cfg.report_to if name != "tensorboard"],
        use_cpu=not torch.cuda.is_available(),
        disable_tqdm=not (is_main_process() and show_progress()),  # no bar under --quiet
        ddp_find_unused_parameters=False,
        ddp_timeout=6 * 3600,  # the other ranks wait while rank 0 validates, which can take long on a CPU
        **precision_args(cfg.precision),
    )
    if METHODS[method].aux_pair and args.n_gpu > 1:  # one process driving several GPUs (DataParallel)
        raise UserError(f"{method} on several GPUs needs one process per GPU: torchrun or accelerate launch")
    checkpoint = _newest_checkpoint(out / "checkpoints", remove_others=is_main_process()) if resume else None
    resumed_s = 0.0
    if checkpoint:
        clock = checkpoint.path / EPOCH_CLOCK
        resumed_s = json.loads(clock.read_text())["epoch_train_s"] if clock.exists() else 0.0
        if is_main_process():
            # The Trainer's epoch counts finished epochs (1.26 is a quarter into the second).
            log.info(
                f"{out.name}: resuming at step {checkpoint.state['global_step']} of {checkpoint.state['max_steps']}"
                f" (epoch {int(checkpoint.state['epoch']) + 1} of {cfg.epochs})"
            )
    callback = ValidationCallback(
        out, validate, tokenizer, cfg.lora.save if cfg.lora else None, tokens_per_epoch, cfg, resumed_s
    )
    try:
        trainer = StudentTrainer(
            model=model,
            args=args,
            train_dataset=_Features(features),
            data_collator=DataCollatorForSeq2Seq(tokenizer, padding=True, label_pad_token_id=-100),
            callbacks=[callback, *_tensorboard(cfg.report_to, out / "logs")],
        )
    except (ImportError, RuntimeError) as exc:  # a tracker whose package is not installed
        raise UserError(f"train.report_to: {str(exc).splitlines()[0]}") from None
    if not show_progress():  # --quiet: nor the loss lines the Trainer prints where it has no bar
        trainer.remove_callback(PrinterCallback)
    if not checkpoint and args.process_index == 0:
        (out / "history.json").unlink(missing_ok=True)  # a fresh start: epochs of an earlier attempt do not count
        callback.history = []
    _wait_for_main()
    start = time.perf_counter()
    with libraries_quiet():  # ftcot's epoch lines and the Trainer's own bar, not a bar per checkpoint shard
        trainer.train(resume_from_checkpoint=str(checkpoint.path) if checkpoint else None)
    wall = time.perf_counter() - start
    history = _wait_for_main(callback.history)
    scored = [h for h in history if h["val_accuracy"] is not None]
    best = max(scored, key=lambda h: (h["val_accuracy"], -h["epoch"])) if scored else history[-1]
    summary = TrainSummary(
        method=method,
        student=student.model,
        kind=kind,
        lora=cfg.lora is not None,
        parameters=sum(p.numel() for p in model.parameters()),
        examples=len(features),
        tokens_per_epoch=tokens_per_epoch,
        protocol=cfg.protocol,
        epochs=cfg.epochs,
        epochs_trained=len(history),
        stop_reason=callback.stop_reason,
        precision="bf16" if args.bf16 else "fp32",
        processes=args.world_size,
        best_epoch=best["epoch"],
        best_val_accuracy=best["val_accuracy"],
        history=history,
        wall_s=round(wall, 2),
        tokens_per_s=round(tokens_per_epoch * len(history) / sum(h["train_s"] for h in history), 2),
    )
    if is_main_process():
        shutil.rmtree(out / "checkpoints", ignore_errors=True)  # done: only best/ is needed from here
    _wait_for_main()
    return summary


class _Checkpoint(NamedTuple):
    path: Path
    state: dict  # its trainer_state.json


def _newest_checkpoint(folder: Path, remove_others: bool) -> _Checkpoint | None:
    """The newest checkpoint the Trainer finished writing (it writes trainer_state.json last); a kill during a
    save leaves one without it, which is removed (by one rank) so it cannot be taken later."""
    newest = None
    for path in sorted(folder.glob("checkpoint-*"), key=lambda p: int(p.name.split("-")[-1])):
        try:
            newest = _Checkpoint(path, json.loads((path / "trainer_state.json").read_text()))
        except (OSError, ValueError):
            if remove_others:
                shutil.rmtree(path, ignore_errors=True)
    return newest


def _tensorboard(report_to: list[str], folder: Path) -> list:
    """TensorBoard's callback writing to the student's own folder (the Trainer's default is inside
    checkpoints/, which is removed when training ends)."""
    if "tensorboard" not in report_to:
        return []
    from transformers.integrations import TensorBoardCallback  # deferred, like the trackers it may need

    tensorboard = TensorBoardCallback()
    tensorboard.logging_dir = str(folder)
    return [tensorboard]


def validation_accuracy(
    task: Task,
    method: str,
    kind: str,
    tokenizer,
    val: list[Sample],
    max_new_tokens: int,
    batch_size: int,
    calculator: bool = False,
):
    """A `validate(model)` for train(): accuracy of method on the validation questions (written with the
    calculator, where asked), in percent."""

    def validate(model) -> float | None:
        if not val:
            return None
        _, metrics = evaluate(
            task, HFEngine(model, tokenizer, kind, batch_size), val, method, max_new_tokens, calculator=calculator
        )
        return metrics.accuracy

    return validate
