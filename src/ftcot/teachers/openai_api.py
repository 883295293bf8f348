"""Teacher backend for any OpenAI-compatible endpoint (OpenAI, vLLM, llama.cpp server, Ollama) via the
official SDK: async, bounded concurrency, `n` per request, retries with backoff and jitter that honour
Retry-After, and request/token-per-minute limits that hold in every 60-second window. The API key comes from
the environment only.
"""

from __future__ import annotations

import asyncio
import email.utils
import json
import os
import re
import time
from collections import deque

import openai
from tenacity import AsyncRetrying, retry_if_exception, stop_after_attempt, wait_random_exponential

from ftcot.errors import UserError
from ftcot.teachers import teacher_identity
from ftcot.teachers.cost import worst_case_tokens
from ftcot.teachers.store import Generation

RETRYABLE_STATUS = {408, 409, 429}


class MalformedResponse(Exception):
    """The server answered 200 with a body that is not a completion."""


def _retryable(exc: BaseException) -> bool:
    if isinstance(
        exc, (openai.APIConnectionError, openai.APIResponseValidationError, MalformedResponse, json.JSONDecodeError)
    ):
        return True  # timeouts, dropped connections and bodies that are not a completion
    return isinstance(exc, openai.APIStatusError) and (exc.status_code in RETRYABLE_STATUS or exc.status_code >= 500)


def retry_after_seconds(exc: BaseException | None) -> float | None:
    """The server's requested delay (Retry-After-Ms, Retry-After in seconds or as an HTTP date), if any."""
    response = getattr(exc, "response", None)
    if response is None:
        return None
    headers = response.headers
    try:
        if "retry-after-ms" in headers:
            return float(headers["retry-after-ms"]) / 1000
        if "retry-after" in headers:
            value = headers["retry-after"]
            try:
                return float(value)
            except ValueError:
                return max(0.0, email.utils.parsedate_to_datetime(value).timestamp() - time.time())
    except (TypeError, ValueError):
        return None
    return None


class WindowLimit:
    """At most `limit` units (requests, or tokens) in every `period`-second window, not only on average: each
    acquisition is remembered with its time, and one that would take the sum of the last `period` seconds past
    the limit waits until enough of them have left the window. First come, first served."""

    def __init__(self, limit: float, period: float = 60.0):
        self.limit, self.period = limit, period
        self.sent: deque[tuple[float, float]] = deque()  # (time, amount), oldest first
        self.total = 0.0
        self.turn = asyncio.Lock()

    async def acquire(self, amount: float = 1) -> None:
        async with self.turn:
            while True:
                now = time.monotonic()
                while self.sent and self.sent[0][0] <= now - self.period:
                    self.total -= self.sent.popleft()[1]
                if self.total + amount <= self.limit or not self.sent:
                    break
                await asyncio.sleep(self.sent[0][0] + self.period - now)
            self.sent.append((now, amount))
            self.total += amount


class OpenAITeacher:
    def __init__(
        self,
        model: str,
        base_url: str | None = None,
        api_key_env: str | None = "OPENAI_API_KEY",
        endpoint: str = "completions",
        concurrency: int = 32,
        requests_per_minute: float | None = None,
        tokens_per_minute: float | None = None,
        timeout_s: float = 60.0,
        max_attempts: int = 6,
        backoff_s: float = 0.5,
        max_backoff_s: float = 30.0,
        honour_n: bool = True,
        rate_period_s: float = 60.0,
        max_tokens_param: str = "max_tokens",
        strip_think: bool = False,
        role: str = "teacher",
    ):
        self.model, self.role = model, role  # role: the config section named in messages (teacher, evaluate)
        self.endpoint = endpoint
        self.identity = teacher_identity("openai", model, endpoint)
        self.honour_n = honour_n
        self.max_tokens_param, self.strip_think = max_tokens_param, strip_think
        # A named variable must hold a key: a silent keyless request to a paid API would only fail later.
        # api_key_env None: a local server (vLLM, llama.cpp) that takes any key.
        key = os.environ.get(api_key_env) if api_key_env else "no-key"
        if not key:
            raise UserError(
                f"the environment variable {api_key_env} ({role}.api_key_env) is not set; for a server "
                f"that needs no key, set {role}.api_key_env: null"
            )
        # aiohttp transport: about a third less CPU per request than the default httpx one.
        self.client = openai.AsyncOpenAI(
            api_key=key, base_url=base_url, timeout=timeout_s, max_retries=0, http_client=openai.DefaultAioHttpClient()
        )
        self.slots = asyncio.Semaphore(concurrency)
        self.rpm = WindowLimit(requests_per_minute, rate_period_s) if requests_per_minute else None
        self.tpm = WindowLimit(tokens_per_minute, rate_period_s) if tokens_per_minute else None
        self.max_attempts = max_attempts
        self.backoff = wait_random_exponential(multiplier=backoff_s, max=max_backoff_s)
        self.max_backoff_s = max_backoff_s
        self.requests = 0  # HTTP requests sent, retries included
        self.through_ledger = True  # every attempt holds its worst case in `spending` as it is sent
        self.spending = None  # set by collect (teachers.Teacher)

    async def aclose(self) -> None:
        await self.client.close()

    def _wait(self, state) -> float:
        delay = retry_after_seconds(state.outcome.exception())
        return min(delay, self.max_backoff_s * 4) if delay is not None else self.backoff(state)

    async def sample(self, prompt: str, n: int, params: dict) -> list[Generation]:
        """Up to n continuations of prompt (a server may return fewer than asked, e.g. llama.cpp returns one)."""
        n = n if self.honour_n else 1
        async for attempt in AsyncRetrying(
            retry=retry_if_exception(_retryable),
            wait=self._wait,
            stop=stop_after_attempt(self.max_attempts),
            reraise=True,
        ):
            with attempt:
                try:
                    return await self._request(prompt, n, params)
                except openai.APIStatusError as exc:
                    if _retryable(exc):
                        raise
                    raise UserError(
                        f"{self.role} request rejected by {self.client.base_url}: HTTP {exc.status_code}: {exc.message}"
                    ) from None
        raise AssertionError("unreachable")

    async def _request(self, prompt: str, n: int, params: dict) -> list[Generation]:
        args = {k: v for k, v in params.items() if v is not None}
        if "max_tokens" in args and self.max_tokens_param != "max_tokens":  # sent by the name the model takes
            args[self.max_tokens_param] = args.pop("max_tokens")
        worst = worst_case_tokens(prompt, n, params.get("max_tokens") or 0)
        if self.tpm and sum(worst) > self.tpm.limit:
            raise UserError(
                f"one request may use {sum(worst):,} tokens (prompt bytes + n x max_tokens), "
                f"more than teacher.tokens_per_minute ({self.tpm.limit:g})"
            )
        async with self.slots:
            held = await self.spending.reserve(*worst) if self.spending else None
            sent = False
            try:
                # The rate windows are taken last, right before the request goes out: a request that waited
                # on the budget must not arrive in a burst with those that did not.
                if self.tpm:  # counted at its worst case, as the server counts max_tokens against the limit
                    await self.tpm.acquire(sum(worst))
                if self.rpm:
                    await self.rpm.acquire()
                if held is not None:
                    self.spending.sent(held)  # held in the ledger only now, with nothing left to wait for
                self.requests += 1
                sent = True
                start = time.perf_counter()
                if self.endpoint == "chat":
                    response = await self.client.chat.completions.create(
                        model=self.model, messages=[{"role": "user", "content": prompt}], n=n, **args
                    )
                else:
                    response = await self.client.completions.create(model=self.model, prompt=prompt, n=n, **args)
                generations = _generations(response, self.endpoint, time.perf_counter() - start, self.strip_think)
            except openai.APIStatusError as exc:  # an error: nothing was generated, unless a gateway timed out
                if held is not None:  # (408, 5xx) on a server that may have generated and billed it
                    billed = exc.status_code == 408 or exc.status_code >= 500
                    await self.spending.settle(held, 0, 0, answered=not billed)
                raise
            except BaseException:
                if held is not None and sent:  # sent, but no usable answer: it may be billed
                    await self.spending.settle(held, None, None, answered=False)
                elif held is not None:  # never sent: nothing to pay
                    await self.spending.settle(held, 0, 0)
                raise
        if held is not None:
            known = all(g.prompt_tokens is not None and g.completion_tokens is not None for g in generations)
            # A server that does not say what it used is charged what it may have used.
            await self.spending.settle(
                held,
                sum(g.prompt_tokens or 0 for g in generations),
                sum(g.completion_tokens or 0 for g in generations),
                answered=known,
            )
        return generations


_THINK = re.compile(r"<think>(.*?)</think>", re.DOTALL)


def _reasoning(choice, endpoint: str) -> str | None:
    """What a reasoning model returned beside its answer: vLLM and DeepSeek name it reasoning_content, others
    reasoning."""
    message = getattr(choice, "message", None) if endpoint == "chat" else None
    found = [getattr(message, name, None) for name in ("reasoning_content", "reasoning")]
    return next((text for text in found if isinstance(text, str) and text), None)


def _generations(response, endpoint: str, latency: float, strip_think: bool = False) -> list[Generation]:
    try:
        choices = sorted(response.choices, key=lambda c: c.index or 0)
        # A reasoning model may answer with its reasoning alone: its text is then empty.
        texts = [
            (c.message.content if c.message.content is not None or not _reasoning(c, endpoint) else "")
            if endpoint == "chat"
            else c.text
            for c in choices
        ]
        if not texts or any(not isinstance(t, str) for t in texts):
            raise MalformedResponse("no completion text in response")
        usage = response.usage
    except (AttributeError, TypeError) as exc:
        raise MalformedResponse(str(exc)) from None
    prompt_tokens = _count(getattr(usage, "prompt_tokens", None))
    completion_tokens = _count(getattr(usage, "completion_tokens", None))
    out = []
    for i, (choice, text) in enumerate(zip(choices, texts)):
        # Usage covers the whole request: charge the prompt once and split completion tokens evenly.
        share = None
        if completion_tokens is not None:
            share = completion_tokens // len(texts) + (completion_tokens % len(texts) if i == 0 else 0)
        reasoning = _reasoning(choice, endpoint)
        if strip_think and (thoughts := _THINK.findall(text)):
            text = _THINK.sub("", text).lstrip()
            reasoning = reasoning or "\n".join(t.strip() for t in thoughts)
        text, reasoning = (
            t.encode("utf-8", "surrogatepass").decode("utf-8", "replace") if t else t  # U+FFFD
            for t in (text, reasoning)
        )
        finish = choice.finish_reason if isinstance(choice.finish_reason, str) else None
        out.append(
            Generation(text, finish, prompt_tokens if i == 0 or prompt_tokens is None else 0, share, latency, reasoning)
        )
    return out


def _count(value) -> int | None:
    """A reported token count, or None when it is not a plausible one (missing, negative, absurd)."""
    return value if isinstance(value, int) and not isinstance(value, bool) and 0 <= value < 2**53 else None
