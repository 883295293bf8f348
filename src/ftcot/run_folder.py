"""The run folder: every artifact's path, written once (docs/run-folder.md says what each holds).
The stages, the report, export and the commands all find their files here."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class RunFolder:
    root: Path

    # the run
    @property
    def config(self) -> Path:
        return self.root / "config.yaml"

    @property
    def environment(self) -> Path:
        return self.root / "environment.json"

    @property
    def timings(self) -> Path:
        return self.root / "timings.json"

    # teach
    @property
    def teacher(self) -> Path:
        return self.root / "teacher"

    @property
    def completions(self) -> Path:
        return self.teacher / "completions.jsonl"

    @property
    def store(self) -> Path:
        return self.teacher / "store.sqlite"

    # curate
    @property
    def curate(self) -> Path:
        return self.root / "curate"

    def curated(self, method: str) -> Path:
        return self.curate / f"train_{method}.jsonl"

    @property
    def validation(self) -> Path:
        return self.curate / "val.jsonl"

    @property
    def per_question(self) -> Path:
        return self.curate / "per_question.jsonl"

    # train
    def student(self, method: str) -> Path:
        return self.root / "students" / method

    def best(self, method: str) -> Path:
        return self.student(method) / "best"

    # evaluate
    @property
    def eval(self) -> Path:
        return self.root / "eval"

    def evaluated(self, method: str) -> Path:
        return self.eval / method

    def predictions(self, method: str) -> Path:
        return self.evaluated(method) / "predictions.jsonl"

    def votes(self, method: str) -> Path:
        return self.evaluated(method) / "self_consistency.jsonl"

    def calculated(self, method: str) -> Path:
        return self.evaluated(method) / "calculator.jsonl"

    def calculated_votes(self, method: str) -> Path:
        return self.evaluated(method) / "calculator_self_consistency.jsonl"

    # each stage's summary, stamped with its fingerprint (a trained student's and an evaluated method's are theirs)
    def summary(self, stage: str, method: str = "") -> Path:
        return {
            "teach": self.teacher / "summary.json",
            "curate": self.curate / "summary.json",
            "train": self.student(method) / "summary.json",
            "evaluate": self.evaluated(method) / "metrics.json",
        }[stage]
