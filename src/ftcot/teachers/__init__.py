"""Teachers: the protocol a live teacher follows, and the backends that produce completions (live ones:
openai_api.py, hf.py; recorded ones: recorded.py over sources.py)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Protocol

from ftcot.config import TeacherConfig
from ftcot.errors import UserError
from ftcot.tasks import Task
from ftcot.teachers.recorded import RecordedTeacher
from ftcot.teachers.sources import recorded_completions

if TYPE_CHECKING:
    from ftcot.teachers.cost import Spending
    from ftcot.teachers.store import Generation


class Teacher(Protocol):
    """A live teacher as the collector (teachers/collect.py) asks it: continuations of one prompt at a time,
    concurrently; the collector stores each before it asks for more."""

    identity: str  # part of every store key (teacher_identity): another model's completions are never mixed in
    model: str
    requests: int  # sent so far (the hf teacher: batched generate calls)
    max_attempts: int  # tries of one request before the collection stops (a failure is one line)
    # Whether each request goes through the ledger as it is sent (its worst case held against the budget, then
    # settled): collect gives such a teacher its `spending`; another's completions are charged as they return.
    through_ledger: bool
    spending: Spending | None

    async def sample(self, prompt: str, n: int, params: dict) -> list[Generation]:
        """Up to n continuations of prompt under params (a server may return fewer than asked)."""
        ...

    async def aclose(self) -> None:
        """Closes connections, inside the event loop that opened them."""
        ...


def teacher_identity(backend: str, model: str, endpoint: str = "completions") -> str:
    """Part of every store key: completions of another model or endpoint are never mixed up."""
    return f"openai:{endpoint}:{model}" if backend == "openai" else f"{backend}:{model}"


def check_teacher(cfg: TeacherConfig, budget: float | None, price, dry_run: bool) -> None:
    """Teacher settings that cannot work together, one line each, before anything is asked or written."""
    if (cfg.adaptive or cfg.rationalize) and cfg.backend == "recorded":
        raise UserError(
            "teacher.adaptive and teacher.rationalize ask the teacher again; the recorded backend can "
            "only replay: use the openai or hf backend"
        )
    if budget is None or dry_run:
        return
    if cfg.backend != "openai":
        raise UserError(
            f"a budget is for a paid API (backend: openai); the {cfg.backend} backend costs nothing "
            "per request: remove max_cost"
        )
    if cfg.batch:
        raise UserError(
            "a budget cannot be held with teacher.batch: true (the Batch API bills a whole batch "
            "after the fact); collect without batch, or without a budget"
        )
    if price is None:
        raise UserError(
            f"a budget is set but the price of {cfg.model} is unknown: add it under teacher.prices "
            f"({cfg.model}: {{input: USD per million prompt tokens, output: ...}})"
        )


def make_live_teacher(cfg: TeacherConfig) -> Teacher:
    """An OpenAI-compatible or local transformers teacher, from its config."""
    # Each backend's module is imported when it is chosen: it brings its own SDK (openai; torch).
    if cfg.backend == "openai":
        from ftcot.teachers.openai_api import OpenAITeacher

        return OpenAITeacher(
            cfg.model,
            cfg.base_url,
            cfg.api_key_env,
            cfg.endpoint,
            cfg.concurrency,
            cfg.requests_per_minute,
            cfg.tokens_per_minute,
            cfg.timeout_s,
            cfg.max_attempts,
            honour_n=cfg.n_per_request,
            max_tokens_param=cfg.max_tokens_param,
            strip_think=cfg.strip_think,
        )
    if cfg.backend == "hf":
        from ftcot.teachers.hf import HFTeacher

        return HFTeacher(cfg.model, cfg.device, cfg.trust_remote_code)
    raise ValueError(cfg.backend)


def make_recorded_teacher(
    cfg: TeacherConfig, task: Task, split: str, data_root: Path
) -> tuple[RecordedTeacher, list[dict]]:
    """The recorded teacher over every configured source, and each source's report."""
    records, reports = recorded_completions(cfg, task, split, data_root)
    return RecordedTeacher(records, cfg.on_missing), reports
