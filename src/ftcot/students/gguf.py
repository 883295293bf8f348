"""A trained student as one GGUF file, the format llama.cpp (and Ollama, LM Studio, llama-cpp-python) runs:
the weights (f16, or q8_0), the tokenizer the student was trained with, its special tokens and EOS, and its
prompt format as a chat template, plus an Ollama Modelfile beside it.

The file is written with the `gguf` package, llama.cpp's own Python library: its tensor-name map and its
writer. What is ftcot's is what llama.cpp's `convert_hf_to_gguf.py` does for the two decoder families ftcot
trains — Llama-style (SmolLM2) and Gemma 3: the hyperparameters from the transformers config, Llama's query
and key rows reordered for llama.cpp's rotary layout, Gemma's norms stored as 1 + weight (Gemma3RMSNorm scales
by 1 + w). The tokenizer goes in as llama.cpp's `gpt2` vocabulary (byte-level BPE: SmolLM2's) or its `llama`
one (SentencePiece-style BPE with byte fallback: Gemma's). Any other family, or a tokenizer llama.cpp would split
differently, is refused in one line.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np

from ftcot.errors import UserError

QUANTS = ("f16", "q8_0")

# The byte-level BPE pre-tokenizers of tokenizer.json that llama.cpp knows by a name (llama-vocab.cpp): the
# GPT-2 split, and the GPT-2 split after single digits (SmolLM's).
_DIGITS = {"type": "Digits", "individual_digits": True}


def _pre_tokenizer(spec: dict | None) -> str | None:
    def byte_level(p):
        return p.get("type") == "ByteLevel" and p.get("use_regex", True)

    if spec and byte_level(spec):
        return "gpt-2"
    parts = (spec or {}).get("pretokenizers") or []
    if len(parts) == 2 and parts[0] | _DIGITS == parts[0] and byte_level(parts[1]):
        return "smollm"
    return None


def _rope_theta(config, layer_type: str | None = None) -> float:
    """transformers 5 keeps rope_theta in rope_parameters (per layer type for Gemma 3); older configs on the
    config itself."""
    params = getattr(config, "rope_parameters", None) or {}
    if layer_type and layer_type in params:
        params = params[layer_type]
    theta = params.get("rope_theta", getattr(config, "rope_theta", None))
    if theta is None:
        raise UserError("the student's config gives no rope_theta")
    return float(theta)


def _permute(w: np.ndarray, heads: int) -> np.ndarray:
    """transformers' rotary halves -> llama.cpp's interleaved pairs, per head (convert_hf_to_gguf's permute)."""
    return w.reshape(heads, 2, w.shape[0] // heads // 2, *w.shape[1:]).swapaxes(1, 2).reshape(w.shape)


def _arch(family: str):
    import gguf

    return gguf.MODEL_ARCH.LLAMA if family == "llama" else gguf.MODEL_ARCH.GEMMA3


def _family(config) -> str:
    kind = config.model_type
    if kind == "llama":
        return "llama"
    if kind in ("gemma3_text", "gemma3"):
        config = getattr(config, "text_config", config)
        # llama.cpp fixes these for Gemma 3 (llama-model.cpp): a student that differs would run differently.
        if getattr(config, "final_logit_softcapping", None) or getattr(config, "attn_logit_softcapping", None):
            raise UserError("a Gemma 3 student with logit soft-capping has no GGUF form in llama.cpp")
        if config.query_pre_attn_scalar != config.head_dim:
            raise UserError("a Gemma 3 student whose query_pre_attn_scalar is not its head_dim (27B) is not covered")
        _swa_period(config)
        if _rope_theta(config, "sliding_attention") != 10_000:
            raise UserError("llama.cpp runs Gemma 3's sliding layers at rope_theta 10000; this student differs")
        return "gemma3"
    raise UserError(
        f"a {kind} student has no GGUF export in ftcot: the covered families are Llama-style (SmolLM2) and Gemma 3"
    )


def _swa_period(config) -> int:
    """Gemma 3's layers as llama.cpp lays them out: every p-th layer full attention, the others sliding."""
    kinds = list(getattr(config, "layer_types", None) or [])
    for period in range(1, len(kinds) + 2):  # len + 1: every layer sliding
        if kinds == ["full_attention" if (i + 1) % period == 0 else "sliding_attention" for i in range(len(kinds))]:
            return period
    raise UserError("a Gemma 3 student whose full-attention layers are not every p-th layer is not covered")


def _hyperparameters(writer, family: str, config, n_vocab: int) -> None:
    c = getattr(config, "text_config", config)
    head_dim = getattr(c, "head_dim", None) or c.hidden_size // c.num_attention_heads
    writer.add_context_length(c.max_position_embeddings)
    writer.add_embedding_length(c.hidden_size)
    writer.add_block_count(c.num_hidden_layers)
    writer.add_feed_forward_length(c.intermediate_size)
    writer.add_head_count(c.num_attention_heads)
    writer.add_head_count_kv(c.num_key_value_heads)
    writer.add_layer_norm_rms_eps(c.rms_norm_eps)
    if family == "llama":
        writer.add_vocab_size(n_vocab)
        writer.add_rope_dimension_count(head_dim)
        writer.add_rope_freq_base(_rope_theta(c))
    else:
        writer.add_key_length(head_dim)
        writer.add_value_length(head_dim)
        writer.add_rope_freq_base(_rope_theta(c, "full_attention"))
        writer.add_sliding_window(c.sliding_window)
        writer.add_sliding_window_pattern(_swa_period(c))


def _tensors(family: str, config, state: dict, quant: str):
    """(GGUF name, array, raw dtype) for each weight."""
    import gguf

    c = getattr(config, "text_config", config)
    names = gguf.get_tensor_name_map(_arch(family), c.num_hidden_layers)
    tied = getattr(config, "tie_word_embeddings", True)
    for hf_name, tensor in state.items():
        if tied and hf_name == "lm_head.weight":
            continue  # llama.cpp reads a missing output tensor as the token embedding
        if hf_name.endswith("rotary_emb.inv_freq"):
            continue
        name = names.get_name(hf_name.replace("language_model.", ""), try_suffixes=(".weight", ".bias"))
        if name is None:
            raise UserError(f"the student's weight {hf_name} has no place in a {family} GGUF")
        data = tensor.detach().float().cpu().numpy()
        if family == "llama" and hf_name.endswith("q_proj.weight"):
            data = _permute(data, c.num_attention_heads)
        elif family == "llama" and hf_name.endswith("k_proj.weight"):
            data = _permute(data, c.num_key_value_heads)
        elif family == "gemma3" and hf_name.endswith("norm.weight"):
            data = data + 1.0
        if data.ndim == 1:  # norms stay float32, as llama.cpp's converter keeps them
            yield name, data.astype(np.float32), None
        elif quant == "q8_0":
            try:
                q = gguf.quants.quantize(data, gguf.GGMLQuantizationType.Q8_0)
                yield name, q, gguf.GGMLQuantizationType.Q8_0
            except gguf.QuantError:  # rows not a multiple of the block size: f16, as the converter falls back
                yield name, data.astype(np.float16), None
        else:
            yield name, data.astype(np.float16), None


def _vocabulary(writer, folder: Path, tokenizer, n_vocab: int) -> None:
    """The student's own tokenizer as a llama.cpp vocabulary: a byte-level BPE as its `gpt2` type (tokens and
    merges), a SentencePiece-style BPE (byte fallback, spaces as ▁: Gemma's, Llama 2's) as its `llama` type
    (tokens and scores); either with the token types, the special token ids, and whether a BOS is added (as the
    tokenizer does it, not llama.cpp's default for the type)."""
    spec_path = folder / "tokenizer.json"
    spec = json.loads(spec_path.read_text(encoding="utf-8")) if spec_path.is_file() else {}
    model = spec.get("model") or {}
    if model.get("type") == "BPE" and model.get("byte_fallback"):
        tokens, types = _spm_vocabulary(writer, spec, tokenizer, n_vocab, spec_path)
    else:
        pre = _pre_tokenizer(spec.get("pre_tokenizer"))
        if model.get("type") != "BPE" or pre is None or spec.get("normalizer"):
            raise UserError(
                f"the student's tokenizer ({spec_path}) is neither a byte-level BPE with a GPT-2 or SmolLM split nor "
                "a SentencePiece-style BPE with byte fallback: no GGUF vocabulary that llama.cpp would split the same "
                "way"
            )
        tokens, types = _token_list(tokenizer, n_vocab)
        writer.add_tokenizer_model("gpt2")
        writer.add_tokenizer_pre(pre)
        merges = model.get("merges") or []
        writer.add_token_merges([m if isinstance(m, str) else " ".join(m) for m in merges])
    writer.add_token_list(tokens)
    writer.add_token_types(types)
    for role in ("bos", "eos", "pad", "unk"):
        token_id = getattr(tokenizer, f"{role}_token_id", None)
        if token_id is not None:
            getattr(writer, f"add_{role}_token_id")(token_id)
    plain = tokenizer("a", add_special_tokens=False)["input_ids"]
    special = tokenizer("a")["input_ids"]
    writer.add_add_bos_token(len(special) > len(plain) and special[0] == tokenizer.bos_token_id)
    writer.add_add_eos_token(len(special) > len(plain) and special[-1] == tokenizer.eos_token_id)


def _token_list(tokenizer, n_vocab: int) -> tuple[list[str], list]:
    """Tokens by id and their llama.cpp types: added tokens as control (special) or user-defined, ids the
    tokenizer lacks (an embedding padded to a round size) as unused placeholders."""
    import gguf

    by_id = {i: t for t, i in tokenizer.get_vocab().items()}
    added = tokenizer.added_tokens_decoder
    tokens, types = [], []
    for i in range(n_vocab):
        if i not in by_id:
            tokens.append(f"[PAD{i}]")
            types.append(gguf.TokenType.UNUSED)
        elif i in added:
            tokens.append(added[i].content)
            types.append(gguf.TokenType.CONTROL if added[i].special else gguf.TokenType.USER_DEFINED)
        else:
            tokens.append(by_id[i])
            types.append(gguf.TokenType.NORMAL)
    return tokens, types


_SPACE = "\u2581"  # ▁, SentencePiece's space


def _replaces_spaces(spec: dict | None) -> bool:
    return (
        bool(spec)
        and spec.get("type") == "Replace"
        and spec.get("pattern") == {"String": " "}
        and (spec.get("content") == _SPACE)
    )


def _space_prefix(spec: dict, where: Path) -> tuple[bool, bool]:
    """(whether a ▁ is put before the text, whether the text is split into words at each ▁) for the ways a
    SentencePiece-style tokenizer.json spells spaces: Gemma's normalizer (spaces to ▁, no prefix), Llama 2's
    (a ▁ prepended, spaces to ▁), or a Metaspace pre-tokenizer. llama.cpp's `llama` tokenizer turns spaces into
    ▁, optionally prepends one (add_space_prefix: at the start and after each special token in the text, where
    Metaspace's prepend_scheme "first" prepends at the start only; the prompts ftcot sends hold no special
    token), and never splits into words."""
    normalizer, pre = spec.get("normalizer"), spec.get("pre_tokenizer")
    steps = (normalizer or {}).get("normalizers", [normalizer]) if normalizer else []
    if pre and pre.get("type") == "Split" and pre.get("pattern") == {"String": " "} and steps:
        pre = None  # Gemma's split at spaces, which its normalizer has already turned into ▁: no split at all
    if steps and not pre:
        if len(steps) == 1 and _replaces_spaces(steps[0]):
            return False, False
        if len(steps) == 2 and steps[0] == {"type": "Prepend", "prepend": _SPACE} and _replaces_spaces(steps[1]):
            return True, False
    if not steps and pre and pre.get("type") == "Metaspace" and pre.get("replacement") == _SPACE:
        scheme = pre.get("prepend_scheme") or ("always" if pre.get("add_prefix_space", True) else "never")
        return scheme != "never", pre.get("split", True)
    raise UserError(
        f"the student's tokenizer ({where}) is a byte-fallback BPE whose spaces are not SentencePiece's (▁ for each "
        "space, from a Replace normalizer or a Metaspace pre-tokenizer): llama.cpp would split it differently"
    )


def _spm_vocabulary(writer, spec: dict, tokenizer, n_vocab: int, where: Path) -> tuple[list[str], list]:
    """A BPE with byte fallback as llama.cpp's SentencePiece vocabulary (type `llama`, as its converter writes
    Gemma 3's and Llama 2's). llama.cpp merges, among the adjacent pairs whose concatenation is a token, the one
    whose token scores highest (the leftmost of equals); the hf tokenizer applies its ranked merges in order. A
    token's score is therefore minus the rank of the first merge that makes it, so that the two pick the same pair.
    A SentencePiece vocabulary converted to tokenizer.json (Gemma's, the gemma3-270m alias's) lists every split of
    every token, ranked by the token: the two then merge alike. One trained with `tokenizers` lists one split a
    token, and llama.cpp may join two tokens by another split that hf does not list (none of 306 texts split
    differently on the tests' tokenizer). Tokens no merge makes (characters, the <0xNN> bytes, special tokens) score
    below every merge; bytes are typed BYTE, so characters outside the vocabulary fall back to them in both."""
    import gguf

    model = spec["model"]
    prefix, split = _space_prefix(spec, where)
    if model.get("continuing_subword_prefix") or model.get("end_of_word_suffix") or model.get("dropout"):
        raise UserError(f"the student's tokenizer ({where}) marks subwords or drops merges: llama.cpp has neither")
    vocab = model.get("vocab") or {}
    missing = [b for b in range(256) if f"<0x{b:02X}>" not in vocab]
    if missing:
        raise UserError(
            f"the student's tokenizer ({where}) falls back to bytes but lacks {len(missing)} of the 256 byte tokens "
            f"(<0x{missing[0]:02X}> first): llama.cpp needs each"
        )
    merges = [tuple(m.split(" ", 1)) if isinstance(m, str) else tuple(m) for m in model.get("merges") or []]
    first: dict[str, int] = {}
    for rank, (left, right) in enumerate(merges):
        first.setdefault(left + right, rank)
    tokens, types = _token_list(tokenizer, n_vocab)
    added = tokenizer.added_tokens_decoder
    unk = tokenizer.unk_token_id
    scores = []
    for i, token in enumerate(tokens):
        if split and types[i] == gguf.TokenType.NORMAL and _SPACE in token[1:]:
            raise UserError(
                f"the student's tokenizer ({where}) splits words at ▁ yet has the token {token!r} across words: "
                "llama.cpp, which does not split, would join words hf keeps apart"
            )
        if i in added and not added[i].special:
            tokens[i] = token.replace(_SPACE, " ")  # llama.cpp finds user-defined tokens in the raw text
        elif i == unk:
            types[i] = gguf.TokenType.UNKNOWN
        elif types[i] == gguf.TokenType.NORMAL and re.fullmatch(r"<0x[0-9A-F]{2}>", token):
            types[i] = gguf.TokenType.BYTE
        scores.append(-float(first.get(token, len(merges))) if types[i] == gguf.TokenType.NORMAL else -1e9)
    writer.add_tokenizer_model("llama")
    writer.add_tokenizer_pre("default")
    writer.add_token_scores(scores)
    writer.add_add_space_prefix(prefix)
    return tokens, types


def prompt_format(method: str) -> tuple[str, str]:
    """(before, after) the question in the method's trained prompt: ("", " ###") for Fine-tune-CoT."""
    from ftcot.methods import METHODS

    marker = "\x00"
    prompt = METHODS[method].pairs(marker, "r", "a", "decoder")[0][0]
    before, after = prompt.split(marker)
    return before, after


def chat_template(method: str) -> str:
    """A Jinja chat template (llama-server, LM Studio, llama-cpp-python) that renders the last user message in
    the prompt the student was trained on."""
    before, after = prompt_format(method)
    return (
        "{%- for message in messages if message['role'] == 'user' %}{%- if loop.last %}"
        f"{json.dumps(before)[1:-1]}{{{{ message['content'] }}}}{json.dumps(after)[1:-1]}"
        "{%- endif %}{%- endfor %}"
    )


def modelfile(gguf_name: str, method: str, max_new_tokens: int | None) -> str:
    """An Ollama Modelfile: the file, the prompt format as its template, greedy decoding as evaluated (to the
    student's EOS, or evaluate.max_new_tokens where the run set it)."""
    before, after = prompt_format(method)
    template = f"{before}{{{{ .Prompt }}}}{after}"
    budget = f"PARAMETER num_predict {max_new_tokens}\n" if max_new_tokens else ""
    return f'FROM ./{gguf_name}\nTEMPLATE """{template}"""\nPARAMETER temperature 0\n{budget}'


def write_gguf(student: Path, path: Path, method: str, quant: str = "f16", name: str | None = None) -> Path:
    """Write the student folder (a trained best/ folder: HF safetensors, config and tokenizer) as one GGUF."""
    import gguf
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer

    if quant not in QUANTS:
        raise UserError(f"unknown --quant {quant!r}; choose from {', '.join(QUANTS)}")
    try:
        config = AutoConfig.from_pretrained(student)
        tokenizer = AutoTokenizer.from_pretrained(student)
    except (OSError, ValueError) as exc:
        raise UserError(f"cannot load the student in {student}: {str(exc).splitlines()[0]}") from None
    if config.is_encoder_decoder:
        raise UserError(f"{student} is an encoder-decoder student: llama.cpp runs decoders only")
    family = _family(config)
    from ftcot.students.load import libraries_quiet

    with libraries_quiet():
        model = AutoModelForCausalLM.from_pretrained(student, dtype=torch.float32, use_safetensors=True)
    state = model.state_dict()
    n_vocab = state[next(k for k in state if k.endswith("embed_tokens.weight"))].shape[0]
    tmp = path.with_name(f"{path.name}.part")
    path.parent.mkdir(parents=True, exist_ok=True)
    writer = gguf.GGUFWriter(tmp, gguf.MODEL_ARCH_NAMES[_arch(family)])
    try:
        writer.add_name(name or path.stem)
        writer.add_file_type(gguf.LlamaFileType.MOSTLY_Q8_0 if quant == "q8_0" else gguf.LlamaFileType.MOSTLY_F16)
        _hyperparameters(writer, family, config, n_vocab)
        _vocabulary(writer, student, tokenizer, n_vocab)
        writer.add_chat_template(chat_template(method))
        for tensor_name, data, raw in _tensors(family, config, state, quant):
            writer.add_tensor(tensor_name, data, raw_dtype=raw)  # a quantized array's shape is read from its bytes
        writer.write_header_to_file()
        writer.write_kv_data_to_file()
        writer.write_tensors_to_file()
        writer.close()
        tmp.replace(path)  # whole or not at all
    finally:
        writer.close()
        tmp.unlink(missing_ok=True)
    return path
