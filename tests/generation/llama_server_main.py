"""Run llama-cpp-python's OpenAI-compatible server with the platform's load settings.

    python -m tests.generation.llama_server_main --model X.gguf --host 127.0.0.1 --port 8080

Same as ``python -m llama_cpp.server`` except that ggml's extra buffer types are off on
CPUs that advertise AMX (see ``generation.llama_cpp_llm.amx_advertised``): its AMX
kernels crash in VMs that do not enable tile state.
"""

from __future__ import annotations

import runpy

import llama_cpp
import llama_cpp.llama_cpp as llama_cpp_lib

from generation.llama_cpp_llm import amx_advertised

if __name__ == "__main__":
    if amx_advertised():
        _original = llama_cpp_lib.llama_model_default_params

        def _params():  # type: ignore[no-untyped-def]
            p = _original()
            p.use_extra_bufts = False
            return p

        llama_cpp_lib.llama_model_default_params = _params
    # Greedy decoding must repeat itself (the LLM contract): the server reuses the previous
    # prompt's KV cache, which changed Gemma/SmolLM2 outputs at temperature 0 on this
    # build; start every generation from an empty cache, as generation.llama_cpp_llm does.
    _generate = llama_cpp.Llama.generate

    def _fresh_generate(self, *args, **kwargs):  # type: ignore[no-untyped-def]
        self.reset()
        self._ctx.kv_cache_clear()
        return _generate(self, *args, **kwargs)

    llama_cpp.Llama.generate = _fresh_generate  # type: ignore[method-assign]
    runpy.run_module("llama_cpp.server", run_name="__main__", alter_sys=True)
