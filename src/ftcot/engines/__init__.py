"""Engines: how a student's continuations are generated, kept apart from what is asked of it (the task and the
method), as lm-evaluation-harness keeps its models apart from its tasks. Every engine answers one question:
continuations of these prompts, greedy or sampled (k, temperature, seed), each ending at the model's EOS, at a
method's stop rule or after a token budget. Evaluation and self-consistency go through it; validation during
training uses the `hf` engine in-process.

`evaluate.engine` names the module here that builds one (`open_engine`): an engine is added as one module and
one literal in ftcot.config.ENGINES.
"""

from __future__ import annotations

import hashlib
import importlib
import json
from collections.abc import Callable
from pathlib import Path
from typing import Protocol

from ftcot.config import RunConfig
from ftcot.methods import Stop
from ftcot.tasks.prompts import ModelKind


class Engine(Protocol):
    kind: ModelKind  # the student's prompt format
    parameters: int | None  # the student's size, where the engine knows it
    tokens: int  # new tokens generated so far
    tokenizer: object  # the student's (the calculator counts the tokens of its rounds with it)

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
        """k continuations of each prompt (greedy at temperature 0, where k is 1): each ends at EOS, where
        `stop` says (its method's rule, its stop strings), or after max_new_tokens."""
        ...

    def close(self) -> None: ...


def open_engine(cfg: RunConfig, method: str, weights: str | None, folder: Path, batch_size: int) -> Engine:
    """The configured engine over a student: `weights` is a trained student's folder, None the base model;
    `folder` is where the engine may keep what it makes (a converted model, received completions)."""
    module = importlib.import_module(f"ftcot.engines.{cfg.evaluate.engine}")
    return module.open_engine(cfg, method, weights, folder, batch_size)


def check_engine(cfg: RunConfig, method: str) -> None:
    """What the configured engine needs for a method that can be checked without a model (a package, a served
    model's name, a key): a one-line error before any model is loaded or, on a new machine, converted."""
    module = importlib.import_module(f"ftcot.engines.{cfg.evaluate.engine}")
    check = getattr(module, "check", None)
    if check is not None:
        check(cfg, method)


def weights_stamp(folder: str | None) -> str:
    """Which weights a student folder holds (its files' names, sizes and times, the model card aside: evaluation
    rewrites it): what an engine keeps for a student (a conversion, received completions) is remade when the
    student is retrained, and only then."""
    if not folder or not Path(folder).is_dir():
        return "base"
    files = sorted(
        (p.relative_to(folder).as_posix(), p.stat().st_size, p.stat().st_mtime_ns)
        for p in Path(folder).rglob("*")
        if p.is_file() and p.suffix != ".md"
    )
    return hashlib.sha256(json.dumps(files).encode()).hexdigest()[:16]
