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

from ftcot.errors import UserError
from ftcot.methods import PromptContext, get_method, line_done
from ftcot.tasks import Sample, Task, prompts
from ftcot.tasks.answers import accuracy, parse_prediction
from ftcot.tasks.rationales import failure_kind, is_loop, option_by_content

ANSWER_TOKENS = 16  # for outputs that are an answer alone


class StopWhenDone(StoppingCriteria):
    """Per-row stop for transformers' generate (encoder-decoder students, and models `decode` leaves to
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
    """Whether `decode` gives what generate would: a decoder whose forward takes position ids and whose
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
def decode(model, batch, max_new_tokens: int, stop_ids: set[int], finished, repeat: int = 1,
           temperature: float = 0.0, generator: torch.Generator | None = None) -> list[list[int]]:
    """Greedy (or, with a temperature, sampled) decoding with the KV cache for a left-padded decoder batch,
    which drops each row from the batch the step it finishes (a stop id, or `finished(its new tokens)`): one
    long answer does not keep every other row generating to the limit, and no row is ever computed past its
    end. With repeat > 1, each prompt is computed once and its cache copied for `repeat` continuations (rows
    i*repeat .. i*repeat+repeat-1 are prompt i's). Returns each row's new tokens, without the stop id."""
    parameters = _forward_parameters(model)
    cache_arg = "cache" if "cache" in parameters else "past_key_values"  # renamed in transformers 5
    keep_last = {"logits_to_keep": 1} if "logits_to_keep" in parameters else {}
    mask = batch["attention_mask"]
    positions = (mask.cumsum(-1) - 1).clamp(min=0)
    out = model(input_ids=batch["input_ids"], attention_mask=mask, position_ids=positions, use_cache=True,
                **keep_last)
    cache, positions, logits = getattr(out, cache_arg), positions[:, -1:], out.logits[:, -1]
    prune = _prunable(cache)
    if repeat > 1 and not prune:  # a cache that cannot be copied row by row: each row computed alone
        rows = {key: value.repeat_interleave(repeat, dim=0) for key, value in batch.items()}
        del out, cache
        return decode(model, rows, max_new_tokens, stop_ids, finished, 1, temperature, generator)
    if repeat > 1:
        cache.batch_repeat_interleave(repeat)
        mask, positions, logits = (t.repeat_interleave(repeat, dim=0) for t in (mask, positions, logits))
    rows = list(range(len(mask)))  # the output row of each row in the batch
    tokens: list[list[int]] = [[] for _ in rows]
    done: set[int] = set()  # finished rows still in the batch (a cache that cannot drop them)
    for _ in range(max_new_tokens):
        if temperature > 0:
            probabilities = torch.softmax(logits.float() / temperature, dim=-1)
            next_ids = torch.multinomial(probabilities, 1, generator=generator)[:, 0]
        else:
            next_ids = logits.argmax(-1)
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
        logits = out.logits[:, -1]
    return tokens


def generate(model, tokenizer, texts: list[str], max_new_tokens: int, batch_size: int,
             done: Callable[[str], bool] | None = None, progress: Callable[[int], None] | None = None) -> list[str]:
    """Greedy continuations of texts, batched by length (longest first), left-padded for decoders; each row
    stops at EOS or once its text is `done`."""
    return [outputs[0] for outputs in _generate(model, tokenizer, texts, max_new_tokens, batch_size, done,
                                                progress)]


def sample(model, tokenizer, texts: list[str], k: int, temperature: float, seed: int, max_new_tokens: int,
           batch_size: int, done: Callable[[str], bool] | None = None, progress=None) -> list[list[str]]:
    """k sampled continuations of each text, each prompt computed once (its cache shared by its k rows), at
    most batch_size rows at a time; seeded."""
    return _generate(model, tokenizer, texts, max_new_tokens, max(1, batch_size // k), done, progress, k,
                     temperature, seed)


def _generate(model, tokenizer, texts: list[str], max_new_tokens: int, batch_size: int, done, progress,
              k: int = 1, temperature: float = 0.0, seed: int = 0) -> list[list[str]]:
    encoder_decoder = model.config.is_encoder_decoder
    side, tokenizer.padding_side = tokenizer.padding_side, "left"
    lengths = [len(ids) for ids in tokenizer(texts)["input_ids"]]
    order = sorted(range(len(texts)), key=lambda i: -lengths[i])
    outputs: list[list[str]] = [[] for _ in texts]
    stop_ids, plain = _stop_ids(model, tokenizer), _plain_greedy(model)
    finished = (lambda ids: done(tokenizer.decode(ids, skip_special_tokens=True))) if done else (lambda ids: False)
    generator = torch.Generator(model.device).manual_seed(seed) if temperature > 0 else None
    if temperature > 0 and not plain:
        torch.manual_seed(seed)  # transformers' generate samples from the global generator
    model.eval()
    for start in range(0, len(order), batch_size):
        rows = order[start:start + batch_size]
        batch = tokenizer([texts[i] for i in rows], return_tensors="pt", padding=True).to(model.device)
        if not plain:  # transformers' generate; rows stay in the batch until all are done
            prompt_length = 0 if encoder_decoder else batch["input_ids"].shape[1]
            criteria = StoppingCriteriaList([StopWhenDone(tokenizer, prompt_length or 1, done)] if done else [])
            sampling = {"do_sample": True, "temperature": temperature, "top_p": 1.0, "top_k": 0} \
                if temperature > 0 else {"do_sample": False}
            with torch.inference_mode():
                new = model.generate(**batch, max_new_tokens=max_new_tokens, use_cache=True, num_return_sequences=k,
                                     pad_token_id=tokenizer.pad_token_id, stopping_criteria=criteria, **sampling)
            new = new[:, prompt_length:]
        else:
            new = decode(model, batch, max_new_tokens, stop_ids, finished, k, temperature, generator)
        for j, ids in enumerate(new):
            outputs[rows[j // k]].append(tokenizer.decode(ids, skip_special_tokens=True))
        if progress is not None:
            progress(len(rows))
    tokenizer.padding_side = side  # training right after validation pads on the right
    return outputs


def evaluate(task: Task, model, tokenizer, samples: list[Sample], method: str, kind: str, max_new_tokens: int,
             batch_size: int, few_shot_prompts: dict | None = None, progress=None,
             choice_by_content: bool = False) -> tuple[list[dict], dict]:
    """Predictions (one dict per sample, with why it is wrong) and metrics of one method on samples of one
    task; with choice_by_content, each output with its rationale inside is also read by the option it names."""
    start = time.perf_counter()
    m = get_method(method)
    context = PromptContext(kind, task.decl.few_shot_prompt, few_shot_prompts)
    inputs = [m.prompt(s.question, context) for s in samples]
    outputs = generate(model, tokenizer, inputs, max_new_tokens if m.reasoning else ANSWER_TOKENS, batch_size,
                       m.done, progress)
    if m.cut:  # the model's next made-up question is not its answer
        outputs = [o.split(m.cut)[0] for o in outputs]
    if m.answer_step:  # the rationale, then the task's answer trigger
        inputs = [prompts.zero_shot_cot_step2(p, o.rstrip(), task.answer_trigger) for p, o in zip(inputs, outputs)]
        outputs = generate(model, tokenizer, inputs, ANSWER_TOKENS, batch_size, line_done)
    prefix, fmt = m.answer_prefix, task.answer_format
    wall = time.perf_counter() - start
    predictions = []
    for s, prompt, output in zip(samples, inputs, outputs):
        parsed = parse_prediction(fmt, output, prefix)
        right = fmt.matches(parsed, s.answer)
        row = {"sample_index": s.sample_index, "prompt": prompt, "output": output, "prediction": parsed,
               "answer": s.answer, "correct": right,
               "failure": failure_kind(output, parsed, right, fmt, s.question, s.answer, prefix, m.votes)}
        if choice_by_content and m.votes:  # the option its rationale names, where it names one by its text
            by_content = option_by_content(output, s.question, prefix) or parsed
            row |= {"prediction_by_content": by_content, "correct_by_content": fmt.matches(by_content, s.answer)}
        predictions.append(row)
    metrics = {"task": task.key, "method": method, **accuracy([p["correct"] for p in predictions]),
               "max_new_tokens": max_new_tokens, "wall_s": round(wall, 2),
               "questions_per_s": round(len(samples) / wall, 3),
               "diagnostics": diagnostics(predictions, prefix, fmt),
               "failures": {"kinds": dict(Counter(p["failure"] for p in predictions if p["failure"])),
                            "loops": sum(is_loop(p["output"]) for p in predictions),
                            "n_wrong": sum(not p["correct"] for p in predictions)}}
    if predictions and "correct_by_content" in predictions[0]:
        metrics["choice_by_content"] = accuracy([p["correct_by_content"] for p in predictions])
    return predictions, metrics


def vote(parsed: list[str | None], fmt) -> tuple[str | None, int]:
    """The most frequent answer among parsed ones, as the format compares them (5 and 5.0 agree), in the form
    first sampled; ties go to the one sampled first. With the number of votes it got."""
    counts: dict[object, int] = {}
    first: dict[object, str] = {}
    for p in parsed:
        if p is None:
            continue
        try:
            key = fmt.normalize(p)
        except (ValueError, TypeError, AttributeError):
            key = p  # not a valid answer in the format: it can only agree with itself
        counts[key] = counts.get(key, 0) + 1
        first.setdefault(key, p)
    if not counts:
        return None, 0
    best = max(counts, key=lambda key: counts[key])  # max keeps the first of equal counts, in sampled order
    return first[best], counts[best]


def self_consistency(task: Task, model, tokenizer, samples: list[Sample], method: str, kind: str, max_new_tokens: int,
                     batch_size: int, k: int, temperature: float, seed: int = 0,
                     few_shot_prompts: dict | None = None) -> tuple[list[dict], dict]:
    """Self-consistency (Wang et al., 2023): k sampled rationales per question, a vote on their parsed answers
    (ties go to the answer sampled first); its accuracy, how much the samples agree with the vote, and how often
    any sample was right."""
    m = get_method(method)
    if not m.votes:
        raise UserError(f"self-consistency votes on answers in the output itself; {method} has "
                        f"{'a second answer step' if m.answer_step else 'no rationale to sample'}")
    start = time.perf_counter()
    context = PromptContext(kind, task.decl.few_shot_prompt, few_shot_prompts)
    inputs = [m.prompt(s.question, context) for s in samples]
    outputs = sample(model, tokenizer, inputs, k, temperature, seed, max_new_tokens, batch_size, m.done)
    wall = time.perf_counter() - start
    rows = []
    for s, texts in zip(samples, outputs):
        parsed = [parse_prediction(task.answer_format, t.split(m.cut)[0] if m.cut else t, m.answer_prefix)
                  for t in texts]
        voted, count = vote(parsed, task.answer_format)
        rows.append({"sample_index": s.sample_index, "outputs": texts, "predictions": parsed, "prediction": voted,
                     "agreement": count / k, "answer": s.answer,
                     "correct": task.answer_format.matches(voted, s.answer),
                     "any_correct": any(task.answer_format.matches(p, s.answer) for p in parsed)})
    return rows, {"k": k, "temperature": temperature, "seed": seed, **accuracy([r["correct"] for r in rows]),
                  "agreement": round(100 * sum(r["agreement"] for r in rows) / len(rows), 2),
                  "any_correct": round(100 * sum(r["any_correct"] for r in rows) / len(rows), 2),
                  "wall_s": round(wall, 2), "questions_per_s": round(len(rows) / wall, 3)}


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
