"""``/readyz``: whether this process can answer questions now, without loading anything.

``/healthz`` says the process is up; ``/readyz`` says a load balancer may send it
queries: the database answers, the start-up index repair ran and the indexes in memory
are intact, both models are loaded, the LLM backend is reachable, and the background
threads (the ingestion jobs worker, the eval-run thread, once started) are alive. A
check that fails names what is not ready.

Models load in ``Platform.warm_up`` (``rag serve`` runs it at start-up). When they are
not loaded yet the first ``/readyz`` starts that warm-up on a thread of its own and
answers at once ("loading"); it never waits for it.
"""

from __future__ import annotations

import threading
from typing import Any

import httpx

from api.lifecycle import Lifecycle
from api.platform import Platform
from core import repository


class Readiness:
    """The checks behind ``/readyz``; each returns ``(ok, detail)`` and is fast."""

    def __init__(
        self,
        platform: Platform,
        lifecycle: Lifecycle | None = None,
        *,
        backend_timeout_s: float = 1.0,
    ) -> None:
        self.platform = platform
        self.lifecycle = lifecycle
        self.backend_timeout_s = backend_timeout_s
        self._lock = threading.Lock()
        self._warming: threading.Thread | None = None
        self._warm_error: str | None = None

    def check(self) -> tuple[bool, dict[str, dict[str, Any]]]:
        """(all ready, {check: {"ok": bool, "detail": str}})."""
        checks: dict[str, dict[str, Any]] = {}
        for name, fn in (
            ("serving", self._serving),
            ("database", self._database),
            ("indexes", self._indexes),
            ("models", self._models),
            ("llm_backend", self._llm_backend),
            ("background_worker", self._background),
            ("generation_queue", self._generation_queue),
        ):
            try:
                ok, detail = fn()
            except Exception as e:  # a check that breaks is a check that fails
                ok, detail = False, f"{type(e).__name__}: {e}"
            checks[name] = {"ok": ok, "detail": detail}
        return all(c["ok"] for c in checks.values()), checks

    # -- the checks ----------------------------------------------------------------------

    def _serving(self) -> tuple[bool, str]:
        if self.lifecycle is not None and self.lifecycle.draining:
            return False, f"draining: shutting down, {self.lifecycle.in_flight} request(s) running"
        return True, "accepting requests"

    def _database(self) -> tuple[bool, str]:
        repository.ping(self.platform.engine)
        return True, self.platform.engine.dialect.name

    def _indexes(self) -> tuple[bool, str]:
        p = self.platform
        if not p.started:
            return False, "the start-up repair of the indexes against SQL has not run"
        if "store" not in p.__dict__:
            return True, "repaired at start-up; none loaded"
        bad = []
        loaded = p.store.loaded_state()
        for cid, st in loaded.items():
            if st["broken"]:
                bad.append(f"collection {cid}: {'/'.join(st['broken'])} index needs a rebuild")
            elif not st["busy"] and st["sparse"] != st["dense"]:
                bad.append(
                    f"collection {cid}: BM25 holds {st['sparse']} chunks, FAISS {st['dense']}"
                )
        if bad:
            return False, "; ".join(bad)
        return True, f"repaired at start-up; {len(loaded)} loaded, consistent"

    def _models(self) -> tuple[bool, str]:
        p = self.platform
        if p.models_loaded.is_set():
            return True, "embedder and LLM loaded"
        with self._lock:
            if self._warm_error is not None:
                return False, f"loading the models failed: {self._warm_error}"
            if self._warming is None:
                self._warming = threading.Thread(
                    target=self._warm_up, name="rag-readyz-warm-up", daemon=True
                )
                self._warming.start()
        return False, "loading the embedding model and the LLM"

    def _warm_up(self) -> None:
        try:
            self.platform.warm_up()
        except Exception as e:
            with self._lock:
                self._warm_error = f"{type(e).__name__}: {e}"

    def _llm_backend(self) -> tuple[bool, str]:
        llm = self.platform.settings.llm
        if llm.backend != "openai":
            loaded = self.platform.models_loaded.is_set()
            return loaded, "in process (llama.cpp)" + ("" if loaded else ", not loaded yet")
        base = llm.openai_base_url.rstrip("/")
        try:
            resp = httpx.get(
                f"{base}/models",
                headers={"Authorization": f"Bearer {llm.openai_api_key}"},
                timeout=self.backend_timeout_s,
            )
        except httpx.HTTPError as e:
            return False, f"{base} unreachable: {type(e).__name__}: {e}"
        if resp.status_code >= 500 or resp.status_code in (401, 403):
            return False, f"{base}/models answered {resp.status_code}"
        return True, f"{base} reachable ({resp.status_code})"

    def _generation_queue(self) -> tuple[bool, str]:
        """The queue's depth; not ready while it is full (new questions would get 503)."""
        if "llm" not in self.platform.__dict__:
            return True, "no generation yet"
        q = self.platform.llm.queue
        full = q.max_waiting > 0 and q.waiting >= q.max_waiting
        detail = f"{q.running} running, {q.waiting} waiting of {q.max_waiting}"
        detail += f" on {q.workers} worker(s)"
        return not full, ("full: " if full else "") + detail

    def _background(self) -> tuple[bool, str]:
        workers = self.platform.workers()
        if not workers:
            return True, "none started"
        stopped = [name for name, alive in workers.items() if not alive]
        if stopped:
            return False, "stopped: " + ", ".join(stopped)
        return True, "alive: " + ", ".join(workers)
