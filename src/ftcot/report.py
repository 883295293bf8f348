"""`ftcot report RUNS_DIR`: a results table laid out like the paper's Table 1 (rows: methods and student;
columns: tasks; self-consistency beside greedy; failure diagnostics as its notes) as Markdown and CSV, a page
to open in a browser with every question behind it (report_html.py), and PNG plots of validation accuracy
against epoch, of test accuracy against the number of teacher samples D where several D were run, and of test
accuracy against the teacher's dollars and tokens."""

from __future__ import annotations

import csv
from collections import defaultdict
from pathlib import Path

from ftcot.artifacts import (
    Accuracy,
    CurateSummary,
    Evaluation,
    Metrics,
    SelfConsistency,
    TeachSummary,
    TrainSummary,
    read_run_config,
    read_summary,
)
from ftcot.errors import UserError
from ftcot.methods import METHODS, REPORT_ORDER, TEACHER, label
from ftcot.report_html import write_html
from ftcot.run_folder import RunFolder
from ftcot.tasks import PAPER_TASKS
from ftcot.tasks.rationales import FAILURE_KINDS

TASKS_ORDER = {task: i for i, task in enumerate(PAPER_TASKS)}
FAILURES_NOTE = (
    "Counts of wrong test outputs by kind. A rationale's conclusion is the answer it reaches: for "
    "numbers the last sentence's numbers; for a choice task the option it names by text (for Date, the "
    'last date it states), so "reaches the gold answer, the answer after the marker is wrong" is the '
    "right option's text under a wrong letter. A loop is a repeated word sequence at the output's end."
)

CALCULATOR_NOTE = (
    "The same students scored with a calculator in decoding (evaluate.calculator): the value of each "
    "arithmetic expression before an `=` written for them. A call's own number is what the student "
    "wrote after that `=` itself."
)


def find_runs(root: Path) -> list[Path]:
    runs = sorted({p.parent for p in root.rglob("config.yaml") if RunFolder(p.parent).eval.is_dir()})
    if not runs:
        raise UserError(f"no evaluated runs under {root} (a run folder has config.yaml and eval/)")
    return runs


def _row_label(method: str, metrics: Metrics, num_samples: int, collection: str = "", calculator: bool = False) -> str:
    if method == "teacher":
        return f"{label(method)}: {metrics.model or '?'}"
    size = f" ({metrics.parameters / 1e6:.0f}M)" if metrics.parameters else ""
    rationales = METHODS[method].trains_on == "rationales"
    diverse = (f", D={num_samples}" if num_samples > 1 else "") + collection if rationales else ""
    return f"{label(method)}{' + calculator' if calculator else ''}{diverse}: {metrics.model or '?'}{size}"


def _outputs(result: Evaluation) -> dict:
    """The columns read from greedy outputs: why answers are wrong (diagnostics, failure kinds, loops) and, for
    outputs written with the calculator, its calls."""
    d, failures, calls = result.diagnostics, result.failures, result.calls
    return {
        "no_answer_marker_pct": d and d.no_answer_marker,
        "unparsed_pct": d and d.unparsed,
        "most_frequent_prediction": d and d.most_frequent_prediction,
        "most_frequent_share_pct": d and d.most_frequent_share,
        "majority_answer_share_pct": d and d.majority_answer_share,
        **{f"failed_{kind}": failures.kinds.get(kind, 0) if failures else None for kind in FAILURE_KINDS},
        "loops": failures.loops if failures else None,
        "calculator_calls_per_output": calls and calls.per_output,
        "calculator_own_wrong_pct": calls and calls.own_wrong_pct,
    }


def read_runs(runs: list[Path]) -> list[dict]:
    """The report's rows: one per evaluated method of each run folder (its accuracy, teacher spending and
    training), plus a row per variant (read by content, self-consistency, the calculator) where one was run."""
    rows = []
    for run in runs:
        folder = RunFolder(run)
        cfg = read_run_config(run)
        num_samples, task = cfg.teacher.num_samples, cfg.task_name
        adaptive = bool(cfg.teacher.adaptive)
        collection = (", adaptive" if adaptive else "") + (", rationalized" if cfg.teacher.rationalize else "")
        spent = _teacher_spending(run)
        for method in REPORT_ORDER:
            metrics = read_summary(folder.summary("evaluate", method), Metrics)
            if metrics is None:
                continue
            summary = read_summary(folder.summary("train", method), TrainSummary)
            rows.append(
                {
                    "run": str(run),
                    "task": task,
                    "method": method,
                    "num_samples": num_samples,
                    "samples_per_question": spent["samples_per_question"],
                    "adaptive": adaptive,
                    "collection": collection,
                    "teacher_cost_usd": spent["cost_usd"],
                    "teacher_tokens": spent["tokens"],
                    "variant": "greedy",
                    "agreement_pct": None,
                    "label": _row_label(method, metrics, num_samples, collection),
                    "accuracy": metrics.accuracy,
                    "ci95_low": metrics.ci95[0],
                    "ci95_high": metrics.ci95[1],
                    "n": metrics.n,
                    "best_epoch": summary.best_epoch if summary else "",
                    "epochs_trained": summary.epochs_trained if summary else "",
                    "stop_reason": summary.stop_reason if summary else "",
                    **_outputs(metrics),
                }
            )
            greedy = rows[-1]
            if metrics.choice_by_content is not None:
                rows.append(
                    _variant(
                        greedy, "by_content", f"{greedy['label']}, answer read by content", metrics.choice_by_content
                    )
                )
            rows += _self_consistency(greedy, metrics.self_consistency)
            calculated = metrics.calculator  # the same student written with the calculator: its own outputs
            if calculated is not None:
                rows.append(
                    _variant(
                        greedy, "calculator", _row_label(method, metrics, num_samples, collection, True), calculated
                    )
                    | _outputs(calculated)
                )
                rows += _self_consistency(rows[-1], calculated.self_consistency)
    return rows


def _self_consistency(greedy: dict, sc: SelfConsistency | None) -> list[dict]:
    """The self-consistency row beside a greedy one, where it was run."""
    if sc is None:
        return []
    return [
        _variant(
            greedy,
            f"{greedy['variant']}_self_consistency".removeprefix("greedy_"),
            f"{greedy['label']}, self-consistency k={sc.k}",
            sc,
        )
        | {"agreement_pct": sc.agreement}
    ]


def _variant(row: dict, variant: str, name: str, result: Accuracy) -> dict:
    """A row beside a greedy one for another reading of the same method (its own accuracy), without the greedy
    outputs' diagnostics."""
    return (
        row
        | {key: None for key in row if key.endswith("_pct") or key.startswith(("failed_", "calculator_"))}
        | {
            "variant": variant,
            "label": name,
            "accuracy": result.accuracy,
            "ci95_low": result.ci95[0],
            "ci95_high": result.ci95[1],
            "most_frequent_prediction": None,
            "loops": None,
        }
    )


def _teacher_spending(run: Path) -> dict:
    """What the run's teacher cost (dollars, tokens) and how many samples it drew per train question."""
    t = read_summary(RunFolder(run).summary("teach"), TeachSummary)
    c = read_summary(RunFolder(run).summary("curate"), CurateSummary)
    return {
        "cost_usd": t and t.cost_usd,
        "tokens": t and t.prompt_tokens + t.completion_tokens,
        "samples_per_question": round(c.samples_drawn / c.train_questions, 2) if c and c.train_questions else None,
    }


def _distilled(rows: list[dict]) -> list[dict]:
    """The greedy rows of students trained on the teacher's rationales: what the plots set against the teacher."""
    return [
        r
        for r in rows
        if r["method"] != TEACHER and METHODS[r["method"]].trains_on == "rationales" and r["variant"] == "greedy"
    ]


def _noted(rows: list[dict]) -> list[dict]:
    """The rows with diagnostics, in the order of the footnotes that give them."""
    return [
        r
        for r in sorted(rows, key=lambda r: (TASKS_ORDER.get(r["task"], 99), r["task"], r["label"]))
        if r["method"] != TEACHER and r["unparsed_pct"] is not None
    ]


Table = tuple[list[str], list[list[str]]]  # a header and its rows of cells, rendered as Markdown or HTML


def diagnostics_table(rows: list[dict]) -> Table:
    """The table's footnotes: why answers are wrong, per task and method: cut off before the answer marker,
    unparseable, or one answer given to every question (the most frequent prediction, and predictions equal
    to the majority answer)."""
    header = [
        "note",
        "task",
        "method: student",
        "epochs: best of trained (stop)",
        "no answer marker %",
        "parsed to nothing %",
        "most frequent answer (share %)",
        "= majority answer %",
    ]
    cells = []
    for n, r in enumerate(_noted(rows), 1):
        epochs = f"{r['best_epoch']} of {r['epochs_trained']} ({r['stop_reason']})" if r["best_epoch"] != "" else ""
        marker = "" if r["no_answer_marker_pct"] is None else r["no_answer_marker_pct"]
        cells.append(
            [
                f"[{n}]",
                r["task"],
                r["label"],
                epochs,
                marker,
                r["unparsed_pct"],
                f"{r['most_frequent_prediction']} ({r['most_frequent_share_pct']})",
                r["majority_answer_share_pct"],
            ]
        )
    return header, [[str(c) for c in row] for row in cells]


def failures_table(rows: list[dict]) -> Table:
    """Why each student's wrong answers are wrong (counts of its test outputs), where evaluation sorted them."""
    kinds = [kind for kind in FAILURE_KINDS if any(r[f"failed_{kind}"] for r in rows if r["loops"] is not None)]
    header = ["task", "method: student", "wrong", *(FAILURE_KINDS[k] for k in kinds), "loops (all outputs)"]
    cells = []
    for r in sorted(
        (r for r in rows if r["loops"] is not None and r["method"] != TEACHER),
        key=lambda r: (TASKS_ORDER.get(r["task"], 99), r["task"], r["label"]),
    ):
        wrong = sum(r[f"failed_{kind}"] for kind in FAILURE_KINDS)
        cells.append([r["task"], r["label"], str(wrong), *(str(r[f"failed_{k}"]) for k in kinds), str(r["loops"])])
    return header, cells


def curation_table(runs: list[Path]) -> Table:
    """Each run's curation: the teacher's samples, how many were kept (per teacher, where several taught) and
    why the others were dropped."""
    header = ["run", "task", "D", "train questions", "samples", "kept", "kept by teacher", "dropped (why)"]
    cells = []
    for run in runs:
        c = read_summary(RunFolder(run).summary("curate"), CurateSummary)
        if c is None:
            continue
        cfg = read_run_config(run)
        cells.append(
            [
                run.name,
                cfg.task_name,
                str(cfg.teacher.num_samples),
                str(c.train_questions),
                str(c.samples_drawn),
                str(c.kept),
                ", ".join(f"{t} {v.kept} of {v.samples}" for t, v in c.by_teacher.items()),
                ", ".join(f"{why} {n}" for why, n in sorted(c.removed.items(), key=lambda kv: -kv[1])),
            ]
        )
    return header, cells


def calculator_table(rows: list[dict]) -> Table:
    """What the calculator did for each student scored with it: accuracy without and with it, its calls per
    output, and how often the student's own number at those `=` was wrong."""
    plain = {(r["run"], r["method"]): r for r in rows if r["variant"] == "greedy"}
    header = [
        "task",
        "method: student",
        "accuracy without",
        "with the calculator",
        "calls per output",
        "own number wrong at a call %",
    ]
    cells = [
        [
            r["task"],
            r["label"],
            f"{plain[r['run'], r['method']]['accuracy']:.2f}",
            f"{r['accuracy']:.2f}",
            f"{r['calculator_calls_per_output']:g}",
            "" if r["calculator_own_wrong_pct"] is None else f"{r['calculator_own_wrong_pct']:g}",
        ]
        for r in sorted(rows, key=lambda r: (TASKS_ORDER.get(r["task"], 99), r["task"], r["label"]))
        if r["variant"] == "calculator" and r["calculator_calls_per_output"] is not None
    ]
    return header, cells


def markdown(table: Table) -> str:
    header, cells = table
    return "\n".join(
        ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
        + ["| " + " | ".join(row) + " |" for row in cells]
    )


def table(rows: list[dict]) -> str:
    tasks = sorted({r["task"] for r in rows}, key=lambda t: (TASKS_ORDER.get(t, len(TASKS_ORDER)), t))
    order = list(REPORT_ORDER)
    labels = sorted(
        {(order.index(r["method"]), r["num_samples"], r["variant"].startswith("calculator"), r["label"]) for r in rows}
    )  # a student with the calculator under the same student without it
    cells = {(r["label"], r["task"]): r for r in rows}
    notes = {id(r): n for n, r in enumerate(_noted(rows), 1)}
    lines = ["| method: student | " + " | ".join(tasks) + " |", "|---|" + "---|" * len(tasks)]
    for *_, row in labels:
        values = []
        for task in tasks:
            r = cells.get((row, task))
            note = f" [{notes[id(r)]}]" if r is not None and id(r) in notes else ""
            agree = f" ({r['agreement_pct']:.0f}% agree)" if r is not None and r["agreement_pct"] is not None else ""
            values.append("" if r is None else f"{r['accuracy']:.2f}{agree}{note}")
        lines.append(f"| {row} | " + " | ".join(values) + " |")
    return "\n".join(lines)


def _axes():
    import matplotlib  # deferred: only a report draws

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt.subplots(figsize=(6, 4))


def _save(fig, ax, path: Path, **labels) -> None:
    import matplotlib.pyplot as plt

    ax.set(**labels)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def plot_epochs(runs: list[Path], path: Path) -> bool:
    series = []
    for run in runs:
        task = read_run_config(run).task_name
        for method in METHODS:
            summary = read_summary(RunFolder(run).summary("train", method), TrainSummary)
            history = [h for h in summary.history if h.val_accuracy is not None] if summary else []
            if history:
                series.append(
                    ([h.epoch for h in history], [h.val_accuracy for h in history], f"{task}: {label(method)}")
                )
    if not series:
        return False
    from matplotlib.ticker import MaxNLocator

    fig, ax = _axes()
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))  # epochs are whole
    for epochs, accuracy, name in series:
        ax.plot(epochs, accuracy, marker="o", label=name)
    _save(fig, ax, path, xlabel="epoch", ylabel="validation accuracy (%)", title="Accuracy against epoch")
    return True


def plot_diverse(rows: list[dict], path: Path) -> bool:
    """Test accuracy of the students trained on rationales against the teacher samples per question: a line
    per task and method over the fixed-D runs, and each adaptive run as a point at the mean it drew."""
    fixed, adaptive = defaultdict(dict), []
    for r in _distilled(rows):
        name = f"{r['task']}: {label(r['method'])}{r['collection']}"
        if r["adaptive"] and r["samples_per_question"]:
            adaptive.append((r["samples_per_question"], r["accuracy"], name))
        elif not r["adaptive"]:
            fixed[name][r["num_samples"]] = r["accuracy"]
    lines = {name: points for name, points in fixed.items() if len(points) > 1}
    if not lines and not adaptive:
        return False
    fig, ax = _axes()
    for name, points in lines.items():
        ds = sorted(points)
        ax.plot(ds, [points[d] for d in ds], marker="o", label=name)
    for d, accuracy, name in adaptive:
        ax.scatter([d], [accuracy], marker="*", s=120, label=name)
    _save(
        fig,
        ax,
        path,
        xlabel="teacher samples per train question (D; adaptive: mean drawn)",
        ylabel="test accuracy (%)",
        xscale="log",
        title="Accuracy against D",
    )
    return True


def plot_cost(rows: list[dict], path: Path) -> bool:
    """What the teacher's money bought: each run's student test accuracy against its teacher's dollars and
    tokens (runs with a paid or local teacher; recorded teachers cost nothing and report no tokens)."""
    points = [r for r in _distilled(rows) if r["teacher_tokens"]]
    if not points:
        return False
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(10, 4))
    for key, ax, xlabel in (
        ("teacher_cost_usd", axes[0], "teacher cost (USD)"),
        ("teacher_tokens", axes[1], "teacher tokens (prompt + completion)"),
    ):
        for r in points:
            if r[key] is not None:
                d = f"D={r['samples_per_question']}" if r["adaptive"] else f"D={r['num_samples']}"
                ax.scatter(r[key], r["accuracy"], label=f"{r['task']}: {label(r['method'])}, {d}{r['collection']}")
        ax.set(xlabel=xlabel, ylabel="student test accuracy (%)")
    axes[1].legend(fontsize=7)
    fig.suptitle("What the teacher's money bought")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return True


def report(root: Path) -> dict:
    """Write report.md, report.csv and plots into root; return the table and what was written."""
    runs = find_runs(Path(root))
    rows = read_runs(runs)
    if not rows:
        raise UserError(f"no evaluation results under {root} (eval/<method>/metrics.json): run `ftcot evaluate`")
    results, notes, failures, calculator = (
        table(rows),
        diagnostics_table(rows),
        failures_table(rows),
        calculator_table(rows),
    )
    curation = curation_table(runs)
    root = Path(root)
    with open(root / "report.csv", "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    plots = [
        name
        for name, drawn in (
            ("accuracy_vs_epoch.png", plot_epochs(runs, root / "accuracy_vs_epoch.png")),
            ("accuracy_vs_D.png", plot_diverse(rows, root / "accuracy_vs_D.png")),
            ("cost_vs_accuracy.png", plot_cost(rows, root / "cost_vs_accuracy.png")),
        )
        if drawn
    ]
    failures = [failures] if failures[1] else []  # only where evaluation sorted the wrong answers
    calculator = [calculator] if calculator[1] else []
    text = (
        "# Results\n\nTest accuracy (%), from "
        + ", ".join(str(r) for r in runs)
        + ".\n\n"
        + results
        + "\n"
        + "\n## Failure diagnostics\n\nThe table's notes: shares of the test outputs.\n\n"
        + markdown(notes)
        + "\n"
        + "".join(f"\n## Why answers are wrong\n\n{FAILURES_NOTE}\n\n{markdown(f)}\n" for f in failures)
        + "".join(f"\n## The calculator\n\n{CALCULATOR_NOTE}\n\n{markdown(c)}\n" for c in calculator)
        + (
            f"\n## Curation\n\nThe teacher's samples of the train questions, kept or dropped.\n\n{markdown(curation)}\n"
            if curation[1]
            else ""
        )
        + "".join(f"\n![{p}]({p})\n" for p in plots)
    )
    (root / "report.md").write_text(text)
    page = write_html(
        root,
        [(run, read_run_config(run).task_name) for run in runs],
        rows,
        plots,
        [notes, *failures, *calculator, *([curation] if curation[1] else [])],
    )
    return {"table": results, "rows": rows, "plots": plots, "html": page}
