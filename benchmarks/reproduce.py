"""Reproduce Fine-tune-CoT: SmolLM2-135M students from the recorded text-davinci-002 rationales (D=1, correct
ones only), beside vanilla fine-tuning and the zero-shot and zero-shot-CoT prompting baselines, for the 9 tasks
whose recorded teacher covers the train split. Runs on the CPU, or on a GPU when there is one.

Each (task, setting) is an ordinary ftcot run folder under runs/reproduce/<task>/<setting> (finished stages
are skipped, training resumes from its last epoch), and its numbers are cached in
results/<task>/<setting>.json (a run's artifacts, beside its committed predictions and pages; the write-ups
quoted in the document stay in docs/results/). Where a task was run with several settings, docs/RESULTS.md
shows the one whose Fine-tune-CoT student scored best on the validation split (never the test split) and lists
the others.

    FTCOT_DATA_DIR=../shared/data .venv/bin/python benchmarks/reproduce.py [--tasks coin_flip ...]
    .venv/bin/python benchmarks/reproduce.py --doc-only    # rewrite docs/RESULTS.md from the cached results

`--protocol paper` trains as the paper's script does (AdamW, constant lr 3e-4, batch 8, 20 epochs; see
`train.protocol`), keeping the epoch best on validation. `--jobs N` runs N stages side by side as `ftcot`
processes (each task's two students train at once, then it is evaluated): a small student leaves a GPU mostly
idle at batch 8.

`--seeds N` trains every setting N times: seed s sets `train.seed` and `curate.permute_seed` to s, while the
validation split stays the one `curate.seed: 0` carves. Each seed is a run folder and result of its own, its
setting named with `-s<seed>` (seed 0 keeps the plain name); docs/RESULTS.md gives the mean ± sd over them.

Curation and evaluation flags. A setting's name tells its curation (see curation_tag): none for the curation
before issue #18 (`--choice-order teacher --keep-truncated`, consistency off, as under `--protocol paper` by
default), so that its results keep their names; `-q` for the curation since (the test's option order, cut
rationales dropped), then what differs from it, e.g. paper-full-nall-tauto-m8-q-c1-k3-s2:
  --consistency on|off   curate.consistency (unset: the config's default, off under the paper protocol)  -c1
  --permute-choices K    curate.permute_choices on the choice tasks (0 on the others)                    -kK
  --choice-order teacher curate.choice_order (default test)                                              -oteacher
  --keep-truncated       curate.drop_truncated: false (recorded rationales cut off are kept)             -kt
  --choice-by-content    evaluate.choice_by_content on the choice tasks                                  -bc
"""

from __future__ import annotations

import argparse
import json
import os
import posixpath
import re
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "results"  # the runs' artifacts: results/<task>/<setting>.json, .predictions, .html; batch-*.json
WRITEUPS = ROOT / "docs" / "results"  # the documentation beside docs/RESULTS.md: NOTES.md, the benchmarks' write-ups
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
CHOICE_TASKS = ("date_understanding", "tracking_shuffled_objects")  # answered by an option letter
BASELINES = ("zero_shot", "zero_shot_cot")  # evaluated unless --baselines says otherwise
NUMBER_TASKS = ("single_eq", "addsub", "multiarith", "svamp")  # where --calculator applies
RECORDED = "text-davinci-002"  # the recorded teacher of every task (Kojima et al.'s logs)

# The paper's Table (official results; best of 20 epochs chosen on the test split there):
# teacher (175B zero-shot-CoT), GPT-2 124M FT-CoT, Flan-T5 220M FT-CoT, ada 0.3B FT-CoT, best <=0.3B with diverse
# reasoning. The last column is the target.
PAPER = {
    "single_eq": (81.50, 3.95, 4.61, 7.24, 9.21),
    "addsub": (76.71, 5.88, 9.24, 6.72, 10.92),
    "multiarith": (78.79, 8.33, 12.22, 6.11, 23.89),
    "svamp": (64.20, 4.33, 6.00, 5.00, 14.33),
    "date_understanding": (67.58, 25.23, 83.78, 17.12, 84.68),
    "tracking_shuffled_objects": (53.20, 38.67, 48.89, 49.33, 67.11),
    "last_letter_concatenation": (57.71, 4.67, 50.00, 50.67, 60.67),
    "coin_flip": (90.04, 77.33, 100.00, 99.33, 100.00),
    "strategy_qa": (53.45, 55.75, 59.97, 52.55, 60.84),
}


HEAD = """# Reproducing Fine-tune-CoT with SmolLM2-135M

Students: SmolLM2-135M-Instruct (float32), fine-tuned on the recorded text-davinci-002 zero-shot-CoT
rationales of the paper's train split (D=1, correct ones only), or on the gold answers alone (vanilla).
Epochs are chosen on a validation split carved from train (10%, seeded); where a task was run with several
settings, the row shows the setting whose Fine-tune-CoT student scored best on that validation split (and, for
the vanilla column, whose vanilla student did). The test split is only scored. Zero-shot and zero-shot-CoT are
prompting baselines on the same student. The paper's numbers come from its official results and, unlike ours,
take the best of 20 epochs chosen on the *test* split.

Caveats, read before the table: the recorded teacher is Kojima et al.'s text-davinci-002 run, not the
paper's own (see docs/data.md); a row is one run (one training seed) unless its seed columns give the mean ± sd
over several, and validation splits are small (26-160 questions), so the choice of epoch and setting is noisy.
Each row names its machine: the CPU rows ran on this project's 2-core development machine, the GPU rows on one
NVIDIA H200 or H100 lent for 15 minutes (each row names its card).
Generated by `benchmarks/reproduce.py` from `results/`; the notes at the end are `docs/results/NOTES.md`.
"""


def setting(args) -> str:
    """A run's settings as a folder name, e.g. full-e3-lr0.0001-nall-t128 or paper-full-nall-tauto-c1-k3-s2."""
    tokens = f"t{args.max_new_tokens or 'auto'}"
    if args.protocol == "paper":
        stops = (f"-p{args.patience}" if args.patience else "") + (
            f"-m{args.max_minutes:g}" if args.max_minutes else ""
        )
        name = f"paper-{'lora' if args.lora else 'full'}-n{args.max_examples or 'all'}-{tokens}{stops}"
    else:
        name = (
            f"{'lora' if args.lora else 'full'}-e{args.epochs or 2}-lr{args.lr:g}-n{args.max_examples or 'all'}"
            f"-{tokens}"
        )
    if args.protocol == "paper" and args.epochs:
        name += f"-e{args.epochs}"
    return (
        name
        + curation_tag(args)
        + ("-bc" if args.choice_by_content else "")
        + ("-calc" if args.calculator else "")
        + teacher_tag(args)
        + student_tag(args)
        + (f"-s{args.seed}" if args.seed else "")
    )


def teacher_tag(args) -> str:
    """The teacher and D in a setting's name, where they are not the recorded text-davinci-002 at D=1 (whose results
    keep their names): e.g. -gpt-3.5-turbo-instruct-d6, -text-davinci-002+gpt-3.5-turbo-instruct-d7."""
    return "" if args.teacher == RECORDED and args.num_samples == 1 else f"-{args.teacher}-d{args.num_samples}"


def student_tag(args) -> str:
    """The student in a setting's name, where it is not SmolLM2-135M (whose results keep their names): an alias
    such as -gemma3-270m. A path (a smoke test's tiny model) adds nothing."""
    return "" if args.student == "smollm2-135m" or "/" in args.student else f"-{args.student}"


def curation_tag(args) -> str:
    """The curation in a setting's name: none for the curation before issue #18 (the paper's filter, the teacher's
    option order, cut rationales kept), so that its results keep their names; "-q" for the curation since, then
    what differs from its defaults: -c1 the consistency filter on, -kK shuffled copies, -oteacher the teacher's
    option order, -kt cut rationales kept."""
    consistency = args.consistency == "on" if args.consistency else args.protocol != "paper"
    if args.choice_order == "teacher" and args.keep_truncated and not consistency and not args.permute_choices:
        return ""
    return (
        "-q"
        + ("-c1" if consistency else "")
        + (f"-k{args.permute_choices}" if args.permute_choices else "")
        + ("-oteacher" if args.choice_order == "teacher" else "")
        + ("-kt" if args.keep_truncated else "")
    )


def seeds_of(name: str) -> str:
    """The setting a seed's run belongs to: its name without the seed."""
    return re.sub(r"-s\d+$", "", name)


def seed_runs(args) -> list[tuple[str, argparse.Namespace]]:
    """Each task and seed of an invocation, as the task and that run's args (the invocation's, with its seed)."""
    return [(task, argparse.Namespace(**vars(args), seed=seed)) for task in args.tasks for seed in range(args.seeds)]


def config_for(task: str, args) -> dict:
    choice = task in CHOICE_TASKS
    train = {
        "protocol": args.protocol,
        "methods": ["ft_cot", "vanilla"],
        "batch_size": 8,
        "max_length": 384,
        "max_examples": args.max_examples or None,
        "patience": args.patience,
        "max_minutes": args.max_minutes,
        "checkpoint": not args.no_checkpoint,
        "seed": args.seed,
        **({"epochs": args.epochs or 2, "learning_rate": args.lr} if args.protocol == "custom" else {}),
        **({"epochs": args.epochs} if args.protocol == "paper" and args.epochs else {}),
        **({"lora": {"r": 32, "alpha": 64, "save": "merged"}} if args.lora else {}),
    }
    return {
        "task": task,
        "run_dir": str(ROOT / "runs" / "reproduce" / task / setting(args)),
        "teacher": teacher_config(args),
        "curate": {
            "val_fraction": 0.1,
            "seed": 0,
            "permute_seed": args.seed,
            "choice_order": args.choice_order,
            "permute_choices": args.permute_choices if choice else 0,
            "drop_truncated": not args.keep_truncated,
            **({"consistency": args.consistency == "on"} if args.consistency else {}),
        },
        "student": {"model": args.student},
        "train": train,
        "evaluate": {
            "baselines": args.baselines,
            "batch_size": args.eval_batch_size,
            "max_new_tokens": args.max_new_tokens,
            "max_questions": args.max_test,
            "choice_by_content": args.choice_by_content and choice,
            "calculator": args.calculator and task in NUMBER_TASKS,
        },
    }


def teacher_config(args) -> dict:
    """The recorded teacher: text-davinci-002 (train and test: its test accuracy is the teacher row), or another
    named source or several ("a+b": their completions of a question in that order), on the train split only when
    a source lacks test questions; a question a source has no rationale for is left out."""
    names = args.teacher.split("+")
    if names == [RECORDED]:
        return {"backend": "recorded", "num_samples": args.num_samples, "teach_on": ["train", "test"]}
    return {
        "backend": "recorded",
        "model": names[0],
        "records": names if len(names) > 1 else None,
        "num_samples": args.num_samples,
        "teach_on": ["train"],
        "on_missing": "skip",
    }


def machine(env: dict, precision: str = "float32") -> str:
    where = f"one {env['gpu']} GPU" if env.get("gpu") else f"{env['cpus']}-core CPU (no GPU)"
    return f"{where}, {precision}, torch {env['packages']['torch']}, transformers {env['packages']['transformers']}"


def collect_result(task: str, args, command: str, wall: float) -> dict:
    """The run folder's numbers as one cached result, results/<task>/<setting>.json."""
    from ftcot.artifacts import CurateSummary, Metrics, TrainSummary, parse_summary

    run_dir = ROOT / "runs" / "reproduce" / task / setting(args)
    # read through the models (a summary of another schema version is one line), as the dicts they wrote
    metrics = {m.parent.name: parse_summary(m, Metrics).dump() for m in (run_dir / "eval").glob("*/metrics.json")}
    students = {
        s.parent.name: parse_summary(s, TrainSummary).dump() for s in (run_dir / "students").glob("*/summary.json")
    }

    def recorded(key: str) -> dict:  # each method's metrics[key], where its evaluation wrote one
        return {m: metrics[m][key] for m in metrics if key in metrics[m]}

    keys = (
        "best_epoch",
        "best_val_accuracy",
        "examples",
        "tokens_per_epoch",
        "epochs",
        "epochs_trained",
        "stop_reason",
        "protocol",
        "precision",
        "wall_s",
        "tokens_per_s",
        "history",
    )
    result = {
        "task": task,
        "setting": setting(args),
        "seed": args.seed,
        "command": command,
        "config": config_for(task, args),
        "accuracy": {m: metrics[m]["accuracy"] for m in metrics},
        "n_test": metrics["ft_cot"]["n"],
        "ci95": {m: metrics[m]["ci95"] for m in metrics},
        "diagnostics": recorded("diagnostics"),
        "failures": recorded("failures"),
        "choice_by_content": recorded("choice_by_content"),
        "calculator": recorded("calculator"),
        "max_new_tokens": metrics["ft_cot"].get("max_new_tokens"),
        "curate": parse_summary(run_dir / "curate" / "summary.json", CurateSummary).dump(),
        "train": {m: {k: s.get(k) for k in keys} for m, s in students.items()},
        "eval_questions_per_s": {m: metrics[m].get("questions_per_s") for m in metrics},
        "timings_s": json.loads((run_dir / "timings.json").read_text()),
        "wall_s_this_invocation": round(wall, 1),
        "machine": machine(
            json.loads((run_dir / "environment.json").read_text()),
            "bf16 autocast" if students["ft_cot"].get("precision") == "bf16" else "float32",
        ),
    }
    path = RESULTS / task / f"{setting(args)}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(result, indent=1) + "\n")
    return result


def run_task(task: str, args, command: str) -> dict:
    """One task in this process, stage after stage (`ftcot run`)."""
    from ftcot.config import RunConfig
    from ftcot.pipeline import context, run

    start = time.perf_counter()
    run(context(RunConfig.model_validate(config_for(task, args))))
    return collect_result(task, args, command, time.perf_counter() - start)


def run_side_by_side(todo: list[tuple[str, argparse.Namespace]], args, commands: dict[str, str]) -> dict[str, str]:
    """Every run's stages as `ftcot` processes, at most `args.jobs` at once: teach and curate here, then the
    run's students train in parallel, then it is evaluated. Each process logs to its run folder's logs/.
    Returns the runs (task/setting) that failed, with why; the others' results are cached as they finish."""
    import subprocess
    import threading
    from concurrent.futures import ThreadPoolExecutor

    from ftcot.config import RunConfig
    from ftcot.files import write_json
    from ftcot.pipeline import context, start_run
    from ftcot.stages.curate import run as curate_stage
    from ftcot.stages.teach import run as teach
    from ftcot.students.load import resolve

    resolve(args.student)  # convert the bundled student once, before the processes that load it
    slots = threading.BoundedSemaphore(args.jobs)

    def stage(run_dir: Path, name: str, argv: list[str]) -> float:
        (run_dir / "logs").mkdir(exist_ok=True)
        with slots, open(run_dir / "logs" / f"{name}.log", "w") as log:
            start = time.perf_counter()
            code = subprocess.run(
                [sys.executable, "-m", "ftcot.cli", *argv],
                stdout=log,
                stderr=subprocess.STDOUT,
                env={**os.environ, "PYTHONUNBUFFERED": "1"},
            ).returncode
        if code != 0:
            raise RuntimeError(f"{run_dir.name} {name} exited with {code}: see {run_dir}/logs/{name}.log")
        return round(time.perf_counter() - start, 2)

    def one_run(task: str, run: argparse.Namespace) -> dict:
        start = time.perf_counter()
        ctx = context(RunConfig.model_validate(config_for(task, run)))
        cfg, run_dir = ctx.cfg, ctx.run.root
        start_run(ctx)
        teach(ctx)
        curate_stage(ctx)
        timings = {"teach_curate": round(time.perf_counter() - start, 2)}
        config = str(run_dir / "config.yaml")
        methods = cfg.train.methods
        with ThreadPoolExecutor(len(methods)) as pool:
            train_s = list(pool.map(lambda m: stage(run_dir, f"train-{m}", ["train", config, "--method", m]), methods))
        timings = {
            **timings,
            **{f"train_{m}": t for m, t in zip(methods, train_s)},
            "evaluate": stage(run_dir, "evaluate", ["evaluate", config]),
        }
        write_json(timings, run_dir / "timings.json")
        result = collect_result(task, run, commands[task], time.perf_counter() - start)
        print(f"{task}/{setting(run)}: {json.dumps(result['accuracy'])}", flush=True)
        return result

    failed = {}
    with ThreadPoolExecutor(len(todo)) as pool:
        futures = {f"{task}/{setting(run)}": pool.submit(one_run, task, run) for task, run in todo}
        for name, future in futures.items():
            try:
                future.result()
            except Exception as exc:  # one run's failure must not lose the others' results
                failed[name] = str(exc)
                print(f"{name}: FAILED: {exc}", flush=True)
    return failed


class GPUMonitor:
    """Samples the GPU's utilisation and memory once a second (NVML) while the runs go on."""

    def __init__(self):
        import threading

        self.samples: list[tuple[int, int]] = []
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._poll, daemon=True)

    def _poll(self):
        import pynvml

        pynvml.nvmlInit()
        handle = pynvml.nvmlDeviceGetHandleByIndex(0)
        while not self.stop.wait(1.0):
            util = pynvml.nvmlDeviceGetUtilizationRates(handle)
            self.samples.append((util.gpu, pynvml.nvmlDeviceGetMemoryInfo(handle).used // 2**20))

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.stop.set()
        self.thread.join()

    def summary(self) -> dict:
        if not self.samples:
            return {}
        util = [u for u, _ in self.samples]
        return {
            "seconds": len(util),
            "mean_utilisation_pct": round(sum(util) / len(util), 1),
            "busy_share_pct": round(100 * sum(u > 0 for u in util) / len(util), 1),
            "max_memory_mib": max(m for _, m in self.samples),
        }


def teacher_of(result: dict) -> tuple[str, int]:
    """(the teacher, D) a result's run learned from: its config's recorded source(s) and num_samples."""
    t = result.get("config", {}).get("teacher", {})
    records = t.get("records")
    name = "+".join(records) if isinstance(records, list) else t.get("model", RECORDED)
    return name, t.get("num_samples", 1)


def attempts(diverse: bool = False) -> dict[str, list[dict]]:
    """Every cached result by task, the chosen one (best Fine-tune-CoT validation accuracy, without the calculator)
    first: those of the recorded text-davinci-002 at D=1, or (diverse) those of any other teacher or D."""
    by_task = {}
    for task in TASKS:
        runs = [
            r
            for p in sorted((RESULTS / task).glob("*.json"))
            if (teacher_of(r := json.loads(p.read_text())) != (RECORDED, 1)) == diverse
        ]
        # A run validated with the calculator has the calculator's validation accuracy: it is chosen only where
        # no run without it was made.
        by_task[task] = sorted(
            runs,
            key=lambda r: (
                bool(r.get("config", {}).get("evaluate", {}).get("calculator")),
                -(r["train"]["ft_cot"]["best_val_accuracy"] or 0.0),
            ),
        )
    return by_task


def diverse_markdown(by_task: dict[str, list[dict]]) -> str:
    """One row per run of another teacher or D: its teacher and D in cells of their own, both students, the
    curation, and the paper's best <=0.3B diverse-reasoning student beside it."""
    lines = [
        "| task | teacher | D | seed | FT-CoT | vanilla | FT-CoT > vanilla | FT-CoT read by content "
        "| paper: best <=0.3B, diverse | FT-CoT epoch: best of trained | samples | kept | dropped (why) "
        "| student | machine |",
        "|---|" + "---|" * 14,
    ]
    for task in TASKS:
        for r in sorted(by_task[task], key=lambda r: (teacher_of(r), r["seed"])):
            teacher, d = teacher_of(r)
            a, c = r["accuracy"], r["curate"]
            verdict = "yes" if a["ft_cot"] > a["vanilla"] else "tie" if a["ft_cot"] == a["vanilla"] else "**no**"
            content = (r.get("choice_by_content") or {}).get("ft_cot")
            by_content = f"{content['accuracy']:.2f}" if content else ""
            dropped = ", ".join(f"{why} {n}" for why, n in sorted(c["removed"].items(), key=lambda kv: -kv[1]))
            lines.append(
                f"| {task} | `{teacher}` | D={d} | {r['seed']} | {a['ft_cot']:.2f} | {a['vanilla']:.2f} | {verdict} "
                f"| {by_content} | {PAPER[task][4]:.2f} "
                f"| {_trained(r['train']['ft_cot'])} | {c['samples_drawn']} | {c['kept']} | {dropped or 'none'} "
                f"| {student_of(r)} | {r['machine'].split(', torch')[0]} |"
            )
    return "\n".join(lines)


def d_gain_markdown(by_task: dict[str, list[dict]]) -> str:
    """Fine-tune-CoT at each D > 1 against D = 1 of the same teacher and setting, each the mean over its seeds,
    paired over the test questions through the committed predictions: the gain and its 95% interval from 10,000
    bootstrap resamples of the questions (a fixed generator, so the page is the same each time it is written)."""
    import numpy as np

    lines = [
        "| task | teacher | D | seeds at D | seeds at D=1 | FT-CoT at D (mean) | at D=1 (mean) | gain | 95% interval "
        "(paired bootstrap over questions) | test n |",
        "|---|" + "---|" * 9,
    ]
    for task in TASKS:
        groups: dict[tuple[str, str], dict[int, list[np.ndarray]]] = {}
        for r in by_task[task]:
            path = RESULTS / task / f"{r['setting']}.predictions" / "ft_cot.jsonl"
            if not path.exists():
                continue
            rows = sorted((json.loads(line) for line in path.read_text().splitlines()), key=lambda p: p["sample_index"])
            teacher, d = teacher_of(r)
            base = re.sub(r"-d\d+(-s\d+)?$", "", r["setting"])
            groups.setdefault((teacher, base), {}).setdefault(d, []).append(np.array([p["correct"] for p in rows]))
        for (teacher, _), by_d in sorted(groups.items()):
            if 1 not in by_d:
                continue
            one = np.mean(by_d[1], axis=0)
            for d in sorted(by_d)[1:]:
                diff = 100 * (np.mean(by_d[d], axis=0) - one)
                resampled = diff[np.random.default_rng(0).integers(0, len(diff), (10_000, len(diff)))].mean(axis=1)
                low, high = np.percentile(resampled, [2.5, 97.5])
                lines.append(
                    f"| {task} | `{teacher}` | D={d} | {len(by_d[d])} | {len(by_d[1])} | {100 * np.mean(by_d[d]):.2f} "
                    f"| {100 * one.mean():.2f} | {diff.mean():+.2f} | {low:+.2f} to {high:+.2f} | {len(diff)} |"
                )
    return "\n".join(lines) if len(lines) > 2 else ""


def calculator_markdown(by_task: dict[str, list[dict]]) -> str:
    """Each run scored with the calculator too: the same student without and with it, vanilla beside them, the
    calculator's calls and how often the student's own number at them was wrong, the paper's targets."""
    lines = [
        "| task | setting | FT-CoT | FT-CoT + calculator | vanilla | FT-CoT + calculator > vanilla "
        "| calls per output | own number wrong at a call % | paper: best <=0.3B D=1 | paper: best <=0.3B diverse "
        "(target) | FT-CoT epoch: best of trained (chosen with the calculator) | machine |",
        "|---|" + "---|" * 11,
    ]
    for task in TASKS:
        for r in sorted(by_task[task], key=lambda r: r["setting"]):
            c = (r.get("calculator") or {}).get("ft_cot")
            if not c:
                continue
            a, _, gpt2, t5, ada, best = r["accuracy"], *PAPER[task]
            lines.append(
                f"| {task} | {r['setting']} | {a['ft_cot']:.2f} | {c['accuracy']:.2f} | {a['vanilla']:.2f} "
                f"| {'yes' if c['accuracy'] > a['vanilla'] else '**no**'} | {c['calls']['per_output']:g} "
                f"| {c['calls']['own_wrong_pct']} | {max(gpt2, t5, ada):.2f} | {best:.2f} "
                f"| {_trained(r['train']['ft_cot'])} | {r['machine'].split(', torch')[0]} |"
            )
    return "\n".join(lines) if len(lines) > 2 else ""


def plot_diverse(by_task: dict[str, list[dict]], path: Path) -> bool:
    """Fine-tune-CoT's test accuracy against D per task and teacher (mean over seeds, each seed a dot), vanilla
    dashed and the paper's best <=0.3B diverse-reasoning student dotted, in the task's colour."""
    tasks = [t for t in TASKS if by_task[t]]
    if not tasks:
        return False
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4.5))
    for i, task in enumerate(tasks):
        colour = f"C{i}"
        by_line: dict[str, dict[int, list[float]]] = {}
        for r in by_task[task]:
            teacher, d = teacher_of(r)
            by_line.setdefault(teacher, {}).setdefault(d, []).append(r["accuracy"]["ft_cot"])
            ax.scatter([d], [r["accuracy"]["ft_cot"]], color=colour, s=12, alpha=0.6)
        for teacher, points in by_line.items():
            ds = sorted(points)
            ax.plot(
                ds,
                [statistics.mean(points[d]) for d in ds],
                marker="o",
                color=colour,
                label=f"{task}: Fine-tune-CoT ({teacher})",
            )
        vanilla = statistics.mean(r["accuracy"]["vanilla"] for r in by_task[task])
        ax.axhline(vanilla, color=colour, linestyle="--", linewidth=1, label=f"{task}: vanilla (mean)")
        ax.axhline(
            PAPER[task][4],
            color=colour,
            linestyle=":",
            linewidth=1,
            label=f"{task}: paper, best <=0.3B diverse ({PAPER[task][4]:.2f})",
        )
    ds = sorted({teacher_of(r)[1] for task in tasks for r in by_task[task]} | {1, 6})
    ax.set(
        xlabel="D (teacher rationales per train question)",
        ylabel="test accuracy (%)",
        xticks=ds,
        xlim=(ds[0] - 0.5, ds[-1] + 0.5),
        ylim=(0, 100),
        title="SmolLM2-135M: accuracy against D",
    )
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return True


def score(accuracy: dict, method: str) -> str:
    """A method's test accuracy as a cell; "not run" where the run left it out (--baselines)."""
    return f"{accuracy[method]:.2f}" if method in accuracy else "not run"


def _trained(student: dict) -> str:
    """e.g. '11 of 13 (time budget)': the winning epoch, the epochs trained and why training stopped."""
    done = student.get("epochs_trained") or student["epochs"]
    return f"{student['best_epoch']} of {done} ({student.get('stop_reason') or 'completed'})"


def student_of(result: dict) -> str:
    """The student a result's run trained (its config's; SmolLM2-135M for results written before it was named)."""
    return result.get("config", {}).get("student", {}).get("model", "smollm2-135m")


def protocol_markdown(by_task: dict[str, list[dict]]) -> str:
    """One row per task and paper-protocol run (the lent GPU's, then any CPU ones), with both targets."""
    lines = [
        "| task | setting | student | FT-CoT | vanilla | FT-CoT > vanilla | target D=1 (paper, <=0.3B) "
        "| FT-CoT vs D=1 target | moonshot (diverse) | zero-shot | zero-shot-CoT | FT-CoT epoch: best of trained (stop) "
        "| vanilla epoch: best of trained (stop) | max new tokens | machine |",
        "|---|" + "---|" * 14,
    ]
    for task in TASKS:
        runs = sorted(
            (x for x in by_task[task] if x["setting"].startswith("paper-")),
            key=lambda x: (x["setting"] not in PAPER_PROTOCOL_RUNS, x["setting"]),
        )
        if not runs:
            lines.append(f"| {task} | not run | | | | | | | | | | | | | |")
        for r in runs:
            _, gpt2, t5, ada, best = PAPER[task]
            a, target = r["accuracy"], max(gpt2, t5, ada)
            verdict = "yes" if a["ft_cot"] > a["vanilla"] else "tie" if a["ft_cot"] == a["vanilla"] else "**no**"
            lines.append(
                f"| {task} | {r['setting']} | {student_of(r)} | {a['ft_cot']:.2f} | {a['vanilla']:.2f} | {verdict} "
                f"| {target:.2f} "
                f"| {a['ft_cot'] - target:+.2f} | {best:.2f} | {score(a, 'zero_shot')} | {score(a, 'zero_shot_cot')} "
                f"| {_trained(r['train']['ft_cot'])} | {_trained(r['train']['vanilla'])} | {r.get('max_new_tokens')} "
                f"| {r['machine'].split(', torch')[0]} |"
            )
    return "\n".join(lines)


def diagnostics_markdown(by_task: dict[str, list[dict]], name: str) -> str:
    """What the students' wrong answers look like, per task (percent of test outputs)."""
    lines = [
        "| task | method | no `-->` (cut off or never answered) | parsed to nothing "
        "| most frequent answer (share) | majority gold answer (share of predictions) |",
        "|---|---|---|---|---|---|",
    ]
    for task in TASKS:
        r = next((x for x in by_task[task] if x["setting"] == name), None)
        for method in ("ft_cot", "vanilla"):
            d = (r or {}).get("diagnostics", {}).get(method)
            if d:
                marker = "" if d["no_answer_marker"] is None else f"{d['no_answer_marker']:.2f}"
                lines.append(
                    f"| {task} | {method} | {marker} | {d['unparsed']:.2f} "
                    f"| {d['most_frequent_prediction']} ({d['most_frequent_share']:.2f}) "
                    f"| {d['majority_answer']} ({d['majority_answer_share']:.2f}) |"
                )
    return "\n".join(lines)


def failures_markdown(by_task: dict[str, list[dict]]) -> str:
    """Each run's wrong answers by kind and its choice answers read by content, where its evaluation recorded
    them ("" where none did)."""
    lines = [
        "| task | setting | method | accuracy | read by content | wrong | looping | wrong answers by kind |",
        "|---|" + "---|" * 7,
    ]
    for task in TASKS:
        for r in sorted(by_task[task], key=lambda x: x["setting"]):
            failures, content = r.get("failures", {}), r.get("choice_by_content", {})
            for method in sorted({*failures, *content}):
                f, c = failures.get(method), content.get(method)
                by_content = f"{c['accuracy']:.2f}" if c else ""
                wrong = " | | "
                if f:
                    kinds = sorted(f["kinds"].items(), key=lambda kv: -kv[1])
                    wrong = f"{f['n_wrong']} | {f['loops']} | " + ", ".join(f"{kind} {n}" for kind, n in kinds)
                lines.append(
                    f"| {task} | {r['setting']} | {method} | {r['accuracy'][method]:.2f} | {by_content} | {wrong} |"
                )
    return "\n".join(lines) if len(lines) > 2 else ""


def over_seeds(runs_of_task: list[dict], chosen: dict, method: str) -> str:
    """Mean ± sd of a method's test accuracy over the seeds of the chosen run's setting ("" for a single seed)."""
    scores = [r["accuracy"][method] for r in runs_of_task if seeds_of(r["setting"]) == seeds_of(chosen["setting"])]
    if len(scores) < 2:
        return ""
    return f"{statistics.mean(scores):.2f} ± {statistics.stdev(scores):.2f} ({len(scores)} seeds)"


def results_markdown(by_task: dict[str, list[dict]]) -> str:
    lines = [
        "| task | teacher (175B zs-CoT) | paper: GPT-2 124M FT-CoT | paper: Flan-T5 220M FT-CoT | paper: ada 0.3B FT-CoT "
        "| paper: best <=0.3B, diverse (target) | ours: SmolLM2-135M FT-CoT (D=1) | ours: vanilla FT "
        "| FT-CoT over its setting's seeds (mean ± sd) | vanilla over its setting's seeds | ours: zero-shot "
        "| ours: zero-shot-CoT | FT-CoT vs target | setting (chosen on validation) "
        "| FT-CoT / vanilla epoch: best of trained (stop) | test n | machine |",
        "|---|" + "---|" * 16,
    ]
    for task in TASKS:
        teacher, gpt2, t5, ada, best = PAPER[task]
        if not by_task[task]:
            lines.append(
                f"| {task} | {teacher:.2f} | {gpt2:.2f} | {t5:.2f} | {ada:.2f} | {best:.2f} | not run yet "
                "| | | | | | | | | | |"
            )
            continue
        r = by_task[task][0]
        # The vanilla baseline is chosen on its own validation accuracy, like Fine-tune-CoT.
        v = max(by_task[task], key=lambda x: x["train"]["vanilla"]["best_val_accuracy"] or 0.0)
        a = r["accuracy"]
        epochs = f"{_trained(r['train']['ft_cot'])} / {_trained(v['train']['vanilla'])}"
        chosen = r["setting"] if v is r else f"{r['setting']} / vanilla: {v['setting']}"
        machines = {x["machine"].split(",")[0] for x in (r, v)}  # "one NVIDIA H200 GPU", "2-core CPU (no GPU)"
        lines.append(
            f"| {task} | {teacher:.2f} (recorded: {a.get('teacher', float('nan')):.2f}) | {gpt2:.2f} "
            f"| {t5:.2f} | {ada:.2f} | {best:.2f} | {a['ft_cot']:.2f} | {v['accuracy']['vanilla']:.2f} "
            f"| {over_seeds(by_task[task], r, 'ft_cot')} | {over_seeds(by_task[task], v, 'vanilla')} "
            f"| {score(a, 'zero_shot')} | {score(a, 'zero_shot_cot')} | {a['ft_cot'] - best:+.2f} | {chosen} "
            f"| {epochs} | {r['n_test']} | {' / '.join(sorted(machines))} |"
        )
    return "\n".join(lines)


def details_markdown(by_task: dict[str, list[dict]]) -> str:
    lines = []
    for task in TASKS:
        for i, r in enumerate(by_task[task]):
            ft, va, a = r["train"]["ft_cot"], r["train"]["vanilla"], r["accuracy"]
            lines.append(
                f"- **{task}**, {r['setting']}{' (chosen)' if i == 0 else ''}: test FT-CoT {a['ft_cot']:.2f}, vanilla "
                f"{a['vanilla']:.2f}; `{r['command']}`; curated {r['curate']['kept']} Fine-tune-CoT examples "
                f"(removed {r['curate']['removed']}), trained on {ft['examples']} ({ft['tokens_per_epoch']:,} tokens "
                f"an epoch, {ft['tokens_per_s']} tokens/s, {ft['wall_s'] / 60:.1f} min, epoch {_trained(ft)}); "
                f"vanilla on {va['examples']} ({va['tokens_per_s']} tokens/s, epoch {_trained(va)}); validation "
                f"accuracy by epoch FT-CoT {[h['val_accuracy'] for h in ft['history']]}, vanilla "
                f"{[h['val_accuracy'] for h in va['history']]}; stage times {r['timings_s']} s; {r['machine']}."
            )
    return "\n".join(lines) or "none yet"


# The lent-GPU runs (benchmarks/lent_gpu.sh): all 9 tasks, then again the 5 whose students m8 had cut short.
PAPER_PROTOCOL_RUNS = ("paper-full-nall-tauto-m8", "paper-full-nall-tauto-m9")


def rebased(markdown: str, prefix: str) -> str:
    """Markdown written in a folder (docs/results/NOTES.md), quoted from the folder above it (docs/): each relative
    link prefixed with the way down, then normalised (../../results/x from docs/results/ is ../results/x)."""
    return re.sub(r"\]\((?![a-z]+:|#|/)([^)\s]+)", lambda m: f"]({posixpath.normpath(prefix + m.group(1))}", markdown)


def write_results_doc() -> None:
    by_task = attempts()
    notes = WRITEUPS / "NOTES.md"
    batches = [
        json.loads(p.read_text()) for name in PAPER_PROTOCOL_RUNS if (p := RESULTS / f"batch-{name}.json").exists()
    ]
    protocol = ""
    if batches:
        runs = []
        for b in batches:
            gpu = b.get("gpu") or {}
            seeds = f"{b['seeds']} seeds x " if b.get("seeds", 1) > 1 else ""
            runs.append(
                f"- **{b['setting']}**: {len(b['tasks'])} tasks x {seeds}2 students side by side on one GPU (`--jobs "
                f"{b['jobs']}`, {b['wall_s']:.0f} s in all; GPU utilisation {gpu.get('mean_utilisation_pct')}% on "
                f"average, busy {gpu.get('busy_share_pct')}% of the seconds, {gpu.get('max_memory_mib')} MiB at "
                f"most), each student stopping before an epoch that would end past {b['max_minutes']:g} minutes. "
                f"Command: `{b['command']}` (through `benchmarks/lent_gpu.sh`)."
            )
        protocol = (
            "\n## The paper's protocol\n\nAdamW at a constant lr 3e-4, batch 8, up to 20 "
            "epochs, validation accuracy after every epoch, the best epoch kept; every curated example; generation "
            "budget from the curated completions. The stop column says how far each student got.\n\n"
            + "\n".join(runs)
            + "\n\nCPU rows ran the same protocol on the 2-core machine with a longer budget (see "
            "the notes).\n\n"
            + protocol_markdown(by_task)
            + "\n\nFailure diagnostics of the GPU runs (test split, % of outputs):\n\n"
            + "\n\n".join(f"{name}:\n\n" + diagnostics_markdown(by_task, name) for name in PAPER_PROTOCOL_RUNS)
            + "\n"
        )
    # The measurements of what ftcot adds to the paper, written by their own benchmarks.
    beyond = [
        (title, WRITEUPS / name)
        for title, name in (
            ("Adaptive diverse reasoning against a fixed D", "adaptive.md"),
            ("Distilling step-by-step and self-consistency on a real student", "beyond_student.md"),
        )
    ]
    failures = failures_markdown(by_task)
    beyond_text = "".join(f"\n### {title}\n\n{path.read_text()}" for title, path in beyond if path.exists())
    diverse = attempts(diverse=True)
    diverse_text = ""
    if any(diverse.values()):
        plotted = plot_diverse(diverse, WRITEUPS / "accuracy_vs_D.png")
        diverse_text = (
            "\n## Diverse reasoning: another teacher and D rationales a question\n\nFine-tune-CoT from several "
            "teacher rationales a train question (the first D of each, then curated), under the paper's protocol "
            "with the epoch count of the setting's name (`-eN`) for every D, the epoch kept on validation; vanilla "
            "trains on the gold answers alone, so it does not depend on D. `gpt-3.5-turbo-instruct` is the named "
            "source of Mentor-KD's released rationales (docs/data.md). Each row is one run (its seed), on the machine "
            "it names.\n\n"
            + diverse_markdown(diverse)
            + "\n"
            + ("\n![accuracy against D](results/accuracy_vs_D.png)\n" if plotted else "")
        )
        gain = d_gain_markdown(diverse)
        if gain:
            diverse_text += (
                "\nD against D=1, where both have committed test predictions: the same test questions, each "
                "scored by the mean over seeds.\n\n" + gain + "\n"
            )
    calculator = calculator_markdown(by_task)
    if calculator:
        diverse_text += (
            "\n## The calculator (issue #29)\n\nThe same Fine-tune-CoT student scored without and with "
            "a calculator in decoding (at each `=` after an arithmetic expression its value is written "
            "and the student goes on; `evaluate.calculator`), its epoch chosen on validation with the "
            "calculator.\n\n" + calculator + "\n"
        )
    text = (
        HEAD
        + protocol
        + diverse_text
        + (
            f"\nWrong answers by kind (test split, counts), and choice answers read by the option their rationale "
            f"names rather than by the letter after `-->`:\n\n{failures}\n"
            if failures
            else ""
        )
        + "\n## Every setting, the one chosen on validation per task\n\n"
        + results_markdown(by_task)
        + "\n\n## Every run, by task\n\n"
        + details_markdown(by_task)
        + "\n"
        + (f"\n## Beyond the paper\n{beyond_text}" if beyond_text else "")
        + ("\n" + rebased(notes.read_text(), "results/") if notes.exists() else "")
    )
    (ROOT / "docs" / "RESULTS.md").write_text(text)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    parser.add_argument("--tasks", nargs="+", default=TASKS, choices=TASKS)
    parser.add_argument(
        "--protocol",
        choices=["custom", "paper"],
        default="custom",
        help="paper: AdamW, constant lr 3e-4, batch 8, 20 epochs (--epochs and --lr are ignored)",
    )
    parser.add_argument(
        "--epochs",
        type=int,
        default=None,
        help="default 2; under --protocol paper its 20, unless given (the name then says -eN)",
    )
    parser.add_argument(
        "--teacher",
        default=RECORDED,
        help="a named recorded source (text-davinci-002, gpt-3.5-turbo-instruct) or several joined "
        "by '+', their completions of a question in that order",
    )
    parser.add_argument("--num-samples", type=int, default=1, help="teacher.num_samples: D, rationales a question")
    parser.add_argument("--lr", type=float, default=1e-4)
    parser.add_argument("--patience", type=int, default=None, help="stop after N epochs without a validation gain")
    parser.add_argument("--max-minutes", type=float, default=None, help="training time budget per student")
    parser.add_argument(
        "--max-examples",
        type=int,
        default=200,
        help="training examples per method (CPU budget); 0: all curated examples",
    )
    parser.add_argument(
        "--max-new-tokens",
        type=int,
        default=None,
        help="default: from the curated completions' lengths (evaluate.max_new_tokens)",
    )
    parser.add_argument("--eval-batch-size", type=int, default=None, help="default: 256 on a GPU, 64 on the CPU")
    parser.add_argument("--max-test", type=int, default=None, help="first N test questions (default: all)")
    parser.add_argument("--lora", action="store_true")
    parser.add_argument("--no-checkpoint", action="store_true", help="no per-epoch checkpoint (no resume, no writes)")
    parser.add_argument("--seeds", type=int, default=1, help="train each setting with training seeds 0..N-1")
    parser.add_argument(
        "--consistency",
        choices=["on", "off"],
        default=None,
        help="curate.consistency (default: the config's own, off under --protocol paper)",
    )
    parser.add_argument("--permute-choices", type=int, default=0, help="curate.permute_choices on the choice tasks")
    parser.add_argument("--choice-order", choices=["test", "teacher"], default="test", help="curate.choice_order")
    parser.add_argument("--choice-by-content", action="store_true", help="evaluate.choice_by_content on choice tasks")
    parser.add_argument(
        "--baselines",
        nargs="*",
        default=list(BASELINES),
        help="evaluate.baselines, the base student's prompting rows (none: leave them out; no trained student changes)",
    )
    parser.add_argument(
        "--calculator",
        action="store_true",
        help="evaluate.calculator on the number tasks (validation with it too): a second row",
    )
    parser.add_argument(
        "--keep-truncated",
        action="store_true",
        help="curate.drop_truncated: false (with --choice-order teacher: the curation before #18)",
    )
    parser.add_argument("--jobs", type=int, default=1, help="stages run side by side as separate processes")
    parser.add_argument(
        "--student",
        default="smollm2-135m",
        help="the student: smollm2-135m, gemma3-270m (the setting's name says which), or a path",
    )
    parser.add_argument("--force", action="store_true", help="rerun settings that have results")
    parser.add_argument(
        "--doc-only",
        action="store_true",
        help="only rewrite docs/RESULTS.md (and its plot) from the cached results/; run nothing",
    )
    args = parser.parse_args(argv)
    args.baselines = [b for b in args.baselines if b != "none"]
    return args


def main() -> None:
    args = parse_args()
    if args.doc_only:
        write_results_doc()
        return
    todo = []
    for task, run in seed_runs(args):
        if (RESULTS / task / f"{setting(run)}.json").exists() and not args.force:
            print(f"{task}: cached in results/{task}/{setting(run)}.json")
        else:
            todo.append((task, run))
    commands = {}  # one per task: its seeds share it
    for task in dict.fromkeys(task for task, _ in todo):
        flags = (
            [f"--tasks {task}", f"--protocol {args.protocol}"]
            + ([f"--epochs {args.epochs or 2}", f"--lr {args.lr:g}"] if args.protocol == "custom" else [])
            + ([f"--epochs {args.epochs}"] if args.protocol == "paper" and args.epochs else [])
            + ([f"--teacher {args.teacher}", f"--num-samples {args.num_samples}"] if teacher_tag(args) else [])
            + [f"--max-examples {args.max_examples}"]
            + ([f"--patience {args.patience}"] if args.patience else [])
            + ([f"--max-minutes {args.max_minutes:g}"] if args.max_minutes else [])
            + ([f"--max-new-tokens {args.max_new_tokens}"] if args.max_new_tokens else [])
            + ([f"--eval-batch-size {args.eval_batch_size}"] if args.eval_batch_size else [])
            + ([f"--max-test {args.max_test}"] if args.max_test else [])
            + (["--lora"] if args.lora else [])
            + (["--no-checkpoint"] if args.no_checkpoint else [])
            + ([f"--seeds {args.seeds}"] if args.seeds > 1 else [])
            + ([f"--consistency {args.consistency}"] if args.consistency else [])
            + ([f"--permute-choices {args.permute_choices}"] if args.permute_choices else [])
            + ([f"--choice-order {args.choice_order}"] if args.choice_order != "test" else [])
            + (["--choice-by-content"] if args.choice_by_content else [])
            + (["--calculator"] if args.calculator else [])
            + ([f"--baselines {' '.join(args.baselines) or 'none'}"] if tuple(args.baselines) != BASELINES else [])
            + (["--keep-truncated"] if args.keep_truncated else [])
            + ([f"--student {args.student}"] if student_tag(args) else [])
        )
        commands[task] = "FTCOT_DATA_DIR=../shared/data .venv/bin/python benchmarks/reproduce.py " + " ".join(flags)
    name = setting(argparse.Namespace(**vars(args), seed=0))  # the batch's, for all its seeds
    if args.jobs > 1 and todo:
        import torch

        start = time.perf_counter()
        monitor = GPUMonitor() if torch.cuda.is_available() else None
        if monitor:
            with monitor:
                failed = run_side_by_side(todo, args, commands)
        else:
            failed = run_side_by_side(todo, args, commands)
        batch = {
            "tasks": list(commands),
            "seeds": args.seeds,
            "failed": failed,
            "jobs": args.jobs,
            "setting": name,
            "max_minutes": args.max_minutes,
            "wall_s": round(time.perf_counter() - start, 1),
            "gpu": monitor.summary() if monitor else None,
            "command": "FTCOT_DATA_DIR=../shared/data .venv/bin/python benchmarks/reproduce.py "
            + " ".join(sys.argv[1:]),
        }
        (RESULTS / f"batch-{name}.json").write_text(json.dumps(batch, indent=1) + "\n")
        print(json.dumps(batch), flush=True)
        if failed:
            write_results_doc()
            sys.exit(f"{len(failed)} of {len(todo)} runs failed: {', '.join(failed)} (logs in each run folder)")
    else:
        for task, run in todo:
            result = run_task(task, run, commands[task])
            print(f"{task}/{setting(run)}: {json.dumps(result['accuracy'])}", flush=True)
            write_results_doc()
    write_results_doc()


if __name__ == "__main__":
    sys.exit(main())
