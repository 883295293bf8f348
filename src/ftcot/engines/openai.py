"""The `openai` engine: each method's student served by an OpenAI-compatible server (`vllm serve
<run>/students/ft_cot/best --served-model-name ft_cot`, llama.cpp's server, TGI) under the name
`evaluate.models` gives it, asked on the completions endpoint through the teacher's client (its retries with
backoff, bounded concurrency and one-line errors), with the method's stop strings. Every completion is stored
the moment it arrives (<run>/eval/store.sqlite, as the teacher's are), so a rerun after a fault asks only for
the rest."""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
from collections.abc import Callable
from pathlib import Path

import openai

from ftcot.config import RunConfig
from ftcot.engines import weights_stamp
from ftcot.errors import UserError
from ftcot.methods import Stop
from ftcot.students.load import load_tokenizer
from ftcot.teachers.openai_api import MalformedResponse, OpenAITeacher
from ftcot.teachers.store import CompletionStore, Generation


class OpenAIEngine:
    def __init__(self, cfg: RunConfig, served: str, tokenizer, kind, store: Path, weights: str):
        self.cfg, self.served, self.tokenizer, self.kind, self.store_path = cfg.evaluate, served, tokenizer, kind, store
        # Completions of another served model, of another server (another build or quantization of the student
        # under the same name: its address, hashed, since one can hold a token), of another base student, or of
        # this one before it was retrained, are never mixed up.
        server = hashlib.sha256((cfg.evaluate.base_url or "").encode()).hexdigest()[:12]
        self.identity = f"student:{served}@{server}:{cfg.student.model}:{weights}"
        self.parameters = None  # the server's to know
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
        params = {
            "max_tokens": max_new_tokens,
            "temperature": temperature,
            **({"stop": list(stop.strings)} if stop.strings else {}),
            **({"seed": seed} if temperature > 0 else {}),
        }
        store = CompletionStore(self.store_path)
        try:
            return asyncio.run(self._all(store, prompts, params, k, stop, progress))
        except (openai.APIError, MalformedResponse, json.JSONDecodeError) as exc:  # retries exhausted
            why = exc.__cause__ if isinstance(exc, openai.APIConnectionError) and exc.__cause__ else exc
            raise UserError(
                f"the student server at {self.cfg.base_url} ({self.served}) failed after "
                f"{self.cfg.max_attempts} attempts: {type(why).__name__}: {why}"
            ) from None
        finally:
            store.close()

    async def _all(self, store: CompletionStore, prompts: list[str], params: dict, k: int, stop: Stop, progress):
        c = self.cfg
        client = OpenAITeacher(
            self.served,
            c.base_url,
            c.api_key_env,
            "completions",
            c.concurrency,
            timeout_s=c.timeout_s,
            max_attempts=c.max_attempts,
            honour_n=c.n_per_request,
            role="evaluate",
        )

        async def one(prompt: str) -> list[str]:
            got = [store.get(self.identity, prompt, params, j) for j in range(k)]

            def arrived(j: int, generation: Generation) -> None:
                got[j] = generation
                self.tokens += generation.completion_tokens or 0

            missing = [j for j, g in enumerate(got) if g is None]
            await store.ask_missing(self.identity, prompt, params, missing, client.sample, arrived=arrived)
            if progress is not None:
                progress(1)
            return [stop.end(g.text) for g in got]

        try:
            return list(await asyncio.gather(*(one(p) for p in prompts)))
        finally:
            await client.aclose()  # inside the loop that owns its connections

    def close(self) -> None:
        pass


def check(cfg: RunConfig, method: str) -> None:
    """The served model's name and the key, which need no model."""
    if cfg.evaluate.models.get(method) is None:
        raise UserError(
            f"evaluate.models names no served model for {method} (engine openai): add "
            f"'{method}: <the name the server gives it>'"
        )
    if cfg.evaluate.api_key_env and not os.environ.get(cfg.evaluate.api_key_env):
        raise UserError(
            f"the environment variable {cfg.evaluate.api_key_env} (evaluate.api_key_env) is not set; "
            "for a server that needs no key, set evaluate.api_key_env: null"
        )


def open_engine(cfg: RunConfig, method: str, weights: str | None, folder: Path, batch_size: int) -> OpenAIEngine:
    check(cfg, method)
    served = cfg.evaluate.models[method]
    # The prompt format and the tokenizer are the student's: from the trained folder where there is one.
    tokenizer, kind = load_tokenizer(cfg.student, weights if weights and Path(weights).is_dir() else None)
    folder.mkdir(parents=True, exist_ok=True)
    return OpenAIEngine(cfg, served, tokenizer, kind, folder / "store.sqlite", weights_stamp(weights))
