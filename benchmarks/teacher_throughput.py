"""Teacher collection throughput against a loopback OpenAI-compatible server with a fixed 200 ms latency.

Measures completions (HTTP requests) per second of ftcot's collector at concurrency C, against the bound
C / 0.2 s, and a sequential one-request-at-a-time client like the paper's, side by side in one run.
Writes the table to docs/benchmarks.md.

    .venv/bin/python benchmarks/teacher_throughput.py

`--concurrency 2 --seconds 1 --sequential 3 --out FILE` is CI's smoke run (tests/test_benchmarks.py).
"""

from __future__ import annotations

import argparse
import re
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import openai

from ftcot.config import TeacherConfig
from ftcot.log import set_verbosity
from ftcot.tasks import Sample
from ftcot.teachers.collect import collect
from ftcot.teachers.cost import Spending
from ftcot.teachers.openai_api import OpenAITeacher
from ftcot.teachers.store import CompletionStore

ROOT = Path(__file__).resolve().parents[1]

LATENCY = 0.2
SECONDS_PER_LEVEL = 15.0


def questions(n: int, tag: str) -> list[Sample]:
    return [
        Sample("coin_flip", i, f"A coin is heads up. Person {tag}-{i} flips the coin. Is it heads up?", "no")
        for i in range(n)
    ]


def ftcot_rate(base_url: str, concurrency: int, seconds: float = SECONDS_PER_LEVEL) -> float:
    bound = concurrency / LATENCY
    samples = questions(max(8, int(bound * seconds / 2)), f"c{concurrency}")  # 2 requests each
    cfg = TeacherConfig(backend="openai", model="bench", concurrency=concurrency)
    teacher = OpenAITeacher("bench", base_url, None, concurrency=concurrency)
    with tempfile.TemporaryDirectory() as tmp:
        store = CompletionStore(Path(tmp) / "store.sqlite")
        outcome = collect(teacher, store, cfg, "Therefore, the answer is", samples, Spending(None))
        store.close()
    return outcome.requests / outcome.wall_s


def sequential_rate(base_url: str, requests: int = 25) -> float:
    client = openai.OpenAI(api_key="none", base_url=base_url, max_retries=0)
    start = time.perf_counter()
    for i in range(requests):
        client.completions.create(
            model="bench", prompt=f"Q: sequential {i}\nA: Let's think step by step.", max_tokens=128
        )
    return requests / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--concurrency", type=int, nargs="+", default=[1, 8, 32, 64])
    parser.add_argument("--seconds", type=float, default=SECONDS_PER_LEVEL, help="about how long each level runs")
    parser.add_argument("--sequential", type=int, default=25, help="requests of the sequential client")
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "benchmarks.md")
    args = parser.parse_args()
    set_verbosity(quiet=True)  # the collector's bar would draw over the table
    # The server runs in its own process so that it does not share the client's interpreter lock.
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = subprocess.Popen(
        [sys.executable, "-m", "ftcot.loopback", str(port), str(LATENCY)],
        stdout=subprocess.PIPE,
        text=True,
    )
    base_url = server.stdout.readline().strip()
    try:
        seq = sequential_rate(base_url, args.sequential)
        rows = []
        for c in args.concurrency:
            rate = ftcot_rate(base_url, c, args.seconds)
            rows.append((c, rate, c / LATENCY))
            print(
                f"C={c:>2}: {rate:7.1f} completions/s, bound {c / LATENCY:6.1f}/s ({rate / (c / LATENCY):.0%}), "
                f"{rate / seq:5.1f}x sequential",
                flush=True,
            )
    finally:
        server.terminate()
        server.wait()
    print(f"sequential one-at-a-time client: {seq:.2f} completions/s (bound {1 / LATENCY:.1f}/s)")
    table = [
        "| concurrency C | ftcot completions/s | bound C/0.2 s | % of bound | vs sequential client |",
        "|---|---|---|---|---|",
    ]
    table += [f"| {c} | {rate:.1f} | {bound:.0f} | {rate / bound:.0%} | {rate / seq:.1f}x |" for c, rate, bound in rows]
    section = (
        "## Teacher throughput\n\n"
        "`.venv/bin/python benchmarks/teacher_throughput.py` — loopback OpenAI-compatible server "
        "(`python -m ftcot.loopback`, in its own process) with a fixed 200 ms latency per request; each zero-shot-CoT sample is "
        "two requests (rationale, answer), every completion committed to the SQLite store. The sequential "
        f"client (one request at a time, like the paper's scripts) reached {seq:.2f} completions/s.\n\n"
        + "\n".join(table)
        + "\n"
    )
    write_section(args.out, "Teacher throughput", section)


def write_section(path: Path, title: str, section: str) -> None:
    """Replace (or append) one `## title` section of the benchmarks document."""
    text = path.read_text() if path.exists() else "# Benchmarks\n\nMeasured on the 2-core CPU machine.\n"
    pattern = re.compile(rf"## {re.escape(title)}\n.*?(?=\n## |\Z)", re.S)
    text = (
        pattern.sub(section.rstrip("\n") + "\n", text) if pattern.search(text) else text.rstrip("\n") + "\n\n" + section
    )
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text.rstrip("\n") + "\n")


if __name__ == "__main__":
    main()
