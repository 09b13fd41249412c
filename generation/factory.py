"""Build the configured LLM backend (composition roots call this once).

llm = build_llm(settings.llm, settings.models_dir)
"""

from __future__ import annotations

from pathlib import Path

from core.settings import LLMSettings
from core.types import PromptStyle
from generation.llama_cpp_llm import LlamaCppLLM
from generation.models import bundled_for_path, resolve_model
from generation.openai_llm import OpenAICompatibleLLM
from generation.ports import LLM


def build_llm(settings: LLMSettings, models_dir: Path) -> LLM:
    """An unloaded LLM for ``settings.backend``; call ``warm_up()`` to load it early.

    ``settings.prompt_style`` overrides the model's measured-best style. The bundled
    Gemma file is assembled into ``models_dir`` here (once), not at load time.
    """
    if settings.backend == "openai":
        return OpenAICompatibleLLM(
            base_url=settings.openai_base_url,
            model=settings.openai_model,
            api_key=settings.openai_api_key,
            timeout_s=settings.request_timeout_s,
            n_ctx=settings.n_ctx,
            default_style=settings.prompt_style or PromptStyle.CHAT,
        )
    path = resolve_model(settings, models_dir)
    style = settings.prompt_style
    if style is None and (bundled := bundled_for_path(path)) is not None:
        style = bundled.default_style
    return LlamaCppLLM(
        path,
        n_ctx=settings.n_ctx,
        n_threads=settings.n_threads,
        n_gpu_layers=settings.n_gpu_layers,
        default_style=style,
    )
