"""Teacher backend for a local transformers causal LM: sampling with num_return_sequences, the model's chat
template when it has one."""

from __future__ import annotations

import asyncio
import time

from ftcot.config import StudentConfig
from ftcot.students.load import load_student
from ftcot.teachers import teacher_identity
from ftcot.teachers.store import Generation


class HFTeacher:
    def __init__(self, model_name: str, device: str = "auto", trust_remote_code: bool = False):
        model, tokenizer, _ = load_student(StudentConfig(model=model_name, kind="decoder",
                                                         trust_remote_code=trust_remote_code))
        self.model = model_name
        self.identity = teacher_identity("hf", model_name)
        self.lm = (model if device == "auto" else model.to(device)).eval()
        self.tokenizer = tokenizer
        self.device = self.lm.device
        self.lock = asyncio.Lock()  # one generate call at a time; it uses every core already
        self.requests = 0

    def _encode(self, prompt: str):
        if getattr(self.tokenizer, "chat_template", None):
            text = self.tokenizer.apply_chat_template([{"role": "user", "content": prompt}], tokenize=False,
                                                      add_generation_prompt=True)
            return self.tokenizer(text, return_tensors="pt", add_special_tokens=False)
        return self.tokenizer(prompt, return_tensors="pt")

    def _generate(self, prompt: str, n: int, params: dict) -> list[Generation]:
        import torch

        inputs = self._encode(prompt).to(self.device)
        sample = params.get("temperature", 0) > 0
        kwargs = dict(max_new_tokens=params.get("max_tokens", 128), num_return_sequences=n if sample else 1,
                      do_sample=sample, pad_token_id=self.tokenizer.pad_token_id or self.tokenizer.eos_token_id)
        if sample:
            kwargs.update(temperature=params["temperature"], top_p=params.get("top_p", 1.0))
        if params.get("stop"):
            kwargs.update(stop_strings=params["stop"], tokenizer=self.tokenizer)
        if "seed" in params:
            torch.manual_seed(params["seed"])
        start = time.perf_counter()
        with torch.inference_mode():
            output = self.lm.generate(**inputs, **kwargs)
        latency = time.perf_counter() - start
        prompt_len = inputs["input_ids"].shape[1]
        out = []
        for i, row in enumerate(output):
            new = row[prompt_len:]
            ended = (new == self.tokenizer.eos_token_id).any().item()
            text = self.tokenizer.decode(new, skip_special_tokens=True)
            for stop in params.get("stop") or []:
                if stop in text:
                    text, ended = text[: text.index(stop)], True
            out.append(Generation(text, "stop" if ended else "length", prompt_len if i == 0 else 0,
                                  int((new != self.tokenizer.pad_token_id).sum()), latency))
        # Greedy decoding gives one answer; repeat it so each k has its completion.
        return out if sample else out * n

    async def sample(self, prompt: str, n: int, params: dict) -> list[Generation]:
        async with self.lock:
            self.requests += 1
            return await asyncio.to_thread(self._generate, prompt, n, params)
