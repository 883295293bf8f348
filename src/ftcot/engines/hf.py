"""The `hf` engine: the student in this process with transformers, batched by prompt length (longest first)
with left padding and the KV cache; each row stops at EOS or at its method's end and leaves the batch there,
so outputs that loop to the token limit cost no more than they must and hold no other row back. k samples of
a prompt share its computation."""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import NamedTuple

import torch
from transformers import StoppingCriteria, StoppingCriteriaList

from ftcot.config import RunConfig
from ftcot.methods import Stop
from ftcot.students.load import load_student
from ftcot.tasks.prompts import ModelKind


class Continuation(NamedTuple):
    text: str
    tokens: int  # new tokens generated
    ended: bool  # at EOS or the stop rule, not at the token budget


class HFEngine:
    def __init__(self, model, tokenizer, kind: ModelKind, batch_size: int, add_special_tokens: bool = True):
        self.model, self.tokenizer, self.kind, self.batch_size = model, tokenizer, kind, batch_size
        self.add_special_tokens = add_special_tokens  # False for prompts a chat template has already framed
        self.parameters = sum(p.numel() for p in model.parameters())
        self.tokens = 0

    def generate(
        self,
        prompts: list[str],
        max_new_tokens: int,
        stop: Stop = Stop(),
        k: int = 1,
        temperature: float = 0.0,
        seed: int = 0,
        progress: Callable[[int], None] | None = None,
    ) -> list[list[str]]:
        return [
            [c.text for c in row]
            for row in self.continuations(prompts, max_new_tokens, stop, k, temperature, seed, progress)
        ]

    def continuations(
        self,
        prompts: list[str],
        max_new_tokens: int,
        stop: Stop = Stop(),
        k: int = 1,
        temperature: float = 0.0,
        seed: int = 0,
        progress: Callable[[int], None] | None = None,
        add_special_tokens: bool | None = None,
    ) -> list[list[Continuation]]:
        """generate's continuations with how many tokens each took and whether it ended before the budget (the
        local teacher's finish reasons and usage). add_special_tokens: the engine's unless given (the local
        teacher's prompts, framed by a chat template, bring their own)."""
        outputs = _generate(
            self.model,
            self.tokenizer,
            prompts,
            max_new_tokens,
            max(1, self.batch_size // k),
            stop,
            progress,
            k,
            temperature,
            seed,
            self.add_special_tokens if add_special_tokens is None else add_special_tokens,
        )
        self.tokens += sum(c.tokens for row in outputs for c in row)
        return outputs

    def close(self) -> None:
        pass


def open_engine(cfg: RunConfig, method: str, weights: str | None, folder, batch_size: int) -> HFEngine:
    model, tokenizer, kind = load_student(cfg.student, weights)
    return HFEngine(model, tokenizer, kind, batch_size)


class StopCriteria(StoppingCriteria):
    """A Stop as transformers' per-row stopping criteria (encoder-decoder students, and models `decode` leaves to
    generate): a row is finished once its new text is where `stop` ends it (EOS is handled by generate)."""

    def __init__(self, tokenizer, prompt_length: int, stop: Stop):
        self.tokenizer, self.prompt_length, self.stop = tokenizer, prompt_length, stop

    def __call__(self, input_ids: torch.LongTensor, scores, **kwargs) -> torch.BoolTensor:
        texts = self.tokenizer.batch_decode(input_ids[:, self.prompt_length :], skip_special_tokens=True)
        return torch.tensor([self.stop(t) for t in texts], device=input_ids.device)


def _stop_ids(model, tokenizer) -> set[int]:
    """EOS as the model's generation config names it (one id or several) and as the tokenizer does."""
    ids = model.generation_config.eos_token_id
    ids = set(ids if isinstance(ids, (list, tuple)) else [] if ids is None else [ids])
    return ids | ({tokenizer.eos_token_id} if tokenizer.eos_token_id is not None else set())


# Generation-config settings that change which token greedy decoding picks; a model that sets any of them is
# left to transformers' generate, which applies them.
_LOGITS_SETTINGS = {
    "repetition_penalty": 1.0,
    "no_repeat_ngram_size": 0,
    "bad_words_ids": None,
    "min_length": 0,
    "min_new_tokens": None,
    "suppress_tokens": None,
    "begin_suppress_tokens": None,
    "forced_bos_token_id": None,
    "forced_eos_token_id": None,
    "sequence_bias": None,
}


def forward_parameters(model):
    """The parameters of the student's own `forward`, through the wrappers that hide it."""
    base = getattr(model, "_orig_mod", model)  # under torch.compile
    base = base.get_base_model() if hasattr(base, "get_base_model") else base  # a peft model passes them on
    return inspect.signature(base.forward).parameters


def _plain_greedy(model) -> bool:
    """Whether `decode` gives what generate would: a decoder whose forward takes position ids and whose
    generation config asks for nothing but the most likely token."""
    config = model.generation_config
    unset = all(getattr(config, key, None) in (None, default) for key, default in _LOGITS_SETTINGS.items())
    return unset and not model.config.is_encoder_decoder and "position_ids" in forward_parameters(model)


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
def decode(
    model,
    batch,
    max_new_tokens: int,
    stop_ids: set[int],
    finished,
    repeat: int = 1,
    temperature: float = 0.0,
    generator: torch.Generator | None = None,
) -> list[list[int]]:
    """Greedy (or, with a temperature, sampled) decoding with the KV cache for a left-padded decoder batch,
    which drops each row from the batch the step it finishes (a stop id, or `finished(its new tokens)`): one
    long answer does not keep every other row generating to the limit, and no row is ever computed past its
    end. With repeat > 1, each prompt is computed once and its cache copied for `repeat` continuations (rows
    i*repeat .. i*repeat+repeat-1 are prompt i's). Returns each row's new tokens, without the stop id."""
    parameters = forward_parameters(model)
    cache_arg = "cache" if "cache" in parameters else "past_key_values"  # renamed in transformers 5
    keep_last = {"logits_to_keep": 1} if "logits_to_keep" in parameters else {}
    mask = batch["attention_mask"]
    positions = (mask.cumsum(-1) - 1).clamp(min=0)
    out = model(input_ids=batch["input_ids"], attention_mask=mask, position_ids=positions, use_cache=True, **keep_last)
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
        out = model(
            input_ids=next_ids[:, None],
            attention_mask=mask,
            position_ids=positions,
            use_cache=True,
            **{cache_arg: cache},
        )
        logits = out.logits[:, -1]
    return tokens


def _generate(
    model,
    tokenizer,
    texts: list[str],
    max_new_tokens: int,
    batch_size: int,
    stop: Stop,
    progress,
    k: int = 1,
    temperature: float = 0.0,
    seed: int = 0,
    special: bool = True,
) -> list[list[Continuation]]:
    """k continuations of each text, batched by length (longest first)."""
    encoder_decoder = model.config.is_encoder_decoder
    side, tokenizer.padding_side = tokenizer.padding_side, "left"
    lengths = [len(ids) for ids in tokenizer(texts, add_special_tokens=special)["input_ids"]]
    order = sorted(range(len(texts)), key=lambda i: -lengths[i])
    outputs: list[list[Continuation]] = [[] for _ in texts]
    stop_ids, plain = _stop_ids(model, tokenizer), _plain_greedy(model)
    finished = (lambda ids: stop(tokenizer.decode(ids, skip_special_tokens=True))) if stop else (lambda ids: False)
    generator = torch.Generator(model.device).manual_seed(seed) if temperature > 0 else None
    if temperature > 0 and not plain:
        torch.manual_seed(seed)  # transformers' generate samples from the global generator
    model.eval()
    for start in range(0, len(order), batch_size):
        rows = order[start : start + batch_size]
        batch = tokenizer([texts[i] for i in rows], return_tensors="pt", padding=True, add_special_tokens=special).to(
            model.device
        )
        if not plain:  # transformers' generate; rows stay in the batch until all are done
            prompt_length = 0 if encoder_decoder else batch["input_ids"].shape[1]
            criteria = StoppingCriteriaList([StopCriteria(tokenizer, prompt_length or 1, stop)] if stop else [])
            sampling = (
                {"do_sample": True, "temperature": temperature, "top_p": 1.0, "top_k": 0}
                if temperature > 0
                else {"do_sample": False}
            )
            with torch.inference_mode():
                new = model.generate(
                    **batch,
                    max_new_tokens=max_new_tokens,
                    use_cache=True,
                    num_return_sequences=k,
                    pad_token_id=tokenizer.pad_token_id,
                    stopping_criteria=criteria,
                    **sampling,
                )
            new = new[:, prompt_length:]
        else:
            new = decode(model, batch, max_new_tokens, stop_ids, finished, k, temperature, generator)
        for j, ids in enumerate(new):
            ids = [int(i) for i in ids]
            if not plain:  # generate's rows: after an encoder-decoder's start token, the new tokens up to EOS
                ids = ids[1:] if encoder_decoder else ids  # (BART's start token is its EOS)
                ids = ids[: next((n for n, i in enumerate(ids) if i in stop_ids), len(ids))]
                while ids and ids[-1] == tokenizer.pad_token_id:  # a row the stop rule ended, padded after
                    ids.pop()
            outputs[rows[j // k]].append(
                Continuation(tokenizer.decode(ids, skip_special_tokens=True), len(ids), len(ids) < max_new_tokens)
            )
        if progress is not None:
            progress(len(rows))
    tokenizer.padding_side = side  # training right after validation pads on the right
    return outputs
