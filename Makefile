# The two set-up commands (see README): `make serve` and `make test`.
# Both install everything into .venv first: torch pinned (CPU build) before the rest.
SHELL := /bin/bash
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-stamp
export HF_HUB_OFFLINE := 1
export TRANSFORMERS_OFFLINE := 1
export PYTHONUNBUFFERED := 1

.PHONY: install serve test lint bench

$(STAMP): pyproject.toml
	test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install --quiet torch==2.13.0
	$(PY) -m pip install --quiet -e ".[dev]"
	touch $(STAMP)

install: $(STAMP)

# Install, ingest the sample corpus (examples/) and serve the API + web page on 127.0.0.1:8000.
serve: install
	$(VENV)/bin/rag ingest examples/
	$(VENV)/bin/rag serve

# Install and run the whole test suite (slow end-to-end tests included).
test: install
	$(VENV)/bin/ruff check core ingest retrieval generation api evals bench tests
	$(PY) -m pytest

bench: install
	$(PY) bench/retrieval_scale.py
