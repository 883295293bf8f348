"""`ftcot serve`: a GGUF student (from `ftcot export --format gguf`) behind llama.cpp's own OpenAI-compatible
server, from the `xllamacpp` wheel (llama.cpp's server compiled into a Python package: the `llamacpp` extra, no
compiler needed). `ftcot evaluate` with `engine: openai` then scores it as served; `llama-server -m FILE` or
Ollama serve the same file."""

from __future__ import annotations

import signal
import sys
import threading
from pathlib import Path

from ftcot.errors import UserError


def start(
    gguf: Path,
    name: str,
    host: str = "127.0.0.1",
    port: int = 8080,
    threads: int | None = None,
    parallel: int = 1,
    context: int = 2048,
):
    """llama.cpp's server over the file, listening once this returns (port 0: a free one; its
    `listening_address` says which); it stops when the object is dropped."""
    try:
        import xllamacpp
    except ImportError:
        raise UserError("ftcot serve needs llama.cpp's server: pip install 'ftcot[llamacpp]'") from None
    if not gguf.is_file():
        raise UserError(f"no GGUF file at {gguf}")
    params = xllamacpp.CommonParams()
    params.model.path = str(gguf)
    params.model_alias = {name}
    params.hostnames = [host]
    params.port = port
    params.n_parallel = parallel  # slots; one answers requests in turn, and its greedy tokens never depend on a batch
    params.n_ctx = context * parallel  # llama.cpp splits its context among the slots
    if threads:
        params.cpuparams.n_threads = params.cpuparams_batch.n_threads = threads
    try:
        return xllamacpp.Server(params)
    except RuntimeError:
        raise UserError(f"llama.cpp could not serve {gguf} on {host}:{port} (its log above says why)") from None


def serve(gguf: Path, name: str, host: str, port: int, threads: int | None, parallel: int, context: int) -> None:
    server = start(gguf, name, host, port, threads, parallel, context)
    print(
        f"serving {name} ({gguf.name}) at {server.listening_address}/v1 with llama.cpp; Ctrl-C stops", file=sys.stderr
    )
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    stop.wait()
    del server
