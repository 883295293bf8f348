"""Helpers the tests share (fixtures live in conftest.py)."""

import os
import subprocess
import sys
from contextlib import contextmanager
from pathlib import Path


def run_config(tmp_path, data_dir=None, task="coin_flip", *, as_file: bool | str = False, **sections):
    """A test's run config: {task, run_dir: tmp_path/run, data_dir (left out when None)} with each keyword's value
    deep-merged over it (a section's dict into the one there, anything else replacing; run_dir=... moves the run).
    A validated RunConfig; with as_file (True: tmp_path/run.yaml, or a file name in tmp_path), the YAML written as
    given, unvalidated, as a user writes one for the commands to check, and its path."""
    config = {"task": task, "run_dir": str(Path(tmp_path) / "run")}
    if data_dir is not None:
        config["data_dir"] = str(data_dir)
    config = merged(config, sections)
    if as_file:
        import yaml

        path = Path(tmp_path) / ("run.yaml" if as_file is True else as_file)
        path.write_text(yaml.safe_dump(config))
        return path
    from ftcot.config import RunConfig

    return RunConfig.model_validate(config)


def merged(base: dict, over: dict) -> dict:
    """base with over's keys deep-merged in (dicts into dicts; anything else replaces); neither is changed."""
    out = dict(base)
    for key, value in over.items():
        out[key] = merged(out[key], value) if isinstance(value, dict) and isinstance(out.get(key), dict) else value
    return out


def cli_command(*args, processes: int = 1) -> list[str]:
    """`ftcot ARGS` as a command line for this Python; with processes > 1, under torchrun with CPU processes
    (gloo), as a user launches it."""
    torchrun = ["-m", "torch.distributed.run", "--standalone", "--nproc_per_node", str(processes)]
    return [sys.executable, *(torchrun if processes > 1 else []), "-m", "ftcot.cli", *map(str, args)]


def run_cli(*args, env=None, processes: int = 1):
    """Run the installed `ftcot` entry point in a subprocess, as a user would: for what only a process shows (a
    kill, torchrun, what importing does, the entry point end to end). Elsewhere invoke_cli does the same faster."""
    full_env = {**os.environ, **(env or {})}
    return subprocess.run(
        cli_command(*args, processes=processes), capture_output=True, text=True, env=full_env, timeout=600
    )


def invoke_cli(*args, env=None) -> subprocess.CompletedProcess:
    """`ftcot ARGS` in this process, through the entry point's own `ftcot.cli.main` (its one-line errors and exit
    codes), as run_cli's result: stdout and stderr apart, the exit code a process would have. Each invocation is
    a process of its own as far as ftcot can tell: sys.argv is `ftcot ARGS`, env's variables are set only for
    it, Python's default warning filters apply (a warning reaches stderr as it would, not pytest's record), and
    what a process gives up on exit (the run folders' locks, hold_folder's) is given up after it."""
    import logging
    import traceback
    import warnings

    from click.testing import CliRunner

    from ftcot import cli, config, files

    argv, held, outside = ["ftcot", *map(str, args)], set(files._held), sys.stderr
    said = set(config.said)  # a process of its own has said no config note yet
    config.said.clear()
    level = logging.getLogger("ftcot").level  # --quiet/--verbose set it for the invocation only
    with CliRunner().isolation(env=env) as (out, err, _), _process_streams(logging, sys.stderr, outside):
        sys.argv, old_argv = argv, sys.argv
        try:
            with warnings.catch_warnings():
                warnings.resetwarnings()  # Python's defaults, not pytest's
                for category in (DeprecationWarning, PendingDeprecationWarning, ImportWarning, ResourceWarning):
                    warnings.simplefilter("ignore", category)
                warnings.showwarning = lambda message, category, filename, lineno, file=None, line=None: (
                    sys.stderr.write(warnings.formatwarning(message, category, filename, lineno, line))
                )
                cli.main()
            code = 0
        except SystemExit as exc:  # as the interpreter turns it into an exit status
            code = exc.code if isinstance(exc.code, int) else 0 if exc.code is None else 1
            if not isinstance(exc.code, int | None):
                print(exc.code, file=sys.stderr)
        except Exception:  # uncaught: a traceback and status 1, as a process ends
            traceback.print_exc(file=sys.stderr)
            code = 1
        finally:
            sys.argv = old_argv
            logging.getLogger("ftcot").setLevel(level)
            config.said.clear()
            config.said.update(said)
            for folder in set(files._held) - held:  # the OS releases a process's flocks as it exits
                os.close(files._held.pop(folder))
        sys.stdout.flush()
        sys.stderr.flush()
        stdout, stderr = out.getvalue().decode(), err.getvalue().decode()
    return subprocess.CompletedProcess(argv, code, stdout, stderr)


@contextmanager
def _process_streams(logging, stderr, outside):
    """Logging's stream handlers (a library's, e.g. transformers' own, made when it was first imported) write to
    this invocation's stderr while it runs, as in a process of its own; after it, to what they wrote to before,
    or (made during it) to the stderr outside, never to a stream the invocation left behind."""

    def handlers():
        loggers = [logging.getLogger(), *logging.Logger.manager.loggerDict.values()]
        return [h for lg in loggers for h in getattr(lg, "handlers", ()) if type(h) is logging.StreamHandler]

    before = {h: h.stream for h in handlers()}
    for h in before:
        h.setStream(stderr)
    try:
        yield
    finally:
        for h in handlers():
            if h.stream is stderr:
                h.setStream(before.get(h, outside))


def widen(model_dir, out):
    """A copy of a tiny model with a wide initialization (normal, std 0.5, for every matrix): its next-token choices
    are far apart, so engines whose float arithmetic differs in the last digits (a server's, a converted or
    half-precision model's) still agree on every greedy token."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    model = AutoModelForCausalLM.from_pretrained(model_dir)
    torch.manual_seed(1)
    with torch.no_grad():
        for p in model.parameters():
            if p.dim() > 1:
                p.normal_(0, 0.5)
    model.save_pretrained(out)
    AutoTokenizer.from_pretrained(model_dir).save_pretrained(out)
    return Path(out)


def run_benchmark(script: str, *args, env=None) -> subprocess.CompletedProcess:
    """A benchmark of benchmarks/ in a subprocess, as its command runs it; asserts it exited 0."""
    script = Path(__file__).resolve().parents[1] / "benchmarks" / script
    result = subprocess.run(
        [sys.executable, str(script), *map(str, args)],
        capture_output=True,
        text=True,
        timeout=600,
        env={**os.environ, **(env or {})},
    )
    assert result.returncode == 0, result.stderr[-3000:]
    return result


def train_tokenizer(texts):
    """A byte-level BPE tokenizer of 400 tokens trained on texts, EOS as its pad token."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=400, special_tokens=["<|endoftext|>"], initial_alphabet=pre_tokenizers.ByteLevel.alphabet()
    )
    tok.train_from_iterator(texts, trainer)
    return PreTrainedTokenizerFast(tokenizer_object=tok, eos_token="<|endoftext|>", pad_token="<|endoftext|>")


def train_spm_tokenizer(texts, vocab_size: int = 400):
    """A SentencePiece-style BPE trained on texts, as Gemma's tokenizer.json is built: each space a ▁ (a normalizer,
    no prefix, no split into words, so tokens run across words), the 256 <0xNN> byte tokens that characters
    outside the vocabulary fall back to, <bos> before every text encoded with special tokens; <pad>, <eos>, <bos>,
    <unk> as ids 0-3."""
    import json

    from tokenizers import Tokenizer, decoders, models, normalizers, processors, trainers
    from transformers import PreTrainedTokenizerFast

    specials = ["<pad>", "<eos>", "<bos>", "<unk>"]
    trained = Tokenizer(models.BPE())
    trained.normalizer = normalizers.Replace(" ", "\u2581")
    trained.train_from_iterator(texts, trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=specials))
    spec = json.loads(trained.to_str())["model"]
    vocab = {t: i for i, t in enumerate(specials + [f"<0x{b:02X}>" for b in range(256)])}
    for token in sorted(spec["vocab"], key=spec["vocab"].get):
        vocab.setdefault(token, len(vocab))
    merges = [tuple(m) for m in spec["merges"]]
    tok = Tokenizer(models.BPE(vocab=vocab, merges=merges, byte_fallback=True, unk_token="<unk>", fuse_unk=True))
    tok.add_special_tokens(specials)
    tok.normalizer = normalizers.Replace(" ", "\u2581")
    tok.decoder = decoders.Sequence([decoders.Replace("\u2581", " "), decoders.ByteFallback(), decoders.Fuse()])
    tok.post_processor = processors.TemplateProcessing(single="<bos> $A", special_tokens=[("<bos>", 2)])
    return PreTrainedTokenizerFast(
        tokenizer_object=tok, bos_token="<bos>", eos_token="<eos>", pad_token="<pad>", unk_token="<unk>"
    )


def build_tiny_gemma(tokenizer, path):
    """A tiny Gemma 3 built from its config (no download) around tokenizer, saved in path: 3 layers, the third
    full attention and the others sliding with a window of 8, <pad> 0, <eos> 1, <bos> 2."""
    import torch
    from transformers import Gemma3ForCausalLM, Gemma3TextConfig

    config = Gemma3TextConfig(
        vocab_size=len(tokenizer),
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=3,
        num_attention_heads=2,
        num_key_value_heads=1,
        head_dim=32,
        sliding_window=8,
        layer_types=["sliding_attention", "sliding_attention", "full_attention"],
        max_position_embeddings=1024,
        pad_token_id=0,
        eos_token_id=1,
        bos_token_id=2,
        query_pre_attn_scalar=32,
    )
    torch.manual_seed(0)
    Gemma3ForCausalLM(config).save_pretrained(path)
    tokenizer.save_pretrained(path)
    return Path(path)


def run_torchrun(config, data_dir, processes: int = 2):
    """`ftcot train CONFIG` under torchrun with CPU processes (gloo), as a user launches it."""
    return run_cli("train", config, env={"FTCOT_DATA_DIR": str(data_dir)}, processes=processes)


def write_table(rows: list[dict], path):
    """Rows in the format path's suffix names (.json: a JSON list; .jsonl, .csv, .parquet; else a datasets
    save_to_disk folder), written with `datasets` as a user's own files would be."""
    import json

    if path.suffix == ".json":
        path.write_text(json.dumps(rows))
        return path
    import datasets

    data = datasets.Dataset.from_list(rows)
    if path.suffix == ".jsonl":
        data.to_json(str(path), lines=True)
    elif path.suffix == ".csv":
        data.to_csv(str(path), index=False)
    elif path.suffix == ".parquet":
        data.to_parquet(str(path))
    else:
        data.save_to_disk(str(path))
    return path


@contextmanager
def llama_server(gguf, name: str):
    """`ftcot serve GGUF` in its own process, as a user starts it: llama.cpp's server on a free loopback port, its
    base URL yielded once it answers, stopped (SIGTERM) afterwards."""
    import socket
    import time
    import urllib.request

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    log = open(Path(gguf).with_suffix(".log"), "w")
    server = subprocess.Popen(
        [sys.executable, "-m", "ftcot.cli", "serve", str(gguf), "--name", name, "--port", str(port), "--threads", "1"],
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        for _ in range(600):
            if server.poll() is not None:
                raise AssertionError(f"ftcot serve exited {server.returncode}: {Path(log.name).read_text()[-2000:]}")
            try:
                urllib.request.urlopen(f"{url}/v1/models", timeout=1)
                break
            except OSError:
                time.sleep(0.1)
        yield f"{url}/v1"
    finally:
        server.terminate()
        server.wait(timeout=30)
        log.close()


def next_token_logprobs(model_dir, url: str, name: str, prompt: str, top: int = 5):
    """The top next-token log-probabilities after prompt, from the hf model in model_dir and from the server at
    url (its completions endpoint, logprobs): two {token id: logprob} dicts, a check of every layer's numbers."""
    import json
    import urllib.request

    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32)
    with torch.no_grad():
        logprobs = torch.log_softmax(model(**tokenizer(prompt, return_tensors="pt")).logits[0, -1], -1)
    best = torch.topk(logprobs, top)
    ours = {int(i): float(v) for v, i in zip(best.values, best.indices)}
    body = {"model": name, "prompt": prompt, "max_tokens": 1, "temperature": 0, "logprobs": top}
    request = urllib.request.Request(
        f"{url}/completions", json.dumps(body).encode(), {"Content-Type": "application/json"}
    )
    content = json.loads(urllib.request.urlopen(request, timeout=60).read())["choices"][0]["logprobs"]["content"]
    return ours, {t["id"]: t["logprob"] for t in content[0]["top_logprobs"]}
