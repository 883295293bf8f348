"""Evaluation: batched greedy generation and per-task answer parsing, for the fine-tuned students and the
prompting baselines (zero-shot, zero-shot-CoT, few-shot-CoT) on the same student.

Generation is batched by prompt length with left padding and the KV cache, and each row stops at EOS or at
its format's end marker and leaves the batch there, so outputs that loop to the token limit cost no more than
they must and hold no other row back.
"""

from __future__ import annotations

import inspect
import time
from collections import Counter
from typing import Callable

import torch
from transformers import StoppingCriteria, StoppingCriteriaList

from ftcot.methods import PromptContext, get_method, line_done
from ftcot.tasks import Sample, get_task, prompts
from ftcot.tasks.answers import parse_prediction, wilson_interval

ANSWER_TOKENS = 16  # for outputs that are an answer alone


class StopWhenDone(StoppingCriteria):
    """Per-row stop for transformers' generate (encoder-decoder students, and models greedy_decode leaves to
    it): a row is finished once its new text satisfies `done` (EOS is handled by generate)."""

    def __init__(self, tokenizer, prompt_length: int, done: Callable[[str], bool]):
        self.tokenizer, self.prompt_length, self.done = tokenizer, prompt_length, done

    def __call__(self, input_ids: torch.LongTensor, scores, **kwargs) -> torch.BoolTensor:
        texts = self.tokenizer.batch_decode(input_ids[:, self.prompt_length:], skip_special_tokens=True)
        return torch.tensor([self.done(t) for t in texts], device=input_ids.device)


def _stop_ids(model, tokenizer) -> set[int]:
    """EOS as the model's generation config names it (one id or several) and as the tokenizer does."""
    ids = model.generation_config.eos_token_id
    ids = set(ids if isinstance(ids, (list, tuple)) else [] if ids is None else [ids])
    return ids | ({tokenizer.eos_token_id} if tokenizer.eos_token_id is not None else set())


# Generation-config settings that change which token greedy decoding picks; a model that sets any of them is
# left to transformers' generate, which applies them.
_LOGITS_SETTINGS = {"repetition_penalty": 1.0, "no_repeat_ngram_size": 0, "bad_words_ids": None, "min_length": 0,
                    "min_new_tokens": None, "suppress_tokens": None, "begin_suppress_tokens": None,
                    "forced_bos_token_id": None, "forced_eos_token_id": None, "sequence_bias": None}


def _forward_parameters(model):
    base = model.get_base_model() if hasattr(model, "get_base_model") else model  # a peft model passes them on
    return inspect.signature(base.forward).parameters


def _plain_greedy(model) -> bool:
    """Whether greedy_decode gives what generate would: a decoder whose forward takes position ids and whose
    generation config asks for nothing but the most likely token."""
    config = model.generation_config
    unset = all(getattr(config, key, None) in (None, default) for key, default in _LOGITS_SETTINGS.items())
    return unset and not model.config.is_encoder_decoder and "position_ids" in _forward_parameters(model)


def _prunable(cache) -> bool:
    """A cache whose every layer holds only keys and values per row (not the recurrent state of a hybrid
    model), so rows can be dropped from it."""
    try:
        from transformers.cache_utils import DynamicLayer, DynamicSlidingWindowLayer
    except ImportError:
        return False
    layers = getattr(cache, "layers", None)
    return bool(layers) and all(type(layer) in (DynamicLayer, DynamicSlidingWindowLayer) for layer in layers)


@torch.inference_mode()
def greedy_decode(model, batch, max_new_tokens: int, stop_ids: set[int], finished) -> list[list[int]]:
    """Greedy decoding with the KV cache for a left-padded decoder batch, which drops each row from the batch
    the step it finishes (a stop id, or `finished(its new tokens)`): one long answer does not keep every other
    row generating to the limit, and no row is ever computed past its end. Returns each row's new tokens,
    without the stop id."""
    parameters = _forward_parameters(model)
    cache_arg = "cache" if "cache" in parameters else "past_key_values"  # renamed in transformers 5
    keep_last = {"logits_to_keep": 1} if "logits_to_keep" in parameters else {}
    mask = batch["attention_mask"]
    positions = (mask.cumsum(-1) - 1).clamp(min=0)
    out = model(input_ids=batch["input_ids"], attention_mask=mask, position_ids=positions, use_cache=True,
                **keep_last)
    cache, positions = getattr(out, cache_arg), positions[:, -1:]
    prune = _prunable(cache)
    rows = list(range(len(mask)))  # the output row of each row in the batch
    tokens: list[list[int]] = [[] for _ in rows]
    done: set[int] = set()  # finished rows still in the batch (a cache that cannot drop them)
    for _ in range(max_new_tokens):
        next_ids = out.logits[:, -1].argmax(-1)
        going = []
        for j, (row, token) in enumerate(zip(rows, next_ids.tolist())):
            if row in done or token in stop_ids:
                continue
            tokens[row].append(token)
            if not finished(tokens[row]):
                going.append(j)
        if not going:
            break
        if not prune:
            done.update(rows[j] for j in set(range(len(rows))) - set(going))
        elif len(going) < len(rows):
            index = torch.tensor(going, device=mask.device)
            cache.batch_select_indices(index)
            mask, positions, next_ids = mask[index], positions[index], next_ids[index]
            rows = [rows[j] for j in going]
        mask = torch.cat([mask, mask.new_ones(len(rows), 1)], dim=-1)
        positions = positions + 1
        out = model(input_ids=next_ids[:, None], attention_mask=mask, position_ids=positions, use_cache=True,
                    **{cache_arg: cache})
    return tokens


def generate(model, tokenizer, texts: list[str], max_new_tokens: int, batch_size: int,
             done: Callable[[str], bool] | None = None, progress: Callable[[int], None] | None = None) -> list[str]:
    """Greedy continuations of texts, batched by length (longest first), left-padded for decoders; each row
    stops at EOS or once its text is `done`."""
    encoder_decoder = model.config.is_encoder_decoder
    side, tokenizer.padding_side = tokenizer.padding_side, "left"
    lengths = [len(ids) for ids in tokenizer(texts)["input_ids"]]
    order = sorted(range(len(texts)), key=lambda i: -lengths[i])
    outputs: list[str] = [""] * len(texts)
    stop_ids, plain = _stop_ids(model, tokenizer), _plain_greedy(model)
    finished = (lambda ids: done(tokenizer.decode(ids, skip_special_tokens=True))) if done else (lambda ids: False)
    model.eval()
    for start in range(0, len(order), batch_size):
        rows = order[start:start + batch_size]
        batch = tokenizer([texts[i] for i in rows], return_tensors="pt", padding=True).to(model.device)
        if not plain:  # transformers' generate; rows stay in the batch until all are done
            prompt_length = 0 if encoder_decoder else batch["input_ids"].shape[1]
            criteria = StoppingCriteriaList([StopWhenDone(tokenizer, prompt_length or 1, done)] if done else [])
            with torch.inference_mode():
                new = model.generate(**batch, max_new_tokens=max_new_tokens, do_sample=False, use_cache=True,
                                     pad_token_id=tokenizer.pad_token_id, stopping_criteria=criteria)
            new = new[:, prompt_length:]
        else:
            new = greedy_decode(model, batch, max_new_tokens, stop_ids, finished)
        for i, ids in zip(rows, new):
            outputs[i] = tokenizer.decode(ids, skip_special_tokens=True)
        if progress is not None:
            progress(len(rows))
    tokenizer.padding_side = side  # training right after validation pads on the right
    return outputs


def evaluate(model, tokenizer, samples: list[Sample], method: str, kind: str, max_new_tokens: int,
             batch_size: int, few_shot_prompts: dict | None = None, progress=None) -> tuple[list[dict], dict]:
    """Predictions (one dict per sample) and metrics of one method on samples of one task."""
    task = samples[0].task
    spec = get_task(task)
    start = time.perf_counter()
    m = get_method(method)
    context = PromptContext(kind, task, few_shot_prompts)
    inputs = [m.prompt(s.question, context) for s in samples]
    outputs = generate(model, tokenizer, inputs, max_new_tokens if m.reasoning else ANSWER_TOKENS, batch_size,
                       m.done, progress)
    if m.cut:  # the model's next made-up question is not its answer
        outputs = [o.split(m.cut)[0] for o in outputs]
    if m.answer_step:  # the rationale, then the task's answer trigger
        inputs = [prompts.zero_shot_cot_step2(p, o.rstrip(), spec.answer_trigger) for p, o in zip(inputs, outputs)]
        outputs = generate(model, tokenizer, inputs, ANSWER_TOKENS, batch_size, line_done)
    prefix = m.answer_prefix
    wall = time.perf_counter() - start
    predictions = []
    for s, prompt, output in zip(samples, inputs, outputs):
        parsed = parse_prediction(spec.answer_format, output, prefix)
        predictions.append({"sample_index": s.sample_index, "prompt": prompt, "output": output, "prediction": parsed,
                            "answer": s.answer, "correct": spec.answer_format.matches(parsed, s.answer)})
    correct = sum(p["correct"] for p in predictions)
    low, high = wilson_interval(correct, len(samples))
    metrics = {"task": task, "method": method, "n": len(samples), "correct": correct,
               "accuracy": round(100 * correct / len(samples), 2), "ci95": [round(low, 2), round(high, 2)],
               "max_new_tokens": max_new_tokens, "wall_s": round(wall, 2),
               "questions_per_s": round(len(samples) / wall, 3),
               "diagnostics": diagnostics(predictions, prefix, spec.answer_format)}
    return predictions, metrics


def diagnostics(predictions: list[dict], marker: str | None, fmt) -> dict:
    """Why answers are wrong, in percent of outputs: no answer marker (the output was cut off, or never
    answered), nothing parseable, and how often the student gives one answer (its most frequent, and the
    questions' majority answer) whatever the question."""
    n = len(predictions) or 1
    share = lambda count: round(100 * count / n, 2)  # noqa: E731
    given = Counter(p["prediction"] for p in predictions if p["prediction"] is not None)
    top, top_count = given.most_common(1)[0] if given else (None, 0)
    majority = Counter(p["answer"] for p in predictions).most_common(1)[0][0] if predictions else None
    return {"marker": marker,
            "no_answer_marker": share(sum(marker not in p["output"] for p in predictions)) if marker else None,
            "unparsed": share(sum(p["prediction"] is None for p in predictions)),
            "most_frequent_prediction": top, "most_frequent_share": share(top_count),
            "majority_answer": majority,
            "majority_answer_share": share(sum(fmt.matches(p["prediction"], majority) for p in predictions))}
