"""What the curation of issue #18 does to each task's training set, before beside after, with no model: the
recorded text-davinci-002 rationales of the 9 tasks curated as before (the paper's filter, the teacher's option
order, cut rationales kept) and as now (consistency filter, cut rationales dropped, the test's option order,
K shuffled copies of each choice example). Writes docs/results/curation.md.

    FTCOT_DATA_DIR=../shared/data .venv/bin/python benchmarks/curation.py [--data DIR] [--out FILE] [--k 3]
"""

from __future__ import annotations

import argparse
import sys
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from ftcot.config import CurateConfig  # noqa: E402
from ftcot.curate import curate, permuted_copies, split_validation  # noqa: E402
from ftcot.data import data_dir  # noqa: E402
from ftcot.tasks import load_task  # noqa: E402
from ftcot.tasks.rationales import supports  # noqa: E402
from ftcot.teachers.records import read_shared_jsonl, recorded_teacher_path  # noqa: E402

TASKS = [
    "single_eq",
    "addsub",
    "multiarith",
    "svamp",
    "date_understanding",
    "tracking_shuffled_objects",
    "last_letter_concatenation",
    "coin_flip",
    "strategy_qa",
]
BEFORE = CurateConfig(consistency=False, drop_truncated=False, choice_order="teacher")
AFTER = CurateConfig(consistency=True)


def _letters(examples) -> str:
    """The most frequent answer letter and its share, for choice tasks."""
    counts = Counter(e.answer for e in examples)
    letter, n = counts.most_common(1)[0] if counts else ("", 0)
    return f"{letter} {100 * n / max(len(examples), 1):.0f}%"


def task_row(task: str, root: Path, k: int) -> str:
    records = read_shared_jsonl(recorded_teacher_path(task, root))
    spec = load_task(task, root)
    train, _ = split_validation(spec.split_samples("train"), 0.1, 0)
    before, _ = curate(spec, records, train, BEFORE, 1)
    after, fates = curate(spec, records, train, AFTER, 1)
    dropped = Counter(fate for _, fate in fates if fate not in ("kept", "incorrect"))
    fmt = spec.answer_format
    unstated = sum(supports(e.rationale, fmt, e.question, e.answer) is None for e in after)
    frames = Counter(e.frame for e in after)
    row = (
        f"| {task} | {len(train)} | {len(before)} | {len(after)} | {dropped['truncated']} "
        f"| {dropped['inconsistent']} | {unstated} | {frames['remapped']} / {frames['teacher_order']} |"
    )
    if not fmt.choice:
        return row + " | | |"
    shuffled, without = permuted_copies(after, k, 0)
    test = spec.split_samples("test")
    return row + f" {_letters(before)} / {_letters(test)} | {_letters(shuffled)} | {len(shuffled)} ({without}) |"


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--data", type=Path, default=None, help="data folder (default: $FTCOT_DATA_DIR)")
    parser.add_argument("--tasks", nargs="+", default=TASKS)
    parser.add_argument("--k", type=int, default=3, help="shuffled copies per choice example")
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "results" / "curation.md")
    args = parser.parse_args()
    root = data_dir(args.data)
    lines = [
        "# Curation before and after issue #18 (recorded text-davinci-002 rationales, D=1, no model)",
        "",
        "Before: the paper's filter (a correct teacher answer), the teacher's option order, rationales cut "
        "mid-sentence kept. After: also dropped when cut mid-sentence (the recorded records carry no finish "
        "reason) or when the rationale's own conclusion is another answer; kept without a stated conclusion; "
        f"choice rationales moved to the test's option order; {args.k} shuffled copies of each choice example "
        "(the letter columns: the most frequent gold letter's share).",
        "",
        f"Command: `FTCOT_DATA_DIR=../shared/data .venv/bin/python benchmarks/curation.py --k {args.k}`",
        "",
        "| task | train questions (after validation) | kept before | kept after | dropped: cut off | dropped: "
        "contradicts its label | kept, no stated conclusion | moved to the test's order / kept in the teacher's "
        "| letter prior before: train / test | after, with copies | examples with copies (without copies) |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for task in args.tasks:
        lines.append(task_row(task, root, args.k))
        print(lines[-1])
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text("\n".join(lines) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
