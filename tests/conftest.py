import os
from pathlib import Path

import pytest

from helpers import train_tokenizer

# Tests read the project's shared, read-only data copy beside the checkout (never copied into the repo).
SHARED_DATA = Path(os.environ.get("FTCOT_TEST_DATA", Path(__file__).resolve().parents[2] / "shared" / "data"))


@pytest.fixture(scope="session")
def shared_data() -> Path:
    assert (SHARED_DATA / "MANIFEST.tsv").is_file(), f"shared data not found at {SHARED_DATA}"
    return SHARED_DATA


@pytest.fixture(scope="session")
def tiny_lm(tmp_path_factory, shared_data) -> Path:
    """A 2-layer Llama with a byte-level BPE tokenizer trained on the task texts, saved as HF safetensors."""
    import json

    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    texts = [json.loads(line)["reasoning_completion"] + json.loads(line)["question"] for line in
             (shared_data / "teacher/text-davinci-002__zs_cot/coin_flip.jsonl").open()]
    tokenizer = train_tokenizer(texts + ["Q: A: Let's think step by step. --> ### yes no 0123456789"])
    config = LlamaConfig(vocab_size=len(tokenizer), hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                         num_attention_heads=4, num_key_value_heads=4, max_position_embeddings=1024,
                         eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id,
                         bos_token_id=tokenizer.eos_token_id, tie_word_embeddings=True)
    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("tiny_lm")
    LlamaForCausalLM(config).save_pretrained(path)
    tokenizer.save_pretrained(path)
    return path
