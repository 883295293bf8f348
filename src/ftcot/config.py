"""YAML run configuration, validated with pydantic: an unknown key or bad value is one line naming it."""

from __future__ import annotations

from pathlib import Path
from typing import TypeVar

import yaml
from pydantic import BaseModel, ConfigDict, ValidationError, field_validator

from ftcot.errors import UserError

Model = TypeVar("Model", bound=BaseModel)


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class RunConfig(Strict):
    task: str
    split: str = "default"
    data_dir: str | None = None  # default: $FTCOT_DATA_DIR, else ~/.cache/ftcot/data
    run_dir: str = "runs/default"

    @field_validator("task")
    @classmethod
    def _known_task(cls, value: str) -> str:
        from ftcot.tasks import TASKS

        if value not in TASKS:
            raise ValueError(f"unknown task {value!r}; known tasks: {', '.join(TASKS)}")
        return value


def load_config(path: str | Path, model: type[Model] = RunConfig) -> Model:
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise UserError(f"config file {path} does not exist") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise UserError(f"cannot read config {path}: {exc.strerror if isinstance(exc, OSError) else exc}") from None
    try:
        raw = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f":{mark.line + 1}" if mark is not None else ""
        raise UserError(f"{path}{where}: not valid YAML: {getattr(exc, 'problem', None) or exc}") from None
    if not isinstance(raw, dict):
        raise UserError(f"{path}: a config must be a mapping of keys to values")
    try:
        return model.model_validate(raw)
    except ValidationError as exc:
        first = exc.errors()[0]
        key = ".".join(str(p) for p in first["loc"])
        message = "unknown key" if first["type"] == "extra_forbidden" else first["msg"]
        raise UserError(f"{path}: {key}: {message}") from None
