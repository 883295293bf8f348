"""How much of each test question a train question already shows, and what that does to the committed scores.

A test question "shares its setup" with the train split when it begins with the same text as some train question
for at least --share of its length (whitespace normalised as the rationale importer matches questions). Tracking's
paper split is the case in point: BIG-bench's 750 questions are 250 games asked about each of their 3 players,
and the split draws questions, not games, so most test games (players, items and swaps) are train games asked
about another player. For each committed test prediction file (results/<task>/<setting>.predictions/), the
accuracy on the questions that share their setup and on the rest. No model is run. Writes
docs/results/split_overlap.md.

    FTCOT_DATA_DIR=../shared/data .venv/bin/python benchmarks/split_overlap.py [--share 0.7] [--results DIR] [--out FILE]
"""

from __future__ import annotations

import argparse
import bisect
import json
import os
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from ftcot.data import data_dir  # noqa: E402
from ftcot.tasks import PAPER_TASKS, load_task  # noqa: E402
from ftcot.teachers.sources import _ws  # noqa: E402


def _common_prefix(a: str, b: str) -> int:
    return len(os.path.commonprefix([a, b]))


def shared_share(train: list[str], test: list[str]) -> list[float]:
    """For each test question, the longest opening it shares with a train question, as a share of its length.
    In sorted order the train question sharing the longest opening with q sits next to where q would go."""
    ordered = sorted(train)
    out = []
    for q in test:
        i = bisect.bisect_left(ordered, q)
        best = max((_common_prefix(q, ordered[j]) for j in (i - 1, i) if 0 <= j < len(ordered)), default=0)
        out.append(best / max(len(q), 1))
    return out


def _rate(correct: list[bool]) -> str:
    return f"{100 * sum(correct) / len(correct):.2f} ({sum(correct)} of {len(correct)})" if correct else ""


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--share", type=float, default=0.7, help="share of a test question's length (0-1]")
    parser.add_argument("--results", type=Path, default=ROOT / "results")
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "results" / "split_overlap.md")
    args = parser.parse_args()
    root = data_dir(None)
    splits, table = [], []
    for key in PAPER_TASKS:
        task = load_task(key, root)
        if not task.available() or not (task.root / task.decl.train).exists():  # AQuA's train file is not shared
            continue
        test = task.split_samples("test")
        train = [_ws(s.question) for s in task.split_samples("train")]
        questions = [_ws(s.question) for s in test]
        share = shared_share(train, questions)
        shared = {s.sample_index for s, f in zip(test, share, strict=True) if f >= args.share}
        known = set(train)
        exact = sum(q in known for q in questions)
        splits.append(f"| {key} | {len(test)} | {exact} | {len(shared)} |")
        if not shared:
            continue
        for path in sorted(args.results.glob(f"{key}/*.predictions/*.jsonl")):
            rows = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
            seen = [r["correct"] for r in rows if r["sample_index"] in shared]
            rest = [r["correct"] for r in rows if r["sample_index"] not in shared]
            if not seen:
                continue
            setting = path.parent.name.removesuffix(".predictions")
            table.append(f"| {key} | {setting} | {path.stem} | {_rate(seen + rest)} | {_rate(seen)} | {_rate(rest)} |")
    lines = [
        "# Test questions whose setup is in the train split",
        "",
        f"A test question shares its setup when it opens with the same text as a train question for at least "
        f"{args.share:.0%} of its length (whitespace normalised; an exact duplicate shares 100%). The paper's splits.",
        "",
        f"Command: `FTCOT_DATA_DIR=../shared/data .venv/bin/python benchmarks/split_overlap.py --share {args.share}`",
        "",
        "| task | test questions | exact duplicates of a train question | sharing their setup |",
        "|---|---|---|---|",
        *splits,
        "",
        "Accuracy of each committed prediction file on the test questions that share their setup and on the rest:",
        "",
        "| task | setting | method | all | setup in train | the rest |",
        "|---|---|---|---|---|---|",
        *table,
    ]
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
