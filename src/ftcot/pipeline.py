"""What the stages of a run (teach → curate → train → evaluate, one module each in ftcot.stages; then the report)
share: the run context, the run folder (ftcot.run_folder names its files) and the stage table. Each stage is one
record in STAGES: its name and the config sections its outputs depend on. `finish` alone writes a stage's
summary, stamped with the fingerprint of those sections, so a rerun skips what is complete and redoes what a
config change touched, whichever command ran the stage."""

from __future__ import annotations

import hashlib
import json
import os
import platform
import time
from dataclasses import dataclass
from importlib import import_module
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

import yaml

from ftcot.artifacts import SCHEMA_VERSION, SUMMARIES, S, current
from ftcot.config import (
    Added,
    CurateConfig,
    EvalConfig,
    Operational,
    Renamed,
    RunConfig,
    TeacherConfig,
    TrainConfig,
    keys_marked,
)
from ftcot.data import data_dir
from ftcot.files import hold_folder, read_json, write_json, write_text
from ftcot.log import log
from ftcot.methods import METHODS
from ftcot.report import report
from ftcot.run_folder import RunFolder
from ftcot.tasks import Task, load_task
from ftcot.teachers.sources import source_digests


@dataclass(frozen=True)
class RunContext:
    """What every stage needs, resolved once: the config, the data folder, the run folder and the task."""

    cfg: RunConfig
    data: Path
    run: RunFolder
    task: Task


def context(cfg: RunConfig) -> RunContext:
    """Resolve the data folder, the run folder and the task (a user's data is read and checked)."""
    data = data_dir(cfg.data_dir)
    return RunContext(cfg, data, RunFolder(Path(cfg.run_dir)), load_task(cfg.task, data))


# --- stage bookkeeping --------------------------------------------------------------------------------------

# Which keys of a section count in its stages' fingerprints is declared on the config's fields (config.Operational,
# config.Added). (Which methods and baselines run is not part of any one method's output either: adding one runs
# only it.)
SECTIONS = {"teacher": TeacherConfig, "curate": CurateConfig, "train": TrainConfig, "evaluate": EvalConfig}
OPERATIONAL = {name: set(keys) for name, model in SECTIONS.items() if (keys := keys_marked(model, Operational))}
ADDED_KEYS = {name: {k: m.value for k, m in keys_marked(model, Added).items()} for name, model in SECTIONS.items()}
RENAMED = {name: {k: m.old for k, m in keys_marked(model, Renamed).items()} for name, model in SECTIONS.items()}


def fingerprint(ctx: RunContext, stage: str, method: str = "") -> str:
    """A hash of the config sections a stage depends on (and of a custom task's data): a stage reruns when
    they change. Keys that only some methods read count for those methods alone."""
    data = ctx.cfg.model_dump(include={"task", "split", *STAGES[stage].sections}, exclude=OPERATIONAL)
    for section, keys in ADDED_KEYS.items():
        for key, default in keys.items():
            if section in data and data[section][key] == default:
                del data[section][key]
    for section, keys in RENAMED.items():
        for key, old in keys.items():
            if section in data:
                data[section][old] = data[section].pop(key)
    c = data.get("curate")
    if c is not None:  # keys that change nothing for this task are out of the hash
        if not ctx.task.answer_format.choice:
            for key in ("choice_order", "permute_choices", "permute_seed"):
                c.pop(key, None)
        if not c.get("permute_choices"):
            c.pop("permute_seed", None)
        if c["drop_truncated"] and ctx.cfg.teacher.backend == "recorded":
            c["cut_when"] = "mid-sentence near the limit"  # how records without a finish reason are read (#18)
    m = METHODS.get(method)
    if "train" in data and not (m and m.aux_pair):
        del data["train"]["dss_alpha"]
    if not (m and m.reasoning):  # the calculator writes into rationales only
        data.get("train", {}).pop("validate_with_calculator", None)
        data.get("evaluate", {}).pop("calculator", None)
    if "evaluate" in data and method and ctx.cfg.evaluate.engine == "openai":  # which served model answered
        data["evaluate"]["served"] = ctx.cfg.evaluate.models.get(method)
    if "evaluate" in data and data["evaluate"].get("engine") != "ctranslate2":
        data["evaluate"].pop("compute_type", None)
    if "evaluate" in data and not (m and m.votes):  # what only outputs with their rationale inside are read for
        data["evaluate"].pop("self_consistency", None)
        data["evaluate"].pop("choice_by_content", None)
    if ctx.task.digest:
        data["data"] = ctx.task.digest
    if "teacher" in data and ctx.cfg.teacher.backend == "recorded":  # what a user's source files hold
        digests = source_digests(ctx.cfg.teacher)
        if digests:
            data["teacher"]["source_files"] = digests
    return hashlib.sha256(json.dumps(data, sort_keys=True).encode()).hexdigest()[:16]


def is_done(ctx: RunContext, stage: str, method: str = "") -> bool:
    """Whether the stage's summary is there, of this schema version, made under the same config sections, and
    complete. A summary an earlier ftcot made (another schema_version, or none) is not done: the stage reruns
    and writes it anew, as after a config change, rather than a run stopping on it (a reader that needs it,
    the report or export, refuses it in one line)."""
    path = ctx.run.summary(stage, method)
    summary = current(path, SUMMARIES[stage])
    name = f"{stage} {method}".strip()
    if summary is None:
        log.debug(f"{name}: runs: no summary of this ftcot's schema at {path}")
        return False
    if summary.fingerprint != fingerprint(ctx, stage, method):
        sections = ", ".join(("task", "split", *STAGES[stage].sections))
        log.debug(f"{name}: reruns: what it depends on ({sections}, the task's data) changed since it ran")
        return False
    if getattr(summary, "stopped_by_budget", False):
        log.debug(f"{name}: goes on: it stopped at its budget")
        return False
    return True


def finish(ctx: RunContext, stage: str, summary: S, method: str = "") -> S:
    """The one place a stage's summary is written, with its fingerprint and schema version; the run's
    config.yaml beside it, so a folder made stage by stage is a run folder too (for the report and export)."""
    summary = summary.model_copy(
        update={"fingerprint": fingerprint(ctx, stage, method), "schema_version": SCHEMA_VERSION}
    )
    write_json(summary.dump(), ctx.run.summary(stage, method))
    write_text(ctx.run.config, yaml.safe_dump(ctx.cfg.model_dump(), sort_keys=False))
    return summary


# --- the stage table and the whole run ---------------------------------------------------------------------


@dataclass(frozen=True)
class Stage:
    name: str
    sections: tuple[str, ...]  # the config sections its outputs depend on (with task and split)

    def run(self, ctx: RunContext, **options):
        """ftcot.stages.<name>.run: imported when the stage runs (train and evaluate bring torch; the stages
        import this module)."""
        return import_module(f"ftcot.stages.{self.name}").run(ctx, **options)


STAGES: dict[str, Stage] = {
    s.name: s
    for s in (
        Stage("teach", ("teacher",)),
        Stage("curate", ("teacher", "curate")),
        Stage("train", ("teacher", "curate", "student", "train")),
        Stage("evaluate", ("teacher", "curate", "student", "train", "evaluate")),
    )
}


def environment() -> dict:
    import torch  # deferred, like the students

    versions = {}
    for package in ("ftcot", "torch", "transformers", "peft", "accelerate", "openai", "pydantic"):
        try:
            versions[package] = version(package)
        except PackageNotFoundError:
            versions[package] = None
    return {
        "python": platform.python_version(),
        "platform": platform.platform(),
        "cpus": os.cpu_count(),
        "cuda": torch.cuda.is_available(),
        "gpu": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
        "packages": versions,
    }


def start_run(ctx: RunContext) -> None:
    """The run folder's config.yaml and environment.json, written by whoever starts a whole run (every stage
    writes config.yaml again when it finishes)."""
    ctx.run.root.mkdir(parents=True, exist_ok=True)
    write_text(ctx.run.config, yaml.safe_dump(ctx.cfg.model_dump(), sort_keys=False))
    write_json(environment(), ctx.run.environment)


def run(ctx: RunContext) -> dict:
    """teach → curate → train → evaluate → report, skipping each stage whose outputs are complete."""
    from ftcot.stages.teach import budget_stop

    # Every stage's folder is held before anything is written: a second run on this folder changes nothing.
    for folder in (ctx.run.teacher, ctx.run.curate, ctx.run.eval, *map(ctx.run.student, ctx.cfg.train.methods)):
        hold_folder(folder)
    start_run(ctx)
    timings_path = ctx.run.timings
    timings = read_json(timings_path) if timings_path.exists() else {}
    for stage in STAGES.values():
        if (
            stage.name in ("teach", "curate")
            and is_done(ctx, stage.name)
            and (stage.name == "teach" or all(ctx.run.curated(m).is_file() for m in ctx.cfg.train.methods))
        ):
            log.info(f"{stage.name}: done already")
            continue
        start = time.perf_counter()
        summary = stage.run(ctx)
        if stage.name == "teach" and summary.stopped_by_budget:
            raise budget_stop(summary)
        timings[stage.name] = round(time.perf_counter() - start, 2)
        write_json(timings, timings_path)
    return report(ctx.run.root)
