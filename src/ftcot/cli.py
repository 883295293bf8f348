"""The `ftcot` command line. User mistakes print one line on stderr and exit with code 2; a teacher stopped at
its budget exits with code 3."""

from __future__ import annotations

import sys
from pathlib import Path

import typer
from rich.console import Console
from rich.table import Table

from ftcot import data as data_files
from ftcot import judge
from ftcot.config import RunConfig, load_config
from ftcot.curate import curate, training_frame
from ftcot.errors import BudgetStop, UserError
from ftcot.export import export
from ftcot.fetch import fetch
from ftcot.log import set_verbosity
from ftcot.methods import METHODS, PromptContext
from ftcot.report import report
from ftcot.tasks import BUILTIN, load_task
from ftcot.tasks.prompts import load_few_shot_prompts, zero_shot_cot_step1
from ftcot.teachers import make_recorded_teacher
from ftcot.teachers.records import read_records, read_shared_jsonl, recorded_teacher_path

# The stages (ftcot.pipeline, ftcot.stages) are imported by the commands that run them: they bring the openai
# SDK, and the students torch and transformers, which take a second or more to import.

app = typer.Typer(
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
    help="Fine-tune-CoT: distil chain-of-thought reasoning from a large teacher into a small student.",
)
data_app = typer.Typer(no_args_is_help=True, help="Fetch and verify the benchmark data.")
app.add_typer(data_app, name="data")
console = Console(width=None if sys.stdout.isatty() else 160)  # no wrapping when piped


@app.callback()
def options(
    quiet: bool = typer.Option(False, "--quiet", "-q", help="Warnings and errors only: no stage lines, no bars."),
    verbose: bool = typer.Option(False, "--verbose", "-v", help="Also say why each stage reruns."),
) -> None:
    if quiet and verbose:
        raise UserError("--quiet and --verbose contradict each other: give one")
    set_verbosity(quiet, verbose)


DataDir = typer.Option(
    None,
    "--data-dir",
    envvar="FTCOT_DATA_DIR",
    help="Data folder (default: $FTCOT_DATA_DIR, else ~/.cache/ftcot/data).",
)


ConfigOption = typer.Option(None, "--config", help="A run config whose custom task is listed too.")


@app.command("tasks")
def tasks_command(data_dir: Path | None = DataDir, config: Path | None = ConfigOption) -> None:
    """List the tasks with train/test counts and recorded teacher coverage of each split."""
    root = data_files.data_dir(data_dir)
    tasks = [load_task(key, root) for key in BUILTIN]
    if config is not None:
        tasks.append(_context(config).task)  # a custom task is read and checked
    table = Table("task", "name", "answer", "train", "test", "teacher on train", "teacher on test")
    for spec in tasks:
        key = spec.key
        if not spec.available():
            table.add_row(key, spec.name, spec.answer_format.name, "not fetched", "", "", "")  # `ftcot data fetch`
            continue
        split = spec.split()
        teacher_path = root / data_files.TEACHER_DIR / f"{key}.jsonl"
        covered = {r.sample_index for r in read_shared_jsonl(teacher_path)} if teacher_path.is_file() else set()
        train_file_missing = not (spec.root / spec.decl.train).exists()
        train = f"{len(split['train'])}" + (" (raw file missing)" if train_file_missing else "")
        table.add_row(
            key,
            spec.name,
            spec.answer_format.name,
            train,
            str(len(split["test"])),
            str(len(covered & set(split["train"]))),
            str(len(covered & set(split["test"]))),
        )
    console.print(table)


@app.command("show")
def show_command(
    task: str,
    index: int = typer.Argument(..., help="sample_index"),
    data_dir: Path | None = DataDir,
    config: Path | None = ConfigOption,
) -> None:
    """Walk one sample through every stage: its question and answer, the teacher's prompts and completions
    (with --config, the run's teacher), curation, each trained method's pair and each method's student prompt and
    answer parsing."""
    ctx = _context(config) if config is not None else None
    root = data_files.data_dir(data_dir)
    spec = ctx.task if ctx is not None and ctx.task.key == task else load_task(task, root)
    curation = (ctx.cfg if ctx is not None else RunConfig(task=task)).curate  # the default curation without one
    sample = spec.samples([index])[index]
    split = spec.split()
    side = "train" if index in set(split["train"]) else "test" if index in set(split["test"]) else "none"

    def out(text: str = "", heading: str | None = None) -> None:
        if heading:
            console.print(f"\n[bold]{heading}[/]")
        if text:
            console.print(text, markup=False, highlight=False, soft_wrap=True)  # exact text, never wrapped

    out(f"question: {sample.question}\nanswer: {sample.answer}", f"{spec.name} sample {index} (split: {side})")
    out(zero_shot_cot_step1(sample.question), "teach: the teacher's prompt (zero-shot-CoT step 1)")
    records, source = _teacher_records(ctx, spec, root, sample)
    rationale, question, answer = "{rationale}", sample.question, sample.answer
    if records:
        from ftcot.teachers.collect import samples_per  # with the openai SDK: only here

        # as a train question, under the config's curation
        kept, fates = curate(spec, records, [sample], curation, samples_per(ctx.cfg.teacher) if ctx else 1)
        for r in records:
            out(
                r.answer_prompt + r.answer_completion if r.answer_prompt else r.reasoning_completion.strip(),
                f"teach: {r.model}'s completion {r.completion_index} ({source}"
                + ("; steps 1 and 2)" if r.answer_prompt else f"; its answer from the {r.answer_from})"),
            )
        out(
            "\n".join(
                f"completion {r.completion_index}: parsed {judge.teacher_answer(spec.answer_format, r.answer_completion)!r}"
                f" against gold {r.answer!r}: {'kept' if fate == 'kept' else 'removed: ' + fate}"
                for r, fate in fates
            ),
            "curate",
        )
        first = next((r for r, fate in fates if fate == "kept"), records[0])  # the pairs below are this one's
        question, rationale, answer, frame = training_frame(spec, sample, first, curation)
        if frame != "task":
            out(f"trained beside the question in frame {frame!r} (see curate.choice_order)")
    few_shot = load_few_shot_prompts(root) if (root / "few_shot_cot_prompts.json").is_file() else {}
    context = PromptContext("decoder", spec.decl.few_shot_prompt, few_shot)
    for name, method in METHODS.items():
        pairs = method.pairs(question, rationale, answer, "decoder")
        for k, (prompt, completion) in enumerate(pairs):
            out(
                f"{prompt}\n{completion}<eos>",
                f"train {name}: "
                + (
                    f"{method.label} (prompt, then completion; loss on the completion)"
                    if k == 0
                    else "and its second pair (loss weighted by train.dss_alpha)"
                ),
            )
        try:
            prompt = method.prompt(question, context)
        except UserError as exc:
            out(f"no prompt: {exc}", f"evaluate {name}: {method.label}")
            continue
        shown = prompt if len(prompt) < 400 else "... " + prompt[-300:]
        reads = f"the first answer after {method.answer_prefix!r}" if method.answer_prefix else "the first answer"
        out(
            f"{shown}\n-> generates {'a rationale' if method.reasoning else 'an answer'}, then reads {reads}"
            + (", after a second step with the task's answer trigger" if method.answer_step else ""),
            f"evaluate {name}: {method.label}",
        )
        if pairs:
            parsed = judge.read(spec.answer_format, pairs[0][1], method)
            out(
                f"its training completion reads {parsed!r}: "
                f"{'correct' if spec.answer_format.matches(parsed, answer) else 'wrong'}"
            )


def _teacher_records(ctx, task, root: Path, sample) -> tuple[list, str]:
    """The sample's teacher completions and where they come from. With a config of this task: the run's own,
    where its teach stage is done under this config; else what teach would take from its recorded sources (the
    first D); else none yet. Otherwise text-davinci-002's shared records."""
    if ctx is not None and ctx.task.key == task.key:
        from ftcot.pipeline import is_done

        tcfg = ctx.cfg.teacher
        if is_done(ctx, "teach"):
            records, source = read_records(ctx.run.completions), "this run's teacher"
        elif tcfg.backend == "recorded":
            teacher, _ = make_recorded_teacher(
                tcfg.model_copy(update={"on_missing": "skip"}), task, ctx.cfg.split, ctx.data
            )
            records, source = teacher.replay([sample], tcfg.num_samples)[0], "the config's recorded sources"
        else:
            return [], ""
    elif (path := recorded_teacher_path(task.key, root)).is_file():
        records, source = read_records(path), "recorded"
    else:
        return [], ""
    mine = (r for r in records if r.task == task.key and r.sample_index == sample.sample_index)
    return sorted(mine, key=lambda r: r.completion_index), source


@data_app.command("fetch")
def fetch_command(
    to: Path | None = typer.Option(
        None, "--to", envvar="FTCOT_DATA_DIR", help="Data folder (default: $FTCOT_DATA_DIR, else ~/.cache/ftcot/data)."
    ),
    source: str | None = typer.Option(None, "--source", help="A local folder or mirror base URL (default: upstream)."),
) -> None:
    """Download every data file not already present and verified (sha256 or git blob id), atomically."""
    root = data_files.data_dir(to)
    try:
        root.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise UserError(f"cannot use {root} as the data folder: {exc.strerror or exc}") from None
    # One line a file, however long its outcome (soft_wrap: never wrapped)
    outcomes = fetch(
        root,
        source,
        progress=lambda path, outcome: console.print(f"{outcome:>9}  {path}", markup=False, soft_wrap=True),
    )
    done = sum(o in ("fetched", "derived", "verified") for o in outcomes.values())
    console.print(f"{done}/{len(outcomes)} files present and verified in {root}")
    missing = [p for p, o in outcomes.items() if o.startswith(("missing", "failed"))]
    if missing:
        raise UserError(
            f"{len(missing)} file(s) could not be fetched (listed above with their source), e.g. "
            f"{missing[0]}: {outcomes[missing[0]]}"
        )


@data_app.command("verify")
def verify_command(data_dir: Path | None = DataDir) -> None:
    """Check the sha256 (or git blob id) of every data file present; list missing ones."""
    root = data_files.data_dir(data_dir)
    if not root.is_dir():
        raise UserError(f"no data folder at {root}: run `ftcot data fetch` first")
    bad = []
    for file in data_files.DATA_FILES:
        if not (root / file.path).is_file():
            console.print(f"  missing  {file.path}", markup=False)
        elif not data_files.is_verified(file, root):
            bad.append(file.path)
            console.print(f"      BAD  {file.path}", markup=False)
    if bad:
        raise UserError(f"{len(bad)} data file(s) in {root} fail their checksum, e.g. {bad[0]}")
    console.print(f"all present data files in {root} match their checksums")


@app.command("teach")
def teach_command(
    config: Path,
    dry_run: bool = typer.Option(False, "--dry-run", help="Print requests, tokens and cost; send nothing."),
    max_cost: float | None = typer.Option(
        None,
        "--max-cost",
        help="A hard budget in USD for the run folder's spending in "
        "all (earlier runs count): no request is sent whose worst case would "
        "not fit; a budget stop exits with code 3.",
    ),
    settle_holds: bool = typer.Option(
        False,
        "--settle-holds",
        help="Count the requests a killed run left in flight "
        "(held at their worst case) at the mean cost of those answered, and say by "
        "how much the cap could then be exceeded at most.",
    ),
) -> None:
    """Collect zero-shot-CoT teacher completions (stage 1); stored completions are never requested again."""
    import math

    from ftcot.stages.teach import budget_stop
    from ftcot.stages.teach import run as teach

    if max_cost is not None and not (math.isfinite(max_cost) and max_cost >= 0):
        raise UserError(f"--max-cost must be a number of USD >= 0, not {max_cost}")
    summary = teach(_context(config), dry_run=dry_run, max_cost=max_cost, settle_holds=settle_holds)
    if dry_run:
        return
    console.print(
        f"teacher: {summary.collected}/{summary.expected} completions, {summary.requests} "
        f"requests, {summary.prompt_tokens + summary.completion_tokens:,} tokens, "
        f"${summary.cost_usd:.4f}, {summary.wall_s:.1f}s",
        markup=False,
    )
    if summary.stopped_by_budget:
        raise budget_stop(summary)


Methods = typer.Option(None, "--method", help="Only this method (repeatable).")


def _context(config: Path):
    from ftcot.pipeline import context

    return context(load_config(config))


@app.command("run")
def run_command(config: Path) -> None:
    """The whole pipeline: teach → curate → train → evaluate → report; finished stages are skipped."""
    from ftcot.pipeline import run

    result = run(_context(config))
    console.print(result["table"], markup=False)


@app.command("curate")
def curate_command(config: Path) -> None:
    """Keep correct teacher rationales as training examples; carve the validation split (stage 2)."""
    from ftcot.pipeline import STAGES

    STAGES["curate"].run(_context(config))


@app.command("train")
def train_command(
    config: Path,
    method: list[str] | None = Methods,
    resume: bool = typer.Option(True, help="Resume from the last epoch checkpoint."),
) -> None:
    """Fine-tune the student (stage 3): Fine-tune-CoT and/or vanilla; keeps the best epoch on validation."""
    from ftcot.pipeline import STAGES

    STAGES["train"].run(_context(config), methods=method, resume=resume)


@app.command("evaluate")
def evaluate_command(config: Path, method: list[str] | None = Methods) -> None:
    """Test accuracy of the teacher, the prompting baselines and the fine-tuned students (stage 4)."""
    from ftcot.pipeline import STAGES

    STAGES["evaluate"].run(_context(config), methods=method)


@app.command("report")
def report_command(
    runs_dir: Path,
    open_page: bool = typer.Option(False, "--open", help="Print report.html's path and open it where a browser is."),
) -> None:
    """Markdown/CSV results table (like the paper's Table 1), report.html (every question, output and failure;
    one self-contained file) and plots for the runs under RUNS_DIR."""
    result = report(runs_dir)
    console.print(result["table"], markup=False)
    console.print(f"wrote {runs_dir}/report.md, report.csv, report.html" + "".join(f", {p}" for p in result["plots"]))
    if open_page:
        import os
        import webbrowser

        page = result["html"].resolve()
        print(page)  # stdout, for a script
        # Opened where a graphical browser can be: a console one cannot run the page's script (and would block).
        if sys.platform in ("darwin", "win32") or os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY"):
            webbrowser.open(page.as_uri())


@app.command("export")
def export_command(
    run_dir: Path,
    to: Path = typer.Option(..., "--to", help="Folder to write into."),
    fmt: str = typer.Option(
        "hf",
        "--format",
        help="hf: a datasets dataset (save_to_disk + parquet); "
        "messages: chat JSONL for TRL/axolotl/LLaMA-Factory; paper: the teacher's "
        "completions as the paper's CompletionDataset JSON; gguf: each trained student for llama.cpp and "
        "Ollama, with a Modelfile.",
    ),
    quant: str = typer.Option("f16", "--quant", help="gguf: the weights' type, f16 or q8_0."),
) -> None:
    """Write a run's curated training set, its teacher completions or its students for other tools."""
    for path in export(run_dir, to, fmt, quant):
        console.print(f"wrote {path}", markup=False)


@app.command("serve")
def serve_command(
    gguf: Path,
    name: str = typer.Option("student", "--name", help="The model name the server answers to."),
    host: str = typer.Option("127.0.0.1", "--host"),
    port: int = typer.Option(8080, "--port"),
    threads: int = typer.Option(0, "--threads", help="CPU threads; 0: llama.cpp's default."),
    parallel: int = typer.Option(1, "--parallel", help="Requests answered at once (llama.cpp's slots)."),
    context: int = typer.Option(2048, "--context", help="Tokens of context per slot."),
) -> None:
    """Serve an exported GGUF student with llama.cpp's OpenAI-compatible server (the llamacpp extra)."""
    from ftcot.serve import serve

    serve(gguf, name, host, port, threads or None, parallel, context)


@app.command("config")
def config_command(path: Path) -> None:
    """Validate a YAML run config and print it with defaults filled in."""
    import yaml

    console.print(yaml.safe_dump(load_config(path).model_dump(), sort_keys=False), markup=False)


def main() -> None:
    try:
        app()  # typer reports its own usage errors (exit code 2) and exits
    except UserError as exc:
        print(f"{'' if isinstance(exc, BudgetStop) else 'error: '}{exc}", file=sys.stderr)
        sys.exit(exc.exit_code)
    except OSError as exc:  # the file system said no (a full disk, a permission) where no stage expected it
        where = f": {exc.filename}" if exc.filename else ""
        print(f"error: {exc.strerror or exc}{where}", file=sys.stderr)
        sys.exit(2)


if __name__ == "__main__":
    main()
