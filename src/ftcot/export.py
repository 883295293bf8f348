"""What a run hands on to other tools: its curated training set as a `datasets` dataset or as chat
`messages` JSONL (the shape TRL, axolotl and LLaMA-Factory read), its teacher completions in the paper's
CompletionDataset JSON, its trained students as GGUF files for llama.cpp and Ollama, and a model card in each
student's best/ folder."""

from __future__ import annotations

from pathlib import Path

from ftcot.artifacts import (
    CurateSummary,
    Metrics,
    TeachSummary,
    TrainSummary,
    parse_summary,
    read_run_config,
    read_summary,
)
from ftcot.errors import UserError
from ftcot.files import read_json, read_jsonl, write_jsonl, write_text
from ftcot.log import show_progress
from ftcot.methods import METHODS, TRAINED
from ftcot.run_folder import RunFolder
from ftcot.teachers.records import read_records, write_completion_dataset

FORMATS = ("hf", "messages", "paper", "gguf")


def _examples(run: RunFolder) -> dict[str, list[dict]]:
    """Each trained method's curated examples, with the (prompt, completion) pair it trains on."""
    out = {}
    for name in TRAINED:
        path = run.curated(name)
        rows = read_jsonl(path) if path.is_file() else []
        if rows:
            # The encoder-decoder form: the question and the target alone, without the decoder's " ###"; dss's
            # second pair of each example too, after the first ones, told apart by its prefix.
            built = [
                METHODS[name].pairs(row["question"], row.get("rationale", ""), row["answer"], "encoder_decoder")
                for row in rows
            ]
            out[name] = [
                row | {"prompt": b[k][0], "completion": b[k][1]}
                for k in (0, 1)
                for row, b in zip(rows, built)
                if len(b) > k
            ]
    if not out:
        raise UserError(f"no curated examples in {run.curate}: run `ftcot curate` (or keep more of the teacher's)")
    return out


def _students(run: RunFolder, to: Path, quant: str) -> list[Path]:
    """Each trained student (its best/ folder) as `<task>-<method>-<quant>.gguf` and an Ollama Modelfile
    `<method>.Modelfile` beside it."""
    from ftcot.students.gguf import modelfile, write_gguf

    methods = [m for m in TRAINED if (run.best(m) / "config.json").is_file()]
    if not methods:
        raise UserError(f"no trained student in {run.root / 'students'}: run `ftcot train` first")
    config = read_run_config(run.root) if run.config.is_file() else None
    task = config.task_name if config else "student"
    written = []
    for method in methods:
        path = write_gguf(run.best(method), to / f"{task}-{method}-{quant}.gguf", method, quant)
        card = to / f"{method}.Modelfile"
        write_text(card, modelfile(path.name, method, config.evaluate.max_new_tokens if config else None))
        written += [path, card]
    return written


def export(run: Path, to: Path, fmt: str, quant: str = "f16") -> list[Path]:
    """Write the run's data (or, for gguf, its students) in one format under `to`; returns the paths written."""
    run = RunFolder(run)
    if fmt not in FORMATS:
        raise UserError(f"unknown export format {fmt!r}; formats: {', '.join(FORMATS)}")
    if not run.teacher.is_dir() and not run.curate.is_dir():
        raise UserError(f"{run.root} is not a run folder (no teacher/ or curate/)")
    if to.exists() and not to.is_dir():
        raise UserError(f"--to {to} is a file, not a folder")
    if fmt == "gguf":
        return _students(run, to, quant)
    written = []
    if fmt == "paper":
        records = read_records(run.completions)
        if not records:
            raise UserError(f"no teacher completions in {run.teacher}")
        path = to / f"{records[0].task}_{records[0].model}.json".replace("/", "_")
        write_completion_dataset(records, path)
        return [path]
    examples = _examples(run)
    if fmt == "messages":
        for name, rows in examples.items():
            path = to / f"{name}.messages.jsonl"
            write_jsonl(
                (
                    {
                        "messages": [
                            {"role": "user", "content": r["prompt"]},
                            {"role": "assistant", "content": r["completion"]},
                        ]
                    }
                    for r in rows
                ),
                path,
            )
            written.append(path)
        return written
    import datasets  # deferred: pyarrow takes a second to import

    bars = not datasets.are_progress_bars_disabled()
    if not show_progress():  # --quiet: not datasets' bars either
        datasets.disable_progress_bars()
    try:
        data = datasets.DatasetDict({name: datasets.Dataset.from_list(rows) for name, rows in examples.items()})
        data.save_to_disk(str(to / "hf"))
        written.append(to / "hf")
        for name, part in data.items():
            part.to_parquet(str(to / f"{name}.parquet"))
            written.append(to / f"{name}.parquet")
    finally:
        if bars:
            datasets.enable_progress_bars()
    return written


def model_card(run: RunFolder, method: str) -> None:
    """students/<method>/best/README.md: base model, task, method, data provenance and counts, validation and
    (once evaluated) test accuracy with its interval, and the command that made it."""
    best = run.best(method)
    if not best.is_dir():
        return
    environment = read_json(run.environment) if run.environment.is_file() else {}
    summary = parse_summary(run.summary("train", method), TrainSummary)
    curated = read_summary(run.summary("curate"), CurateSummary)
    teacher = read_summary(run.summary("teach"), TeachSummary)
    metrics = read_summary(run.summary("evaluate", method), Metrics)
    test = (
        f"{metrics.accuracy}% on {metrics.n} test questions (95% CI {metrics.ci95[0]}-{metrics.ci95[1]})"
        if metrics
        else "not evaluated yet (`ftcot evaluate`)"
    )
    rationales = METHODS[method].trains_on == "rationales"
    teacher_line = (
        f"{teacher.teacher}: {teacher.collected} completions for {teacher.questions} questions"
        if teacher and rationales
        else "none: trained on the gold answers"
    )
    kept, removed = (curated.kept, curated.removed) if curated else ("?", "?")
    task = read_run_config(run.root).task_name if run.config.is_file() else "?"
    label = METHODS[method].label
    s = summary
    text = f"""---
base_model: {s.student}
tags: [ftcot, {method}, chain-of-thought, distillation]
---

# {label} student: {s.student}

Fine-tuned by [ftcot](https://arxiv.org/abs/2212.10071)'s {label} recipe ({METHODS[method].trains_on} of the
task's train split). Load it with `AutoModelForCausalLM.from_pretrained` (or `AutoModelForSeq2SeqLM`) and
`AutoTokenizer.from_pretrained` on this folder; prompt it as `ftcot show` prints for this method.

| | |
|---|---|
| task | {task} |
| base model | {s.student} ({s.parameters} parameters, {s.kind}) |
| method | {label} ({method}) |
| teacher | {teacher_line} |
| training data | {s.examples} examples; curation kept {kept}, removed {removed} |
| training | {s.protocol} protocol, best epoch {s.best_epoch} of {s.epochs_trained} ({s.stop_reason}), {"LoRA" if s.lora else "all weights"}, {s.precision} |
| validation accuracy | {s.best_val_accuracy}% (questions carved from train) |
| test accuracy | {test} |
| environment | {", ".join(f"{k} {v}" for k, v in (environment.get("packages") or {}).items() if v)} |
| made by | `{s.command or "?"}` |
"""
    write_text(best / "README.md", text)
