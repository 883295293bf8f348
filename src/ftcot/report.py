"""`ftcot report RUNS_DIR`: a results table laid out like the paper's Table 1 (rows: methods and student;
columns: tasks) as Markdown and CSV, and PNG plots of validation accuracy against epoch and of test accuracy
against the number of teacher samples D where several D were run."""

from __future__ import annotations

import csv
from collections import defaultdict
from pathlib import Path

import yaml

from ftcot.errors import UserError
from ftcot.files import read_json, read_text
from ftcot.methods import METHODS, REPORT_ORDER, TEACHER, label
from ftcot.tasks import TASKS

TASKS_ORDER = {task: i for i, task in enumerate(TASKS)}


def find_runs(root: Path) -> list[Path]:
    runs = sorted({p.parent for p in root.rglob("config.yaml") if (p.parent / "eval").is_dir()})
    if not runs:
        raise UserError(f"no evaluated runs under {root} (a run folder has config.yaml and eval/)")
    return runs


def _read(path: Path) -> dict:
    """A run's JSON or YAML file as a dict; anything else is a one-line error naming the file."""
    if path.suffix != ".yaml":
        data = read_json(path)
    else:
        try:
            data = yaml.safe_load(read_text(path))
        except (yaml.YAMLError, RecursionError) as exc:
            raise UserError(f"{path}: not valid YAML ({type(exc).__name__})") from None
    if not isinstance(data, dict):
        raise UserError(f"{path}: expected a JSON/YAML object, not {type(data).__name__}")
    return data


def _task_name(cfg: dict) -> str:
    """A run's task: a built-in key, or a custom task's name."""
    task = cfg["task"]
    return str(task["name"] if isinstance(task, dict) else task)


def _number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _history(path: Path, summary: dict) -> list[dict]:
    """A student's epochs as its summary lists them: each with a numeric epoch and validation accuracy (or null)."""
    history = summary.get("history") or []
    if not isinstance(history, list) or not all(
            isinstance(h, dict) and _number(h.get("epoch")) and (h.get("val_accuracy") is None
                                                                 or _number(h.get("val_accuracy"))) for h in history):
        raise UserError(f"{path}: history must be a list of {{epoch, val_accuracy}}")
    return history


def _row_label(method: str, metrics: dict, num_samples: int) -> str:
    if method == "teacher":
        return f"{label(method)}: {metrics.get('model', '?')}"
    size = f" ({metrics['parameters'] / 1e6:.0f}M)" if metrics.get("parameters") else ""
    diverse = f", D={num_samples}" if METHODS[method].trains_on == "rationales" and num_samples > 1 else ""
    return f"{label(method)}{diverse}: {metrics.get('model', '?')}{size}"


def collect(runs: list[Path]) -> list[dict]:
    rows = []
    for run in runs:
        cfg = _read(run / "config.yaml")
        try:
            num_samples, task = int(cfg["teacher"]["num_samples"]), _task_name(cfg)
        except (KeyError, TypeError, ValueError):
            raise UserError(f"{run / 'config.yaml'}: not an ftcot run config (no task or teacher.num_samples)"
                            ) from None
        for path in sorted((run / "eval").glob("*/metrics.json")):
            metrics = _read(path)
            method = path.parent.name
            ci = metrics.get("ci95")
            if method not in REPORT_ORDER or not all(_number(metrics.get(k)) for k in ("accuracy", "n")) \
                    or not (isinstance(ci, list) and len(ci) == 2 and all(map(_number, ci))) \
                    or not isinstance(metrics.get("diagnostics") or {}, dict):
                raise UserError(f"{path}: not an ftcot metrics file of a known method")
            summary_path = run / "students" / method / "summary.json"
            summary = _read(summary_path) if summary_path.exists() else {}
            summary["history"] = _history(summary_path, summary)
            d = metrics.get("diagnostics") or {}
            rows.append({"run": str(run), "task": task, "method": method, "num_samples": num_samples,
                         "label": _row_label(method, metrics, num_samples), "accuracy": metrics["accuracy"],
                         "ci95_low": metrics["ci95"][0], "ci95_high": metrics["ci95"][1], "n": metrics["n"],
                         "best_epoch": summary.get("best_epoch", ""),
                         "epochs_trained": summary.get("epochs_trained", len(summary.get("history", [])) or ""),
                         "stop_reason": summary.get("stop_reason", ""),
                         "no_answer_marker_pct": d.get("no_answer_marker"), "unparsed_pct": d.get("unparsed"),
                         "most_frequent_prediction": d.get("most_frequent_prediction"),
                         "most_frequent_share_pct": d.get("most_frequent_share"),
                         "majority_answer_share_pct": d.get("majority_answer_share")})
    return rows


def diagnostics_table(rows: list[dict]) -> str:
    """Why answers are wrong, per task and method: cut off before the answer marker, unparseable, or one
    answer given to every question (the most frequent prediction, and predictions equal to the majority answer)."""
    lines = ["| task | method: student | epochs: best of trained (stop) | no answer marker % | parsed to nothing % "
             "| most frequent answer (share %) | = majority answer % |", "|---|---|---|---|---|---|---|"]
    for r in sorted(rows, key=lambda r: (TASKS_ORDER.get(r["task"], 99), r["label"])):
        if r["method"] == TEACHER or r["unparsed_pct"] is None:
            continue
        epochs = f"{r['best_epoch']} of {r['epochs_trained']} ({r['stop_reason']})" if r["best_epoch"] != "" else ""
        marker = "" if r["no_answer_marker_pct"] is None else r["no_answer_marker_pct"]
        lines.append(f"| {r['task']} | {r['label']} | {epochs} | {marker} | {r['unparsed_pct']} "
                     f"| {r['most_frequent_prediction']} ({r['most_frequent_share_pct']}) "
                     f"| {r['majority_answer_share_pct']} |")
    return "\n".join(lines)


def table(rows: list[dict]) -> str:
    tasks = sorted({r["task"] for r in rows}, key=lambda t: (TASKS_ORDER.get(t, len(TASKS_ORDER)), t))
    order = list(REPORT_ORDER)
    labels = sorted({(order.index(r["method"]), r["num_samples"], r["label"]) for r in rows})
    cells = {(r["label"], r["task"]): r for r in rows}
    lines = ["| method: student | " + " | ".join(tasks) + " |", "|---|" + "---|" * len(tasks)]
    for _, _, row in labels:
        values = []
        for task in tasks:
            r = cells.get((row, task))
            values.append("" if r is None else f"{r['accuracy']:.2f}")
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
        task = _task_name(_read(run / "config.yaml"))
        for summary in sorted((run / "students").glob("*/summary.json")):
            if summary.parent.name not in METHODS:
                continue
            history = [h for h in _history(summary, _read(summary)) if h.get("val_accuracy") is not None]
            if history:
                series.append(([h["epoch"] for h in history], [h["val_accuracy"] for h in history],
                               f"{task}: {label(summary.parent.name)}"))
    if not series:
        return False
    fig, ax = _axes()
    for epochs, accuracy, name in series:
        ax.plot(epochs, accuracy, marker="o", label=name)
    _save(fig, ax, path, xlabel="epoch", ylabel="validation accuracy (%)", title="Accuracy against epoch")
    return True


def plot_diverse(rows: list[dict], path: Path) -> bool:
    by_task = defaultdict(dict)
    for r in rows:
        if r["method"] != TEACHER and METHODS[r["method"]].trains_on == "rationales":
            by_task[r["task"]][r["num_samples"]] = r["accuracy"]
    series = {task: points for task, points in by_task.items() if len(points) > 1}
    if not series:
        return False
    fig, ax = _axes()
    for task, points in series.items():
        ds = sorted(points)
        ax.plot(ds, [points[d] for d in ds], marker="o", label=task)
    _save(fig, ax, path, xlabel="teacher samples per question (D)", ylabel="test accuracy (%)", xscale="log",
          title="Fine-tune-CoT accuracy against D")
    return True


def report(root: Path) -> dict:
    """Write report.md, report.csv and plots into root; return the table and what was written."""
    runs = find_runs(Path(root))
    rows = collect(runs)
    if not rows:
        raise UserError(f"no evaluation results under {root} (eval/<method>/metrics.json): run `ftcot evaluate`")
    markdown = table(rows)
    root = Path(root)
    with open(root / "report.csv", "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    plots = [name for name, drawn in (("accuracy_vs_epoch.png", plot_epochs(runs, root / "accuracy_vs_epoch.png")),
                                      ("accuracy_vs_D.png", plot_diverse(rows, root / "accuracy_vs_D.png"))) if drawn]
    text = ("# Results\n\nTest accuracy (%), from " + ", ".join(str(r) for r in runs) + ".\n\n" + markdown + "\n"
            + "\n## Failure diagnostics\n\nShares of the test outputs.\n\n" + diagnostics_table(rows) + "\n"
            + "".join(f"\n![{p}]({p})\n" for p in plots))
    (root / "report.md").write_text(text)
    return {"table": markdown, "rows": rows, "plots": plots}
