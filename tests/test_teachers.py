import asyncio
import json
import os
import signal
import sqlite3
import subprocess
import sys
import threading
import time

import minidata
import pytest
from helpers import invoke_cli, run_cli, run_config

from ftcot.config import Price, TeacherConfig, load_config
from ftcot.errors import UserError
from ftcot.loopback import OpenAIServer, default_responder
from ftcot.pipeline import context
from ftcot.stages.teach import run as teach
from ftcot.tasks import load_task
from ftcot.teachers.collect import collect
from ftcot.teachers.cost import Spending, cost_of, worst_case_tokens
from ftcot.teachers.openai_api import OpenAITeacher
from ftcot.teachers.recorded import RecordedTeacher
from ftcot.teachers.records import read_records, read_shared_jsonl, recorded_teacher_path
from ftcot.teachers.store import CompletionStore

TRIGGER = "Therefore, the answer (Yes or No) is"


@pytest.fixture
def server():
    s = OpenAIServer().start()
    yield s
    s.stop()


@pytest.fixture
def samples(data_dir):
    return load_task("coin_flip", data_dir).split_samples("train")[:6]


def _collect(
    server, samples, tmp_path, faults=(), num_samples=3, n_per_request=True, dispatched=None, **teacher_kwargs
):
    server.faults.extend(faults)
    cfg = TeacherConfig(
        backend="openai",
        model="test-model",
        num_samples=num_samples,
        n_per_request=n_per_request,
        rationale={"temperature": 0.7, "max_tokens": 16, "seed": 5},
    )
    kwargs = dict(timeout_s=5.0, backoff_s=0.01, max_attempts=6) | teacher_kwargs
    teacher = OpenAITeacher("test-model", server.base_url, None, honour_n=n_per_request, **kwargs)
    if dispatched is not None:
        _record_dispatches(teacher, dispatched)
    store = CompletionStore(tmp_path / "store.sqlite")
    try:
        outcome = collect(teacher, store, cfg, TRIGGER, samples, Spending(None))
        return outcome, store.count()
    finally:
        store.close()


def _record_dispatches(teacher, dispatched: list) -> None:
    """Note (time, worst-case tokens) as each request leaves the client: the moment the rate limits govern.
    (Arrival times at the server add the machine's scheduling noise, which a loaded CI machine makes large.)"""
    create = teacher.client.completions.create

    async def timed(**kwargs):
        dispatched.append(
            (time.monotonic(), sum(worst_case_tokens(kwargs["prompt"], kwargs["n"], kwargs.get("max_tokens") or 0)))
        )
        return await create(**kwargs)

    teacher.client.completions.create = timed


def test_collects_diverse_rationales_with_n_per_request_and_never_pays_twice(server, samples, tmp_path):
    outcome, stored = _collect(server, samples, tmp_path)
    # One step-1 request per question (n=3), then one step-2 request per rationale.
    assert len(server.completion_requests()) == 6 + 6 * 3
    # Step-1 requests by their prompt, not their arrival order: a step-2 request may overtake the last step 1.
    step1 = [r for r in server.completion_requests() if r["prompt"].endswith("step by step.")]
    assert [r["n"] for r in step1] == [3] * 6 and len({r["prompt"] for r in step1}) == 6
    assert stored == 6 * 3 * 2 and len(outcome.records) == 18
    by_question = {}
    for r in outcome.records:
        by_question.setdefault(r.sample_index, set()).add(r.reasoning_completion)
        assert r.answer_prompt == r.reasoning_prompt + r.reasoning_completion + " \n" + TRIGGER
        assert r.answer_completion == " yes." and r.answer_finish_reason == "stop"
        assert r.usage["completion_tokens"] > 0 and r.params["rationale"]["temperature"] == 0.7
    assert all(len(v) == 3 for v in by_question.values())  # three distinct rationales per question
    # A rerun sends nothing and returns the same records.
    again, _ = _collect(server, samples, tmp_path)
    assert len(server.completion_requests()) == 24
    assert again.records == outcome.records


def test_server_that_ignores_n_gets_one_request_per_sample_with_distinct_seeds(samples, tmp_path):
    server = OpenAIServer(honour_n=False).start()
    try:
        outcome, stored = _collect(server, samples[:2], tmp_path, n_per_request=True)
    finally:
        server.stop()
    step1 = [r for r in server.completion_requests() if r["prompt"].endswith("step by step.")]
    assert len(step1) == 2 * 3 and stored == 2 * 3 * 2 and len(outcome.records) == 6
    assert sorted(r["seed"] for r in step1) == [5, 5, 6, 6, 7, 7]


@pytest.mark.parametrize(
    "fault",
    [
        ("status", 429, {"Retry-After": "0.3"}),
        ("status", 500),
        ("status", 503),
        ("malformed",),
        ("drop",),
        ("delay", 1.5),
    ],
)
def test_each_fault_costs_exactly_one_retry(server, samples, tmp_path, fault):
    start = time.perf_counter()
    outcome, stored = _collect(server, samples[:2], tmp_path, faults=[fault], timeout_s=0.5)
    assert len(server.completion_requests()) == 2 + 2 * 3 + 1
    assert stored == 12 and len(outcome.records) == 6
    if fault[0] == "status" and fault[1] == 429:
        assert time.perf_counter() - start >= 0.3  # Retry-After was honoured


def test_server_that_dies_and_comes_back(samples, tmp_path):
    server = OpenAIServer().start()
    port = server.port
    server.stop()
    revived = OpenAIServer(port=port)
    timer = threading.Timer(1.0, revived.start)
    timer.start()
    try:
        outcome, stored = _collect(revived, samples[:2], tmp_path, backoff_s=0.2, max_attempts=30)
    finally:
        timer.join()
        revived.stop()
    assert stored == 12 and len(outcome.records) == 6
    assert len(revived.completion_requests()) == 8  # refused connections never reached it


def test_non_retryable_error_and_exhausted_retries_are_one_line_errors(server, samples, tmp_path):
    server.faults.append(("status", 401))
    with pytest.raises(UserError, match="rejected .* HTTP 401"):
        _collect(server, samples[:1], tmp_path)
    server.faults.extend([("status", 500)] * 3)
    with pytest.raises(UserError, match="failed after 3 attempts: InternalServerError"):
        _collect(server, samples[:1], tmp_path, max_attempts=3)


def _fresh(samples, count):
    return [s.__class__(s.task, 1000 + i, f"{s.question} #{i}", s.answer) for i, s in enumerate(samples * count)]


def _most_in_a_window(times: list[float], amounts: list[float], period: float) -> float:
    """The largest sum of amounts that arrived within any `period`-second window (open at its start)."""
    events = sorted(zip(times, amounts))
    return max(sum(a for u, a in events if t - period < u <= t) for t, _ in events)


def test_requests_per_minute_hold_in_every_window(server, samples, tmp_path):
    # A 1-second window stands for the minute: 5 requests in any second, never the next second's 5 at once
    # (a bucket that refills lets a burst through on top of the steady rate).
    dispatched = []
    _collect(
        server,
        _fresh(samples, 2),
        tmp_path,
        num_samples=1,
        concurrency=32,
        requests_per_minute=5,
        rate_period_s=1.0,
        dispatched=dispatched,
    )
    times = [t for t, _ in dispatched]
    assert len(times) == len(server.arrivals) == 24
    assert _most_in_a_window(times, [1] * 24, 0.95) <= 5
    assert max(times) - min(times) >= 4 * 0.95  # 24 requests: 5 windows at least


def test_tokens_per_minute_hold_in_every_window(server, samples, tmp_path):
    dispatched = []
    _collect(
        server,
        _fresh(samples, 1),
        tmp_path,
        num_samples=2,
        tokens_per_minute=1500,
        rate_period_s=1.0,
        dispatched=dispatched,
    )
    assert len(dispatched) == len(server.completion_requests()) == 6 + 12
    assert _most_in_a_window(*zip(*dispatched), 0.95) <= 1500
    with pytest.raises(UserError, match="more than teacher.tokens_per_minute"):
        _collect(server, _fresh(samples, 1)[:1], tmp_path / "small", tokens_per_minute=50)


def test_a_question_asked_twice_is_paid_once_and_records_equal_the_store(data_dir, tmp_path):
    """Duplicate questions (MultiArith has 12) share one request even while it is in flight, on a server that
    samples: every record's rationale and answer are the ones the store holds."""
    import uuid

    server = OpenAIServer(latency_s=0.05, responder=lambda prompt, i: f" {uuid.uuid4().hex} yes.").start()
    try:
        base = load_task("coin_flip", data_dir).split_samples("train")[:5]
        twice = base + [s.__class__(s.task, 500 + s.sample_index, s.question, s.answer) for s in base]
        (tmp_path / "a").mkdir()
        outcome, stored = _collect(server, twice, tmp_path / "a", num_samples=2, n_per_request=False)
    finally:
        server.stop()
    assert len(server.completion_requests()) == stored == 5 * 2 * 2  # rationales and answers, each paid once
    db = sqlite3.connect(tmp_path / "a" / "store.sqlite")
    held = dict(((prompt, k), text) for prompt, k, text in db.execute("SELECT prompt, k, text FROM completions"))
    db.close()
    assert len(outcome.records) == 20 and len(held) == 20
    for r in outcome.records:
        assert held[r.reasoning_prompt, r.completion_index] == r.reasoning_completion
        assert held[r.answer_prompt, r.completion_index] == r.answer_completion


@pytest.mark.parametrize(
    "body",
    [
        (b"<html><body>502 Bad Gateway</body></html>", "text/html"),
        (b'{"id": "x", "object": "text_completion", "choices": []}',),
        (b'{"id": "x", "object": "text_completion", "choices": [{"index": 0, "finish_reason": "stop"}]}',),
        (
            b'{"id": "x", "object": "chat.completion", "choices": [{"index": 0, "finish_reason": "stop", '
            b'"message": {"role": "assistant", "content": null}}]}',
            "application/json",
            "chat",
        ),
    ],
    ids=["html", "empty choices", "no text", "chat content null"],
)
def test_answers_that_are_not_completions_end_in_one_line(server, samples, tmp_path, body):
    server.faults.extend([("body", *body[:2])] * 3)
    with pytest.raises(UserError, match="failed after 3 attempts: MalformedResponse"):
        _collect(server, samples[:1], tmp_path, max_attempts=3, endpoint=body[2] if len(body) > 2 else "completions")
    assert len(server.completion_requests()) == 3


def test_a_lone_surrogate_in_a_completion_is_stored_as_a_replacement_character(samples, tmp_path):
    server = OpenAIServer(responder=lambda prompt, i: " heads \ud800 up. yes.").start()
    try:
        outcome, stored = _collect(server, samples[:2], tmp_path, num_samples=1)
    finally:
        server.stop()
    assert stored == 4 and all("\ufffd" in r.reasoning_completion for r in outcome.records)


def test_budget_stops_cleanly_and_a_rerun_finishes(server, data_dir, tmp_path):
    cfg = _priced_config(server, data_dir, tmp_path, max_questions=20, concurrency=1)
    first = teach(context(cfg), max_cost=1.0)  # each request costs ~$0.05 at this price, ~$0.45 at its worst case
    assert first.stopped_by_budget and 0 < first.collected < 20
    assert 1.0 - 0.5 <= first.cost_usd <= 1.0  # stops once the next request's worst case does not fit
    assert first.requests == len(server.completion_requests())
    before = len(server.completion_requests())
    dry = teach(context(cfg), dry_run=True)
    second = teach(context(cfg))
    assert second.collected == 20 and not second.stopped_by_budget
    assert len(server.completion_requests()) - before == second.requests == dry["requests"]


def test_dry_run_counts_requests_tokens_and_cost(server, data_dir, tmp_path):
    cfg = run_config(
        tmp_path,
        data_dir,
        teacher={
            "backend": "openai",
            "model": "gpt-4o-mini",
            "base_url": server.base_url,
            "api_key_env": None,
            "num_samples": 4,
            "max_questions": 10,
        },
    )
    plan = teach(context(cfg), dry_run=True)
    assert plan["requests"] == 10 + 40 and plan["completion_tokens"] == 10 * 4 * 128 + 40 * 32
    assert plan["cost_usd"] == pytest.approx((plan["prompt_tokens"] * 0.15 + plan["completion_tokens"] * 0.6) / 1e6)
    assert server.completion_requests() == []


def test_batch_api_fills_the_store_and_resumes_from_batch_id(server, data_dir, tmp_path):
    cfg = run_config(
        tmp_path,
        data_dir,
        teacher={
            "backend": "openai",
            "model": "m",
            "base_url": server.base_url,
            "api_key_env": None,
            "num_samples": 2,
            "max_questions": 5,
            "batch": True,
            "batch_poll_s": 0.01,
            "rationale": {"temperature": 0.7},
        },
    )
    summary = teach(context(cfg))
    assert summary.collected == 10
    live = [r for r in server.requests if r[0] == "POST" and r[1].endswith("completions")]
    batched = [r for r in server.requests if r[0] == "BATCH"]
    assert live == [] and len(batched) == 5 + 10 and len(server.batches) == 2
    # A run killed after submitting resumes that batch rather than submitting again.
    from ftcot.teachers.batch import _submit, batch_line

    store = CompletionStore(tmp_path / "other.sqlite")
    teacher = OpenAITeacher("m", server.base_url, None)
    asyncio.run(_submit(teacher, store, [batch_line(teacher, "Q: fresh\nA: Let's think step by step.", {}, [0])]))
    store.close()
    assert len(server.batches) == 3
    from ftcot.teachers.batch import run_batch

    store = CompletionStore(tmp_path / "other.sqlite")
    assert asyncio.run(run_batch(OpenAITeacher("m", server.base_url, None), store, [], 0.01)) == 1
    assert store.open_batches(teacher.identity) == [] and len(server.batches) == 3
    store.close()


def test_sigkill_mid_run_then_resume_loses_and_duplicates_nothing(tmp_path, data_dir):
    server = OpenAIServer(latency_s=0.05).start()
    config = _teach_config(
        tmp_path,
        data_dir,
        base_url=server.base_url,
        api_key_env=None,
        num_samples=2,
        max_questions=40,
        concurrency=4,
        n_per_request=False,
        rationale={"temperature": 0.7},
    )
    db = tmp_path / "run" / "teacher" / "store.sqlite"
    try:
        proc = subprocess.Popen(
            [sys.executable, "-m", "ftcot.cli", "teach", str(config)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )

        def stored():
            if not db.exists():
                return {}
            try:
                with sqlite3.connect(db) as con:
                    return dict(con.execute("SELECT key, text FROM completions").fetchall())
            except sqlite3.OperationalError:  # the killed process had made the file but not yet its table
                return {}

        deadline = time.time() + 60
        while len(stored()) < 40 and time.time() < deadline:
            time.sleep(0.05)
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
        before = stored()
        requests_first = _quiet_count(server)
        assert 40 <= len(before) < 160
        result = run_cli("teach", config)
        assert result.returncode == 0, result.stderr
        after = stored()
        summary = json.loads((tmp_path / "run" / "teacher" / "summary.json").read_text())
    finally:
        server.stop()
    assert len(after) == 40 * 2 * 2  # every rationale and answer, each once (the key is the primary key)
    assert all(after[k] == v for k, v in before.items())  # nothing stored before the kill was lost or changed
    # The resumed run asked only for what was missing (in-flight requests at the kill were lost, not stored).
    assert summary["requests"] == len(after) - len(before)
    assert len(server.completion_requests()) - requests_first == summary["requests"]
    assert summary["collected"] == 80


def test_recorded_teacher_replays_shared_records_and_reports_missing(data_dir, tmp_path):
    records = read_shared_jsonl(recorded_teacher_path("coin_flip", data_dir))
    samples = load_task("coin_flip", data_dir).split_samples("train")
    got, missing = RecordedTeacher(records).replay(samples, 1)
    assert [r.sample_index for r in got] == [s.sample_index for s in samples] and missing == []
    partial = RecordedTeacher([r for r in records if r.sample_index != samples[0].sample_index], "skip")
    got, missing = partial.replay(samples, 1)
    assert missing == [samples[0].sample_index] and len(got) == len(samples) - 1
    strict = RecordedTeacher([r for r in records if r.sample_index != samples[0].sample_index], "error")
    with pytest.raises(
        UserError, match=f"no recorded teacher completion for coin_flip sample {samples[0].sample_index}"
    ):
        strict.replay(samples, 1)


def test_recorded_stage_writes_records_that_read_back(data_dir, tmp_path):
    cfg = run_config(tmp_path, data_dir)
    summary = teach(context(cfg))
    train = minidata.counts("coin_flip")[1]
    assert summary.collected == train and summary.requests == 0
    records = read_records(tmp_path / "run" / "teacher" / "completions.jsonl")
    assert len(records) == train and records[0].model == "text-davinci-002"
    # The teacher's own output replays as a recorded teacher too.
    again = RecordedTeacher(records).replay(load_task("coin_flip", data_dir).split_samples("train"), 1)[0]
    assert again == records


def _teach_config(tmp_path, data_dir, **teacher):
    return run_config(
        tmp_path,
        data_dir,
        as_file="teach.yaml",
        teacher={"backend": "openai", "model": "m", "max_questions": 3, **teacher},
    )


@pytest.mark.parametrize(
    "teacher",
    [
        {"base_url": "http://user:sk-SECRET123@127.0.0.1:9/v1"},
        {"base_url": "http://127.0.0.1:9/v1?api_key=sk-SECRET123"},
        {"api_key_env": "sk-SECRET123"},  # the key pasted where the variable's name belongs
    ],
)
def test_secrets_in_the_config_are_refused_without_repeating_them(tmp_path, data_dir, teacher):
    config = _teach_config(tmp_path, data_dir, **teacher)
    for command in ("config", "teach"):
        result = invoke_cli(command, config)
        assert result.returncode == 2 and len(result.stderr.strip().splitlines()) == 1, result.stderr
        assert "SECRET123" not in result.stderr + result.stdout and "teacher." in result.stderr
    assert not (tmp_path / "run").exists()


def test_an_unset_key_variable_or_an_unpriced_budget_stops_before_any_request(server, tmp_path, data_dir):
    unset = _teach_config(tmp_path, data_dir, base_url=server.base_url, api_key_env="FTCOT_TEST_UNSET_KEY")
    result = invoke_cli("teach", unset)
    assert result.returncode == 2 and "FTCOT_TEST_UNSET_KEY" in result.stderr and "api_key_env: null" in result.stderr
    assert not (tmp_path / "run" / "teacher" / "store.sqlite").exists()
    unpriced = _teach_config(tmp_path, data_dir, base_url=server.base_url, api_key_env=None, max_cost=0.0001)
    result = invoke_cli("teach", unpriced)
    assert result.returncode == 2 and "teacher.prices" in result.stderr and len(result.stderr.splitlines()) == 1
    for bad in ("-1", "nan"):
        result = invoke_cli("teach", unpriced, "--max-cost", bad)
        assert result.returncode == 2 and "--max-cost" in result.stderr
    assert server.completion_requests() == []
    keyless = _teach_config(tmp_path, data_dir, base_url=server.base_url, api_key_env=None)
    assert invoke_cli("teach", keyless).returncode == 0 and len(server.completion_requests()) == 3 + 3


def test_the_key_reaches_no_file_and_no_output(server, tmp_path, data_dir):
    key = "sk-ftcot-test-" + os.urandom(8).hex()
    config = _teach_config(tmp_path, data_dir, base_url=server.base_url, api_key_env="FTCOT_TEST_KEY")
    outputs = [run_cli(command, config, env={"FTCOT_TEST_KEY": key}) for command in ("config", "teach")]
    assert all(r.returncode == 0 for r in outputs), outputs[-1].stderr
    assert len(server.completion_requests()) == 6
    assert all(key not in r.stdout + r.stderr for r in outputs)
    written = [p for p in (tmp_path / "run").rglob("*") if p.is_file()]
    assert written and all(key.encode() not in p.read_bytes() for p in written)


def _server_cost(server, price_per_token: float) -> float:
    """What the server billed, by its own count of tokens (the usage it reported for every request it answered)."""
    total = 0
    for body in server.completion_requests():
        n = body.get("n") or 1
        total += len(body["prompt"].split()) + sum(len(default_responder(body["prompt"], i).split()) for i in range(n))
    return total * price_per_token


def test_a_budget_holds_at_high_concurrency_and_is_used_up(tmp_path, data_dir):
    """$10,000 per million tokens, 32 requests in flight, 60 questions x D=2: a cap of 10% of the full cost is
    never exceeded by the server's own count, the run does not stop far short of it, exits 3, and a rerun
    with a raised cap goes on from there without paying again."""
    price = 10_000 / 1e6
    teacher = {
        "base_url": None,
        "api_key_env": None,
        "model": "dear",
        "num_samples": 2,
        "max_questions": 60,
        "concurrency": 32,
        "rationale": {"temperature": 0.7, "max_tokens": 64},
        "prices": {"dear": {"input": 10_000, "output": 10_000}},
    }
    full_server = OpenAIServer(latency_s=0.02).start()
    try:
        (tmp_path / "full").mkdir()
        full = _teach_config(tmp_path / "full", data_dir, **{**teacher, "base_url": full_server.base_url})
        assert run_cli("teach", full).returncode == 0
        full_cost = _server_cost(full_server, price)
    finally:
        full_server.stop()
    server = OpenAIServer(latency_s=0.02).start()
    try:
        config = _teach_config(tmp_path, data_dir, **{**teacher, "base_url": server.base_url})
        cap = round(0.1 * full_cost, 4)
        result = run_cli("teach", config, "--max-cost", cap)
        assert result.returncode == 3 and "stopped at the budget" in result.stderr, result.stderr
        spent = _server_cost(server, price)
        worst = (
            max(
                len(b["prompt"].encode()) + 16 + (b.get("n") or 1) * b["max_tokens"]
                for b in server.completion_requests()
            )
            * price
        )
        assert spent <= cap and spent >= cap - worst, (spent, cap, worst)
        summary = json.loads((tmp_path / "run" / "teacher" / "summary.json").read_text())
        assert summary["cost_usd"] == pytest.approx(spent) and summary["stopped_by_budget"]
        assert run_cli("curate", config).returncode == 2  # partial teacher output is not trained on
        before = len(server.completion_requests())
        result = run_cli("teach", config, "--max-cost", 10 * full_cost)
        assert result.returncode == 0, result.stderr
        assert len(server.completion_requests()) - before < len(full_server.completion_requests())
        assert _server_cost(server, price) == pytest.approx(full_cost)  # nothing was paid twice
    finally:
        server.stop()


def test_the_cap_bounds_the_run_folders_spending_over_invocations_and_a_kill(tmp_path, data_dir):
    """A cap written in the config, 32 requests in flight: a run killed mid-way, then the same command twice,
    then --max-cost with the same cap: what the server billed in all never passes the cap; each stop says what
    the folder spent; a raised cap goes on without paying anything twice."""
    price, cap = 10_000 / 1e6, 20.0
    server = OpenAIServer(latency_s=0.05).start()
    config = _dear_teacher(tmp_path, data_dir, server, max_cost=cap)
    db = tmp_path / "run" / "teacher" / "store.sqlite"
    try:
        proc = subprocess.Popen(
            [sys.executable, "-m", "ftcot.cli", "teach", str(config)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.time() + 60
        while len(server.completion_requests()) < 8 and time.time() < deadline and proc.poll() is None:
            time.sleep(0.01)
        os.kill(proc.pid, signal.SIGKILL)  # mid-flight: requests held, sent, some answered, none settled
        proc.wait()
        for again in (run_cli("teach", config), run_cli("teach", config), run_cli("teach", config, "--max-cost", cap)):
            assert again.returncode == 3 and "this run folder has spent $" in again.stderr, again.stderr
            assert _server_cost(server, price) <= cap
        with sqlite3.connect(db) as con:
            ledger = (
                price
                * con.execute(
                    "SELECT SUM(COALESCE(prompt_tokens, held_prompt) + "
                    "COALESCE(completion_tokens, held_completion)) FROM spending"
                ).fetchone()[0]
            )
        assert _server_cost(server, price) <= ledger <= cap  # the ledger never counts less than was billed
        asked = len(server.completion_requests())
        assert run_cli("teach", config, "--max-cost", 10_000).returncode == 0
        prompts = [(b["prompt"], b.get("seed")) for b in server.completion_requests()]
        stored = sqlite3.connect(db).execute("SELECT COUNT(*) FROM completions").fetchone()[0]
        assert stored == 60 * 2 * 2 and len(prompts) - asked <= stored  # nothing stored was asked for again
    finally:
        server.stop()


def _dear_teacher(tmp_path, data_dir, server, **teacher):
    """A teacher priced so high that each request's worst case is dollars: 60 questions x D=2, 32 at once, one
    sample a request, so that a kill finds many requests in flight."""
    return _teach_config(
        tmp_path,
        data_dir,
        base_url=server.base_url,
        api_key_env=None,
        model="dear",
        num_samples=2,
        max_questions=60,
        concurrency=32,
        n_per_request=False,
        rationale={"temperature": 0.7, "max_tokens": 64},
        prices={"dear": {"input": 10_000, "output": 10_000}},
        **teacher,
    )


def _ledger(db):
    """The ledger's settled tokens, and its unsettled holds: how many, and their worst-case tokens."""
    with sqlite3.connect(db) as con:
        return con.execute(
            "SELECT COALESCE(SUM(prompt_tokens + completion_tokens), 0), COUNT(*) - COUNT(prompt_tokens),"
            " COALESCE(SUM(CASE WHEN prompt_tokens IS NULL THEN held_prompt + held_completion END), 0)"
            " FROM spending"
        ).fetchone()


def _quiet_count(server, quiet_s: float = 1.0) -> int:
    """The server's count of completion requests once it has not changed for quiet_s: what a killed client had
    written to its socket before it died is still read and answered after the kill."""
    count, since = len(server.completion_requests()), time.time()
    while time.time() - since < quiet_s:
        time.sleep(0.05)
        if (now := len(server.completion_requests())) != count:
            count, since = now, time.time()
    return count


def test_holds_a_kill_left_are_shown_kept_by_default_and_settled_on_request(tmp_path, data_dir):
    """32 requests in flight when the run is SIGKILLed: their holds stay at their worst case. The dry run and the
    budget stop say how many, how much, since when and what to do; by default the cap holds (nothing is sent);
    --settle-holds counts them at the mean cost of the answered requests and goes on, the ledger then counts
    what was billed for the answered requests plus the settled holds, and what the server billed in all stays
    within the cap plus the bound it states."""
    price = 10_000 / 1e6
    server = OpenAIServer(latency_s=0.2).start()
    config = _dear_teacher(tmp_path, data_dir, server)
    db = tmp_path / "run" / "teacher" / "store.sqlite"
    try:
        proc = subprocess.Popen(
            [sys.executable, "-m", "ftcot.cli", "teach", str(config)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.time() + 120
        while time.time() < deadline and proc.poll() is None:
            try:
                billed, in_flight, _ = _ledger(db)
            except sqlite3.OperationalError:  # the store or its ledger not made yet
                billed, in_flight = 0, 0
            if billed and in_flight >= 16:
                break
            time.sleep(0.01)
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
        billed, held, held_tokens = _ledger(db)
        assert billed and held, (billed, held)  # answered requests, and requests the kill left in flight
        spent, held_usd = billed * price, held_tokens * price
        cap = spent + held_usd + 0.01  # less than any request's worst case is left
        asked = _quiet_count(server)  # a request the killed process sent may still be arriving
        shown = f"{held} request(s) in flight when their run was killed hold ${held_usd:.4f} at their worst case since"

        dry = run_cli("teach", config, "--dry-run", "--max-cost", cap)
        assert dry.returncode == 0 and shown in " ".join(dry.stderr.split()), dry.stderr
        assert "`ftcot teach --settle-holds` counts them at the mean cost" in " ".join(dry.stderr.split())
        default = run_cli("teach", config, "--max-cost", cap)  # the hard guarantee: it stops at once
        assert default.returncode == 3 and "stopped at the budget" in default.stderr and shown in default.stderr
        assert len(server.completion_requests()) == asked and _ledger(db) == (billed, held, held_tokens)

        with sqlite3.connect(db) as con:  # the mean of the answered requests, by the server's own count
            answered = con.execute("SELECT prompt, text FROM completions").fetchall()
        mean = [-(-sum(len(t.split()) for t in texts) // len(answered)) for texts in zip(*answered)]
        settled = run_cli("teach", config, "--max-cost", cap, "--settle-holds")
        assert settled.returncode in (0, 3), settled.stderr
        assert "settled (--settle-holds)" in settled.stderr
        summary = json.loads((tmp_path / "run" / "teacher" / "summary.json").read_text())
        new = server.completion_requests()[asked:]
    finally:
        server.stop()
    assert new and summary["requests"] == len(new)  # it went on
    s = summary["settled_holds"]
    assert s["requests"] == held and [s["prompt_tokens_each"], s["completion_tokens_each"]] == mean
    assert s["settled_usd"] == pytest.approx(held * sum(mean) * price)
    assert s["may_exceed_usd"] == pytest.approx(held_usd - s["settled_usd"])
    new_billed = sum(len(b["prompt"].split()) + len(default_responder(b["prompt"], 0).split()) for b in new)
    total, unsettled, _ = _ledger(db)
    assert unsettled == 0 and total == billed + held * sum(mean) + new_billed
    assert total * price <= cap  # as the ledger counts, the cap held
    assert _server_cost(server, price) <= cap + s["may_exceed_usd"]  # and within the stated bound as billed


def test_a_dry_run_tells_a_running_teachs_holds_from_a_killed_ones(server, data_dir, tmp_path, capsys):
    config = _teach_config(
        tmp_path,
        data_dir,
        base_url=server.base_url,
        api_key_env=None,
        model="dear",
        prices={"dear": {"input": 1000, "output": 1000}},
    )
    assert run_cli("teach", config).returncode == 0
    store = CompletionStore(tmp_path / "run" / "teacher" / "store.sqlite")
    store.hold(100, 50)  # as a killed run leaves a request it had sent
    store.close()
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import sys; from pathlib import Path; "
            "from ftcot.files import hold_folder; hold_folder(Path(sys.argv[1])); print(flush=True); "
            "sys.stdin.read()",
            str(tmp_path / "run" / "teacher"),
        ],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        holder.stdout.readline()  # it holds the teacher folder
        cfg = load_config(config)
        running = teach(context(cfg), dry_run=True)
        assert running["dead_holds"] is None
        assert f"the requests in flight of pid {holder.pid} " in " ".join(capsys.readouterr().err.split())
    finally:
        holder.stdin.close()
        holder.wait()
    gone = teach(context(cfg), dry_run=True)
    assert gone["dead_holds"]["requests"] == 1
    assert gone["dead_holds"]["held_usd"] == pytest.approx(cost_of(Price(input=1000, output=1000), 100, 50))
    err = " ".join(capsys.readouterr().err.split())
    assert "1 request(s) in flight when their run was killed hold $0.1500" in err and "--settle-holds" in err


def test_a_request_waiting_for_its_rate_window_holds_nothing_in_the_ledger(server, tmp_path):
    """The ledger holds a request only as it is sent: one killed while it waited would leave no hold."""
    teacher = OpenAITeacher(
        "test-model", server.base_url, None, requests_per_minute=1, rate_period_s=600.0, max_attempts=1
    )
    store = CompletionStore(tmp_path / "store.sqlite")
    teacher.spending = Spending(None, ledger=store)
    rows = "SELECT COUNT(*), COUNT(prompt_tokens) FROM spending"

    async def main():
        try:
            await teacher.sample("q0", 1, {"max_tokens": 8})
            waiting = asyncio.ensure_future(teacher.sample("q1", 1, {"max_tokens": 8}))
            while not teacher.rpm.turn.locked():  # q1 is in its rate window's wait
                await asyncio.sleep(0)
            during = store.db.execute(rows).fetchone()
            waiting.cancel()
            await asyncio.gather(waiting, return_exceptions=True)
            return during
        finally:
            await teacher.aclose()

    try:
        assert asyncio.run(main()) == (1, 1)  # q0's, settled; none for q1
        assert store.db.execute(rows).fetchone() == (1, 1) and len(server.completion_requests()) == 1
        assert teacher.spending.outstanding == 0 and teacher.spending.reserved == 0
    finally:
        store.close()


def test_a_store_made_before_the_ledger_is_refused_in_one_line_and_nothing_is_sent(server, data_dir, tmp_path):
    """An earlier ftcot's store (no spending ledger, or no reasoning column) cannot be counted against a cap: the
    teacher says so in one line, for a run and for a dry run, before any request."""
    cfg = _priced_config(server, data_dir, tmp_path)
    teach(context(cfg))
    db = tmp_path / "run" / "teacher" / "store.sqlite"
    with sqlite3.connect(db) as con:
        con.execute("DROP TABLE spending")  # as an older ftcot left it
    cfg.teacher.max_questions = 12  # two questions more to ask
    before = len(server.completion_requests())
    for dry_run in (True, False):
        with pytest.raises(
            UserError, match=r"store.sqlite was made by an earlier ftcot \(before its spending ledger\)"
        ):
            teach(context(cfg), dry_run=dry_run, max_cost=100.0)
    assert len(server.completion_requests()) == before


def test_the_ledger_counts_unpriced_batch_and_gateway_spending_for_a_later_cap(server, data_dir, tmp_path):
    """Tokens go to the ledger whatever the path: a model without a price, the Batch API, a 504 after which the
    server may have billed (at its worst case); a later run with a price and a cap counts them all."""
    server.faults.append(("status", 504))
    unpriced = run_config(
        tmp_path,
        data_dir,
        teacher={
            "backend": "openai",
            "model": "free",
            "base_url": server.base_url,
            "api_key_env": None,
            "num_samples": 1,
            "max_questions": 4,
            "concurrency": 1,
        },
    )
    teach(context(unpriced))
    batched = unpriced.model_copy(deep=True)
    batched.teacher.max_questions, batched.teacher.batch, batched.teacher.batch_poll_s = 8, True, 0.01
    teach(context(batched))
    store = CompletionStore(tmp_path / "run" / "teacher" / "store.sqlite")
    prompt_tokens, completion_tokens = store.spent()
    store.close()
    first = server.completion_requests()[0]
    gateway = len(first["prompt"].encode()) + 16 + first["max_tokens"]  # the 504's worst case
    answered = sum(
        len(b["prompt"].split()) + sum(len(default_responder(b["prompt"], i).split()) for i in range(b.get("n") or 1))
        for b in server.completion_requests()[1:]
    )  # the live ones, then the batched
    assert any(r[0] == "BATCH" for r in server.requests)
    assert prompt_tokens + completion_tokens == answered + gateway
    priced = batched.model_copy(deep=True)
    priced.teacher.batch, priced.teacher.max_questions = False, 12
    priced.teacher.prices = {"free": Price(input=1000.0, output=1000.0)}
    before = len(server.completion_requests())
    again = teach(context(priced), max_cost=(prompt_tokens + completion_tokens) * 1000.0 / 1e6)
    assert again.stopped_by_budget and len(server.completion_requests()) == before


def test_a_request_without_an_answer_is_charged_its_worst_case(server, data_dir, tmp_path):
    """A dropped connection may still be billed: the budget counts its worst case, so the cap still holds."""
    server.faults.append(("drop",))
    cfg = _priced_config(server, data_dir, tmp_path, max_questions=4, concurrency=1, max_cost=100.0)
    summary = teach(context(cfg))
    first = server.completion_requests()[0]
    worst = (len(first["prompt"].encode()) + 16 + first["max_tokens"]) * 1000.0 / 1e6
    assert summary.collected == 4 and summary.unconfirmed_usd == pytest.approx(worst)
    answered = (summary.prompt_tokens + summary.completion_tokens) * 1000.0 / 1e6
    assert summary.cost_usd == pytest.approx(answered + worst)
    assert summary.cost_usd >= _server_cost(server, 1000.0 / 1e6)  # never less than the server could bill


def test_a_second_process_on_the_same_run_folder_exits_2_naming_the_holder(data_dir, tmp_path):
    server = OpenAIServer(latency_s=0.3).start()
    config = _teach_config(
        tmp_path, data_dir, base_url=server.base_url, api_key_env=None, num_samples=1, max_questions=6, concurrency=1
    )
    first = subprocess.Popen(
        [sys.executable, "-m", "ftcot.cli", "teach", str(config)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        lock = tmp_path / "run" / "teacher" / ".lock"
        deadline = time.monotonic() + 60
        while not (lock.is_file() and lock.read_text()) and time.monotonic() < deadline:
            time.sleep(0.05)
        second = run_cli("teach", config)
        assert first.wait(timeout=120) == 0, first.stderr.read()
    finally:
        first.kill()
        server.stop()
    assert second.returncode == 2 and second.stderr.count("\n") == 1, second.stderr
    assert f"in use by pid {first.pid} (`ftcot teach {config}`" in second.stderr
    assert len(server.completion_requests()) == 12  # the first run's 6 questions x 2 steps, nothing twice
    records = read_records(tmp_path / "run" / "teacher" / "completions.jsonl")
    assert len(records) == 6
    third = run_cli("teach", config)  # the lock went with the process that held it
    assert third.returncode == 0 and len(server.completion_requests()) == 12


def _priced_config(server, data_dir, tmp_path, **teacher):
    return run_config(
        tmp_path,
        data_dir,
        teacher={
            "backend": "openai",
            "model": "priced",
            "base_url": server.base_url,
            "api_key_env": None,
            "num_samples": 1,
            "max_questions": 10,
            "prices": {"priced": {"input": 1000.0, "output": 1000.0}},
            **teacher,
        },
    )


@pytest.mark.parametrize(
    "usage",
    [
        None,
        {"prompt_tokens": -(10**6), "completion_tokens": -(10**6)},
        {"prompt_tokens": 10**30, "completion_tokens": "many"},
    ],
    ids=["missing", "negative", "absurd"],
)
def test_a_server_that_does_not_say_what_it_used_is_charged_its_worst_case(server, data_dir, tmp_path, usage):
    server.edit_answer = lambda answer, body: (
        answer | {"usage": usage} | {"choices": [c | {"finish_reason": {"odd": 1}} for c in answer["choices"]]}
    )
    summary = teach(context(_priced_config(server, data_dir, tmp_path)), max_cost=1.0)
    bodies = server.completion_requests()
    worst = [
        cost_of(Price(input=1000.0, output=1000.0), *worst_case_tokens(b["prompt"], 1, b["max_tokens"])) for b in bodies
    ]
    assert summary.stopped_by_budget and summary.cost_usd <= 1.0
    assert summary.cost_usd == pytest.approx(sum(worst), abs=1e-5)  # each request at its worst case
    assert summary.collected < 10


def test_a_budget_of_zero_on_a_finished_run_is_not_a_budget_stop(server, data_dir, tmp_path):
    cfg = _priced_config(server, data_dir, tmp_path)
    assert not teach(context(cfg)).stopped_by_budget
    again = teach(context(cfg), max_cost=0.0)
    assert not again.stopped_by_budget and again.requests == 0 and again.collected == 10


def test_requests_that_waited_on_the_budget_still_keep_the_rate_window(samples):
    """The rate window is taken right before a request goes out, so requests held back by the budget do not
    arrive together when it frees up."""
    server = OpenAIServer().start()
    server.faults.extend([("delay", 2.0)] * 3)
    teacher = OpenAITeacher(
        "test-model", server.base_url, None, concurrency=32, requests_per_minute=2, rate_period_s=1.0, max_attempts=1
    )
    teacher.spending = Spending(Price(input=1e6, output=1e6), max_cost=416)  # three worst cases at a time
    dispatched = []
    _record_dispatches(teacher, dispatched)

    async def main():
        try:
            await asyncio.gather(*(teacher.sample(f"q{i}", 1, {"max_tokens": 100}) for i in range(8)))
        finally:
            await teacher.aclose()

    try:
        asyncio.run(main())
    finally:
        server.stop()
    assert len(dispatched) == len(server.arrivals) == 8
    assert _most_in_a_window([t for t, _ in dispatched], [1] * 8, 0.95) <= 2


def _chat_config(server, data_dir, tmp_path, **teacher):
    return run_config(
        tmp_path,
        data_dir,
        teacher={
            "backend": "openai",
            "model": "thinker",
            "endpoint": "chat",
            "base_url": server.base_url,
            "api_key_env": None,
            "num_samples": 1,
            "max_questions": 3,
            **teacher,
        },
    )


def test_a_reasoning_model_gets_max_completion_tokens_where_it_rejects_max_tokens(server, data_dir, tmp_path):
    server.reject_max_tokens = True
    with pytest.raises(UserError, match="HTTP 400: .*max_completion_tokens"):
        teach(context(_chat_config(server, data_dir, tmp_path)))
    refused = len(server.completion_requests())
    summary = teach(context(_chat_config(server, data_dir, tmp_path / "b", max_tokens_param="max_completion_tokens")))
    bodies = server.completion_requests()[refused:]
    assert summary.collected == 3 and len(bodies) == 6
    assert all("max_tokens" not in b and b["max_completion_tokens"] in (128, 32) for b in bodies)


@pytest.mark.parametrize("how", ["reasoning_content", "reasoning", "think"])
def test_a_reasoning_models_reasoning_is_kept_and_can_be_the_rationale(server, data_dir, tmp_path, how):
    def answer_with_reasoning(answer, body):
        for choice in answer["choices"]:
            message = choice["message"]
            if body["messages"][-1]["content"].endswith("Let's think step by step."):
                thought = "Heads, flipped twice, is heads."
                if how == "think":
                    message["content"] = f"<think>{thought}</think> The coin is heads up."
                else:
                    message[how] = thought
        return answer

    server.edit_answer = answer_with_reasoning
    cfg = _chat_config(server, data_dir, tmp_path, rationale_from="reasoning", strip_think=how == "think")
    teach(context(cfg))
    records = read_records(tmp_path / "run" / "teacher" / "completions.jsonl")
    assert len(records) == 3
    for r in records:
        assert r.reasoning_completion == r.step1_reasoning == "Heads, flipped twice, is heads."
        assert r.answer_prompt.endswith("Heads, flipped twice, is heads. \n" + TRIGGER)
    db = sqlite3.connect(tmp_path / "run" / "teacher" / "store.sqlite")
    kept = db.execute("SELECT text, reasoning FROM completions WHERE reasoning IS NOT NULL").fetchall()
    db.close()
    assert len(kept) == 3 and all(text and "<think>" not in text for text, _ in kept)  # the answer text, beside it
    plain = _chat_config(server, data_dir, tmp_path / "plain")  # rationale_from: content (the default)
    server.edit_answer = None
    with pytest.raises(UserError, match="returned no reasoning"):
        teach(
            context(
                plain.model_copy(update={"teacher": plain.teacher.model_copy(update={"rationale_from": "reasoning"})})
            )
        )


def test_a_backend_that_answers_no_completion_is_one_error_not_a_loop(tmp_path):
    """A server answering a request with no choices is asked for the rest again; with none at all, never ending."""
    store = CompletionStore(tmp_path / "store.sqlite")
    asked = []

    async def sample(prompt, n, params):
        asked.append(n)
        return []

    try:
        with pytest.raises(UserError, match="answered a request for completions of a prompt with none"):
            asyncio.run(store.ask_missing("t", "p", {"max_tokens": 8}, [0, 1], sample))
        assert asked == [2]
    finally:
        store.close()
