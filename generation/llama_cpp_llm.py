"""In-process GGUF generation with llama-cpp-python.

    llm = LlamaCppLLM(Path("gemma-3-270m-q4_k_m.gguf"), n_ctx=2048, n_threads=2)
    llm.warm_up()                                   # optional: loads on first use anyway
    out = llm.complete("Question: ...\\nAnswer:", SamplingParams(max_tokens=32, stop=("\\n",)))

Determinism: every call starts from an empty KV cache (no prompt-prefix reuse), so
temperature 0 gives the same text for the same prompt on repeated calls; reuse made
the Gemma file's outputs differ (notes/small-llm-baseline.md).

Chat: a model whose GGUF carries ``tokenizer.chat_template`` is rendered with that
template (Jinja, as llama-cpp-python does); a model without one (the Gemma base file)
gets a plain ``System/User/Assistant`` transcript, never a guessed template, which
only makes a base model repeat the instruction. ``chat_format`` forces one of
llama-cpp-python's named formats (e.g. ``"chatml"``).
"""

from __future__ import annotations

import contextlib
import logging
import threading
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from core.errors import BackendUnavailable, ContextOverflow, ModelNotFound
from core.types import Completion, ModelInfo, Prompt, PromptStyle, SamplingParams, Usage
from generation.models import bundled_for_path, model_sha256

log = logging.getLogger(__name__)

# Serialises model loading: the extra-buffer switch below patches a module function.
_load_lock = threading.Lock()


def _cpu_flags() -> set[str]:
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            for line in f:
                if line.startswith("flags"):
                    return set(line.split(":", 1)[1].split())
    except OSError:
        pass
    return set()


def amx_advertised() -> bool:
    """True when the CPU reports Intel AMX tiles.

    ggml then routes quantised matmuls to its AMX kernels, which die with a general
    protection fault in VMs that advertise AMX without enabling tile state (seen on
    the project's Firecracker machines). We switch ggml's extra buffer types (AMX
    and weight repacking) off there; elsewhere they stay on.
    """
    return "amx_tile" in _cpu_flags()


@contextlib.contextmanager
def _model_params_without_extra_buffers(llama_cpp_mod: Any) -> Iterator[None]:
    """``Llama.__init__`` takes no ``use_extra_bufts``; patch its default params briefly."""
    original = llama_cpp_mod.llama_model_default_params

    def params() -> Any:
        p = original()
        p.use_extra_bufts = False
        return p

    llama_cpp_mod.llama_model_default_params = params
    try:
        yield
    finally:
        llama_cpp_mod.llama_model_default_params = original


def _import_llama_cpp() -> tuple[Any, Any]:
    try:
        import llama_cpp
        import llama_cpp.llama_cpp as llama_cpp_lib
    except ImportError as exc:  # pragma: no cover - depends on the install
        raise BackendUnavailable(
            "llama-cpp-python is not installed: pip install llama-cpp-python "
            "(or use llm.backend='openai' with a llama.cpp / vLLM server)"
        ) from exc
    return llama_cpp, llama_cpp_lib


class LlamaCppLLM:
    """``generation.ports.LLM`` over a local GGUF file; one generation at a time."""

    def __init__(
        self,
        model_path: Path,
        *,
        n_ctx: int = 2048,
        n_threads: int = 2,
        n_gpu_layers: int = 0,
        default_style: PromptStyle | None = None,
        chat_format: str | None = None,
        extra_buffers: bool | None = None,
    ) -> None:
        self._path = Path(model_path)
        self._n_ctx = n_ctx
        self._n_threads = n_threads
        self._n_gpu_layers = n_gpu_layers
        self._style = default_style
        self._chat_format = chat_format
        self._extra_buffers = extra_buffers
        self._llama: Any = None
        self._formatter: Any = None  # callable(messages=...) -> ChatFormatterResponse
        self._info: ModelInfo | None = None
        self._lock = threading.RLock()

    # -- loading --------------------------------------------------------------------------

    def warm_up(self) -> None:
        """Load the model (once). Cheap to call again."""
        if self._llama is not None:
            return
        with self._lock:
            if self._llama is not None:
                return
            if not self._path.is_file():
                raise ModelNotFound(f"model file not found: {self._path}")
            llama_cpp, llama_cpp_lib = _import_llama_cpp()
            extra = self._extra_buffers if self._extra_buffers is not None else not amx_advertised()
            with _load_lock:
                patch = (
                    contextlib.nullcontext()
                    if extra
                    else _model_params_without_extra_buffers(llama_cpp_lib)
                )
                with patch:
                    try:
                        llm = llama_cpp.Llama(
                            model_path=str(self._path),
                            n_ctx=self._n_ctx,
                            n_threads=self._n_threads,
                            n_threads_batch=self._n_threads,
                            n_gpu_layers=self._n_gpu_layers,
                            logits_all=False,
                            verbose=False,
                            # We render chat prompts ourselves (see _render_chat).
                            chat_format=self._chat_format or "chatml",
                        )
                    except ValueError as exc:  # llama-cpp-python's "Failed to load model"
                        raise ModelNotFound(
                            f"could not load GGUF model {self._path}: {exc}"
                        ) from exc
            self._formatter = self._make_formatter(llm)
            self._llama = llm

    def _make_formatter(self, llm: Any) -> Any:
        from llama_cpp import llama_chat_format

        if self._chat_format:
            fn = getattr(llama_chat_format, "format_" + self._chat_format.replace("-", "_"), None)
            if fn is None:
                raise ValueError(f"unknown llama-cpp-python chat format {self._chat_format!r}")
            return fn
        template = llm.metadata.get("tokenizer.chat_template")
        if not template:
            return None  # base model: plain transcript
        model = llm._model

        def text_of(token_id: int) -> str:
            return model.token_get_text(token_id) if token_id != -1 else ""

        eos_id = llm.token_eos()
        return llama_chat_format.Jinja2ChatFormatter(
            template=template,
            eos_token=text_of(eos_id),
            bos_token=text_of(llm.token_bos()),
            stop_token_ids=[eos_id],
        )

    def close(self) -> None:
        with self._lock:
            if self._llama is not None:
                self._llama.close()
                self._llama = None

    # -- port properties ------------------------------------------------------------------

    @property
    def info(self) -> ModelInfo:
        if self._info is None:
            bundled = bundled_for_path(self._path)
            name = bundled.name if bundled else self._path.stem
            self._info = ModelInfo(path=str(self._path), sha256=model_sha256(self._path), name=name)
        return self._info

    @property
    def n_ctx(self) -> int:
        return self._n_ctx

    @property
    def default_style(self) -> PromptStyle:
        if self._style is None:
            bundled = bundled_for_path(self._path)
            if bundled is not None:
                self._style = bundled.default_style
            else:
                self.warm_up()
                has_template = bool(self._llama.metadata.get("tokenizer.chat_template"))
                self._style = PromptStyle.CHAT if has_template else PromptStyle.COMPLETION
        return self._style

    @property
    def has_chat_template(self) -> bool:
        self.warm_up()
        return self._formatter is not None

    # -- tokens ---------------------------------------------------------------------------

    def _tokens(self, text: str, *, special: bool) -> list[int]:
        self.warm_up()
        # add_bos: the BOS token is added when the model's vocabulary asks for it.
        return list(self._llama.tokenize(text.encode("utf-8"), add_bos=True, special=special))

    def count_tokens(self, text: str) -> int:
        """Tokens ``complete(text)`` feeds the model (BOS included when the model adds one)."""
        return len(self._tokens(text, special=False))

    def render_chat(self, messages: Sequence[tuple[str, str]]) -> tuple[str, tuple[str, ...]]:
        """The completion prompt a chat renders to, and the stop strings it adds."""
        self.warm_up()
        if self._formatter is None:
            parts = []
            for role, content in messages:
                label = {"system": "", "user": "User: ", "assistant": "Assistant: "}.get(
                    role, f"{role.capitalize()}: "
                )
                parts.append(label + content.strip())
            return "\n\n".join(parts) + "\nAssistant:", ("\nUser:",)
        rendered = self._formatter(
            messages=[{"role": role, "content": content} for role, content in messages]
        )
        stop = rendered.stop
        stops = (stop,) if isinstance(stop, str) else tuple(stop or ())
        return rendered.prompt, tuple(s for s in stops if s)

    def count_chat_tokens(self, messages: Sequence[tuple[str, str]]) -> int:
        text, _ = self.render_chat(messages)
        return len(self._tokens(text, special=self._formatter is not None))

    # -- generation -----------------------------------------------------------------------

    def _check_fits(self, n_prompt: int, params: SamplingParams) -> None:
        if n_prompt + params.max_tokens > self._n_ctx:
            raise ContextOverflow(
                f"prompt of {n_prompt} tokens + max_tokens {params.max_tokens} exceeds the "
                f"context window of {self._n_ctx} tokens ({self._path.name})"
            )

    def _kwargs(self, params: SamplingParams, extra_stop: tuple[str, ...]) -> dict[str, Any]:
        stop = list(dict.fromkeys((*params.stop, *extra_stop)))
        return {
            "max_tokens": params.max_tokens,
            "temperature": params.temperature,
            "top_p": params.top_p,
            "top_k": params.top_k,
            "min_p": 0.0,  # only the caller's filters apply
            "repeat_penalty": params.repeat_penalty,
            "seed": params.seed,
            "stop": stop,
        }

    def _reset(self) -> None:
        # A fresh KV cache for every call: no prompt-prefix reuse, identical arithmetic.
        self._llama.reset()
        self._llama._ctx.kv_cache_clear()

    def _run(
        self, tokens: list[int], params: SamplingParams, extra_stop: tuple[str, ...]
    ) -> Completion:
        self._check_fits(len(tokens), params)
        with self._lock:
            self._reset()
            out = self._llama.create_completion(
                tokens, stream=False, **self._kwargs(params, extra_stop)
            )
        choice = out["choices"][0]
        usage = out.get("usage") or {}
        return Completion(
            text=choice["text"],
            usage=Usage(
                prompt_tokens=int(usage.get("prompt_tokens", len(tokens))),
                completion_tokens=int(usage.get("completion_tokens", 0)),
            ),
            finish_reason=choice.get("finish_reason") or "stop",
        )

    def _run_stream(
        self, tokens: list[int], params: SamplingParams, extra_stop: tuple[str, ...]
    ) -> Iterator[str]:
        self._check_fits(len(tokens), params)
        with self._lock:  # held until the generator is exhausted or closed
            self._reset()
            chunks = self._llama.create_completion(
                tokens, stream=True, **self._kwargs(params, extra_stop)
            )
            try:
                for chunk in chunks:
                    piece = chunk["choices"][0]["text"]
                    if piece:
                        yield piece
            finally:
                chunks.close()

    def complete(self, prompt: str, params: SamplingParams) -> Completion:
        return self._run(self._tokens(prompt, special=False), params, ())

    def chat(self, messages: Sequence[tuple[str, str]], params: SamplingParams) -> Completion:
        text, stops = self.render_chat(messages)
        return self._run(self._tokens(text, special=self._formatter is not None), params, stops)

    def stream(self, prompt: Prompt, params: SamplingParams) -> Iterator[str]:
        """Token text pieces; joined at temperature 0 they equal ``complete``/``chat``'s text."""
        if prompt.style == PromptStyle.CHAT:
            text, stops = self.render_chat(prompt.messages)
            tokens = self._tokens(text, special=self._formatter is not None)
        else:
            tokens, stops = self._tokens(prompt.text, special=False), ()
        # Validate eagerly so ContextOverflow is raised at call time, not on first next().
        self._check_fits(len(tokens), params)
        return self._run_stream(tokens, params, stops)
