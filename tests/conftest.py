import os
from pathlib import Path

import minidata
import pytest
from helpers import train_tokenizer

# The real data: the project's shared, read-only copy beside the checkout (never copied into the repo), or
# $FTCOT_TEST_DATA. A test that requests `shared_data` is marked `realdata` and skipped where the data is
# absent, except under CI (CI=true), which must run every one of them.
SHARED_DATA = Path(os.environ.get("FTCOT_TEST_DATA", Path(__file__).resolve().parents[2] / "shared" / "data"))
IN_CI = os.environ.get("CI", "").lower() not in ("", "0", "false")


def _shared_data_present() -> bool:
    return (SHARED_DATA / "MANIFEST.tsv").is_file()


def pytest_collection_modifyitems(items):
    for item in items:
        if "shared_data" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.realdata)


@pytest.fixture(scope="session")
def shared_data() -> Path:
    if not _shared_data_present():
        missing = f"real data not found at {SHARED_DATA} (set FTCOT_TEST_DATA to the shared data folder)"
        if IN_CI:
            pytest.fail(f"CI must run the real-data tests: {missing}", pytrace=False)
        pytest.skip(missing)
    return SHARED_DATA


@pytest.fixture(scope="session")
def data_dir(tmp_path_factory) -> Path:
    """The synthetic data folder (tests/minidata.py), for every test that needs some data but not the real data."""
    return minidata.write(tmp_path_factory.mktemp("data"))


@pytest.fixture(scope="session", autouse=True)
def _default_data_dir(data_dir, tmp_path_factory):
    """Whatever runs without a data folder of its own (a config without data_dir, an `ftcot` subprocess) reads the
    synthetic one: never the real data `make` names in $FTCOT_DATA_DIR, nor ~/.cache/ftcot/data. The model cache
    starts empty on every run, as on a machine that never converted a model: a test that passes only on a warm
    cache fails here, not on the next new machine."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("FTCOT_DATA_DIR", str(data_dir))
        patch.setenv("FTCOT_CACHE_DIR", str(tmp_path_factory.mktemp("model_cache")))
        yield


@pytest.fixture(scope="session")
def bundled_student(tmp_path_factory, data_dir):
    """The bundled student converted once per test run in a cold cache, by a real `ftcot evaluate` (the zero-shot
    baseline on 2 synthetic Coin Flip questions): (the cache folder, the command's result). Tests of the real
    model reuse the folder, so the conversion is paid once."""
    from helpers import run_cli, run_config

    cache = tmp_path_factory.mktemp("cold_cache")
    work = tmp_path_factory.mktemp("bundled_student")
    config = run_config(work, data_dir, as_file="c.yaml", evaluate={"max_questions": 2, "max_new_tokens": 8})
    return cache, run_cli("evaluate", config, "--method", "zero_shot", env={"FTCOT_CACHE_DIR": str(cache)})


def pytest_terminal_summary(terminalreporter):
    """One line that shows whether the real-data tests ran: CI's log must show them run, not skipped."""
    outcomes: dict[str, set] = {}
    for outcome in ("passed", "failed", "error", "skipped"):
        for report in terminalreporter.stats.get(outcome, []):
            if "realdata" in getattr(report, "keywords", {}):
                outcomes.setdefault(report.nodeid, set()).add(outcome)
    tally = {"passed": 0, "failed": 0, "skipped": 0}
    for seen in outcomes.values():  # a test counts once: failed if any phase failed
        tally["failed" if seen & {"failed", "error"} else "skipped" if "skipped" in seen else "passed"] += 1
    where = f"data: {SHARED_DATA}" if _shared_data_present() else f"no data at {SHARED_DATA}"
    terminalreporter.write_line(
        f"real-data tests: {tally['passed']} passed, {tally['failed']} failed, {tally['skipped']} skipped ({where})"
    )


@pytest.fixture(scope="session")
def tiny_lm(tmp_path_factory, data_dir) -> Path:
    """A 2-layer Llama with a byte-level BPE tokenizer trained on the task texts, saved as HF safetensors."""
    import json

    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    texts = [
        json.loads(line)["reasoning_completion"] + json.loads(line)["question"]
        for line in (data_dir / minidata.TEACHER_DIR / "coin_flip.jsonl").open()
    ]
    tokenizer = train_tokenizer(texts + ["Q: A: Let's think step by step. --> ### yes no 0123456789"])
    config = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=4,
        max_position_embeddings=1024,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
        bos_token_id=tokenizer.eos_token_id,
        tie_word_embeddings=True,
    )
    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("tiny_lm")
    LlamaForCausalLM(config).save_pretrained(path)
    tokenizer.save_pretrained(path)
    return path


@pytest.fixture(scope="session")
def wide_lm(tiny_lm, tmp_path_factory) -> Path:
    """The tiny LM widened (helpers.widen): engines agree on its every greedy token."""
    from helpers import widen

    return widen(tiny_lm, tmp_path_factory.mktemp("wide_lm"))
