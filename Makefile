# The two set-up commands (see README): `make serve` and `make test`.
# Both install everything into .venv first: torch pinned (CPU build) before the rest.
SHELL := /bin/bash
# pipefail: a benchmark piped into tee still fails its target
.SHELLFLAGS := -o pipefail -c
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-stamp
export HF_HUB_OFFLINE := 1
export TRANSFORMERS_OFFLINE := 1
export PYTHONUNBUFFERED := 1

# $(call apt_install,PROGRAM,PACKAGE,WHAT FAILS WITHOUT IT): apt-get install PACKAGE when
# PROGRAM is missing; a note instead of a failure where that is not possible.
define apt_install
@command -v $(1) >/dev/null 2>&1 || ! command -v apt-get >/dev/null 2>&1 || \
  { SUDO=$$([ "$$(id -u)" = 0 ] || echo "sudo -n"); \
    $$SUDO apt-get update -qq && \
    $$SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $(2); } || \
  echo "note: $(2) not installed; $(3)"
endef

.PHONY: install serve test lint bench eval-gate

$(STAMP): pyproject.toml
	test -x $(PY) || python3 -m venv $(VENV)
	@# OCR of scanned PDF pages needs the tesseract-ocr program; the web page's browser
	@# tests (tests/e2e/test_browser.py) drive Debian's chromium through Playwright (never
	@# `playwright install`). Each is installed with apt-get when missing (as root, or
	@# through password-less sudo); the install never fails on them.
	$(call apt_install,tesseract,tesseract-ocr,scanned PDF pages will fail until it is)
	$(call apt_install,chromium,chromium,the web page's browser tests will be skipped)
	$(PY) -m pip install --quiet torch==2.13.0
	$(PY) -m pip install --quiet -e ".[dev]"
	touch $(STAMP)

install: $(STAMP)

# Install, ingest the sample corpus (examples/), fit its answer-or-abstain model on labelled
# questions about it (evals/labelled/examples.jsonl) and serve the API + web page on
# 127.0.0.1:8000.
serve: install
	$(VENV)/bin/rag ingest examples/
	$(VENV)/bin/rag tune --abstention -c default --dataset evals/labelled/examples.jsonl
	$(VENV)/bin/rag serve

# Install and run the whole test suite (slow end-to-end tests included).
test: install
	$(VENV)/bin/ruff check core ingest retrieval generation api evals bench tests
	$(PY) -m mypy
	$(PY) -m pytest
	@# The same suite on a throwaway PostgreSQL server (tests/pg.py) where its binaries exist.
	@if $(PY) -c "import sys; from tests.pg import unavailable; sys.exit(bool(unavailable()))"; \
	  then $(PY) -m pytest --postgres -q; \
	  else echo "PostgreSQL pass skipped: $$($(PY) -c 'from tests.pg import unavailable; print(unavailable())')"; fi
	$(MAKE) --no-print-directory eval-gate

# The answers gate: the sample suite (evals/suites/examples.yaml) run on a fresh copy of the
# sample collection, as `make serve` builds it; fails when its pass rate drops under the bar.
# Reports land in build/eval/ (JUnit XML for CI, a self-contained HTML page).
EVAL_DATA := $(CURDIR)/build/eval/data
eval-gate: install
	rm -rf $(EVAL_DATA)
	RAG_DATA_DIR=$(EVAL_DATA) $(VENV)/bin/rag ingest examples/ --json >/dev/null
	RAG_DATA_DIR=$(EVAL_DATA) $(VENV)/bin/rag tune --abstention -c default \
	  --dataset evals/labelled/examples.jsonl --json >/dev/null
	RAG_DATA_DIR=$(EVAL_DATA) $(VENV)/bin/rag eval run evals/suites/examples.yaml \
	  --fail-under 0.75 --junit build/eval/junit.xml --html build/eval/report.html

# Speed and scale benchmarks; each prints its table and writes it under bench/results/.
# About 20 minutes on 2 cores (the first dense_recall run also embeds 100k chunks).
# The 1M-chunk scale row: $(PY) bench/retrieval_scale.py --full (about 30 more minutes).
bench: install
	$(PY) -m bench.bm25_speed | tee bench/results/bm25_speed.txt
	$(PY) -m bench.dense_recall | tee bench/results/dense_recall.txt
	$(PY) bench/retrieval_scale.py --out bench/results/retrieval_scale.txt
	$(PY) bench/ingest_speed.py --docs 1000 --out bench/results/ingest_speed.txt
	$(PY) -m bench.search_during_writes | tee bench/results/search_during_writes.txt
