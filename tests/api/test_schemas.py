"""Pure logic of the API schemas and the settings tree (no models needed)."""

from __future__ import annotations

from api.schemas import SamplingIn, answer_to_dict
from core import types
from core.settings import FusionMode, LLMSettings, Settings


def _chunk(i: int) -> types.ScoredChunk:
    c = types.Chunk(
        id=f"c{i}", document_id=f"d{i}", collection="x", ordinal=0, text="word " * 100,
        char_start=0, char_end=500, source=f"doc{i}.pdf", media_type="application/pdf", page=i,
    )
    return types.ScoredChunk(chunk=c, score=1.0 / i, bm25_rank=i, dense_rank=None)


def test_sampling_defaults_come_from_settings_and_request_overrides() -> None:
    llm = LLMSettings(temperature=0.0, max_tokens=64, stop=["\n\n"])
    s = SamplingIn(max_tokens=10).to_core(llm)
    assert s.max_tokens == 10 and s.temperature == 0.0 and s.stop == ("\n\n",)
    assert SamplingIn(temperature=0.7).to_core(llm).temperature == 0.7


def test_stop_strings_default_to_the_prompt_modules_and_an_override_replaces_them(
    monkeypatch,
) -> None:
    default = ("\n\n", "Question:", "Passages:")  # generation.prompt.DEFAULT_STOP
    assert SamplingIn().to_core(LLMSettings()).stop == default
    assert SamplingIn(stop=["##"]).to_core(LLMSettings()).stop == ("##",)
    assert SamplingIn(stop=[]).to_core(LLMSettings()).stop == ()  # a request may clear them
    monkeypatch.setenv("RAG_LLM__STOP", '["###", "END"]')
    llm = Settings().llm
    assert llm.stop == ["###", "END"]
    assert SamplingIn().to_core(llm).stop == ("###", "END")
    monkeypatch.setenv("RAG_LLM__STOP", "[]")
    assert SamplingIn().to_core(Settings().llm).stop == ()


def test_answer_json_shape() -> None:
    src = _chunk(1)
    answer = types.Answer(
        question="q", text="It is red [1].",
        citations=(types.Citation(n=1, source=src, snippet="short", attributed=True),),
        retrieved=(src, _chunk(2)), model=types.ModelInfo(path="/m.gguf", sha256="a" * 64),
        sampling=types.SamplingParams(), timings=types.Timings(1.0, 2.0, 3.0),
        usage=types.Usage(10, 2),
    )
    d = answer_to_dict(answer)
    assert d["answer"] == "It is red [1]."
    assert d["citations"][0] == {
        "n": 1, "document_id": "d1", "source": "doc1.pdf", "page": 1, "chunk_id": "c1",
        "snippet": "short", "attributed": True,
    }
    assert [r["chunk_id"] for r in d["retrieved"]] == ["c1", "c2"]
    assert d["retrieved"][1]["dense_rank"] is None
    assert d["model"] == {"path": "/m.gguf", "sha256": "a" * 64}
    assert d["timings_ms"] == {"retrieve": 1.0, "generate": 2.0, "total": 3.0}
    assert d["usage"] == {"prompt_tokens": 10, "completion_tokens": 2}


def test_settings_read_nested_env(monkeypatch) -> None:
    monkeypatch.setenv("RAG_RETRIEVAL__TOP_K", "9")
    monkeypatch.setenv("RAG_RETRIEVAL__FUSION", "weighted")
    monkeypatch.setenv("RAG_LLM__MODEL_PATH", "/models/x.gguf")
    monkeypatch.delenv("RAG_DB__URL", raising=False)  # pytest --postgres sets it
    s = Settings()
    assert s.retrieval.top_k == 9 and s.retrieval.fusion is FusionMode.WEIGHTED
    assert s.llm.model_path == "/models/x.gguf"
    assert s.db_url.startswith("sqlite:///")


def test_retrieve_takes_query_or_question() -> None:
    from api.schemas import RetrieveRequest

    assert RetrieveRequest.model_validate({"query": "tides"}).query == "tides"
    assert RetrieveRequest.model_validate({"question": "tides"}).query == "tides"
