"""The plain files every stage leaves: JSON and JSONL read with one-line errors that name the file and line,
and written atomically (a temp file beside the target, then a rename, so a kill never leaves a half-written
artifact); and the lock that keeps a second process out of a stage's folder."""

from __future__ import annotations

import fcntl
import json
import os
import sys
import tempfile
import time
from collections.abc import Iterable
from pathlib import Path

from ftcot.errors import UserError


def read_text(path: Path, what: str = "file") -> str:
    """A text file's content; a missing, unreadable or non-UTF-8 file is a one-line error."""
    try:
        return path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise UserError(f"{what} {path} does not exist") from None
    except UnicodeDecodeError:
        raise UserError(f"{what} {path} is not UTF-8 text") from None
    except OSError as exc:  # a folder, no permission
        raise UserError(f"cannot read {what} {path}: {exc.strerror or exc}") from None


def _parse(text: str, where: str, whole_file: bool):
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise UserError(
            f"{where}:{exc.lineno}: malformed JSON: {exc.msg}"
            if whole_file
            else f"{where}: malformed JSON line: {exc.msg}"
        ) from None
    except RecursionError:
        raise UserError(f"{where}: JSON nested too deeply") from None


def read_json(path: Path):
    return _parse(read_text(path), str(path), whole_file=True)


def jsonl_lines(path: Path) -> list[tuple[int, dict]]:
    """(line number, object) for each non-blank line of a JSONL file."""
    rows = []
    for lineno, line in enumerate(read_text(path).split("\n"), 1):  # not splitlines: U+2028 may be in a string
        if line.strip():
            row = _parse(line, f"{path}:{lineno}", whole_file=False)
            if not isinstance(row, dict):
                raise UserError(f"{path}:{lineno}: malformed record: not a JSON object")
            rows.append((lineno, row))
    return rows


def read_jsonl(path: Path) -> list[dict]:
    return [row for _, row in jsonl_lines(path)]


def write_text(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    # A temp file of this process's own: two processes writing one file (config.yaml, from two stages run
    # side by side) must not rename each other's half-written copy.
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".part")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def write_json(obj, path: Path) -> None:
    write_text(path, json.dumps(obj, indent=1, ensure_ascii=False) + "\n")


def write_jsonl(rows: Iterable[dict], path: Path) -> None:
    write_text(path, "".join(json.dumps(row, ensure_ascii=False) + "\n" for row in rows))


_held: dict[Path, int] = {}  # folders this process holds, with the lock file's descriptor


def hold_folder(folder: Path) -> None:
    """Make this process the only ftcot process writing `folder` (a stage's output in a run folder) until it
    exits: an OS lock (flock) on folder/.lock, which the OS releases when the process ends, however it ends.
    A second process gets a one-line error naming the holder."""
    folder = folder.resolve()
    if folder in _held:
        return
    try:
        folder.mkdir(parents=True, exist_ok=True)
        fd = os.open(folder / ".lock", os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW, 0o644)  # never through a link
    except OSError as exc:
        raise UserError(f"cannot use {folder}: {exc.strerror or exc}") from None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        holder = os.pread(fd, 4096, 0).decode("utf-8", "replace").strip() or "another process"
        os.close(fd)
        raise UserError(f"{folder} is in use by {holder}; wait for it to end or stop it") from None
    os.ftruncate(fd, 0)
    command = " ".join(["ftcot", *sys.argv[1:]])
    os.pwrite(fd, f"pid {os.getpid()} (`{command}`, since {time.strftime('%Y-%m-%d %H:%M:%S')})\n".encode(), 0)
    _held[folder] = fd


def folder_holder(folder: Path) -> str | None:
    """Who holds `folder` (hold_folder's lock) now, or None when no other process does; reads, creates nothing."""
    folder = folder.resolve()
    if folder in _held:
        return None
    try:
        fd = os.open(folder / ".lock", os.O_RDONLY | os.O_NOFOLLOW)
    except (FileNotFoundError, NotADirectoryError):  # never held
        return None
    except OSError as exc:
        raise UserError(f"cannot use {folder}: {exc.strerror or exc}") from None
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)  # released at once, as the descriptor closes
    except BlockingIOError:
        return os.pread(fd, 4096, 0).decode("utf-8", "replace").strip() or "another process"
    finally:
        os.close(fd)
    return None
