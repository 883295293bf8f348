"""ftcot's log: the `ftcot` logger, on stderr through rich. Stages and students log what they do at INFO (one line
a record, never wrapped, so a log file reads like the terminal did), why a stage reruns at DEBUG; progress bars
draw on the same console, so log lines land above a bar instead of through it. `ftcot --quiet` shows warnings
only (and no bars), `ftcot --verbose` debug lines too. A program that embeds ftcot sets the logger's level or
replaces its handler as with any logger."""

from __future__ import annotations

import logging
import os

from rich.console import Console
from rich.logging import RichHandler

console = Console(stderr=True, soft_wrap=True)  # resolves sys.stderr at each write: pytest's capture sees it


class _LineHandler(RichHandler):
    """rich's handler without its time/level/path table: the message alone, as one line."""

    def render(self, *, record, traceback, message_renderable):
        return message_renderable


def launched_as_rank_0() -> bool:
    """Whether the environment makes this process rank 0 or the only one: torchrun starts every rank with RANK
    set, before any process group exists. Under torchrun rank 0 alone logs."""
    return os.environ.get("RANK", "0").strip() in ("", "0")


log = logging.getLogger("ftcot")
if not log.handlers:
    log.addHandler(_LineHandler(console=console, markup=False, highlighter=None, keywords=[]))
    log.handlers[0].addFilter(lambda record: launched_as_rank_0())
    log.setLevel(logging.INFO)
    log.propagate = False  # a root handler someone else configured would print each line twice


def set_verbosity(quiet: bool = False, verbose: bool = False) -> None:
    log.setLevel(logging.WARNING if quiet else logging.DEBUG if verbose else logging.INFO)


def show_progress() -> bool:
    """Whether progress bars draw: not under --quiet."""
    return log.isEnabledFor(logging.INFO)
