"""Generation through any OpenAI-compatible server (llama.cpp's server, vLLM, ...).

    llm = OpenAICompatibleLLM("http://127.0.0.1:8080/v1", model="local", n_ctx=4096)
    llm.complete("Question: ...\\nAnswer:", SamplingParams(max_tokens=32))

Token counting asks the server: llama.cpp's C++ server answers ``POST /tokenize``
``{"content": ...}`` (beside ``/v1``), llama-cpp-python's server answers ``POST
/extras/tokenize`` ``{"input": ...}``. When neither exists (vLLM without it, hosted
APIs) the count falls back to an estimate of one token per 3 characters, which
over-counts English so a prompt fitted with it still fits.
"""

from __future__ import annotations

import json
import math
import threading
from collections.abc import Iterator, Sequence
from typing import Any

import httpx

from core.errors import BackendUnavailable, ContextOverflow, RagError
from core.types import Completion, ModelInfo, Prompt, PromptStyle, SamplingParams, Usage

_CHARS_PER_TOKEN_ESTIMATE = 3.0
_CHAT_OVERHEAD_TOKENS = 8  # per message: role markers of a typical template


class OpenAICompatibleLLM:
    """``generation.ports.LLM`` over HTTP; thread-safe (httpx.Client is)."""

    def __init__(
        self,
        base_url: str,
        model: str = "local",
        api_key: str = "not-needed",
        timeout_s: float = 120.0,
        n_ctx: int = 2048,
        default_style: PromptStyle = PromptStyle.CHAT,
        *,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        self._base = base_url.rstrip("/")
        self._root = self._base[: -len("/v1")] if self._base.endswith("/v1") else self._base
        self._model = model
        self._n_ctx = n_ctx
        self._style = default_style
        self._client = httpx.Client(
            timeout=timeout_s, headers={"Authorization": f"Bearer {api_key}"}, transport=transport
        )
        self._tokenize_mode: str | None = None  # "llama.cpp" | "llama-cpp-python" | "estimate"
        self._mode_lock = threading.Lock()

    def close(self) -> None:
        self._client.close()

    def warm_up(self) -> None:
        """Nothing loads in this process: the server holds the model."""

    # -- port properties ------------------------------------------------------------------

    @property
    def info(self) -> ModelInfo:
        # The server owns the file; its digest is unknown here.
        return ModelInfo(path=f"{self._base}#{self._model}", sha256="", name=self._model)

    @property
    def n_ctx(self) -> int:
        return self._n_ctx

    @property
    def default_style(self) -> PromptStyle:
        return self._style

    # -- HTTP -----------------------------------------------------------------------------

    def _post(self, url: str, body: dict[str, Any]) -> httpx.Response:
        try:
            return self._client.post(url, json=body)
        except httpx.TimeoutException as exc:
            raise BackendUnavailable(f"LLM server {self._base} timed out on {url}: {exc}") from exc
        except httpx.TransportError as exc:
            raise BackendUnavailable(
                f"LLM server {self._base} is not reachable ({url}): {exc}"
            ) from exc

    def _check(self, resp: httpx.Response) -> dict[str, Any]:
        if resp.status_code >= 400:
            detail = resp.text[:500]
            if resp.status_code == 400 and "context" in detail.lower():
                raise ContextOverflow(f"LLM server rejected the prompt: {detail}")
            if resp.status_code >= 500 or resp.status_code in (404, 401, 403):
                raise BackendUnavailable(
                    f"LLM server at {resp.request.url} answered {resp.status_code}: {detail}"
                )
            raise RagError(
                f"LLM server at {resp.request.url} answered {resp.status_code}: {detail}"
            )
        data: dict[str, Any] = resp.json()
        return data

    # -- tokens ---------------------------------------------------------------------------

    def _server_tokens(self, text: str) -> int | None:
        mode = self._tokenize_mode
        if mode in (None, "llama.cpp"):
            resp = self._post(f"{self._root}/tokenize", {"content": text})
            if resp.status_code == 200 and isinstance(resp.json().get("tokens"), list):
                self._tokenize_mode = "llama.cpp"
                return len(resp.json()["tokens"])
        if mode in (None, "llama-cpp-python"):
            resp = self._post(
                f"{self._root}/extras/tokenize", {"input": text, "model": self._model}
            )
            if resp.status_code == 200 and isinstance(resp.json().get("tokens"), list):
                self._tokenize_mode = "llama-cpp-python"
                return len(resp.json()["tokens"])
        with self._mode_lock:
            self._tokenize_mode = "estimate"
        return None

    def count_tokens(self, text: str) -> int:
        """The server's token count; an over-estimate when the server cannot tokenize."""
        if self._tokenize_mode != "estimate":
            n = self._server_tokens(text)
            if n is not None:
                return n
        return max(1, math.ceil(len(text) / _CHARS_PER_TOKEN_ESTIMATE))

    def count_chat_tokens(self, messages: Sequence[tuple[str, str]]) -> int:
        return sum(self.count_tokens(c) + _CHAT_OVERHEAD_TOKENS for _, c in messages) + 4

    def _check_fits(self, n_prompt: int, params: SamplingParams) -> None:
        if n_prompt + params.max_tokens > self._n_ctx:
            raise ContextOverflow(
                f"prompt of {n_prompt} tokens + max_tokens {params.max_tokens} exceeds the "
                f"context window of {self._n_ctx} tokens ({self._model} at {self._base})"
            )

    # -- generation -----------------------------------------------------------------------

    def _body(self, params: SamplingParams) -> dict[str, Any]:
        body: dict[str, Any] = {
            "model": self._model,
            "max_tokens": params.max_tokens,
            "temperature": params.temperature,
            "top_p": params.top_p,
            "top_k": params.top_k,  # llama.cpp / vLLM extension
            "min_p": 0.0,
            "repeat_penalty": params.repeat_penalty,  # llama.cpp extension
            "seed": params.seed,
        }
        if params.stop:
            body["stop"] = list(params.stop)
        return body

    @staticmethod
    def _usage(data: dict[str, Any]) -> Usage:
        u = data.get("usage") or {}
        return Usage(
            prompt_tokens=int(u.get("prompt_tokens") or 0),
            completion_tokens=int(u.get("completion_tokens") or 0),
        )

    def complete(self, prompt: str, params: SamplingParams) -> Completion:
        self._check_fits(self.count_tokens(prompt), params)
        data = self._check(
            self._post(f"{self._base}/completions", {**self._body(params), "prompt": prompt})
        )
        choice = data["choices"][0]
        return Completion(
            text=choice.get("text") or "",
            usage=self._usage(data),
            finish_reason=choice.get("finish_reason") or "stop",
        )

    def _messages(self, messages: Sequence[tuple[str, str]]) -> list[dict[str, str]]:
        return [{"role": r, "content": c} for r, c in messages]

    def chat(self, messages: Sequence[tuple[str, str]], params: SamplingParams) -> Completion:
        self._check_fits(self.count_chat_tokens(messages), params)
        body = {**self._body(params), "messages": self._messages(messages)}
        data = self._check(self._post(f"{self._base}/chat/completions", body))
        choice = data["choices"][0]
        return Completion(
            text=(choice.get("message") or {}).get("content") or "",
            usage=self._usage(data),
            finish_reason=choice.get("finish_reason") or "stop",
        )

    def stream(self, prompt: Prompt, params: SamplingParams) -> Iterator[str]:
        """Text pieces from the server's SSE stream (``data: {...}`` lines, ``[DONE]``)."""
        if prompt.style == PromptStyle.CHAT:
            self._check_fits(self.count_chat_tokens(prompt.messages), params)
            url = f"{self._base}/chat/completions"
            body = {**self._body(params), "messages": self._messages(prompt.messages)}
        else:
            self._check_fits(self.count_tokens(prompt.text), params)
            url = f"{self._base}/completions"
            body = {**self._body(params), "prompt": prompt.text}
        return self._sse(url, {**body, "stream": True}, chat=prompt.style == PromptStyle.CHAT)

    def _sse(self, url: str, body: dict[str, Any], *, chat: bool) -> Iterator[str]:
        try:
            with self._client.stream("POST", url, json=body) as resp:
                if resp.status_code >= 400:
                    resp.read()
                    self._check(resp)
                for line in resp.iter_lines():
                    if not line.startswith("data:"):
                        continue
                    payload = line[len("data:") :].strip()
                    if payload == "[DONE]":
                        return
                    event = json.loads(payload)
                    choices = event.get("choices") or []
                    if not choices:
                        continue
                    choice = choices[0]
                    piece = (
                        (choice.get("delta") or {}).get("content") if chat else choice.get("text")
                    )
                    if piece:
                        yield piece
        except httpx.TimeoutException as exc:
            raise BackendUnavailable(f"LLM server {self._base} timed out on {url}: {exc}") from exc
        except httpx.TransportError as exc:
            raise BackendUnavailable(
                f"LLM server {self._base} is not reachable ({url}): {exc}"
            ) from exc
