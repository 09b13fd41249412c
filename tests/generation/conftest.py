"""Session fixtures for the LLM backends: each model loads once per test session.

Fixtures: ``models_dir`` (a temp models folder, Gemma assembled into it once),
``gemma_path`` / ``smollm2_path`` (GGUF files), ``gemma_llm`` / ``smollm_llm``
(LlamaCppLLM, n_ctx 2048, 1 thread), ``llama_server_url`` (a real llama-cpp-python
OpenAI-compatible server on 127.0.0.1 serving SmolLM2, ".../v1"), ``openai_llm``
(OpenAICompatibleLLM talking to it).
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from generation.llama_cpp_llm import LlamaCppLLM
from generation.models import gemma_path as _gemma_path
from generation.models import smollm2_path as _smollm2_path
from generation.openai_llm import OpenAICompatibleLLM

REPO = Path(__file__).resolve().parents[2]
N_CTX = 2048
# One thread: ggml's worker threads spin at barriers, and on a busy 2-core runner
# (other test processes) two threads measured 4x slower than one.
THREADS = 1


@pytest.fixture(scope="session")
def models_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("models")


@pytest.fixture(scope="session")
def gemma_path(models_dir: Path) -> Path:
    return _gemma_path(models_dir)


@pytest.fixture(scope="session")
def smollm2_path() -> Path:
    return _smollm2_path()


@pytest.fixture(scope="session")
def gemma_llm(gemma_path: Path) -> Iterator[LlamaCppLLM]:
    llm = LlamaCppLLM(gemma_path, n_ctx=N_CTX, n_threads=THREADS)
    llm.warm_up()
    yield llm
    llm.close()


@pytest.fixture(scope="session")
def smollm_llm(smollm2_path: Path) -> Iterator[LlamaCppLLM]:
    llm = LlamaCppLLM(smollm2_path, n_ctx=N_CTX, n_threads=THREADS)
    llm.warm_up()
    yield llm
    llm.close()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="session")
def llama_server_url(smollm2_path: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """llama-cpp-python's server (extra ``server``: sse-starlette, starlette-context)."""
    pytest.importorskip("sse_starlette", reason="pip install 'llama-cpp-python[server]'")
    pytest.importorskip("starlette_context", reason="pip install 'llama-cpp-python[server]'")
    port = _free_port()
    log = tmp_path_factory.mktemp("llama-server") / "server.log"
    cmd = [
        sys.executable, "-m", "tests.generation.llama_server_main",
        "--model", str(smollm2_path), "--host", "127.0.0.1", "--port", str(port),
        "--n_ctx", str(N_CTX), "--n_threads", str(THREADS), "--n_threads_batch", str(THREADS),
    ]  # fmt: skip
    with log.open("wb") as out:
        proc = subprocess.Popen(
            cmd, cwd=REPO, stdout=out, stderr=subprocess.STDOUT, env={**os.environ}
        )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120
        while True:
            if proc.poll() is not None:
                pytest.fail(f"llama server exited ({proc.returncode}): {log.read_text()[-2000:]}")
            try:
                if httpx.get(f"{base}/v1/models", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline:
                pytest.fail(f"llama server not ready in 120 s: {log.read_text()[-2000:]}")
            time.sleep(0.25)
        yield f"{base}/v1"
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


@pytest.fixture(scope="session")
def openai_llm(llama_server_url: str) -> Iterator[OpenAICompatibleLLM]:
    llm = OpenAICompatibleLLM(llama_server_url, model="local", n_ctx=N_CTX, timeout_s=300)
    yield llm
    llm.close()
