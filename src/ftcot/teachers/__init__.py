"""Teachers: the completion record type and the backends that produce completions."""

from __future__ import annotations

from pathlib import Path

from ftcot.config import TeacherConfig
from ftcot.teachers.recorded import RecordedTeacher
from ftcot.teachers.records import read_records, recorded_teacher_path


def teacher_identity(backend: str, model: str, endpoint: str = "completions") -> str:
    """Part of every store key: completions of another model or endpoint are never mixed up."""
    return f"openai:{endpoint}:{model}" if backend == "openai" else f"{backend}:{model}"


def make_live_teacher(cfg: TeacherConfig):
    """An OpenAI-compatible or local transformers teacher, from its config."""
    # Each backend's module is imported when it is chosen: it brings its own SDK (openai; torch).
    if cfg.backend == "openai":
        from ftcot.teachers.openai_api import OpenAITeacher

        return OpenAITeacher(cfg.model, cfg.base_url, cfg.api_key_env, cfg.endpoint, cfg.concurrency,
                             cfg.requests_per_minute, cfg.tokens_per_minute, cfg.timeout_s, cfg.max_attempts,
                             honour_n=cfg.n_per_request, max_tokens_param=cfg.max_tokens_param,
                             strip_think=cfg.strip_think)
    if cfg.backend == "hf":
        from ftcot.teachers.hf import HFTeacher

        return HFTeacher(cfg.model, cfg.device, cfg.trust_remote_code)
    raise ValueError(cfg.backend)


def make_recorded_teacher(cfg: TeacherConfig, task: str, data_root: Path):
    path = Path(cfg.records) if cfg.records else recorded_teacher_path(task, data_root)
    return RecordedTeacher(read_records(path), cfg.on_missing)
