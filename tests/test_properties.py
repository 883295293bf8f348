"""Property tests: whatever bytes or JSON a user hands the config loader, the records reader or the answer parser,
the only thing that comes out besides a result is the project's own one-line error."""

import json

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ftcot.config import load_config
from ftcot.errors import UserError
from ftcot.methods import METHODS
from ftcot.tasks import answers
from ftcot.tasks.answers import parse_prediction
from ftcot.teachers.records import read_records

# Deterministic examples: a property test in CI must not fail at random on a case no one can replay.
SETTINGS = settings(
    max_examples=150, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.function_scoped_fixture]
)

scalars = st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20)
json_values = st.recursive(
    scalars,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=12), inner, max_size=4),
    max_leaves=20,
)
# Values under the keys a config or a record really has reach the validators, not only the "unknown key" check.
CONFIG_KEYS = ["task", "run_dir", "split", "seed", "teacher", "curate", "student", "train", "evaluate", "data_dir"]
RECORD_KEYS = [
    "task",
    "sample_index",
    "completion_index",
    "question",
    "answer",
    "gold",
    "reasoning_completion",
    "answer_completion",
    "metadata",
    "data",
    "prompt",
    "completion",
]


def _known(keys):
    return st.dictionaries(st.sampled_from(keys), json_values, max_size=6)


def _only_user_errors(call):
    try:
        call()
    except UserError:
        pass


@SETTINGS
@given(
    st.binary(max_size=300)
    | _known(CONFIG_KEYS).map(lambda d: json.dumps(d).encode())
    | st.builds(
        lambda d, teacher: json.dumps({"task": "coin_flip", **d, "teacher": teacher}).encode(),
        _known(CONFIG_KEYS),
        _known(["backend", "model", "base_url", "api_key_env", "max_cost", "num_samples", "prices", "concurrency"]),
    )
)
def test_the_config_loader_raises_only_user_errors(tmp_path, blob):
    path = tmp_path / "config.yaml"
    path.write_bytes(blob)
    _only_user_errors(lambda: load_config(path))


@SETTINGS
@given(
    st.sampled_from([".jsonl", ".json"]),
    st.binary(max_size=300)
    | st.lists(_known(RECORD_KEYS) | json_values, max_size=4).map(
        lambda rows: "\n".join(json.dumps(r) for r in rows).encode()
    )
    | _known(RECORD_KEYS).map(lambda d: json.dumps(d).encode()),
)
def test_the_records_reader_raises_only_user_errors(tmp_path, suffix, blob):
    path = tmp_path / f"records{suffix}"
    path.write_bytes(blob)
    _only_user_errors(lambda: read_records(path))


FORMATS = [value for value in vars(answers).values() if isinstance(value, answers.AnswerFormat)]


@SETTINGS
@given(
    st.sampled_from(FORMATS),
    st.text(max_size=200),
    st.sampled_from([None, *(m.answer_prefix for m in METHODS.values())]),
    st.text(max_size=10),
)
def test_the_answer_parser_never_raises(fmt, text, prefix, gold):
    parsed = parse_prediction(fmt, text, prefix)
    assert parsed is None or isinstance(parsed, str)
    _only_user_errors(lambda: fmt.matches(parsed, gold))
