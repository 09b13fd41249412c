"""Limits that hold (issue 11) on a fixed set of generation threads (issue 14): requests
per minute per key (429 rate_limited), concurrent generations per key (429
too_many_generations), a bounded generation queue (503 overloaded), each with Retry-After;
the health routes never limited.

The queue itself is driven with blocking callables (the real model answers too fast to
hold a worker); the API checks run the real app, and the slow ones the real models."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

import numpy as np
import pytest
from fastapi.testclient import TestClient

from api.app import create_app
from api.limits import RateLimiter
from api.platform import built_once
from core.errors import Overloaded, RateLimited, TooManyGenerations
from core.settings import LimitsSettings, Settings
from generation.queue import GenerationQueue, ThreadBoundEmbedder, generating_for
from tests.api.conftest import TenantClient, api_settings, bearer

# -- the generation queue ------------------------------------------------------------------


class Held:
    """Jobs that run until released, started on threads of their own."""

    def __init__(self, queue: GenerationQueue) -> None:
        self.queue = queue
        self.release = threading.Event()
        self.threads: list[threading.Thread] = []
        self.errors: list[BaseException] = []

    def job(self) -> str:
        assert self.release.wait(10)
        return threading.current_thread().name

    def start(self, key: str | None = None) -> None:
        def call() -> None:
            try:
                with generating_for(key):
                    self.queue.run(self.job)
            except BaseException as e:  # noqa: BLE001 - checked by the test
                self.errors.append(e)

        t = threading.Thread(target=call)
        t.start()
        self.threads.append(t)

    def wait_until(self, check: Callable[[], bool]) -> None:
        deadline = time.monotonic() + 5
        while not check():
            assert time.monotonic() < deadline, "the queue never got there"
            time.sleep(0.01)

    def finish(self) -> None:
        self.release.set()
        for t in self.threads:
            t.join(10)


@pytest.fixture
def held() -> Iterator[Callable[[GenerationQueue], Held]]:
    made: list[Held] = []

    def make(queue: GenerationQueue) -> Held:
        made.append(Held(queue))
        return made[-1]

    yield make
    for h in made:
        h.finish()
        h.queue.close()


def test_generations_run_on_the_worker_threads_only() -> None:
    queue = GenerationQueue(workers=1, max_waiting=4)
    caller = threading.current_thread().name
    names = {queue.run(lambda: threading.current_thread().name) for _ in range(5)}
    assert names == {"rag-generate_0"} and caller not in names
    queue.close()


def test_a_full_queue_refuses_at_once_with_retry_after(held) -> None:
    rejected: list[str] = []
    queue = GenerationQueue(workers=1, max_waiting=1, on_reject=rejected.append)
    h = held(queue)
    h.start()  # runs
    h.wait_until(lambda: queue.running == 1)
    h.start()  # waits
    h.wait_until(lambda: queue.waiting == 1)
    t = time.monotonic()
    with pytest.raises(Overloaded) as e:
        queue.run(lambda: "never")
    assert time.monotonic() - t < 1 and e.value.retry_after >= 1
    assert e.value.http_status == 503 and rejected == ["overloaded"]
    h.finish()
    assert not h.errors and queue.waiting == queue.running == 0
    assert queue.run(lambda: "again") == "again"  # room again


def test_a_generation_that_would_wait_too_long_is_refused_at_once(held) -> None:
    queue = GenerationQueue(workers=1, max_waiting=8, wait_s=1.0)  # one takes ~2 s at first
    h = held(queue)
    h.start()
    h.wait_until(lambda: queue.running == 1)
    t = time.monotonic()
    with pytest.raises(Overloaded, match="queue_wait_s") as e:
        queue.run(lambda: "never")
    assert time.monotonic() - t < 0.5 and e.value.retry_after >= 2
    assert queue.waiting == 0


def test_a_generation_slower_than_the_average_counts_in_the_estimate(held) -> None:
    queue = GenerationQueue(workers=1, max_waiting=8, wait_s=0.5)
    for _ in range(30):  # the average learnt: fast
        queue.run(lambda: None)
    h = held(queue)
    h.start()
    h.wait_until(lambda: queue.running == 1)
    time.sleep(0.6)  # the running one has already taken longer than a caller may wait
    t = time.monotonic()
    with pytest.raises(Overloaded, match="would be free in about"):
        queue.run(lambda: "never")
    assert time.monotonic() - t < 0.3


def test_a_generation_that_waited_too_long_for_a_worker_is_refused(held) -> None:
    queue = GenerationQueue(workers=1, max_waiting=8, wait_s=0.3)
    for _ in range(30):  # fast generations: the expected wait is short, so it is admitted
        queue.run(lambda: None)
    h = held(queue)
    h.start()
    h.wait_until(lambda: queue.running == 1)
    t = time.monotonic()
    with pytest.raises(Overloaded, match="no generation worker was free within 0.3 s"):
        queue.run(lambda: "never")
    assert time.monotonic() - t >= 0.3
    assert queue.waiting == 0  # its place given back


def test_one_key_has_at_most_per_key_generations(held) -> None:
    queue = GenerationQueue(workers=2, max_waiting=8, per_key=1)
    h = held(queue)
    h.start("key:a")
    h.wait_until(lambda: queue.running == 1)
    with generating_for("key:a"), pytest.raises(TooManyGenerations) as e:
        queue.run(lambda: "never")
    assert e.value.http_status == 429 and e.value.retry_after >= 1
    with generating_for("key:b"):
        assert queue.run(lambda: "b") == "b"  # another key is not held up
    h.finish()
    with generating_for("key:a"):
        assert queue.run(lambda: "a") == "a"  # its generation ended: allowed again


def test_a_stream_is_produced_on_a_worker_and_errors_reach_the_reader() -> None:
    queue = GenerationQueue(workers=1)

    def pieces() -> Iterator[str]:
        yield threading.current_thread().name
        yield "b"
        raise ValueError("model broke")

    got: list[str] = []
    with pytest.raises(ValueError, match="model broke"):
        for piece in queue.stream(pieces):
            got.append(piece)
    assert got == ["rag-generate_0", "b"]
    # a reader that stops early frees the worker
    endless = queue.stream(lambda: iter(lambda: "x", None))
    assert next(endless) == "x"
    endless.close()  # type: ignore[attr-defined]
    deadline = time.monotonic() + 5
    while queue.running and time.monotonic() < deadline:
        time.sleep(0.01)
    assert queue.running == 0
    queue.close()


def test_question_embeddings_run_on_a_thread_of_their_own() -> None:
    class Names:
        def embed(self, texts: Sequence[str]) -> np.ndarray:
            return np.array([[len(threading.current_thread().name)]] * len(texts))

    embedder = ThreadBoundEmbedder(Names())
    got = embedder.embed(["a", "b"])
    assert got.shape == (2, 1) and got[0, 0] == len("rag-embed_0")
    embedder.close()


class Stages:
    """Two stages built on first use, one from the other, like Platform.query and
    Platform.retriever (each build also takes the platform's lock)."""

    def __init__(self) -> None:
        self._lock = threading.RLock()
        self.builds: list[str] = []

    @built_once
    def retriever(self) -> object:
        time.sleep(0.05)  # another thread takes the lock meanwhile
        with self._lock:
            self.builds.append("retriever")
            return object()

    @built_once
    def query(self) -> tuple[object]:
        with self._lock:
            time.sleep(0.05)
            self.builds.append("query")
            return (self.retriever,)


def test_concurrent_first_requests_build_each_stage_once_without_deadlock() -> None:
    """Under functools.cached_property this deadlocked every request thread of a cold
    server (the 32-client load test hung at its first questions)."""
    stages = Stages()
    threads = [
        threading.Thread(target=lambda n=n: stages.query if n % 2 else stages.retriever)
        for n in range(8)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join(5)
    assert not any(t.is_alive() for t in threads), "deadlocked"
    assert sorted(stages.builds) == ["query", "retriever"]
    assert stages.query[0] is stages.retriever


def test_the_rate_limiter_refills_over_a_minute() -> None:
    limiter = RateLimiter(per_minute=3)
    assert [limiter.take("k", now=0.0) for _ in range(3)] == [(3, 2), (3, 1), (3, 0)]
    with pytest.raises(RateLimited) as e:
        limiter.take("k", now=1.0)
    assert e.value.retry_after == 19  # one request per 20 s, 1 s of it gone
    assert limiter.take("other", now=1.0) == (3, 2)
    assert limiter.take("k", now=21.0) == (3, 0)
    assert RateLimiter(per_minute=0).take("k") == (0, 0)  # off


# -- through the app -----------------------------------------------------------------------


def limited(data_dir: Path, **limits: float) -> Settings:
    return api_settings(data_dir).model_copy(update={"limits": LimitsSettings(**limits)})


def test_requests_per_minute_answer_429_with_retry_after(tmp_path: Path, make_key) -> None:
    client = TestClient(create_app(limited(tmp_path / "data", requests_per_minute=3)))
    for remaining in (2, 1, 0):
        r = client.get("/v1/collections")
        assert r.status_code == 200
        assert r.headers["X-RateLimit-Limit"] == "3"
        assert r.headers["X-RateLimit-Remaining"] == str(remaining)
    r = client.get("/v1/collections")
    assert r.status_code == 429 and r.json()["error"]["code"] == "rate_limited"
    assert 1 <= int(r.headers["Retry-After"]) <= 20
    # another key has its own minute; the health and page routes are never limited
    other = TenantClient(client, make_key(client, "acme"))
    assert other.get("/v1/collections").status_code == 200
    for _ in range(5):
        for path in ("/healthz", "/metrics", "/"):
            assert client.get(path).status_code == 200, path
    assert 'rag_limit_rejections_total{code="rate_limited"} 1.0' in client.get("/metrics").text


@pytest.fixture
def full_app(tmp_path: Path) -> Iterator[tuple[TestClient, Held]]:
    """The real app with a collection, one generation worker held busy and no queue."""
    settings = limited(tmp_path / "data", generation_queue=0, concurrent_generations=1)
    with TestClient(create_app(settings)) as client:
        docs = {"fusion.txt": "Reciprocal rank fusion adds one over sixty plus the rank."}
        assert TenantClient(client, None).upload("docs", docs).status_code == 200
        platform = client.app.state.platform  # type: ignore[attr-defined]
        h = Held(platform.llm.queue)
        yield client, h
        h.finish()


QUESTION = {"question": "What does reciprocal rank fusion add?", "collection": "docs"}


@pytest.mark.slow
def test_a_full_generation_queue_answers_503_with_retry_after(full_app, make_key) -> None:
    client, h = full_app
    h.start("someone else")
    h.wait_until(lambda: h.queue.running == 1)
    key = make_key(client, "default")
    r = client.post("/v1/query", json=QUESTION, headers=bearer(key))
    assert r.status_code == 503 and r.json()["error"]["code"] == "overloaded"
    assert int(r.headers["Retry-After"]) >= 1
    r = client.post("/v1/query/stream", json=QUESTION, headers=bearer(key))
    assert r.status_code == 503  # refused before it streams (and before its retrieval)
    h.finish()
    r = client.post("/v1/query", json=QUESTION, headers=bearer(key))
    assert r.status_code == 200, r.text  # the real model answers once the worker is free


@pytest.mark.slow
def test_a_key_over_its_concurrent_generations_gets_429(full_app) -> None:
    client, h = full_app
    h.start("tenant:default")  # the key-less caller's generation, still running
    h.wait_until(lambda: h.queue.running == 1)
    r = client.post("/v1/query", json=QUESTION)
    assert r.status_code == 429 and r.json()["error"]["code"] == "too_many_generations"
    assert int(r.headers["Retry-After"]) >= 1
    assert client.get("/healthz").status_code == 200  # health answers meanwhile


@pytest.mark.slow
def test_an_upload_over_the_limit_is_refused_unread(tmp_path: Path) -> None:
    """Spooled to disk one byte past ingest.max_file_bytes (200 kB here), then refused
    by its size alone: the job never reads it into memory."""
    with TestClient(create_app(api_settings(tmp_path / "data"))) as client:
        r = TenantClient(client, None).upload("docs", {"big.txt": "word " * 50_000})
    assert r.status_code == 413, r.text
    error = r.json()["error"]
    assert error["code"] == "document_too_large"
    assert "over the limit of 200,000 bytes" in error["message"], error
