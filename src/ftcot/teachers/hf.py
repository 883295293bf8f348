"""Teacher backend for a local transformers causal LM, through the hf engine (ftcot.engines.hf): the requests
that the collector's questions make at one moment with the same parameters go in one batched generate (k
samples of a prompt sharing its computation), not one prompt at a time. The model's chat template frames each
prompt when it has one."""

from __future__ import annotations

import asyncio
import json
import time

from ftcot.config import StudentConfig
from ftcot.engines.hf import HFEngine
from ftcot.errors import UserError
from ftcot.methods import Stop
from ftcot.students.load import load_student
from ftcot.teachers import teacher_identity
from ftcot.teachers.store import Generation


class HFTeacher:
    def __init__(self, model_name: str, device: str = "auto", trust_remote_code: bool = False, batch_size: int = 64):
        model, tokenizer, _ = load_student(
            StudentConfig(model=model_name, kind="decoder", trust_remote_code=trust_remote_code)
        )
        self.model = model_name
        self.identity = teacher_identity("hf", model_name)
        self.tokenizer = tokenizer
        lm = (model if device == "auto" else model.to(device)).eval()
        self.engine = HFEngine(lm, tokenizer, "decoder", batch_size)
        self.waiting: list[tuple[str, int, dict, asyncio.Future]] = []
        self.worker: asyncio.Task | None = None
        self.requests = 0  # batched generate calls
        self.max_attempts = 1  # a local model has no transient failures to retry
        self.through_ledger, self.spending = False, None  # nothing to pay: the collector counts the tokens

    async def aclose(self) -> None:
        pass  # nothing to close: the model stays loaded for its owner

    @property
    def chat(self) -> bool:
        return bool(getattr(self.tokenizer, "chat_template", None))

    def _text(self, prompt: str) -> str:
        if self.chat:
            return self.tokenizer.apply_chat_template(
                [{"role": "user", "content": prompt}], tokenize=False, add_generation_prompt=True
            )
        return prompt

    def _generate(self, prompts: list[str], n: int, params: dict) -> list[list[Generation]]:
        """n continuations of each prompt (greedy decoding gives one, repeated so that each k has its own)."""
        if params.get("top_p", 1.0) != 1.0:
            raise UserError("the hf teacher samples from the whole distribution: set top_p to 1 (or leave it out)")
        sample = params.get("temperature", 0) > 0
        stop = Stop(strings=tuple(params.get("stop") or ()))
        texts = [self._text(p) for p in prompts]
        special = not self.chat  # a chat template frames the prompt with its own tokens
        start = time.perf_counter()
        outputs = self.engine.continuations(
            texts,
            params.get("max_tokens", 128),
            stop,
            n if sample else 1,
            params["temperature"] if sample else 0.0,
            params.get("seed", 0),
            add_special_tokens=special,
        )
        latency = (time.perf_counter() - start) / len(prompts)
        prompt_tokens = [len(ids) for ids in self.tokenizer(texts, add_special_tokens=special)["input_ids"]]
        out = []
        for length, row in zip(prompt_tokens, outputs):
            generations = []
            for i, c in enumerate(row):
                text = stop.before_strings(c.text)  # as a server's stop strings cut it
                generations.append(
                    Generation(
                        text,
                        "stop" if c.ended or text != c.text else "length",
                        length if i == 0 else 0,
                        c.tokens,
                        latency,
                    )
                )
            out.append(generations if sample else generations * n)
        return out

    async def sample(self, prompt: str, n: int, params: dict) -> list[Generation]:
        future = asyncio.get_running_loop().create_future()
        self.waiting.append((prompt, n, params, future))
        if self.worker is None or self.worker.done():
            self.worker = asyncio.create_task(self._work())
        return await future

    async def _work(self) -> None:
        """Batches of the waiting requests that share n and parameters, one batch at a time (it uses every core)."""
        while self.waiting:
            await asyncio.sleep(0)  # the requests the other questions make at this moment join the batch
            self.waiting = [w for w in self.waiting if not w[3].done()]  # cancelled: the budget, another's error
            if not self.waiting:
                break
            same = lambda w: (w[1], json.dumps(w[2], sort_keys=True))  # noqa: E731
            first = same(self.waiting[0])
            batch = [w for w in self.waiting if same(w) == first]
            self.waiting = [w for w in self.waiting if same(w) != first]
            self.requests += 1
            try:
                results = await asyncio.to_thread(self._generate, [w[0] for w in batch], batch[0][1], batch[0][2])
            except Exception as exc:  # each waiting question learns why
                results = [exc] * len(batch)
            for (_, _, _, future), result in zip(batch, results):
                if future.done():  # its question was cancelled (the budget, another's error)
                    continue
                if isinstance(result, Exception):
                    future.set_exception(result)
                else:
                    future.set_result(result)
