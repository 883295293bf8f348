"""The persistent completion store: every teacher completion is committed to SQLite (WAL) the moment it
arrives, keyed by (teacher identity, prompt, sampling parameters, k), so a rerun never pays for it again and a
killed run loses nothing that was stored.
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path

from ftcot.errors import UserError

SCHEMA = """
CREATE TABLE IF NOT EXISTS completions (
    key TEXT PRIMARY KEY,
    teacher TEXT NOT NULL,
    prompt TEXT NOT NULL,
    params TEXT NOT NULL,
    k INTEGER NOT NULL,
    text TEXT NOT NULL,
    finish_reason TEXT,
    prompt_tokens INTEGER,
    completion_tokens INTEGER,
    latency_s REAL,
    created REAL NOT NULL,
    reasoning TEXT
);
CREATE TABLE IF NOT EXISTS batches (
    batch_id TEXT PRIMARY KEY,
    teacher TEXT NOT NULL,
    state TEXT NOT NULL,
    created REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS spending (
    id INTEGER PRIMARY KEY,
    held_prompt INTEGER NOT NULL,
    held_completion INTEGER NOT NULL,
    prompt_tokens INTEGER,
    completion_tokens INTEGER,
    created REAL NOT NULL
);
"""


@dataclass(frozen=True)
class Generation:
    """One sampled continuation of a prompt, as a backend returns it."""

    text: str
    finish_reason: str | None = None
    prompt_tokens: int | None = None
    completion_tokens: int | None = None
    latency_s: float | None = None
    reasoning: str | None = None  # what a reasoning model returned beside its text (reasoning_content)


def completion_key(teacher: str, prompt: str, params: dict, k: int) -> str:
    blob = json.dumps([teacher, prompt, params, k], sort_keys=True, ensure_ascii=False)
    return hashlib.sha256(blob.encode("utf-8", "surrogatepass")).hexdigest()


def sent_from(params: dict, first: int) -> dict:
    """The parameters of a request for samples first, first+1, ...: the seed moved on by first, so that a server
    that returns fewer samples than asked (or ignores n) is not asked for the samples it already gave."""
    return params | {"seed": params["seed"] + first} if "seed" in params and first else dict(params)


class CompletionStore:
    def __init__(self, path: Path, read_only: bool = False):
        self.path = path
        try:
            if read_only:  # a dry run: the store as it is, or an empty one in memory; nothing is written
                exists = path.is_file() and path.stat().st_size > 0  # an empty file is a store not yet begun
                self.db = sqlite3.connect(f"file:{path}?mode=ro" if exists else ":memory:", uri=True)
            else:
                exists = True
                path.parent.mkdir(parents=True, exist_ok=True)
                # Autocommit: each insert is durable on its own; WAL lets readers run beside the writer.
                self.db = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
                self.db.execute("PRAGMA journal_mode=WAL")
                self.db.execute("PRAGMA synchronous=NORMAL")
            tables = {row[0] for row in self.db.execute("SELECT name FROM sqlite_master WHERE type='table'")}
            columns = {row[1] for row in self.db.execute("PRAGMA table_info(completions)")}
            if "completions" in tables and ("spending" not in tables or "reasoning" not in columns):
                self.db.close()
                raise UserError(
                    f"{path} was made by an earlier ftcot (before its spending ledger): this one cannot count what "
                    "it cost against a budget; teach with the ftcot that made it, or move it away to start a new store"
                )
            if not read_only or not exists:
                self.db.executescript(SCHEMA)
            self.db.execute("SELECT key, text FROM completions LIMIT 1").fetchall()
        except sqlite3.DatabaseError as exc:
            raise UserError(
                f"{path} is not a readable completion store ({exc}): move it away to start a new one"
            ) from None

    def close(self) -> None:
        self.db.close()

    def get(self, teacher: str, prompt: str, params: dict, k: int) -> Generation | None:
        row = self.db.execute(
            "SELECT text, finish_reason, prompt_tokens, completion_tokens, latency_s, reasoning "
            "FROM completions WHERE key=?",
            (completion_key(teacher, prompt, params, k),),
        ).fetchone()
        return Generation(*row) if row else None

    async def ask_missing(
        self,
        teacher: str,
        prompt: str,
        params: dict,
        missing: list[int],
        sample: Callable[[str, int, dict], Awaitable[list[Generation]]],
        n_per_request: bool = True,
        before_request: Callable[[], None] = lambda: None,
        arrived: Callable[[int, Generation], None] = lambda k, generation: None,
    ) -> None:
        """Ask `sample` (a teacher's, or a served student's client) for completions `missing` of prompt, all in one
        request (n) where n_per_request, else one a request, the seed moved on for each (sent_from); a server that
        answers fewer than asked (llama.cpp gives one) is asked again for the rest. Each completion is stored the
        moment it arrives, and `arrived` gets what the store then holds (the first one stored wins)."""
        while missing:
            before_request()  # the collector's budget check: it raises to send nothing more
            generations = await sample(prompt, len(missing) if n_per_request else 1, sent_from(params, missing[0]))
            if not generations:  # asked again, it would answer none again: forever
                raise UserError(f"{teacher} answered a request for completions of a prompt with none")
            for k, generation in zip(missing, generations):
                if not self.put(teacher, prompt, params, k, generation):
                    generation = self.get(teacher, prompt, params, k)
                arrived(k, generation)
            missing = missing[len(generations) :]

    def put(self, teacher: str, prompt: str, params: dict, k: int, generation: Generation) -> bool:
        """Store a completion; False when that key was already stored (the first one wins)."""
        try:
            cursor = self.db.execute(
                "INSERT OR IGNORE INTO completions (key, teacher, prompt, params, k, text, finish_reason, prompt_tokens,"
                " completion_tokens, latency_s, created, reasoning) VALUES (?,?,?,?,?,?,?,?,?,?,?,?)",
                (
                    completion_key(teacher, prompt, params, k),
                    teacher,
                    prompt,
                    json.dumps(params, sort_keys=True),
                    k,
                    generation.text,
                    generation.finish_reason,
                    generation.prompt_tokens,
                    generation.completion_tokens,
                    generation.latency_s,
                    time.time(),
                    generation.reasoning,
                ),
            )
        except (sqlite3.Error, UnicodeEncodeError) as exc:  # a full disk; a prompt that is not text
            raise UserError(f"cannot store a completion in {self.path}: {exc}") from None
        return cursor.rowcount == 1

    # The spending ledger, in tokens (valued at the price known when a budget is checked, so that requests made
    # before a price was set count too): every request's worst case is written before it is sent (held) and its
    # usage when it returns, so that a budget bounds the folder's spending over every invocation, and a request
    # a kill left unsettled counts at its worst case.

    def hold(self, prompt_tokens: int, completion_tokens: int) -> int:
        return self._write(
            "INSERT INTO spending (held_prompt, held_completion, created) VALUES (?, ?, ?)",
            (prompt_tokens, completion_tokens, time.time()),
        ).lastrowid

    def charge(self, row: int | None, prompt_tokens: int, completion_tokens: int) -> None:
        """Settle a held row at the tokens it used, or (row None) add tokens that no request held."""
        if row is None:
            self._write(
                "INSERT INTO spending (held_prompt, held_completion, prompt_tokens, completion_tokens, "
                "created) VALUES (0, 0, ?, ?, ?)",
                (prompt_tokens, completion_tokens, time.time()),
            )
        else:
            self._write(
                "UPDATE spending SET prompt_tokens=?, completion_tokens=? WHERE id=?",
                (prompt_tokens, completion_tokens, row),
            )

    def spent(self) -> tuple[int, int]:
        """The (prompt, completion) tokens the folder's requests used, those never settled at their worst case."""
        row = self.db.execute(
            "SELECT COALESCE(SUM(COALESCE(prompt_tokens, held_prompt)), 0), "
            "COALESCE(SUM(COALESCE(completion_tokens, held_completion)), 0) FROM spending"
        ).fetchone()
        return int(row[0]), int(row[1])

    def unsettled(self) -> tuple[int, int, int, float | None]:
        """The requests held and not settled: how many, their worst-case (prompt, completion) tokens, and when
        the first was held. Only the process holding the teacher folder writes holds, so once none does (it was
        killed), these are requests it had sent and whose answers never came."""
        row = self.db.execute(
            "SELECT COUNT(*), COALESCE(SUM(held_prompt), 0), COALESCE(SUM(held_completion), 0), "
            "MIN(created) FROM spending WHERE prompt_tokens IS NULL"
        ).fetchone()
        return row[0], row[1], row[2], row[3]

    def mean_request(self) -> tuple[int, tuple[int, int] | None]:
        """How many requests of this folder the ledger has settled (their responses arrived, with the usage the
        server billed), and their mean (prompt, completion) tokens, rounded up. The ledger, not the completions
        table: a kill can fall between a response's usage and its completions being stored."""
        requests, prompt_tokens, completion_tokens = self.db.execute(
            "SELECT COUNT(*), SUM(prompt_tokens), SUM(completion_tokens) FROM spending "
            "WHERE prompt_tokens IS NOT NULL AND completion_tokens IS NOT NULL"
        ).fetchone()
        if not requests:
            return 0, None
        return requests, (-(-prompt_tokens // requests), -(-completion_tokens // requests))

    def settle_holds(self, prompt_tokens: int, completion_tokens: int) -> None:
        """Count every unsettled hold at these tokens (teach --settle-holds, for holds of a process that is gone)."""
        self._write(
            "UPDATE spending SET prompt_tokens=?, completion_tokens=? WHERE prompt_tokens IS NULL",
            (prompt_tokens, completion_tokens),
        )

    def _write(self, sql: str, args: tuple) -> sqlite3.Cursor:
        try:
            return self.db.execute(sql, args)
        except sqlite3.Error as exc:  # a full disk
            raise UserError(f"cannot record spending in {self.path}: {exc}") from None

    def count(self) -> int:
        return self.db.execute("SELECT COUNT(*) FROM completions").fetchone()[0]

    def ingested(self, batch_id: str, teacher: str, prompt_tokens: int, completion_tokens: int) -> None:
        """A batch's results are stored: charge what it used and mark it, in one transaction (once)."""
        try:
            self.db.execute("BEGIN")
            self.charge(None, prompt_tokens, completion_tokens)
            self.save_batch(batch_id, teacher, "ingested")
            self.db.execute("COMMIT")
        except BaseException:
            self.db.execute("ROLLBACK")
            raise

    def save_batch(self, batch_id: str, teacher: str, state: str) -> None:
        self.db.execute(
            "INSERT INTO batches VALUES (?,?,?,?) ON CONFLICT(batch_id) DO UPDATE SET state=excluded.state",
            (batch_id, teacher, state, time.time()),
        )

    def open_batches(self, teacher: str) -> list[str]:
        rows = self.db.execute(
            "SELECT batch_id FROM batches WHERE teacher=? AND state!='ingested' ORDER BY created", (teacher,)
        )
        return [r[0] for r in rows]


def rationale_of(generation: Generation, cfg) -> str:
    """Step 1's rationale: its text, or (teacher.rationale_from: reasoning) the reasoning beside it."""
    if cfg.rationale_from == "content":
        return generation.text
    if not generation.reasoning:
        raise UserError(
            f"teacher {cfg.model} returned no reasoning beside its text (rationale_from: reasoning): "
            "its server must return reasoning_content or reasoning, or set teacher.strip_think for "
            "<think> blocks"
        )
    return generation.reasoning
