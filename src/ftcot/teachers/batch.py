"""OpenAI Batch API mode: write the missing requests as JSONL, upload, submit, poll, download and ingest
every result into the completion store. The live collector then finds everything stored and sends nothing.
Batch ids are kept in the store, so a killed run resumes polling the same batch instead of paying again."""

from __future__ import annotations

import asyncio
import io
import json

from ftcot.errors import UserError
from ftcot.tasks.prompts import zero_shot_cot_step1, zero_shot_cot_step2
from ftcot.teachers.cost import worst_case_tokens
from ftcot.teachers.store import CompletionStore, Generation, completion_key, rationale_of

DONE = {"completed", "failed", "expired", "cancelled"}


def batch_line(teacher, prompt: str, params: dict, ks: list[int]) -> dict:
    body = {"model": teacher.model, "n": len(ks), **params}
    if "max_tokens" in body and teacher.max_tokens_param != "max_tokens":  # the name the model takes
        body[teacher.max_tokens_param] = body.pop("max_tokens")
    if teacher.endpoint == "chat":
        body["messages"] = [{"role": "user", "content": prompt}]
    else:
        body["prompt"] = prompt
    url = "/v1/chat/completions" if teacher.endpoint == "chat" else "/v1/completions"
    # custom_id carries the ks; each choice's store key is rebuilt from prompt, params and its k.
    key = completion_key(teacher.identity, prompt, params, ks[0])[:16]
    return {"custom_id": f"{','.join(map(str, ks))}:{key}", "method": "POST", "url": url, "body": body}


async def _submit(teacher, store: CompletionStore, lines: list[dict]) -> str:
    payload = "".join(json.dumps(line, ensure_ascii=False) + "\n" for line in lines).encode()
    uploaded = await teacher.client.files.create(file=("batch.jsonl", io.BytesIO(payload)), purpose="batch")
    batch = await teacher.client.batches.create(
        input_file_id=uploaded.id, endpoint=lines[0]["url"], completion_window="24h"
    )
    store.save_batch(batch.id, teacher.identity, "submitted")
    return batch.id


async def _ingest(teacher, store: CompletionStore, batch_id: str, poll_s: float) -> int:
    while True:
        batch = await teacher.client.batches.retrieve(batch_id)
        if batch.status in DONE:
            break
        await asyncio.sleep(poll_s)
    if batch.status != "completed" or not batch.output_file_id:
        store.save_batch(batch_id, teacher.identity, batch.status)
        raise UserError(f"batch {batch_id} ended {batch.status}; its stored results are kept, rerun to retry the rest")
    requests = {}
    for raw in (await teacher.client.files.content(batch.input_file_id)).text.splitlines():
        line = json.loads(raw)
        body = line["body"]
        prompt = body["messages"][-1]["content"] if "messages" in body else body["prompt"]
        params = {k: v for k, v in body.items() if k not in ("model", "n", "prompt", "messages")}
        ks = [int(k) for k in line["custom_id"].split(":")[0].split(",")]
        requests[line["custom_id"]] = (prompt, params, ks)
    stored, used = 0, [0, 0]
    for raw in (await teacher.client.files.content(batch.output_file_id)).text.splitlines():
        result = json.loads(raw)
        response = result.get("response") or {}
        if result.get("error") or response.get("status_code") != 200:
            continue  # left missing: the live collector requests it
        prompt, params, ks = requests[result["custom_id"]]
        body = response["body"]
        choices = sorted(body["choices"], key=lambda c: c.get("index", 0))
        usage = body.get("usage") or {}
        # What it billed, for the folder's ledger (a result without usage at its worst case)
        worst = worst_case_tokens(prompt, len(choices), params.get("max_tokens") or 0)
        used[0] += usage.get("prompt_tokens") or worst[0]
        used[1] += usage.get("completion_tokens") or worst[1]
        for k, choice in zip(ks, choices):
            text = choice["message"]["content"] if "message" in choice else choice["text"]
            share = (usage.get("completion_tokens") or 0) // len(choices)
            stored += store.put(
                teacher.identity,
                prompt,
                params,
                k,
                Generation(
                    text, choice.get("finish_reason"), usage.get("prompt_tokens") if k == ks[0] else 0, share, None
                ),
            )
    store.ingested(batch_id, teacher.identity, *used)
    return stored


async def run_batch(teacher, store: CompletionStore, lines: list[dict], poll_s: float) -> int:
    """Finish any batch a killed run left open, then submit `lines` (if any) and ingest the results."""
    stored = 0
    for batch_id in store.open_batches(teacher.identity):
        stored += await _ingest(teacher, store, batch_id, poll_s)
    if lines:
        stored += await _ingest(teacher, store, await _submit(teacher, store, lines), poll_s)
    return stored


async def prefill(collector, samples) -> int:
    """Two batches: every missing rationale (step 1), then every missing answer (step 2)."""
    teacher, store, cfg = collector.teacher, collector.store, collector.cfg
    step1s = list(dict.fromkeys(zero_shot_cot_step1(sample.question) for sample in samples))  # asked once each
    lines = []
    for step1 in step1s:
        missing = collector.missing(step1, range(cfg.num_samples), collector.rationale_params)
        if missing:
            lines.append(batch_line(teacher, step1, collector.rationale_params, missing))
    stored = await run_batch(teacher, store, lines, cfg.batch_poll_s)
    lines = []
    for step1 in step1s:
        for k in range(cfg.num_samples):
            rationale = store.get(teacher.identity, step1, collector.rationale_params, k)
            if rationale is None:
                continue
            step2 = zero_shot_cot_step2(step1, rationale_of(rationale, cfg), collector.trigger)
            if collector.missing(step2, range(k, k + 1), collector.answer_params):
                lines.append(batch_line(teacher, step2, collector.answer_params, [k]))
    return stored + await run_batch(teacher, store, lines, cfg.batch_poll_s)
