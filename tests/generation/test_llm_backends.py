"""Backend specifics beyond the shared contract: model info, chat rendering, errors, factory."""

from __future__ import annotations

import socket
from pathlib import Path

import httpx
import pytest

from core.errors import BackendUnavailable, ModelNotFound
from core.settings import LLMSettings
from core.types import PromptStyle, SamplingParams
from generation.factory import build_llm
from generation.llama_cpp_llm import LlamaCppLLM
from generation.models import BUNDLED
from generation.openai_llm import OpenAICompatibleLLM


def test_missing_model_file_is_model_not_found(tmp_path: Path) -> None:
    llm = LlamaCppLLM(tmp_path / "absent.gguf", n_ctx=512, n_threads=1)
    with pytest.raises(ModelNotFound) as err:
        llm.count_tokens("hi")
    assert "absent.gguf" in str(err.value)


def test_factory_builds_the_configured_backend(tmp_path: Path, smollm2_path: Path) -> None:
    llm = build_llm(LLMSettings(bundled="smollm2-135m", n_ctx=1024), tmp_path)
    assert isinstance(llm, LlamaCppLLM)
    assert llm.n_ctx == 1024 and llm.default_style is BUNDLED["smollm2-135m"].default_style
    forced = build_llm(LLMSettings(model_path=str(smollm2_path), prompt_style="chat"), tmp_path)
    assert forced.default_style is PromptStyle.CHAT
    remote = build_llm(LLMSettings(backend="openai", openai_base_url="http://h:1/v1"), tmp_path)
    assert isinstance(remote, OpenAICompatibleLLM)


@pytest.mark.slow
def test_model_info_names_the_file_and_digest(gemma_llm: LlamaCppLLM, gemma_path: Path) -> None:
    info = gemma_llm.info
    assert info.path == str(gemma_path)
    assert info.sha256 == BUNDLED["gemma3-270m"].sha256
    assert "Gemma" in info.name
    assert gemma_llm.default_style is PromptStyle.COMPLETION


@pytest.mark.slow
def test_chat_rendering_per_model(gemma_llm: LlamaCppLLM, smollm_llm: LlamaCppLLM) -> None:
    msgs = (("system", "Be brief."), ("user", "Hi?"))
    # The Gemma file is a base model without a template: a plain transcript, no guessed format.
    text, stops = gemma_llm.render_chat(msgs)
    assert not gemma_llm.has_chat_template
    assert text == "Be brief.\n\nUser: Hi?\nAssistant:" and stops == ("\nUser:",)
    # SmolLM2 carries ChatML in the file.
    text, stops = smollm_llm.render_chat(msgs)
    assert smollm_llm.has_chat_template
    assert text.startswith("<|im_start|>system\nBe brief.<|im_end|>")
    assert text.endswith("<|im_start|>assistant\n") and stops == ("<|im_end|>",)
    # Special tokens of a rendered template count as one token each.
    assert smollm_llm.count_chat_tokens(msgs) < smollm_llm.count_tokens(text)


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_openai_connection_failure_names_the_url() -> None:
    url = f"http://127.0.0.1:{_closed_port()}/v1"
    llm = OpenAICompatibleLLM(url, timeout_s=5)
    with pytest.raises(BackendUnavailable) as err:
        llm.complete("hi", SamplingParams(max_tokens=2))
    assert url in str(err.value)


def test_openai_token_count_falls_back_to_an_overestimate_without_tokenize() -> None:
    seen: list[str] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request.url.path)
        return httpx.Response(404, json={"detail": "Not Found"})

    llm = OpenAICompatibleLLM("http://server/v1", transport=httpx.MockTransport(handler), n_ctx=512)
    assert llm.count_tokens("a" * 30) == 10  # one token per 3 characters
    assert seen == ["/tokenize", "/extras/tokenize"]
    llm.count_tokens("more")
    assert len(seen) == 2  # the fallback is remembered


def test_openai_uses_llama_cpp_server_tokenize() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        assert request.url.path == "/tokenize"
        return httpx.Response(200, json={"tokens": [1, 2, 3, 4]})

    llm = OpenAICompatibleLLM("http://server/v1", transport=httpx.MockTransport(handler))
    assert llm.count_tokens("four tokens here") == 4
