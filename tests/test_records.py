import json

import minidata
import pytest

from ftcot.errors import UserError
from ftcot.tasks import load_task
from ftcot.tasks.answers import parse_prediction
from ftcot.teachers.records import (
    read_completion_dataset,
    read_shared_jsonl,
    recorded_teacher_path,
    write_completion_dataset,
)


def test_shared_records_become_teacher_completions(data_dir):
    records = read_shared_jsonl(recorded_teacher_path("coin_flip", data_dir))
    n = minidata.SIZES["coin_flip"]
    assert len(records) == n and len({r.sample_index for r in records}) == n
    first = records[0]
    assert first.model == "text-davinci-002" and first.params["max_tokens_reasoning"] == 128
    assert first.answer_prompt == (
        first.reasoning_prompt + first.reasoning_completion + " \nTherefore, the answer (Yes or No) is"
    )
    fmt = load_task("coin_flip").answer_format
    correct = {r.sample_index for r in records if fmt.matches(parse_prediction(fmt, r.answer_completion), r.answer)}
    assert correct == set(range(n)) - minidata.TEACHER_WRONG["coin_flip"]


def test_completion_dataset_round_trip(data_dir, tmp_path):
    records = read_shared_jsonl(recorded_teacher_path("date_understanding", data_dir))
    records[0] = records[0].model_copy(
        update={"completion_index": 1, "usage": {"total_tokens": 3}, "latency_s": 0.5, "answer_finish_reason": "stop"}
    )
    path = tmp_path / "date.json"
    write_completion_dataset(records, path)
    raw = json.loads(path.read_text())
    assert raw["metadata"]["dataset_key"] == "date_understanding"
    assert raw["metadata"]["base_model"] == "text-davinci-002"
    entry = raw["data"][str(records[0].sample_index)][0]
    assert {
        "sample_index",
        "completion_index",
        "question",
        "answer",
        "prompt",
        "completion",
        "finish_reason",
        "reasoning_prompt",
        "reasoning_completion",
    } <= set(entry)
    back = read_completion_dataset(path)
    key = lambda r: (r.sample_index, r.completion_index)  # noqa: E731
    assert sorted(back, key=key) == sorted(records, key=key)


def test_reads_the_papers_minimal_completion_format(tmp_path):
    # A record as the paper's code writes it: no task/model per completion, only metadata.
    paper = {
        "metadata": {
            "base_model": "text-davinci-002",
            "dataset_key": "multiarith",
            "completion_key": "zs_cot",
            "prediction_template": "zs_cot",
        },
        "data": {
            "7": [
                {
                    "sample_index": 7,
                    "completion_index": 0,
                    "question": "Q?",
                    "answer": "5",
                    "prompt": "Q: Q?\nA: Let's think step by step. r\nTherefore, the answer is",
                    "completion": " 5.",
                    "finish_reason": "stop",
                    "reasoning_prompt": "Q: Q?\nA: Let's think step by step.",
                    "reasoning_completion": " r",
                    "reasoning_finish_reason": "stop",
                }
            ]
        },
    }
    path = tmp_path / "paper.json"
    path.write_text(json.dumps(paper))
    (record,) = read_completion_dataset(path)
    assert (record.task, record.model, record.sample_index, record.answer_completion) == (
        "multiarith",
        "text-davinci-002",
        7,
        " 5.",
    )


def test_malformed_inputs_give_file_and_line(tmp_path):
    bad = tmp_path / "coin_flip.jsonl"
    bad.write_text('{"task": "coin_flip"}\n')
    with pytest.raises(UserError, match=r"coin_flip\.jsonl:1: malformed record: missing field"):
        read_shared_jsonl(bad)
    bad.write_text("\n\n{nope\n")
    with pytest.raises(UserError, match=r"coin_flip\.jsonl:3: malformed JSON line"):
        read_shared_jsonl(bad)
    with pytest.raises(UserError, match="does not exist"):
        read_shared_jsonl(tmp_path / "absent.jsonl")
    dataset = tmp_path / "d.json"
    dataset.write_text('{"metadata": {}, "data": {"1": [{"sample_index": 1}]}}')
    with pytest.raises(UserError, match=r"data\[1\]\[0\]: malformed record"):
        read_completion_dataset(dataset)
