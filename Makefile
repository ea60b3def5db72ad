# The README's commands. `make run` and `make test` do all set-up themselves.
PYTHON ?= python3
# e.g. BENCH_ARGS="--dsn postgresql://postgres@127.0.0.1:5432/postgres" (see bench/run.py)
BENCH_ARGS ?=
# Test processes (pytest-xdist): one per core, at least 2 as the tests mostly wait, at most 4.
TEST_WORKERS ?= $(shell $(PYTHON) -c 'import os; print(max(2, min(4, len(os.sched_getaffinity(0)))))')
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-stamp

.DEFAULT_GOAL := help
.PHONY: help install run worker migrate test lint typecheck format bench bench-capacity lock clean

help: ## List the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk 'BEGIN {FS = ":.*## "}; {printf "  make %-10s %s\n", $$1, $$2}'

# Dependencies come from the lock file, pinned with hashes; JQS itself is installed on top.
$(STAMP): pyproject.toml requirements-dev.lock
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet --require-hashes -r requirements-dev.lock
	$(BIN)/python -m pip install --quiet --no-deps -e .
	@touch $(STAMP)

install: $(STAMP) ## Create .venv and install JQS with its dev tools

run: $(STAMP) ## Start JQS: API + workers (embedded PostgreSQL when DATABASE_URL is unset)
	$(BIN)/jqs serve

worker: $(STAMP) ## Start a worker-only process
	$(BIN)/jqs worker

migrate: $(STAMP) ## Apply database migrations and exit
	$(BIN)/jqs migrate

lint: $(STAMP) ## ruff (lint + format check) and the import layering contracts
	$(BIN)/ruff check src tests bench
	$(BIN)/ruff format --check src tests bench
	$(BIN)/lint-imports

typecheck: $(STAMP) ## mypy --strict on src/ and bench/
	$(BIN)/mypy
	$(BIN)/mypy bench

test: lint typecheck ## Lint, type-check and run every test against a real PostgreSQL
	$(BIN)/pytest -n $(TEST_WORKERS) --dist worksteal

bench: $(STAMP) ## Run every benchmark against its baseline; writes docs/benchmarks.md (~25 min)
	$(BIN)/python -m pip install --quiet -e '.[dev,bench]'
	$(BIN)/python -m bench.run $(BENCH_ARGS)

bench-capacity: $(STAMP) ## Jobs/s one primary sustains, then a 30-minute soak; writes docs/capacity.md
	$(BIN)/python -m pip install --quiet -e '.[dev,bench]'
	$(BIN)/python -m bench.capacity $(BENCH_ARGS)

lock: $(STAMP) ## Re-resolve requirements.lock (image) and requirements-dev.lock from pyproject.toml
	$(BIN)/uv pip compile pyproject.toml --extra otel --generate-hashes --universal \
		--python-version 3.11 --quiet --upgrade -o requirements.lock
	$(BIN)/uv pip compile pyproject.toml --extra dev --generate-hashes --universal \
		--python-version 3.11 --quiet --upgrade -o requirements-dev.lock

format: $(STAMP) ## Apply ruff's fixes and formatting
	$(BIN)/ruff check --fix src tests bench
	$(BIN)/ruff format src tests bench

clean: ## Remove the virtualenv, caches and the embedded database's data
	rm -rf $(VENV) .jqs .pytest_cache .mypy_cache .ruff_cache
