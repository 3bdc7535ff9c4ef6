# The commands a person runs; pre-commit and .ci/run call the same ones.
.DEFAULT_GOAL := help
SHELL := /bin/bash
VENV := .venv/bin
PYTEST_ARGS ?=

.PHONY: help install up test test-fast lint format typecheck check schemas asyncapi bench reliability clean

help: ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk 'BEGIN {FS = ":.*## "}; {printf "  make %-12s %s\n", $$1, $$2}'

install: ## install everything (uv, the workspace, dev tools) from nothing but Python 3.11+
	@./scripts/bootstrap.sh

up: install ## install, then start the whole platform on the embedded stack (Ctrl-C stops it)
	$(VENV)/solidarity up

test: install check ## install, lint, type-check and run the whole default test suite
	$(VENV)/python -m pytest -m "not bench" $(PYTEST_ARGS)

test-fast: ## unit tests only, no infrastructure
	$(VENV)/python -m pytest -m unit $(PYTEST_ARGS)

check: lint typecheck ## ruff check, ruff format --check and mypy

lint: ## ruff check and ruff format --check
	$(VENV)/ruff check .
	$(VENV)/ruff format --check .

format: ## apply ruff's fixes and formatting
	$(VENV)/ruff check --fix .
	$(VENV)/ruff format .

typecheck: ## mypy (strict) over shared, the services and the tests
	$(VENV)/mypy shared/src services/catalog/src services/registration/src services/notifications/src tests

schemas: ## regenerate the committed JSON Schema snapshots of every event
	$(VENV)/solidarity contracts snapshot

bench: ## the benchmark on the embedded stack (BENCH_ARGS="--quick", see docs/performance.md)
	$(VENV)/solidarity bench $(BENCH_ARGS)

reliability: ## fault, bad-input and security scenarios, then one table of their figures (RELIABILITY_ARGS="--scale full")
	$(VENV)/solidarity reliability --report $(RELIABILITY_ARGS)

clean: ## remove the local stack's data and caches
	rm -rf .solidarity .mypy_cache .ruff_cache .pytest_cache
