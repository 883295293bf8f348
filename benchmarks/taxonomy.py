"""Why the committed students' answers are wrong: the failure taxonomy and, for choice tasks, the answer read
by content, recomputed with today's readers (src/ftcot/tasks/rationales.py) from the predictions the runs
committed (results/<task>/<setting>.predictions/<method>.jsonl); no model is run. Writes
docs/results/taxonomy.md.

    .venv/bin/python benchmarks/taxonomy.py [--settings paper-full-nall-tauto-m8 ...] [--results DIR] [--out FILE]
"""

from __future__ import annotations

import argparse
import json
import sys
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from ftcot.methods import METHODS  # noqa: E402
from ftcot.tasks import PAPER_TASKS, load_task  # noqa: E402
from ftcot.tasks.rationales import FAILURE_KINDS, failure_kind, is_loop, option_by_content  # noqa: E402


def analyse(task: str, method: str, rows: list[dict]) -> dict:
    """Accuracy, accuracy read by content (choice tasks, reasoning methods) and failure counts of one file."""
    fmt, m = load_task(task).answer_format, METHODS[method]
    kinds, by_content = Counter(), 0
    for r in rows:
        question = r["question"]
        kinds[
            failure_kind(
                r["output"], r["prediction"], r["correct"], fmt, question, r["answer"], m.answer_prefix, m.votes
            )
        ] += 1
        if fmt.choice and m.votes:
            by_content += fmt.matches(
                option_by_content(r["output"], question, m.answer_prefix) or r["prediction"], r["answer"]
            )
    n = len(rows)
    return {
        "n": n,
        "accuracy": 100 * kinds[None] / n,
        "kinds": kinds,
        "by_content": 100 * by_content / n if fmt.choice and m.votes else None,
        "loops": sum(is_loop(r["output"]) for r in rows),
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--settings", nargs="+", default=["paper-full-nall-tauto-m8", "paper-full-nall-tauto-m9"])
    parser.add_argument("--results", type=Path, default=ROOT / "results")
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "results" / "taxonomy.md")
    args = parser.parse_args()
    kinds = list(FAILURE_KINDS)
    lines = [
        "# Why the committed students' answers are wrong",
        "",
        "Recomputed with today's readers from the test predictions the runs committed (no model run). "
        "Counts of test outputs; a rationale's conclusion is the answer it reaches (numbers: the last sentence's "
        "numbers; choices: the option it names by text, for Date the last date it states; letter strings: the "
        "letters the last sentence stating any quotes or ends on, and each word's letter where it names one). "
        '"by content": '
        "accuracy when a choice output's answer is read as the option its rationale reaches (the paper's "
        "parser's answer where it reaches none).",
        "",
        f"Command: `.venv/bin/python benchmarks/taxonomy.py --settings {' '.join(args.settings)}`",
        "",
        "| task | setting | method | n | accuracy | by content | "
        + " | ".join(FAILURE_KINDS[k] for k in kinds)
        + " | loops (all outputs) |",
        "|---|---|---|---|---|---|" + "---|" * (len(kinds) + 1),
    ]
    for task in PAPER_TASKS:
        for setting in args.settings:
            for path in sorted((args.results / task / f"{setting}.predictions").glob("*.jsonl")):
                rows = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
                if not rows or path.stem not in METHODS:
                    continue
                a = analyse(task, path.stem, rows)
                content = "" if a["by_content"] is None else f"{a['by_content']:.2f}"
                lines.append(
                    f"| {task} | {setting} | {path.stem} | {a['n']} | {a['accuracy']:.2f} | {content} | "
                    + " | ".join(str(a["kinds"][k]) for k in kinds)
                    + f" | {a['loops']} |"
                )
                print(lines[-1])
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text("\n".join(lines) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
