"""YAML run configuration, validated with pydantic: an unknown key or bad value is one line naming it."""

from __future__ import annotations

import re
from contextvars import ContextVar
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Literal, TypeVar
from urllib.parse import parse_qsl, urlsplit

import yaml
from pydantic import AfterValidator, BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from ftcot.errors import UserError, first_error
from ftcot.files import read_text
from ftcot.log import log
from ftcot.methods import BASELINES, DEFAULT_TRAINED, METHODS, TRAINED
from ftcot.tasks import BUILTIN, TaskDecl
from ftcot.tasks.answers import NAMED

Model = TypeVar("Model", bound=BaseModel)


# How a key counts in the fingerprints that decide which stages rerun (ftcot.pipeline.fingerprint); every other key
# of a section reruns the stages that depend on that section when it changes.
@dataclass(frozen=True)
class Operational:
    """A key that changes how a stage runs, not what it produces: changing it reruns nothing."""


@dataclass(frozen=True)
class Added:
    """A key added after run folders were made: at `value`, which does what those folders did, it is out of the
    fingerprint, so they stay complete (any other value reruns the stage)."""

    value: object


@dataclass(frozen=True)
class Renamed:
    """A key that was called `old`: a config that says `old` still loads, with a one-line note, and fingerprints
    spell the key `old`, so run folders made before the rename stay complete."""

    old: str


def keys_marked(model: type[BaseModel], marker: type) -> dict[str, object]:
    """The model's fields that carry a marker (Operational, Added, Renamed), each with its marker."""
    return {
        name: mark for name, field in model.model_fields.items() for mark in field.metadata if isinstance(mark, marker)
    }


ENGINES = ("hf", "openai", "ctranslate2")  # ftcot.engines' modules


class Strict(BaseModel):
    # No unknown keys; no inf or nan where a number is asked for (a price of .inf makes every cost NaN). A field's
    # docstring is its description, from which docs/configuration.md is generated (ftcot.config_guide).
    model_config = ConfigDict(extra="forbid", allow_inf_nan=False, use_attribute_docstrings=True)

    @model_validator(mode="before")
    @classmethod
    def _old_names(cls, data):
        renamed = keys_marked(cls, Renamed)
        if not isinstance(data, dict) or not renamed:
            return data
        data = dict(data)
        for new, mark in renamed.items():
            if mark.old in data:
                if new in data:
                    raise ValueError(f"{mark.old} is the old name of {new}: give {new} alone")
                notes = _renamed_notes.get()
                if notes is not None:  # else validated outside a RunConfig: nobody to say it
                    notes.append(f"note: config key {mark.old} is now {new}; the old name is read for now")
                data[new] = data.pop(mark.old)
        return data


# The notes of a config being validated: said once it is valid (RunConfig), so a config that also has a mistake
# is still one line on stderr.
_renamed_notes: ContextVar[list[str] | None] = ContextVar("renamed_notes", default=None)
# The notes said in this process: a command that reads a config more than once (the report, for each of its parts)
# says each note once.
said: set[str] = set()


# A server's address and key, for the teacher and for a served student. The messages never repeat the value: it
# may be a secret.
def _no_credentials(value: str) -> str:
    url = urlsplit(value)
    secret_query = any(
        re.search(r"key|token|secret|password|auth|sig", name, re.I)
        for name, _ in parse_qsl(url.query, keep_blank_values=True)
    )
    if url.username or url.password or secret_query:
        raise ValueError("holds credentials: put the key in an environment variable and name it in api_key_env")
    return value


def _variable_name(value: str) -> str:
    if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", value):
        raise ValueError(
            "must name the environment variable that holds the key (e.g. OPENAI_API_KEY), not "
            "hold the key itself; null for a server that needs no key"
        )
    return value


BaseUrl = Annotated[str, AfterValidator(_no_credentials)]
KeyVariable = Annotated[str, AfterValidator(_variable_name)]


class Sampling(Strict):
    """Sampling parameters of one zero-shot-CoT step, sent as-is to the backend."""

    temperature: float = Field(0.0, ge=0, le=2)
    """0: greedy."""
    top_p: float = Field(1.0, gt=0, le=1)
    """Nucleus sampling's probability mass (the hf teacher takes only 1)."""
    max_tokens: int = Field(128, ge=1)
    """The step's token limit."""
    stop: list[Annotated[str, Field(min_length=1)]] | None = None
    """Strings that end the completion."""
    seed: int | None = None
    """The backend's sampling seed, where it takes one."""


class Price(Strict):
    """A model's price, in USD per million tokens."""

    input: float = Field(ge=0)
    """USD per million prompt tokens."""
    output: float = Field(ge=0)
    """USD per million completion tokens."""


class Adaptive(Strict):
    """Diverse reasoning in rounds: a question is sampled again (its shortfall of correct rationales at a time)
    until it has want_correct correct ones or max_samples in all; the first round draws num_samples."""

    max_samples: int = Field(16, ge=1)
    """Rationales a question may draw in all, every round counted (at least num_samples and want_correct)."""
    want_correct: int = Field(2, ge=1)
    """Correct rationales a question is asked again for, its shortfall at a time."""


class RationaleSource(Strict):
    """Rationales someone already has (a previous project's, a released distillation set, another tool's output):
    a table (.json, .jsonl, .parquet, .csv or a `datasets` folder) of questions with one rationale or a list of
    them a row, matched to the task's questions by text (exactly, else with whitespace normalised). Each rationale
    becomes a recorded completion k = 0, 1, ... of its question; rows of one question add up in file order."""

    path: str
    """The file or folder, relative to the directory ftcot runs in."""
    teacher: str | None = None
    """The teacher's name each record keeps; default: teacher.model where the config sets it, else the file's
    name."""
    question: str = "question"
    """The field holding the question."""
    rationale: str = "rationale"
    """The field holding a rationale, or a list of them."""
    answer: str | None = None
    """The field holding the answer each rationale reached (a text, or a list beside a list of rationales);
    without it the answer is read from the rationale's conclusion, as curation's consistency check reads it."""
    correct: str | None = None
    """The field holding a flag (or a list of flags): the rationale is known to reach the gold answer."""


class TeacherConfig(Strict):
    """The teacher: zero-shot-CoT on the configured questions, step 1 (`Q: {question}\\nA: Let's think step by
    step.`) sampling a rationale, step 2 (step 1, the rationale and the answer trigger) reading the answer."""

    backend: Literal["openai", "hf", "recorded"] = "recorded"
    """openai: any OpenAI-compatible server; hf: a local transformers model; recorded: completions someone
    already has (records)."""
    model: str = "text-davinci-002"
    """openai: the served model's name; hf: a hub id, a local path or smollm2-135m; recorded: the named source
    read when records is unset."""
    num_samples: int = Field(1, ge=1)
    """D: rationales per question (diverse reasoning when > 1)."""
    rationale: Sampling = Sampling(max_tokens=128)
    """Step 1, the rationale."""
    answer: Sampling = Sampling(max_tokens=32)
    """Step 2, the answer."""
    answer_trigger: str | None = None
    """Step 2's trigger; default: the task's trigger."""
    teach_on: list[Literal["train", "test"]] = ["train"]
    """The sides of the split whose questions the teacher answers."""
    max_questions: Annotated[int | None, Renamed("max_samples")] = Field(None, ge=1)
    """The first N questions of each side, for quick runs (was max_samples)."""
    adaptive: Annotated[Adaptive | None, Added(None)] = None
    """Diverse reasoning in rounds; train questions only (test questions are asked num_samples times)."""
    rationalize: Annotated[bool, Added(False)] = False
    """A train question no sample solved is asked once more, its answer as a hint (STaR); needs a live
    teacher."""
    # openai backend
    base_url: BaseUrl | None = None
    """openai: the server, e.g. http://127.0.0.1:8000/v1 (vLLM, llama.cpp, Ollama); default:
    https://api.openai.com/v1; never with credentials in it."""
    api_key_env: KeyVariable | None = "OPENAI_API_KEY"
    """openai: the variable the key is read from (the key itself is never stored); null: a local server that needs
    none."""
    endpoint: Literal["completions", "chat"] = "completions"
    """openai: the completions endpoint, or chat (the prompt goes as one user message)."""
    # Reasoning models on the chat endpoint.
    max_tokens_param: Literal["max_tokens", "max_completion_tokens"] = "max_tokens"
    """openai: the name of the token limit the model accepts (o-series and newer reject max_tokens)."""
    rationale_from: Literal["content", "reasoning"] = "content"
    """openai: the rationale is the answer text, or the reasoning the server returns beside it (reasoning_content
    / reasoning)."""
    strip_think: bool = False
    """openai: <think>...</think> blocks are moved out of the answer text and become the reasoning."""
    concurrency: Annotated[int, Operational()] = Field(32, ge=1, le=1000)
    """openai: requests in flight. At most the SDK's connection pool (1000): a request that holds its worst case in
    the ledger is on the wire at once, never queued in the client for a connection."""
    requests_per_minute: Annotated[float | None, Operational()] = Field(None, ge=1)
    """openai: requests in any 60-second window; null: no limit."""
    tokens_per_minute: Annotated[float | None, Operational()] = Field(None, ge=1)
    """openai: tokens in any 60-second window, a request counted at its worst case; null: no limit."""
    timeout_s: Annotated[float, Operational()] = Field(60.0, gt=0)
    """openai: seconds a request may take."""
    max_attempts: Annotated[int, Operational()] = Field(6, ge=1)
    """openai: attempts of a request (retried with backoff) before its one-line error."""
    n_per_request: bool = True
    """openai: ask for several samples in one request (servers that ignore n are handled)."""
    batch: bool = False
    """openai: use the OpenAI Batch API (submit, poll, ingest; resumes from the batch id); not with a budget."""
    batch_poll_s: Annotated[float, Operational()] = Field(30.0, gt=0)
    """openai: seconds between polls of a batch."""
    prices: Annotated[dict[str, Price], Operational()] = {}
    """Prices by model name; overrides the built-in price table."""
    max_cost: Annotated[float | None, Operational()] = Field(None, ge=0)
    """USD, a hard limit on what the run folder spends in all, over every invocation: each request holds its
    worst case before it is sent; a stop exits 3; raise it to go on. Needs the model's price."""
    # hf backend
    device: str = "auto"
    """hf: the device; auto: the GPU when there is one, else the CPU."""
    trust_remote_code: bool = False
    """hf: run the model's own code from its repository."""
    # recorded backend
    records: str | RationaleSource | list[str | RationaleSource] | None = None
    """recorded: a named source (text-davinci-002: Kojima et al.'s logs, every task; gpt-3.5-turbo-instruct:
    Mentor-KD's release, 4 tasks), a file of teacher records (what `ftcot teach` writes, the paper's
    CompletionDataset JSON), a table of rationales, or a list of them, whose completions add up per question in
    order (num_samples takes the first D). Default: the named source teacher.model."""
    on_missing: Literal["error", "skip"] = "error"
    """recorded: a question without a record is an error, or left out."""

    @model_validator(mode="after")
    def _adaptive_can_work(self) -> TeacherConfig:
        if self.records == []:
            raise ValueError("records: an empty list names no source (leave it out for the named source teacher.model)")
        a = self.adaptive
        if a and a.want_correct > a.max_samples:
            raise ValueError(f"adaptive: want_correct ({a.want_correct}) is more than max_samples ({a.max_samples})")
        if a and self.num_samples > a.max_samples:
            raise ValueError(
                f"adaptive: the first round (num_samples {self.num_samples}) is more than max_samples ({a.max_samples})"
            )
        if a and self.rationale.temperature == 0 and self.backend != "recorded":
            raise ValueError(
                "adaptive asks again for rationales: at rationale.temperature 0 each round would repeat the same one"
            )
        return self


class CurateConfig(Strict):
    """Curation: the teacher's correct rationales become training examples; the validation split is carved from
    the train questions (nothing is ever selected on the test split)."""

    val_fraction: float = Field(0.1, ge=0, lt=1)
    """The share of the train questions held out to choose epochs."""
    seed: int = 0
    """The seed of the validation split."""
    drop_truncated: bool = True
    """Drop rationales cut off by the token limit (records without a finish reason: ending mid-sentence at about
    their token limit)."""
    drop_empty: bool = True
    """Drop empty rationales."""
    dedupe: bool = True
    """Drop identical rationales of one question."""
    max_per_question: int | None = Field(None, ge=1)
    """Examples kept per question at most; default: the most completions a question can have (teacher.num_samples,
    or adaptive's max_samples, plus a rationalization)."""
    question_source: Literal["task", "teacher"] = "task"
    """task: train on the task's own question text and gold answer (what evaluation shows the student), in the
    teacher's choice order where that differs (recorded Date logs); teacher: on the question and answer as the
    teacher saw them (recorded logs use another format)."""
    rationalized: Annotated[Literal["keep", "drop"], Added("keep")] = "keep"
    """Keep or drop the examples the teacher wrote with the answer as a hint (teacher.rationalize)."""
    consistency: Annotated[bool | None, Added(False)] = None
    """Keep a rationale only if its own conclusion is the gold answer (the option it names last, the last number,
    the last yes/no, the letters it ends on); one that states none is kept. Default: on, except under train.protocol paper, which keeps
    the paper's filter (a correct teacher answer)."""
    choice_order: Annotated[Literal["test", "teacher"], Added("teacher")] = "test"
    """test: a choice question the teacher saw in another option order (Kojima's Date logs) is trained in the
    test's order, the letters inside its rationale remapped; teacher: in the order the teacher saw."""
    permute_choices: Annotated[int, Added(0)] = Field(0, ge=0, le=100, strict=True)
    """K: each multiple-choice training example K more times (at most its options' n! - 1 other orders) with its
    options shuffled (letters remapped in the question, the rationale and the answer), so the student learns no
    letter prior; 0: off. Choice tasks only."""
    permute_seed: Annotated[int, Added(0)] = 0
    """The shuffles' seed (the validation split keeps curate.seed)."""


class StudentConfig(Strict):
    """The student fine-tuned and evaluated: a causal LM or a seq2seq model."""

    model: str = "smollm2-135m"
    """A hub id, a local path, or an alias: smollm2-135m (bundled), gemma3-270m (the gemma extra)."""
    kind: Literal["auto", "decoder", "encoder_decoder"] = "auto"
    """auto: read from the model's config."""
    trust_remote_code: bool = False
    """Run the model's own code from its repository."""


class LoraConfig(Strict):
    """LoRA adapters (peft) instead of all weights."""

    r: int = Field(16, ge=1)
    """The adapters' rank."""
    alpha: int = Field(32, ge=1)
    """LoRA's scaling alpha."""
    dropout: float = Field(0.05, ge=0, lt=1)
    """Dropout on the adapters' input."""
    save: Literal["merged", "adapter"] = "merged"
    """merged: best/ holds the merged model; adapter: the adapter alone (AutoPeftModelForCausalLM loads it,
    `ftcot evaluate` merges it into the base model)."""


# What the paper's training script does (reasoning-teacher `custom_train.py` and the `configure_optimizers` of its
# Lightning module): torch's AdamW at a constant 3e-4 (no warmup, its default weight decay 0.01), batch 8, 20 epochs.
PROTOCOLS = {
    "paper": {
        "epochs": 20,
        "learning_rate": 3e-4,
        "lr_schedule": "constant",
        "batch_size": 8,
        "grad_accum": 1,
        "warmup_ratio": 0.0,
        "weight_decay": 0.01,
    }
}


# transformers' report_to names (INTEGRATION_TO_CALLBACK), written out: config.py does not import transformers.
TRACKERS = (
    "azure_ml",
    "clearml",
    "codecarbon",
    "comet_ml",
    "dagshub",
    "dvclive",
    "flyte",
    "kubeflow",
    "mlflow",
    "neptune",
    "swanlab",
    "tensorboard",
    "trackio",
    "wandb",
)


class TrainConfig(Strict):
    """Fine-tuning the student with transformers' Trainer: every epoch is validated and the best one kept."""

    protocol: Literal["custom", "paper"] = "custom"
    """paper: the paper's training script (PROTOCOLS) for every key not set in the config; custom: the defaults
    here."""
    methods: Annotated[list[Literal[TRAINED]], Operational()] = list(DEFAULT_TRAINED)
    """The trained methods (dss: distilling step-by-step)."""
    epochs: int = Field(3, ge=1)
    """Epochs at most; each is validated."""
    learning_rate: float = Field(1e-4, gt=0)
    """AdamW's learning rate."""
    lr_schedule: Literal["linear", "constant"] = "linear"
    """linear: decay to 0; constant."""
    batch_size: int = Field(8, ge=1)
    """Examples per step and device."""
    grad_accum: int = Field(1, ge=1)
    """Gradient accumulation steps."""
    max_length: int = Field(512, ge=8)
    """Tokens of prompt + completion."""
    warmup_ratio: float = Field(0.0, ge=0, lt=1)
    """The share of the steps spent warming the learning rate up."""
    weight_decay: float = Field(0.0, ge=0)
    """AdamW's weight decay."""
    patience: int | None = Field(None, ge=1)
    """Stop after this many epochs without a validation gain."""
    max_minutes: float | None = Field(None, gt=0)
    """Stop before an epoch that would end past this many minutes (training + validation)."""
    precision: Literal["auto", "fp32", "bf16"] = "auto"
    """auto: bf16 autocast on a GPU that has it, else fp32."""
    checkpoint: Annotated[bool, Operational()] = True
    """Save model and optimizer each epoch, so a killed run resumes (costs a write)."""
    checkpoint_minutes: Annotated[float | None, Operational()] = Field(30.0, gt=0)
    """With checkpoint: also save within an epoch once this many minutes have passed since the last save, so a
    kill loses at most that much of a long epoch (the resumed run trains on from the next batch, as if never
    stopped); null: at epoch ends only."""
    lora: LoraConfig | None = None
    """Set to fine-tune LoRA adapters instead of all weights."""
    max_examples: int | None = Field(None, ge=1)
    """The first N training examples (after curation, with their shuffled copies), for quick runs."""
    report_to: Annotated[list[Literal[TRACKERS]], Operational()] = []
    """Experiment trackers, passed to the Trainer as they are: tensorboard, wandb, mlflow, trackio, ... (each
    needs its package installed); TensorBoard's event files go to students/<method>/logs."""
    dss_alpha: float = Field(1.0, ge=0)
    """dss: weight of the rationale task's loss beside the label task's."""
    validate_with_calculator: Annotated[bool | None, Added(False)] = None
    """Reasoning methods: validation writes with the calculator (evaluate.calculator), so the epoch is chosen as
    the student is scored; default: as evaluate.calculator."""
    seed: int = 0
    """The Trainer's seed."""

    @model_validator(mode="after")
    def _apply_protocol(self) -> TrainConfig:
        for key, value in PROTOCOLS.get(self.protocol, {}).items():
            if key not in self.model_fields_set:
                setattr(self, key, value)
        return self


class SelfConsistency(Strict):
    """Self-consistency: k rationales sampled per test question, their answers voted on."""

    k: int = Field(8, ge=1)
    """Sampled rationales per test question, voted on."""
    temperature: float = Field(0.7, gt=0, le=2)
    """The sampling temperature."""
    seed: int = 0
    """The sampling seed."""


class EvalConfig(Strict):
    """Test accuracy of the teacher, the prompting baselines on the base student and the fine-tuned students."""

    baselines: Annotated[list[Literal[BASELINES]], Operational()] = list(BASELINES)
    """The prompting baselines on the base student (few_shot_cot is left out for a task without a few-shot
    prompt)."""
    self_consistency: Annotated[SelfConsistency | None, Added(None)] = None
    """Also sample and vote for each reasoning method whose answer is in its output (ft_cot, few_shot_cot)."""
    batch_size: Annotated[int | None, Operational()] = Field(None, ge=1)
    """Default: 256 on a GPU, 64 on the CPU (a step reads every weight)."""
    max_new_tokens: int | None = Field(None, ge=1)
    """For reasoning outputs (answers alone get 16); default: the 99th percentile of the curated completions'
    length in student tokens, plus a margin."""
    max_questions: Annotated[int | None, Renamed("max_samples")] = Field(None, ge=1)
    """The first N test questions, for quick runs (was max_samples)."""
    choice_by_content: Annotated[bool, Added(False)] = False
    """Choice tasks: also score each reasoning output by the option its rationale names by text (its final date,
    object...), as a row of its own beside the paper's parser (which reads the letter after the marker)."""
    calculator: Annotated[bool, Added(False)] = False
    """Number tasks: each reasoning method is also scored with a calculator in decoding (ftcot.calculator: the
    value of every arithmetic expression before an `=` written for the student), as a row of its own."""
    engine: Annotated[Literal[ENGINES], Added("hf")] = "hf"
    """The engine that generates the students' outputs (ftcot.engines): hf in this process; openai, a server
    (vLLM, llama.cpp, TGI) at base_url serving each method's student under the name `models` gives it;
    ctranslate2, each student converted once into the run folder (the `bench` extra)."""
    base_url: Annotated[BaseUrl | None, Operational()] = None
    """openai: the server, e.g. http://127.0.0.1:8000/v1; never with credentials in it."""
    api_key_env: Annotated[KeyVariable | None, Operational()] = None
    """openai: the variable holding the key; null: a local server, which takes any key."""
    models: Annotated[dict[str, str], Operational()] = {}
    """openai: method -> served model name, e.g. {ft_cot: ft_cot, zero_shot: base}; the methods evaluated on the
    server."""
    concurrency: Annotated[int, Operational()] = Field(32, ge=1)
    """openai: requests in flight."""
    timeout_s: Annotated[float, Operational()] = Field(300.0, gt=0)
    """openai: seconds a request may take."""
    max_attempts: Annotated[int, Operational()] = Field(6, ge=1)
    """openai: attempts of a request (retried with backoff) before its one-line error."""
    n_per_request: Annotated[bool, Operational()] = True
    """openai: ask for a question's self-consistency samples in one request (n); false for a server that
    refuses n > 1 (llama.cpp's, `ftcot serve`): one request a sample."""
    compute_type: Annotated[Literal["float32", "int8"], Added("float32")] = "float32"
    """ctranslate2: the converted student's compute type."""

    @model_validator(mode="after")
    def _a_server_is_named(self) -> EvalConfig:
        if self.engine == "openai" and not (self.base_url and self.models):
            raise ValueError("engine openai: give base_url and models (each method's served model name)")
        unknown = [m for m in self.models if m not in METHODS]
        if unknown:
            raise ValueError(f"models: unknown method {unknown[0]!r}; methods: {', '.join(METHODS)}")
        return self


class RunConfig(Strict):
    """A run: one task, its teacher, curation, student, training and evaluation, in one run folder."""

    task: str | TaskDecl
    """A built-in task's key, a custom task, or the path of a YAML file declaring one."""
    split: str = "default"
    """The task's split by name (the paper's split files; a custom task's splits)."""
    data_dir: str | None = None
    """The data folder; default: $FTCOT_DATA_DIR, else ~/.cache/ftcot/data."""
    run_dir: str = Field("runs/default", min_length=1)
    """The run folder every stage reads and writes."""
    teacher: TeacherConfig = TeacherConfig()
    """The teacher."""
    curate: CurateConfig = CurateConfig()
    """Curation."""
    student: StudentConfig = StudentConfig()
    """The student."""
    train: TrainConfig = TrainConfig()
    """Training."""
    evaluate: EvalConfig = EvalConfig()
    """Evaluation."""

    @field_validator("task", mode="before")
    @classmethod
    def _known_task(cls, value):
        if isinstance(value, dict):
            return TaskDecl.model_validate(value).resolved(Path.cwd())
        if isinstance(value, str) and value.endswith((".yaml", ".yml")):
            path = Path(value)
            return load_config(path, TaskDecl).resolved(path.resolve().parent)
        if isinstance(value, str) and value not in BUILTIN:
            raise ValueError(
                f"unknown task {value!r}; known tasks: {', '.join(BUILTIN)}, or a custom task "
                "(a mapping, or a task YAML file)"
            )
        return value

    @model_validator(mode="before")
    @classmethod
    def _notes_of_this_config(cls, data):
        _renamed_notes.set([])
        return data

    @model_validator(mode="after")
    def _curation_fits_the_task(self) -> RunConfig:
        if self.curate.consistency is None:  # the paper's filter under the paper's protocol
            self.curate.consistency = self.train.protocol != "paper"
        choice = self.declaration.answer_format == "choice"
        if not choice and self.curate.permute_choices:
            raise ValueError(f"curate.permute_choices: task {self.task_name} has no answer choices to shuffle")
        if not choice and self.evaluate.choice_by_content:
            raise ValueError(f"evaluate.choice_by_content: task {self.task_name} has no answer choices to read")
        if self.train.validate_with_calculator is None:
            self.train.validate_with_calculator = self.evaluate.calculator
        fmt = self.declaration.answer_format
        numeric = fmt in NAMED and NAMED[fmt][0].numeric
        for key, on in (
            ("evaluate.calculator", self.evaluate.calculator),
            ("train.validate_with_calculator", self.train.validate_with_calculator),
        ):
            if on and not numeric:
                raise ValueError(f"{key}: task {self.task_name}'s answers are not numbers (answer format {fmt})")
        return self

    @model_validator(mode="after")
    def _say_renamed_keys(self) -> RunConfig:  # the last check: said only of a config that is valid
        for note in _renamed_notes.get() or ():
            if note not in said:
                said.add(note)
                log.warning(note)
        _renamed_notes.set(None)
        return self

    @property
    def task_name(self) -> str:
        return self.declaration.name

    @property
    def declaration(self) -> TaskDecl:
        return BUILTIN[self.task] if isinstance(self.task, str) else self.task


def _encode_all(value) -> None:
    """UnicodeEncodeError if any string in a YAML value is not text."""
    if isinstance(value, str):
        value.encode("utf-8")
    elif isinstance(value, dict):
        for key, item in value.items():
            _encode_all(key)
            _encode_all(item)
    elif isinstance(value, list):
        for item in value:
            _encode_all(item)


def load_config(path: str | Path, model: type[Model] = RunConfig) -> Model:
    path = Path(path)
    text = read_text(path, "config file")
    try:
        raw = yaml.safe_load(text)
        _encode_all(raw)  # a lone surrogate ("\ud800") could be neither stored nor sent
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f":{mark.line + 1}" if mark is not None else ""
        raise UserError(f"{path}{where}: not valid YAML: {getattr(exc, 'problem', None) or exc}") from None
    except RecursionError:
        raise UserError(f"{path}: nested too deeply to be a config") from None
    except UnicodeEncodeError:
        raise UserError(f"{path}: holds a lone surrogate (an escape like \\ud800), which is not text") from None
    if not isinstance(raw, dict):
        raise UserError(f"{path}: a config must be a mapping of keys to values")
    try:
        return model.model_validate(raw)
    except ValidationError as exc:
        raise UserError(f"{path}: {first_error(exc)}") from None
