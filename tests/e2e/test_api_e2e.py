"""The platform end to end through the REST API: real embedding model, real GGUF model,
real FAISS and BM25 files, a real SQLite file in a temp dir."""

from __future__ import annotations

import shutil

import pytest
from fastapi.testclient import TestClient

from api.app import create_app
from core.settings import Settings
from tests.e2e.conftest import make_docx, make_pdf

pytestmark = pytest.mark.slow

COL = "e2e"

FILES = {
    "notes.txt": (
        "Field notes from the northern survey.\n\n"
        "The lighthouse on Skarvøy island was painted red in 1931 by the keeper Anders Holm. "
        "It guided fishing boats through the narrow strait for sixty years.\n",
        "text/plain",
    ),
    "recipes.md": (
        "# Kitchen handbook\n\n## Bread\n\n"
        "The sourdough starter must be fed with rye flour every twelve hours. "
        "A healthy starter doubles in volume within six hours at room temperature.\n",
        "text/markdown",
    ),
    "planets.html": (
        "<html><head><title>Planets</title><script>var secret = 'do not index';</script>"
        "</head><body><h1>Outer planets</h1><p>Neptune takes about 165 Earth years to orbit "
        "the Sun. Its largest moon is Triton, which orbits in the opposite direction.</p>"
        "</body></html>",
        "text/html",
    ),
}
PDF_PAGES = [
    "Annual report of the Glassworks Cooperative.",
    "The furnace at the Glassworks Cooperative melts sand at 1500 degrees Celsius and "
    "was rebuilt in 2004 after a flood damaged the foundations.",
]
DOCX = (
    "Volunteer guide",
    [
        "Volunteers at the city library sort returned books every Saturday morning.",
        "The library's rare map collection is kept in a climate-controlled vault on "
        "the third floor.",
    ],
)


def upload(client: TestClient, files: list[tuple[str, bytes, str]], collection: str = COL):
    return client.post(
        f"/v1/collections/{collection}/documents?wait=true",
        files=[("files", (name, data, mime)) for name, data, mime in files],
    )


def ask(client: TestClient, question: str, collection: str = COL, **kw):
    return client.post("/v1/query", json={"question": question, "collection": collection, **kw})


@pytest.fixture(scope="module")
def loaded(client: TestClient) -> dict[str, str]:
    files = [(n, t.encode(), m) for n, (t, m) in FILES.items()]
    files.append(("report.pdf", make_pdf(PDF_PAGES), "application/pdf"))
    files.append(
        (
            "guide.docx",
            make_docx(*DOCX),
            "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
        )
    )
    r = upload(client, files)
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["ingested"] == 5, body
    assert all(o["chunks"] >= 1 for o in body["results"])
    return {o["source"]: o["document_id"] for o in body["results"]}


@pytest.mark.parametrize(
    ("question", "source"),
    [
        ("What colour was the lighthouse on Skarvøy painted?", "notes.txt"),
        ("How often must the sourdough starter be fed?", "recipes.md"),
        ("What is the largest moon of Neptune?", "planets.html"),
        ("At what temperature does the Glassworks furnace melt sand?", "report.pdf"),
        ("Where is the library's rare map collection kept?", "guide.docx"),
    ],
)
def test_question_is_answered_with_the_right_source(
    client: TestClient, loaded: dict[str, str], question: str, source: str
) -> None:
    r = ask(client, question)
    assert r.status_code == 200, r.text
    a = r.json()
    assert a["answer"].strip()
    cited = {c["source"] for c in a["citations"]}
    assert source in cited, (a["answer"], a["citations"])
    for c in a["citations"]:
        assert c["document_id"] == loaded[c["source"]]
        assert c["snippet"]
    assert a["model"]["sha256"] and len(a["model"]["sha256"]) == 64
    assert set(a["timings_ms"]) == {"retrieve", "generate", "total"}
    assert a["usage"]["prompt_tokens"] > 0
    assert a["retrieved"] and {"chunk_id", "score", "bm25_rank", "dense_rank"} <= set(
        a["retrieved"][0]
    )


def test_pdf_citation_carries_its_page(client: TestClient, loaded: dict[str, str]) -> None:
    r = client.post(
        "/v1/retrieve",
        json={"query": "Glassworks furnace rebuilt after a flood", "collection": COL, "top_k": 3},
    )
    assert r.status_code == 200
    top = r.json()["chunks"][0]
    assert top["source"] == "report.pdf" and top["page"] == 2


def test_html_scripts_are_not_indexed(client: TestClient, loaded: dict[str, str]) -> None:
    r = client.post(
        "/v1/retrieve", json={"query": "secret do not index", "collection": COL, "top_k": 5}
    )
    assert all("do not index" not in c["text"] for c in r.json()["chunks"])


def test_temperature_zero_is_deterministic(client: TestClient, loaded: dict[str, str]) -> None:
    q = "What is the largest moon of Neptune?"
    answers = {ask(client, q).json()["answer"] for _ in range(3)}
    assert len(answers) == 1


def test_reingest_unchanged_replace_and_delete(client: TestClient, loaded: dict[str, str]) -> None:
    text, mime = FILES["notes.txt"]
    r = upload(client, [("notes.txt", text.encode(), mime)])
    assert r.json()["results"][0]["status"] == "unchanged"

    new = "The lighthouse on Skarvøy island was repainted white in 1975 by the coast guard.\n"
    r = upload(client, [("notes.txt", new.encode(), mime)])
    res = r.json()["results"][0]
    assert res["status"] == "replaced" and res["document_id"] == loaded["notes.txt"]
    docs = client.get(f"/v1/collections/{COL}/documents").json()["data"]
    assert next(d for d in docs if d["source"] == "notes.txt")["version"] == 2
    for method in ("bm25", "dense", "hybrid"):
        chunks = client.post(
            "/v1/retrieve",
            json={"query": "painted red 1931 Anders Holm", "collection": COL, "method": method,
                  "top_k": 10},
        ).json()["chunks"]
        assert all("Anders Holm" not in c["text"] for c in chunks), method

    doc_id = loaded["recipes.md"]
    assert client.delete(f"/v1/collections/{COL}/documents/{doc_id}").status_code == 204
    for method in ("bm25", "dense", "hybrid"):
        chunks = client.post(
            "/v1/retrieve",
            json={"query": "sourdough starter rye flour", "collection": COL, "method": method,
                  "top_k": 10},
        ).json()["chunks"]
        assert all(c["document_id"] != doc_id for c in chunks), method
    assert client.delete(f"/v1/collections/{COL}/documents/{doc_id}").status_code == 404


def test_bad_inputs_get_clear_errors(client: TestClient, loaded: dict[str, str]) -> None:
    # unsupported type alone -> 415
    r = upload(client, [("tool.exe", b"MZ\x90\x00\x03\x00\x00\x00" + bytes(range(256)), "x")])
    assert r.status_code == 415, r.text
    assert "tool.exe" in r.json()["error"]["message"]
    # over the size limit alone -> 413
    r = upload(client, [("big.txt", b"word " * 50_000, "text/plain")])
    assert r.status_code == 413, r.text
    # a mixed upload ingests the good file and reports each bad one
    good = b"The observatory on Mount Kell opened to the public in 1962."
    r = upload(
        client,
        [
            ("good.txt", good, "text/plain"),
            ("empty.txt", b"   \n", "text/plain"),
            ("broken.pdf", b"%PDF-1.4\n1 0 obj <<", "application/pdf"),
            ("tool.exe", b"MZ\x90\x00" + bytes(range(256)), "application/octet-stream"),
        ],
    )
    assert r.status_code == 200, r.text
    by = {o["source"]: o for o in r.json()["results"]}
    assert by["good.txt"]["status"] == "ingested"
    assert by["empty.txt"]["status"] == "failed"
    assert by["empty.txt"]["error_code"] == "empty_document"
    assert by["broken.pdf"]["error_code"] == "corrupt_document"
    assert by["tool.exe"]["error_code"] == "unsupported_format"
    # encrypted PDF
    import io

    from pypdf import PdfReader, PdfWriter

    w = PdfWriter()
    for page in PdfReader(io.BytesIO(make_pdf(["Top secret plans."]))).pages:
        w.add_page(page)
    w.encrypt("hunter2")
    buf = io.BytesIO()
    w.write(buf)
    r = upload(client, [("locked.pdf", buf.getvalue(), "application/pdf")])
    assert r.status_code == 422 and r.json()["report"]["results"][0]["error_code"] == (
        "encrypted_document"
    )
    # questions: unknown collection, empty collection, empty question
    r = ask(client, "anything?", collection="no-such-collection")
    assert r.status_code == 404 and "no-such-collection" in r.json()["error"]["message"]
    r = upload(client, [("e.txt", b"", "text/plain")], collection="empty-col")
    assert r.status_code == 422
    r = ask(client, "anything?", collection="empty-col")
    assert r.status_code in (404, 409), r.text
    r = ask(client, "   ")
    assert r.status_code == 422


def test_index_repair_after_index_files_are_deleted(
    e2e_settings: Settings, loaded: dict[str, str]
) -> None:
    settings = e2e_settings.model_copy(update={"data_dir": e2e_settings.data_dir})
    shutil.rmtree(settings.index_dir)
    with TestClient(create_app(settings)) as c:
        for method in ("bm25", "dense"):
            chunks = c.post(
                "/v1/retrieve",
                json={"query": "Neptune Triton moon", "collection": COL, "method": method},
            ).json()["chunks"]
            assert chunks and chunks[0]["source"] == "planets.html", method


def test_ops_endpoints(client: TestClient) -> None:
    assert client.get("/healthz").json()["status"] == "ok"
    assert client.get("/openapi.json").status_code == 200
    assert "rag-platform" in client.get("/").text
    assert client.get("/v1/collections").json()["count"] >= 1
