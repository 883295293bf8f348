"""A real OpenAI-compatible server on 127.0.0.1, for tests, benchmarks and trying ftcot offline.

It answers /v1/completions, /v1/chat/completions and the Batch API (/v1/files, /v1/batches) with
deterministic text, and injects faults on request: a queue of actions consumed one per request
(`("status", 429, {"Retry-After": "0.1"})`, `("status", 500)`, `("delay", seconds)`, `("malformed",)`,
`("drop",)`, `("body", bytes, content_type)`). It can stop and start again on the same port.

    server = OpenAIServer().start()   # teacher.base_url: server.base_url, teacher.api_key_env: null
    ...
    server.stop()

`python -m ftcot.loopback PORT LATENCY_S` serves the completion routes alone, on asyncio, in a process of its
own. The standard library is all it needs; `TransformersStudent` imports torch when it first generates. Nothing
in ftcot imports this module: only who uses it.
"""

from __future__ import annotations

import email.parser
import email.policy
import hashlib
import http.server
import json
import random
import re
import threading
import time
from collections import deque


def default_responder(prompt: str, index: int) -> str:
    """Step 1 gets a rationale that depends on prompt and choice; step 2 gets an answer."""
    digest = hashlib.sha1(f"{prompt}|{index}".encode()).hexdigest()[:8]
    if prompt.endswith("Let's think step by step."):
        return f" The coin ends up heads up, rationale {digest}."
    return " yes."


class ChanceAdder:
    """A teacher for "What is A plus B?" questions whose step 1 is right with probability p (seeded, one draw
    per sample) and whose step 2 answers what step 1 said; with the answer given as a hint, it is right."""

    def __init__(self, p: float, seed: int = 0):
        self.p, self.rng, self.lock = p, random.Random(seed), threading.Lock()

    def __call__(self, prompt: str, index: int) -> str:
        if not prompt.endswith("Let's think step by step."):
            said = re.findall(r"makes (-?\d+)", prompt)[-1]
            return f" {said}."
        a, b = map(int, re.search(r"What is (\d+) plus (\d+)\?", prompt).groups())
        hint = re.search(r"the correct answer is (-?\d+)", prompt)
        with self.lock:
            right = hint is not None or self.rng.random() < self.p
        return f" {a} plus {b} makes {int(hint.group(1)) if hint else a + b if right else a + b + 1}."


class TransformersStudent:
    """Serves a causal LM the way vLLM does, with transformers' own generate (not ftcot's engines): greedy, or
    sampled at the request's temperature and seed; each of n continuations ends at EOS, at max_tokens, or before
    the request's first stop string."""

    def __init__(self, model, tokenizer):
        self.model, self.tokenizer, self.lock = model.eval(), tokenizer, threading.Lock()

    def __call__(self, body: dict) -> list[str]:
        import torch

        n, temperature = body.get("n") or 1, body.get("temperature") or 0.0
        batch = self.tokenizer(body["prompt"], return_tensors="pt")
        sampling = (
            {"do_sample": True, "temperature": temperature, "top_k": 0, "top_p": 1.0}
            if temperature
            else {"do_sample": False}
        )
        with self.lock, torch.inference_mode():
            if temperature:
                torch.manual_seed(body.get("seed") or 0)
            out = self.model.generate(
                **batch,
                max_new_tokens=body.get("max_tokens") or 16,
                num_return_sequences=n,
                pad_token_id=self.tokenizer.pad_token_id,
                **sampling,
            )
        texts = [self.tokenizer.decode(row[batch["input_ids"].shape[1] :], skip_special_tokens=True) for row in out]
        for stop in body.get("stop") or []:
            texts = [t.split(stop)[0] for t in texts]
        return texts


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True  # headers and body go out in separate writes: avoid the 40 ms delayed ACK

    def log_message(self, *args):
        pass

    def _send(self, status: int, body: bytes, headers: dict | None = None, content_type="application/json"):
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(body)

    def _json(self, obj, status=200, headers=None):
        self._send(status, json.dumps(obj).encode(), headers)

    def do_GET(self):
        self.server.owner.log(self.command, self.path, None)
        self.server.owner.route_get(self)

    def do_POST(self):
        length = int(self.headers.get("Content-Length", 0))
        raw = self.rfile.read(length)
        server = self.server.owner
        server.log(self.command, self.path, raw)
        fault = server.next_fault() if self.path.endswith("completions") else None
        if fault and fault[0] == "delay":
            time.sleep(fault[1])
        elif fault and fault[0] == "status":
            self._json(
                {"error": {"message": "injected", "type": "server_error"}},
                fault[1],
                fault[2] if len(fault) > 2 else None,
            )
            return
        elif fault and fault[0] == "body":  # any 200 answer: ("body", b"<html>...", "text/html")
            self._send(200, fault[1], content_type=fault[2] if len(fault) > 2 else "application/json")
            return
        elif fault and fault[0] == "malformed":
            self._send(200, b'{"id": "cmpl-1", "choices": [{"text": "trunc')
            return
        elif fault and fault[0] == "drop":
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", "500")
            self.end_headers()
            self.wfile.write(b'{"id": "cmpl-')
            self.wfile.flush()
            self.close_connection = True
            self.connection.shutdown(2)
            return
        server.route_post(self, raw)


class _HTTPServer(http.server.ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 512  # the default backlog of 5 drops connections when 64 clients connect at once


class OpenAIServer:
    def __init__(self, latency_s: float = 0.0, honour_n: bool = True, responder=default_responder, port: int = 0):
        self.latency_s = latency_s
        self.honour_n = honour_n
        self.responder = responder
        self.edit_answer = None  # (answer, request body) -> answer; e.g. lambda a, body: a | {"usage": None}
        self.student = None  # a TransformersStudent: (request body) -> its n texts, instead of the responder
        self.models = None  # the model names it serves (others get vLLM's 404); None: any
        self.reject_max_tokens = False
        self.faults: deque = deque()
        self.requests: list[tuple[str, str, dict | None]] = []
        self.arrivals: list[float] = []  # when each completion request arrived (time.monotonic)
        self.lock = threading.Lock()
        self.files: dict[str, bytes] = {}
        self.batches: dict[str, dict] = {}
        self.port = port
        self.httpd = None

    # lifecycle -------------------------------------------------------------------------------------------
    def start(self) -> OpenAIServer:
        self.httpd = _HTTPServer(("127.0.0.1", self.port), Handler)
        self.httpd.owner = self
        self.port = self.httpd.server_port
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()
        return self

    def stop(self) -> None:
        if self.httpd is not None:
            self.httpd.shutdown()
            self.httpd.server_close()
            self.httpd = None

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    # bookkeeping -----------------------------------------------------------------------------------------
    def log(self, method: str, path: str, raw: bytes | None) -> None:
        body = None
        if raw and path.endswith("completions"):
            body = json.loads(raw)
        with self.lock:
            self.requests.append((method, path, body))
            if path.endswith("completions"):
                self.arrivals.append(time.monotonic())

    def next_fault(self):
        with self.lock:
            return self.faults.popleft() if self.faults else None

    def completion_requests(self) -> list[dict]:
        with self.lock:
            return [body for _, path, body in self.requests if path.endswith("completions")]

    # routes ----------------------------------------------------------------------------------------------
    def complete(self, path: str, body: dict) -> dict:
        chat = path.endswith("chat/completions")
        prompt = body["messages"][-1]["content"] if chat else body["prompt"]
        n = body.get("n") or 1 if self.honour_n else 1
        texts = self.student(body | {"n": n}) if self.student else [self.responder(prompt, i) for i in range(n)]
        choices = [
            (
                {"index": i, "message": {"role": "assistant", "content": t}, "finish_reason": "stop"}
                if chat
                else {"index": i, "text": t, "finish_reason": "stop", "logprobs": None}
            )
            for i, t in enumerate(texts)
        ]
        prompt_tokens = len(prompt.split())
        completion_tokens = sum(len(t.split()) for t in texts)
        answer = {
            "id": "cmpl-test",
            "object": "chat.completion" if chat else "text_completion",
            "created": 0,
            "model": body["model"],
            "choices": choices,
            "usage": {
                "prompt_tokens": prompt_tokens,
                "completion_tokens": completion_tokens,
                "total_tokens": prompt_tokens + completion_tokens,
            },
        }
        return self.edit_answer(answer, body) if self.edit_answer else answer

    def route_post(self, handler: Handler, raw: bytes) -> None:
        path = handler.path
        if path.endswith("completions"):
            if self.latency_s:
                time.sleep(self.latency_s)
            body = json.loads(raw)
            if self.models is not None and body.get("model") not in self.models:
                handler._json(
                    {
                        "error": {
                            "message": f"The model `{body.get('model')}` does not exist.",
                            "type": "NotFoundError",
                            "code": 404,
                        }
                    },
                    404,
                )
                return
            if self.reject_max_tokens and "max_tokens" in body:  # as OpenAI's reasoning models answer
                handler._json(
                    {
                        "error": {
                            "message": "Unsupported parameter: 'max_tokens' is not supported with this "
                            "model. Use 'max_completion_tokens' instead.",
                            "type": "invalid_request_error",
                            "param": "max_tokens",
                        }
                    },
                    400,
                )
                return
            handler._json(self.complete(path, body))
        elif path == "/v1/files":
            content = _multipart_file(handler.headers["Content-Type"], raw)
            file_id = f"file-{len(self.files)}"
            self.files[file_id] = content
            handler._json(
                {
                    "id": file_id,
                    "object": "file",
                    "bytes": len(content),
                    "created_at": 0,
                    "filename": "batch.jsonl",
                    "purpose": "batch",
                    "status": "processed",
                }
            )
        elif path == "/v1/batches":
            body = json.loads(raw)
            batch_id = f"batch-{len(self.batches)}"
            self.batches[batch_id] = {
                "id": batch_id,
                "object": "batch",
                "endpoint": body["endpoint"],
                "input_file_id": body["input_file_id"],
                "completion_window": body["completion_window"],
                "status": "validating",
                "created_at": 0,
                "polls": 0,
            }
            handler._json(self._public(self.batches[batch_id]))
        else:
            handler._json({"error": {"message": f"no route {path}"}}, 404)

    def route_get(self, handler: Handler) -> None:
        path = handler.path
        if path.startswith("/v1/batches/"):
            batch = self.batches[path.rsplit("/", 1)[1]]
            batch["polls"] += 1
            if batch["polls"] >= 2 and batch["status"] != "completed":
                self._run_batch(batch)
            elif batch["status"] == "validating":
                batch["status"] = "in_progress"
            handler._json(self._public(batch))
        elif path.startswith("/v1/files/") and path.endswith("/content"):
            handler._send(200, self.files[path.split("/")[3]], content_type="application/octet-stream")
        else:
            handler._json({"error": {"message": f"no route {path}"}}, 404)

    @staticmethod
    def _public(batch: dict) -> dict:
        return {k: v for k, v in batch.items() if k != "polls"}

    def _run_batch(self, batch: dict) -> None:
        lines = []
        for line in self.files[batch["input_file_id"]].decode().splitlines():
            request = json.loads(line)
            with self.lock:
                self.requests.append(("BATCH", request["url"], request["body"]))
            response = self.complete(request["url"], request["body"])
            lines.append(
                json.dumps(
                    {
                        "id": f"req-{len(lines)}",
                        "custom_id": request["custom_id"],
                        "response": {"status_code": 200, "request_id": "r", "body": response},
                        "error": None,
                    }
                )
            )
        output_id = f"file-{len(self.files)}"
        self.files[output_id] = ("\n".join(lines) + "\n").encode()
        batch.update(status="completed", output_file_id=output_id)


def _multipart_file(content_type: str, raw: bytes) -> bytes:
    message = email.parser.BytesParser(policy=email.policy.default).parsebytes(
        b"Content-Type: " + content_type.encode() + b"\r\n\r\n" + raw
    )
    for part in message.iter_parts():
        if part.get_param("name", header="content-disposition") == "file":
            return part.get_content() if isinstance(part.get_content(), bytes) else part.get_content().encode()
    raise ValueError("no file part")


async def serve_completions(port: int, latency_s: float) -> None:
    """The completion routes alone on asyncio (no thread per connection), for throughput benchmarks."""
    import asyncio

    responder = OpenAIServer()

    async def handle(reader, writer):
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                lines = head.decode().split("\r\n")
                path = lines[0].split(" ")[1]
                length = next(int(line.split(":")[1]) for line in lines if line.lower().startswith("content-length"))
                body = json.loads(await reader.readexactly(length))
                await asyncio.sleep(latency_s)
                payload = json.dumps(responder.complete(path, body)).encode()
                writer.write(
                    b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: "
                    + str(len(payload)).encode()
                    + b"\r\n\r\n"
                    + payload
                )
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", port, backlog=512)
    print(f"http://127.0.0.1:{port}/v1", flush=True)
    await server.serve_forever()


if __name__ == "__main__":  # `python -m ftcot.loopback PORT LATENCY_S`: completions only, on asyncio
    import asyncio
    import sys

    asyncio.run(serve_completions(int(sys.argv[1]), float(sys.argv[2])))
