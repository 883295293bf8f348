"""A trained student as a GGUF that llama.cpp runs: `ftcot export --format gguf` from a tiny trained student,
served by llama.cpp's own server (`ftcot serve`, the xllamacpp wheel) on 127.0.0.1, and `ftcot evaluate` with
`engine: openai` against it gives the `hf` engine's greedy predictions (f16 exactly; q8_0 within a stated
tolerance); sampling with n > 1 through it; the file's tokenizer, EOS and prompt template; refusals in one line."""

import json
import shutil

import pytest
import yaml
from helpers import llama_server, next_token_logprobs, run_benchmark, run_cli, run_config

from ftcot.errors import UserError

pytest.importorskip("xllamacpp", reason="the llamacpp extra (`make install` installs it)")


def _predictions(run, method):
    return [json.loads(line) for line in (run / "eval" / method / "predictions.jsonl").open()]


@pytest.fixture(scope="module")
def trained(wide_lm, data_dir, tmp_path_factory):
    """A run whose Fine-tune-CoT and vanilla students were trained (one epoch, from the wide tiny LM) and
    evaluated with the hf engine, and its students exported as f16 and q8_0 GGUFs."""
    tmp = tmp_path_factory.mktemp("gguf_run")
    config = run_config(
        tmp,
        data_dir,
        teacher={"backend": "recorded", "teach_on": ["train", "test"], "max_samples": 40},
        student={"model": str(wide_lm)},
        train={"epochs": 1, "batch_size": 8, "learning_rate": 1e-4},
        evaluate={"baselines": [], "max_samples": 12, "max_new_tokens": 24},
    ).model_dump(mode="json")
    path = tmp / "run.yaml"
    path.write_text(yaml.safe_dump(config))
    done = run_cli("run", path)
    assert done.returncode == 0, done.stderr[-3000:]
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
