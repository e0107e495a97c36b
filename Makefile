# shardgate — one entry point for people and CI.
#   make demo   the main job on a local cluster (installs what it needs first)
#   make test   everything CI runs: unit, integration (real PostgreSQL + MariaDB), e2e
SHELL := /bin/bash
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.shardgate-installed
PYTEST_ARGS ?=

.PHONY: test demo unit integration e2e bench lint build debug bootstrap clean

bootstrap:
	@bash scripts/bootstrap.sh

$(STAMP): setup.py pyproject.toml
	@test -x $(BIN)/python || $(PY) -m venv $(VENV)
	@echo "==> installing Python dependencies into $(VENV)"
	@$(BIN)/pip install -q --upgrade pip setuptools wheel "Cython>=3.1,<4"
	@SHARDGATE_REQUIRE_CYTHON=1 $(BIN)/pip install -q --no-build-isolation -e '.[test]'
	@touch $(STAMP)

# Rebuild the Cython extensions in place when a .pyx changed (a no-op otherwise).
build: bootstrap $(STAMP)
	@SHARDGATE_REQUIRE_CYTHON=1 $(BIN)/python setup.py -q build_ext --inplace
	@$(BIN)/shardgate version

debug: $(STAMP)
	SHARDGATE_DEBUG=1 $(BIN)/python setup.py build_ext --inplace --force

test: build
	$(BIN)/python -m pytest $(PYTEST_ARGS) tests

unit: build
	$(BIN)/python -m pytest $(PYTEST_ARGS) tests/unit

integration: build
	$(BIN)/python -m pytest $(PYTEST_ARGS) tests/integration

e2e: build
	$(BIN)/python -m pytest $(PYTEST_ARGS) tests/e2e

demo: build
	$(BIN)/shardgate demo $(DEMO_ARGS)

bench: build
	$(BIN)/python bench/hashing.py
	$(BIN)/python bench/fingerprint.py
	$(BIN)/python bench/planner.py
	$(BIN)/python bench/backend.py

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/lint-imports

clean:
	rm -rf build $(VENV) *.egg-info cython_ext/*.c cython_ext/*.so cython_ext/*.html
