"""Generation on a fixed, small set of worker threads behind a bounded queue.

Every LLM call runs on one of ``workers`` threads, never on the request thread that
asked for it: llama.cpp's buffers stay in those threads' allocator arenas (one 64 MiB
glibc arena per thread that ever generated grew the server by 1.2 GiB), and a burst of
questions waits in a queue of known length instead of piling onto the request threads.
Over capacity a call is refused at once with a typed error carrying ``retry_after``:
``TooManyGenerations`` when the caller already has ``per_key`` generations in flight,
``Overloaded`` when the queue is full, when the generations ahead of it would likely
take longer than ``wait_s`` (from the moving average of one generation's seconds), or
when it did wait ``wait_s`` for a worker.

    queue = GenerationQueue(workers=1, max_waiting=16, wait_s=60, per_key=2)
    llm = QueuedLLM(build_llm(settings.llm, models_dir), queue)
    with generating_for("key:abc"):      # the API sets this per request (api.limits)
        llm.complete("Question: …", params)
"""

from __future__ import annotations

import math
import queue
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager
from contextvars import ContextVar
from typing import TypeVar

import numpy as np

from core.errors import Overloaded, TooManyGenerations
from core.types import Completion, ModelInfo, Prompt, PromptStyle, SamplingParams
from generation.ports import LLM, SentenceEmbedder

T = TypeVar("T")

# Who the current generation is for (an API key's id, or the tenant when no key was
# sent); None: not limited per caller (CLI, evals).
_caller: ContextVar[str | None] = ContextVar("rag_generation_caller", default=None)


def set_caller(key: str | None) -> None:
    """Name the caller the generations of the current request (context) count against."""
    _caller.set(key)


@contextmanager
def generating_for(key: str | None) -> Iterator[None]:
    """Count the generations inside the block against ``key``."""
    token = _caller.set(key)
    try:
        yield
    finally:
        _caller.reset(token)


class GenerationQueue:
    """Runs callables on ``workers`` threads; at most ``max_waiting`` wait for one, and
    one caller has at most ``per_key`` (0: any number) running or waiting. ``on_reject``
    is told the error code of every refusal (a metrics counter)."""

    def __init__(
        self,
        workers: int = 1,
        max_waiting: int = 16,
        wait_s: float = 60.0,
        per_key: int = 2,
        *,
        on_reject: Callable[[str], None] | None = None,
    ) -> None:
        self.workers = workers
        self.max_waiting = max_waiting
        self.wait_s = wait_s
        self.per_key = per_key
        self._on_reject = on_reject or (lambda _code: None)
        self._lock = threading.Lock()
        self._pool: ThreadPoolExecutor | None = None
        self._waiting = 0
        self._running = 0
        self._in_flight: Counter[str] = Counter()
        self._mean_s = 2.0  # moving average of one generation's seconds (Retry-After)
        self._starts: dict[int, float] = {}  # running generation -> its start

    # -- what /metrics and Retry-After read --------------------------------------------

    @property
    def waiting(self) -> int:
        """Generations admitted and not yet started."""
        return self._waiting

    @property
    def running(self) -> int:
        return self._running

    def _expected_wait(self, ahead: int) -> float:
        """Seconds until ``ahead`` generations in front have likely finished: each takes
        the moving average, or as long as the oldest running one has taken so far (a
        slower model than the average learnt)."""
        now = time.monotonic()
        running_s = max((now - t for t in self._starts.values()), default=0.0)
        return math.ceil(ahead / self.workers) * max(self._mean_s, running_s)

    def _retry_after(self, ahead: int) -> float:
        return max(1.0, self._expected_wait(ahead))

    # -- running -------------------------------------------------------------------------

    def run(self, fn: Callable[[], T]) -> T:
        """``fn()`` on a worker thread, for the current caller; its result or exception."""
        return self._submit(fn).result()

    def stream(self, fn: Callable[[], Iterator[T]]) -> Iterator[T]:
        """The items of ``fn()``'s iterator, produced on a worker thread and handed over
        as they come. Admission happens at the first ``next()``; closing the returned
        iterator early stops the producer at its next item."""
        items: queue.Queue[tuple[bool, T | BaseException | None]] = queue.Queue()
        stop = threading.Event()

        def produce() -> None:
            try:
                for item in fn():
                    items.put((False, item))
                    if stop.is_set():
                        return
            except BaseException as e:  # noqa: BLE001 - handed to the consumer, re-raised
                items.put((True, e))
                return
            items.put((True, None))

        self._submit(produce)
        try:
            while True:
                done, item = items.get()
                if done:
                    if isinstance(item, BaseException):
                        raise item
                    return
                yield item  # type: ignore[misc]
        finally:
            stop.set()

    def _submit(self, fn: Callable[[], T]) -> Future[T]:
        key = _caller.get()
        self._admit(key)
        started = threading.Event()

        def job() -> T:
            t = time.monotonic()
            with self._lock:
                self._waiting -= 1
                self._running += 1
                self._starts[id(started)] = t
            started.set()
            try:
                return fn()
            finally:
                self._finish(key, id(started), time.monotonic() - t)

        future = self._start(job)
        if not started.wait(self.wait_s) and future.cancel():
            with self._lock:
                self._waiting -= 1
                self._release(key)
            self._on_reject(Overloaded.code)
            raise Overloaded(
                f"no generation worker was free within {self.wait_s:g} s "
                "(limits.queue_wait_s); try again later",
                self._retry_after(self._waiting + self._running),
            )
        return future

    def check(self) -> None:
        """Raise now what a generation for the current caller would be refused with:
        routes that generate call it before their retrieval, so a refusal costs nothing."""
        with self._lock:
            refusal = self._refusal(_caller.get())
        if refusal is not None:
            self._on_reject(refusal.code)
            raise refusal

    def _admit(self, key: str | None) -> None:
        with self._lock:
            refusal = self._refusal(key)
            if refusal is None:
                self._waiting += 1
                if key is not None:
                    self._in_flight[key] += 1
        if refusal is not None:
            self._on_reject(refusal.code)
            raise refusal

    def _refusal(self, key: str | None) -> TooManyGenerations | Overloaded | None:
        """Why a generation for ``key`` cannot be queued now (None: it can). Lock held."""
        if self.per_key and key is not None and self._in_flight[key] >= self.per_key:
            return TooManyGenerations(
                f"this API key already has {self.per_key} answers being generated "
                "(limits.concurrent_generations); wait for one to finish",
                self._mean_s,
            )
        pending = self._waiting + self._running
        ahead = pending - self.workers + 1  # to finish before a worker is free (if > 0)
        if pending >= self.workers + self.max_waiting:
            return Overloaded(
                f"the generation queue is full ({self.max_waiting} waiting, "
                "limits.generation_queue); try again later",
                self._retry_after(ahead),
            )
        if ahead > 0 and self._expected_wait(ahead) > self.wait_s:
            # refused now rather than after waiting queue_wait_s for nothing
            return Overloaded(
                f"a generation worker would be free in about {self._expected_wait(ahead):.0f} "
                f"s, over limits.queue_wait_s ({self.wait_s:g} s); try again later",
                self._retry_after(ahead),
            )
        return None

    def _finish(self, key: str | None, job: int, seconds: float) -> None:
        with self._lock:
            self._running -= 1
            self._starts.pop(job, None)
            self._release(key)
            self._mean_s = 0.8 * self._mean_s + 0.2 * seconds

    def _release(self, key: str | None) -> None:
        """Called with the lock held."""
        if key is not None:
            self._in_flight[key] -= 1
            if self._in_flight[key] <= 0:
                del self._in_flight[key]

    def run_unlimited(self, fn: Callable[[], T]) -> T:
        """``fn()`` on a worker thread outside the limits (loading the model)."""
        return self._start(fn).result()

    def _start(self, fn: Callable[[], T]) -> Future[T]:
        with self._lock:
            if self._pool is None:
                self._pool = ThreadPoolExecutor(self.workers, thread_name_prefix="rag-generate")
            return self._pool.submit(fn)

    def close(self) -> None:
        """Finish the generations already submitted and stop the workers (a later call
        starts new ones)."""
        with self._lock:
            pool, self._pool = self._pool, None
        if pool is not None:
            pool.shutdown(wait=True)


class QueuedLLM:
    """An ``LLM`` whose generations (``complete``, ``chat``, ``stream``) run on a
    ``GenerationQueue``; token counting and the model's facts are answered in place."""

    def __init__(self, llm: LLM, generation_queue: GenerationQueue) -> None:
        self.inner = llm
        self.queue = generation_queue

    @property
    def info(self) -> ModelInfo:
        return self.inner.info

    @property
    def n_ctx(self) -> int:
        return self.inner.n_ctx

    @property
    def default_style(self) -> PromptStyle:
        return self.inner.default_style

    def count_tokens(self, text: str) -> int:
        return self.inner.count_tokens(text)

    def count_chat_tokens(self, messages: Sequence[tuple[str, str]]) -> int:
        return self.inner.count_chat_tokens(messages)

    def warm_up(self) -> None:
        self.queue.run_unlimited(self.inner.warm_up)

    def complete(self, prompt: str, params: SamplingParams) -> Completion:
        return self.queue.run(lambda: self.inner.complete(prompt, params))

    def chat(self, messages: Sequence[tuple[str, str]], params: SamplingParams) -> Completion:
        return self.queue.run(lambda: self.inner.chat(messages, params))

    def stream(self, prompt: Prompt, params: SamplingParams) -> Iterator[str]:
        return self.queue.stream(lambda: self.inner.stream(prompt, params))

    def close(self) -> None:
        self.queue.close()


class ThreadBoundEmbedder:
    """``embed`` on one thread of its own: the question's vector (retrieval, the content
    checks) and the answer's sentences (attribution) are computed there, not on whichever
    request thread asked, for the same reason generations run on the queue's workers.
    Ingestion keeps its own embedder (its batches would hold queries up)."""

    def __init__(self, embedder: SentenceEmbedder) -> None:
        self.inner = embedder
        self._lock = threading.Lock()
        self._pool: ThreadPoolExecutor | None = None

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        with self._lock:
            if self._pool is None:
                self._pool = ThreadPoolExecutor(1, thread_name_prefix="rag-embed")
            future = self._pool.submit(self.inner.embed, texts)
        return future.result()

    def close(self) -> None:
        with self._lock:
            pool, self._pool = self._pool, None
        if pool is not None:
            pool.shutdown(wait=True)
