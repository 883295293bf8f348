"""The `ctranslate2` engine (the `bench` extra): a decoder student converted once into the run folder
(<run>/eval/ctranslate2/<method>/, remade when the student is retrained) and run by CTranslate2's Generator at
`evaluate.compute_type` (float32, or int8 weights), the fastest CPU engine installable here. Rows are batched by
prompt length; CTranslate2 stops a row at EOS only, so each output is then cut where its method's stop rule
holds."""

from __future__ import annotations

import importlib.util
import json
import shutil
from collections.abc import Callable
from pathlib import Path

from ftcot.config import RunConfig
from ftcot.engines import weights_stamp
from ftcot.errors import UserError
from ftcot.methods import Stop
from ftcot.students.load import load_tokenizer, resolve


class CTranslate2Engine:
    def __init__(self, generator, tokenizer, batch_size: int):
        self.generator, self.tokenizer, self.batch_size = generator, tokenizer, batch_size
        self.kind = "decoder"
        self.parameters = None
        self.tokens = 0

    def generate(
        self,
        prompts: list[str],
        max_new_tokens: int,
        stop: Stop = Stop(),
        k: int = 1,
        temperature: float = 0.0,
        seed: int = 0,
        progress: Callable[[int], None] | None = None,
    ) -> list[list[str]]:
        import ctranslate2

        if temperature > 0:
            ctranslate2.set_random_seed(seed)
        tokens = [self.tokenizer.convert_ids_to_tokens(self.tokenizer(p)["input_ids"]) for p in prompts]
        order = sorted(range(len(prompts)), key=lambda i: -len(tokens[i]))
        outputs: list[list[str]] = [[] for _ in prompts]
        per_batch = max(1, self.batch_size // k)
        for at in range(0, len(order), per_batch):
            rows = [i for i in order[at : at + per_batch] for _ in range(k)]
            results = self.generator.generate_batch(
                [tokens[i] for i in rows],
                max_length=max_new_tokens,
                include_prompt_in_result=False,
                end_token=self.tokenizer.eos_token,
                sampling_topk=1 if temperature == 0 else 0,
                sampling_temperature=temperature or 1.0,
            )
            for i, result in zip(rows, results):
                ids = result.sequences_ids[0]
                self.tokens += len(ids)
                text = self.tokenizer.decode(ids, skip_special_tokens=True)
                outputs[i].append(stop.end(text))
            if progress is not None:
                progress(len(rows) // k)
        return outputs

    def close(self) -> None:
        del self.generator


def check(cfg: RunConfig, method: str) -> None:
    """The package, which needs no model."""
    if importlib.util.find_spec("ctranslate2") is None:
        raise UserError("evaluate.engine ctranslate2 needs the ctranslate2 package: pip install 'ftcot[bench]'")


def open_engine(cfg: RunConfig, method: str, weights: str | None, folder: Path, batch_size: int) -> CTranslate2Engine:
    try:
        import ctranslate2
    except ImportError:
        raise UserError(
            "evaluate.engine ctranslate2 needs the ctranslate2 package: pip install 'ftcot[bench]'"
        ) from None
    tokenizer, kind = load_tokenizer(cfg.student, weights)
    if kind != "decoder":
        raise UserError("evaluate.engine ctranslate2 runs decoder students; use hf for an encoder-decoder one")
    source = weights or resolve(cfg.student.model)
    stamp = weights_stamp(weights) if weights else source
    converted = folder / "ctranslate2" / (method if weights else "base")
    made = converted / "stamp"
    if not (converted / "model.bin").is_file() or not made.is_file() or made.read_text() != stamp:
        part = converted.with_name(converted.name + ".part")
        shutil.rmtree(part, ignore_errors=True)
        try:
            ctranslate2.converters.TransformersConverter(source).convert(str(part), force=True)
        except Exception as exc:  # the converter raises many types for a model it cannot convert
            shutil.rmtree(part, ignore_errors=True)
            raise UserError(f"ctranslate2 cannot convert {source}: {type(exc).__name__}: {exc}") from None
        settings = json.loads((part / "config.json").read_text())  # CTranslate2 needs every special token named:
        for name in ("bos_token", "unk_token"):  # a tokenizer without one gets its EOS there
            settings[name] = settings.get(name) or tokenizer.eos_token
        (part / "config.json").write_text(json.dumps(settings, indent=2))
        (part / "stamp").write_text(stamp)
        old = converted.with_name(converted.name + ".old")  # swapped, never half deleted: a kill leaves one whole
        shutil.rmtree(old, ignore_errors=True)
        if converted.exists():
            converted.rename(old)
        part.rename(converted)
        shutil.rmtree(old, ignore_errors=True)
    try:
        generator = ctranslate2.Generator(str(converted), device="cpu", compute_type=cfg.evaluate.compute_type)
    except (RuntimeError, ValueError) as exc:
        raise UserError(f"ctranslate2 cannot load {converted} ({exc}): delete it to convert again") from None
    return CTranslate2Engine(generator, tokenizer, batch_size)
