# The quick start is two commands: `make demo` and `make test`. Both install into .venv first.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin

.PHONY: install demo test lint bench

# torch==2.13.0 first, pinned, so pip never pulls a multi-GB CUDA build as a dependency.
$(BIN)/autoresearch: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check torch==2.13.0 numpy
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -e '.[dev]'
	touch $@

install: $(BIN)/autoresearch

demo: install
	$(BIN)/autoresearch run nanogpt --preset cpu --trials 6 --concurrency 2 --confirm-top 2 \
		--goal "lower val bpb; try architecture changes first"

test: install
	$(BIN)/pytest -q

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

bench: install
	$(BIN)/python bench/orchestration.py
	$(BIN)/python bench/sandbox.py
	$(BIN)/python bench/dispatch.py  # needs the local PostgreSQL and Redis
	$(BIN)/python bench/api.py  # needs the local PostgreSQL
