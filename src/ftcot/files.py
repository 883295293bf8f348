"""Atomic writes of the plain files every stage leaves: a temp file beside the target, then a rename, so a
kill never leaves a half-written artifact."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Iterable


def write_text(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".part")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)


def write_json(obj, path: Path) -> None:
    write_text(path, json.dumps(obj, indent=1, ensure_ascii=False) + "\n")


def write_jsonl(rows: Iterable[dict], path: Path) -> None:
    write_text(path, "".join(json.dumps(row, ensure_ascii=False) + "\n" for row in rows))
