"""Tenant isolation through the REST API: the real app, the real embedding model, real
FAISS and BM25 files and a real SQLite file; tenants "alpha" and "beta" hold real keys.

Both tenants (and the default tenant, who sends no key) own a collection named "docs"
with different documents. Another tenant's collection or document must look exactly like
a missing one.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from api.app import create_app
from api.auth import create_api_key
from tests.api.conftest import TenantClient, api_settings

# Two unrelated documents in every "docs", so BM25's idf of the lighthouse words is positive.
FILLER = {
    "bakery.txt": "The bakery sells rye bread and cinnamon buns from seven in the morning.",
    "trains.txt": "The night train to the capital leaves the central station at ten.",
}
DEFAULT_DOCS = {
    "notes.txt": "The default tenant's lighthouse is painted orange every spring.", **FILLER
}
ALPHA_DOCS = {
    "notes.txt": "Alpha's lighthouse on Hvaler island is painted green with white stripes.",
    "alpha-only.txt": "Alpha keeps its rowing boats in a shed beside the northern harbour.",
    **FILLER,
}
BETA_DOCS = {
    "notes.txt": "Beta's lighthouse on Utsira island is painted purple by volunteers.", **FILLER
}
BETA_PRIVATE = {"plans.txt": "Beta plans to open a seaweed farm in the western fjord in 2031."}


class World:
    def __init__(self, client: TestClient) -> None:
        engine = client.app.state.platform.engine
        self.client = client
        self.default = TenantClient(client, None)
        self.alpha = TenantClient(client, create_api_key(engine, "alpha").secret)
        self.beta = TenantClient(client, create_api_key(engine, "beta").secret)
        self.ids: dict[str, dict[str, str]] = {}
        for who, tc, docs in (
            ("default", self.default, DEFAULT_DOCS),
            ("alpha", self.alpha, ALPHA_DOCS),
            ("beta", self.beta, BETA_DOCS),
        ):
            r = tc.upload("docs", docs)
            assert r.status_code == 200, r.text
            assert r.json()["ingested"] == len(docs), r.json()
            self.ids[who] = {o["source"]: o["document_id"] for o in r.json()["results"]}
        r = self.beta.upload("private", BETA_PRIVATE)
        assert r.status_code == 200, r.text
        self.ids["beta-private"] = {o["source"]: o["document_id"] for o in r.json()["results"]}


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    data: Path = tmp_path_factory.mktemp("tenants")
    with TestClient(create_app(api_settings(data))) as client:
        yield World(client)


def names(tc: TenantClient) -> set[str]:
    r = tc.get("/v1/collections")
    assert r.status_code == 200, r.text
    return {c["name"] for c in r.json()["data"]}


def sources(tc: TenantClient, collection: str) -> set[str]:
    r = tc.get(f"/v1/collections/{collection}/documents")
    assert r.status_code == 200, r.text
    return {d["source"] for d in r.json()["data"]}


def test_each_tenant_lists_only_its_own_collections(world: World) -> None:
    assert names(world.default) == {"docs"}
    assert names(world.alpha) == {"docs"}
    assert names(world.beta) == {"docs", "private"}
    body = world.alpha.get("/v1/collections").json()
    assert body["count"] == 1 and body["data"][0]["tenant"] == "alpha"
    assert body["data"][0]["documents"] == len(ALPHA_DOCS)


def test_each_tenant_sees_only_its_own_documents(world: World) -> None:
    assert sources(world.default, "docs") == set(DEFAULT_DOCS)
    assert sources(world.alpha, "docs") == set(ALPHA_DOCS)
    assert sources(world.beta, "docs") == set(BETA_DOCS)
    # The same sources in three tenants' "docs": three documents each.
    for source in ("notes.txt", *FILLER):
        assert len({world.ids[t][source] for t in ("default", "alpha", "beta")}) == 3


@pytest.mark.parametrize("method", ["hybrid", "bm25", "dense"])
def test_retrieval_returns_only_the_callers_chunks(world: World, method: str) -> None:
    for who, tc in (("default", world.default), ("alpha", world.alpha), ("beta", world.beta)):
        r = tc.retrieve("lighthouse painted island", "docs", method=method, top_k=10)
        assert r.status_code == 200, r.text
        chunks = r.json()["chunks"]
        assert chunks, who
        assert {c["document_id"] for c in chunks} <= set(world.ids[who].values()), who
    chunks = world.alpha.retrieve("lighthouse", "docs", method=method).json()["chunks"]
    texts = " ".join(c["text"] for c in chunks)
    assert "green" in texts and "purple" not in texts and "orange" not in texts


def test_a_filter_naming_another_tenants_document_finds_nothing(world: World) -> None:
    beta_doc = world.ids["beta"]["notes.txt"]
    r = world.alpha.retrieve("lighthouse", "docs", filter={"document_ids": [beta_doc]})
    assert r.status_code == 200 and r.json()["chunks"] == []


def _missing_body(tc: TenantClient, url: str, name: str, method: str = "get") -> dict:
    """The error body for ``url``, with ``name`` replaced, to compare with a truly absent one."""
    r = getattr(tc, method)(url)
    assert r.status_code == 404, (url, r.status_code, r.text)
    body = r.json()
    assert set(body) == {"error"} and set(body["error"]) == {"code", "message"}
    body["error"]["message"] = body["error"]["message"].replace(name, "NAME")
    return body


def test_another_tenants_collection_looks_missing(world: World) -> None:
    for url, method in (
        ("/v1/collections/{}/documents", "get"),
        ("/v1/collections/{}", "delete"),
        ("/v1/collections/{}/documents/" + world.ids["beta-private"]["plans.txt"], "get"),
        ("/v1/collections/{}/documents/" + world.ids["beta-private"]["plans.txt"], "delete"),
    ):
        theirs = _missing_body(world.alpha, url.format("private"), "private", method)
        absent = _missing_body(world.alpha, url.format("nothing-here"), "nothing-here", method)
        assert theirs == absent, url
        assert theirs["error"]["code"] == "collection_not_found"
    r = world.alpha.retrieve("seaweed farm", "private")
    assert r.status_code == 404 and r.json()["error"]["code"] == "collection_not_found"
    assert r.json()["error"]["message"] == "collection 'private' does not exist"
    assert sources(world.beta, "private") == set(BETA_PRIVATE)  # nothing was deleted


def test_another_tenants_document_id_is_404_and_cannot_be_deleted(world: World) -> None:
    beta_doc = world.ids["beta"]["notes.txt"]
    url = f"/v1/collections/docs/documents/{beta_doc}"
    theirs = _missing_body(world.alpha, url, beta_doc)
    absent = _missing_body(world.alpha, "/v1/collections/docs/documents/" + "0" * 32, "0" * 32)
    assert theirs == absent and theirs["error"]["code"] == "document_not_found"
    assert _missing_body(world.alpha, url, beta_doc, "delete") == absent
    assert world.default.get(url).status_code == 404
    # Beta still has it, in SQL and in both indexes.
    assert world.beta.get(url).json()["source"] == "notes.txt"
    for method in ("bm25", "dense"):
        chunks = world.beta.retrieve("Utsira purple", "docs", method=method).json()["chunks"]
        assert chunks and chunks[0]["document_id"] == beta_doc, method


def test_a_chunk_by_id_is_the_callers_only(world: World) -> None:
    (chunk,) = world.beta.retrieve("Utsira purple", "docs", top_k=1).json()["chunks"]
    url = f"/v1/chunks/{chunk['chunk_id']}"
    r = world.beta.get(url)
    assert r.status_code == 200, r.text
    assert r.json() == {
        "chunk_id": chunk["chunk_id"],
        "document_id": world.ids["beta"]["notes.txt"],
        "source": "notes.txt",
        "page": None,
        "heading_path": chunk["heading_path"],
        "text": chunk["text"],
        "collection": "docs",
    }
    theirs = _missing_body(world.alpha, url, chunk["chunk_id"])
    assert theirs == _missing_body(world.alpha, "/v1/chunks/" + "0" * 32, "0" * 32)
    assert theirs["error"]["code"] == "chunk_not_found"
    assert world.default.get(url).status_code == 404


def test_upload_into_a_name_another_tenant_uses_creates_the_callers_own(world: World) -> None:
    r = world.alpha.upload("private", {"mine.txt": "Alpha's private notes on tide tables."})
    assert r.status_code == 200 and r.json()["results"][0]["status"] == "ingested", r.text
    assert sources(world.alpha, "private") == {"mine.txt"}
    assert sources(world.beta, "private") == set(BETA_PRIVATE)
    chunks = world.alpha.retrieve("seaweed farm fjord", "private", top_k=10).json()["chunks"]
    assert all("seaweed" not in c["text"] for c in chunks)
    # Deleting its own "private" leaves beta's whole.
    assert world.alpha.delete("/v1/collections/private").status_code == 204
    assert "private" not in names(world.alpha)
    assert sources(world.beta, "private") == set(BETA_PRIVATE)
    chunks = world.beta.retrieve("seaweed farm fjord", "private", method="dense").json()["chunks"]
    assert chunks and "seaweed" in chunks[0]["text"]


def test_unchanged_upload_is_per_tenant(world: World) -> None:
    r = world.beta.upload("docs", {"notes.txt": ALPHA_DOCS["notes.txt"]})
    res = r.json()["results"][0]
    # Alpha's text under beta's notes.txt: beta's document is replaced, alpha's untouched.
    assert res["status"] == "replaced" and res["document_id"] == world.ids["beta"]["notes.txt"]
    r = world.beta.upload("docs", {"notes.txt": BETA_DOCS["notes.txt"]})
    assert r.json()["results"][0]["status"] == "replaced"
    r = world.alpha.upload("docs", {"notes.txt": ALPHA_DOCS["notes.txt"]})
    assert r.json()["results"][0]["status"] == "unchanged"


@pytest.mark.slow
def test_questions_use_only_the_callers_documents(world: World) -> None:
    """Through the real GGUF model: /v1/query and /v1/query/stream."""
    question = {
        "question": "What colour is the lighthouse painted?",
        "collection": "docs",
        "sampling": {"max_tokens": 24},
    }
    for who, tc in (("alpha", world.alpha), ("beta", world.beta), ("default", world.default)):
        r = tc.post("/v1/query", json=question)
        assert r.status_code == 200, r.text
        a = r.json()
        own = set(world.ids[who].values())
        assert a["retrieved"] and {c["document_id"] for c in a["retrieved"]} <= own, who
        assert {c["document_id"] for c in a["citations"]} <= own, who
        with tc.client.stream("POST", "/v1/query/stream", json=question, headers=tc.headers) as s:
            assert s.status_code == 200
            body = "".join(s.iter_text())
        for other in ("alpha", "beta", "default"):
            if other != who:
                assert world.ids[other]["notes.txt"] not in body, (who, other)
    for url in ("/v1/query", "/v1/query/stream"):
        body = {"question": "What will beta farm?", "collection": "private"}
        r = world.alpha.post(url, json=body)
        assert r.status_code == 404, r.text
        assert r.json()["error"] == {
            "code": "collection_not_found",
            "message": "collection 'private' does not exist",
        }


@pytest.mark.parametrize("bad", ["a%00b", "docs%0A", "%20", "x" * 10_000, ".hidden", "my%20docs"])
def test_bad_collection_names_are_refused_naming_the_rule(world: World, bad: str) -> None:
    for r in (
        world.alpha.upload(bad, {"a.txt": "Some text about tides."}),
        world.alpha.get(f"/v1/collections/{bad}/documents"),
        world.alpha.delete(f"/v1/collections/{bad}"),
    ):
        assert r.status_code == 422, (bad[:20], r.status_code, r.text[:200])
        assert "invalid collection name" in r.json()["error"]["message"]
        assert "1 to 128 letters" in r.json()["error"]["message"]
    name = bad.replace("%00", "\x00").replace("%0A", "\n").replace("%20", " ")
    r = world.alpha.retrieve("tides", name)
    assert r.status_code == 422 and "invalid collection name" in r.json()["error"]["message"]
    assert all(len(n) <= 128 and n.strip() == n for n in names(world.alpha))


def test_uploaded_file_names_are_cleaned(world: World) -> None:
    files = [
        ("../../etc/notes.txt", b"Tide tables for the northern harbour."),
        ("rtl\u202etxt.exe", b"An executable posing as text."),
        ("\u200b\u202e", b"A name with nothing visible."),
    ]
    r = world.alpha.post(
        "/v1/collections/names/documents?wait=true",
        files=[("files", (n, data, "text/plain")) for n, data in files],
    )
    assert r.status_code == 200, r.text
    results = r.json()["results"]
    by_source = {o["source"]: o for o in results}
    assert by_source["notes.txt"]["status"] == "ingested"  # path parts dropped
    # The bidi override is gone: the name shows as what it is, and an .exe is no text file
    # (text under an unknown extension is refused unless ingest.unknown_as_text).
    assert "rtltxt.exe" in by_source and all("\u202e" not in o["source"] for o in results)
    assert by_source["rtltxt.exe"]["error_code"] == "unsupported_format"
    unusable = [o for o in results if o["error"] and "is unusable" in o["error"]]
    assert len(unusable) == 1 and unusable[0]["status"] == "failed"
    assert sources(world.alpha, "names") == {"notes.txt"}
