"""The run folder's artifacts as typed models: each stage's summary (teacher/summary.json, curate/summary.json,
students/<method>/summary.json, eval/<method>/metrics.json) and a prediction row of eval/<method>/predictions.jsonl.
Writers build a model and write its `dump()`; readers parse the file through `read_summary`, which refuses in one
line a summary of another schema version (ftcot.pipeline.is_done treats one as not done, so the stage reruns).
docs/run-folder.md says what each file is for; the field docstrings say what each key holds.

A dump holds the keys a writer set, and only those (a live teacher's summary has keys a recorded one's lacks, a
metrics file has `calculator` only where the calculator ran): keys and values as the dict literals these models
replace wrote them, plus `schema_version` on the summaries and `question` on the predictions.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, ClassVar, TypeVar

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from ftcot.errors import UserError, first_error
from ftcot.files import read_json, read_jsonl
from ftcot.run_folder import RunFolder
from ftcot.teachers.cost import Holds

SCHEMA_VERSION = 1
"""The shape of the summaries this ftcot writes and reads; raised when a summary's keys or their meaning change."""


class Artifact(BaseModel):
    model_config = ConfigDict(extra="forbid", use_attribute_docstrings=True)

    def dump(self) -> dict:
        """The model as written: the keys set, and only those."""
        return self.model_dump(mode="json", exclude_unset=True)


# --- evaluate: predictions.jsonl and metrics.json -------------------------------------------------------------


class Call(Artifact):
    """One `=` the calculator wrote a value after (ftcot.calculator)."""

    expression: str
    """The arithmetic before the `=`."""
    value: str
    """Its value as the calculator wrote it."""
    own: str | None
    """What the student wrote after that `=` itself (None: nothing)."""
    own_right: bool | None
    """Whether the student's own number was the value (None: it wrote none)."""


class Prediction(Artifact):
    """One test question's row of eval/<method>/predictions.jsonl (and of calculator.jsonl)."""

    sample_index: int
    """The question's index in the task's data."""
    question: str
    """The question as the task states it."""
    prompt: str
    """What the student was given."""
    output: str
    """What it wrote (for a method with an answer step, the answer step's output; its rationale ends the prompt)."""
    prediction: str | None
    """The answer read from the output (None: none could be read)."""
    answer: str
    """The gold answer."""
    correct: bool
    """Whether the prediction is the gold answer, as the task's answer format compares them."""
    failure: str | None
    """Why a wrong answer is wrong (a key of ftcot.tasks.rationales.FAILURE_KINDS; None when right)."""
    prediction_by_content: str | None = None
    """evaluate.choice_by_content: the option the rationale names by its text (else the prediction)."""
    correct_by_content: bool | None = None
    """evaluate.choice_by_content: whether that option is the gold answer."""
    calculator: list[Call] | None = None
    """With the calculator: each `=` it wrote a value after."""


def read_predictions(path: Path) -> list[Prediction]:
    """A predictions file's rows; a row that is not one is a one-line error naming the file and its line."""
    rows = []
    for n, row in enumerate(read_jsonl(path), 1):
        try:
            rows.append(Prediction.model_validate(row))
        except ValidationError as exc:
            raise UserError(f"{path}:{n}: not an ftcot prediction: {first_error(exc)}") from None
    return rows


CI = Annotated[list[float], Field(min_length=2, max_length=2)]


class Accuracy(Artifact):
    """How many test questions, how many right, in percent with its 95% Wilson interval (tasks.answers.accuracy)."""

    n: int
    """Questions scored."""
    correct: int
    """Questions answered right."""
    accuracy: float
    """correct / n, in percent."""
    ci95: CI
    """Its 95% Wilson interval, in percent: [low, high]."""


class Diagnostics(Artifact):
    """Why answers are wrong, in percent of the outputs (evaluate.diagnostics)."""

    marker: str | None
    """The method's answer marker (None: a method whose output is the answer)."""
    no_answer_marker: float | None
    """Outputs without the marker: cut off, or never answered (None: no marker)."""
    unparsed: float
    """Outputs no answer could be read from."""
    most_frequent_prediction: str | None
    """The answer given most often."""
    most_frequent_share: float
    """How often it was given."""
    majority_answer: str | None
    """The gold answer of most questions."""
    majority_answer_share: float
    """Predictions equal to it."""


class Failures(Artifact):
    """The wrong outputs sorted by why (ftcot.tasks.rationales.failure_kind)."""

    kinds: dict[str, int]
    """Wrong outputs of each kind."""
    loops: int
    """Outputs (right or wrong) ending in a repeated word sequence."""
    n_wrong: int
    """Wrong outputs."""


class Calls(Artifact):
    """What the calculator did (evaluate.calls_summary)."""

    calls: int
    """Values it wrote."""
    per_output: float
    """Calls per output."""
    outputs_with_calls: int
    """Outputs it wrote at least one value into."""
    own_wrong: int
    """Calls where the student's own number was wrong."""
    own_missing: int
    """Calls where the student wrote no number of its own."""
    own_wrong_pct: float | None
    """own_wrong in percent of the calls where it wrote one (None: it wrote none)."""


class SelfConsistency(Accuracy):
    """Self-consistency: k sampled rationales per question and a vote on their answers (evaluate.self_consistency)."""

    k: int
    """Samples per question."""
    temperature: float
    """Their sampling temperature."""
    seed: int
    """Their seed."""
    agreement: float
    """Samples that agree with the vote, in percent."""
    any_correct: float
    """Questions where any sample was right, in percent."""
    wall_s: float
    """Seconds it took."""
    questions_per_s: float
    """Questions a second."""
    calls: Calls | None = None
    """With the calculator: what it did in the samples."""


class Evaluation(Accuracy):
    """One method's greedy outputs on the test questions, scored (evaluate.evaluate); the teacher's has the
    accuracy alone."""

    task: str
    """The task's key."""
    method: str
    """The method (or `teacher`)."""
    max_new_tokens: int | None = None
    """The generation budget of a rationale."""
    wall_s: float | None = None
    """Seconds the generation took."""
    questions_per_s: float | None = None
    """Questions a second."""
    tokens_generated: int | None = None
    """Tokens the engine generated."""
    diagnostics: Diagnostics | None = None
    """Why answers are wrong."""
    failures: Failures | None = None
    """The wrong outputs sorted by why."""
    choice_by_content: Accuracy | None = None
    """evaluate.choice_by_content: accuracy with the answer read as the option the rationale names."""
    calls: Calls | None = None
    """Outputs written with the calculator: what it did."""
    self_consistency: SelfConsistency | None = None
    """Where configured (evaluate.self_consistency) for a method with its rationale in its output."""


class Summary(Artifact):
    """What every stage summary has: written by ftcot.pipeline.finish alone."""

    stage: ClassVar[str]
    fingerprint: str | None = None
    """The hash of the config sections the stage depends on (pipeline.fingerprint): the stage reruns when they
    change. (None: not made by a stage, as benchmarks/report_pages.py's rebuilt metrics.)"""
    schema_version: int | None = None
    """The shape of this file (artifacts.SCHEMA_VERSION when written); a reader refuses another."""


class Metrics(Evaluation, Summary):
    """eval/<method>/metrics.json: the evaluate stage's summary of one method."""

    stage: ClassVar[str] = "evaluate"
    model: str | None = None
    """The student's base model (the teacher's model, for the teacher)."""
    parameters: int | None = None
    """The student's parameters."""
    engine: str | None = None
    """The engine that generated (evaluate.engine)."""
    calculator: Evaluation | None = None
    """evaluate.calculator, for a reasoning method: the same student with the calculator in decoding."""

    @classmethod
    def of(cls, evaluation: Evaluation, **more) -> Metrics:
        """An evaluation's metrics file: the keys it set, and more."""
        return cls(**{key: getattr(evaluation, key) for key in evaluation.model_fields_set}, **more)


# --- train ------------------------------------------------------------------------------------------------------


class Epoch(Artifact):
    """One epoch of training (students/<method>/history.json, and the summary's history)."""

    epoch: int
    """The epoch, from 1."""
    val_accuracy: float | None
    """Accuracy on the validation questions, in percent (None: there were none)."""
    train_s: float
    """Seconds training."""
    val_s: float = 0.0
    """Seconds validating."""
    tokens_per_s: float
    """Training tokens a second."""
    loss: float | None
    """The last logged training loss."""


class TrainSummary(Summary):
    """students/<method>/summary.json: one trained student (students.train.train, and the train stage)."""

    stage: ClassVar[str] = "train"
    method: str
    """The trained method."""
    student: str
    """The base model."""
    kind: str
    """decoder or encoder_decoder."""
    lora: bool
    """Whether LoRA adapters were trained instead of every weight."""
    parameters: int
    """The model's parameters."""
    examples: int
    """Training pairs (dss: two an example)."""
    tokens_per_epoch: int
    """Tokens of one epoch."""
    protocol: str
    """train.protocol."""
    epochs: int
    """Epochs asked for."""
    epochs_trained: int
    """Epochs trained (fewer on patience or the time budget)."""
    stop_reason: str
    """completed, patience or time budget."""
    precision: str
    """bf16 or fp32."""
    processes: int
    """Processes that trained (torchrun)."""
    best_epoch: int
    """The epoch kept in best/."""
    best_val_accuracy: float | None
    """Its validation accuracy, in percent."""
    history: list[Epoch]
    """Every epoch."""
    wall_s: float
    """Seconds of training."""
    tokens_per_s: float
    """Training tokens a second."""
    command: str | None = None
    """The command that trained it (for the model card)."""
    validated_with_calculator: bool | None = None
    """Whether validation wrote the rationales with the calculator."""


# --- teach and curate -----------------------------------------------------------------------------------------


class SettledHolds(Artifact):
    """teach --settle-holds: a killed run's holds counted at the mean cost of the answered requests."""

    requests: int
    """Requests the killed run left in flight."""
    since: float
    """When the first was held (epoch seconds)."""
    prompt_tokens_each: int
    """Prompt tokens each was counted at."""
    completion_tokens_each: int
    """Completion tokens each was counted at."""
    held_usd: float
    """What they held at their worst case."""
    settled_usd: float
    """What they count now."""
    may_exceed_usd: float
    """How far the cap could be exceeded (what the provider billed is unknown)."""


class TeachSummary(Summary):
    """teacher/summary.json: what the teacher collected and spent (a recorded teacher's has `sources`, a live
    one's its budget and holds)."""

    stage: ClassVar[str] = "teach"
    teacher: str
    """Which teacher: backend:model (a recorded one's identity)."""
    questions: int
    """Questions taught."""
    expected: int
    """Completions asked for."""
    collected: int
    """Completions collected."""
    questions_without_record: int
    """Recorded teacher: questions its sources hold no record of (teacher.on_missing: skip)."""
    requests: int
    """Requests this invocation paid for."""
    prompt_tokens: int
    """Their prompt tokens."""
    completion_tokens: int
    """Their completion tokens."""
    cost_usd: float
    """What they cost."""
    unconfirmed_usd: float | None = None
    """Of that, what the provider did not confirm in usage (counted at its worst case)."""
    folder_spent_usd: float | None = None
    """What this run folder's teacher has spent in all."""
    budget_usd: float | None = None
    """The cap on it (teacher.max_cost or --max-cost)."""
    stopped_by_budget: bool
    """Whether collection stopped at the cap (the stage is then not done)."""
    rounds: bool | None = None
    """Whether adaptive rounds or rationalization asked for more."""
    dead_holds: Holds | None = None
    """Holds a killed run left, at their worst case (unless this run settled them)."""
    settled_holds: SettledHolds | None = None
    """What --settle-holds settled."""
    sources: list[dict[str, Any]] | None = None
    """Recorded teacher: each source's file and what was matched from it (teachers.recorded)."""
    wall_s: float
    """Seconds it took."""


class TeacherCount(Artifact):
    samples: int
    """The teacher's samples."""
    kept: int
    """Its rationales kept."""


class PermutedCopies(Artifact):
    per_example: int
    """curate.permute_choices: shuffled copies of each choice example."""
    examples_without_copies: int
    """Examples no distinct shuffle could be made of."""


class CurateSummary(Summary):
    """curate/summary.json: what curation kept and why it dropped the rest."""

    stage: ClassVar[str] = "curate"
    train_questions: int
    """Train questions (after the validation split was carved out)."""
    val_questions: int
    """Validation questions."""
    kept: int
    """Fine-tune-CoT examples kept."""
    removed: dict[str, int]
    """Samples dropped, by why."""
    questions_with_examples: int
    """Train questions with at least one example kept."""
    samples_drawn: int
    """The teacher's samples of the train questions."""
    rationalized_kept: int
    """Kept examples written by rationalization."""
    by_teacher: dict[str, TeacherCount]
    """Each teacher's samples and kept rationales."""
    frames: dict[str, int]
    """How the kept ones are framed: the task's question, moved to its option order, the teacher's."""
    permuted_copies: PermutedCopies
    """Shuffled copies of choice examples."""


SUMMARIES: dict[str, type[Summary]] = {m.stage: m for m in (TeachSummary, CurateSummary, TrainSummary, Metrics)}
S = TypeVar("S", bound=Summary)


def parse_summary(path: Path, model: type[S]) -> S:
    """A stage summary read through its model; one of another schema version, or one that is not the model, is
    a one-line error naming the file (and, for another version, the stage to rerun)."""
    data = read_json(path)
    if not isinstance(data, dict):
        raise UserError(f"{path}: not an ftcot {model.stage} summary (a JSON {type(data).__name__})")
    version = data.get("schema_version")
    if version != SCHEMA_VERSION:
        made = "an earlier ftcot (no schema_version)" if version is None else f"ftcot schema_version {version!r}"
        raise UserError(
            f"{path}: made by {made}; this ftcot reads schema_version {SCHEMA_VERSION}: rerun `ftcot {model.stage}`"
        )
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise UserError(f"{path}: not an ftcot {model.stage} summary: {first_error(exc)}") from None


def read_summary(path: Path, model: type[S]) -> S | None:
    """parse_summary, or None where the file is not there (the stage has not run)."""
    return parse_summary(path, model) if path.is_file() else None


def current(path: Path, model: type[S]) -> S | None:
    """The summary where it is there, of this schema version and readable; else None (for is_done: rerun)."""
    try:
        return read_summary(path, model)
    except UserError:
        return None


def read_run_config(root: Path):
    """The run's config.yaml as its RunConfig: the one way the report, report.html and export read it (a
    config of keys this ftcot does not know is a one-line error naming the file and the key)."""
    from ftcot.config import load_config  # ftcot.config is the config's; this module the run's outputs

    return load_config(RunFolder(Path(root)).config)
